package btrfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/confval"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Identity of the provider (VSS_PROVIDER_PROP). The IDs never change: the
// catalog stores snapshots under the provider ID.
var (
	ProviderID = uuid.MustParse("bb19ec7c-72f0-42e2-a504-be6ff29d82a0")
	VersionID  = uuid.MustParse("b52167a9-c232-47be-8293-2ef81a4ec96a")
)

// Version is the provider's version string.
const Version = "1.0"

// defaultDirName is the subvolume, at the root of a volume's subvolume,
// that holds its snapshots unless the configuration names another place.
// Being a subvolume of its own, it appears empty in later snapshots.
const defaultDirName = ".lvss-snapshots"

// location is where a directory lives in btrfs.
type location struct {
	FSID   [16]byte // the filesystem
	Subvol uint64   // innermost subvolume holding the directory
	Rel    string   // directory relative to that subvolume's root ("" = the root)
	Root   string   // the subvolume root's path here, "" if not reachable in this mount namespace
	Ino    uint64   // the directory's inode
	Dev    uint64   // st_dev: one anonymous device per subvolume
}

// errNotSnapshot: a handle names something other than a read-only
// subvolume, which the provider refuses to delete.
var errNotSnapshot = errors.New("not a read-only btrfs subvolume; refusing to delete it")

// nested is a subvolume inside another one.
type nested struct {
	ID     uint64
	DirIno uint64 // inode of the directory holding it, in the parent
	Rel    string // its path relative to the parent's root
}

// Provider is the btrfs snapshot provider. It is safe for concurrent use;
// calls for one snapshot set are serialised, as the coordinator makes them.
type Provider struct {
	cfg     Config
	minFree confval.Size // limits.min_free
	log     *slog.Logger
	// stateDir is lvssd's state directory; reverts keep their journal
	// under it ("" disables revert).
	stateDir string

	// revertMu serialises reverts and their recovery in this process.
	revertMu sync.Mutex
	// revertStep, when set, is called after each durable step of a revert
	// (fault injection: lvssd's kill test, see SetRevertStepHook).
	revertStep func(step string)

	mu     sync.Mutex
	sets   map[uuid.UUID]*snapSet
	closed provider.ClosedSets // finished and aborted sets: never prepared again
	dirs   map[string]bool     // snapshot directories used by this process, for Query

	// working, when set (by tests), runs where a call spends its time:
	// in EndPrepareSnapshots before it waits for the syncs, in
	// CommitSnapshots before each snapshot ioctl. The conformance suite
	// holds a call there to cancel it while it works.
	working func(method string)
}

type setState int

// The states are the steps of vss-reference §7.3 a set has taken; each step checks
// that the one before it was the last (the provider contract refuses a
// step out of order or repeated).
const (
	statePreparing    setState = iota // BeginPrepareSnapshot seen
	statePrepared                     // EndPrepareSnapshots done: files open, records written
	statePreCommitted                 // PreCommitSnapshots done
	stateCommitted                    // CommitSnapshots made every snapshot
	statePosted                       // PostCommitSnapshots reported them
	statePreFinal                     // PreFinalCommitSnapshots done
)

type snapSet struct {
	mu        sync.Mutex // one call at a time on a set
	id        uuid.UUID
	state     setState
	snaps     []*pending
	commitErr error // kept for the log: Commit itself may not log
	// early syncs started by BeginPrepareSnapshot, one per filesystem:
	// the "start asynchronous preparation" of vss-reference §7.3, waited for by
	// EndPrepareSnapshots.
	early map[[16]byte]chan error
}

// pending is one snapshot of a set being created.
type pending struct {
	id      uuid.UUID
	setID   uuid.UUID
	volume  string
	loc     location
	dir     string   // snapshot directory
	dirLoc  location // where that directory lives, to tell our snapshots from nested subvolumes
	src     *os.File // a directory of the subvolume to snapshot, open from EndPrepare to PostCommit
	dst     *os.File // the snapshot directory
	made    bool
	rec     bool // its record file exists
	created time.Time
}

func (s *pending) path() string { return filepath.Join(s.dir, s.id.String()) }

