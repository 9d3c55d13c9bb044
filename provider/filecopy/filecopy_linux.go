package filecopy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/confval"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// versionID changes with Version.
var versionID = uuid.MustParse("35a05d5a-184c-4564-bda6-78407edf97ad")

// entryAllowance is the space counted for each directory entry of a copy,
// reflinked or not (inode, directory block share, extent records), when
// free space is checked before the copy starts.
const entryAllowance = 4 << 10

// Provider is the copy provider. Make it with New.
type Provider struct {
	log      *slog.Logger
	volumes  []string // opt-in list, absolute and clean
	dir      string   // snapshot_dir, absolute and clean
	maxBytes int64
	minFree  int64

	// afterEntry, when set, runs after each entry of a tree is copied,
	// with its path relative to the volume. Tests use it to change the
	// volume in the middle of a copy at a known point.
	afterEntry func(rel string)
	// measuring, when set, runs before each entry EndPrepareSnapshots
	// measures. Tests use it to hold the measuring walk.
	measuring func()

	mu     sync.Mutex
	sets   map[uuid.UUID]*set
	closed provider.ClosedSets // finished and aborted sets: never prepared again
}

type phase int

const (
	phPreparing    phase = iota // BeginPrepareSnapshot seen
	phMeasuring                 // EndPrepareSnapshots at work
	phPrepared                  // EndPrepareSnapshots made the destinations
	phPreCommitted              // PreCommitSnapshots done
	phCommitting                // CommitSnapshots copying
	phCommitted                 // copies complete
	phPosted                    // PostCommitSnapshots reported them
	phPreFinal                  // PreFinalCommitSnapshots at work or done
	phFailed                    // a step failed; only AbortSnapshots is left
)

type set struct {
	id    uuid.UUID
	phase phase
	snaps []*snap
	// cancel and done belong to a running commit, so that AbortSnapshots
	// can stop it and wait before removing what it wrote.
	cancel context.CancelFunc
	done   chan struct{}
}

type snap struct {
	id       uuid.UUID
	volume   string // as the coordinator named it (Snapshot.OriginalVolume)
	real     string // symlink-free, what is copied
	expected int64  // apparent bytes found at EndPrepareSnapshots
	reflink  bool   // a probe clone from the volume into snapshot_dir worked
	made     bool   // metadata and destination exist on disk
	created  time.Time
	res      result
}

// New makes the copy provider. cfg.SnapshotDir defaults to
// <stateDir>/copies; a listed volume may contain the snapshot directory
// (the copy leaves it out) but may not lie inside it. minFree is the free
// space that must remain where the copies are kept (limits.min_free). New
// removes copies that a crash left half made or half deleted.
func New(cfg Config, minFree confval.Size, stateDir string, log *slog.Logger) (*Provider, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := cfg.SnapshotDir
	if dir == "" {
		if stateDir == "" {
			return nil, errors.New("copy provider: providers.copy.snapshot_dir is not set and there is no state directory to default to")
		}
		dir = filepath.Join(stateDir, "copies")
	}
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("copy provider: snapshot directory %q is not an absolute path", dir)
	}
	dir = filepath.Clean(dir)
	p := &Provider{log: log.With("provider", Name), dir: dir, maxBytes: int64(cfg.MaxBytes), minFree: int64(minFree),
		sets: map[uuid.UUID]*set{}}
	if p.maxBytes <= 0 {
		p.maxBytes = DefaultMaxBytes
	}
	for _, v := range cfg.Volumes {
		if !filepath.IsAbs(v) {
			return nil, fmt.Errorf("copy provider: volume %q is not an absolute path", v)
		}
		v = filepath.Clean(v)
		if within(v, dir) {
			return nil, fmt.Errorf("copy provider: volume %s lies inside the snapshot directory %s; copies would copy themselves", v, dir)
		}
		p.volumes = append(p.volumes, v)
	}
	p.removeInterrupted()
	return p, nil
}

// Info implements provider.Provider.
func (p *Provider) Info() provider.Info {
	return provider.Info{ID: ID, Name: Name, Type: vss.ProvSoftware, Version: "1.0", VersionID: versionID,
		Atomic: false, SetAtomic: false, NeedsFreeze: false, LongCommit: true,
		// A full copy of the files (reflinked where the filesystem can,
		// but complete either way): what VSS calls a plex.
		Kinds: vss.AttrPlex}
}

// SnapshotDir is where the copies and their metadata are kept.
func (p *Provider) SnapshotDir() string { return p.dir }

