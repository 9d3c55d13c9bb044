package coordinator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Start-up recovery (L41). Before lvssd serves anyone it finishes or undoes
// what an earlier lvssd left: filesystems a dead freeze guard held (lvssd
// thaws those before it opens the catalog, and passes them in), reverts
// (each provider's own journal), then its own journal, the auto-release
// snapshots of sessions that died with it, and last the catalog against
// what every provider's Query lists. Each thing done or found is an event
// and a line of `lvss status`.

// Recovery actions (RecoveryAction.What).
const (
	RecThawed         = "thawed"           // a filesystem a dead freeze guard left frozen
	RecRevertFinished = "revert-finished"  // an interrupted revert completed
	RecRevertUndone   = "revert-undone"    // an interrupted revert rolled back
	RecSetAborted     = "set-aborted"      // a creation cut mid-way; its snapshots deleted
	RecSnapshotDelete = "snapshot-deleted" // one snapshot of such a set
	RecAutoRelease    = "auto-release-deleted"
	RecExposureUndone = "exposure-undone"  // an exposure nobody recorded, unmounted
	RecShareUndone    = "share-undone"     // a remote exposure nobody recorded, removed
	RecShareRemoved   = "share-removed"    // an lvss share in Samba's registry the catalog does not record, removed
	RecShareGone      = "share-gone"       // a recorded share Samba no longer has: recorded as not exposed
	RecShareRestored  = "share-restored"   // a shared snapshot's private exposure, made again after a reboot
	RecRestoreCut     = "restore-cut"      // a restore session cut after PreRestore
	RecEntryRemoved   = "entry-removed"    // a catalog entry whose snapshot is gone
	RecEntryKept      = "entry-kept"       // a catalog entry that could not be checked
	RecAdopted        = "snapshot-adopted" // a snapshot the catalog lacked, added
	RecUnknown        = "snapshot-unknown" // a snapshot the catalog lacks, reported
	RecFailed         = "failed"           // something recovery could not do (retried at the next start)
)

// RecoveryAction is one thing start-up recovery did or found.
type RecoveryAction struct {
	What   string
	Object string // snapshot or set ID, or a mount point
	Volume string
	Detail string
	Err    error
}

// Recovery is what start-up recovery did.
type Recovery struct {
	At      time.Time
	Took    time.Duration
	Actions []RecoveryAction
}

// cutWork is a creation or restore an earlier lvssd did not finish: writers
// that took part get Abort for it when they subscribe again.
type cutWork struct {
	session, set uuid.UUID
	kind         string
	writers      []catalog.JournalWriter
}

// recoverer collects the actions of one recovery.
type recoverer struct {
	c       *Coordinator
	rec     Recovery
	queries map[provider.Provider]queryResult
}

type queryResult struct {
	snaps []provider.Snapshot
	err   error
}

func (r *recoverer) add(ctx context.Context, a RecoveryAction, msg string) {
	r.rec.Actions = append(r.rec.Actions, a)
	level := LevelWarn
	if a.Err != nil {
		level = LevelError
	}
	r.c.event(ctx, level, vsserr.Code(a.Err), uuid.Nil, "recovery: "+msg, "action", a.What, a.objectKind(), a.Object,
		"volume", a.Volume, "detail", a.Detail, "error", errText(a.Err))
}

// objectKind names what Object is, as the event log's field.
func (a RecoveryAction) objectKind() string {
	switch a.What {
	case RecThawed:
		return "mount"
	case RecSetAborted:
		return "set"
	case RecRestoreCut:
		return "session"
	}
	return "snapshot"
}

// query asks a provider for its snapshots once per recovery step; forget
// makes the next call ask again (after deletions).
func (r *recoverer) query(ctx context.Context, p provider.Provider) ([]provider.Snapshot, error) {
	if q, ok := r.queries[p]; ok {
		return q.snaps, q.err
	}
	c, cancel := r.bounded(ctx)
	defer cancel()
	snaps, err := p.Query(c)
	if err != nil {
		err = provider.Translate(p, provider.CallQuery, err)
	}
	r.queries[p] = queryResult{snaps, err}
	return snaps, err
}

func (r *recoverer) forget() { r.queries = map[provider.Provider]queryResult{} }

