package backupdoc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

var update = flag.Bool("update", false, "rewrite testdata/sample.tar")

func TestRoundTrip(t *testing.T) {
	s := newSample(t)
	a, err := Read(bytes.NewReader(s.write(t)))
	if err != nil {
		t.Fatal(err)
	}
	want := s.m.normalized()
	if want.Format != Format || want.Version != Version {
		t.Fatalf("normalized manifest has format %q version %d", want.Format, want.Version)
	}
	if !reflect.DeepEqual(a.Manifest, want) {
		t.Errorf("manifest read back differs:\n got %+v\nwant %+v", a.Manifest, want)
	}
	if a.BCDXML != s.bcd {
		t.Errorf("bcd.xml read back differs")
	}
	if !maps.Equal(a.WMDXML, s.wmds) {
		t.Errorf("WMDs read back differ: %v", slices.Collect(maps.Keys(a.WMDXML)))
	}
	bcd, _ := document.ParseBackupComponents([]byte(s.bcd))
	if !reflect.DeepEqual(a.BCD, bcd) {
		t.Errorf("parsed BCD differs")
	}
	for id, x := range s.wmds {
		wm, _ := document.ParseWriterMetadata([]byte(x))
		if !reflect.DeepEqual(a.WMDs[id], wm) {
			t.Errorf("parsed WMD of %s differs", id)
		}
	}
	if w := a.Manifest.Writer(pgW.instance); w == nil || w.Failure != vsserr.WriterErrorTimeout {
		t.Errorf("Writer(%s) = %+v", pgW.instance, w)
	}
}

// TestRoundTripSparse: a writerless backup at the snapshot stage, with
// nothing optional set, reads back as written.
func TestRoundTripSparse(t *testing.T) {
	m := Manifest{Stage: StageSnapshot, Time: time.Date(2026, 1, 2, 3, 4, 5, 999, time.FixedZone("CET", 3600)),
		SnapshotSetID: setID, Context: vss.CtxClientAccessible, BackupType: vss.BackupCopy}
	b := &document.BackupComponents{SnapshotSetID: setID}
	x, _ := b.Marshal()
	var buf bytes.Buffer
	if err := Write(&buf, m, string(x), nil); err != nil {
		t.Fatal(err)
	}
	a, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Manifest, m.normalized()) {
		t.Errorf("got %+v\nwant %+v", a.Manifest, m.normalized())
	}
	if got := a.Manifest.Time; !got.Equal(time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC)) || got.Location() != time.UTC {
		t.Errorf("time %v: want whole seconds in UTC", got)
	}
	if len(a.WMDs) != 0 || a.Manifest.ExitStatus != nil || a.Manifest.FreezeHeld != 0 {
		t.Errorf("%+v", a)
	}
}

// TestLayout checks what tar tools see: the files, in order, as regular
// files of mode 0644 with the manifest's time and no owner.
func TestLayout(t *testing.T) {
	s := newSample(t)
	hdrs, content := entries(t, s.write(t))
	var names []string
	for _, h := range hdrs {
		names = append(names, h.Name)
		if h.Typeflag != tar.TypeReg || h.Mode != 0o644 || !h.ModTime.Equal(s.m.Time) || h.Uid != 0 || h.Gid != 0 ||
			h.Uname != "" || h.Gname != "" || h.Format != tar.FormatUSTAR {
			t.Errorf("%s: type %q mode %o mtime %v uid %d gid %d %q %q format %v", h.Name, h.Typeflag, h.Mode, h.ModTime,
				h.Uid, h.Gid, h.Uname, h.Gname, h.Format)
		}
	}
	// Instance IDs in order: c0ffee00... before d39fbed9...
	want := []string{"manifest.json", "bcd.xml", "wmd/" + pgW.instance.String() + ".xml", "wmd/" + filesW.instance.String() + ".xml"}
	if !slices.Equal(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}
	if content["bcd.xml"] != s.bcd || content[WMDName(filesW.instance)] != s.wmds[filesW.instance] {
		t.Errorf("documents are not stored as given")
	}
	if m := content["manifest.json"]; !strings.HasPrefix(m, "{\n  \"format\": \"lvss-backup-archive\",\n  \"version\": 1,\n") ||
		!strings.HasSuffix(m, "}\n") {
		t.Errorf("manifest.json is not indented JSON starting with format and version:\n%s", m)
	}
}