// IsVolumeSupported implements provider.Provider: true for a listed volume
// and for a directory inside one that is not under another mount point.
func (p *Provider) IsVolumeSupported(_ context.Context, volume string) (bool, error) {
	_, ok := p.supported(volume)
	return ok, nil
}

// supported resolves volume and reports whether the opt-in list covers it.
func (p *Provider) supported(volume string) (string, bool) {
	if !filepath.IsAbs(volume) {
		return "", false
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(volume))
	if err != nil {
		return "", false
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return "", false
	}
	if within(real, p.realDir()) {
		return "", false
	}
	var ms []mountinfo.Mount
	for _, v := range p.volumes {
		rv, err := filepath.EvalSymlinks(v)
		if err != nil || !within(real, rv) {
			continue
		}
		if real == rv {
			return real, true
		}
		// A path inside a listed volume is covered only on the volume's
		// own mount: the operator opted in a tree, not what is mounted
		// into it (the copy of the volume stops at mount points too).
		if ms == nil {
			if ms, err = mountinfo.Read(); err != nil {
				return "", false
			}
		}
		a, err1 := mountinfo.Find(ms, real)
		b, err2 := mountinfo.Find(ms, rv)
		if err1 == nil && err2 == nil && a.ID == b.ID {
			return real, true
		}
	}
	return "", false
}

// realDir is the snapshot directory with symlinks resolved, as far as it
// exists, so that it can be recognised inside a volume's tree.
func (p *Provider) realDir() string {
	if r, err := filepath.EvalSymlinks(p.dir); err == nil {
		return r
	}
	return p.dir
}

