package document

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

var update = flag.Bool("update", false, "rewrite the .golden files under testdata")

// marshaler is what both document types share, so tests can treat them alike.
type marshaler interface{ Marshal() ([]byte, error) }

// parseFile picks the parser from the file name prefix (wmd_ or bcd_).
func parseFile(t *testing.T, name string, data []byte) (marshaler, error) {
	t.Helper()
	switch {
	case strings.HasPrefix(filepath.Base(name), "wmd_"):
		w, err := ParseWriterMetadata(data)
		if err != nil {
			return nil, err
		}
		return w, nil
	case strings.HasPrefix(filepath.Base(name), "bcd_"):
		b, err := ParseBackupComponents(data)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	t.Fatalf("%s: name must start with wmd_ or bcd_", name)
	return nil, nil
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := parseFile(t, f, in)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			out, err := doc.Marshal()
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			golden := strings.TrimSuffix(f, ".xml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./document/ -run TestGolden -update)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("output differs from %s:\n%s", golden, out)
			}
			// Marshal(Parse(x)) is a fixed point, in bytes and in value.
			again, err := parseFile(t, f, out)
			if err != nil {
				t.Fatalf("re-parse: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(doc, again) {
				t.Errorf("value changed across a round trip:\n first %+v\nsecond %+v", doc, again)
			}
			out2, err := again.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, out2) {
				t.Errorf("not a fixed point:\n%s\n---\n%s", out, out2)
			}
		})
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSpecExampleWMD(t *testing.T) {
	w, err := ParseWriterMetadata(mustRead(t, "wmd_spec_example.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Version != "1.2" || w.BackupSchema != 881 {
		t.Errorf("root: %q %d", w.Version, w.BackupSchema)
	}
	id := w.Identity
	if id.WriterID != uuid.MustParse("a65faa63-5ea8-4ebc-9dbd-a0c4db26912a") || id.FriendlyName != "SqlServerWriter" ||
		id.Usage != vss.UsageUserData || id.Source != vss.SourceTransactedDB || id.InstanceName != "SQL Server 2019:SQLWriter" {
		t.Errorf("identity: %+v", id)
	}
	if w.RestoreMethod != (RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WREAlways}) {
		t.Errorf("restore method: %+v", w.RestoreMethod)
	}
	master := w.Component("HOST", "master")
	if master == nil || master.Type != vss.ComponentFileGroup || master.Flags != 2 || !master.Selectable ||
		!master.NotifyOnBackupComplete || master.RestoreMetadata || len(master.Files) != 1 ||
		master.Files[0] != (FileDesc{Path: `E:\DATA`, Filespec: "master.mdf", BackupTypeMask: 3855}) {
		t.Errorf("master: %+v", master)
	}
	ntds := w.Component("C:_Windows_NTDS", "ntds")
	if ntds == nil || ntds.Type != vss.ComponentDatabase || ntds.Flags != 3 || len(ntds.DatabaseFiles) != 1 ||
		len(ntds.DatabaseLogFiles) != 1 || ntds.DatabaseLogFiles[0].Filespec != "edb*.log" {
		t.Errorf("ntds: %+v", ntds)
	}
	if w.Component("HOST", "nope") != nil {
		t.Error("Component found an absent component")
	}
	if len(w.ExcludeFiles) != 1 || len(w.ExcludeFromSnapshot) != 1 || !w.ExcludeFromSnapshot[0].Recursive {
		t.Errorf("excludes: %+v %+v", w.ExcludeFiles, w.ExcludeFromSnapshot)
	}
}

