package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/procgroup"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Version is the provider version reported in Info.
const Version = "1.0"

// idSpace names the exec providers' IDs: an ID is the SHA-1 UUID of the
// configured name in this space, so a provider keeps its ID across
// restarts (the catalog refers to snapshots by provider ID) and two
// differently named providers never share one.
var idSpace = uuid.MustParse("3f0b8d2e-6a41-4c1e-9b57-0d6e2c9a7f13")

// ProviderID returns the provider ID an exec provider named name has.
func ProviderID(name string) uuid.UUID { return uuid.NewSHA1(idSpace, []byte("exec/"+name)) }

// defaultOtherTimeout bounds delete, list, expose and unexpose when the
// configuration does not.
const defaultOtherTimeout = 60 * time.Second

// Provider is one configured exec provider. Its methods are safe for
// concurrent use.
type Provider struct {
	cfg           Config
	info          provider.Info
	volumes       []string // configured volumes, cleaned
	commitTimeout time.Duration
	otherTimeout  time.Duration
	tmpRoot       string // under runDir; TMPDIRs of the commands
	committedDir  string // under runDir; records of commits (committed.go)
	indexPath     string
	log           *slog.Logger

	// idxMu orders index writes. CommitSnapshots never takes it.
	idxMu sync.Mutex
	// mu guards the fields below. It is never held across a command or
	// any disk I/O, so CommitSnapshots never waits behind one.
	mu     sync.Mutex
	sets   map[uuid.UUID]*set
	closed provider.ClosedSets // finished and aborted sets: never prepared again
	index  map[uuid.UUID]provider.Snapshot

	// bg counts goroutines waiting for abandoned commands.
	bg sync.WaitGroup
}

type setState int

const (
	statePreparing setState = iota
	statePrepared           // EndPrepareSnapshots done: environment built
	statePreCommitted
	stateCommitting
	stateCommitted // commit printed its handles
	stateFailed    // commit failed; handles holds what it printed anyway
	statePosted    // PostCommitSnapshots done: snapshots are in the index
	statePreFinal  // PreFinalCommitSnapshots done
)

// set is one snapshot set in creation.
type set struct {
	id      uuid.UUID
	context vss.Context
	vols    []volume
	state   setState
	env     []string // commit environment, built before the freeze
	tmpdir  string   // commit's TMPDIR, made before the freeze
	created time.Time
	// handles are commit's lines: one per volume after a successful
	// commit; whatever well-formed lines it printed after a failed one.
	handles []handleLine
	// late is a commit abandoned at its deadline that has not exited.
	late    *child
	aborted bool
}

type volume struct {
	snapshotID uuid.UUID
	path       string
	mount      mount
}

// mount is the filesystem that holds a volume.
type mount struct {
	point, source, fstype, number string
}

