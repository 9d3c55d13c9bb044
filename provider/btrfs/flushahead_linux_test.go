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
