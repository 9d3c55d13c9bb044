package coordinator

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// recBarrier records each point it is reached at, with what the timeline
// held then, and fails at one point if told to.
type recBarrier struct {
	tl     *timeline
	failAt BarrierPoint
	mu     sync.Mutex
	points []BarrierPoint
	failed map[BarrierPoint][]string
	levels map[BarrierPoint][]vss.AppLevel
}

func (b *recBarrier) Reach(_ context.Context, p BarrierPoint, info BarrierInfo) error {
	failed := info.Failed
	b.mu.Lock()
	if b.levels == nil {
		b.levels = map[BarrierPoint][]vss.AppLevel{}
	}
	b.levels[p] = info.Levels
	b.mu.Unlock()
	b.tl.add("barrier:" + string(p))
	b.mu.Lock()
	b.points = append(b.points, p)
	if b.failed == nil {
		b.failed = map[BarrierPoint][]string{}
	}
	b.failed[p] = failed
	b.mu.Unlock()
	if p == b.failAt {
		return vsserr.New(vsserr.FlushWritesTimeout, "host-b missed the %s barrier", p)
	}
	return nil
}

// TestBarrierHoldsCreationAtEachPoint: the three points come where a
// cluster set needs them: prepared before any Freeze, frozen after every
// Freeze and before the commit, committed after the commit and before any
// Thaw.
func TestBarrierHoldsCreationAtEachPoint(t *testing.T) {
	e := newEnv(t, nil)
	e.writer("front", vss.LevelFrontEnd, 0)
	e.writer("back", vss.LevelBackEnd, 0)
	b := &recBarrier{tl: e.tl}
	s := e.toMeta(vss.CtxBackup, false)
	must(t, s.SetBarrier(b))
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	must(t, e.wait(s.DoSnapshotSet()))

	if want := []BarrierPoint{BarrierPrepared, "frozen-front-end", "frozen-back-end", "frozen-system", BarrierFrozen, BarrierCommitted}; !slices.Equal(b.points, want) {
		t.Fatalf("barrier reached at %v, want %v", b.points, want)
	}
	before := func(a, z string) {
		t.Helper()
		ia, iz := e.tl.index(a), e.tl.index(z)
		if ia < 0 || iz < 0 || ia > iz {
			t.Fatalf("%q (%d) not before %q (%d) in %v", a, ia, z, iz, e.tl.all())
		}
	}
	for _, w := range []string{"front", "back"} {
		before("barrier:prepared", w+":"+EvFreeze.String())
		before(w+":"+EvFreeze.String(), "barrier:frozen")
		before("barrier:committed", w+":"+EvThaw.String())
	}
	// Across hosts the freeze order holds: every host's front end is
	// frozen before any back end freezes.
	before("front:"+EvFreeze.String(), "barrier:frozen-front-end")
	before("barrier:frozen-front-end", "back:"+EvFreeze.String())
	before("barrier:frozen", "provider:CommitSnapshots")
	before("provider:CommitSnapshots", "barrier:committed")
	for p, f := range b.failed {
		if len(f) > 0 {
			t.Fatalf("at %s the barrier was told of failed writers %v in a clean set", p, f)
		}
	}
	if got := b.levels[BarrierPrepared]; len(got) != 2 || !slices.Contains(got, vss.LevelFrontEnd) || !slices.Contains(got, vss.LevelBackEnd) {
		t.Fatalf("levels told at prepared: %v, want front-end and back-end", got)
	}
}