// New makes the btrfs provider. cfg.Volumes may name paths that do not
// exist yet (mounts come and go); they are checked when a snapshot of them
// is prepared. minFree is the free space that must remain where snapshots
// are kept (limits.min_free). stateDir is lvssd's state directory, where
// reverts keep their journal ("" refuses reverts). A nil log discards.
func New(cfg Config, minFree confval.Size, stateDir string, log *slog.Logger) (*Provider, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	for _, v := range cfg.Volumes {
		if !filepath.IsAbs(v.Path) || v.SnapshotDir != "" && !filepath.IsAbs(v.SnapshotDir) {
			return nil, fmt.Errorf("btrfs provider: volume %q / snapshot_dir %q: paths must be absolute", v.Path, v.SnapshotDir)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{cfg: cfg, minFree: minFree, log: log.With("provider", "btrfs"), stateDir: stateDir,
		sets: map[uuid.UUID]*snapSet{}, dirs: map[string]bool{}}, nil
}

// Info implements provider.Provider.
func (p *Provider) Info() provider.Info {
	return provider.Info{
		ID: ProviderID, Name: "btrfs", Type: vss.ProvSoftware, Version: Version, VersionID: VersionID,
		// Each snapshot is one btrfs transaction: atomic per volume, not
		// across the volumes of a set, and no FIFREEZE (it would block the
		// snapshot itself).
		Atomic: true, SetAtomic: false, NeedsFreeze: false,
		// Copy-on-write: a snapshot shares its extents with the volume.
		Kinds: vss.AttrDifferential,
	}
}

// classify turns an OS error met while looking at a path into the HRESULT
// the caller should see. An error that already carries one is kept.
func classify(err error, format string, args ...any) error {
	var coded *vsserr.Error
	switch {
	case errors.As(err, &coded):
		return err
	case errors.Is(err, fs.ErrNotExist):
		return vsserr.Wrap(vsserr.ObjectNotFound, err, format, args...)
	case errors.Is(err, fs.ErrPermission):
		return vsserr.Wrap(vsserr.AccessDenied, err, format, args...)
	}
	return vsserr.Wrap(vsserr.ProviderVeto, err, format, args...)
}

// veto logs a user-actionable refusal (vss-reference §7.2 asks for both) and
// returns it.
func (p *Provider) veto(err error) error {
	p.log.Warn("btrfs provider refused", "err", err)
	return err
}

// IsVolumeSupported implements provider.Provider: true for a directory on
// btrfs, which is always inside some subvolume (the top level is one).
func (p *Provider) IsVolumeSupported(ctx context.Context, volume string) (bool, error) {
	if !filepath.IsAbs(volume) {
		return false, nil
	}
	_, err := locate(volume)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errNoBtrfs):
		return false, nil
	}
	return false, classify(err, "btrfs: inspect %s", volume)
}

// BeginPrepareSnapshot implements provider.Provider. It checks the volume
// and the snapshot location, creating the default .lvss-snapshots
// subvolume on first use, and takes nothing else.
func (p *Provider) BeginPrepareSnapshot(ctx context.Context, setID, snapID uuid.UUID, volume string, _ vss.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !filepath.IsAbs(volume) || filepath.Clean(volume) != volume {
		return vsserr.New(vsserr.InvalidArg, "btrfs: volume %q is not an absolute clean path", volume)
	}
	loc, err := locate(volume)
	if errors.Is(err, errNoBtrfs) {
		return vsserr.New(vsserr.VolumeNotSupportedByProvider, "btrfs: %s is not a directory on btrfs", volume)
	}
	if err != nil {
		return p.veto(classify(err, "btrfs: inspect %s", volume))
	}
	// Before setFor, which drops sets abandoned in preparation: a refused
	// call changes nothing.
	if p.closed.Closed(setID) {
		return vsserr.New(vsserr.InvalidArg, "btrfs: set %s is finished or aborted; a set ID is prepared once", setID)
	}
	dir, dirLoc, err := p.snapshotDir(volume, loc)
	if err != nil {
		return p.veto(err)
	}

	set := p.setFor(setID)
	defer set.mu.Unlock()
	if set.state != statePreparing {
		return vsserr.New(vsserr.InvalidArg, "btrfs: set %s is past preparation; no volume can be added", setID)
	}
	for _, s := range set.snaps {
		if s.id == snapID {
			return vsserr.New(vsserr.InvalidArg, "btrfs: snapshot %s is already in set %s", snapID, setID)
		}
	}
	set.snaps = append(set.snaps, &pending{id: snapID, setID: setID, volume: volume, loc: loc, dir: dir, dirLoc: dirLoc})
	// With much dirty data, start writing it out now, in the background:
	// by DoSnapshotSet it is done, and the snapshot's own flush (inside
	// the writers' freeze) finds little to write. With little, a sync
	// would cost as much as the flush it saves (a btrfs transaction
	// commit, milliseconds even on a clean filesystem).
	if set.early == nil {
		set.early = map[[16]byte]chan error{}
	}
	// With no writer to be frozen (a writerless context), there is no
	// freeze to keep the flush out of: a sync would only add a transaction
	// commit, which holds up the applications' own fsyncs, beside the
	// snapshot's.
	if _, ok := set.early[loc.FSID]; !ok && !provider.NoWritersFrozen(ctx) && dirtyBytes() > flushAbove {
		ch := make(chan error, 1)
		set.early[loc.FSID] = ch
		go func() { ch <- syncFS(dir) }()
	}
	return nil
}