// BeginPrepareSnapshot implements provider.Provider. Nothing is written
// yet: a set abandoned here leaves nothing behind.
func (p *Provider) BeginPrepareSnapshot(_ context.Context, setID, snapshotID uuid.UUID, volume string, _ vss.Context) error {
	real, ok := p.supported(volume)
	if !ok {
		return vsserr.New(vsserr.VolumeNotSupportedByProvider,
			"the copy provider copies only the directories listed in providers.copy.volumes; %s is not one of them or inside one", volume)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Before abandoned sets are dropped: a refused call changes nothing.
	if p.closed.Closed(setID) {
		return vsserr.New(vsserr.InvalidArg, "snapshot set %s is finished or aborted; a set ID is prepared once", setID)
	}
	// Only one set is created at a time (the coordinator's creation
	// lock), so a set still in preparation when another begins was
	// abandoned before DoSnapshotSet and gets no Abort (vss-reference §7.3).
	for id, s := range p.sets {
		if id != setID && s.phase == phPreparing {
			delete(p.sets, id)
		}
	}
	s := p.sets[setID]
	if s == nil {
		s = &set{id: setID}
		p.sets[setID] = s
	}
	if s.phase != phPreparing {
		return vsserr.New(vsserr.InvalidArg, "snapshot set %s is past preparation", setID)
	}
	for _, sn := range s.snaps {
		if sn.id == snapshotID {
			return vsserr.New(vsserr.InvalidArg, "snapshot %s is already in set %s", snapshotID, setID)
		}
	}
	s.snaps = append(s.snaps, &snap{id: snapshotID, volume: volume, real: real})
	return nil
}

// lookup returns the set in the wanted phase. A set not held, or not in
// that phase, is refused with the code the provider contract gives the
// step: vss-reference §7.2 permits VSS_E_OBJECT_NOT_FOUND up to PostCommitSnapshots, and
// only E_INVALIDARG fits the two final steps.
func (p *Provider) lookup(setID uuid.UUID, want phase, step string) (*set, error) {
	code := vsserr.ObjectNotFound
	if step == "PreFinalCommitSnapshots" || step == "PostFinalCommitSnapshots" {
		code = vsserr.InvalidArg
	}
	s := p.sets[setID]
	if s == nil {
		return nil, vsserr.New(code, "copy provider: no snapshot set %s in creation", setID)
	}
	if s.phase != want {
		return nil, vsserr.New(code, "copy provider: %s out of order for set %s", step, setID)
	}
	return s, nil
}

// work moves a set from phase want into phase during for a step that
// takes time, and arranges that AbortSnapshots can stop it (cancel) and
// wait for it (done) before it removes what the step wrote. The caller
// defers finish. A context already done starts nothing and changes
// nothing: a cancelled request does no work (the provider contract).
func (p *Provider) work(ctx context.Context, setID uuid.UUID, want, during phase, step string) (*set, context.Context, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.lookup(setID, want, step)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("copy provider: %s: %w", step, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.phase, s.cancel, s.done = during, cancel, done
	return s, cctx, func() { cancel(); close(done) }, nil
}

// advance ends a step: the set moves to next, unless it was aborted
// meanwhile.
func (p *Provider) advance(s *set, next phase) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sets[s.id] != s {
		return vsserr.New(vsserr.ObjectNotFound, "copy provider: snapshot set %s was aborted", s.id)
	}
	s.phase = next
	return nil
}

func (p *Provider) setPhase(s *set, ph phase) {
	p.mu.Lock()
	s.phase = ph
	p.mu.Unlock()
}

// EndPrepareSnapshots implements provider.Provider: it measures each
// volume, checks max_bytes and free space, and makes the destinations.
func (p *Provider) EndPrepareSnapshots(ctx context.Context, setID uuid.UUID) error {
	s, cctx, finish, err := p.work(ctx, setID, phPreparing, phMeasuring, "EndPrepareSnapshots")
	if err != nil {
		return err
	}
	defer finish()
	if err := p.prepare(cctx, setID, s.snaps); err != nil {
		// Removed before finish: an Abort waiting for this step finds
		// nothing left to remove.
		_ = p.removeSnaps(s.snaps)
		p.setPhase(s, phFailed)
		return err
	}
	return p.advance(s, phPrepared)
}

func (p *Provider) prepare(ctx context.Context, setID uuid.UUID, snaps []*snap) error {
	if err := p.makeDir(); err != nil {
		return err
	}
	skip := p.realDir()
	need := p.minFree
	var plain int64
	for _, sn := range snaps {
		m, err := measure(ctx, sn.real, skip, p.measuring)
		if err != nil {
			return err
		}
		if m.bytes > p.maxBytes {
			return vsserr.New(vsserr.InsufficientStorage, "%s holds %s in %d files, more than providers.copy.max_bytes (%s)",
				sn.volume, human(m.bytes), m.files, human(p.maxBytes))
		}
		sn.expected = m.bytes
		sn.reflink = m.sample != "" && probeReflink(m.sample, p.dir)
		need += m.entries * entryAllowance
		if !sn.reflink {
			need += m.bytes
			plain += m.bytes
		}
		p.log.Debug("volume measured", "set", setID, "volume", sn.volume, "bytes", m.bytes, "files", m.files,
			"entries", m.entries, "reflink", sn.reflink)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p.dir, &st); err != nil {
		return vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: free space of %s", p.dir)
	}
	if avail := int64(st.Bavail) * st.Bsize; avail < need {
		return vsserr.New(vsserr.InsufficientStorage,
			"%s has %s free; the copies need about %s (%s of plain copies, the rest for metadata) and limits.min_free keeps %s",
			p.dir, human(avail), human(need-p.minFree), human(plain), human(p.minFree))
	}
	for _, sn := range snaps {
		rec := p.record(setID, sn, stateCreating)
		// The metadata comes first: a crash after it leaves a copy
		// that New recognises as interrupted and removes.
		if err := p.writeRecord(rec); err != nil {
			return err
		}
		sn.made = true
		if err := os.Mkdir(rec.Dir, 0o700); err != nil {
			return vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: destination of snapshot %s", sn.id)
		}
	}
	return nil
}

// makeDir creates the snapshot directory, private to root: a copy keeps
// its files' owners, and a user must not be able to change "their" file
// inside a snapshot. Exposure gives read access through a read-only mount.
func (p *Provider) makeDir() error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: snapshot directory")
	}
	fi, err := os.Stat(p.dir)
	if err != nil {
		return vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: snapshot directory")
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(p.dir, 0o700); err != nil {
			return vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: make %s private", p.dir)
		}
	}
	return nil
}

// PreCommitSnapshots implements provider.Provider.
func (p *Provider) PreCommitSnapshots(_ context.Context, setID uuid.UUID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.lookup(setID, phPrepared, "PreCommitSnapshots")
	if err != nil {
		return err
	}
	s.phase = phPreCommitted
	return nil
}

// CommitSnapshots implements provider.Provider. It copies every volume of
// the set while the writers are frozen; the filesystem is live. It stops
// promptly when ctx ends and leaves the partial copy to AbortSnapshots.
func (p *Provider) CommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	s, cctx, finish, err := p.work(ctx, setID, phPreCommitted, phCommitting, "CommitSnapshots")
	if err != nil {
		return err
	}
	defer finish()
	for _, sn := range s.snaps {
		sn.created = time.Now().UTC()
		res, err := p.copyVolume(cctx, sn)
		if err != nil {
			p.setPhase(s, phFailed)
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return vsserr.Wrap(vsserr.ProviderVeto, err, "copy of %s stopped after %d files", sn.volume, res.files)
			}
			p.log.Error("copy failed", "set", setID, "volume", sn.volume, "error", err)
			return err
		}
		sn.res = res
	}
	return p.advance(s, phCommitted)
}

