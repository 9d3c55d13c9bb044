package backupdoc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// The sample cluster set: host db1's archive is the sample backup (one of
// its snapshots only crash-consistent), db2's the same backup made
// application-consistent on another host.
func clusterSample(t *testing.T) (ClusterManifest, map[string][]byte) {
	t.Helper()
	db1 := newSample(t)
	db2 := newSample(t)
	db2.m.Host = "db2"
	db2.m.Snapshots[1].Consistency, db2.m.Snapshots[1].ConsistencyReason = "application", ""
	m := ClusterManifest{Stage: StageBackupComplete, LvssVersion: "0.9.0", Requester: "root@backup1[4242]",
		Time: time.Date(2026, 11, 25, 1, 13, 2, 0, time.UTC), SnapshotSetID: setID, BackupType: vss.BackupFull}
	return m, map[string][]byte{"db1": db1.write(t), "db2": db2.write(t)}
}

func writeCluster(t *testing.T, m ClusterManifest, hosts map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteCluster(&b, m, hosts); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestClusterRoundTrip(t *testing.T) {
	m, hosts := clusterSample(t)
	c, err := ReadCluster(bytes.NewReader(writeCluster(t, m, hosts)))
	if err != nil {
		t.Fatal(err)
	}
	want := m.normalized()
	want.Consistency = "crash"
	want.Hosts = []ClusterHost{{Host: "db1", Consistency: "crash", SHA256: sha(hosts["db1"])},
		{Host: "db2", Consistency: "application", SHA256: sha(hosts["db2"])}}
	if !reflect.DeepEqual(c.Manifest, want) {
		t.Errorf("cluster.json read back:\n got %+v\nwant %+v", c.Manifest, want)
	}
	if got := c.HostNames(); !slices.Equal(got, []string{"db1", "db2"}) {
		t.Errorf("hosts %v", got)
	}
	for _, h := range []string{"db1", "db2"} {
		ha := c.Host(h)
		if ha == nil || !bytes.Equal(ha.Data, hosts[h]) {
			t.Fatalf("%s's archive is not stored byte for byte", h)
		}
		single, err := Read(bytes.NewReader(hosts[h]))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ha.Archive, single) {
			t.Errorf("%s's archive reads back differently", h)
		}
	}
	if c.Host("db3") != nil {
		t.Errorf("Host(db3) is not nil")
	}

	// ReadAny tells the two kinds apart.
	a, c2, err := ReadAny(bytes.NewReader(writeCluster(t, m, hosts)))
	if err != nil || a != nil || c2 == nil || !reflect.DeepEqual(c2, c) {
		t.Errorf("ReadAny of a cluster archive: %v %v %v", a, c2, err)
	}
	a, c2, err = ReadAny(bytes.NewReader(hosts["db1"]))
	if err != nil || a == nil || c2 != nil || a.Manifest.Host != "db1" {
		t.Errorf("ReadAny of a single archive: %v %v %v", a, c2, err)
	}
}