// setFor returns the set, locked, making it if it is new. A requester that
// gives up before DoSnapshotSet leaves a set in preparation behind with no
// callback (vss-reference §7.3); it holds nothing yet, so a new set simply drops it.
func (p *Provider) setFor(setID uuid.UUID) *snapSet {
	for {
		p.mu.Lock()
		set := p.sets[setID]
		if set == nil {
			for id, old := range p.sets {
				if old.mu.TryLock() {
					if old.state == statePreparing {
						delete(p.sets, id)
					}
					old.mu.Unlock()
				}
			}
			set = &snapSet{id: setID}
			p.sets[setID] = set
		}
		p.mu.Unlock()
		set.mu.Lock()
		// Abort may have removed it meanwhile; then start again.
		p.mu.Lock()
		current := p.sets[setID] == set
		p.mu.Unlock()
		if current {
			return set
		}
		set.mu.Unlock()
	}
}

// configFor finds the configuration entry of a volume: the one naming
// exactly this path, else the first naming any path in the same subvolume
// (the whole subvolume is what gets snapshotted).
func (p *Provider) configFor(volume string, loc location) *VolumeConfig {
	resolve := func(path string) string {
		if r, err := filepath.EvalSymlinks(path); err == nil {
			return r
		}
		return filepath.Clean(path)
	}
	for i, v := range p.cfg.Volumes {
		if resolve(v.Path) == volume {
			return &p.cfg.Volumes[i]
		}
	}
	for i, v := range p.cfg.Volumes {
		if l, err := locate(resolve(v.Path)); err == nil && l.FSID == loc.FSID && l.Subvol == loc.Subvol {
			return &p.cfg.Volumes[i]
		}
	}
	return nil
}

// snapshotDir decides where the volume's snapshots go and makes sure the
// place exists, is on the volume's filesystem and is writable.
func (p *Provider) snapshotDir(volume string, loc location) (string, location, error) {
	if c := p.configFor(volume, loc); c != nil && c.SnapshotDir != "" {
		return p.configuredDir(volume, loc, c.SnapshotDir)
	}
	if loc.Root == "" {
		return "", location{}, vsserr.New(vsserr.ProviderVeto,
			"btrfs: the root of the subvolume holding %s is not reachable in lvssd's mount namespace (a subdirectory is mounted there), so %s cannot be created; set snapshot_dir for it in [[providers.btrfs.volume]]",
			volume, defaultDirName)
	}
	dir := filepath.Join(loc.Root, defaultDirName)
	dl, err := locate(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createSubvolume(loc.Root, defaultDirName, 0o700); err != nil {
			return "", location{}, classify(err, "btrfs: create %s for the snapshots of %s", dir, volume)
		}
		p.log.Info("created the snapshot subvolume", "path", dir, "volume", volume)
		dl, err = locate(dir)
	}
	if err != nil {
		return "", location{}, classify(err, "btrfs: snapshot directory %s", dir)
	}
	if dl.FSID != loc.FSID || dl.Rel != "" || dl.Subvol == loc.Subvol {
		return "", location{}, vsserr.New(vsserr.ProviderVeto,
			"btrfs: %s exists but is not the subvolume lvss keeps snapshots in; move it away or set snapshot_dir for %s", dir, volume)
	}
	if err := writable(dir); err != nil {
		return "", location{}, err
	}
	return dir, dl, nil
}