func TestDeterministic(t *testing.T) {
	s := newSample(t)
	first := s.write(t)
	// The same input built again, the map filled in the other order, the
	// time given in another zone, with a monotonic reading and a fraction
	// of a second.
	s2 := newSample(t)
	s2.wmds = map[uuid.UUID]string{pgW.instance: s.wmds[pgW.instance]}
	s2.wmds[filesW.instance] = s.wmds[filesW.instance]
	now := time.Now()
	s2.m.Time = now.Add(s.m.Time.Sub(now) + 300*time.Millisecond).In(time.FixedZone("X", -7200))
	for range 5 {
		if got := s2.write(t); !bytes.Equal(got, first) {
			t.Fatalf("the same backup gave different bytes")
		}
	}
	// And the bytes of this version's format stay what they were: an
	// accidental change to it shows here (go test -update to accept one).
	golden := filepath.Join("testdata", "sample.tar")
	if *update {
		if err := os.WriteFile(golden, first, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, want) {
		// The sample's documents come from package document's Marshal,
		// so a change there shows here too; that one needs only -update.
		t.Errorf("Write's output differs from %s: if the archive's layout or manifest changed on purpose, see "+
			"docs/backup-archive.md (Versions) and run go test -update; if only package document writes XML differently, run go test -update", golden)
	}
	if _, err := Read(bytes.NewReader(want)); err != nil {
		t.Errorf("%s does not read: %v", golden, err)
	}
}

func manifestJSONOf(t *testing.T, m Manifest) string {
	t.Helper()
	b, err := manifestBytes(m.normalized())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// withManifest replaces manifest.json in the sample archive.
func withManifest(t *testing.T, s sample, manifest string) []byte {
	t.Helper()
	return tarOf(t, entry{name: "manifest.json", data: manifest}, entry{name: "bcd.xml", data: s.bcd},
		entry{name: WMDName(filesW.instance), data: s.wmds[filesW.instance]},
		entry{name: WMDName(pgW.instance), data: s.wmds[pgW.instance]})
}

func TestReadRefuses(t *testing.T) {
	s := newSample(t)
	mj := manifestJSONOf(t, s.m)
	filesWMD, pgWMD := entry{name: WMDName(filesW.instance), data: s.wmds[filesW.instance]}, entry{name: WMDName(pgW.instance), data: s.wmds[pgW.instance]}
	manifest, bcd := entry{name: "manifest.json", data: mj}, entry{name: "bcd.xml", data: s.bcd}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(s.write(t))
	zw.Close()
	otherSet := uuid.MustParse("11111111-2222-4333-8444-555555555555")

	for _, tc := range []struct {
		name    string
		archive []byte
		code    vsserr.HRESULT
		msg     string
	}{
		{"empty input", nil, vsserr.InvalidArg, "holds no manifest.json"},
		{"not a tar", []byte(strings.Repeat("this is a text file\n", 50)), vsserr.InvalidArg, "not a tar archive"},
		{"truncated", s.write(t)[:700], vsserr.InvalidArg, "manifest.json: the archive ends inside it"},
		{"gzip", gz.Bytes(), vsserr.InvalidArg, "gzip-compressed"},
		{"missing manifest", tarOf(t, bcd, filesWMD, pgWMD), vsserr.InvalidArg, "holds no manifest.json"},
		{"manifest not JSON", withManifest(t, s, "format: lvss"), vsserr.InvalidArg, "manifest.json is not a manifest"},
		{"other format", withManifest(t, s, strings.Replace(mj, Format, "something-else", 1)), vsserr.InvalidArg,
			`format "something-else" is not "lvss-backup-archive"`},
		{"newer version", withManifest(t, s, strings.Replace(mj, `"version": 1`, `"version": 2`, 1)), vsserr.InvalidArg,
			"version 2 is newer than this lvss reads (1)"},
		{"no version", withManifest(t, s, strings.Replace(mj, `"version": 1,`, ``, 1)), vsserr.InvalidArg,
			"version 0 is not one this lvss reads (1)"},
		{"unknown stage", withManifest(t, s, strings.Replace(mj, `"backup_complete"`, `"done"`, 1)), vsserr.InvalidArg, `stage "done"`},
		{"bad GUID", withManifest(t, s, strings.Replace(mj, pgW.instance.String(), "not-a-guid", 1)), vsserr.InvalidArg,
			`writers[1].instance_id: "not-a-guid" is not a GUID`},
		{"bad HRESULT", withManifest(t, s, strings.Replace(mj, `"0x800423F2"`, `"timeout"`, 1)), vsserr.InvalidArg,
			`writers[1].failure_hresult: "timeout" is not an HRESULT`},
		{"missing bcd", tarOf(t, manifest, filesWMD, pgWMD), vsserr.InvalidArg, "holds no bcd.xml"},
		{"corrupt bcd", tarOf(t, manifest, entry{name: "bcd.xml", data: s.bcd[:len(s.bcd)/2]}, filesWMD, pgWMD),
			vsserr.CorruptXMLDocument, "bcd.xml: line "},
		{"invalid bcd", tarOf(t, manifest, entry{name: "bcd.xml", data: s.wmds[pgW.instance]}, filesWMD, pgWMD),
			vsserr.InvalidXMLDocument, "bcd.xml: line 2, column 1"},
		{"set ID mismatch", tarOf(t, manifest, entry{name: "bcd.xml", data: bcdXML(t, otherSet)}, filesWMD, pgWMD),
			vsserr.InvalidArg, "manifest.json names snapshot set " + setID.String() + " but bcd.xml names " + otherSet.String()},
		{"snapshot not in the set", tarOf(t, manifest, entry{name: "bcd.xml", data: bcdXML(t, setID, snapSrv)}, filesWMD, pgWMD),
			vsserr.InvalidArg, "manifest.json lists snapshot " + snapPG.String() + ", which the snapshot set of bcd.xml does not hold"},
		{"WMD instance mismatch", tarOf(t, manifest, bcd, filesWMD, entry{name: WMDName(pgW.instance), data: s.wmds[filesW.instance]}),
			vsserr.InvalidArg, WMDName(pgW.instance) + " holds the metadata of writer instance " + filesW.instance.String()},
		{"corrupt WMD", tarOf(t, manifest, bcd, filesWMD, entry{name: WMDName(pgW.instance), data: "<WRITER_METADATA"}),
			vsserr.CorruptXMLDocument, WMDName(pgW.instance) + ": line 1"},
		{"WMD missing", tarOf(t, manifest, bcd, filesWMD), vsserr.InvalidArg,
			"bcd.xml has components of writer instance " + pgW.instance.String() + " but the archive has no " + WMDName(pgW.instance)},
		{"unexpected file", tarOf(t, manifest, bcd, filesWMD, pgWMD, entry{name: "notes.txt", data: "hi"}), vsserr.InvalidArg,
			`unexpected file "notes.txt"`},
		{"WMD name not canonical", tarOf(t, manifest, bcd, filesWMD, entry{name: "wmd/" + strings.ToUpper(pgW.instance.String()) + ".xml"}),
			vsserr.InvalidArg, "unexpected file"},
		{"file twice", tarOf(t, manifest, bcd, bcd, filesWMD, pgWMD), vsserr.InvalidArg, "bcd.xml is in the archive twice"},
		{"symlink", tarOf(t, manifest, entry{name: "bcd.xml", data: "/etc/passwd", typ: tar.TypeSymlink}), vsserr.InvalidArg,
			"bcd.xml is not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.archive))
			if err == nil {
				t.Fatal("read")
			}
			if vsserr.Code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v\nwant %s and %q", err, tc.code, tc.msg)
			}
		})
	}
}