// New makes the provider described by cfg. hold is the coordinator's hold
// window, commit's deadline when cfg.Timeout is unset. runDir should be on
// a tmpfs (/run/lvss): the commands' TMPDIR is made there. stateDir keeps
// the snapshot index, in a file named after the provider ID so that
// several exec providers may share the directory. log may be nil.
func New(cfg Config, hold time.Duration, runDir, stateDir string, log *slog.Logger) (*Provider, error) {
	if !supported {
		return nil, errors.New("exec provider: supported on Linux only")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.Name == "":
		return nil, errors.New("exec provider: name is required")
	case cfg.Commit == "" || cfg.Delete == "":
		return nil, fmt.Errorf("exec provider %s: commit and delete commands are required", cfg.Name)
	case (cfg.Expose == "") != (cfg.Unexpose == ""):
		return nil, fmt.Errorf("exec provider %s: expose and unexpose go together: a snapshot that can be exposed must be unexposable", cfg.Name)
	case len(cfg.Volumes) == 0:
		return nil, fmt.Errorf("exec provider %s: no volumes", cfg.Name)
	case hold <= 0:
		return nil, fmt.Errorf("exec provider %s: hold window must be positive", cfg.Name)
	case runDir == "" || stateDir == "":
		return nil, fmt.Errorf("exec provider %s: run and state directories are required", cfg.Name)
	}
	p := &Provider{
		cfg: cfg, commitTimeout: hold, otherTimeout: defaultOtherTimeout, log: log.With("provider", cfg.Name),
		sets: map[uuid.UUID]*set{},
	}
	if cfg.Timeout != nil {
		if cfg.Timeout.D() > hold {
			return nil, fmt.Errorf("exec provider %s: timeout %s exceeds the hold window %s: commit runs while the filesystems are frozen", cfg.Name, cfg.Timeout, hold)
		}
		p.commitTimeout = cfg.Timeout.D()
	}
	if cfg.OtherTimeout != nil {
		p.otherTimeout = cfg.OtherTimeout.D()
	}
	for _, v := range cfg.Volumes {
		if !filepath.IsAbs(v) || strings.ContainsAny(v, "\n\x00") {
			return nil, fmt.Errorf("exec provider %s: volume %q must be an absolute path without newlines", cfg.Name, v)
		}
		p.volumes = append(p.volumes, filepath.Clean(v))
	}
	id := ProviderID(cfg.Name)
	p.info = provider.Info{
		ID: id, Name: cfg.Name,
		// The copy is made below the host's filesystems by something
		// else (storage, hypervisor, cloud, a host filesystem's clone):
		// that is what VSS calls a hardware provider, and the
		// coordinator marks its snapshots HARDWARE_ASSISTED.
		Type:    vss.ProvHardware,
		Version: Version, VersionID: uuid.NewSHA1(idSpace, []byte("version/"+Version)),
		Atomic: true, SetAtomic: true, NeedsFreeze: true,
		Kinds: cfg.Kinds(),
	}

	p.tmpRoot = filepath.Join(runDir, "exec-"+id.String())
	// Leftovers of a previous run are TMPDIRs of commands long gone.
	if err := os.RemoveAll(p.tmpRoot); err != nil {
		return nil, fmt.Errorf("exec provider %s: %w", cfg.Name, err)
	}
	if err := os.MkdirAll(p.tmpRoot, 0o700); err != nil {
		return nil, fmt.Errorf("exec provider %s: %w", cfg.Name, err)
	}
	if !procgroup.OnTmpfs(p.tmpRoot) {
		p.log.Warn("run directory is not on a tmpfs; a command writing temporary files there may block while a filesystem it lives on is frozen", "dir", runDir)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("exec provider %s: %w", cfg.Name, err)
	}
	p.indexPath = filepath.Join(stateDir, "exec-"+id.String()+".json")
	idx, err := loadIndex(p.indexPath)
	if err != nil {
		return nil, fmt.Errorf("exec provider %s: %w", cfg.Name, err)
	}
	p.index = idx
	p.committedDir = committedDir(runDir, id)
	if err := os.MkdirAll(p.committedDir, 0o700); err != nil {
		return nil, fmt.Errorf("exec provider %s: %w", cfg.Name, err)
	}
	p.adoptCommitted()
	return p, nil
}