func (p *Provider) configuredDir(volume string, loc location, configured string) (string, location, error) {
	dir := filepath.Clean(configured)
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}
	check := func(path string) (location, error) {
		l, err := locate(path)
		if errors.Is(err, errNoBtrfs) {
			return l, vsserr.New(vsserr.ProviderVeto,
				"btrfs: snapshot_dir %s for %s is not a directory on btrfs; a btrfs snapshot can only be kept on the filesystem of its subvolume", configured, volume)
		}
		if err != nil {
			return l, err
		}
		if l.FSID != loc.FSID {
			return l, vsserr.New(vsserr.ProviderVeto,
				"btrfs: snapshot_dir %s for %s is on another btrfs filesystem; a btrfs snapshot can only be kept on the filesystem of its subvolume", configured, volume)
		}
		return l, nil
	}
	dl, err := check(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Made as a subvolume, like the default place, so it does not
		// grow later snapshots of the subvolume it sits in.
		if _, err := check(filepath.Dir(dir)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", location{}, vsserr.Wrap(vsserr.ProviderVeto, err,
					"btrfs: snapshot_dir %s for %s does not exist, nor does its parent; create it on the volume's btrfs filesystem", configured, volume)
			}
			return "", location{}, classify(err, "btrfs: snapshot_dir %s for %s: its parent", configured, volume)
		}
		if err := createSubvolume(filepath.Dir(dir), filepath.Base(dir), 0o700); err != nil {
			return "", location{}, classify(err, "btrfs: create snapshot_dir %s", dir)
		}
		p.log.Info("created the snapshot subvolume", "path", dir, "volume", volume)
		dl, err = check(dir)
	}
	if err != nil {
		return "", location{}, classify(err, "btrfs: snapshot_dir %s for %s", configured, volume)
	}
	if err := writable(dir); err != nil {
		return "", location{}, err
	}
	return dir, dl, nil
}

