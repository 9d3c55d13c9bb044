package coordinator

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// BarrierPoint names a point of a set's creation at which the hosts of a
// cluster snapshot set wait for one another (docs/cluster.md): VSS's
// sequence stretched over hosts.
type BarrierPoint string

const (
	// BarrierPrepared: writers had PrepareForSnapshot and the providers
	// EndPrepareSnapshots; nothing is frozen yet.
	BarrierPrepared BarrierPoint = "prepared"
	// BarrierFrozen: every writer is frozen; nothing is committed. Before
	// it, each level but the last has a point of its own
	// (BarrierFrozenLevel): VSS's freeze order (D5) holds across hosts,
	// so an application's front end on one host is paused before its
	// databases on others freeze.
	BarrierFrozen BarrierPoint = "frozen"
	// BarrierCommitted: the snapshots exist (PostCommitSnapshots
	// answered); the writers are still frozen.
	BarrierCommitted BarrierPoint = "committed"
)

// BarrierFrozenLevel is the point after the writers of level froze, for
// every level of vss.FreezeOrder but the last (after which it is
// BarrierFrozen).
func BarrierFrozenLevel(level vss.AppLevel) BarrierPoint {
	if level == vss.FreezeOrder[len(vss.FreezeOrder)-1] {
		return BarrierFrozen
	}
	name := strings.ToLower(strings.TrimPrefix(level.String(), "VSS_APP_"))
	return BarrierPoint("frozen-" + strings.ReplaceAll(name, "_", "-"))
}

// A Barrier holds a set's creation at each BarrierPoint until every host
// of the cluster set has reached it. Reach reports this host's arrival
// and waits; an error aborts this host's creation (its writers get
// Abort, its snapshots are deleted), and the Barrier is expected to have
// told the other hosts. The BarrierInfo says how this host's writers
// stand: a cluster set is application-consistent only if none has
// failed, so a Barrier vetoes the set when one has.
//
// Reach must return within the creation's own bounds: at BarrierFrozen
// and BarrierCommitted the writers' freeze windows are running, and past
// the commit the creation's context is never cancelled, so a Barrier
// waits under deadlines of its own (the cluster job's).
type Barrier interface {
	Reach(ctx context.Context, point BarrierPoint, info BarrierInfo) error
}

// BarrierInfo is what a Barrier is told of this host's writers at a
// point.
type BarrierInfo struct {
	// Failed names the writers taking part that have failed so far.
	Failed []string
	// Levels are the freeze levels (vss.FreezeOrder) of the writers
	// taking part that have not failed: a level barrier that no host
	// needs (no writer at that level, or none at a later one, on any
	// host) can be passed without waiting.
	Levels []vss.AppLevel
}

// barrierState is the Barrier a session's creation runs under, if any.
type barrierState struct {
	mu sync.Mutex
	b  Barrier
}

// SetBarrier makes the session's DoSnapshotSet wait at each BarrierPoint
// (a cluster set's host part). It must be set before DoSnapshotSet.
func (s *Session) SetBarrier(b Barrier) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.called[MDoSnapshotSet] {
		return badState("SetBarrier after DoSnapshotSet")
	}
	s.barrier.mu.Lock()
	s.barrier.b = b
	s.barrier.mu.Unlock()
	return nil
}

// reach runs the session's Barrier, if it has one, at point.
func (cr *creation) reach(ctx context.Context, point BarrierPoint) error {
	cr.s.barrier.mu.Lock()
	b := cr.s.barrier.b
	cr.s.barrier.mu.Unlock()
	if b == nil {
		return nil
	}
	var info BarrierInfo
	for _, sw := range cr.parts {
		if sw.failed() {
			info.Failed = append(info.Failed, sw.w.Identity.Name)
		} else if l := sw.w.Identity.Level.Normalize(); !slices.Contains(info.Levels, l) {
			info.Levels = append(info.Levels, l)
		}
	}
	if err := b.Reach(ctx, point, info); err != nil {
		return vsserr.Wrap(vsserr.Code(err), err, "cluster barrier %q", point)
	}
	return nil
}

// StartSnapshotSetID is StartSnapshotSet with the set's ID given: the
// host part of a cluster set carries the cluster set's ID. An ID the
// catalog already holds is refused.
func (s *Session) StartSnapshotSetID(id uuid.UUID) (uuid.UUID, error) {
	if id == uuid.Nil {
		return uuid.Nil, vsserr.New(vsserr.InvalidArg, "a snapshot set ID must not be GUID_NULL")
	}
	if snaps, err := s.c.opt.Catalog.ListSnapshots(catalog.Filter{SetID: id}); err != nil {
		return uuid.Nil, err
	} else if len(snaps) > 0 {
		return uuid.Nil, vsserr.New(vsserr.ObjectAlreadyExists, "snapshot set %s exists already", id)
	}
	return s.startSnapshotSet(id)
}
