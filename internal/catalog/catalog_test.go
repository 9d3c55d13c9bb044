package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/lvss/lvss/vsserr"
)

func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := open(filepath.Join(t.TempDir(), "catalog.db"), &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var base = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

func snap(set, session uuid.UUID, volume string, created time.Time) Snapshot {
	return Snapshot{
		ID:             uuid.New(),
		SetID:          set,
		SessionID:      session,
		OriginalVolume: volume,
		Created:        created,
	}
}

func ids(snaps []Snapshot) []uuid.UUID {
	out := make([]uuid.UUID, len(snaps))
	for i, s := range snaps {
		out[i] = s.ID
	}
	return out
}

// indexSizes counts the entries of every index bucket, to catch entries
// that outlive the record they were made for.
func indexSizes(t *testing.T, db *DB) map[string]int {
	t.Helper()
	n := map[string]int{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSnapshots, bucketBySet, bucketByVolume, bucketBySession, bucketByTime, bucketByContext, bucketVolumeCount} {
			n[string(b)] = tx.Bucket(b).Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOpenCreatesPrivateDirAndFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "lvss", "catalog.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for p, want := range map[string]os.FileMode{filepath.Dir(path): 0o700 | os.ModeDir, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestOpenTwiceFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	start := time.Now()
	db2, err := Open(path)
	if err == nil {
		db2.Close()
		t.Fatal("second Open succeeded")
	}
	if want := "catalog " + path + " is locked by another lvssd"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}

	// Once the first holder closes, the catalog opens again.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db3, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db3.Close()
}

func TestCloseIsIdempotent(t *testing.T) {
	db := openTest(t)
	for i := 0; i < 3; i++ {
		if err := db.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint64(nil, schemaVersion+1))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(path); err == nil {
		db.Close()
		t.Fatal("opened a catalog with a newer schema")
	} else if !strings.Contains(err.Error(), fmt.Sprintf("schema version %d", schemaVersion+1)) {
		t.Errorf("unexpected error: %v", err)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	db := openTest(t)
	in := Snapshot{
		ID:                 uuid.New(),
		SetID:              uuid.New(),
		SnapshotsCount:     2,
		OriginalVolume:     "/srv/data/",
		DevicePath:         "/var/lib/lvss/snapshots/x",
		ExposedName:        "/mnt/snap",
		ExposedPath:        "/",
		ProviderID:         uuid.New(),
		ProviderName:       "btrfs",
		ProviderHandle:     `{"subvol":"/srv/.snap/x"}`,
		Attributes:         0x00420000,
		Context:            -1,
		Created:            base.In(time.FixedZone("CET", 3600)),
		OriginatingMachine: "host-a",
		ServiceMachine:     "host-b",
		Consistency:        "application",
		ConsistencyReason:  "all writers thawed in time",
		SessionID:          uuid.New(),
		AutoRelease:        true,
		ShareExposure:      "/run/lvss/shares/x",
	}
	if err := db.PutSnapshots(in); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetSnapshot(in.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.OriginalVolume = "/srv/data"
	want.Created = base
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got  %+v\n want %+v", got, want)
	}
	if got.Created.Location() != time.UTC {
		t.Errorf("Created is in %v, want UTC", got.Created.Location())
	}
}

func TestUnknownFieldsAreIgnored(t *testing.T) {
	db := openTest(t)
	id := uuid.New()
	// A record written by a newer lvssd that knows more fields.
	rec := fmt.Sprintf(`{"id":%q,"set_id":%q,"provider_id":%q,"session_id":%q,"created":"2025-03-14T15:09:26Z","original_volume":"/a","future_field":{"x":1}}`,
		id, uuid.Nil, uuid.Nil, uuid.Nil)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).Put(id[:], []byte(rec))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.GetSnapshot(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.OriginalVolume != "/a" {
		t.Errorf("OriginalVolume = %q", got.OriginalVolume)
	}
}

func TestNotFound(t *testing.T) {
	db := openTest(t)
	id := uuid.New()
	if _, err := db.GetSnapshot(id); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Errorf("GetSnapshot: %v, want VSS_E_OBJECT_NOT_FOUND", err)
	}
	if err := db.DeleteSnapshot(id); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Errorf("DeleteSnapshot: %v, want VSS_E_OBJECT_NOT_FOUND", err)
	}
	if _, err := db.GetDocument(id, "bcd"); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Errorf("GetDocument: %v, want VSS_E_OBJECT_NOT_FOUND", err)
	}
	if err := db.PutDocument(id, "bcd", []byte("<x/>")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetDocument(id, "wmd/1"); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Errorf("GetDocument of another name: %v, want VSS_E_OBJECT_NOT_FOUND", err)
	}
}