// tempDir makes a command's TMPDIR under the run directory, making the
// provider's directory again if it was removed under lvssd (a tmpfs
// cleaner, an operator): the next command then works without a restart.
func (p *Provider) tempDir(prefix string) (string, error) {
	if err := os.MkdirAll(p.tmpRoot, 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(p.tmpRoot, prefix)
}

// Info implements provider.Provider.
func (p *Provider) Info() provider.Info { return p.info }

// IsVolumeSupported implements provider.Provider. Only the configured
// volumes themselves are supported, not paths inside them: the commands
// capture whole devices, and a snapshot's content is read as its device
// path plus the path relative to the volume, which holds only when the
// volume is what was captured. Symlinks in the configured paths are
// resolved, as the coordinator resolves the requester's.
func (p *Provider) IsVolumeSupported(_ context.Context, volume string) (bool, error) {
	return p.supports(volume), nil
}

func (p *Provider) supports(volume string) bool {
	volume = filepath.Clean(volume)
	for _, v := range p.volumes {
		if v == volume {
			return true
		}
		if r, err := filepath.EvalSymlinks(v); err == nil && r == volume {
			return true
		}
	}
	return false
}

// BeginPrepareSnapshot implements provider.Provider.
func (p *Provider) BeginPrepareSnapshot(_ context.Context, setID, snapshotID uuid.UUID, vol string, c vss.Context) error {
	if !p.supports(vol) {
		return vsserr.New(vsserr.VolumeNotSupportedByProvider, "exec provider %s is not configured for %s", p.info.Name, vol)
	}
	m, err := mountOf(vol)
	if err != nil {
		return vsserr.Wrap(vsserr.ObjectNotFound, err, "volume %s", vol)
	}
	var stale []string
	p.mu.Lock()
	defer func() {
		p.mu.Unlock()
		for _, d := range stale {
			os.RemoveAll(d)
		}
	}()
	// Before abandoned sets are dropped: a refused call changes nothing.
	if p.closed.Closed(setID) {
		return vsserr.New(vsserr.InvalidArg, "snapshot set %s is finished or aborted; a set ID is prepared once", setID)
	}
	s := p.sets[setID]
	if s == nil {
		// A requester that gave up before DoSnapshotSet leaves its set
		// behind without an Abort (vss-reference §7.3); only one set is created at a
		// time, so a set not yet committed is abandoned when another
		// starts.
		for id, o := range p.sets {
			if o.state < stateCommitting {
				delete(p.sets, id)
				if o.tmpdir != "" {
					stale = append(stale, o.tmpdir)
				}
			}
		}
		s = &set{id: setID, context: c}
		p.sets[setID] = s
	}
	if s.state != statePreparing {
		return vsserr.New(vsserr.InvalidArg, "snapshot set %s is past preparation", setID)
	}
	if c != s.context {
		return vsserr.New(vsserr.InvalidArg, "snapshot set %s: context %s differs from the set's %s", setID, c, s.context)
	}
	for _, v := range s.vols {
		if v.snapshotID == snapshotID || v.path == vol {
			return vsserr.New(vsserr.InvalidArg, "snapshot set %s already has snapshot %s or volume %s", setID, snapshotID, vol)
		}
	}
	s.vols = append(s.vols, volume{snapshotID: snapshotID, path: vol, mount: m})
	return nil
}

// EndPrepareSnapshots implements provider.Provider. It builds the commit's
// environment and TMPDIR now, before anything is frozen, so that
// CommitSnapshots itself touches no filesystem. Given a context already
// done, it makes nothing.
func (p *Provider) EndPrepareSnapshots(ctx context.Context, setID uuid.UUID) error {
	p.mu.Lock()
	s, err := p.setIn(setID, statePreparing)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	if err := ctx.Err(); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("exec provider %s: EndPrepareSnapshots: %w", p.info.Name, err)
	}
	env := commitEnv(p.info, s)
	p.mu.Unlock()

	dir, err := p.tempDir("commit-")
	if err != nil {
		return fmt.Errorf("commit TMPDIR: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, err = p.setIn(setID, statePreparing); err != nil {
		os.RemoveAll(dir)
		return err
	}
	s.env, s.tmpdir, s.state = env, dir, statePrepared
	return nil
}

// setIn returns the set if it is in the wanted state. Caller holds p.mu.
// A set not held, or not in that state, is refused with the code the
// provider contract gives the step: vss-reference §7.2 permits VSS_E_OBJECT_NOT_FOUND up
// to PostCommitSnapshots, and only E_INVALIDARG fits the two final steps,
// which expect a set posted or pre-final-committed.
func (p *Provider) setIn(setID uuid.UUID, want setState) (*set, error) {
	code := vsserr.ObjectNotFound
	if want == statePosted || want == statePreFinal {
		code = vsserr.InvalidArg
	}
	s := p.sets[setID]
	if s == nil {
		return nil, vsserr.New(code, "no snapshot set %s in creation", setID)
	}
	if s.state != want {
		return nil, vsserr.New(code, "snapshot set %s is not at the expected step", setID)
	}
	return s, nil
}

func commitEnv(info provider.Info, s *set) []string {
	env := []string{
		"LVSS_PROVIDER_NAME=" + info.Name,
		"LVSS_PROVIDER_ID=" + info.ID.String(),
		"LVSS_SNAPSHOT_SET_ID=" + s.id.String(),
		"LVSS_CONTEXT=" + s.context.String(),
		fmt.Sprintf("LVSS_CONTEXT_VALUE=0x%08X", uint32(s.context)),
		"LVSS_VOLUME_COUNT=" + strconv.Itoa(len(s.vols)),
	}
	var vols, ids, mps, devs []string
	for i, v := range s.vols {
		n := strconv.Itoa(i + 1)
		env = append(env,
			"LVSS_VOLUME_"+n+"="+v.path,
			"LVSS_SNAPSHOT_ID_"+n+"="+v.snapshotID.String(),
			"LVSS_MOUNT_POINT_"+n+"="+v.mount.point,
			"LVSS_DEVICE_"+n+"="+v.mount.source,
			"LVSS_FSTYPE_"+n+"="+v.mount.fstype,
			"LVSS_DEVICE_NUMBER_"+n+"="+v.mount.number,
		)
		vols, ids = append(vols, v.path), append(ids, v.snapshotID.String())
		mps, devs = append(mps, v.mount.point), append(devs, v.mount.source)
	}
	return append(env,
		"LVSS_VOLUMES="+strings.Join(vols, "\n"),
		"LVSS_SNAPSHOT_IDS="+strings.Join(ids, "\n"),
		"LVSS_MOUNT_POINTS="+strings.Join(mps, "\n"),
		"LVSS_DEVICES="+strings.Join(devs, "\n"),
	)
}

// PreCommitSnapshots implements provider.Provider.
func (p *Provider) PreCommitSnapshots(_ context.Context, setID uuid.UUID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.setIn(setID, statePrepared)
	if err != nil {
		return err
	}
	s.state = statePreCommitted
	return nil
}

// CommitSnapshots implements provider.Provider: it runs the commit command
// once for all the set's volumes, while the coordinator holds them frozen.
// It does not log and touches no disk; the deadline is the configured
// timeout (default: the hold window) or ctx's, whichever comes first. A
// stopped commit's error unwraps to context.DeadlineExceeded.
func (p *Provider) CommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	p.mu.Lock()
	s, err := p.setIn(setID, statePreCommitted)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	if err := ctx.Err(); err != nil {
		// The hold is over before it began: starting a command now
		// would only have it killed at once, half done.
		s.state = stateFailed
		p.mu.Unlock()
		return fmt.Errorf("exec provider %s: commit not started: %w", p.info.Name, context.Cause(ctx))
	}
	s.state = stateCommitting
	s.created = time.Now().UTC()
	timeout := within(ctx, p.commitTimeout)
	env := append(slices.Clip(s.env), "LVSS_TIMEOUT_MS="+strconv.FormatInt(timeout.Milliseconds(), 10))
	tmpdir := s.tmpdir
	p.mu.Unlock()

	c, err := start(opCommit, p.cfg.Commit, env, tmpdir, commitOutCap)
	if err != nil {
		p.mu.Lock()
		s.state = stateFailed
		p.mu.Unlock()
		return fmt.Errorf("exec provider %s: %w", p.info.Name, err)
	}
	werr := c.wait(ctx, timeout)
	out, over := c.stdout.Bytes()

	p.mu.Lock()
	err = p.committed(s, c, werr, out, over)
	made := p.orphans(s)
	p.mu.Unlock()
	p.recordCommitted(s.id, made)
	return err
}