// bounded gives one provider call of recovery timeouts.provider_call, as
// the calls of a creation have (L45): lvssd does not listen until
// recovery is over, so a provider that never answered (an exec command
// that hangs) would keep it from starting at all. A call that runs out
// fails like any other, is reported, and is tried again at the next start.
func (r *recoverer) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.c.opt.Timeouts.ProviderCall)
}

// recover runs at start; see the comment at the top of the file.
func (c *Coordinator) recover(ctx context.Context) error {
	r := &recoverer{c: c, rec: Recovery{At: time.Now().UTC()}, queries: map[provider.Provider]queryResult{}}
	start := time.Now()
	for _, m := range c.opt.ThawedAtStart {
		r.add(ctx, RecoveryAction{What: RecThawed, Object: m, Detail: "a freeze guard died holding it frozen; thawed before start"},
			"thawed a filesystem a dead freeze guard left frozen")
	}
	c.recoverReverts(ctx, r)
	if cat := c.opt.Catalog; cat != nil {
		journal, err := cat.Journal()
		if err != nil {
			return err
		}
		for _, e := range journal {
			switch e.Kind {
			case catalog.JournalCreate:
				r.cutCreation(ctx, e)
			case catalog.JournalExpose:
				r.cutExpose(ctx, e)
			case catalog.JournalShare:
				r.cutShare(ctx, e)
			case catalog.JournalRestore:
				r.cutRestore(ctx, e)
			default:
				r.add(ctx, RecoveryAction{What: RecFailed, Object: e.ID.String(), Err: vsserr.New(vsserr.Unexpected, "unknown journal entry kind %q", e.Kind)},
					"unknown journal entry kept")
			}
		}
		r.removeStepFiles(journal)
		if err := r.autoRelease(ctx); err != nil {
			return err
		}
		r.forget()
		if err := r.reconcile(ctx); err != nil {
			return err
		}
		r.reconcileShares(ctx)
	}
	r.rec.Took = time.Since(start)
	c.recMu.Lock()
	c.recovery = r.rec
	c.recMu.Unlock()
	if n := len(r.rec.Actions); n > 0 {
		c.log.Warn("recovery at start", "actions", n, "took", r.rec.Took)
	}
	return nil
}

// Recovery returns what start-up recovery did.
func (c *Coordinator) Recovery() Recovery {
	c.recMu.Lock()
	defer c.recMu.Unlock()
	rec := c.recovery
	rec.Actions = append([]RecoveryAction(nil), rec.Actions...)
	return rec
}

// cutCreation undoes a creation an earlier lvssd did not finish: every
// snapshot its providers made for the set is deleted. The entry stays when
// a deletion fails, so the next start tries again.
func (r *recoverer) cutCreation(ctx context.Context, e catalog.JournalEntry) {
	c := r.c
	step := e.Step
	if s := lastStep(c.opt.RunDir, e.SetID); s != "" {
		step = s
	}
	ids := map[uuid.UUID]bool{}
	provs := map[uuid.UUID]bool{}
	for _, s := range e.Snapshots {
		ids[s.ID] = true
		provs[s.ProviderID] = true
	}
	deleted, failed := 0, false
	for pid := range provs {
		p, err := c.opt.Providers.ByID(pid)
		if err != nil {
			failed = true
			r.add(ctx, RecoveryAction{What: RecFailed, Object: e.SetID.String(), Detail: "provider " + pid.String() + " is not configured", Err: err},
				"cannot undo a cut snapshot set: its provider is not configured")
			continue
		}
		snaps, err := r.query(ctx, p)
		if err != nil {
			failed = true
			r.add(ctx, RecoveryAction{What: RecFailed, Object: e.SetID.String(), Detail: "list the snapshots of " + p.Info().Name, Err: err},
				"cannot undo a cut snapshot set: its provider cannot list its snapshots")
			continue
		}
		for _, sn := range snaps {
			if sn.SetID != e.SetID && !ids[sn.ID] {
				continue
			}
			// RecordSet removes the entry with the set's records, so a
			// recorded snapshot here would be a bug; never delete one.
			if _, err := c.opt.Catalog.GetSnapshot(sn.ID); err == nil {
				continue
			}
			dc, cancel := r.bounded(ctx)
			err := p.DeleteSnapshot(dc, sn)
			cancel()
			if err != nil {
				failed = true
				err = provider.Translate(p, provider.CallDeleteSnapshot, err)
			} else {
				deleted++
			}
			r.add(ctx, RecoveryAction{What: RecSnapshotDelete, Object: sn.ID.String(), Volume: sn.OriginalVolume,
				Detail: "snapshot of set " + e.SetID.String() + ", which was cut", Err: err}, "deleted a snapshot of a cut snapshot set")
		}
	}
	r.add(ctx, RecoveryAction{What: RecSetAborted, Object: e.SetID.String(),
		Detail: fmt.Sprintf("creation by session %s cut at step %q by the end of an earlier lvssd; %d snapshot(s) of it deleted", e.SessionID, step, deleted)},
		"aborted a snapshot set an earlier lvssd did not finish")
	if len(e.Writers) > 0 {
		c.addCut(cutWork{session: e.SessionID, set: e.SetID, kind: "creation", writers: e.Writers})
	}
	if !failed {
		if err := c.opt.Catalog.DeleteJournal(e.Kind, e.ID); err != nil {
			r.add(ctx, RecoveryAction{What: RecFailed, Object: e.SetID.String(), Detail: "close the journal entry", Err: err}, "cannot close a journal entry")
		}
	}
}

