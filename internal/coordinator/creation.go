package coordinator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// MaxVolumes is the per-set volume limit (vss-reference §1.5).
const MaxVolumes = 64

// volumeEntry is one AddToSnapshotSet.
type volumeEntry struct {
	snapshotID uuid.UUID
	volume     string
	prov       provider.Provider
}

// StartSnapshotSet creates the set and takes the system-wide creation lock.
func (s *Session) StartSnapshotSet() (uuid.UUID, error) { return s.startSnapshotSet(uuid.Nil) }

// startSnapshotSet starts a set with the given ID, or a new one for
// uuid.Nil.
func (s *Session) startSnapshotSet(given uuid.UUID) (uuid.UUID, error) {
	err := s.do(MStartSnapshotSet, func() error {
		if s.context == vss.CtxAll {
			return vsserr.New(vsserr.UnsupportedContext, "VSS_CTX_ALL is for administrative calls; snapshots need a snapshot context")
		}
		if err := s.c.acquireCreation(s); err != nil {
			return err
		}
		s.setID = given
		if s.setID == uuid.Nil {
			s.setID = uuid.New()
		}
		s.bcd.SnapshotSetID = s.setID
		return nil
	})
	if err != nil {
		return uuid.Nil, err
	}
	s.mu.Lock()
	id, sctx := s.setID, s.context
	s.mu.Unlock()
	s.c.event(context.Background(), LevelInfo, 0, s.id, "snapshot set creation started", "set", id.String(), "context", sctx.String())
	return id, nil
}

