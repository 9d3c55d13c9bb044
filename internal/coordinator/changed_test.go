package coordinator

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/lvss/lvss/vss"
)

// Options.SnapshotsChanged hears of every path that changes the
// snapshots, through the catalog's commit hook (and revert's own call),
// so that lvssd's previous-versions snapdirs (L55) follow each: a set
// recorded, DeleteSnapshots, the deletion retention makes, a session's
// auto-release snapshots deleted at its end, a revert, and recovery at
// start removing an entry whose snapshot is gone.
func TestSnapshotsChangedOnEveryPath(t *testing.T) {
	var n atomic.Int64
	e := newEnv(t, func(o *Options) { o.SnapshotsChanged = func() { n.Add(1) } })
	ctx := context.Background()
	step := func(what string, do func()) {
		t.Helper()
		before := n.Load()
		do()
		if n.Load() == before {
			t.Errorf("%s: SnapshotsChanged was not called", what)
		}
	}
	admin := e.admin()

	_, first := e.persistentSet(false)
	step("a persistent set recorded", func() { e.persistentSet(false) })
	step("DeleteSnapshots", func() {
		if _, _, err := admin.DeleteSnapshots(ctx, first, vss.ObjectSnapshot, false); err != nil {
			t.Fatal(err)
		}
	})
	_, second := e.persistentSet(false)
	step("a retention deletion (DeleteSnapshotsIfUnused)", func() {
		if _, _, err := admin.DeleteSnapshotsIfUnused(ctx, second, vss.ObjectSnapshot, false); err != nil {
			t.Fatal(err)
		}
	})
	s, _ := e.toSnapped() // VSS_CTX_BACKUP: auto-release
	step("an auto-release session's end", func() { s.Release(ctx) })
	_, third := e.persistentSet(false)
	step("a revert", func() {
		if err := admin.RevertToSnapshot(ctx, third, false); err != nil {
			t.Fatal(err)
		}
	})
	// A snapshot gone behind lvssd's back: the next start removes its entry.
	sn, err := e.cat.GetSnapshot(third)
	must(t, err)
	must(t, e.prov.DeleteSnapshot(ctx, toProviderSnapshot(sn)))
	admin.Release(ctx)
	var e2 *env
	step("recovery at start", func() { e2 = e.restart(nil) })
	if rec := actions(e2.c.Recovery(), RecEntryRemoved); len(rec) != 1 {
		t.Fatalf("recovery removed %d entries, want 1: %+v", len(rec), e2.c.Recovery().Actions)
	}
}