// TestBarrierFailureAbortsCreation: a barrier that fails at any point
// aborts this host's part: the writers get Abort (none is left frozen),
// the provider aborts, nothing is recorded, and DoSnapshotSet reports the
// barrier's error.
func TestBarrierFailureAbortsCreation(t *testing.T) {
	for _, p := range []BarrierPoint{BarrierPrepared, "frozen-front-end", BarrierFrozen, BarrierCommitted} {
		t.Run(string(p), func(t *testing.T) {
			e := newEnv(t, nil)
			w := e.writer("db", vss.LevelBackEnd, 0)
			s := e.toMeta(vss.CtxBackup, false)
			must(t, s.SetBarrier(&recBarrier{tl: e.tl, failAt: p}))
			e.toSet(s)
			must(t, e.wait(s.PrepareForBackup()))
			err := e.wait(s.DoSnapshotSet())
			if vsserr.Code(err) != vsserr.FlushWritesTimeout {
				t.Fatalf("DoSnapshotSet: %v, want the barrier's VSS_E_FLUSH_WRITES_TIMEOUT", err)
			}
			e.until("the writer's Abort", func() bool { return w.count(EvAbort) == 1 })
			if p != BarrierPrepared && w.count(EvThaw) != 0 {
				t.Fatalf("the writer got Thaw after a failed %s barrier: %v", p, w.events())
			}
			if e.tl.index("provider:AbortSnapshots") < 0 {
				t.Fatalf("the provider was not told to abort: %v", e.tl.all())
			}
			snaps, err := e.cat.ListSnapshots(catalog.Filter{})
			must(t, err)
			if len(snaps) != 0 {
				t.Fatalf("%d snapshots recorded after an aborted cluster set", len(snaps))
			}
			if made, err := e.prov.Query(context.Background()); err != nil || len(made) != 0 {
				t.Fatalf("the provider still holds %d snapshots (%v)", len(made), err)
			}
		})
	}
}

// TestBarrierToldOfFailedWriters: a writer that vetoes its Freeze is named
// to the barrier at the frozen point, so that the cluster set can be
// vetoed everywhere.
func TestBarrierToldOfFailedWriters(t *testing.T) {
	e := newEnv(t, nil)
	e.writer("good", vss.LevelBackEnd, 0)
	bad := e.writer("bad", vss.LevelBackEnd, 0)
	bad.failAt(EvFreeze, vsserr.WriterErrorRetryable)
	b := &recBarrier{tl: e.tl}
	s := e.toMeta(vss.CtxBackup, false)
	must(t, s.SetBarrier(b))
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	must(t, e.wait(s.DoSnapshotSet()))
	if got := b.failed[BarrierPrepared]; len(got) != 0 {
		t.Fatalf("failed writers at prepared: %v, want none", got)
	}
	if got := b.failed[BarrierFrozen]; !slices.Equal(got, []string{"bad"}) {
		t.Fatalf("failed writers at frozen: %v, want [bad]", got)
	}
}

// TestStartSnapshotSetWithGivenID: the host part of a cluster set carries
// the cluster set's ID; GUID_NULL and an ID the catalog holds already are
// refused; SetBarrier after DoSnapshotSet is refused.
func TestStartSnapshotSetWithGivenID(t *testing.T) {
	e := newEnv(t, nil)
	id := uuid.New()
	s := e.c.NewSession(Peer{})
	must(t, s.InitializeForBackup(""))
	must(t, s.SetContext(vss.CtxClientAccessible))
	if _, err := s.StartSnapshotSetID(uuid.Nil); vsserr.Code(err) != vsserr.InvalidArg {
		t.Fatalf("StartSnapshotSetID(GUID_NULL): %v, want E_INVALIDARG", err)
	}
	got, err := s.StartSnapshotSetID(id)
	must(t, err)
	if got != id {
		t.Fatalf("set ID %s, want %s", got, id)
	}
	snap, err := s.AddToSnapshotSet(context.Background(), e.vol, uuid.Nil)
	must(t, err)
	must(t, e.wait(s.DoSnapshotSet()))
	if err := s.SetBarrier(&recBarrier{tl: e.tl}); vsserr.Code(err) != vsserr.BadState {
		t.Fatalf("SetBarrier after DoSnapshotSet: %v, want VSS_E_BAD_STATE", err)
	}
	sn, err := e.cat.GetSnapshot(snap)
	must(t, err)
	if sn.SetID != id {
		t.Fatalf("the snapshot's set is %s, want %s", sn.SetID, id)
	}
	s.Release(context.Background())

	again := e.c.NewSession(Peer{})
	must(t, again.InitializeForBackup(""))
	must(t, again.SetContext(vss.CtxClientAccessible))
	if _, err := again.StartSnapshotSetID(id); vsserr.Code(err) != vsserr.ObjectAlreadyExists {
		t.Fatalf("StartSnapshotSetID with a recorded set's ID: %v, want VSS_E_OBJECT_ALREADY_EXISTS", err)
	}
}
