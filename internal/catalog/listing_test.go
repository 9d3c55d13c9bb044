package catalog

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Records round-trip through the binary encoding, times before 1970 and
// the zero time included; fields a newer lvssd adds are skipped; damage is
// an error, not a panic or a half-read record.
func TestRecordEncoding(t *testing.T) {
	full := Snapshot{ID: uuid.New(), SetID: uuid.New(), SnapshotsCount: 3, OriginalVolume: "/srv/data", DevicePath: "/srv/.s/x",
		ExposedName: "/mnt/x", ExposedPath: "/", ProviderID: uuid.New(), ProviderName: "btrfs", ProviderHandle: `{"h":1}`,
		Attributes: 0xffffffff, Context: -1, Created: base, OriginatingMachine: "a", ServiceMachine: "b",
		Consistency: "application", ConsistencyReason: "all writers thawed in time ✓", SessionID: uuid.New(), AutoRelease: true,
		ShareExposure: "/run/lvss/shares/x"}
	for _, s := range []Snapshot{
		full,
		{ID: uuid.New()}, // zero time, nil GUIDs, empty strings
		{ID: uuid.New(), Created: time.Date(1900, 1, 1, 0, 0, 0, 999_999_999, time.UTC), Context: int32(vss.CtxAppRollback)},
	} {
		data := encodeRecord(nil, &s)
		if data[0] == '{' {
			t.Fatalf("a record begins with '{': it would be read as JSON")
		}
		got, err := decodeRecord(data)
		if err != nil || !reflect.DeepEqual(got, s) {
			t.Errorf("round trip:\n got  %+v, %v\n want %+v", got, err, s)
		}
		if set, err := recordSetID(data); err != nil || set != s.SetID {
			t.Errorf("recordSetID = %v, %v; want %v", set, err, s.SetID)
		}
		// A newer lvssd's fields, of every wire type, are read past.
		more := protowire.AppendTag(append([]byte{}, data...), 90, protowire.BytesType)
		more = protowire.AppendString(more, "future")
		more = protowire.AppendTag(more, 91, protowire.VarintType)
		more = protowire.AppendVarint(more, 7)
		more = protowire.AppendTag(more, 92, protowire.Fixed64Type)
		more = protowire.AppendFixed64(more, 7)
		if got, err := decodeRecord(more); err != nil || !reflect.DeepEqual(got, s) {
			t.Errorf("with unknown fields: %+v, %v", got, err)
		}
		for cut := 1; cut < len(data); cut++ {
			if _, err := decodeRecord(data[:cut]); err == nil && cut < 18 {
				t.Errorf("a record cut at %d bytes decoded", cut)
			}
		}
	}
	// A schema-1 record (JSON) is still read.
	js, _ := json.Marshal(snapshotRecord(full))
	if got, err := decodeRecord(js); err != nil || !reflect.DeepEqual(got, full) {
		t.Errorf("JSON record: %+v, %v", got, err)
	}
	bad := protowire.AppendTag(nil, fID, protowire.BytesType)
	bad = protowire.AppendBytes(bad, []byte("short"))
	if _, err := decodeRecord(bad); !errors.Is(err, errRecord) {
		t.Errorf("a 5-byte GUID: %v", err)
	}
}

