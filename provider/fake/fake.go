package fake

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Provider is the fake. Configure it before use; the exported fields are
// read under its lock.
type Provider struct {
	mu       sync.Mutex
	info     provider.Info
	roots    []string
	fail     map[string]error
	hang     map[string]*hold
	calls    []string
	sets     map[uuid.UUID]*set
	closed   provider.ClosedSets
	made     map[uuid.UUID]provider.Snapshot
	deleted  map[uuid.UUID]bool
	exposed  map[uuid.UUID]string
	reverted map[string]uuid.UUID // volume -> the snapshot it was last reverted to
	recover  []provider.RevertOutcome
	sequence int
}

// stage is where a set is in the sequence of vss-reference §7.3: the step it took
// last. The next step must be the one after it.
type stage int

const (
	stBegun stage = iota
	stEndPrepared
	stPreCommitted
	stCommitted
	stPostCommitted
	stPreFinalCommitted
)

type set struct {
	stage stage
	snaps []provider.Snapshot
}

// hold is a HangAt or HoldAt: calls block until release is closed or their
// context ends; held is closed when the first one blocks. A HoldAt holds
// only that first call (once).
type hold struct {
	release chan struct{}
	held    chan struct{}
	once    bool
	blocked sync.Once
}

// ID is the fake's default provider ID.
var ID = uuid.MustParse("6c1b5a1e-0f4e-4c47-9d0e-1a2b3c4d5e6f")

// New returns a fake that supports every volume under the given roots.
func New(roots ...string) *Provider {
	return &Provider{
		info: provider.Info{ID: ID, Name: "fake", Type: vss.ProvSoftware, Version: "1.0", Atomic: true, SetAtomic: true,
			Kinds: vss.AttrDifferential},
		roots: roots, fail: map[string]error{}, hang: map[string]*hold{},
		sets: map[uuid.UUID]*set{}, made: map[uuid.UUID]provider.Snapshot{},
		deleted: map[uuid.UUID]bool{}, exposed: map[uuid.UUID]string{}, reverted: map[string]uuid.UUID{},
	}
}

// WithInfo replaces the provider description (ID, name, Atomic...).
func (p *Provider) WithInfo(i provider.Info) *Provider {
	p.mu.Lock()
	p.info = i
	p.mu.Unlock()
	return p
}

// FailAt makes the named method (e.g. "CommitSnapshots") return err.
func (p *Provider) FailAt(method string, err error) { p.mu.Lock(); p.fail[method] = err; p.mu.Unlock() }

// HangAt makes the named method block until the returned func is called or
// its context ends.
func (p *Provider) HangAt(method string) (release func()) {
	_, release = p.hangAt(method, false)
	return release
}

// HoldAt makes the next call of the named method block until release is
// called or its context ends; held is closed once it blocks. Later calls
// do not block.
func (p *Provider) HoldAt(method string) (held <-chan struct{}, release func()) {
	return p.hangAt(method, true)
}

func (p *Provider) hangAt(method string, single bool) (held <-chan struct{}, release func()) {
	h := &hold{release: make(chan struct{}), held: make(chan struct{}), once: single}
	p.mu.Lock()
	p.hang[method] = h
	p.mu.Unlock()
	var released sync.Once
	return h.held, func() { released.Do(func() { close(h.release) }) }
}

