package btrfs

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/provider"
)

// TestFlushAheadOnlyWithWriters: with much dirty data, EndPrepareSnapshots
// syncs the volume ahead of the snapshot so that the flush is not inside
// the writers' freeze; with no writer to be frozen (provider.WithoutWriters)
// it does not, since the sync would only add to the snapshot's latency.
func TestFlushAheadOnlyWithWriters(t *testing.T) {
	testenv.RequireRoot(t)
	mnt := testenv.LoopFS(t, "btrfs", 1<<30).Mount
	sv := subvol(t, filepath.Join(mnt, "sv"))
	p := newProvider(t, Config{}, 1<<20)
	var flushes atomic.Int32
	p.working = func(m string) {
		if m == "flush" {
			flushes.Add(1)
		}
	}
	chunk := make([]byte, 1<<20)
	for _, tc := range []struct {
		name    string
		without bool
		want    int32
	}{{"writers taking part", false, 1}, {"no writer", true, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			flushes.Store(0)
			ctx := bg(t)
			set := uuid.New()
			if err := p.BeginPrepareSnapshot(ctx, set, uuid.New(), sv, 0); err != nil {
				t.Fatal(err)
			}
			// Dirty data made after BeginPrepareSnapshot, so that no early
			// sync took it: twice the threshold, which other dirty data
			// on the machine only adds to.
			f, err := os.Create(filepath.Join(sv, "dirty-"+set.String()))
			if err != nil {
				t.Fatal(err)
			}
			for range 2 * flushAbove >> 20 {
				if _, err := f.Write(chunk); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			if tc.without {
				ctx = provider.WithoutWriters(ctx)
			}
			if err := p.EndPrepareSnapshots(ctx, set); err != nil {
				t.Fatal(err)
			}
			if got := flushes.Load(); got != tc.want {
				t.Errorf("EndPrepareSnapshots synced ahead %d times with %d MiB dirty, want %d", got, 2*flushAbove>>20, tc.want)
			}
			if err := p.AbortSnapshots(bg(t), set); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNoEarlySyncWithoutWriters: with much dirty data BeginPrepareSnapshot
// starts syncing the volume at once, so that little is left by the
// freeze; in a writerless context (provider.WithoutWriters, which the
// coordinator gives AddToSnapshotSet there) it does not, since that sync
// would be one more transaction commit beside the snapshot's, holding up
// the applications' own fsyncs while freezing nobody.
func TestNoEarlySyncWithoutWriters(t *testing.T) {
	testenv.RequireRoot(t)
	mnt := testenv.LoopFS(t, "btrfs", 1<<30).Mount
	sv := subvol(t, filepath.Join(mnt, "sv"))
	p := newProvider(t, Config{}, 1<<20)
	chunk := make([]byte, 1<<20)
	for _, tc := range []struct {
		name    string
		without bool
		early   bool
	}{{"writer context", false, true}, {"writerless context", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			// Dirty data before BeginPrepareSnapshot this time: twice the
			// threshold, which other dirty data on the machine only adds to.
			f, err := os.Create(filepath.Join(sv, "dirty-"+tc.name))
			if err != nil {
				t.Fatal(err)
			}
			for range 2 * flushAbove >> 20 {
				if _, err := f.Write(chunk); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			ctx := bg(t)
			if tc.without {
				ctx = provider.WithoutWriters(ctx)
			}
			set := uuid.New()
			if err := p.BeginPrepareSnapshot(ctx, set, uuid.New(), sv, 0); err != nil {
				t.Fatal(err)
			}
			s := p.setFor(set)
			early := len(s.early) > 0
			s.mu.Unlock()
			if early != tc.early {
				t.Errorf("BeginPrepareSnapshot with %d MiB dirty started a sync: %v, want %v", 2*flushAbove>>20, early, tc.early)
			}
			if err := p.AbortSnapshots(bg(t), set); err != nil {
				t.Fatal(err)
			}
		})
	}
}