// TestClusterLayout checks what tar tools see: cluster.json first, then
// each host's archive in name order, all regular files of mode 0644 with
// the manifest's time and no owner.
func TestClusterLayout(t *testing.T) {
	m, hosts := clusterSample(t)
	hdrs, content := entries(t, writeCluster(t, m, hosts))
	var names []string
	for _, h := range hdrs {
		names = append(names, h.Name)
		if h.Typeflag != tar.TypeReg || h.Mode != 0o644 || !h.ModTime.Equal(m.Time) || h.Uid != 0 || h.Gid != 0 ||
			h.Uname != "" || h.Gname != "" || h.Format != tar.FormatUSTAR {
			t.Errorf("%s: type %q mode %o mtime %v uid %d gid %d %q %q format %v", h.Name, h.Typeflag, h.Mode, h.ModTime,
				h.Uid, h.Gid, h.Uname, h.Gname, h.Format)
		}
	}
	if want := []string{"cluster.json", "hosts/db1.tar", "hosts/db2.tar"}; !slices.Equal(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}
	if content["hosts/db2.tar"] != string(hosts["db2"]) {
		t.Errorf("hosts/db2.tar is not db2's archive as given")
	}
	cj := content["cluster.json"]
	if !strings.HasPrefix(cj, "{\n  \"format\": \"lvss-cluster-backup-archive\",\n  \"version\": 1,\n") || !strings.HasSuffix(cj, "}\n") {
		t.Errorf("cluster.json is not indented JSON starting with format and version:\n%s", cj)
	}
	if got := keysOf(t, []byte(cj)); !slices.Equal(got, clusterKeys) {
		t.Errorf("cluster.json keys %v\nwant %v", got, clusterKeys)
	}
	var raw struct {
		Hosts []json.RawMessage `json:"hosts"`
	}
	json.Unmarshal([]byte(cj), &raw)
	if got := keysOf(t, raw.Hosts[0]); !slices.Equal(got, clusterHostKeys) {
		t.Errorf("host keys %v\nwant %v", got, clusterHostKeys)
	}
	for _, want := range []string{`"stage": "backup_complete"`, `"requester": "root@backup1[4242]"`, `"time": "2026-11-25T01:13:02Z"`,
		`"backup_type": "VSS_BT_FULL"`, `"backup_type_value": 1`, `"consistency": "crash"`, `"archive": "hosts/db1.tar"`,
		`"sha256": "` + sha(hosts["db1"]) + `"`} {
		if !strings.Contains(cj, want) {
			t.Errorf("cluster.json lacks %s:\n%s", want, cj)
		}
	}
}

var clusterKeys = []string{"format", "version", "stage", "lvss_version", "requester", "time", "snapshot_set_id",
	"backup_type", "backup_type_value", "consistency", "hosts"}

var clusterHostKeys = []string{"host", "consistency", "archive", "sha256"}

func TestClusterDeterministic(t *testing.T) {
	m, hosts := clusterSample(t)
	first := writeCluster(t, m, hosts)
	m2, hosts2 := clusterSample(t)
	now := time.Now()
	m2.Time = now.Add(m.Time.Sub(now) + 700*time.Millisecond).In(time.FixedZone("X", 3600))
	// What the caller puts in the computed fields does not count.
	m2.Consistency, m2.Hosts = "application", []ClusterHost{{Host: "elsewhere"}}
	for range 5 {
		if got := writeCluster(t, m2, hosts2); !bytes.Equal(got, first) {
			t.Fatalf("the same cluster set gave different bytes")
		}
	}
	golden := filepath.Join("testdata", "cluster.tar")
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
		t.Errorf("WriteCluster's output differs from %s: if the layout or cluster.json changed on purpose, see "+
			"docs/backup-archive.md (Versions) and run go test -update; if only package document writes XML differently, run go test -update", golden)
	}
	if _, err := ReadCluster(bytes.NewReader(want)); err != nil {
		t.Errorf("%s does not read: %v", golden, err)
	}
}