func TestPutSnapshotsIsAtomic(t *testing.T) {
	db := openTest(t)
	good := snap(uuid.New(), uuid.Nil, "/a", base)
	err := db.PutSnapshots(good, Snapshot{})
	if !errors.Is(err, vsserr.InvalidArg) {
		t.Fatalf("PutSnapshots with a zero ID: %v, want E_INVALIDARG", err)
	}
	if _, err := db.GetSnapshot(good.ID); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Errorf("half of a refused set was stored: %v", err)
	}
}

func TestListSnapshots(t *testing.T) {
	db := openTest(t)
	setA, setB := uuid.New(), uuid.New()
	sess1, sess2 := uuid.New(), uuid.New()

	// Two snapshots share a creation time so the ID tie-break is exercised.
	a1 := snap(setA, sess1, "/data", base.Add(2*time.Second))
	a2 := snap(setA, sess1, "/home", base.Add(2*time.Second))
	if a2.ID.String() < a1.ID.String() {
		a1.ID, a2.ID = a2.ID, a1.ID
	}
	a1.AutoRelease = true
	b1 := snap(setB, sess2, "/data2", base.Add(-time.Hour))
	b2 := snap(setB, sess2, "/data", base.Add(time.Hour))
	old := snap(uuid.New(), uuid.Nil, "", time.Time{})
	// Insert out of order: listings must not depend on insertion order.
	if err := db.PutSnapshots(b2, a2, old, a1, b1); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		f    Filter
		want []Snapshot
	}{
		{"all", Filter{}, []Snapshot{old, b1, a1, a2, b2}},
		{"set", Filter{SetID: setA}, []Snapshot{a1, a2}},
		{"other set", Filter{SetID: setB}, []Snapshot{b1, b2}},
		{"unknown set", Filter{SetID: uuid.New()}, nil},
		{"volume", Filter{Volume: "/data"}, []Snapshot{a1, b2}},
		{"volume uncleaned", Filter{Volume: "/data/./"}, []Snapshot{a1, b2}},
		{"volume is not a prefix", Filter{Volume: "/dat"}, nil},
		{"session", Filter{SessionID: sess2}, []Snapshot{b1, b2}},
		{"auto-release", Filter{AutoReleaseOnly: true}, []Snapshot{a1}},
		{"session auto-release", Filter{SessionID: sess1, AutoReleaseOnly: true}, []Snapshot{a1}},
		{"set and volume", Filter{SetID: setB, Volume: "/data"}, []Snapshot{b2}},
		{"set and foreign session", Filter{SetID: setA, SessionID: sess2}, nil},
		{"session and volume", Filter{SessionID: sess1, Volume: "/home"}, []Snapshot{a2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.ListSnapshots(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(got), ids(tc.want)) {
				t.Errorf("got %v\nwant %v", ids(got), ids(tc.want))
			}
		})
	}
}