// Calls returns the methods called so far, in order, as "Method" strings.
func (p *Provider) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func (p *Provider) enter(ctx context.Context, method string) error {
	p.mu.Lock()
	p.calls = append(p.calls, method)
	err, h := p.fail[method], p.hang[method]
	if h != nil && h.once {
		delete(p.hang, method)
	}
	p.mu.Unlock()
	if h != nil {
		h.blocked.Do(func() { close(h.held) })
		select {
		case <-h.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

// Info implements provider.Provider.
func (p *Provider) Info() provider.Info { p.mu.Lock(); defer p.mu.Unlock(); return p.info }

func (p *Provider) supports(volume string) bool {
	for _, r := range p.roots {
		if volume == r || strings.HasPrefix(volume, r+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// IsVolumeSupported implements provider.Provider.
func (p *Provider) IsVolumeSupported(ctx context.Context, volume string) (bool, error) {
	if err := p.enter(ctx, "IsVolumeSupported"); err != nil {
		return false, err
	}
	return p.supports(volume), nil
}

// BeginPrepareSnapshot implements provider.Provider.
func (p *Provider) BeginPrepareSnapshot(ctx context.Context, setID, snapID uuid.UUID, volume string, _ vss.Context) error {
	if err := p.enter(ctx, "BeginPrepareSnapshot"); err != nil {
		return err
	}
	if !p.supports(volume) {
		return vsserr.New(vsserr.VolumeNotSupportedByProvider, "fake does not support %s", volume)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sets[setID]
	switch {
	case p.closed.Closed(setID):
		return vsserr.New(vsserr.InvalidArg, "fake: set %s is finished or aborted; a set ID is prepared once", setID)
	case s == nil:
		s = &set{}
		p.sets[setID] = s
	case s.stage != stBegun:
		return vsserr.New(vsserr.InvalidArg, "fake: set %s is past preparation", setID)
	}
	s.snaps = append(s.snaps, provider.Snapshot{ID: snapID, SetID: setID, OriginalVolume: volume})
	return nil
}

// step checks that the set's last step was from, makes it to and runs then
// under the lock. A set the fake does not hold, or a step out of order, is
// refused with the code the provider contract gives the step (refusal),
// changing nothing. With cancel, a context already done stops the step
// before it does anything (the contract for EndPrepare and Commit).
func (p *Provider) step(ctx context.Context, method string, setID uuid.UUID, from, to stage, cancel bool, then func(*set)) error {
	if err := p.enter(ctx, method); err != nil {
		return err
	}
	if err := ctx.Err(); cancel && err != nil {
		return fmt.Errorf("fake: %s: %w", method, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sets[setID]
	if s == nil {
		return vsserr.New(refusal(method), "fake: no set %s in creation", setID)
	}
	if s.stage != from {
		return vsserr.New(refusal(method), "fake: %s out of order for set %s", method, setID)
	}
	s.stage = to
	if then != nil {
		then(s)
	}
	return nil
}

// refusal is the code for a step of a set not held or out of order:
// vss-reference §7.2 permits VSS_E_OBJECT_NOT_FOUND up to PostCommit, and only
// E_INVALIDARG fits after it.
func refusal(method string) vsserr.HRESULT {
	if method == "PreFinalCommitSnapshots" || method == "PostFinalCommitSnapshots" {
		return vsserr.InvalidArg
	}
	return vsserr.ObjectNotFound
}

// EndPrepareSnapshots implements provider.Provider.
func (p *Provider) EndPrepareSnapshots(ctx context.Context, setID uuid.UUID) error {
	return p.step(ctx, "EndPrepareSnapshots", setID, stBegun, stEndPrepared, true, nil)
}

// PreCommitSnapshots implements provider.Provider.
func (p *Provider) PreCommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	return p.step(ctx, "PreCommitSnapshots", setID, stEndPrepared, stPreCommitted, false, nil)
}

// CommitSnapshots implements provider.Provider.
func (p *Provider) CommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	return p.step(ctx, "CommitSnapshots", setID, stPreCommitted, stCommitted, true, func(s *set) {
		now := time.Now().UTC()
		for i := range s.snaps {
			p.sequence++
			sn := &s.snaps[i]
			sn.Created = now
			sn.Handle = fmt.Sprintf("fake-%d", p.sequence)
			sn.DevicePath = "/fake-snapshots/" + sn.ID.String()
		}
	})
}

// PostCommitSnapshots implements provider.Provider.
func (p *Provider) PostCommitSnapshots(ctx context.Context, setID uuid.UUID, _ int) ([]provider.Snapshot, error) {
	var out []provider.Snapshot
	err := p.step(ctx, "PostCommitSnapshots", setID, stCommitted, stPostCommitted, false, func(s *set) {
		out = append(out, s.snaps...)
	})
	return out, err
}

// PreFinalCommitSnapshots implements provider.Provider.
func (p *Provider) PreFinalCommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	return p.step(ctx, "PreFinalCommitSnapshots", setID, stPostCommitted, stPreFinalCommitted, false, nil)
}

// PostFinalCommitSnapshots implements provider.Provider: the snapshots
// become permanent and the set is closed.
func (p *Provider) PostFinalCommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	return p.step(ctx, "PostFinalCommitSnapshots", setID, stPreFinalCommitted, stPreFinalCommitted, false, func(s *set) {
		for _, sn := range s.snaps {
			p.made[sn.ID] = sn
		}
		delete(p.sets, setID)
		p.closed.Close(setID)
	})
}

// AbortSnapshots implements provider.Provider. A finished set is not held
// any more, so its snapshots stay.
func (p *Provider) AbortSnapshots(ctx context.Context, setID uuid.UUID) error {
	if err := p.enter(ctx, "AbortSnapshots"); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.sets[setID]; ok {
		delete(p.sets, setID)
		p.closed.Close(setID)
	}
	return nil
}

// Query implements provider.Provider.
func (p *Provider) Query(ctx context.Context) ([]provider.Snapshot, error) {
	if err := p.enter(ctx, "Query"); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]provider.Snapshot, 0, len(p.made))
	for _, s := range p.made {
		out = append(out, s)
	}
	return out, nil
}

// DeleteSnapshot implements provider.Provider.
func (p *Provider) DeleteSnapshot(ctx context.Context, s provider.Snapshot) error {
	if err := p.enter(ctx, "DeleteSnapshot"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fake: DeleteSnapshot: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.made, s.ID)
	p.deleted[s.ID] = true
	return nil
}

// Deleted reports whether DeleteSnapshot was called for the snapshot.
func (p *Provider) Deleted(id uuid.UUID) bool { p.mu.Lock(); defer p.mu.Unlock(); return p.deleted[id] }

// Live reports how many snapshots the fake holds.
func (p *Provider) Live() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.made) }

// Residue lists what the fake holds: sets in creation, snapshots and
// exposures, one string each. It is the fake's equivalent of the files a
// real provider keeps, for providertest's Setup.Residue.
func (p *Provider) Residue() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for id := range p.sets {
		out = append(out, "set "+id.String())
	}
	for id := range p.made {
		out = append(out, "snapshot "+id.String())
	}
	for id, path := range p.exposed {
		out = append(out, "exposure of "+id.String()+" at "+path)
	}
	return out
}

