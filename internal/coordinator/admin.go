package coordinator

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/failpoint"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Consistency says what a snapshot's image can be trusted for
// (architecture: "Consistency is recorded"; D9, L16).
type Consistency string

// Consistency levels.
const (
	// ConsistencyApplication: every writer with components on the
	// snapshot's volume froze and thawed inside its window.
	ConsistencyApplication Consistency = "application"
	// ConsistencyCrash: a point-in-time image without (complete) writer
	// cover, as after a power cut.
	ConsistencyCrash Consistency = "crash"
	// ConsistencyNone: a copy made file by file without writer cover, or
	// one whose files changed while they were copied.
	ConsistencyNone Consistency = "none"
)

// Snapshot is a committed snapshot as the coordinator reports it
// (VSS_SNAPSHOT_PROP and what lvss records beside it).
type Snapshot struct {
	ID, SetID          uuid.UUID
	SnapshotsCount     int
	OriginalVolume     string
	DevicePath         string
	ExposedName        string
	ExposedPath        string
	ProviderID         uuid.UUID
	ProviderName       string
	Attributes         vss.Attributes
	Context            vss.Context
	Created            time.Time
	OriginatingMachine string
	ServiceMachine     string
	Consistency        Consistency
	ConsistencyReason  string
	SessionID          uuid.UUID
	AutoRelease        bool
}

func snapshotOf(r catalog.Snapshot) Snapshot {
	return Snapshot{ID: r.ID, SetID: r.SetID, SnapshotsCount: r.SnapshotsCount, OriginalVolume: r.OriginalVolume,
		DevicePath: r.DevicePath, ExposedName: r.ExposedName, ExposedPath: r.ExposedPath, ProviderID: r.ProviderID,
		ProviderName: r.ProviderName, Attributes: vss.Attributes(r.Attributes), Context: vss.Context(r.Context),
		Created: r.Created, OriginatingMachine: r.OriginatingMachine, ServiceMachine: r.ServiceMachine,
		Consistency: Consistency(r.Consistency), ConsistencyReason: r.ConsistencyReason, SessionID: r.SessionID,
		AutoRelease: r.AutoRelease}
}

// Object is one Query result: a snapshot or a provider.
type Object struct {
	Snapshot *Snapshot
	Provider *provider.Info
}

// queryPage is how many snapshots Query reads from the catalog at a time.
const queryPage = 256

// Query lists snapshots of the session's context (all with VSS_CTX_ALL)
// or providers. Its code is S_OK, or S_FALSE when nothing matches (D20).
func (s *Session) Query(queried uuid.UUID, qType, rType vss.ObjectType) ([]Object, vsserr.HRESULT, error) {
	s.mu.Lock()
	_, err := s.admit(MQuery)
	ctxFilter := s.context
	s.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	if queried != uuid.Nil || (qType != vss.ObjectNone && qType != vss.ObjectUnknown) {
		return nil, 0, vsserr.New(vsserr.InvalidArg, "Query supports only GUID_NULL / VSS_OBJECT_NONE as the queried object")
	}
	var out []Object
	switch rType {
	case vss.ObjectProvider:
		for _, p := range s.c.opt.Providers.All() {
			i := p.Info()
			out = append(out, Object{Provider: &i})
		}
	case vss.ObjectSnapshot:
		// The whole list, as VSS's Query returns it, but read through the
		// context index in pages: a session in one context reads only that
		// context's snapshots, and never holds the catalog's records and
		// the answer's at once.
		f := catalog.Filter{}
		if ctxFilter != vss.CtxAll {
			f.ByContext, f.Context = true, int32(ctxFilter)
		}
		for l := s.c.opt.Catalog.List(f); !l.Done(); {
			snaps, err := l.Next(queryPage)
			if err != nil {
				return nil, 0, s.c.Unexpected(context.Background(), s.id, "Query", err)
			}
			for i := range snaps {
				sn := snapshotOf(snaps[i])
				out = append(out, Object{Snapshot: &sn})
			}
		}
	default:
		return nil, 0, vsserr.New(vsserr.InvalidArg, "Query returns VSS_OBJECT_SNAPSHOT or VSS_OBJECT_PROVIDER, not %s", rType)
	}
	if len(out) == 0 {
		return nil, vsserr.False, nil
	}
	return out, vsserr.OK, nil
}