// CountByVolume agrees with the listings: every volume once, "/data" not
// confused with "/data2", snapshots without a volume left out, deletions
// and moves to another volume followed.
func TestCountByVolume(t *testing.T) {
	db := openTest(t)
	if got, err := db.CountByVolume(); err != nil || len(got) != 0 {
		t.Fatalf("empty catalog: %v, %v", got, err)
	}
	set := uuid.New()
	a := snap(set, uuid.Nil, "/data", base)
	b := snap(set, uuid.Nil, "/data", base.Add(time.Second))
	c := snap(set, uuid.Nil, "/data2", base)
	none := snap(set, uuid.Nil, "", base)
	if err := db.PutSnapshots(a, b, c, none); err != nil {
		t.Fatal(err)
	}
	check := func(want map[string]int) {
		t.Helper()
		got, err := db.CountByVolume()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("CountByVolume = %v, want %v", got, want)
		}
		for v, n := range want {
			if l, err := db.ListSnapshots(Filter{Volume: v}); err != nil || len(l) != n {
				t.Errorf("ListSnapshots(%s) = %d snapshots (%v), CountByVolume says %d", v, len(l), err, n)
			}
		}
		// The per-volume cap's count, for each volume and for one with none.
		for _, v := range []string{"/data", "/data2", "/home", "/data/", "/nothing"} {
			n, err := db.VolumeSnapshotCount(v)
			if err != nil || n != want[filepath.Clean(v)] {
				t.Errorf("VolumeSnapshotCount(%s) = %d, %v; want %d", v, n, err, want[filepath.Clean(v)])
			}
		}
	}
	check(map[string]int{"/data": 2, "/data2": 1})
	if err := db.DeleteSnapshot(a.ID); err != nil {
		t.Fatal(err)
	}
	c.OriginalVolume = "/home"
	if err := db.PutSnapshots(c); err != nil {
		t.Fatal(err)
	}
	check(map[string]int{"/data": 1, "/home": 1})
	// Writing the same record again counts it once; RecordSet counts too.
	if err := db.PutSnapshots(b, b); err != nil {
		t.Fatal(err)
	}
	d := snap(uuid.New(), uuid.Nil, "/home", base.Add(time.Hour))
	if err := db.RecordSet(d.SetID, []Snapshot{d}, nil); err != nil {
		t.Fatal(err)
	}
	check(map[string]int{"/data": 1, "/home": 2})
}

func TestIndexesFollowUpdates(t *testing.T) {
	db := openTest(t)
	set1, set2 := uuid.New(), uuid.New()
	sess1, sess2 := uuid.New(), uuid.New()
	s := snap(set1, sess1, "/old", base)
	if err := db.PutSnapshots(s); err != nil {
		t.Fatal(err)
	}

	s.SetID, s.SessionID, s.OriginalVolume, s.Created = set2, sess2, "/new", base.Add(time.Minute)
	s.ExposedName = "/mnt/x"
	if err := db.PutSnapshots(s); err != nil {
		t.Fatal(err)
	}

	for _, f := range []Filter{{SetID: set1}, {SessionID: sess1}, {Volume: "/old"}} {
		if got, err := db.ListSnapshots(f); err != nil || len(got) != 0 {
			t.Errorf("%+v: stale index entries: %v, %v", f, ids(got), err)
		}
	}
	for _, f := range []Filter{{SetID: set2}, {SessionID: sess2}, {Volume: "/new"}, {}} {
		got, err := db.ListSnapshots(f)
		if err != nil || len(got) != 1 || got[0].ExposedName != "/mnt/x" || !got[0].Created.Equal(s.Created) {
			t.Errorf("%+v: got %+v, %v", f, got, err)
		}
	}
	want := map[string]int{"snapshots": 1, "idx_set": 1, "idx_session": 1, "idx_volume": 1, "idx_created": 1, "idx_context": 1, "volume_count": 1}
	if got := indexSizes(t, db); !reflect.DeepEqual(got, want) {
		t.Errorf("bucket sizes after update = %v, want %v", got, want)
	}

	// Clearing a field drops its index entry instead of indexing "".
	s.OriginalVolume, s.SessionID = "", uuid.Nil
	if err := db.PutSnapshots(s); err != nil {
		t.Fatal(err)
	}
	want = map[string]int{"snapshots": 1, "idx_set": 1, "idx_session": 0, "idx_volume": 0, "idx_created": 1, "idx_context": 1, "volume_count": 0}
	if got := indexSizes(t, db); !reflect.DeepEqual(got, want) {
		t.Errorf("bucket sizes after clearing = %v, want %v", got, want)
	}

	if err := db.DeleteSnapshot(s.ID); err != nil {
		t.Fatal(err)
	}
	want = map[string]int{"snapshots": 0, "idx_set": 0, "idx_session": 0, "idx_volume": 0, "idx_created": 0, "idx_context": 0, "volume_count": 0}
	if got := indexSizes(t, db); !reflect.DeepEqual(got, want) {
		t.Errorf("bucket sizes after delete = %v, want %v", got, want)
	}
	if got, err := db.ListSnapshots(Filter{SetID: set2}); err != nil || len(got) != 0 {
		t.Errorf("deleted snapshot still listed: %v, %v", ids(got), err)
	}
}

