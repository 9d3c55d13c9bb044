package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// DoSnapshotSet creates the snapshots of the set (vss-reference §7.3): PrepareForSnapshot,
// EndPrepare, Freeze by level, PreCommit, Commit inside the hold window,
// PostCommit, Thaw in reverse level order, PreFinalCommit, PostSnapshot,
// PostFinalCommit. A writer's veto at Freeze or Thaw does not fail the set
// (D9): the writer gets Abort and its snapshots are recorded as
// crash-consistent. A provider failure fails the whole set.
func (s *Session) DoSnapshotSet() (*Async, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, err := s.admit(MDoSnapshotSet)
	if err != nil {
		return nil, err
	}
	return s.startAsync(MDoSnapshotSet, from, s.doSnapshotSet), nil
}

// creation is the working state of one DoSnapshotSet.
type creation struct {
	s       *Session
	setID   uuid.UUID
	parts   []*sessionWriter
	vols    []volumeEntry
	provs   []provider.Provider
	instant map[uuid.UUID]uint32 // snapshot ID → instant (D15)
	paths   map[*sessionWriter][]string
	made    map[uuid.UUID]provider.Snapshot
	timers  map[*sessionWriter]Stopper
	frozeAt map[*sessionWriter]Mark // when its Freeze was sent, for the writers that froze
	tmu     sync.Mutex              // guards timers and frozeAt
	held    time.Duration           // how long filesystems were held frozen (NeedsFreeze providers)
	// frozen is how long the writers were held frozen, from the first
	// Freeze sent to the last Thaw answered; thawed is how many writers
	// were frozen and thawed in that window (none: frozen is 0).
	frozen time.Duration
	thawed int
	// journaled: the set has a journal entry (journal.go); steps is its
	// file of steps in the run directory.
	journaled bool
	steps     *stepLog
	// discardFailed: a snapshot of the failed set could not be deleted,
	// so its journal entry stays for the next start.
	discardFailed bool
}

// doSnapshotSet runs the creation and tells the Observer how it ended.
func (s *Session) doSnapshotSet(ctx context.Context) error {
	s.c.creatingSets.Add(1)
	defer func() {
		if s.c.creatingSets.Add(-1) == 0 {
			// The event log's writer may be holding entries back for it.
			s.c.evq.signal()
		}
	}()
	start := time.Now()
	err := s.createSet(ctx)
	if took := time.Since(start); err == nil {
		s.c.opt.Observer.SnapshotSetCreated(took)
	} else {
		s.c.opt.Observer.SnapshotSetFailed(took, setFailure(ctx, err))
	}
	return err
}

// setFailure names a failed creation the way the requester's QueryStatus
// will (startAsync): lvssd's own reason to stop it (the creation lease)
// is its result, a requester's Cancel or release VSS_S_ASYNC_CANCELLED.
func setFailure(ctx context.Context, err error) vsserr.HRESULT {
	if errors.Is(err, context.Canceled) {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return vsserr.Code(cause)
		}
		return vsserr.AsyncCancelled
	}
	return vsserr.Code(err)
}