// committed takes in what the commit command printed. Caller holds p.mu.
func (p *Provider) committed(s *set, c *child, werr error, out []byte, over bool) error {
	n := len(s.vols)
	if werr != nil {
		// Only complete lines count when the output was cut short, by
		// the kill or by the cap.
		s.state, s.handles = stateFailed, salvage(out, isStop(werr) || over)
		if !c.finished() {
			s.late = c
			p.bg.Add(1)
			go p.reapLateCommit(s, c)
		}
		return fmt.Errorf("exec provider %s: %w", p.info.Name, werr)
	}
	hs, err := parseCommit(out, over, n)
	if err != nil {
		s.state, s.handles = stateFailed, salvage(out, over)
		return fmt.Errorf("exec provider %s: %w", p.info.Name, err)
	}
	s.state, s.handles = stateCommitted, hs
	return nil
}

// within is what a command may take: its timeout d, cut short by the
// caller's deadline. The command is told (LVSS_TIMEOUT_MS) so it can bound
// its own calls; the kill comes at whichever ends first anyway.
func within(ctx context.Context, d time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		d = max(time.Until(dl), 0)
	}
	return d
}

func isStop(err error) bool {
	var s *stopError
	return errors.As(err, &s)
}

// reapLateCommit waits for a commit abandoned at its deadline and
// reconciles what it printed: handles the set did not know yet are added
// to it if it is still alive, so that Abort deletes them, and deleted here
// if the set is gone. By the time such a process exits it is no longer
// blocked, which for a commit means the filesystems were thawed; logging
// is safe again.
func (p *Provider) reapLateCommit(s *set, c *child) {
	defer p.bg.Done()
	<-c.done
	out, _ := c.stdout.Bytes()
	all := salvage(out, true)

	p.mu.Lock()
	// What was salvaged at the deadline is a prefix of all: complete
	// lines only grow.
	var fresh []handleLine
	var doomed []provider.Snapshot
	s.late = nil
	gone := s.aborted
	for i, h := range all {
		if slices.ContainsFunc(s.handles, func(k handleLine) bool { return k.handle == h.handle }) {
			continue
		}
		fresh = append(fresh, h)
		if gone {
			doomed = append(doomed, p.orphan(s, i, h))
		}
	}
	if !gone {
		s.handles = append(s.handles, fresh...)
	}
	p.mu.Unlock()

	p.log.Warn("abandoned commit command exited", "set", s.id, "new_handles", len(fresh), "set_aborted", gone)
	if !gone {
		return
	}
	os.RemoveAll(s.tmpdir)
	ctx := context.Background()
	var failed []provider.Snapshot
	for _, sn := range doomed {
		if err := p.runDelete(ctx, sn); err != nil {
			p.log.Error("cannot delete a snapshot made by an abandoned commit; it stays in the index", "handle", sn.Handle, "error", err)
			failed = append(failed, sn)
		}
	}
	p.keep(failed)
}