func TestSameIDTwiceInOneCall(t *testing.T) {
	db := openTest(t)
	s := snap(uuid.New(), uuid.Nil, "/a", base)
	s2 := s
	s2.OriginalVolume = "/b"
	if err := db.PutSnapshots(s, s2); err != nil {
		t.Fatal(err)
	}
	if got := indexSizes(t, db); got["idx_volume"] != 1 || got["snapshots"] != 1 {
		t.Errorf("bucket sizes = %v", got)
	}
	if got, _ := db.GetSnapshot(s.ID); got.OriginalVolume != "/b" {
		t.Errorf("last write did not win: %q", got.OriginalVolume)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s := snap(uuid.New(), uuid.New(), "/data", base)
	if err := db.PutSnapshots(s); err != nil {
		t.Fatal(err)
	}
	if err := db.PutDocument(s.SetID, "bcd", []byte("<BackupComponents/>")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendEvent(Event{Message: "created"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.ListSnapshots(Filter{Volume: "/data"}); err != nil || len(got) != 1 || got[0].ID != s.ID {
		t.Errorf("snapshot after reopen: %v, %v", got, err)
	}
	if doc, err := db.GetDocument(s.SetID, "bcd"); err != nil || string(doc) != "<BackupComponents/>" {
		t.Errorf("document after reopen: %q, %v", doc, err)
	}
	if ev, err := db.Events(0, 0); err != nil || len(ev) != 1 || ev[0].Message != "created" {
		t.Errorf("events after reopen: %v, %v", ev, err)
	}
	// Sequence numbers continue rather than restart.
	if seq, err := db.AppendEvent(Event{}); err != nil || seq != 2 {
		t.Errorf("seq after reopen = %d, %v, want 2", seq, err)
	}
}

func TestDocuments(t *testing.T) {
	db := openTest(t)
	set, other := uuid.New(), uuid.New()
	buf := []byte("<BackupComponents v1/>")
	for name, data := range map[string][]byte{"bcd": buf, "wmd/b": []byte("<b/>"), "wmd/a": []byte("<a/>")} {
		if err := db.PutDocument(set, name, data); err != nil {
			t.Fatal(err)
		}
	}
	copy(buf, "XXXX") // the catalog must not alias the caller's buffer
	if err := db.PutDocument(other, "bcd", []byte("<other/>")); err != nil {
		t.Fatal(err)
	}
	if err := db.PutDocument(set, "wmd/a", []byte("<a v2/>")); err != nil {
		t.Fatal(err)
	}

	names, err := db.ListDocuments(set)
	if err != nil || !reflect.DeepEqual(names, []string{"bcd", "wmd/a", "wmd/b"}) {
		t.Errorf("ListDocuments = %q, %v", names, err)
	}
	for name, want := range map[string]string{"bcd": "<BackupComponents v1/>", "wmd/a": "<a v2/>"} {
		if got, err := db.GetDocument(set, name); err != nil || string(got) != want {
			t.Errorf("GetDocument(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if err := db.PutDocument(set, "", nil); !errors.Is(err, vsserr.InvalidArg) {
		t.Errorf("PutDocument without a name: %v", err)
	}

	if err := db.DeleteDocuments(set); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteDocuments(set); err != nil {
		t.Errorf("second DeleteDocuments: %v", err)
	}
	if names, err := db.ListDocuments(set); err != nil || len(names) != 0 {
		t.Errorf("after delete: %q, %v", names, err)
	}
	if _, err := db.GetDocument(set, "bcd"); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Errorf("GetDocument after delete: %v", err)
	}
	if got, err := db.GetDocument(other, "bcd"); err != nil || string(got) != "<other/>" {
		t.Errorf("another set's document was touched: %q, %v", got, err)
	}
}

// A set's documents go with its last snapshot, however it is deleted, and
// are not stored again for a set that is gone: a catalog kept bounded by
// deleting old snapshots must not grow by their documents.
func TestDocumentsGoWithTheSetsLastSnapshot(t *testing.T) {
	db := openTest(t)
	set, other := uuid.New(), uuid.New()
	a, b := snap(set, uuid.Nil, "/a", base), snap(set, uuid.Nil, "/b", base)
	o := snap(other, uuid.Nil, "/a", base)
	docs := map[string][]byte{"bcd": []byte("<x/>"), "wmd/1": []byte("<y/>")}
	if err := db.RecordSet(set, []Snapshot{a, b}, docs); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordSet(other, []Snapshot{o}, docs); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSnapshot(a.ID); err != nil {
		t.Fatal(err)
	}
	if names, _ := db.ListDocuments(set); len(names) != 2 {
		t.Fatalf("documents after deleting one of two snapshots: %q", names)
	}
	// Saved again after BackupComplete while the set still has a snapshot.
	if err := db.RecordSet(set, nil, map[string][]byte{"bcd": []byte("<x v2/>")}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.GetDocument(set, "bcd"); err != nil || string(got) != "<x v2/>" {
		t.Fatalf("bcd saved again: %q, %v", got, err)
	}
	if err := db.DeleteSnapshot(b.ID); err != nil {
		t.Fatal(err)
	}
	if names, _ := db.ListDocuments(set); len(names) != 0 {
		t.Errorf("documents of a set whose snapshots are all deleted: %q", names)
	}
	if names, _ := db.ListDocuments(other); len(names) != 2 {
		t.Errorf("another set's documents were touched: %q", names)
	}
	if err := db.RecordSet(set, nil, docs); err != nil {
		t.Fatal(err)
	}
	if names, _ := db.ListDocuments(set); len(names) != 0 {
		t.Errorf("documents stored again for a set that is gone: %q", names)
	}
	if n := indexSizes(t, db)[string(bucketBySet)]; n != 1 {
		t.Errorf("set index holds %d entries, want 1 (the other set's)", n)
	}
}

func TestEvents(t *testing.T) {
	db := openTest(t)
	session := uuid.New()
	in := Event{
		Time:      base,
		Level:     LevelError,
		Code:      vsserr.Unexpected,
		SessionID: session,
		Message:   "provider returned garbage",
		Fields:    map[string]string{"provider": "btrfs"},
	}
	seq, err := db.AppendEvent(in)
	if err != nil || seq != 1 {
		t.Fatalf("AppendEvent = %d, %v", seq, err)
	}
	for i := 2; i <= 5; i++ {
		seq, err := db.AppendEvent(Event{Message: fmt.Sprint("event ", i)})
		if err != nil || seq != uint64(i) {
			t.Fatalf("AppendEvent #%d = %d, %v", i, seq, err)
		}
	}
	if _, err := db.AppendEvent(Event{Level: "debug"}); !errors.Is(err, vsserr.InvalidArg) {
		t.Errorf("AppendEvent with a bad level: %v", err)
	}

	all, err := db.Events(0, 0)
	if err != nil || len(all) != 5 {
		t.Fatalf("Events(0, 0) = %d events, %v", len(all), err)
	}
	in.Seq = 1
	if !reflect.DeepEqual(all[0], in) {
		t.Errorf("round trip:\n got  %+v\n want %+v", all[0], in)
	}
	if all[1].Level != LevelInfo || all[1].Time.IsZero() {
		t.Errorf("defaults not applied: %+v", all[1])
	}

	seqs := func(ev []Event) []uint64 {
		var s []uint64
		for _, e := range ev {
			s = append(s, e.Seq)
		}
		return s
	}
	pages := []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 2, []uint64{1, 2}},
		{2, 2, []uint64{3, 4}},
		{4, 2, []uint64{5}},
		{5, 2, nil},
		{3, -1, []uint64{4, 5}},
		{1<<64 - 1, 0, nil},
	}
	for _, p := range pages {
		got, err := db.Events(p.after, p.limit)
		if err != nil || !reflect.DeepEqual(seqs(got), p.want) {
			t.Errorf("Events(%d, %d) = %v, %v; want %v", p.after, p.limit, seqs(got), err, p.want)
		}
	}

	if err := db.PruneEvents(10); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Events(0, 0); len(got) != 5 {
		t.Errorf("PruneEvents(10) left %v", seqs(got))
	}
	if err := db.PruneEvents(2); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Events(0, 0); !reflect.DeepEqual(seqs(got), []uint64{4, 5}) {
		t.Errorf("PruneEvents(2) left %v", seqs(got))
	}
	if err := db.PruneEvents(0); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Events(0, 0); len(got) != 0 {
		t.Errorf("PruneEvents(0) left %v", seqs(got))
	}
	if err := db.PruneEvents(-1); !errors.Is(err, vsserr.InvalidArg) {
		t.Errorf("PruneEvents(-1): %v", err)
	}
	// Pruning never lets a sequence number be handed out twice.
	if seq, err := db.AppendEvent(Event{}); err != nil || seq != 6 {
		t.Errorf("seq after prune = %d, %v, want 6", seq, err)
	}
}

// BenchmarkListSnapshotsBySet lists one three-volume set out of a catalog of
// 10,002 snapshots; the cost should not grow with the catalog.
func BenchmarkListSnapshotsBySet(b *testing.B) {
	db := openTest(b)
	const sets, perSet = 3334, 3
	var target uuid.UUID
	snaps := make([]Snapshot, 0, sets*perSet)
	for i := 0; i < sets; i++ {
		set, session := uuid.New(), uuid.New()
		if i == sets/2 {
			target = set
		}
		for v := 0; v < perSet; v++ {
			snaps = append(snaps, snap(set, session, fmt.Sprintf("/vol%d", v), base.Add(time.Duration(i)*time.Minute)))
		}
	}
	if err := db.PutSnapshots(snaps...); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		got, err := db.ListSnapshots(Filter{SetID: target})
		if err != nil || len(got) != perSet {
			b.Fatalf("got %d snapshots, %v", len(got), err)
		}
	}
}

// BenchmarkCountByVolume counts a catalog of 10,002 snapshots on 3
// volumes, what every metrics scrape does: it walks index keys only, so
// it stays a small fraction of a scrape even at that size.
func BenchmarkCountByVolume(b *testing.B) {
	db := openTest(b)
	const sets, perSet = 3334, 3
	snaps := make([]Snapshot, 0, sets*perSet)
	for i := 0; i < sets; i++ {
		set, session := uuid.New(), uuid.New()
		for v := 0; v < perSet; v++ {
			snaps = append(snaps, snap(set, session, fmt.Sprintf("/vol%d", v), base.Add(time.Duration(i)*time.Minute)))
		}
	}
	if err := db.PutSnapshots(snaps...); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		got, err := db.CountByVolume()
		if err != nil || len(got) != perSet || got["/vol0"] != sets {
			b.Fatalf("got %v, %v", got, err)
		}
	}
}

func TestRecordSetAndAppendEventsAreOneTransaction(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	set := uuid.New()
	snaps := []Snapshot{{ID: uuid.New(), SetID: set, OriginalVolume: "/a"}, {ID: uuid.New(), SetID: set, OriginalVolume: "/b"}}
	if err := db.RecordSet(set, snaps, map[string][]byte{"bcd": []byte("<x/>"), "wmd/1": []byte("<y/>")}); err != nil {
		t.Fatal(err)
	}
	got, _ := db.ListSnapshots(Filter{SetID: set})
	names, _ := db.ListDocuments(set)
	if len(got) != 2 || len(names) != 2 {
		t.Fatalf("snapshots %d, documents %v", len(got), names)
	}
	// All or nothing: a bad snapshot stores neither snapshots nor documents.
	other := uuid.New()
	err = db.RecordSet(other, []Snapshot{{ID: uuid.New(), SetID: other}, {}}, map[string][]byte{"bcd": []byte("x")})
	if !errors.Is(err, vsserr.InvalidArg) {
		t.Fatalf("bad snapshot: %v", err)
	}
	if names, _ := db.ListDocuments(other); len(names) != 0 {
		t.Fatalf("documents stored for a refused set: %v", names)
	}
	if err := db.AppendEvents(Event{Message: "a"}, Event{Message: "b", Level: LevelWarn}); err != nil {
		t.Fatal(err)
	}
	evs, _ := db.Events(0, 0)
	if len(evs) != 2 || evs[0].Message != "a" || evs[1].Seq != evs[0].Seq+1 {
		t.Fatalf("events %+v", evs)
	}
	if err := db.AppendEvents(Event{Message: "c"}, Event{Level: "loud"}); !errors.Is(err, vsserr.InvalidArg) {
		t.Fatalf("bad level: %v", err)
	}
	if evs, _ := db.Events(0, 0); len(evs) != 2 {
		t.Fatalf("a refused batch stored events: %d", len(evs))
	}
}

// A share entry keeps its share name and private directory, and closes
// with the record of the exposure.
func TestJournalShare(t *testing.T) {
	db := openTest(t)
	id := uuid.New()
	e := JournalEntry{Kind: JournalShare, ID: id, SessionID: uuid.New(), Path: "/run/lvss/shares/" + id.String(), Share: "monday",
		Step: "share", Started: base}
	if err := db.PutJournal(e); err != nil {
		t.Fatal(err)
	}
	got, err := db.Journal()
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], e) {
		t.Fatalf("Journal = %+v, %v; want %+v", got, err, e)
	}
	if err := db.PutSnapshotsClosing(JournalShare, id, Snapshot{ID: id, ExposedName: "monday"}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Journal(); err != nil || len(got) != 0 {
		t.Fatalf("the entry stayed after its record: %+v, %v", got, err)
	}
}

// Every call that adds, replaces or removes a snapshot record tells the
// OnSnapshotsChanged hook once it has committed, and nothing else does:
// documents, journal entries, events, a deletion of nothing, a refused
// call. lvssd's previous-versions snapdirs rely on it (docs/decisions.md
// L55).
func TestOnSnapshotsChanged(t *testing.T) {
	db := openTest(t)
	n := 0
	db.OnSnapshotsChanged(func() {
		n++
		// The hook may read the catalog: bbolt's locks are released.
		if _, err := db.ListSnapshots(Filter{}); err != nil {
			t.Errorf("reading the catalog from the hook: %v", err)
		}
	})
	set, session := uuid.New(), uuid.New()
	a, b := snap(set, session, "/srv", base), snap(set, session, "/home", base)
	steps := []struct {
		what string
		do   func() error
		want int // calls of the hook it makes
	}{
		{"RecordSet of a set", func() error {
			return db.RecordSet(set, []Snapshot{a, b}, map[string][]byte{"bcd": []byte("<x/>")})
		}, 1},
		{"RecordSet of documents only", func() error { return db.RecordSet(set, nil, map[string][]byte{"bcd": []byte("<y/>")}) }, 0},
		{"PutSnapshots (unexpose)", func() error { return db.PutSnapshots(a) }, 1},
		{"PutSnapshotsClosing (expose)", func() error {
			if err := db.PutJournal(JournalEntry{Kind: JournalExpose, ID: a.ID}); err != nil {
				return err
			}
			return db.PutSnapshotsClosing(JournalExpose, a.ID, a)
		}, 1},
		{"PutSnapshots refused (no ID)", func() error {
			if err := db.PutSnapshots(Snapshot{}); err == nil {
				return errors.New("a snapshot without an ID was accepted")
			}
			return nil
		}, 0},
		{"DeleteSnapshot", func() error { return db.DeleteSnapshot(a.ID) }, 1},
		{"DeleteSnapshot of nothing", func() error {
			if err := db.DeleteSnapshot(a.ID); vsserr.Code(err) != vsserr.ObjectNotFound {
				return fmt.Errorf("deleting a deleted snapshot: %v", err)
			}
			return nil
		}, 0},
		{"an event", func() error { _, err := db.AppendEvent(Event{Time: base, Level: LevelInfo, Message: "x"}); return err }, 0},
		{"DeleteSnapshot of the last of the set", func() error { return db.DeleteSnapshot(b.ID) }, 1},
	}
	for _, s := range steps {
		before := n
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		if got := n - before; got != s.want {
			t.Errorf("%s: the hook was called %d times, want %d", s.what, got, s.want)
		}
	}
	db.OnSnapshotsChanged(nil)
	if err := db.PutSnapshots(snap(set, session, "/srv", base)); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("the hook was called after it was removed: %d calls", n)
	}
}