// clusterJSONOf is cluster.json for m as given, without WriteCluster's
// checks, for archives it would never write.
func clusterJSONOf(t *testing.T, m ClusterManifest) string {
	t.Helper()
	b, err := m.normalized().bytes()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReadClusterRefuses(t *testing.T) {
	m, hosts := clusterSample(t)
	good := writeCluster(t, m, hosts)
	c, err := ReadCluster(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	cj := clusterJSONOf(t, c.Manifest)
	db1, db2 := entry{name: "hosts/db1.tar", data: string(hosts["db1"])}, entry{name: "hosts/db2.tar", data: string(hosts["db2"])}
	head := entry{name: "cluster.json", data: cj}
	withJSON := func(s string) []byte { return tarOf(t, entry{name: "cluster.json", data: s}, db1, db2) }
	// listing is cluster.json with db1's entry edited, for host archives
	// that are well-formed but do not belong.
	listing := func(edit func(*ClusterManifest)) entry {
		mm := c.Manifest
		mm.Hosts = slices.Clone(mm.Hosts)
		edit(&mm)
		return entry{name: "cluster.json", data: clusterJSONOf(t, mm)}
	}
	otherHost := newSample(t)
	otherHost.m.Host = "db9"
	otherStage := newSample(t)
	otherStage.m.Stage = StageSnapshot
	damaged := newSample(t)
	damagedTar := tarOf(t, entry{name: "manifest.json", data: manifestJSONOf(t, damaged.m)},
		entry{name: "bcd.xml", data: damaged.bcd[:len(damaged.bcd)/2]})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(good)
	zw.Close()

	for _, tc := range []struct {
		name    string
		archive []byte
		code    vsserr.HRESULT
		msg     string
	}{
		{"empty input", nil, vsserr.InvalidArg, "holds no cluster.json"},
		{"not a tar", []byte(strings.Repeat("this is a text file\n", 50)), vsserr.InvalidArg, "not a tar archive"},
		{"truncated", good[:1200], vsserr.InvalidArg, "the archive ends inside it"},
		{"gzip", gz.Bytes(), vsserr.InvalidArg, "gzip-compressed"},
		{"a single host's archive", hosts["db1"], vsserr.InvalidArg,
			`unexpected file "manifest.json": an lvss cluster backup archive (version 1) holds only cluster.json and hosts/<host>.tar`},
		{"unexpected file", tarOf(t, head, db1, db2, entry{name: "notes.txt", data: "hi"}), vsserr.InvalidArg, `unexpected file "notes.txt"`},
		{"host name not one", tarOf(t, head, db1, db2, entry{name: "hosts/../x.tar", data: "hi"}), vsserr.InvalidArg, "unexpected file"},
		{"file twice", tarOf(t, head, db1, db1, db2), vsserr.InvalidArg, "hosts/db1.tar is in the archive twice"},
		{"symlink", tarOf(t, head, entry{name: "hosts/db1.tar", data: "/etc/passwd", typ: tar.TypeSymlink}), vsserr.InvalidArg,
			"hosts/db1.tar is not a regular file"},
		{"no cluster.json", tarOf(t, db1, db2), vsserr.InvalidArg, "holds no cluster.json"},
		{"cluster.json not JSON", withJSON("hosts: db1"), vsserr.InvalidArg, "cluster.json is not a cluster manifest"},
		{"other format", withJSON(strings.Replace(cj, ClusterFormat, Format, 1)), vsserr.InvalidArg,
			`format "lvss-backup-archive" is not "lvss-cluster-backup-archive"`},
		{"newer version", withJSON(strings.Replace(cj, `"version": 1`, `"version": 2`, 1)), vsserr.InvalidArg,
			"version 2 is newer than this lvss reads (1)"},
		{"unknown stage", withJSON(strings.Replace(cj, `"stage": "backup_complete"`, `"stage": "done"`, 1)), vsserr.InvalidArg, `stage "done"`},
		{"no time", withJSON(strings.Replace(cj, `"time": "2026-11-25T01:13:02Z"`, `"time": ""`, 1)), vsserr.InvalidArg, "time is missing"},
		{"bad GUID", withJSON(strings.Replace(cj, setID.String(), "not-a-guid", 1)), vsserr.InvalidArg, `snapshot_set_id: "not-a-guid" is not a GUID`},
		{"bad archive name", withJSON(strings.Replace(cj, `"archive": "hosts/db1.tar"`, `"archive": "db1.tar"`, 1)), vsserr.InvalidArg,
			`hosts[0].archive: "db1.tar" is not "hosts/db1.tar"`},
		{"bad sha256", withJSON(strings.Replace(cj, sha(hosts["db1"]), strings.ToUpper(sha(hosts["db1"])), 1)), vsserr.InvalidArg,
			"hosts[0].sha256"},
		{"no hosts", tarOf(t, listing(func(m *ClusterManifest) { m.Hosts = nil })), vsserr.InvalidArg, "hosts is empty"},
		{"host listed twice", tarOf(t, listing(func(m *ClusterManifest) { m.Hosts[1] = m.Hosts[0] }), db1, db2), vsserr.InvalidArg,
			"host db1 is listed twice"},
		{"host without its archive", tarOf(t, head, db1), vsserr.InvalidArg, "cluster.json lists host db2 but the archive has no hosts/db2.tar"},
		{"archive not listed", tarOf(t, listing(func(m *ClusterManifest) { m.Hosts = m.Hosts[:1] }), db1, db2), vsserr.InvalidArg,
			"hosts/db2.tar is in the archive but cluster.json does not list host db2"},
		{"host archive swapped", tarOf(t, head, entry{name: "hosts/db1.tar", data: db2.data}, entry{name: "hosts/db2.tar", data: db1.data}),
			vsserr.InvalidArg, "hosts/db1.tar is not the archive cluster.json lists (its SHA-256 differs)"},
		{"host archive damaged", tarOf(t, listing(func(m *ClusterManifest) { m.Hosts[0].SHA256 = sha(damagedTar) }),
			entry{name: "hosts/db1.tar", data: string(damagedTar)}, db2), vsserr.CorruptXMLDocument, "hosts/db1.tar: bcd.xml: line "},
		{"host archive not a tar", tarOf(t, listing(func(m *ClusterManifest) { m.Hosts[0].SHA256 = sha([]byte("hello")) }),
			entry{name: "hosts/db1.tar", data: "hello"}, db2), vsserr.InvalidArg, "hosts/db1.tar: not a tar archive"},
		{"another host's archive", tarOf(t, listing(func(m *ClusterManifest) { m.Hosts[0].SHA256 = sha(otherHost.write(t)) }),
			entry{name: "hosts/db1.tar", data: string(otherHost.write(t))}, db2), vsserr.InvalidArg,
			`hosts/db1.tar is the archive of host "db9", not of db1`},
		{"another set", withJSON(strings.Replace(cj, setID.String(), "11111111-2222-4333-8444-555555555555", 1)), vsserr.InvalidArg,
			"hosts/db1.tar is of snapshot set " + setID.String() + ", not of the cluster set 11111111-2222-4333-8444-555555555555"},
		{"another stage", tarOf(t, listing(func(m *ClusterManifest) { m.Hosts[0].SHA256 = sha(otherStage.write(t)) }),
			entry{name: "hosts/db1.tar", data: string(otherStage.write(t))}, db2), vsserr.InvalidArg,
			`hosts/db1.tar was written at stage "snapshot", the cluster archive at "backup_complete"`},
		{"host consistency", tarOf(t, listing(func(m *ClusterManifest) { m.Hosts[0].Consistency = "application" }), db1, db2),
			vsserr.InvalidArg, `host db1's consistency is "application", but the snapshots of hosts/db1.tar say "crash"`},
		{"set consistency", withJSON(strings.Replace(cj, `"consistency": "crash",`+"\n  \"hosts\"", `"consistency": "application",`+"\n  \"hosts\"", 1)),
			vsserr.InvalidArg, `consistency is "application", but the hosts' parts say "crash"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadCluster(bytes.NewReader(tc.archive))
			if err == nil {
				t.Fatal("read")
			}
			if vsserr.Code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v\nwant %s and %q", err, tc.code, tc.msg)
			}
			// ReadAny refuses it with the same error, unless the input
			// is no cluster archive at all: then it is read as a single
			// host's.
			if strings.HasPrefix(tc.name, "cluster.json") || tc.name == "empty input" || tc.name == "a single host's archive" ||
				tc.name == "no cluster.json" || tc.name == "not a tar" || tc.name == "gzip" {
				return
			}
			if _, _, aerr := ReadAny(bytes.NewReader(tc.archive)); aerr == nil || aerr.Error() != err.Error() {
				t.Errorf("ReadAny: %v\nReadCluster: %v", aerr, err)
			}
		})
	}
}

// TestReadAnyRefusesAsRead: damaged single-host archives are refused by
// ReadAny exactly as by Read, so show and restore report them as before.
func TestReadAnyRefusesAsRead(t *testing.T) {
	s := newSample(t)
	mj := manifestJSONOf(t, s.m)
	filesWMD, pgWMD := entry{name: WMDName(filesW.instance), data: s.wmds[filesW.instance]}, entry{name: WMDName(pgW.instance), data: s.wmds[pgW.instance]}
	manifest, bcd := entry{name: "manifest.json", data: mj}, entry{name: "bcd.xml", data: s.bcd}
	for name, archive := range map[string][]byte{
		"empty":            nil,
		"text":             []byte(strings.Repeat("this is a text file\n", 50)),
		"truncated":        s.write(t)[:700],
		"missing manifest": tarOf(t, bcd, filesWMD, pgWMD),
		"missing bcd":      tarOf(t, manifest, filesWMD, pgWMD),
		"other version":    withManifest(t, s, strings.Replace(mj, `"version": 1`, `"version": 2`, 1)),
		"corrupt WMD":      tarOf(t, manifest, bcd, filesWMD, entry{name: WMDName(pgW.instance), data: "<WRITER_METADATA"}),
		"unexpected file":  tarOf(t, manifest, bcd, filesWMD, pgWMD, entry{name: "notes.txt", data: "hi"}),
		"host archive":     tarOf(t, manifest, bcd, filesWMD, pgWMD, entry{name: "hosts/db1.tar", data: "hi"}),
	} {
		_, rerr := Read(bytes.NewReader(archive))
		_, _, aerr := ReadAny(bytes.NewReader(archive))
		if rerr == nil || aerr == nil || rerr.Error() != aerr.Error() {
			t.Errorf("%s: Read says %v, ReadAny %v", name, rerr, aerr)
		}
	}
	_, _, err := ReadAny(bytes.NewReader(tarOf(t, entry{name: "notes.txt", data: "hi"})))
	if vsserr.Code(err) != vsserr.InvalidArg || !strings.Contains(err.Error(),
		`unexpected file "notes.txt": an lvss backup archive (version 1) holds only manifest.json, bcd.xml and wmd/<instance-id>.xml; an lvss cluster backup archive (version 1) only cluster.json and hosts/<host>.tar`) {
		t.Errorf("neither kind: %v", err)
	}
}

// TestWriteClusterRefuses: WriteCluster checks what ReadCluster checks,
// and writes nothing when a check fails.
func TestWriteClusterRefuses(t *testing.T) {
	otherHost := newSample(t)
	otherHost.m.Host = "db9"
	otherSet := newSample(t)
	otherSet.m.SnapshotSetID = uuid.MustParse("11111111-2222-4333-8444-555555555555")
	otherSet.bcd = bcdXML(t, otherSet.m.SnapshotSetID, snapSrv, snapPG)
	otherStage := newSample(t)
	otherStage.m.Stage = StageSnapshot
	for _, tc := range []struct {
		name string
		edit func(*ClusterManifest, map[string][]byte)
		code vsserr.HRESULT
		msg  string
	}{
		{"other format", func(m *ClusterManifest, _ map[string][]byte) { m.Format = Format }, vsserr.InvalidArg, `format "lvss-backup-archive"`},
		{"other version", func(m *ClusterManifest, _ map[string][]byte) { m.Version = 2 }, vsserr.InvalidArg, "version 2"},
		{"no stage", func(m *ClusterManifest, _ map[string][]byte) { m.Stage = "" }, vsserr.InvalidArg, `stage ""`},
		{"no time", func(m *ClusterManifest, _ map[string][]byte) { m.Time = time.Time{} }, vsserr.InvalidArg, "time is missing"},
		{"no set", func(m *ClusterManifest, _ map[string][]byte) { m.SnapshotSetID = uuid.Nil }, vsserr.InvalidArg, "snapshot_set_id is missing"},
		{"no hosts", func(_ *ClusterManifest, h map[string][]byte) { clear(h) }, vsserr.InvalidArg, "at least one host"},
		{"bad host name", func(_ *ClusterManifest, h map[string][]byte) { h["db/1"] = h["db1"] }, vsserr.InvalidArg, `host name "db/1"`},
		{"not an archive", func(_ *ClusterManifest, h map[string][]byte) { h["db1"] = []byte("hello") }, vsserr.InvalidArg,
			"hosts/db1.tar: not a tar archive"},
		{"another host's archive", func(_ *ClusterManifest, h map[string][]byte) { h["db1"] = otherHost.write(t) }, vsserr.InvalidArg,
			`the archive of host "db9"`},
		{"another set", func(_ *ClusterManifest, h map[string][]byte) { h["db1"] = otherSet.write(t) }, vsserr.InvalidArg,
			"not of the cluster set"},
		{"another stage", func(_ *ClusterManifest, h map[string][]byte) { h["db1"] = otherStage.write(t) }, vsserr.InvalidArg,
			`written at stage "snapshot"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, hosts := clusterSample(t)
			tc.edit(&m, hosts)
			var b bytes.Buffer
			err := WriteCluster(&b, m, hosts)
			if vsserr.Code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v\nwant %s and %q", err, tc.code, tc.msg)
			}
			if b.Len() != 0 {
				t.Errorf("WriteCluster wrote %d bytes before failing", b.Len())
			}
		})
	}
}