func (s *Session) createSet(ctx context.Context) error {
	s.mu.Lock()
	cr := &creation{s: s, setID: s.setID, vols: append([]volumeEntry(nil), s.volumes...),
		made: map[uuid.UUID]provider.Snapshot{}, timers: map[*sessionWriter]Stopper{}, frozeAt: map[*sessionWriter]Mark{}}
	if s.context.Writers() {
		cr.parts = s.participantsLocked()
	}
	cr.paths = map[*sessionWriter][]string{}
	for _, sw := range cr.parts {
		cr.paths[sw] = writerPaths(sw, s.bcd)
	}
	s.mu.Unlock()
	seen := map[provider.Provider]bool{}
	for _, v := range cr.vols {
		if !seen[v.prov] {
			seen[v.prov] = true
			cr.provs = append(cr.provs, v.prov)
		}
	}
	cr.assignInstants()
	t := s.c.opt.Timeouts
	if err := cr.journalStart(ctx); err != nil {
		return cr.fail(ctx, false, err)
	}

	// ① PrepareForSnapshot.
	if err := cr.step(ctx, "prepare-snapshot"); err != nil {
		return cr.fail(ctx, false, err)
	}
	for _, sw := range s.fanOut(ctx, cr.healthy(), EvPrepareSnapshot, t.PrepareSnapshot, PhaseNone, cr.decorate(false)) {
		sw.advance(phTakingPart, phPrepared)
		sw.setState(vss.WSWaitingForFreeze)
	}
	if err := ctx.Err(); err != nil {
		return cr.fail(ctx, false, err)
	}

	// The freeze guard is started now, before writers freeze, so that its
	// start-up is not inside anyone's freeze window.
	var guard Hold
	if cr.needsFreeze() {
		if s.c.opt.Freezer == nil {
			return cr.fail(ctx, false, vsserr.New(vsserr.ProviderVeto, "a provider of the set needs a filesystem freeze, and lvssd has no freeze guard"))
		}
		g, err := s.c.opt.Freezer.Start(ctx, t.Hold)
		if err != nil {
			return cr.fail(ctx, false, vsserr.Wrap(vsserr.FlushWritesTimeout, err, "start the freeze guard"))
		}
		guard = g
		defer g.Close()
	}

	// ② EndPrepareSnapshots.
	if err := cr.step(ctx, "end-prepare"); err != nil {
		return cr.fail(ctx, true, err)
	}
	// With no writer to freeze, a provider's flush ahead protects no
	// window and only adds to the snapshot's latency.
	pctx := ctx
	if len(cr.healthy()) == 0 {
		pctx = provider.WithoutWriters(ctx)
	}
	for _, p := range cr.provs {
		if err := cr.call(pctx, p, provider.CallEndPrepareSnapshots, func(c context.Context) error { return p.EndPrepareSnapshots(c, cr.setID) }); err != nil {
			return cr.fail(ctx, true, err)
		}
	}

	// A cluster set's hosts all get here before any freezes.
	if err := cr.reach(ctx, BarrierPrepared); err != nil {
		return cr.fail(ctx, true, err)
	}

	// ③ Freeze, front-end first (D5).
	if err := cr.step(ctx, "freeze"); err != nil {
		return cr.fail(ctx, true, err)
	}
	clock := s.c.opt.Clock
	frozeAt := clock.Mark()
	for _, level := range vss.FreezeOrder {
		cr.freezeLevel(ctx, level)
		if err := ctx.Err(); err != nil {
			return cr.fail(ctx, true, err)
		}
		// A cluster set's hosts all have this level frozen before any
		// freezes the next, and all their writers frozen before any
		// commits.
		if err := cr.reach(ctx, BarrierFrozenLevel(level)); err != nil {
			return cr.fail(ctx, true, err)
		}
	}

	// ④ PreCommit.
	if err := cr.step(ctx, "pre-commit"); err != nil {
		return cr.fail(ctx, true, err)
	}
	for _, p := range cr.provs {
		if err := cr.call(ctx, p, provider.CallPreCommitSnapshots, func(c context.Context) error { return p.PreCommitSnapshots(c, cr.setID) }); err != nil {
			return cr.fail(ctx, true, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return cr.fail(ctx, true, err)
	}

	// ⑤⑥ Commit. From here the operation no longer listens to Cancel: a
	// half-committed set is undone only by the failure path below, never
	// by walking away.
	nc := context.WithoutCancel(ctx)
	if err := cr.step(nc, "commit"); err != nil {
		return cr.fail(nc, true, err)
	}
	if err := cr.commit(nc, guard); err != nil {
		return cr.fail(nc, true, err)
	}
	if err := cr.stepDone(nc, "commit"); err != nil {
		return cr.fail(nc, true, err)
	}

	// ⑧ PostCommit: the snapshots exist; learn their device paths.
	if err := cr.step(nc, "post-commit"); err != nil {
		return cr.fail(nc, true, err)
	}
	for _, p := range cr.provs {
		var snaps []provider.Snapshot
		err := cr.call(nc, p, provider.CallPostCommitSnapshots, func(c context.Context) (err error) {
			snaps, err = p.PostCommitSnapshots(c, cr.setID, len(cr.vols))
			return err
		})
		if err != nil {
			return cr.fail(nc, true, err)
		}
		for _, sn := range snaps {
			cr.made[sn.ID] = sn
		}
	}
	for _, v := range cr.vols {
		if _, ok := cr.made[v.snapshotID]; !ok {
			return cr.fail(nc, true, vsserr.New(vsserr.UnexpectedProviderError, "%s reported no snapshot for %s", v.prov.Info().Name, v.volume))
		}
	}

	// A cluster set's hosts all have their snapshots before any thaws.
	if err := cr.reach(nc, BarrierCommitted); err != nil {
		return cr.fail(nc, true, err)
	}

	// ⑨ Thaw, in reverse level order. A failpoint here stands for a
	// failure while writers are frozen: the creation fails and they get
	// Abort.
	if err := cr.step(nc, "thaw"); err != nil {
		return cr.fail(nc, true, err)
	}
	for i := len(vss.FreezeOrder) - 1; i >= 0; i-- {
		cr.thawLevel(nc, vss.FreezeOrder[i])
	}
	for _, sw := range cr.parts {
		if sw.is(phThawed) {
			cr.thawed++
		}
	}
	if cr.thawed > 0 {
		cr.frozen = clock.Since(frozeAt)
	}

	// ⑩ PreFinalCommit.
	if err := cr.step(nc, "pre-final-commit"); err != nil {
		return cr.fail(nc, true, err)
	}
	for _, p := range cr.provs {
		if err := cr.call(nc, p, provider.CallPreFinalCommitSnapshots, func(c context.Context) error { return p.PreFinalCommitSnapshots(c, cr.setID) }); err != nil {
			return cr.fail(nc, true, err)
		}
	}

	// ⑪ PostSnapshot to writers that thawed; last chance to edit the BCD.
	if err := cr.step(nc, "post-snapshot"); err != nil {
		return cr.fail(nc, true, err)
	}
	var post []*sessionWriter
	for _, sw := range cr.parts {
		if sw.status().State == vss.WSWaitingForPostSnapshot {
			post = append(post, sw)
		}
	}
	s.fanOut(nc, post, EvPostSnapshot, t.PostSnapshot, document.PhasePostSnapshot, cr.decorate(true))
	for _, sw := range post {
		sw.advance(phThawed, phDone)
		sw.setState(vss.WSWaitingForBackupComplete)
	}

	// ⑫ PostFinalCommit. Writers had PostSnapshot, so no Abort any more.
	// A provider's set is permanent once its PostFinalCommit returned, so
	// if a later one fails, Abort no longer undoes the earlier ones: their
	// snapshots are deleted instead, or they would outlive the failed set
	// untracked.
	if err := cr.step(nc, "post-final-commit"); err != nil {
		return cr.fail(nc, true, err)
	}
	for i, p := range cr.provs {
		if err := cr.call(nc, p, provider.CallPostFinalCommitSnapshots, func(c context.Context) error { return p.PostFinalCommitSnapshots(c, cr.setID) }); err != nil {
			cr.parts = nil
			cr.discard(nc, cr.provs[:i])
			return cr.fail(nc, true, err)
		}
	}
	return cr.finish(nc)
}

// discard deletes the snapshots of the set that the given providers made,
// for a set that failed after they had made them permanent.
func (cr *creation) discard(ctx context.Context, provs []provider.Provider) {
	for _, v := range cr.vols {
		if !slices.Contains(provs, v.prov) {
			continue
		}
		err := cr.call(ctx, v.prov, provider.CallDeleteSnapshot, func(c context.Context) error { return v.prov.DeleteSnapshot(c, cr.made[v.snapshotID]) })
		if err != nil {
			cr.discardFailed = true
			cr.s.c.event(ctx, LevelError, vsserr.Code(err), cr.s.id, "could not delete a snapshot of a failed set",
				"snapshot", v.snapshotID.String(), "volume", v.volume, "provider", v.prov.Info().Name, "error", err.Error())
		}
	}
}

// call runs one provider call of the creation, other than the commit,
// under timeouts.provider_call (L45) and between its failpoints. Past the
// commit the creation's context is never cancelled (a half-made set is
// undone by the failure path, never walked away from), so without this
// bound a provider that never answered would hold the session, the
// creation lock and the writers' Abort for ever. A provider running past
// it fails the call with VSS_E_UNEXPECTED_PROVIDER_ERROR; any other
// failure is the provider's, translated (D18).
func (cr *creation) call(ctx context.Context, p provider.Provider, call provider.Call, f func(context.Context) error) error {
	budget := cr.s.c.opt.Timeouts.ProviderCall
	c, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	err := providerCall(c, call, func() error { return f(c) })
	if err == nil {
		return nil
	}
	if ctx.Err() == nil && errors.Is(c.Err(), context.DeadlineExceeded) {
		return vsserr.Wrap(vsserr.UnexpectedProviderError, err, "%s did not answer %s within timeouts.provider_call (%s)",
			p.Info().Name, call, budget)
	}
	return provider.Translate(p, call, err)
}

// needsFreeze reports whether a provider of the set copies from outside the
// filesystem and so needs it held (FIFREEZE) around its commit.
func (cr *creation) needsFreeze() bool {
	for _, p := range cr.provs {
		if p.Info().NeedsFreeze {
			return true
		}
	}
	return false
}

// commit runs every provider's CommitSnapshots while writers are frozen.
// Providers that need no filesystem freeze go first: one of them (btrfs)
// would block on a filesystem this set holds frozen. Then the guard
// freezes the filesystems of the other providers' volumes (syncfs, then
// FIFREEZE once per superblock), they commit inside the hold window, and
// the guard thaws — always, and before anything else that could write.
func (cr *creation) commit(ctx context.Context, guard Hold) error {
	t := cr.s.c.opt.Timeouts
	var frozen []provider.Provider
	for _, p := range cr.provs {
		info := p.Info()
		if info.NeedsFreeze {
			frozen = append(frozen, p)
			continue
		}
		budget, what := t.Hold, "the hold window"
		if info.LongCommit {
			budget, what = t.Freeze, "the writers' freeze window"
		}
		if err := commitWithin(ctx, p, cr.setID, budget, what); err != nil {
			return err
		}
	}
	if len(frozen) == 0 {
		return nil
	}
	var paths []string
	for _, v := range cr.vols {
		if v.prov.Info().NeedsFreeze {
			paths = append(paths, v.volume)
		}
	}
	// Nothing of lvssd's may write while the filesystems are held: the
	// state directory may be on one of them.
	resume := cr.s.c.pauseLog()
	defer resume()
	if err := guard.Freeze(ctx, paths); err != nil {
		if vsserr.Code(err) == vsserr.Unexpected {
			err = vsserr.Wrap(vsserr.FlushWritesTimeout, err, "freeze %s", strings.Join(paths, ", "))
		}
		return err
	}
	var commitErr error
	for _, p := range frozen {
		if commitErr = commitWithin(ctx, p, cr.setID, t.Hold, "the hold window"); commitErr != nil {
			break
		}
	}
	held, thawErr := guard.Thaw()
	resume()
	cr.held = held
	if held > 0 {
		cr.s.c.opt.Observer.FilesystemsHeld(held)
	}
	if commitErr != nil {
		return commitErr
	}
	if thawErr != nil {
		return thawErr
	}
	return nil
}

// commitWithin runs one provider's commit with a deadline; running past it
// is VSS_E_HOLD_WRITES_TIMEOUT (vss-reference §1.5), the coordinator's own code. Any
// other failure is the provider's, and translated (D18).
func commitWithin(ctx context.Context, p provider.Provider, setID uuid.UUID, budget time.Duration, what string) error {
	c, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	err := providerCall(c, provider.CallCommitSnapshots, func() error { return p.CommitSnapshots(c, setID) })
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(c.Err(), context.DeadlineExceeded) {
		return vsserr.Wrap(vsserr.HoldWritesTimeout, err, "%s did not commit within %s (%s)", p.Info().Name, what, budget)
	}
	return provider.Translate(p, provider.CallCommitSnapshots, err)
}

// healthy are the participants that have not failed.
func (cr *creation) healthy() []*sessionWriter {
	var out []*sessionWriter
	for _, sw := range cr.parts {
		if !sw.failed() {
			out = append(out, sw)
		}
	}
	return out
}

// assignInstants numbers the instants of the set: all snapshots of one
// set-atomic provider share one; every other snapshot has its own.
func (cr *creation) assignInstants() {
	cr.instant = map[uuid.UUID]uint32{}
	next := uint32(0)
	group := map[provider.Provider]uint32{}
	for _, v := range cr.vols {
		if v.prov.Info().SetAtomic {
			if g, ok := group[v.prov]; ok {
				cr.instant[v.snapshotID] = g
				continue
			}
			next++
			group[v.prov] = next
			cr.instant[v.snapshotID] = next
			continue
		}
		next++
		cr.instant[v.snapshotID] = next
	}
}

// volumeFor finds the set's volume holding path (longest prefix).
func (cr *creation) volumeFor(path string) (volumeEntry, bool) {
	var best volumeEntry
	found := false
	for _, v := range cr.vols {
		if path == v.volume || strings.HasPrefix(path, strings.TrimSuffix(v.volume, "/")+"/") {
			if !found || len(v.volume) > len(best.volume) {
				best, found = v, true
			}
		}
	}
	return best, found
}

// placements tells a writer where its paths are (D15).
func (cr *creation) placements(sw *sessionWriter, devices bool) []Placement {
	var out []Placement
	for _, p := range cr.paths[sw] {
		pl := Placement{Path: p}
		if v, ok := cr.volumeFor(p); ok {
			pl.SnapshotID, pl.OriginalVolume, pl.Instant = v.snapshotID, v.volume, cr.instant[v.snapshotID]
			pl.FileByFile = !v.prov.Info().Atomic
			if devices {
				if sn, ok := cr.made[v.snapshotID]; ok {
					pl.DevicePath = sn.DevicePath
				}
			}
		}
		out = append(out, pl)
	}
	return out
}

func (cr *creation) decorate(devices bool) func(*sessionWriter, *Event) {
	return func(sw *sessionWriter, ev *Event) { ev.Placements = cr.placements(sw, devices) }
}

// freezeLevel freezes the prepared writers of one level in parallel. The
// Freeze→Thaw window starts when Freeze is sent (vss-reference §3.2); a writer that
// vetoes or does not answer gets Abort at once (D9).
func (cr *creation) freezeLevel(ctx context.Context, level vss.AppLevel) {
	s := cr.s
	var wg sync.WaitGroup
	for _, sw := range cr.parts {
		if !sw.is(phPrepared) || sw.failed() || sw.w.Identity.Level.Normalize() != level {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			window := sw.w.Window
			clock := s.c.opt.Clock
			started := clock.Mark()
			s.mu.Lock()
			ev := s.baseEvent(EvFreeze, window)
			s.mu.Unlock()
			ev.Placements = cr.placements(sw, false)
			if !s.deliver(ctx, sw, ev, PhaseNone) {
				s.sendAbort(context.WithoutCancel(ctx), []*sessionWriter{sw})
				return
			}
			if !sw.advance(phPrepared, phFrozen) {
				return
			}
			sw.setState(vss.WSWaitingForThaw)
			left := window - clock.Since(started)
			cr.tmu.Lock()
			cr.timers[sw] = clock.AfterFunc(max(left, 0), func() { cr.windowExpired(sw, window) })
			cr.frozeAt[sw] = started
			cr.tmu.Unlock()
		}()
	}
	wg.Wait()
}

// windowExpired aborts a writer still frozen when its window ends: it gets
// Abort and VSS_E_WRITERERROR_TIMEOUT (vss-reference §3.5), and its snapshots are not
// application-consistent.
func (cr *creation) windowExpired(sw *sessionWriter, window time.Duration) {
	// Only a writer still frozen: one whose Thaw was sent is past it.
	if !sw.advance(phFrozen, phAborted) {
		return
	}
	sw.fail(EvFreeze, vsserr.WriterErrorTimeout, 0, fmt.Sprintf("the Freeze→Thaw window of %s expired before Thaw", window))
	cr.s.c.event(context.Background(), LevelWarn, vsserr.WriterErrorTimeout, cr.s.id, "writer's freeze window expired; sending Abort",
		"writer", sw.w.Identity.Name, "window", window.String())
	cr.s.abortOne(context.Background(), sw)
}

// thawLevel thaws one level's frozen writers in parallel.
func (cr *creation) thawLevel(ctx context.Context, level vss.AppLevel) {
	s := cr.s
	var wg sync.WaitGroup
	for _, sw := range cr.parts {
		if sw.w.Identity.Level.Normalize() != level {
			continue
		}
		cr.tmu.Lock()
		if t := cr.timers[sw]; t != nil {
			t.Stop()
		}
		cr.tmu.Unlock()
		if !sw.advance(phFrozen, phThawing) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.mu.Lock()
			ev := s.baseEvent(EvThaw, s.c.opt.Timeouts.Thaw)
			s.mu.Unlock()
			if !s.deliver(ctx, sw, ev, PhaseNone) {
				s.sendAbort(ctx, []*sessionWriter{sw})
				return
			}
			thawed := sw.advance(phThawing, phThawed)
			sw.setState(vss.WSWaitingForPostSnapshot)
			if thawed {
				cr.tmu.Lock()
				at, ok := cr.frozeAt[sw]
				cr.tmu.Unlock()
				if ok {
					s.c.opt.Observer.WriterThawed(sw.w.Identity.Name, s.c.opt.Clock.Since(at))
				}
			}
		}()
	}
	wg.Wait()
}

// fail ends a creation that cannot finish: writers taking part get Abort
// (D14), providers that reached EndPrepare get AbortSnapshots, the
// session moves to failed (D3) and the lock is released.
func (cr *creation) fail(ctx context.Context, endPrepared bool, cause error) error {
	s := cr.s
	nc := context.WithoutCancel(ctx)
	cr.tmu.Lock()
	for _, t := range cr.timers {
		t.Stop()
	}
	cr.tmu.Unlock()
	if len(cr.parts) > 0 {
		s.mu.Lock()
		s.abortSent = true
		s.mu.Unlock()
		s.sendAbort(nc, cr.parts)
	}
	clean := true
	if endPrepared {
		cr.steps.write("abort")
		for _, p := range cr.provs {
			if err := cr.call(nc, p, provider.CallAbortSnapshots, func(c context.Context) error { return p.AbortSnapshots(c, cr.setID) }); err != nil {
				clean = false
				s.c.event(nc, LevelError, vsserr.Code(err), s.id, "provider AbortSnapshots failed", "provider", p.Info().Name, "error", err.Error())
			}
		}
	}
	cr.journalAborted(nc, clean && !cr.discardFailed)
	s.c.releaseCreation(s)
	if errors.Is(cause, context.Canceled) {
		s.c.event(nc, LevelInfo, 0, s.id, "DoSnapshotSet cancelled; creation aborted", "set", cr.setID.String())
		return cause
	}
	s.c.event(nc, LevelError, vsserr.Code(cause), s.id, "DoSnapshotSet failed; creation aborted", "set", cr.setID.String(), "error", cause.Error())
	return cause
}

// finish records the snapshots with their consistency; the session moves
// to snapped when the operation returns.
func (cr *creation) finish(ctx context.Context) error {
	s := cr.s
	s.mu.Lock()
	sctx := s.context
	s.mu.Unlock()
	var recs []catalog.Snapshot
	setRec := &document.SnapshotSetRecord{ID: cr.setID, Context: int32(sctx)}
	for _, v := range cr.vols {
		sn := cr.made[v.snapshotID]
		info := v.prov.Info()
		level, reason := cr.consistency(v, sn, sctx)
		for _, w := range sn.Warnings {
			reason += "; " + w
			s.c.event(ctx, LevelWarn, 0, s.id, "provider warning", "snapshot", v.snapshotID.String(), "volume", v.volume, "warning", w)
		}
		// The snapshot has the kinds its provider makes, and no other
		// (D19): a context's request for one was met when the provider
		// was selected.
		attrs := uint32(vss.Attributes(sctx)&^vss.SnapshotKinds|info.Kinds) | uint32(vss.AttrNotSurfaced)
		if info.Type == vss.ProvHardware {
			attrs |= uint32(vss.AttrHardwareAssisted)
		}
		created := sn.Created
		if created.IsZero() {
			created = time.Now()
		}
		rec := catalog.Snapshot{ID: v.snapshotID, SetID: cr.setID, SnapshotsCount: len(cr.vols), OriginalVolume: v.volume,
			DevicePath: sn.DevicePath, ProviderID: info.ID, ProviderName: info.Name, ProviderHandle: sn.Handle,
			Attributes: attrs, Context: int32(sctx), Created: created.UTC(), OriginatingMachine: s.c.opt.Machine,
			ServiceMachine: s.c.opt.Machine, Consistency: string(level), ConsistencyReason: reason, SessionID: s.id,
			AutoRelease: sctx.AutoRelease()}
		recs = append(recs, rec)
		setRec.Snapshots = append(setRec.Snapshots, document.SnapshotRecord{ID: rec.ID, OriginalVolume: rec.OriginalVolume,
			DevicePath: rec.DevicePath, ProviderID: rec.ProviderID, Attributes: rec.Attributes, Created: rec.Created})
	}
	s.mu.Lock()
	s.bcd.SnapshotSet = setRec
	s.mu.Unlock()
	// Snapshots, the BCD and the writers' WMDs go to the catalog in one
	// transaction (one fsync on the creation's path).
	if s.c.opt.Catalog != nil {
		setID, docs, derr := s.documents(true)
		err := derr
		if err == nil {
			err = cr.step(ctx, "record")
		}
		if err == nil {
			err = s.c.opt.Catalog.RecordSet(setID, recs, docs)
		}
		if err != nil {
			// The snapshots exist but cannot be tracked: undo them rather
			// than leak untracked snapshots.
			cr.discard(ctx, cr.provs)
			cr.parts = nil
			return cr.fail(ctx, false, s.c.Unexpected(ctx, s.id, "record snapshots in the catalog", err))
		}
	}
	cr.steps.close(true)
	_ = cr.stepDone(ctx, "record") // the set is recorded: only kill and pause mean anything here
	s.mu.Lock()
	s.snapshots = recs
	s.mu.Unlock()
	s.c.releaseCreation(s)
	if cr.held > 0 {
		s.c.event(ctx, LevelInfo, 0, s.id, "filesystems held frozen", "set", cr.setID.String(), "held", cr.held.String())
	}
	// The requester API has no place for these figures; lvss backup reads
	// them here for its summary and manifest.
	if cr.thawed > 0 {
		s.c.event(ctx, LevelInfo, 0, s.id, "writers held frozen", "set", cr.setID.String(), "held", cr.frozen.String(),
			"writers", strconv.Itoa(cr.thawed))
	}
	for _, r := range recs {
		s.c.event(ctx, LevelInfo, 0, s.id, "snapshot created", "snapshot", r.ID.String(), "set", r.SetID.String(),
			"volume", r.OriginalVolume, "provider", r.ProviderName, "consistency", r.Consistency, "reason", r.ConsistencyReason)
	}
	return nil
}

// consistency decides a snapshot's level (architecture: "Consistency is
// recorded"; D9): application when every writer with components on it
// froze and thawed in time, else crash for point-in-time providers and none
// for copying ones.
func (cr *creation) consistency(v volumeEntry, sn provider.Snapshot, sctx vss.Context) (Consistency, string) {
	info := v.prov.Info()
	fallback := ConsistencyCrash
	if !info.Atomic {
		fallback = ConsistencyNone
	}
	if sn.Inconsistent != "" {
		return ConsistencyNone, sn.Inconsistent
	}
	if !sctx.Writers() {
		return fallback, fmt.Sprintf("writerless context %s: no application was frozen", sctx.Base())
	}
	var good, bad []string
	for _, sw := range cr.parts {
		on := false
		for _, p := range cr.paths[sw] {
			if vv, ok := cr.volumeFor(p); ok && vv.snapshotID == v.snapshotID {
				on = true
				break
			}
		}
		if !on {
			continue
		}
		st := sw.status()
		if sw.consistent() {
			good = append(good, sw.w.Identity.Name)
		} else {
			bad = append(bad, fmt.Sprintf("writer %q %s (%s)", sw.w.Identity.Name, st.State, st.Failure.Name()))
		}
	}
	switch {
	case len(bad) > 0:
		return fallback, strings.Join(bad, "; ")
	case len(good) == 0:
		return fallback, "no writer taking part has components on this volume"
	}
	return ConsistencyApplication, "writers froze and thawed in time: " + strings.Join(good, ", ")
}