// GetSnapshotProperties returns one snapshot's properties.
func (s *Session) GetSnapshotProperties(id uuid.UUID) (Snapshot, error) {
	if err := s.admitted(MGetSnapshotProperties); err != nil {
		return Snapshot{}, err
	}
	r, err := s.c.opt.Catalog.GetSnapshot(id)
	if err != nil {
		return Snapshot{}, err
	}
	return snapshotOf(r), nil
}

// DeleteSnapshots deletes one snapshot or a whole set, sequentially,
// stopping at the first failure. Each deletion is logged once, here; a
// snapshot of this session's own set is forgotten by the session, so its
// release does not delete or report it again. An exposed snapshot is
// unexposed first (vss-reference §7.4, "Exposure").
func (s *Session) DeleteSnapshots(ctx context.Context, id uuid.UUID, t vss.ObjectType, force bool) (int, uuid.UUID, error) {
	return s.deleteSnapshots(ctx, id, t, nil)
}

// DeleteSnapshotsIfUnused is DeleteSnapshots that refuses, with
// VSS_E_VOLUME_IN_USE, a snapshot that is exposed or that belongs to
// another session still running (its set is being created, or a backup
// reads it now): the lvss addition retention relies on (docs/decisions.md
// L34). The check is made under the snapshot's lock, which ExposeSnapshot
// takes too, so no exposure can come between the check and the deletion.
func (s *Session) DeleteSnapshotsIfUnused(ctx context.Context, id uuid.UUID, t vss.ObjectType, force bool) (int, uuid.UUID, error) {
	return s.deleteSnapshots(ctx, id, t, s.refuseInUse)
}

// refuseInUse is DeleteSnapshotsIfUnused's check of one snapshot, as it
// is when its lock is held. The session's own snapshots are its to delete.
func (s *Session) refuseInUse(sn catalog.Snapshot) error {
	if sn.ExposedName != "" {
		return vsserr.New(vsserr.VolumeInUse, "snapshot %s is exposed %s; unexpose it to delete it", sn.ID, exposureText(sn))
	}
	if sn.SessionID != s.id && sn.SessionID != uuid.Nil && s.c.sessionLive(sn.SessionID) {
		return vsserr.New(vsserr.VolumeInUse, "snapshot %s belongs to session %s, which is still running", sn.ID, sn.SessionID)
	}
	return nil
}

func (s *Session) deleteSnapshots(ctx context.Context, id uuid.UUID, t vss.ObjectType, check func(catalog.Snapshot) error) (int, uuid.UUID, error) {
	if err := s.admitted(MDeleteSnapshots); err != nil {
		return 0, uuid.Nil, err
	}
	var snaps []catalog.Snapshot
	switch t {
	case vss.ObjectSnapshot:
		sn, err := s.c.opt.Catalog.GetSnapshot(id)
		if err != nil {
			return 0, uuid.Nil, err
		}
		snaps = append(snaps, sn)
	case vss.ObjectSnapshotSet:
		var err error
		snaps, err = s.c.opt.Catalog.ListSnapshots(catalog.Filter{SetID: id})
		if err != nil {
			return 0, uuid.Nil, s.c.Unexpected(ctx, s.id, "DeleteSnapshots", err)
		}
		if len(snaps) == 0 {
			return 0, uuid.Nil, vsserr.New(vsserr.ObjectNotFound, "no snapshot set %s", id)
		}
	default:
		return 0, uuid.Nil, vsserr.New(vsserr.InvalidArg, "DeleteSnapshots takes VSS_OBJECT_SNAPSHOT or VSS_OBJECT_SNAPSHOT_SET, not %s", t)
	}
	n := 0
	for _, sn := range snaps {
		if err := s.c.deleteSnapshot(ctx, sn, check); err != nil {
			return n, sn.ID, err
		}
		s.forget(sn.ID)
		s.c.event(ctx, LevelInfo, 0, s.id, "snapshot deleted by request", "snapshot", sn.ID.String(), "set", sn.SetID.String(), "volume", sn.OriginalVolume)
		n++
	}
	return n, uuid.Nil, nil
}

// forget drops a deleted snapshot from the session's own set.
func (s *Session) forget(id uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshots = slices.DeleteFunc(s.snapshots, func(sn catalog.Snapshot) bool { return sn.ID == id })
}