// makeSchema1 turns a catalog into what a schema-1 lvssd left: JSON
// records, no context index, no counts, schema version 1.
func makeSchema1(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		recs := tx.Bucket(bucketSnapshots)
		var keys, vals [][]byte
		if err := recs.ForEach(func(k, v []byte) error {
			s, err := decodeRecord(v)
			if err != nil {
				return err
			}
			js, err := json.Marshal(snapshotRecord(s))
			keys, vals = append(keys, append([]byte{}, k...)), append(vals, js)
			return err
		}); err != nil {
			return err
		}
		for i := range keys {
			if err := recs.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		for _, b := range [][]byte{bucketByContext, bucketVolumeCount} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint64(nil, 1))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A catalog a schema-1 lvssd wrote is migrated when it is opened: its
// records rewritten, the per-volume counts and the context index built,
// the listings unchanged; and it is not migrated twice.
func TestMigrateFromSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var all []Snapshot
	for i := range 30 {
		s := snap(uuid.New(), uuid.New(), []string{"/a", "/b", "/c/d"}[i%3], base.Add(time.Duration(i)*time.Minute))
		s.Context = []int32{int32(vss.CtxBackup), int32(vss.CtxClientAccessible), int32(vss.CtxAppRollback) | int32(vss.AttrDifferential)}[i%3]
		all = append(all, s)
	}
	if err := db.PutSnapshots(all...); err != nil {
		t.Fatal(err)
	}
	want, _ := db.ListSnapshots(Filter{})
	db.Close()
	makeSchema1(t, path)

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.ListSnapshots(Filter{}); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after migration: %d snapshots, %v", len(got), err)
	}
	if got, err := db.CountByVolume(); err != nil || !reflect.DeepEqual(got, map[string]int{"/a": 10, "/b": 10, "/c/d": 10}) {
		t.Errorf("counts after migration: %v, %v", got, err)
	}
	if n, _ := db.VolumeSnapshotCount("/c/d"); n != 10 {
		t.Errorf("VolumeSnapshotCount = %d", n)
	}
	got, err := db.ListSnapshots(Filter{ByContext: true, Context: int32(vss.CtxAppRollback)})
	if err != nil || len(got) != 10 || got[0].Context != int32(vss.CtxAppRollback)|int32(vss.AttrDifferential) {
		t.Errorf("by context after migration: %d, %v", len(got), err)
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySchema); binary.BigEndian.Uint64(v) != schemaVersion {
			t.Errorf("schema %d after migration", binary.BigEndian.Uint64(v))
		}
		return tx.Bucket(bucketSnapshots).ForEach(func(k, v []byte) error {
			if v[0] == '{' {
				t.Errorf("record %x is still JSON", k)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A grouped listing comes set by set: sets by their oldest snapshot, each
// whole even when another set's snapshots fall between its own in time, a
// set's snapshots by time, then volume; read in pages of any size, or
// from after any snapshot, it is the same listing.
func TestListingGroupsSets(t *testing.T) {
	db := openTest(t)
	setA, setB, setC := uuid.New(), uuid.New(), uuid.New()
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	lone := snap(uuid.Nil, uuid.Nil, "/x", at(0))
	a1 := snap(setA, uuid.Nil, "/z", at(1))
	a2 := snap(setA, uuid.Nil, "/a", at(5)) // after all of B
	b1 := snap(setB, uuid.Nil, "/b", at(2))
	b2 := snap(setB, uuid.Nil, "/a", at(3))
	c2 := snap(setC, uuid.Nil, "/z", at(6)) // one instant: by volume
	c1 := snap(setC, uuid.Nil, "/m", at(6))
	late := snap(uuid.Nil, uuid.Nil, "/x", at(7))
	if err := db.PutSnapshots(c2, late, b2, a2, lone, c1, b1, a1); err != nil {
		t.Fatal(err)
	}
	want := []Snapshot{lone, a1, a2, b1, b2, c1, c2, late}
	read := func(l *Listing, page int) []Snapshot {
		t.Helper()
		var out []Snapshot
		for !l.Done() {
			got, err := l.Next(page)
			if err != nil {
				t.Fatal(err)
			}
			if page > 0 && len(got) > page {
				t.Fatalf("page of %d held %d", page, len(got))
			}
			out = append(out, got...)
		}
		return out
	}
	for page := 0; page <= len(want)+1; page++ {
		if got := read(db.List(Filter{}).Grouped(), page); !reflect.DeepEqual(ids(got), ids(want)) {
			t.Errorf("pages of %d:\n got  %v\n want %v", page, ids(got), ids(want))
		}
	}
	for i, s := range want {
		l := db.List(Filter{}).Grouped()
		if err := l.After(s.ID); err != nil {
			t.Fatal(err)
		}
		if got := read(l, 2); !reflect.DeepEqual(ids(got), ids(want[i+1:])) {
			t.Errorf("after #%d:\n got  %v\n want %v", i, ids(got), ids(want[i+1:]))
		}
	}
	// One set: by time, then volume; after one of its snapshots, or of
	// another set's, by where it falls.
	if got := read(db.List(Filter{SetID: setC}).Grouped(), 1); !reflect.DeepEqual(ids(got), ids([]Snapshot{c1, c2})) {
		t.Errorf("set C: %v", ids(got))
	}
	l := db.List(Filter{SetID: setA}).Grouped()
	if err := l.After(b1.ID); err != nil {
		t.Fatal(err)
	}
	if got := read(l, 1); !reflect.DeepEqual(ids(got), ids([]Snapshot{a2})) {
		t.Errorf("set A after B's first: %v", ids(got))
	}
	// Ungrouped, the order is time and ID.
	if got := read(db.List(Filter{}), 3); !reflect.DeepEqual(ids(got), ids([]Snapshot{lone, a1, b1, b2, a2, c1, c2, late})) &&
		!reflect.DeepEqual(ids(got), ids([]Snapshot{lone, a1, b1, b2, a2, c2, c1, late})) {
		t.Errorf("by time: %v", ids(got))
	}
	// A volume's listing, after a snapshot of another volume: by time.
	l = db.List(Filter{Volume: "/a"})
	if err := l.After(b1.ID); err != nil {
		t.Fatal(err)
	}
	if got := read(l, 0); !reflect.DeepEqual(ids(got), ids([]Snapshot{b2, a2})) {
		t.Errorf("/a after b1: %v", ids(got))
	}
	if err := db.List(Filter{}).Grouped().After(uuid.New()); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Errorf("after an unknown snapshot: %v", err)
	}
}

// Between two pages the catalog may change: a snapshot that exists
// throughout is listed exactly once, even when the set it belongs to loses
// its oldest snapshot meanwhile.
func TestListingAcrossChanges(t *testing.T) {
	db := openTest(t)
	var all []Snapshot
	for i := range 20 {
		set := uuid.New()
		for v := range 3 {
			all = append(all, snap(set, uuid.Nil, []string{"/a", "/b", "/c"}[v], base.Add(time.Duration(i*3+v)*time.Second)))
		}
	}
	if err := db.PutSnapshots(all...); err != nil {
		t.Fatal(err)
	}
	l := db.List(Filter{}).Grouped()
	first, err := l.Next(4) // set 0 whole, and set 1's lead
	if err != nil || len(first) != 4 {
		t.Fatalf("first page: %d, %v", len(first), err)
	}
	// Set 1's lead, already listed, goes; so do a snapshot of set 5 and
	// set 9's lead, not listed yet; a new set comes last.
	for _, id := range []uuid.UUID{all[3].ID, all[16].ID, all[27].ID} {
		if err := db.DeleteSnapshot(id); err != nil {
			t.Fatal(err)
		}
	}
	added := snap(uuid.New(), uuid.Nil, "/a", base.Add(time.Hour))
	if err := db.PutSnapshots(added); err != nil {
		t.Fatal(err)
	}
	seen := map[uuid.UUID]int{}
	for _, s := range first {
		seen[s.ID]++
	}
	for !l.Done() {
		page, err := l.Next(5)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page {
			seen[s.ID]++
		}
	}
	for i, s := range all {
		gone := i == 16 || i == 27
		if n := seen[s.ID]; !gone && n != 1 || gone && n != 0 {
			t.Errorf("snapshot %d (set %d) listed %d times", i, i/3, n)
		}
	}
	if seen[added.ID] != 1 {
		t.Errorf("a set added meanwhile, after where the listing was, is not listed")
	}
}

// Query's listing by context: contexts that differ only in
// requester-settable attributes are one context.
func TestListingByContext(t *testing.T) {
	db := openTest(t)
	plain := snap(uuid.New(), uuid.Nil, "/a", base)
	plain.Context = int32(vss.CtxAppRollback)
	extra := snap(uuid.New(), uuid.Nil, "/a", base.Add(time.Second))
	extra.Context = int32(vss.CtxAppRollback) | int32(vss.AttrDifferential)
	other := snap(uuid.New(), uuid.Nil, "/a", base.Add(2*time.Second))
	other.Context = int32(vss.CtxClientAccessible)
	if err := db.PutSnapshots(plain, extra, other); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ctx  vss.Context
		want []Snapshot
	}{
		{vss.CtxAppRollback, []Snapshot{plain, extra}},
		{vss.CtxAppRollback | vss.Context(vss.AttrPlex), []Snapshot{plain, extra}},
		{vss.CtxClientAccessible, []Snapshot{other}},
		{vss.CtxBackup, nil},
	} {
		got, err := db.ListSnapshots(Filter{ByContext: true, Context: int32(c.ctx)})
		if err != nil || !reflect.DeepEqual(ids(got), ids(c.want)) {
			t.Errorf("%s: %v, %v; want %v", c.ctx, ids(got), err, ids(c.want))
		}
	}
}

// A schema-1 record that cannot be read stops the migration, and Open says
// the catalog is damaged (lvssd's message then says how to recover),
// leaving the file as it was.
func TestMigrationOfADamagedRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s := snap(uuid.New(), uuid.Nil, "/a", base)
	if err := db.PutSnapshots(s); err != nil {
		t.Fatal(err)
	}
	db.Close()
	makeSchema1(t, path)
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSnapshots).Put(s.ID[:], []byte(`{"id": 7`)) }); err != nil {
		t.Fatal(err)
	}
	b.Close()
	_, err = Open(path)
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "migrating to schema version 2") {
		t.Fatalf("Open: %v (%T), want a CorruptError", err, err)
	}
	b, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySchema); binary.BigEndian.Uint64(v) != 1 {
			t.Errorf("schema %d after a failed migration", binary.BigEndian.Uint64(v))
		}
		return nil
	})
}
