package coordinator

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/fake"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// scaleEnv is a coordinator over a real catalog that already holds n
// persistent snapshots of its volume, and a fake provider.
func scaleEnv(b *testing.B, n int) (*Coordinator, string) {
	b.Helper()
	dir := b.TempDir()
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cat.Close() })
	vol, err := filepath.EvalSymlinks(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(context.Background(), Options{Catalog: cat, Providers: provider.NewRegistry(fake.New(vol)),
		MaxSnapshotsPerVolume: 1 << 30,
		Timeouts: Timeouts{Identify: 2 * time.Second, PrepareBackup: 2 * time.Second, PrepareSnapshot: 2 * time.Second,
			Freeze: 2 * time.Second, Thaw: 2 * time.Second, PostSnapshot: 2 * time.Second, BackupComplete: 2 * time.Second,
			BackupShutdown: 2 * time.Second, Abort: 2 * time.Second, Hold: 2 * time.Second, CreationLease: time.Minute}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(context.Background()) })
	// After New: its recovery would drop entries the fake never made.
	fillCatalog(b, cat, vol, n)
	return c, vol
}

// fillCatalog records n one-snapshot sets of vol, as n creations would.
func fillCatalog(b *testing.B, cat *catalog.DB, vol string, n int) {
	b.Helper()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 1000
	for i := 0; i < n; i += batch {
		var snaps []catalog.Snapshot
		for j := i; j < min(n, i+batch); j++ {
			snaps = append(snaps, catalog.Snapshot{ID: uuid.New(), SetID: uuid.New(), SessionID: uuid.New(), SnapshotsCount: 1,
				OriginalVolume: vol, DevicePath: filepath.Join(vol, ".snap", fmt.Sprint(j)), ProviderID: fake.ID, ProviderName: "fake",
				ProviderHandle: fmt.Sprint(j), Context: int32(vss.CtxClientAccessible), Created: t0.Add(time.Duration(j) * time.Minute),
				Consistency: "crash"})
		}
		if err := cat.PutSnapshots(snaps...); err != nil {
			b.Fatal(err)
		}
	}
}

var scaleSizes = []int{0, 10_000}

// BenchmarkAddToSnapshotSet times AddToSnapshotSet with 0 and 10,000
// snapshots of the volume in the catalog (issue 14: it must not grow).
func BenchmarkAddToSnapshotSet(b *testing.B) {
	for _, n := range scaleSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, vol := scaleEnv(b, n)
			ctx := context.Background()
			for b.Loop() {
				b.StopTimer()
				s := c.NewSession(Peer{})
				mustB(b, s.InitializeForBackup(""))
				mustB(b, s.SetContext(vss.CtxClientAccessible))
				_, err := s.StartSnapshotSet()
				mustB(b, err)
				b.StartTimer()
				_, err = s.AddToSnapshotSet(ctx, vol, uuid.Nil)
				b.StopTimer()
				mustB(b, err)
				s.Release(ctx)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkCreateSet times a whole creation of a one-volume persistent
// set (StartSnapshotSet to DoSnapshotSet's end) with 0 and 10,000
// snapshots already in the catalog.
func BenchmarkCreateSet(b *testing.B) {
	for _, n := range scaleSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, vol := scaleEnv(b, n)
			ctx := context.Background()
			for b.Loop() {
				s := c.NewSession(Peer{})
				mustB(b, s.InitializeForBackup(""))
				mustB(b, s.SetContext(vss.CtxClientAccessible))
				_, err := s.StartSnapshotSet()
				mustB(b, err)
				_, err = s.AddToSnapshotSet(ctx, vol, uuid.Nil)
				mustB(b, err)
				a, err := s.DoSnapshotSet()
				mustB(b, err)
				if st, msg := a.Wait(ctx, time.Minute); st != vsserr.AsyncFinished {
					b.Fatalf("DoSnapshotSet: %s %s", st, msg)
				}
				s.Release(ctx)
			}
		})
	}
}

// BenchmarkCapCheck is the per-volume cap check AddToSnapshotSet makes.
func BenchmarkCapCheck(b *testing.B) {
	for _, n := range scaleSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, vol := scaleEnv(b, n)
			for b.Loop() {
				mustB(b, c.checkCap(vol))
			}
		})
	}
}

func mustB(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