// cutExpose undoes an exposure that was made and never recorded.
func (r *recoverer) cutExpose(ctx context.Context, e catalog.JournalEntry) {
	c := r.c
	sn, err := c.opt.Catalog.GetSnapshot(e.ID)
	if err == nil && sn.ExposedName == "" {
		p, perr := c.opt.Providers.ByID(sn.ProviderID)
		if ex, ok := p.(provider.Exposer); perr == nil && ok {
			uc, cancel := r.bounded(ctx)
			err = ex.Unexpose(uc, toProviderSnapshot(sn), e.Path)
			cancel()
			if err != nil {
				err = provider.Translate(p, provider.CallUnexpose, err)
			}
			r.add(ctx, RecoveryAction{What: RecExposureUndone, Object: e.ID.String(), Volume: sn.OriginalVolume, Detail: "at " + e.Path, Err: err},
				"undid an exposure an earlier lvssd did not record")
			if err != nil {
				return
			}
		}
	}
	if err := c.opt.Catalog.DeleteJournal(e.Kind, e.ID); err != nil {
		r.add(ctx, RecoveryAction{What: RecFailed, Object: e.ID.String(), Detail: "close the journal entry", Err: err}, "cannot close a journal entry")
	}
}

// cutRestore notes a restore session whose writers had PreRestore and
// never PostRestore: they get Abort when they subscribe again, so that
// a writer that stopped its application at PreRestore starts it again.
func (r *recoverer) cutRestore(ctx context.Context, e catalog.JournalEntry) {
	c := r.c
	c.addCut(cutWork{session: e.SessionID, kind: "restore", writers: e.Writers})
	r.add(ctx, RecoveryAction{What: RecRestoreCut, Object: e.SessionID.String(),
		Detail: fmt.Sprintf("restore session cut at %q; its %d writer(s) get Abort when they subscribe again", e.Step, len(e.Writers))},
		"a restore session was cut by the end of an earlier lvssd")
	if err := c.opt.Catalog.DeleteJournal(e.Kind, e.ID); err != nil {
		r.add(ctx, RecoveryAction{What: RecFailed, Object: e.ID.String(), Detail: "close the journal entry", Err: err}, "cannot close a journal entry")
	}
}

// removeStepFiles removes the step files of sets that have no journal
// entry any more (finished, or undone above).
func (r *recoverer) removeStepFiles(journal []catalog.JournalEntry) {
	if r.c.opt.RunDir == "" {
		return
	}
	dir := filepath.Join(r.c.opt.RunDir, stepsDir)
	names, _ := filepath.Glob(filepath.Join(dir, "*.steps"))
	left, _ := r.c.opt.Catalog.Journal()
	keep := map[string]bool{}
	for _, e := range left {
		keep[e.SetID.String()+".steps"] = true
	}
	for _, n := range names {
		if !keep[filepath.Base(n)] {
			os.Remove(n)
		}
	}
}

