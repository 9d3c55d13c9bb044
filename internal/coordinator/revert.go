package coordinator

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// revertRun is one volume's latest revert in this lvssd: running until done
// is closed, then err is its result (QueryRevertStatus).
type revertRun struct {
	snapshot uuid.UUID
	done     chan struct{}
	err      error
}

// recoverReverts asks every provider that reverts to finish the reverts an
// earlier lvssd left unfinished (D10: a revert resumes after a restart),
// before anyone is served. Each outcome is logged and becomes the volume's
// revert status.
func (c *Coordinator) recoverReverts(ctx context.Context, r *recoverer) {
	for _, p := range c.opt.Providers.All() {
		rv, ok := p.(provider.Reverter)
		if !ok {
			continue
		}
		for _, o := range rv.RecoverReverts(ctx) {
			err := provider.Translate(p, provider.CallRevert, o.Err)
			msg, what := "finished a revert an earlier lvssd left unfinished", RecRevertFinished
			if !o.Completed {
				msg, what = "could not finish a revert an earlier lvssd left unfinished; the volume was left as it was before it", RecRevertUndone
			}
			r.add(ctx, RecoveryAction{What: what, Object: o.SnapshotID.String(), Volume: o.Volume,
				Detail: "provider " + p.Info().Name, Err: err}, msg)
			if o.Volume == "" {
				continue
			}
			if err == nil && !o.Completed {
				err = vsserr.New(vsserr.Fail, "the revert was interrupted and undone")
			}
			run := &revertRun{snapshot: o.SnapshotID, done: make(chan struct{}), err: err}
			close(run.done)
			c.reverts[o.Volume] = run
		}
	}
}

// startRevertUnlessCreating starts the revert unless a snapshot set of the
// volume is being created: a revert swaps the volume that set is about to
// snapshot. Both checks are under c.mu, as claimForCreation's are.
func (c *Coordinator) startRevertUnlessCreating(volume string, id uuid.UUID) (*revertRun, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.creating[volume] {
		return nil, vsserr.New(vsserr.VolumeInUse, "a snapshot set of %s is being created; revert it when that creation has ended", volume)
	}
	return c.startRevert(volume, id)
}

// claimForCreation records a volume that s, the creator, adds to its set,
// unless it is being reverted (VSS_E_PROVIDER_VETO: the volume cannot be
// snapshotted while its content is swapped; AddToSnapshotSet has no
// closer code). A session that no longer holds the creation lock claims
// nothing (VSS_E_BAD_STATE), so no claim outlives its creation
// (releaseCreation forgets them). The caller must not hold s.mu: another
// session's StartSnapshotSet (acquireCreation) holds c.mu while it takes
// the creator's s.mu.
func (c *Coordinator) claimForCreation(s *Session, volume string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.creator != s {
		return badState("AddToSnapshotSet: the snapshot set's creation ended meanwhile")
	}
	c.revMu.Lock()
	r := c.reverts[volume]
	c.revMu.Unlock()
	if r != nil && !isClosed(r.done) {
		return vsserr.New(vsserr.ProviderVeto, "%s is being reverted to snapshot %s; add it when the revert has ended (lvss call QueryRevertStatus)", volume, r.snapshot)
	}
	if c.creating == nil {
		c.creating = map[string]bool{}
	}
	c.creating[volume] = true
	return nil
}

// startRevert marks the volume as reverting, or says that it already is.
func (c *Coordinator) startRevert(volume string, id uuid.UUID) (*revertRun, error) {
	c.revMu.Lock()
	defer c.revMu.Unlock()
	if r := c.reverts[volume]; r != nil {
		select {
		case <-r.done:
		default:
			return nil, vsserr.New(vsserr.RevertInProgress, "volume %s is being reverted to snapshot %s", volume, r.snapshot)
		}
	}
	r := &revertRun{snapshot: id, done: make(chan struct{})}
	c.reverts[volume] = r
	return r, nil
}

// writersOn names the running writers with components on the volume: in
// it, or containing it (D10).
func (c *Coordinator) writersOn(volume string) []string {
	var out []string
	for _, w := range c.subscribed() {
		w.mu.Lock()
		md := w.wmd
		w.mu.Unlock()
		if md == nil {
			continue
		}
		if path := componentOn(md, volume); path != "" {
			out = append(out, fmt.Sprintf("writer %q (pid %d) has a component at %s", w.Identity.Name, w.Peer.PID, path))
		}
	}
	return out
}

// componentOn is the first component path of md on the volume, "" if none.
func componentOn(md *document.WriterMetadata, volume string) string {
	on := func(p string) bool {
		if p == "" {
			return false
		}
		p = filepath.Clean(p)
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return within(p, volume) || within(volume, p)
	}
	for _, cm := range md.Components {
		for _, fl := range [][]document.FileDesc{cm.Files, cm.DatabaseFiles, cm.DatabaseLogFiles} {
			for _, f := range fl {
				if on(f.Path) {
					return f.Path
				}
				if on(f.AlternatePath) {
					return f.AlternatePath
				}
			}
		}
	}
	return ""
}