// AddToSnapshotSet adds a volume (a path) to the set. The provider is
// asked without holding the session's lock (a provider call may be slow,
// and Cancel, QueryStatus and the lease must not wait for it); the volume
// joins the set only if the creation is still the same afterwards.
func (s *Session) AddToSnapshotSet(ctx context.Context, volume string, providerID uuid.UUID) (uuid.UUID, error) {
	s.mu.Lock()
	from, err := s.admit(MAddToSnapshotSet)
	setID, sctx, n := s.setID, s.context, len(s.volumes)
	s.mu.Unlock()
	if err != nil {
		return uuid.Nil, err
	}
	vol, err := resolveVolume(volume)
	if err != nil {
		return uuid.Nil, err
	}
	if n >= MaxVolumes {
		return uuid.Nil, vsserr.New(vsserr.MaximumNumberOfVolumesReached, "a snapshot set holds at most %d volumes", MaxVolumes)
	}
	if s.hasVolume(vol) {
		return uuid.Nil, vsserr.New(vsserr.ObjectAlreadyExists, "%s is already in the set", vol)
	}
	p, err := s.c.opt.Providers.Select(ctx, providerID, vol, sctx.Extra()&vss.SnapshotKinds)
	if err != nil {
		// Select translated what providers said; its own refusals
		// (VSS_E_PROVIDER_NOT_REGISTERED for an unknown ID) are on
		// AddToSnapshotSet's list as they are.
		return uuid.Nil, err
	}
	if err := s.c.checkCap(vol); err != nil {
		return uuid.Nil, err
	}
	// Claimed before s.mu is taken: acquireCreation holds c.mu while it
	// reads the creator's set ID under the creator's s.mu, so taking c.mu
	// under s.mu here would deadlock with a StartSnapshotSet (found by the
	// soak test).
	if err := s.c.claimForCreation(s, vol); err != nil {
		return uuid.Nil, err
	}
	snap := uuid.New()
	if !sctx.Writers() {
		// No writer will be frozen in this context: a provider has no
		// freeze window to keep a flush out of, so it starts none early.
		ctx = provider.WithoutWriters(ctx)
	}
	if err := p.BeginPrepareSnapshot(ctx, setID, snap, vol, sctx); err != nil {
		return uuid.Nil, provider.Translate(p, provider.CallBeginPrepareSnapshot, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != from || s.setID != setID {
		// Aborted meanwhile (lease, release): the provider forgets a set
		// it never sees committed (vss-reference §7.3).
		return uuid.Nil, badState("AddToSnapshotSet: the snapshot set's creation ended meanwhile (session is %s)", s.state)
	}
	for _, v := range s.volumes {
		if v.volume == vol {
			return uuid.Nil, vsserr.New(vsserr.ObjectAlreadyExists, "%s is already in the set", vol)
		}
	}
	if len(s.volumes) >= MaxVolumes {
		return uuid.Nil, vsserr.New(vsserr.MaximumNumberOfVolumesReached, "a snapshot set holds at most %d volumes", MaxVolumes)
	}
	s.volumes = append(s.volumes, volumeEntry{snapshotID: snap, volume: vol, prov: p})
	s.transition(MAddToSnapshotSet, from)
	return snap, nil
}

func (s *Session) hasVolume(vol string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.volumes {
		if v.volume == vol {
			return true
		}
	}
	return false
}

// checkCap enforces the per-volume snapshot cap (vss-reference §1.5: 512
// by default). It reads the count the catalog keeps for the volume, so it
// costs the same with 10,000 snapshots as with none (issue 14).
func (c *Coordinator) checkCap(vol string) error {
	if c.opt.Catalog == nil {
		return nil
	}
	have, err := c.opt.Catalog.VolumeSnapshotCount(vol)
	if err != nil {
		return err
	}
	if have >= c.opt.MaxSnapshotsPerVolume {
		return vsserr.New(vsserr.MaximumNumberOfSnapshotsReached, "%s already has %d snapshots (limits.max_snapshots_per_volume = %d)",
			vol, have, c.opt.MaxSnapshotsPerVolume)
	}
	return nil
}

// resolveVolume makes the requester's path absolute, clean and free of
// symlinks, so that two spellings of one volume are one volume.
func resolveVolume(volume string) (string, error) {
	if !filepath.IsAbs(volume) {
		return "", vsserr.New(vsserr.InvalidArg, "volume %q is not an absolute path", volume)
	}
	p, err := filepath.EvalSymlinks(filepath.Clean(volume))
	if err != nil {
		if os.IsNotExist(err) {
			return "", vsserr.New(vsserr.ObjectNotFound, "volume %s does not exist", volume)
		}
		return "", vsserr.Wrap(vsserr.ObjectNotFound, err, "volume %s", volume)
	}
	return p, nil
}

// PrepareForBackup sends PrepareForBackup to the writers taking part; from
// then on they may read and edit their components of the BCD (D1).
// They take part from the moment it is issued (D14), whatever its outcome.
func (s *Session) PrepareForBackup() (*Async, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, err := s.admit(MPrepareForBackup)
	if err != nil {
		return nil, err
	}
	parts := s.computeParticipants()
	for _, sw := range parts {
		sw.advance(phIdle, phTakingPart)
		sw.w.mu.Lock()
		sw.w.last, sw.w.lastSID = sw, s.id
		sw.w.mu.Unlock()
	}
	return s.startAsync(MPrepareForBackup, from, func(ctx context.Context) error {
		s.fanOut(ctx, parts, EvPrepareBackup, s.c.opt.Timeouts.PrepareBackup, document.PhasePrepareBackup, nil)
		return ctx.Err()
	}), nil
}

// BackupComplete tells the writers that took part that the backup is over;
// the BCD is read-only for them from here (D1). A cancelled
// BackupComplete changes nothing (D17): the writers that were still
// answering keep waiting for it, and it may be called again.
func (s *Session) BackupComplete() (*Async, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, err := s.admit(MBackupComplete)
	if err != nil {
		return nil, err
	}
	var targets []*sessionWriter
	for _, sw := range s.participantsLocked() {
		if sw.status().State == vss.WSWaitingForBackupComplete {
			targets = append(targets, sw)
		}
	}
	return s.startAsync(MBackupComplete, from, func(ctx context.Context) error {
		done := s.fanOut(ctx, targets, EvBackupComplete, s.c.opt.Timeouts.BackupComplete, document.PhaseReadOnly, nil)
		for _, sw := range done {
			sw.setState(vss.WSStable)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		s.saveDocuments(ctx)
		return nil
	}), nil
}

// AbortBackup gives up (D4, D14). After a successful DoSnapshotSet
// writers get no Abort (D14): the backup is over without BackupComplete.
// With nothing in progress it is a no-op.
func (s *Session) AbortBackup(ctx context.Context) error {
	s.mu.Lock()
	from, err := s.admit(MAbortBackup)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.transition(MAbortBackup, from)
	s.mu.Unlock()
	if from == StSet || from == StPrepared {
		s.abortCreation(ctx, "AbortBackup")
	}
	return nil
}

// abortCreation ends an unfinished creation whose session already left
// set or prepared: Abort to the writers taking part (there are some only
// once PrepareForBackup was issued), the lock released. AbortSnapshots to
// providers that reached EndPrepare is done by DoSnapshotSet itself.
func (s *Session) abortCreation(ctx context.Context, why string) {
	s.mu.Lock()
	parts := s.participantsLocked()
	if len(parts) > 0 || s.called[MPrepareForBackup] {
		s.abortSent = true
	}
	setID := s.setID
	s.mu.Unlock()
	s.sendAbort(ctx, parts)
	s.c.releaseCreation(s)
	s.c.event(ctx, LevelInfo, 0, s.id, "snapshot set creation aborted", "reason", why, "set", setID.String())
}

// leaseExpired ends a creation that held the lock too long (D7). A
// running operation is cancelled: DoSnapshotSet aborts itself unless past
// its point of no return; any other (PrepareForBackup) ends cancelled,
// and the creation is aborted here.
func (s *Session) leaseExpired(lease time.Duration) {
	ctx := context.Background()
	s.c.event(ctx, LevelWarn, vsserr.BadState, s.id, "creation lease expired: snapshot set creation aborted", "lease", lease.String())
	s.mu.Lock()
	cancel, done := s.opCancel, s.opDone
	doing := s.pending != nil && s.pending.method == MDoSnapshotSet
	s.mu.Unlock()
	if cancel != nil {
		cancel(vsserr.Wrap(vsserr.BadState, errLeaseExpired, "the creation lease of %s expired: the snapshot set's creation was aborted", lease))
		if doing {
			return
		}
		<-done
	}
	s.mu.Lock()
	s.transition(mLeaseExpired, s.state) // done already if an operation was cancelled
	aborted := s.state == StAborted
	s.mu.Unlock()
	if aborted {
		s.abortCreation(ctx, "creation lease expired after "+lease.String())
	}
}

// errLeaseExpired is the cause of an operation the creation lease ended.
var errLeaseExpired = errors.New("creation lease expired")