// EndPrepareSnapshots implements provider.Provider: it checks free space
// against limits.min_free, writes each snapshot's record (so that a crash
// after the commit still leaves it findable), opens what the commit needs,
// so that the commit is nothing but ioctls, and syncs the filesystems.
func (p *Provider) EndPrepareSnapshots(ctx context.Context, setID uuid.UUID) error {
	set, err := p.lockSet(setID, "EndPrepareSnapshots")
	if err != nil {
		return err
	}
	defer set.mu.Unlock()
	if set.state != statePreparing {
		return vsserr.New(refusal("EndPrepareSnapshots"), "btrfs: EndPrepareSnapshots out of order for set %s", setID)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	checked := map[string]bool{}
	for _, s := range set.snaps {
		if checked[s.dir] {
			continue
		}
		checked[s.dir] = true
		free, err := freeBytes(s.dir)
		if err != nil {
			return p.veto(classify(err, "btrfs: free space of %s", s.dir))
		}
		if want := uint64(p.minFree); free < want {
			return p.veto(vsserr.New(vsserr.InsufficientStorage,
				"btrfs: %s has %s free where the snapshot of %s would be kept (%s), less than limits.min_free (%s)",
				s.dir, confval.Size(free), s.volume, s.dir, p.minFree))
		}
	}
	for _, s := range set.snaps {
		if err := ctx.Err(); err != nil {
			p.release(set)
			return err
		}
		if err := p.open(s); err != nil {
			p.release(set)
			return p.veto(err)
		}
	}
	// Write out what is dirty while applications still run, so that
	// their freeze and the commit have little left to flush: wait for the
	// syncs BeginPrepareSnapshot started, and sync (again) if much is
	// still dirty or an early sync failed.
	if p.working != nil {
		p.working("EndPrepareSnapshots")
	}
	// With no writer to be frozen there is no window to keep the flush
	// out of: the snapshot's own flush is all it takes.
	if !provider.NoWritersFrozen(ctx) && (!p.waitEarly(ctx, set) || dirtyBytes() > flushAbove) {
		p.flush(ctx, set)
	}
	// A wait or flush cut short by the context is a cancelled call, not a
	// prepared set: the caller gave up, and Abort cleans up.
	if err := ctx.Err(); err != nil {
		p.release(set)
		return err
	}
	set.state = statePrepared
	return nil
}

// flushAbove is the system's dirty and under-writeback page cache above
// which the provider syncs ahead of the snapshot. Below it the snapshot's
// own flush inside the freeze takes about as long as a sync would, so the
// sync would only add a transaction commit (BENCHMARKS.md).
const flushAbove = 32 << 20

// waitEarly waits for the syncs BeginPrepareSnapshot started; false if
// one failed or timed out. No early sync is not a failure.
func (p *Provider) waitEarly(ctx context.Context, set *snapSet) bool {
	timer := time.NewTimer(syncWait)
	defer timer.Stop()
	ok := true
	for _, ch := range set.early {
		select {
		case err := <-ch:
			ch <- err // keep the result for a retried EndPrepare
			if err != nil {
				ok = false
			}
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return ok
}

func (p *Provider) open(s *pending) error {
	if _, err := os.Lstat(s.path()); err == nil {
		return vsserr.New(vsserr.InvalidArg, "btrfs: %s already exists", s.path())
	}
	src := s.loc.Root
	if src == "" {
		src = s.volume // any directory of the subvolume names it to the ioctl
	}
	var err error
	if s.src, err = os.Open(src); err != nil {
		return classify(err, "btrfs: open %s", src)
	}
	if s.dst, err = os.Open(s.dir); err != nil {
		return classify(err, "btrfs: open %s", s.dir)
	}
	// Not fsynced: the coordinator's catalog, written once the set is made,
	// is the durable record; this file only lets Query describe snapshots
	// after a restart, and Query lists a snapshot in lvss's own directory
	// even without it. An fsync here cost about 1 ms of every DoSnapshotSet.
	if err := writeRecord(s.dir, record{ID: s.id, SetID: s.setID, Volume: s.volume, Rel: s.loc.Rel}, false); err != nil {
		return classify(err, "btrfs: write the record of %s", s.path())
	}
	s.rec = true
	return nil
}

// release closes what a set holds open.
func (p *Provider) release(set *snapSet) {
	for _, s := range set.snaps {
		for _, f := range []**os.File{&s.src, &s.dst} {
			if *f != nil {
				(*f).Close()
				*f = nil
			}
		}
	}
}

// PreCommitSnapshots implements provider.Provider. It only checks the call
// order: the sync that keeps the snapshot ioctl short ran in
// EndPrepareSnapshots, before writers froze. A second sync here would run
// inside the writers' freeze window (btrfs has no filesystem hold to
// protect) and lengthen it — measured: about 1 ms on a clean filesystem
// for every writer held frozen.
func (p *Provider) PreCommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	return p.advance(setID, statePrepared, statePreCommitted, "PreCommitSnapshots")
}

// syncWait bounds each flush. A flush only moves work out of the commit,
// so one that takes longer is left to finish on its own and the set goes
// on: the snapshot writes out whatever is still dirty itself.
const syncWait = 10 * time.Second

// flush syncs each filesystem of the set (syncfs: dirty data and a
// transaction commit), in parallel, waiting at most syncWait. syncfs
// cannot be interrupted, so it runs where it can be abandoned.
func (p *Provider) flush(ctx context.Context, set *snapSet) {
	if p.working != nil {
		p.working("flush")
	}
	done := make(chan error, len(set.snaps))
	n := 0
	seen := map[[16]byte]bool{}
	for _, s := range set.snaps {
		if seen[s.loc.FSID] {
			continue
		}
		seen[s.loc.FSID] = true
		n++
		go func(path string) { done <- syncFS(path) }(s.dir)
	}
	timer := time.NewTimer(syncWait)
	defer timer.Stop()
	for range n {
		select {
		case err := <-done:
			if err != nil {
				p.log.Warn("sync before the snapshot failed; the snapshot flushes by itself", "set", set.id, "err", err)
			}
		case <-timer.C:
			p.log.Warn("sync before the snapshot is slow; going on without waiting", "set", set.id, "waited", syncWait)
			return
		case <-ctx.Done():
			return
		}
	}
}

// CommitSnapshots implements provider.Provider: one snapshot ioctl per
// volume, each its own btrfs transaction. It does not log (the hold window
// may cover the filesystem the log is on); a failure is logged at Abort.
func (p *Provider) CommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	set, err := p.lockSet(setID, "CommitSnapshots")
	if err != nil {
		return err
	}
	defer set.mu.Unlock()
	if set.state != statePreCommitted {
		return vsserr.New(refusal("CommitSnapshots"), "btrfs: CommitSnapshots out of order for set %s", setID)
	}
	for _, s := range set.snaps {
		if s.made {
			continue
		}
		if p.working != nil {
			p.working("CommitSnapshots")
		}
		if err := ctx.Err(); err != nil {
			set.commitErr = err
			return err
		}
		if err := snapshot(s.dst, s.src, s.id.String()); err != nil {
			set.commitErr = vsserr.Wrap(vsserr.ProviderVeto, err, "btrfs: snapshot of %s into %s", s.volume, s.dir)
			if errors.Is(err, syscall.ENOSPC) {
				set.commitErr = vsserr.Wrap(vsserr.ProviderVeto, err, "btrfs: no space left for the snapshot of %s in %s", s.volume, s.dir)
			}
			return set.commitErr
		}
		s.made, s.created = true, time.Now().UTC()
	}
	set.state = stateCommitted
	return nil
}

// PostCommitSnapshots implements provider.Provider: it reports the
// snapshots, with a warning for each nested subvolume that the snapshot
// shows as an empty directory.
func (p *Provider) PostCommitSnapshots(ctx context.Context, setID uuid.UUID, _ int) ([]provider.Snapshot, error) {
	set, err := p.lockSet(setID, "PostCommitSnapshots")
	if err != nil {
		return nil, err
	}
	defer set.mu.Unlock()
	if set.state != stateCommitted {
		return nil, vsserr.New(refusal("PostCommitSnapshots"), "btrfs: PostCommitSnapshots out of order for set %s", setID)
	}
	set.state = statePosted
	p.release(set)
	out := make([]provider.Snapshot, 0, len(set.snaps))
	for _, s := range set.snaps {
		snap := provider.Snapshot{
			ID: s.id, SetID: set.id, OriginalVolume: s.volume,
			DevicePath: filepath.Join(s.path(), s.loc.Rel), Handle: s.path(), Created: s.created,
			Warnings: p.nestedWarnings(s),
		}
		if t, err := subvolumeCreated(s.path()); err == nil {
			snap.Created = t // what Query reports later too
		}
		// The record learns the warnings, so that Query repeats them.
		if err := writeRecord(s.dir, record{ID: s.id, SetID: set.id, Volume: s.volume, Rel: s.loc.Rel, Warnings: snap.Warnings}, false); err != nil {
			p.log.Warn("could not update the snapshot record", "snapshot", s.id, "err", err)
		}
		p.log.Info("snapshot created", "snapshot", s.id, "set", set.id, "volume", s.volume, "path", s.path(), "warnings", len(snap.Warnings))
		out = append(out, snap)
	}
	return out, nil
}

// nestedWarnings names the subvolumes nested under the volume: a btrfs
// snapshot stops at subvolume boundaries, so each appears as an empty
// directory in it. The provider's own snapshot directory and snapshots
// are not data of the volume and are not reported.
func (p *Provider) nestedWarnings(s *pending) []string {
	paths, err := nestedPaths(s.volume, s.loc, s.dirLoc, true)
	if err != nil {
		return []string{fmt.Sprintf("could not list the subvolumes nested in %s (%v); any of them appears as an empty directory in the snapshot", s.volume, err)}
	}
	var out []string
	for _, path := range paths {
		out = append(out, fmt.Sprintf("nested subvolume %s is not in the snapshot; it appears as an empty directory", path))
	}
	return out
}

// PreFinalCommitSnapshots implements provider.Provider.
func (p *Provider) PreFinalCommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	return p.advance(setID, statePosted, statePreFinal, "PreFinalCommitSnapshots")
}

