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
	hang     map[string]chan struct{}
	calls    []string
	sets     map[uuid.UUID][]provider.Snapshot
	made     map[uuid.UUID]provider.Snapshot
	deleted  map[uuid.UUID]bool
	exposed  map[uuid.UUID]string
	sequence int
}

// ID is the fake's default provider ID.
var ID = uuid.MustParse("6c1b5a1e-0f4e-4c47-9d0e-1a2b3c4d5e6f")

// New returns a fake that supports every volume under the given roots.
func New(roots ...string) *Provider {
	return &Provider{
		info: provider.Info{ID: ID, Name: "fake", Type: vss.ProvSoftware, Version: "1.0", Atomic: true, SetAtomic: true,
			Kinds: vss.AttrDifferential},
		roots: roots, fail: map[string]error{}, hang: map[string]chan struct{}{},
		sets: map[uuid.UUID][]provider.Snapshot{}, made: map[uuid.UUID]provider.Snapshot{},
		deleted: map[uuid.UUID]bool{}, exposed: map[uuid.UUID]string{},
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
	ch := make(chan struct{})
	p.mu.Lock()
	p.hang[method] = ch
	p.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
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
	err, ch := p.fail[method], p.hang[method]
	p.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
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
	p.sets[setID] = append(p.sets[setID], provider.Snapshot{ID: snapID, SetID: setID, OriginalVolume: volume})
	return nil
}

func (p *Provider) step(ctx context.Context, method string, setID uuid.UUID) error {
	if err := p.enter(ctx, method); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.sets[setID]; !ok {
		return vsserr.New(vsserr.ObjectNotFound, "fake: no set %s in preparation", setID)
	}
	return nil
}

// EndPrepareSnapshots implements provider.Provider.
func (p *Provider) EndPrepareSnapshots(ctx context.Context, setID uuid.UUID) error {
	return p.step(ctx, "EndPrepareSnapshots", setID)
}

// PreCommitSnapshots implements provider.Provider.
func (p *Provider) PreCommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	return p.step(ctx, "PreCommitSnapshots", setID)
}

// CommitSnapshots implements provider.Provider.
func (p *Provider) CommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	if err := p.step(ctx, "CommitSnapshots", setID); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now().UTC()
	for i := range p.sets[setID] {
		p.sequence++
		s := &p.sets[setID][i]
		s.Created = now
		s.Handle = fmt.Sprintf("fake-%d", p.sequence)
		s.DevicePath = "/fake-snapshots/" + s.ID.String()
	}
	return nil
}

// PostCommitSnapshots implements provider.Provider.
func (p *Provider) PostCommitSnapshots(ctx context.Context, setID uuid.UUID, _ int) ([]provider.Snapshot, error) {
	if err := p.step(ctx, "PostCommitSnapshots", setID); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append([]provider.Snapshot(nil), p.sets[setID]...)
	for _, s := range out {
		if s.Handle == "" {
			return nil, vsserr.New(vsserr.BadState, "fake: PostCommit before Commit")
		}
	}
	return out, nil
}

// PreFinalCommitSnapshots implements provider.Provider.
func (p *Provider) PreFinalCommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	return p.step(ctx, "PreFinalCommitSnapshots", setID)
}

// PostFinalCommitSnapshots implements provider.Provider.
func (p *Provider) PostFinalCommitSnapshots(ctx context.Context, setID uuid.UUID) error {
	if err := p.step(ctx, "PostFinalCommitSnapshots", setID); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.sets[setID] {
		p.made[s.ID] = s
	}
	delete(p.sets, setID)
	return nil
}

// AbortSnapshots implements provider.Provider.
func (p *Provider) AbortSnapshots(ctx context.Context, setID uuid.UUID) error {
	if err := p.enter(ctx, "AbortSnapshots"); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.sets, setID)
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

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Exposer  = (*Provider)(nil)
)