// orphan describes a handle of a set that did not complete. pos is the
// handle's line in commit's output: the first N lines belong to the
// volumes in order; further ones get an ID derived from the handle. Caller
// holds p.mu.
func (p *Provider) orphan(s *set, pos int, h handleLine) provider.Snapshot {
	sn := provider.Snapshot{ID: p.handleID(h.handle), SetID: s.id, Handle: h.handle, DevicePath: h.devicePath(), Created: s.created}
	if pos < len(s.vols) {
		sn.ID, sn.OriginalVolume = s.vols[pos].snapshotID, s.vols[pos].path
	}
	return sn
}

// orphans are the snapshots of s's handles as orphan describes them (for
// a successful commit: exactly its snapshots). Caller holds p.mu.
func (p *Provider) orphans(s *set) []provider.Snapshot {
	out := make([]provider.Snapshot, 0, len(s.handles))
	for i, h := range s.handles {
		out = append(out, p.orphan(s, i, h))
	}
	return out
}

// handleID is the snapshot ID given to a handle the provider has no record
// of (a list command's, or an orphan's): stable, so it can be addressed.
func (p *Provider) handleID(handle string) uuid.UUID {
	return uuid.NewSHA1(p.info.ID, []byte(handle))
}

// keep records snapshots that could not be deleted, so Query shows them
// and an administrator can retry.
func (p *Provider) keep(sns []provider.Snapshot) {
	if len(sns) == 0 {
		return
	}
	p.mu.Lock()
	for _, sn := range sns {
		p.index[sn.ID] = sn
	}
	p.mu.Unlock()
	if err := p.persist(); err != nil {
		p.log.Error("cannot write the snapshot index", "error", err)
	}
}