// PostFinalCommitSnapshots implements provider.Provider: the snapshots are
// read-only from birth, so this only forgets the set, and closes its ID.
func (p *Provider) PostFinalCommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	set, err := p.lockSet(setID, "PostFinalCommitSnapshots")
	if err != nil {
		return err
	}
	defer set.mu.Unlock()
	if set.state != statePreFinal {
		return vsserr.New(refusal("PostFinalCommitSnapshots"), "btrfs: PostFinalCommitSnapshots out of order for set %s", setID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range set.snaps {
		p.dirs[s.dir] = true
	}
	delete(p.sets, setID)
	p.closed.Close(setID)
	return nil
}

// AbortSnapshots implements provider.Provider: it deletes whatever the set
// made and forgets it. Unknown sets are not an error. What could not be
// deleted stays with the set, so a second Abort tries again.
func (p *Provider) AbortSnapshots(ctx context.Context, setID uuid.UUID) error {
	p.mu.Lock()
	set := p.sets[setID]
	p.mu.Unlock()
	if set == nil {
		return nil
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	p.closed.Close(setID)
	p.release(set)
	if set.commitErr != nil {
		p.log.Warn("snapshot commit failed; aborting the set", "set", setID, "err", set.commitErr)
		set.commitErr = nil
	}
	var errs []error
	var left []*pending
	for _, s := range set.snaps {
		if s.made {
			if err := destroySubvolume(s.path()); err != nil {
				errs = append(errs, err)
				left = append(left, s)
				continue
			}
			s.made = false
		}
		if s.rec {
			if err := removeRecord(s.dir, s.id); err != nil {
				errs = append(errs, err)
				left = append(left, s)
				continue
			}
			s.rec = false
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(errs) > 0 {
		set.snaps = left
		err := vsserr.Wrap(vsserr.ProviderVeto, errors.Join(errs...), "btrfs: abort of set %s left snapshots behind; delete them with lvss or btrfs subvolume delete", setID)
		p.log.Warn("abort incomplete", "set", setID, "err", err)
		return err
	}
	delete(p.sets, setID)
	p.log.Info("snapshot set aborted", "set", setID)
	return nil
}

// refusal is the code for a step of a set the provider does not hold or
// out of order (provider.Provider): vss-reference §7.2 permits VSS_E_OBJECT_NOT_FOUND up
// to PostCommit, and only E_INVALIDARG fits after it.
func refusal(method string) vsserr.HRESULT {
	if method == "PreFinalCommitSnapshots" || method == "PostFinalCommitSnapshots" {
		return vsserr.InvalidArg
	}
	return vsserr.ObjectNotFound
}

// lockSet returns the set, locked, for the step method.
func (p *Provider) lockSet(setID uuid.UUID, method string) (*snapSet, error) {
	p.mu.Lock()
	set := p.sets[setID]
	p.mu.Unlock()
	if set == nil {
		return nil, vsserr.New(refusal(method), "btrfs: no snapshot set %s in creation", setID)
	}
	set.mu.Lock()
	return set, nil
}

// advance moves a set whose last step was from to to, for the steps that
// do nothing else.
func (p *Provider) advance(setID uuid.UUID, from, to setState, method string) error {
	set, err := p.lockSet(setID, method)
	if err != nil {
		return err
	}
	defer set.mu.Unlock()
	if set.state != from {
		return vsserr.New(refusal(method), "btrfs: %s out of order for set %s", method, setID)
	}
	set.state = to
	return nil
}

// writable refuses a snapshot directory the kernel would refuse to write
// (a read-only mount or subvolume) before any writer is frozen.
func writable(dir string) error {
	if err := accessW(dir); err != nil {
		if errors.Is(err, syscall.EROFS) {
			return vsserr.Wrap(vsserr.ProviderVeto, err, "btrfs: snapshot directory %s is read-only; set a writable snapshot_dir", dir)
		}
		return classify(err, "btrfs: snapshot directory %s", dir)
	}
	return nil
}

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Exposer  = (*Provider)(nil)
)