// autoRelease deletes the auto-release snapshots left in the catalog:
// sessions do not survive a restart, so their owners are gone (D11).
func (r *recoverer) autoRelease(ctx context.Context) error {
	orphans, err := r.c.opt.Catalog.ListSnapshots(catalog.Filter{AutoReleaseOnly: true})
	if err != nil {
		return fmt.Errorf("read catalog: %w", err)
	}
	for _, s := range orphans {
		dc, cancel := r.bounded(ctx)
		err := r.c.deleteSnapshot(dc, s, nil)
		cancel()
		r.add(ctx, RecoveryAction{What: RecAutoRelease, Object: s.ID.String(), Volume: s.OriginalVolume,
			Detail: "session " + s.SessionID.String() + " ended with an earlier lvssd", Err: err},
			"deleted auto-release snapshot left by an earlier lvssd")
	}
	return nil
}

// reconcile compares the catalog with every provider's own listing.
// A catalog entry whose snapshot the provider no longer holds is removed,
// but only when the provider answers for its volume now: a volume not
// mounted yet at boot lists nothing, and its entries are kept. A snapshot
// the catalog lacks is adopted with --adopt-snapshots, and otherwise
// reported when it is on a volume this catalog knows (others may belong to
// another lvssd's state directory).
func (r *recoverer) reconcile(ctx context.Context) error {
	c := r.c
	all, err := c.opt.Catalog.ListSnapshots(catalog.Filter{})
	if err != nil {
		return fmt.Errorf("read catalog: %w", err)
	}
	inCatalog := map[uuid.UUID]bool{}
	knownVolume := map[string]bool{}
	byProvider := map[uuid.UUID][]catalog.Snapshot{}
	for _, s := range all {
		inCatalog[s.ID] = true
		knownVolume[s.OriginalVolume] = true
		byProvider[s.ProviderID] = append(byProvider[s.ProviderID], s)
	}
	for _, p := range c.opt.Providers.All() {
		info := p.Info()
		snaps, err := r.query(ctx, p)
		if err != nil {
			r.add(ctx, RecoveryAction{What: RecFailed, Detail: "list the snapshots of provider " + info.Name + "; its catalog entries were not checked", Err: err},
				"cannot check the catalog against a provider")
			delete(byProvider, info.ID)
			continue
		}
		listed := map[uuid.UUID]bool{}
		for _, sn := range snaps {
			listed[sn.ID] = true
		}
		for _, s := range byProvider[info.ID] {
			if listed[s.ID] {
				continue
			}
			r.staleEntry(ctx, p, s)
		}
		delete(byProvider, info.ID)
		for _, sn := range snaps {
			if inCatalog[sn.ID] {
				continue
			}
			vol := filepath.Clean(sn.OriginalVolume)
			switch {
			case c.opt.AdoptSnapshots:
				r.adopt(ctx, p, sn)
			case knownVolume[vol]:
				r.add(ctx, RecoveryAction{What: RecUnknown, Object: sn.ID.String(), Volume: vol,
					Detail: fmt.Sprintf("provider %s holds it (%s) and the catalog has no record of it; start lvssd once with --adopt-snapshots to adopt it", info.Name, sn.DevicePath)},
					"a snapshot the catalog lacks")
			}
		}
	}
	for pid, left := range byProvider {
		for _, s := range left {
			r.add(ctx, RecoveryAction{What: RecEntryKept, Object: s.ID.String(), Volume: s.OriginalVolume,
				Detail: fmt.Sprintf("its provider %s (%s) is not configured; the entry was kept", s.ProviderName, pid)},
				"kept a catalog entry whose provider is not configured")
		}
	}
	return nil
}

// staleEntry handles a catalog entry the provider does not list.
func (r *recoverer) staleEntry(ctx context.Context, p provider.Provider, s catalog.Snapshot) {
	c := r.c
	vc, cancel := r.bounded(ctx)
	ok, err := p.IsVolumeSupported(vc, s.OriginalVolume)
	cancel()
	if err != nil || !ok {
		r.add(ctx, RecoveryAction{What: RecEntryKept, Object: s.ID.String(), Volume: s.OriginalVolume,
			Detail: fmt.Sprintf("provider %s does not list it, and does not answer for its volume now (not mounted?); the entry was kept", p.Info().Name), Err: err},
			"kept a catalog entry that could not be checked")
		return
	}
	err = c.opt.Catalog.DeleteSnapshot(s.ID)
	if err == nil {
		err = c.dropDocumentsIfLast(s.SetID)
	}
	r.add(ctx, RecoveryAction{What: RecEntryRemoved, Object: s.ID.String(), Volume: s.OriginalVolume,
		Detail: fmt.Sprintf("provider %s no longer holds it", p.Info().Name), Err: err},
		"removed a catalog entry whose snapshot is gone")
}