// TestClusterFile: WriteClusterFile replaces the file atomically, as
// WriteFile does (the archive is written twice: after the snapshots and
// after BackupComplete), and ReadAnyFile reads both kinds back.
func TestClusterFile(t *testing.T) {
	m, hosts := clusterSample(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "cluster.tar")
	if err := WriteClusterFile(path, m, hosts); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, writeCluster(t, m, hosts)) {
		t.Errorf("the file is not what WriteCluster writes")
	}
	a, c, err := ReadAnyFile(path)
	if err != nil || a != nil || c == nil || len(c.Hosts) != 2 {
		t.Fatalf("ReadAnyFile: %v %v %v", a, c, err)
	}
	old, _ := os.ReadFile(path)
	hosts["db1"] = []byte("not an archive")
	if err := WriteClusterFile(path, m, hosts); vsserr.Code(err) != vsserr.InvalidArg {
		t.Errorf("a refused archive: %v", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, old) {
		t.Errorf("a refused archive changed the file")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"cluster.tar"}) {
		t.Errorf("directory holds %v", names)
	}
	_, _, err = ReadAnyFile(filepath.Join(dir, "nothing.tar"))
	if vsserr.Code(err) != vsserr.ObjectNotFound || !strings.Contains(err.Error(), "nothing.tar: open: no such file") {
		t.Errorf("missing file: %v", err)
	}
	single := filepath.Join(dir, "single.tar")
	s := newSample(t)
	if err := WriteFile(single, s.m, s.bcd, s.wmds); err != nil {
		t.Fatal(err)
	}
	if a, c, err := ReadAnyFile(single); err != nil || a == nil || c != nil {
		t.Errorf("ReadAnyFile of a single archive: %v %v %v", a, c, err)
	}
}