// TestReadRefusesHugeFile: a file over the limit is refused from its
// header, before anything is read into memory.
func TestReadRefusesHugeFile(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bcd.xml", Mode: 0o644, Size: 1 << 40})
	_, err := Read(&b)
	if vsserr.Code(err) != vsserr.InvalidArg || !strings.Contains(err.Error(), "bcd.xml is 1099511627776 bytes, more than") {
		t.Fatalf("%v", err)
	}
}

// TestReadRefusesManyEntries: the entry count is bounded too, directory
// entries included, which cost no bytes.
func TestReadRefusesManyEntries(t *testing.T) {
	var es []entry
	for range maxEntries + 1 {
		es = append(es, entry{name: "wmd/", typ: tar.TypeDir})
	}
	_, err := Read(bytes.NewReader(tarOf(t, es...)))
	if vsserr.Code(err) != vsserr.InvalidArg || !strings.Contains(err.Error(), "more than 4106 entries") {
		t.Fatalf("%v", err)
	}
}

// TestReadAcceptsRepacked: an archive unpacked and packed again with tar
// (./ names, directory entries, another order) still reads.
func TestReadAcceptsRepacked(t *testing.T) {
	s := newSample(t)
	a, err := Read(bytes.NewReader(tarOf(t, entry{name: "./", typ: tar.TypeDir}, entry{name: "./wmd/", typ: tar.TypeDir},
		entry{name: "./" + WMDName(pgW.instance), data: s.wmds[pgW.instance]},
		entry{name: "./" + WMDName(filesW.instance), data: s.wmds[filesW.instance]},
		entry{name: "./bcd.xml", data: s.bcd}, entry{name: "./manifest.json", data: manifestJSONOf(t, s.m)})))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.WMDs) != 2 || a.Manifest.SnapshotSetID != setID {
		t.Errorf("%+v", a)
	}
}