// dropDocumentsIfLast removes a set's documents once none of its
// snapshots is left.
func (c *Coordinator) dropDocumentsIfLast(setID uuid.UUID) error {
	left, err := c.opt.Catalog.ListSnapshots(catalog.Filter{SetID: setID})
	if err != nil || len(left) > 0 {
		return err
	}
	return c.opt.Catalog.DeleteDocuments(setID)
}

// adopt records a snapshot the catalog lacks. Nothing says how consistent
// it is or whose it was, so it is recorded as persistent, of no session,
// with consistency "none" and the reason.
func (r *recoverer) adopt(ctx context.Context, p provider.Provider, sn provider.Snapshot) {
	c := r.c
	info := p.Info()
	sctx := vss.CtxBackup | vss.Context(vss.AttrPersistent) | vss.Context(vss.AttrNoAutoRelease)
	created := sn.Created
	if created.IsZero() {
		created = time.Now()
	}
	rec := catalog.Snapshot{ID: sn.ID, SetID: sn.SetID, SnapshotsCount: 1, OriginalVolume: filepath.Clean(sn.OriginalVolume),
		DevicePath: sn.DevicePath, ProviderID: info.ID, ProviderName: info.Name, ProviderHandle: sn.Handle,
		Attributes: uint32(vss.Attributes(sctx)&^vss.SnapshotKinds|info.Kinds) | uint32(vss.AttrNotSurfaced),
		Context:    int32(sctx), Created: created.UTC(), OriginatingMachine: c.opt.Machine, ServiceMachine: c.opt.Machine,
		Consistency: string(ConsistencyNone), ConsistencyReason: "adopted at start (--adopt-snapshots): the catalog had no record of it, so how consistent it is is unknown"}
	err := c.opt.Catalog.PutSnapshots(rec)
	r.add(ctx, RecoveryAction{What: RecAdopted, Object: sn.ID.String(), Volume: rec.OriginalVolume,
		Detail: fmt.Sprintf("held by provider %s at %s", info.Name, sn.DevicePath), Err: err}, "adopted a snapshot the catalog lacked")
}

// addCut remembers work whose writers get Abort when they subscribe again.
func (c *Coordinator) addCut(w cutWork) {
	c.cutMu.Lock()
	c.cut = append(c.cut, w)
	c.cutMu.Unlock()
}

// abortCut sends a newly subscribed writer Abort for every creation or
// restore it took part in that an earlier lvssd did not finish. It runs
// after the writer's Identify, in its own goroutine; each Abort is bounded
// by timeouts.abort, and each is sent once.
func (c *Coordinator) abortCut(ctx context.Context, w *WriterHandle) {
	c.cutMu.Lock()
	var mine []cutWork
	for i := range c.cut {
		cw := &c.cut[i]
		for j, jw := range cw.writers {
			if jw.ClassID == w.Identity.ClassID && jw.InstanceName == w.Identity.InstanceName {
				mine = append(mine, cutWork{session: cw.session, set: cw.set, kind: cw.kind})
				cw.writers = append(cw.writers[:j:j], cw.writers[j+1:]...)
				break
			}
		}
	}
	c.cutMu.Unlock()
	for _, cw := range mine {
		// Abort, then BackupShutdown: the session is over, and a writer
		// keeps what it knows of a session until its BackupShutdown.
		ev := &Event{Type: EvAbort, SessionID: cw.session, SnapshotSetID: cw.set, Timeout: c.opt.Timeouts.Abort}
		_, err := w.call(ctx, ev)
		c.event(ctx, levelFor(err), vsserr.Code(err), cw.session, "sent Abort to a writer for a "+cw.kind+" an earlier lvssd did not finish",
			"writer", w.Identity.Name, "instance", w.InstanceID.String(), "set", nilOr(cw.set), "error", errText(err))
		if err == nil {
			w.call(ctx, &Event{Type: EvBackupShutdown, SessionID: cw.session, SnapshotSetID: cw.set, Timeout: c.opt.Timeouts.BackupShutdown})
		}
	}
}

func nilOr(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}

// recoveryState is the coordinator's part of recovery; embedded so the
// fields stay together.
type recoveryState struct {
	recMu    sync.Mutex
	recovery Recovery
	cutMu    sync.Mutex
	cut      []cutWork
}