// snapLock is one snapshot's lock: a channel of one slot, so that waiting
// for it can end with the caller's context; refs counts its holders and
// waiters, and the last one out removes it from the map.
type snapLock struct {
	ch   chan struct{}
	refs int
}

// lockSnapshot takes the snapshot's lock, waiting for it as long as ctx
// allows. Expose, Unexpose and delete read the snapshot from the catalog
// and act on what they read; without the lock a delete that found the
// snapshot unexposed could delete one an ExposeSnapshot had just mounted,
// and an ExposeSnapshot that read it before a delete would write it back
// into the catalog after it was gone.
func (c *Coordinator) lockSnapshot(ctx context.Context, id uuid.UUID) (unlock func(), err error) {
	c.snapMu.Lock()
	l := c.snapLocks[id]
	if l == nil {
		l = &snapLock{ch: make(chan struct{}, 1)}
		c.snapLocks[id] = l
	}
	l.refs++
	c.snapMu.Unlock()
	drop := func() {
		c.snapMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(c.snapLocks, id)
		}
		c.snapMu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; drop() }, nil
	case <-ctx.Done():
		drop()
		return nil, vsserr.Wrap(vsserr.Unexpected, ctx.Err(), "wait for snapshot %s, which another call is changing", id)
	}
}

// deleteSnapshot removes a snapshot through its provider, then from the
// catalog (in that order: a crash in between leaves a catalog entry that a
// later delete can finish, never an untracked snapshot). It holds the
// snapshot's lock throughout and reads the snapshot again under it; check,
// when given, may refuse what it finds. A snapshot gone meanwhile is
// VSS_E_OBJECT_NOT_FOUND. Without a catalog, sn is all there is.
func (c *Coordinator) deleteSnapshot(ctx context.Context, sn catalog.Snapshot, check func(catalog.Snapshot) error) error {
	unlock, err := c.lockSnapshot(ctx, sn.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if c.opt.Catalog != nil {
		if sn, err = c.opt.Catalog.GetSnapshot(sn.ID); err != nil {
			if vsserr.Code(err) == vsserr.ObjectNotFound {
				return goneError{err}
			}
			return err
		}
	}
	if check != nil {
		if err := check(sn); err != nil {
			return err
		}
	}
	p, err := c.opt.Providers.ByID(sn.ProviderID)
	if err != nil {
		return err
	}
	if sn.ExposedName != "" {
		if err := c.undoExposure(ctx, p, sn); err != nil {
			return err
		}
	}
	if err := providerCall(ctx, provider.CallDeleteSnapshot, func() error { return p.DeleteSnapshot(ctx, toProviderSnapshot(sn)) }); err != nil {
		return provider.Translate(p, provider.CallDeleteSnapshot, err)
	}
	if c.opt.Catalog == nil {
		return nil
	}
	if err := failpoint.HitCtx(ctx, "catalog.delete-snapshot"); err != nil {
		return err
	}
	if err := c.opt.Catalog.DeleteSnapshot(sn.ID); err != nil && vsserr.Code(err) != vsserr.ObjectNotFound {
		return err
	}
	return nil
}

// goneError is deleteSnapshot's VSS_E_OBJECT_NOT_FOUND when the catalog
// no longer has the snapshot: someone deleted it first. A session's
// release tells it from a provider that cannot find its snapshot, which
// is a failure.
type goneError struct{ error }

func (e goneError) Unwrap() error { return e.error }

func toProviderSnapshot(sn catalog.Snapshot) provider.Snapshot {
	return provider.Snapshot{ID: sn.ID, SetID: sn.SetID, OriginalVolume: sn.OriginalVolume, DevicePath: sn.DevicePath,
		Handle: sn.ProviderHandle, Created: sn.Created}
}

// IsVolumeSupported asks one provider, or all (GUID_NULL).
func (s *Session) IsVolumeSupported(ctx context.Context, providerID uuid.UUID, volume string) (bool, error) {
	if err := s.admitted(MIsVolumeSupported); err != nil {
		return false, err
	}
	vol, err := resolveVolume(volume)
	if err != nil {
		return false, err
	}
	if providerID != uuid.Nil {
		p, err := s.c.opt.Providers.ByID(providerID)
		if err != nil {
			return false, err
		}
		ok, err := p.IsVolumeSupported(ctx, vol)
		return ok, provider.Translate(p, provider.CallIsVolumeSupported, err)
	}
	for _, p := range s.c.opt.Providers.All() {
		ok, err := p.IsVolumeSupported(ctx, vol)
		if err != nil {
			return false, provider.Translate(p, provider.CallIsVolumeSupported, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// ExposeSnapshot makes a snapshot visible: locally at a directory
// (VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, expose is the directory), or remotely
// as a read-only SMB share (VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY, expose is
// the share's name, pathFromRoot a directory of the snapshot to share
// instead of its root; share.go). It returns the exposed name: the
// directory, or the share's name.
func (s *Session) ExposeSnapshot(ctx context.Context, id uuid.UUID, pathFromRoot string, attrs vss.Attributes, expose string) (string, error) {
	if err := s.admitted(MExposeSnapshot); err != nil {
		return "", err
	}
	switch attrs {
	case vss.AttrExposedLocally:
	case vss.AttrExposedRemotely:
		return s.exposeRemotely(ctx, id, pathFromRoot, expose)
	default:
		return "", vsserr.New(vsserr.InvalidArg, "lAttributes must be VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY or VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY, not 0x%08X", uint32(attrs))
	}
	if pathFromRoot != "" {
		return "", vsserr.New(vsserr.InvalidArg, "local exposure shows the whole snapshot: pathFromRoot must be empty")
	}
	if !filepath.IsAbs(expose) {
		return "", vsserr.New(vsserr.InvalidArg, "expose path %q is not absolute", expose)
	}
	unlock, err := s.c.lockSnapshot(ctx, id)
	if err != nil {
		return "", err
	}
	defer unlock()
	sn, err := s.c.opt.Catalog.GetSnapshot(id)
	if err != nil {
		return "", err
	}
	if sn.ExposedName != "" {
		return "", vsserr.New(vsserr.ObjectAlreadyExists, "snapshot %s is already exposed %s", id, exposureText(sn))
	}
	p, err := s.c.opt.Providers.ByID(sn.ProviderID)
	if err != nil {
		return "", err
	}
	ex, ok := p.(provider.Exposer)
	if !ok {
		return "", vsserr.New(vsserr.NotSupported, "provider %s cannot expose snapshots", p.Info().Name)
	}
	path := filepath.Clean(expose)
	if err := mountableBy(s.peer, path); err != nil {
		return "", err
	}
	if err := noWiderReach(sn.OriginalVolume, path); err != nil {
		return "", err
	}
	// The journal names the exposure before it is made, so that one made
	// and never recorded (lvssd killed between the two) is undone at the
	// next start instead of staying mounted with no owner.
	cat := s.c.opt.Catalog
	if err := cat.PutJournal(catalog.JournalEntry{Kind: catalog.JournalExpose, ID: id, SessionID: s.id, Path: path,
		Step: "expose", Started: time.Now().UTC()}); err != nil {
		return "", s.c.Unexpected(ctx, s.id, "record the exposure in the journal", err)
	}
	name, err := ex.Expose(ctx, toProviderSnapshot(sn), path)
	if err == nil {
		err = failpoint.HitCtx(ctx, "expose.record")
		if err != nil {
			ex.Unexpose(context.WithoutCancel(ctx), toProviderSnapshot(sn), name)
		}
	}
	if err != nil {
		if jerr := cat.DeleteJournal(catalog.JournalExpose, id); jerr != nil {
			s.c.event(ctx, LevelWarn, vsserr.Code(jerr), s.id, "could not close the journal entry of a failed exposure", "error", jerr.Error())
		}
		return "", provider.Translate(p, provider.CallExpose, err)
	}
	sn.ExposedName = name
	sn.Attributes = (sn.Attributes | uint32(vss.AttrExposedLocally)) &^ uint32(vss.AttrNotSurfaced)
	if err := cat.PutSnapshotsClosing(catalog.JournalExpose, id, sn); err != nil {
		// Not recorded: not exposed either (the entry stays, so a start
		// would undo it if this fails too).
		if uerr := ex.Unexpose(context.WithoutCancel(ctx), toProviderSnapshot(sn), name); uerr == nil {
			cat.DeleteJournal(catalog.JournalExpose, id)
		}
		return "", s.c.Unexpected(ctx, s.id, "ExposeSnapshot", err)
	}
	return name, nil
}

// UnexposeSnapshot undoes ExposeSnapshot, of either kind.
func (s *Session) UnexposeSnapshot(ctx context.Context, id uuid.UUID) error {
	if err := s.admitted(MUnexposeSnapshot); err != nil {
		return err
	}
	unlock, err := s.c.lockSnapshot(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	sn, err := s.c.opt.Catalog.GetSnapshot(id)
	if err != nil {
		return err
	}
	if sn.ExposedName == "" {
		return vsserr.New(vsserr.ObjectNotFound, "snapshot %s is not exposed", id)
	}
	p, err := s.c.opt.Providers.ByID(sn.ProviderID)
	if err != nil {
		return err
	}
	if err := s.c.undoExposure(ctx, p, sn); err != nil {
		return err
	}
	notExposed(&sn)
	return s.c.opt.Catalog.PutSnapshots(sn)
}

// noWiderReach refuses an exposure that would let every user reach files
// they cannot reach on the volume itself (L53). Exposure keeps every
// file's owner and mode, the exposure's root included (it shows the
// volume's root); what it can widen is the way there: a volume below a
// directory others may not enter (/srv/private, mode 0700) exposed below
// directories everyone may enter would show its world-readable files to
// everyone. So when some parent of the volume shuts others out, some
// parent of the exposure directory must too. A path that cannot be looked
// at is left to the provider, which reports it.
func noWiderReach(volume, expose string) error {
	shut, err := shutParent(volume)
	if err != nil || shut == "" {
		return nil
	}
	open, err := shutParent(expose)
	if err != nil || open != "" {
		return nil
	}
	return vsserr.New(vsserr.InvalidArg,
		"exposing at %s would show the snapshot to every user, but its volume %s is not reachable by them (%s lets no others in): choose a directory below one others may not enter, such as one made with 'mkdir -m 0700'",
		expose, volume, shut)
}

// mountableBy refuses to let a requester that is not root mount a snapshot
// anywhere but over a directory of its own that it cannot swap (L54):
// lvssd mounts as root, and a member of the requester group who could
// name /etc, or a directory it then replaces with a symlink to /etc
// before the mount, would cover system files with snapshot content. So
// the directory (symlinks resolved) must be owned by the caller, and no
// entry on the path may be one the caller can rename or replace: each
// directory above must be neither the caller's nor writable by group or
// others, unless it is sticky (/tmp) and the entry below it is neither
// the caller's nor in a directory of the caller's. So nothing on the path
// can change between this check and the provider's mount. (The target's
// own parent is never excused by a sticky bit: the target is the
// caller's.)
func mountableBy(peer Peer, path string) error {
	if peer.UID == 0 {
		return nil
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil // the provider reports a path that is not there
	}
	var st unix.Stat_t
	if err := unix.Lstat(target, &st); err != nil {
		return nil
	}
	if st.Uid != peer.UID || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return vsserr.New(vsserr.AccessDenied, "uid %d may expose snapshots only over a directory of its own; %s is not one (owner uid %d)",
			peer.UID, target, st.Uid)
	}
	childUID := st.Uid
	for p := filepath.Dir(target); ; p = filepath.Dir(p) {
		if err := unix.Lstat(p, &st); err != nil {
			return vsserr.Wrap(vsserr.AccessDenied, err, "expose path %s", target)
		}
		mine := st.Uid == peer.UID
		writable := mine || st.Mode&0o022 != 0
		sticky := st.Mode&unix.S_ISVTX != 0
		if writable && (mine || !sticky || childUID == peer.UID) {
			return vsserr.New(vsserr.AccessDenied,
				"uid %d may not expose at %s: %s above it is %s, so the path could change under lvssd's mount; use a directory of yours in one only root may write (mkdir -p /srv/exposures/NAME; chown NAME /srv/exposures/NAME)",
				peer.UID, target, p, map[bool]string{true: "yours", false: "writable by group or others"}[mine])
		}
		if p == filepath.Dir(p) {
			return nil
		}
		childUID = st.Uid
	}
}

// shutParent returns the first parent directory of path, from / down,
// that others (neither owner nor group) may not search, or "" when every
// parent lets them through.
func shutParent(path string) (string, error) {
	var parents []string
	for p := filepath.Dir(path); ; p = filepath.Dir(p) {
		parents = append(parents, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	for i := len(parents) - 1; i >= 0; i-- {
		fi, err := os.Stat(parents[i])
		if err != nil {
			return "", err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return parents[i], nil
		}
	}
	return "", nil
}