// TestWriteRefuses: Write checks what Read checks, and writes nothing
// when a check fails.
func TestWriteRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*sample)
		code vsserr.HRESULT
		msg  string
	}{
		{"other format", func(s *sample) { s.m.Format = "tar" }, vsserr.InvalidArg, `format "tar"`},
		{"other version", func(s *sample) { s.m.Version = 2 }, vsserr.InvalidArg, "version 2"},
		{"no stage", func(s *sample) { s.m.Stage = "" }, vsserr.InvalidArg, `stage ""`},
		{"no time", func(s *sample) { s.m.Time = time.Time{} }, vsserr.InvalidArg, "time is missing"},
		{"time before 1970", func(s *sample) { s.m.Time = time.Date(1969, 7, 20, 0, 0, 0, 0, time.UTC) }, vsserr.InvalidArg, "before 1970"},
		{"no set", func(s *sample) { s.m.SnapshotSetID = uuid.Nil }, vsserr.InvalidArg, "snapshot_set_id is missing"},
		{"exit status without command", func(s *sample) { s.m.Command = nil }, vsserr.InvalidArg, "exit_status 0 without a command"},
		{"snapshot twice", func(s *sample) { s.m.Snapshots[1].SnapshotID = snapSrv }, vsserr.InvalidArg, "listed twice"},
		{"writer twice", func(s *sample) { s.m.Writers[1].InstanceID = filesW.instance }, vsserr.InvalidArg, "listed twice"},
		{"corrupt BCD", func(s *sample) { s.bcd = "<BACKUP_COMPONENTS" }, vsserr.CorruptXMLDocument, "bcd.xml: line 1"},
		{"set ID mismatch", func(s *sample) { s.m.SnapshotSetID = uuid.New() }, vsserr.InvalidArg, "not of the same backup"},
		{"WMD under another instance", func(s *sample) { s.wmds[pgW.instance] = s.wmds[filesW.instance] }, vsserr.InvalidArg,
			"holds the metadata of writer instance"},
		{"WMD missing", func(s *sample) { delete(s.wmds, pgW.instance) }, vsserr.InvalidArg, "restore needs the metadata"},
		{"WMD of another class", func(s *sample) {
			s.wmds[pgW.instance] = wmdXML(t, writerIDs{instance: pgW.instance, class: uuid.New(), name: "postgres"}, "/x")
		}, vsserr.InvalidArg, "is of writer class"},
		{"WMD under GUID_NULL", func(s *sample) { s.wmds[uuid.Nil] = s.wmds[pgW.instance] }, vsserr.InvalidArg, "GUID_NULL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSample(t)
			tc.edit(&s)
			var b bytes.Buffer
			err := Write(&b, s.m, s.bcd, s.wmds)
			if vsserr.Code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v\nwant %s and %q", err, tc.code, tc.msg)
			}
			if b.Len() != 0 {
				t.Errorf("Write wrote %d bytes before failing", b.Len())
			}
		})
	}
}

// manifestKeys are the documented fields of manifest.json, version 1, in
// the order they are written.
var manifestKeys = []string{"format", "version", "stage", "lvss_version", "host", "time", "snapshot_set_id",
	"context", "context_value", "backup_type", "backup_type_value", "command", "exit_status", "freeze_held_ms",
	"writers_frozen_ms", "snapshots", "writers"}