func TestPartConsistency(t *testing.T) {
	for _, tc := range []struct {
		levels []string
		want   string
	}{
		{nil, "application"},
		{[]string{"application", "application"}, "application"},
		{[]string{"application", "crash", "application"}, "crash"},
		{[]string{"crash", "none"}, "none"},
		{[]string{"none", "crash"}, "none"},
		{[]string{"crash", "something-new", "none"}, "something-new"},
	} {
		m := &Manifest{}
		for _, l := range tc.levels {
			m.Snapshots = append(m.Snapshots, Snapshot{Consistency: l})
		}
		if got := PartConsistency(m); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.levels, got, tc.want)
		}
	}
}

// TestClusterFieldsDocumented keeps the "Cluster archives" section of
// docs/backup-archive.md in step with cluster.json.
func TestClusterFieldsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "backup-archive.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "## Cluster archives")
	if i < 0 {
		t.Fatal(`docs/backup-archive.md has no section "## Cluster archives"`)
	}
	section := doc[i:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	for _, k := range slices.Concat(clusterKeys, clusterHostKeys) {
		if !strings.Contains(section, "| `"+k+"` |") {
			t.Errorf("the Cluster archives section has no table row for `%s`", k)
		}
	}
	for _, s := range []string{ClusterFormat, "cluster.json", "hosts/<host>.tar"} {
		if !strings.Contains(section, s) {
			t.Errorf("the Cluster archives section does not mention %s", s)
		}
	}
}