func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// RevertToSnapshot rolls the snapshot's volume back to it (vss-reference
// §2.3, D10). Writers get no event; a running writer with components on
// the volume refuses it unless force (bForceDismount), which also lets
// the provider swap a volume that processes are using. It returns when
// the volume holds the snapshot's content; it cannot be cancelled, and a
// revert cut by lvssd's end is finished at its next start. The snapshot
// and the volume's other snapshots stay (docs/decisions.md L38).
func (s *Session) RevertToSnapshot(ctx context.Context, id uuid.UUID, force bool) error {
	if err := s.admitted(MRevertToSnapshot); err != nil {
		return err
	}
	sn, err := s.c.opt.Catalog.GetSnapshot(id)
	if err != nil {
		return err
	}
	if !vss.Context(sn.Context).Persistent() {
		return vsserr.New(vsserr.UnsupportedContext, "snapshot %s was made in context %s, which is not persistent; only persistent snapshots can be reverted to",
			id, vss.Context(sn.Context))
	}
	p, err := s.c.opt.Providers.ByID(sn.ProviderID)
	if err != nil {
		return err
	}
	rv, ok := p.(provider.Reverter)
	if !ok {
		return vsserr.New(vsserr.NotImpl, "provider %s cannot revert volumes", p.Info().Name)
	}
	vol := sn.OriginalVolume
	if !force {
		if ws := s.c.writersOn(vol); len(ws) > 0 {
			return vsserr.New(vsserr.VolumeInUse, "%s: writers get no event on a revert, so it is refused while they run; stop them, or force it",
				strings.Join(ws, "; "))
		}
	}
	run, err := s.c.startRevertUnlessCreating(vol, id)
	if err != nil {
		return err
	}
	finish := func(err error) error {
		s.c.revMu.Lock()
		run.err = err
		close(run.done)
		s.c.revMu.Unlock()
		return err
	}
	// The snapshot's lock keeps a DeleteSnapshots or an exposure from
	// changing it under the revert.
	unlock, err := s.c.lockSnapshot(ctx, id)
	if err != nil {
		return finish(err)
	}
	defer unlock()
	s.c.event(ctx, LevelInfo, 0, s.id, "revert started", "snapshot", id.String(), "volume", vol, "force", fmt.Sprint(force))
	// Not cancellable: the provider runs to the end even if the
	// requester goes away.
	err = finish(provider.Translate(p, provider.CallRevert, rv.Revert(context.WithoutCancel(ctx), toProviderSnapshot(sn), force)))
	// The catalog is unchanged (L38), but the volume is not: whoever keeps
	// paths into its snapshots looks again (a failed revert was undone,
	// and looking costs nothing).
	s.c.snapshotsChanged()
	if err != nil {
		s.c.event(ctx, LevelError, vsserr.Code(err), s.id, "revert failed", "snapshot", id.String(), "volume", vol, "error", err.Error())
		return err
	}
	s.c.event(ctx, LevelInfo, 0, s.id, "volume reverted", "snapshot", id.String(), "volume", vol)
	return nil
}

// QueryRevertStatus returns an operation that follows the volume's latest
// revert in this lvssd: pending while it runs, then VSS_S_ASYNC_FINISHED
// or the revert's error; never cancelled. A volume with no revert since
// lvssd started (or finished by it at start) is VSS_E_OBJECT_NOT_FOUND.
func (s *Session) QueryRevertStatus(volume string) (*Async, error) {
	if err := s.admitted(MQueryRevertStatus); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(volume) {
		return nil, vsserr.New(vsserr.InvalidArg, "volume %q is not an absolute path", volume)
	}
	s.c.revMu.Lock()
	run := s.c.reverts[filepath.Clean(volume)]
	if run == nil {
		if r, err := filepath.EvalSymlinks(volume); err == nil {
			run = s.c.reverts[r]
		}
	}
	s.c.revMu.Unlock()
	if run == nil {
		return nil, vsserr.New(vsserr.ObjectNotFound, "no revert of %s since lvssd started", volume)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextAsync++
	a := &Async{id: s.nextAsync, method: MQueryRevertStatus, done: make(chan struct{}), cancel: func(error) {}, uncancellable: true}
	s.asyncs[a.id] = a
	go func() {
		<-run.done
		s.c.revMu.Lock()
		err := run.err
		s.c.revMu.Unlock()
		a.mu.Lock()
		a.err = err
		a.mu.Unlock()
		close(a.done)
	}()
	return a, nil
}