// PostCommitSnapshots implements provider.Provider: it reports the copies
// and writes down what it knows of them. They become snapshots that Query
// lists, also after a restart, only with PostFinalCommitSnapshots: until
// then a crash leaves a copy that no catalog knows, which New removes.
func (p *Provider) PostCommitSnapshots(_ context.Context, setID uuid.UUID, _ int) ([]provider.Snapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.lookup(setID, phCommitted, "PostCommitSnapshots")
	if err != nil {
		return nil, err
	}
	out := make([]provider.Snapshot, 0, len(s.snaps))
	for _, sn := range s.snaps {
		rec := p.record(setID, sn, stateCreating)
		if err := p.writeRecord(rec); err != nil {
			s.phase = phFailed
			return nil, err
		}
		r := sn.res
		p.log.Info("volume copied", "set", setID, "snapshot", sn.id, "volume", sn.volume, "files", r.files,
			"bytes", r.bytes, "reflinked", r.cloned, "copied", r.plain, "took", r.took.Round(time.Millisecond),
			"consistent", r.inconsistent == "")
		out = append(out, rec.snapshot())
	}
	s.phase = phPosted
	return out, nil
}

// PreFinalCommitSnapshots implements provider.Provider: it makes the
// copies durable (syncfs of the snapshot directory's filesystem). Here,
// not in CommitSnapshots, because the writers have been thawed by now and
// writing back a plain copy can take a while.
func (p *Provider) PreFinalCommitSnapshots(_ context.Context, setID uuid.UUID) error {
	p.mu.Lock()
	s, err := p.lookup(setID, phPosted, "PreFinalCommitSnapshots")
	if err == nil {
		s.phase = phPreFinal
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	fd, err := unix.Open(p.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Syncfs(fd)
		unix.Close(fd)
	}
	if err != nil {
		p.mu.Lock()
		s.phase = phFailed
		p.mu.Unlock()
		return vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: write the copies of set %s to disk", setID)
	}
	return nil
}

// PostFinalCommitSnapshots implements provider.Provider: the copies become
// snapshots, listed by Query, and the set is forgotten.
func (p *Provider) PostFinalCommitSnapshots(_ context.Context, setID uuid.UUID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.lookup(setID, phPreFinal, "PostFinalCommitSnapshots")
	if err != nil {
		return err
	}
	for _, sn := range s.snaps {
		if err := p.writeRecord(p.record(setID, sn, stateCommitted)); err != nil {
			s.phase = phFailed
			return err
		}
	}
	delete(p.sets, setID)
	p.closed.Close(setID)
	return nil
}

// AbortSnapshots implements provider.Provider: it stops a running step,
// waits for it, and removes the set's copies and metadata. Idempotent.
func (p *Provider) AbortSnapshots(ctx context.Context, setID uuid.UUID) error {
	p.mu.Lock()
	s := p.sets[setID]
	delete(p.sets, setID)
	if s != nil {
		p.closed.Close(setID)
	}
	var done chan struct{}
	if s != nil && s.cancel != nil {
		s.cancel()
		done = s.done
	}
	p.mu.Unlock()
	if s == nil {
		return nil
	}
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			// The set is forgotten already, so no later Abort would
			// find it: clean up when the step does stop.
			go func() {
				<-done
				_ = p.removeSnaps(s.snaps)
			}()
			return vsserr.Wrap(vsserr.ProviderVeto, ctx.Err(), "copy provider: abort of set %s: the copy has not stopped yet; it is removed when it does", setID)
		}
	}
	return p.removeSnaps(s.snaps)
}

// removeSnaps deletes what was made for snapshots of an unfinished set.
func (p *Provider) removeSnaps(snaps []*snap) error {
	var errs []error
	for _, sn := range snaps {
		if !sn.made {
			continue
		}
		if err := p.remove(filepath.Join(p.dir, sn.id.String())); err != nil {
			errs = append(errs, err)
			continue
		}
		sn.made = false
	}
	if err := errors.Join(errs...); err != nil {
		p.log.Error("removing unfinished copies failed", "error", err)
		return vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: remove unfinished copies")
	}
	return nil
}