// PostCommitSnapshots implements provider.Provider: it records the
// snapshots in the index (the hold is over) and returns them.
func (p *Provider) PostCommitSnapshots(_ context.Context, setID uuid.UUID, _ int) ([]provider.Snapshot, error) {
	p.mu.Lock()
	s, err := p.setIn(setID, stateCommitted)
	if err != nil {
		p.mu.Unlock()
		return nil, err
	}
	out := make([]provider.Snapshot, len(s.vols))
	for i, v := range s.vols {
		h := s.handles[i]
		out[i] = provider.Snapshot{ID: v.snapshotID, SetID: s.id, OriginalVolume: v.path,
			DevicePath: h.devicePath(), Handle: h.handle, Created: s.created}
		p.index[v.snapshotID] = out[i]
	}
	s.state = statePosted
	tmpdir := s.tmpdir
	p.mu.Unlock()

	os.RemoveAll(tmpdir)
	if err := p.persist(); err != nil {
		// Untracked snapshots would leak after a restart: fail the set,
		// and its Abort deletes them.
		return nil, fmt.Errorf("exec provider %s: record snapshots: %w", p.info.Name, err)
	}
	p.forgetCommitted(setID)
	return out, nil
}

// PreFinalCommitSnapshots implements provider.Provider.
func (p *Provider) PreFinalCommitSnapshots(_ context.Context, setID uuid.UUID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.setIn(setID, statePosted)
	if err != nil {
		return err
	}
	s.state = statePreFinal
	return nil
}

// PostFinalCommitSnapshots implements provider.Provider: the snapshots are
// in the index already; the set is forgotten and its ID closed.
func (p *Provider) PostFinalCommitSnapshots(_ context.Context, setID uuid.UUID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.setIn(setID, statePreFinal); err != nil {
		return err
	}
	delete(p.sets, setID)
	p.closed.Close(setID)
	return nil
}