var snapshotKeys = []string{"snapshot_id", "original_volume", "device_path", "provider", "provider_id", "created",
	"consistency", "consistency_reason"}

var writerKeys = []string{"instance_id", "writer_id", "name", "instance_name", "state", "state_value", "failure",
	"failure_hresult", "application", "application_hresult", "application_message"}

// keysOf returns an object's keys in the order they appear.
func keysOf(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", data)
	}
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestManifestJSON(t *testing.T) {
	m := sampleManifest().normalized()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(t, data); !slices.Equal(got, manifestKeys) {
		t.Errorf("manifest keys %v\nwant %v", got, manifestKeys)
	}
	var raw struct {
		Snapshots []json.RawMessage `json:"snapshots"`
		Writers   []json.RawMessage `json:"writers"`
	}
	json.Unmarshal(data, &raw)
	if got := keysOf(t, raw.Snapshots[0]); !slices.Equal(got, snapshotKeys) {
		t.Errorf("snapshot keys %v\nwant %v", got, snapshotKeys)
	}
	if got := keysOf(t, raw.Writers[0]); !slices.Equal(got, writerKeys) {
		t.Errorf("writer keys %v\nwant %v", got, writerKeys)
	}
	for _, want := range []string{`"context":"VSS_CTX_BACKUP","context_value":0`, `"backup_type":"VSS_BT_FULL","backup_type_value":1`,
		`"time":"2026-11-25T01:12:40Z"`, `"freeze_held_ms":12.345678`, `"writers_frozen_ms":23.456789`, `"exit_status":0`,
		`"state":"VSS_WS_FAILED_AT_FREEZE","state_value":9,"failure":"VSS_E_WRITERERROR_TIMEOUT","failure_hresult":"0x800423F2"`,
		`"created":"2026-11-25T01:10:03.412Z"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("manifest JSON lacks %s:\n%s", want, data)
		}
	}
	// Unknown values are null and empty lists [], never missing.
	sparse, _ := json.Marshal(Manifest{Format: Format, Version: Version})
	for _, want := range []string{`"command":[]`, `"exit_status":null`, `"freeze_held_ms":null`, `"writers_frozen_ms":null`, `"snapshots":[]`, `"writers":[]`, `"time":""`} {
		if !strings.Contains(string(sparse), want) {
			t.Errorf("sparse manifest lacks %s:\n%s", want, sparse)
		}
	}
	// A reader takes the numbers: a name it does not know (a newer lvss's)
	// or that disagrees is not an error.
	var back Manifest
	edited := strings.Replace(string(data), `"VSS_WS_FAILED_AT_FREEZE"`, `"VSS_WS_SOMETHING_NEW"`, 1)
	edited = strings.Replace(edited, `"format"`, `"new_field":{"x":1},"format"`, 1)
	if err := json.Unmarshal([]byte(edited), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("read back %+v\nwant %+v", back, m)
	}
}

// TestManifestFieldsDocumented keeps docs/backup-archive.md and the code
// in step: every field written is described there.
func TestManifestFieldsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "backup-archive.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range slices.Concat(manifestKeys, snapshotKeys, writerKeys) {
		if !strings.Contains(string(doc), "| `"+k+"` |") {
			t.Errorf("docs/backup-archive.md has no table row for `%s`", k)
		}
	}
	for _, s := range []string{Format, string(StageSnapshot), string(StageBackupComplete), "manifest.json", "bcd.xml", "wmd/<instance-id>.xml"} {
		if !strings.Contains(string(doc), s) {
			t.Errorf("docs/backup-archive.md does not mention %s", s)
		}
	}
}

// TestReadTruncatedAllocatesLittle: a header claiming a large file in a
// short input costs what the input holds, not what the header claims
// (one such file used to cost its full size before the read failed).
func TestReadTruncatedAllocatesLittle(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bcd.xml", Mode: 0o644, Size: 60 << 20})
	tw.Write([]byte("<BACKUP_COMPONENTS"))
	input := b.Bytes() // no Close: the archive ends inside bcd.xml
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Read(bytes.NewReader(input))
	runtime.ReadMemStats(&after)
	if vsserr.Code(err) != vsserr.InvalidArg || !strings.Contains(err.Error(), "bcd.xml: the archive ends inside it") {
		t.Fatalf("%v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
		t.Errorf("reading %d bytes that claim a 60 MiB file allocated %d bytes", len(input), got)
	}
}