// Expose implements provider.Exposer.
func (p *Provider) Expose(ctx context.Context, s provider.Snapshot, path string) (string, error) {
	if err := p.enter(ctx, "Expose"); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.made[s.ID]; !ok {
		return "", vsserr.New(vsserr.ObjectNotFound, "fake: no snapshot %s", s.ID)
	}
	p.exposed[s.ID] = path
	return path, nil
}

// Unexpose implements provider.Exposer.
func (p *Provider) Unexpose(ctx context.Context, s provider.Snapshot, _ string) error {
	if err := p.enter(ctx, "Unexpose"); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.exposed, s.ID)
	return nil
}

// Revert implements provider.Reverter: it records the revert (FailAt and
// HangAt "Revert" work as for the other calls).
func (p *Provider) Revert(ctx context.Context, s provider.Snapshot, force bool) error {
	if err := p.enter(ctx, "Revert"); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.made[s.ID]; !ok {
		return vsserr.New(vsserr.ObjectNotFound, "fake: no snapshot %s", s.ID)
	}
	p.reverted[s.OriginalVolume] = s.ID
	return nil
}

// Reverted is the snapshot the volume was last reverted to (GUID_NULL:
// never).
func (p *Provider) Reverted(volume string) uuid.UUID {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reverted[volume]
}

// SetRecoveries sets what RecoverReverts reports.
func (p *Provider) SetRecoveries(o ...provider.RevertOutcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recover = o
}

// RecoverReverts implements provider.Reverter.
func (p *Provider) RecoverReverts(ctx context.Context) []provider.RevertOutcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.recover
	p.recover = nil
	return out
}

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Exposer  = (*Provider)(nil)
	_ provider.Reverter = (*Provider)(nil)
)