// Query implements provider.Provider: the finished copies in the snapshot
// directory, read from their metadata (so it works after a restart).
func (p *Provider) Query(context.Context) ([]provider.Snapshot, error) {
	recs, err := p.readRecords()
	if err != nil {
		return nil, err
	}
	var out []provider.Snapshot
	for _, r := range recs {
		if r.State != stateCommitted {
			continue
		}
		if fi, err := os.Lstat(r.Dir); err != nil || !fi.IsDir() {
			p.log.Warn("copy metadata without its copy", "snapshot", r.ID, "dir", r.Dir)
			continue
		}
		out = append(out, r.snapshot())
	}
	return out, nil
}

// DeleteSnapshot implements provider.Provider: it unmounts exposures of
// the copy and removes it and its metadata. Idempotent. Given a context
// already done it removes nothing; once started it finishes, since a copy
// half removed is of no use to anyone.
func (p *Provider) DeleteSnapshot(ctx context.Context, s provider.Snapshot) error {
	dir, err := p.locate(s)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("copy provider: DeleteSnapshot: %w", err)
	}
	p.mu.Lock()
	for _, st := range p.sets {
		for _, sn := range st.snaps {
			if sn.id.String() == filepath.Base(dir) && st.phase != phFailed {
				p.mu.Unlock()
				return vsserr.New(vsserr.BadState, "snapshot %s is still being created", sn.id)
			}
		}
	}
	p.mu.Unlock()
	if err := p.remove(dir); err != nil {
		return vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: delete snapshot %s", filepath.Base(dir))
	}
	return nil
}

// locate turns a snapshot into the directory of its copy, refusing a
// handle that is not a copy this provider made: the handle comes from the
// catalog and is about to be removed recursively.
func (p *Provider) locate(s provider.Snapshot) (string, error) {
	dir := s.Handle
	if dir == "" {
		if s.ID == uuid.Nil {
			return "", vsserr.New(vsserr.InvalidArg, "copy provider: snapshot has neither handle nor ID")
		}
		dir = filepath.Join(p.dir, s.ID.String())
	}
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return "", vsserr.New(vsserr.InvalidArg, "copy provider: handle %q is not a clean absolute path", s.Handle)
	}
	id, err := uuid.Parse(filepath.Base(dir))
	if err != nil || id.String() != filepath.Base(dir) || (s.ID != uuid.Nil && id != s.ID) {
		return "", vsserr.New(vsserr.InvalidArg, "copy provider: handle %q does not name snapshot %s", s.Handle, s.ID)
	}
	if filepath.Dir(dir) == p.dir {
		return dir, nil
	}
	// A copy made under an earlier snapshot_dir is still ours if its
	// metadata sits next to it and names it.
	if rec, err := readRecord(dir + ".json"); err == nil && rec.Dir == dir && rec.ID == id {
		return dir, nil
	}
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Lstat(dir + ".json"); errors.Is(err, os.ErrNotExist) {
			return dir, nil // gone already: deleting it again is a no-op
		}
	}
	return "", vsserr.New(vsserr.InvalidArg, "copy provider: %s is not a copy made by this provider", dir)
}

// remove deletes one copy: exposures first, then the metadata is marked
// so a crash midway is finished by New, then the tree, then the metadata.
func (p *Provider) remove(dir string) error {
	meta := dir + ".json"
	if err := unmountAll(dir, p.log); err != nil {
		return err
	}
	if rec, err := readRecord(meta); err == nil && rec.State != stateDeleting {
		rec.State = stateDeleting
		if err := writeRecordAt(meta, rec); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Remove(meta); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// removeInterrupted finishes what a crash interrupted: copies still being
// made or deleted, and stray temporary files.
func (p *Provider) removeInterrupted() {
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			p.log.Warn("cannot read the snapshot directory", "dir", p.dir, "error", err)
		}
		return
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, tempPrefix) || strings.HasPrefix(name, probePrefix) {
			_ = os.Remove(filepath.Join(p.dir, name))
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || uuid.Validate(id) != nil {
			continue
		}
		rec, err := readRecord(filepath.Join(p.dir, name))
		if err != nil || rec.State == stateCommitted {
			continue
		}
		dir := filepath.Join(p.dir, id)
		if err := p.remove(dir); err != nil {
			p.log.Warn("cannot remove an interrupted copy", "dir", dir, "error", err)
			continue
		}
		p.log.Info("removed a copy interrupted by a restart", "snapshot", id, "state", rec.State, "volume", rec.Volume)
	}
}

// within reports whether p is root or inside it.
func within(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root+"/")
}

// human prints a byte count for people.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n)/unit, 0
	for f >= unit && u < 4 {
		f /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTP"[u])
}

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Exposer  = (*Provider)(nil)
)