// AbortSnapshots implements provider.Provider. It forgets the set and
// deletes whatever its commit printed, even after a failed commit: a
// handle printed is a snapshot that may exist. A snapshot whose delete
// fails stays in the index (Query shows it) and the error is returned.
// Unknown sets are not an error.
func (p *Provider) AbortSnapshots(ctx context.Context, setID uuid.UUID) error {
	p.mu.Lock()
	s := p.sets[setID]
	if s == nil {
		p.mu.Unlock()
		return nil
	}
	delete(p.sets, setID)
	p.closed.Close(setID)
	s.aborted = true
	var doomed []provider.Snapshot
	for i, h := range s.handles {
		doomed = append(doomed, p.orphan(s, i, h))
	}
	// An abandoned commit still owns its TMPDIR; its reaper removes it.
	tmpdir := ""
	if s.late == nil {
		tmpdir = s.tmpdir
	}
	p.mu.Unlock()

	if tmpdir != "" {
		os.RemoveAll(tmpdir)
	}
	var errs, failedErr []error
	var failed []provider.Snapshot
	for _, sn := range doomed {
		if err := p.runDelete(ctx, sn); err != nil {
			failed = append(failed, sn)
			failedErr = append(failedErr, err)
			continue
		}
		p.mu.Lock()
		delete(p.index, sn.ID)
		p.mu.Unlock()
	}
	for i, sn := range failed {
		p.log.Error("abort: cannot delete snapshot; it stays in the index", "set", setID, "handle", sn.Handle, "error", failedErr[i])
		errs = append(errs, fmt.Errorf("delete %s: %w", sn.Handle, failedErr[i]))
	}
	p.mu.Lock()
	for _, sn := range failed {
		p.index[sn.ID] = sn
	}
	p.mu.Unlock()
	if len(doomed) > 0 {
		if err := p.persist(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		p.forgetCommitted(setID)
	}
	return errors.Join(errs...)
}

// Query implements provider.Provider. With a list command, the snapshots
// are the handles it prints, described from the index where it knows
// them; without one, the index.
func (p *Provider) Query(ctx context.Context) ([]provider.Snapshot, error) {
	if p.cfg.List == "" {
		p.mu.Lock()
		out := make([]provider.Snapshot, 0, len(p.index))
		for _, s := range p.index {
			out = append(out, s)
		}
		p.mu.Unlock()
		sortSnapshots(out)
		return out, nil
	}
	stdout, err := p.runOther(ctx, opList, p.cfg.List, p.commonEnv())
	if err != nil {
		return nil, err
	}
	hs, err := parseList(stdout.b, stdout.over)
	if err != nil {
		return nil, fmt.Errorf("exec provider %s: %w", p.info.Name, err)
	}
	p.mu.Lock()
	byHandle := make(map[string]provider.Snapshot, len(p.index))
	for _, s := range p.index {
		byHandle[s.Handle] = s
	}
	p.mu.Unlock()
	out := make([]provider.Snapshot, 0, len(hs))
	seen := map[string]bool{}
	for _, h := range hs {
		if seen[h.handle] {
			continue
		}
		seen[h.handle] = true
		if s, ok := byHandle[h.handle]; ok {
			out = append(out, s)
			continue
		}
		out = append(out, provider.Snapshot{ID: p.handleID(h.handle), Handle: h.handle, DevicePath: h.devicePath()})
	}
	sortSnapshots(out)
	return out, nil
}

func sortSnapshots(s []provider.Snapshot) {
	slices.SortFunc(s, func(a, b provider.Snapshot) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Handle, b.Handle)
	})
}

// DeleteSnapshot implements provider.Provider. The delete command must
// exit 0 both when it deleted the snapshot and when it was already gone;
// any other status is a failure and the snapshot stays recorded.
func (p *Provider) DeleteSnapshot(ctx context.Context, s provider.Snapshot) error {
	s = p.complete(s)
	if s.Handle == "" {
		// Nothing this provider could name to the command: no such
		// snapshot, hence already deleted.
		return nil
	}
	if err := p.runDelete(ctx, s); err != nil {
		p.log.Error("delete command failed", "snapshot", s.ID, "handle", s.Handle, "error", err)
		return err
	}
	p.mu.Lock()
	changed := false
	for id, k := range p.index {
		if id == s.ID || k.Handle == s.Handle {
			delete(p.index, id)
			changed = true
		}
	}
	p.mu.Unlock()
	if changed {
		if err := p.persist(); err != nil {
			return fmt.Errorf("exec provider %s: snapshot deleted, but the index was not updated: %w", p.info.Name, err)
		}
	}
	return nil
}

// complete fills what the caller left out of s from the index.
func (p *Provider) complete(s provider.Snapshot) provider.Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, ok := p.index[s.ID]
	if !ok {
		return s
	}
	if s.Handle == "" {
		s.Handle = k.Handle
	}
	if s.DevicePath == "" {
		s.DevicePath = k.DevicePath
	}
	if s.OriginalVolume == "" {
		s.OriginalVolume = k.OriginalVolume
	}
	if s.SetID == uuid.Nil {
		s.SetID = k.SetID
	}
	return s
}

func (p *Provider) runDelete(ctx context.Context, s provider.Snapshot) error {
	_, err := p.runOther(ctx, opDelete, p.cfg.Delete, p.snapshotEnv(s))
	return err
}