func TestSpecExampleBCD(t *testing.T) {
	b, err := ParseBackupComponents(mustRead(t, "bcd_spec_example.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !b.BootableSystemStateBackup || !b.SelectComponents || b.PartialFileSupport || b.BackupType != vss.BackupFull ||
		b.SnapshotSetID != uuid.MustParse("4ad2e8b1-6c3f-4e1a-9b7d-2f5e8c0a1d34") || len(b.Writers) != 2 {
		t.Fatalf("root: %+v", b)
	}
	sql := b.Writer(uuid.MustParse("3c7e1f52-9a0d-4b6e-8f21-5d4c2b1a0e97"))
	if sql == nil || sql.BackupSchema != 881 || sql.InstanceName != "SQL Server 2019:SQLWriter" || len(sql.Components) != 1 {
		t.Fatalf("sql writer: %+v", sql)
	}
	c := sql.Components[0]
	if c.LogicalPath != "HOST" || c.Name != "local1" || c.Type != vss.ComponentFileGroup || c.BackupStamp != "CAAAAMQv3+t4udUB" ||
		c.BackupMetadata == nil || *c.BackupMetadata != "QkFTRTY0IHdyaXRlci1wcml2YXRlIGJsb2I=" || c.RestoreMetadata != nil {
		t.Errorf("component: %+v", c)
	}
	if b.Writer(uuid.New()) != nil {
		t.Error("Writer found an absent instance")
	}
}

// The Windows-shaped document: RESTORE_METHOD last, upper-case and braced
// GUIDs, FILE_LIST without recursive or mask, a newline in an attribute, a
// \\?\ device path, an unknown attribute and an unknown element.
func TestWindowsShapes(t *testing.T) {
	w, err := ParseWriterMetadata(mustRead(t, "wmd_windows_shapes.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Identity.WriterID != uuid.MustParse("be000cbe-11fe-4426-9c58-531aa6355fc4") ||
		w.Identity.InstanceID != uuid.MustParse("6e2d4f8a-1b3c-4d5e-9f70-a1b2c3d4e5f6") {
		t.Errorf("GUIDs: %+v", w.Identity)
	}
	if w.RestoreMethod.Method != vss.RMERestoreAtReboot || !w.RestoreMethod.RebootRequired {
		t.Errorf("restore method: %+v", w.RestoreMethod)
	}
	vol := w.Components[0]
	if !strings.Contains(vol.Caption, "critical.\nCritical") {
		t.Errorf("caption lost its newline: %q", vol.Caption)
	}
	boot := w.Component("BOOT", "BOOT")
	if boot == nil || len(boot.Files) != 3 {
		t.Fatalf("boot: %+v", boot)
	}
	if f := boot.Files[1]; f.Recursive || f.BackupTypeMask != 3855 {
		t.Errorf("defaults: %+v", f)
	}
	if f := boot.Files[2]; f.BackupTypeMask != vss.DefaultFileBackupTypeMask {
		t.Errorf("absent mask: %+v", f)
	}
	nm, err := ParseWriterMetadata(mustRead(t, "wmd_windows_no_method.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if nm.RestoreMethod != (RestoreMethod{}) || len(nm.ExcludeFiles) != 2 || nm.Identity.Usage != vss.UsageSystemService {
		t.Errorf("no-method writer: %+v", nm)
	}
}

func TestFullDocuments(t *testing.T) {
	w, err := ParseWriterMetadata(mustRead(t, "wmd_full.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if w.RestoreMethod.Service != "postgresql@16-main.service" || w.RestoreMethod.WriterRestore != vss.WREIfReplaceFails ||
		len(w.AlternateLocationMappings) != 1 || w.AlternateLocationMappings[0].Destination != "/var/lib/postgresql/16/restore" {
		t.Errorf("restore method: %+v %+v", w.RestoreMethod, w.AlternateLocationMappings)
	}
	ts := w.Component(`clusters\16\main`, "tablespaces")
	if ts == nil || ts.Files[0].AlternatePath != "/srv/pgts-mirror" || len(ts.Dependencies) != 2 ||
		ts.Dependencies[0].LogicalPath != "" || ts.Caption != "Tablespaces & links" {
		t.Errorf("tablespaces: %+v", ts)
	}

	b, err := ParseBackupComponents(mustRead(t, "bcd_full.xml"))
	if err != nil {
		t.Fatal(err)
	}
	_, c, err := b.FindComponent(uuid.MustParse("5f3e2a10-7c4b-4d9e-a1f2-6b8c0d3e4f51"), vss.ComponentDatabase, `clusters\16`, "main")
	if err != nil {
		t.Fatal(err)
	}
	// Every field of the first component is set; check none was dropped.
	v := reflect.ValueOf(*c)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("field %s not set by bcd_full.xml", v.Type().Field(i).Name)
		}
	}
	if c.Failure.HR != 0x800423F4 || c.Failure.ApplicationHR != 0x80004005 || !strings.Contains(c.Failure.Message, `"base/1/1259"`) {
		t.Errorf("failure: %+v", c.Failure)
	}
	if got := c.DifferencedFiles[0].LastModifyTime; got.UnixNano() != (133801920000000000-116444736000000000)*100 {
		t.Errorf("lastModifyTime: %v", got)
	}
	if *c.RestoreMetadata != "" {
		t.Errorf("restore metadata %q", *c.RestoreMetadata)
	}
	if b.SnapshotSet == nil || len(b.SnapshotSet.Snapshots) != 2 || b.SnapshotSet.Snapshots[0].Created.Nanosecond()%100 != 0 ||
		!b.SnapshotSet.Snapshots[1].Created.IsZero() {
		t.Errorf("snapshot set: %+v", b.SnapshotSet)
	}
}

func TestFiletime(t *testing.T) {
	for _, ft := range []int64{0, 1, 9_999_999, 10_000_000, 116444736000000000, 133801920123456789,
		-1, -10_000_001, 1<<63 - 1, -1 << 63} {
		got, ok := timeToFiletime(filetimeToTime(ft))
		if !ok || got != ft {
			t.Errorf("FILETIME %d came back as %d (ok %v)", ft, got, ok)
		}
	}
	if _, ok := timeToFiletime(filetimeToTime(1<<63 - 1).Add(100)); ok {
		t.Error("a time past the FILETIME range converted")
	}
}

func TestUTF16AndBOM(t *testing.T) {
	src := mustRead(t, "wmd_spec_example.xml")
	want, err := ParseWriterMetadata(src)
	if err != nil {
		t.Fatal(err)
	}
	decl := []byte(`<?xml version="1.0" encoding="UTF-16"?>` + "\n")
	for _, bigEndian := range []bool{false, true} {
		in := append([]byte{0xFF, 0xFE}, utf16Bytes(append(decl, src...), false)...)
		if bigEndian {
			in = append([]byte{0xFE, 0xFF}, utf16Bytes(append(decl, src...), true)...)
		}
		got, err := ParseWriterMetadata(in)
		if err != nil {
			t.Fatalf("big endian %v: %v", bigEndian, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("UTF-16 parse differs")
		}
	}
	got, err := ParseWriterMetadata(append([]byte{0xEF, 0xBB, 0xBF}, src...))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("UTF-8 BOM: %v", err)
	}
	// A UTF-16 declaration without a byte-order mark cannot be read.
	_, err = ParseWriterMetadata(append(decl, src...))
	if !errors.Is(err, vsserr.CorruptXMLDocument) {
		t.Errorf("UTF-16 declared without BOM: %v", err)
	}
}

func utf16Bytes(s []byte, bigEndian bool) []byte {
	var out []byte
	for _, r := range string(s) {
		var units []uint16
		if r >= 0x10000 {
			r -= 0x10000
			units = []uint16{uint16(0xD800 + (r >> 10)), uint16(0xDC00 + (r & 0x3FF))}
		} else {
			units = []uint16{uint16(r)}
		}
		for _, u := range units {
			if bigEndian {
				out = append(out, byte(u>>8), byte(u))
			} else {
				out = append(out, byte(u), byte(u>>8))
			}
		}
	}
	return out
}

// Strings with markup, quotes, white space controls and non-ASCII text
// survive Marshal and Parse unchanged.
func TestEscapingRoundTrip(t *testing.T) {
	tricky := "a&b<c>d\"e'f\tg\nh\r\ni \U0001F600 \uFFFD ]]> &amp;"
	w := &WriterMetadata{
		Identity:      Identity{WriterID: uuid.New(), InstanceID: uuid.New(), FriendlyName: tricky, Usage: vss.UsageOther, Source: vss.SourceOther},
		RestoreMethod: RestoreMethod{Method: vss.RMECustom, UserProcedure: tricky, WriterRestore: vss.WREAlways},
		Components:    []Component{{Type: vss.ComponentFileGroup, LogicalPath: tricky, Name: "n", Caption: tricky}},
	}
	out, err := w.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseWriterMetadata(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	w.Version = Version
	if !reflect.DeepEqual(w, back) {
		t.Errorf("round trip changed the document:\n%+v\n%+v", w, back)
	}
}
