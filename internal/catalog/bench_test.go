package catalog

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The catalog's hot paths at the sizes issue 14 names: a year of hourly
// snapshots of one volume is about 10,000. Each benchmark runs with 0 and
// with 10,000 snapshots present so that growth shows as a ratio. fsync is
// off (openTest): it costs the same whatever the catalog holds.

var benchSizes = []int{0, 10_000}

// fillVolume records n one-snapshot sets of volume, an hour apart, as n
// creations would, with a BCD each; it returns the newest creation time.
func fillVolume(b *testing.B, db *DB, volume string, n int) time.Time {
	b.Helper()
	t := base
	const batch = 1000
	for i := 0; i < n; i += batch {
		var snaps []Snapshot
		for j := i; j < min(n, i+batch); j++ {
			t = base.Add(time.Duration(j) * time.Hour)
			snaps = append(snaps, benchSnap(volume, t))
		}
		if err := db.PutSnapshots(snaps...); err != nil {
			b.Fatal(err)
		}
	}
	return t
}

func benchSnap(volume string, created time.Time) Snapshot {
	id := uuid.New()
	return Snapshot{ID: id, SetID: uuid.New(), SessionID: uuid.New(), SnapshotsCount: 1, OriginalVolume: volume,
		DevicePath: volume + "/.lvss-snapshots/" + id.String(), ProviderID: uuid.New(), ProviderName: "btrfs",
		ProviderHandle: volume + "/.lvss-snapshots/" + id.String(), Attributes: 0x5d, Context: 0x1d, Created: created,
		OriginatingMachine: "host", ServiceMachine: "host", Consistency: "crash", ConsistencyReason: "no application was frozen"}
}

// BenchmarkRecordSet records a one-volume set with its BCD, as
// DoSnapshotSet's end does.
func BenchmarkRecordSet(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			db := openTest(b)
			t := fillVolume(b, db, "/srv", n)
			bcd := []byte(fmt.Sprintf("<BACKUP_COMPONENTS>%0512d</BACKUP_COMPONENTS>", 0))
			for b.Loop() {
				t = t.Add(time.Hour)
				s := benchSnap("/srv", t)
				if err := db.RecordSet(s.SetID, []Snapshot{s}, map[string][]byte{"bcd": bcd}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkListSnapshots lists every snapshot of a catalog of 10,000.
func BenchmarkListSnapshots(b *testing.B) {
	db := openTest(b)
	fillVolume(b, db, "/srv", 10_000)
	for b.Loop() {
		got, err := db.ListSnapshots(Filter{})
		if err != nil || len(got) != 10_000 {
			b.Fatalf("got %d, %v", len(got), err)
		}
	}
}

// BenchmarkListingPage reads one page of 256 of a grouped listing of
// 10,000 (what lvssd reads for each batch of `lvss list shadows`), from
// the middle.
func BenchmarkListingPage(b *testing.B) {
	db := openTest(b)
	fillVolume(b, db, "/srv", 10_000)
	all, err := db.ListSnapshots(Filter{})
	if err != nil {
		b.Fatal(err)
	}
	mid := all[5000].ID
	for b.Loop() {
		l := db.List(Filter{}).Grouped()
		if err := l.After(mid); err != nil {
			b.Fatal(err)
		}
		if got, err := l.Next(256); err != nil || len(got) != 256 {
			b.Fatalf("got %d, %v", len(got), err)
		}
	}
}

// BenchmarkVolumeSnapshotCount is the per-volume cap's count.
func BenchmarkVolumeSnapshotCount(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			db := openTest(b)
			fillVolume(b, db, "/srv", n)
			for b.Loop() {
				if got, err := db.VolumeSnapshotCount("/srv"); err != nil || got != n {
					b.Fatalf("got %d, %v", got, err)
				}
			}
		})
	}
}

// BenchmarkPruneEvents is the event log's pruning as lvssd does it: the
// log at limits.max_events (100,000 by default), 1,024 more appended,
// pruned back. It holds the catalog's write lock, so a set's record
// waits for it.
func BenchmarkPruneEvents(b *testing.B) {
	db := openTest(b)
	ev := Event{Message: "snapshot created", Fields: map[string]string{"snapshot": uuid.NewString(), "set": uuid.NewString(),
		"volume": "/srv/data", "provider": "btrfs", "consistency": "crash"}}
	batch := make([]Event, 1024)
	for i := range batch {
		batch[i] = ev
	}
	for range 100 {
		if err := db.AppendEvents(batch...); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		b.StopTimer()
		if err := db.AppendEvents(batch...); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := db.PruneEvents(100_000); err != nil {
			b.Fatal(err)
		}
	}
}