// Expose implements provider.Exposer with the expose command. Its first
// non-blank output line, if any, is the name the snapshot is exposed
// under; else path.
func (p *Provider) Expose(ctx context.Context, s provider.Snapshot, path string) (string, error) {
	if p.cfg.Expose == "" {
		return "", vsserr.New(vsserr.ProviderVeto, "exec provider %s has no expose command configured", p.info.Name)
	}
	s = p.complete(s)
	env := append(p.snapshotEnv(s), "LVSS_EXPOSE_PATH="+path)
	out, err := p.runOther(ctx, opExpose, p.cfg.Expose, env)
	if err != nil {
		p.log.Error("expose command failed", "snapshot", s.ID, "path", path, "error", err)
		return "", err
	}
	if ls := lines(out.b, false); len(ls) > 0 {
		return strings.TrimSpace(ls[0]), nil
	}
	return path, nil
}

// Unexpose implements provider.Exposer with the unexpose command, which
// must exit 0 when the snapshot is not exposed (any more).
func (p *Provider) Unexpose(ctx context.Context, s provider.Snapshot, exposedName string) error {
	if p.cfg.Unexpose == "" {
		return nil // nothing can have been exposed
	}
	s = p.complete(s)
	env := append(p.snapshotEnv(s), "LVSS_EXPOSE_PATH="+exposedName)
	if _, err := p.runOther(ctx, opUnexpose, p.cfg.Unexpose, env); err != nil {
		p.log.Error("unexpose command failed", "snapshot", s.ID, "path", exposedName, "error", err)
		return err
	}
	return nil
}

func (p *Provider) commonEnv() []string {
	return []string{"LVSS_PROVIDER_NAME=" + p.info.Name, "LVSS_PROVIDER_ID=" + p.info.ID.String()}
}

func (p *Provider) snapshotEnv(s provider.Snapshot) []string {
	return append(p.commonEnv(),
		"LVSS_SNAPSHOT_HANDLE="+s.Handle,
		"LVSS_SNAPSHOT_ID="+s.ID.String(),
		"LVSS_SNAPSHOT_SET_ID="+s.SetID.String(),
		"LVSS_ORIGINAL_VOLUME="+s.OriginalVolume,
		"LVSS_DEVICE_PATH="+s.DevicePath,
	)
}

// output is what a command printed on stdout.
type output struct {
	b    []byte
	over bool
}

// runOther runs delete, list, expose or unexpose with its own TMPDIR,
// bounded by other_timeout and ctx. These run outside the freeze, so they
// may log; a command abandoned at its deadline is reaped in the
// background.
func (p *Provider) runOther(ctx context.Context, op, script string, env []string) (output, error) {
	// A command started for a context already done would be killed at
	// once, half done: a delete half done is worse than none.
	if err := ctx.Err(); err != nil {
		return output{}, fmt.Errorf("exec provider %s: %s command not started: %w", p.info.Name, op, err)
	}
	dir, err := p.tempDir(op + "-")
	if err != nil {
		return output{}, fmt.Errorf("%s TMPDIR: %w", op, err)
	}
	d := within(ctx, p.otherTimeout)
	env = append(env, "LVSS_TIMEOUT_MS="+strconv.FormatInt(d.Milliseconds(), 10))
	c, err := start(op, script, env, dir, otherOutCap)
	if err != nil {
		os.RemoveAll(dir)
		return output{}, err
	}
	werr := c.wait(ctx, d)
	if !c.finished() {
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			<-c.done
			os.RemoveAll(dir)
			p.log.Warn("abandoned command exited", "op", op)
		}()
	} else {
		os.RemoveAll(dir)
	}
	if werr != nil {
		return output{}, fmt.Errorf("exec provider %s: %w", p.info.Name, werr)
	}
	b, over := c.stdout.Bytes()
	return output{b: b, over: over}, nil
}

// WaitAbandoned waits until every command abandoned at its deadline has
// exited and been reconciled, or ctx ends. For shutdown and tests: call it
// when no other call of this provider is in flight, since a call may
// abandon a new command while it waits.
func (p *Provider) WaitAbandoned(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Exposer  = (*Provider)(nil)
)
