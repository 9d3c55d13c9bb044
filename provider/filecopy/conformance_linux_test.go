package filecopy

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/confval"
	"github.com/lvss/lvss/provider/providertest"
	"github.com/lvss/lvss/vss"
)

// The conformance suite runs on the three filesystems the copy provider
// meets: ext4 (no reflink, plain copies), XFS (reflink) and btrfs
// (reflink; the btrfs provider is preferred there, but copy works).
func TestConformanceExt4(t *testing.T)  { providertest.Run(t, harness("ext4")) }
func TestConformanceXFS(t *testing.T)   { providertest.Run(t, harness("xfs")) }
func TestConformanceBtrfs(t *testing.T) { providertest.Run(t, harness("btrfs")) }

func harness(fstype string) providertest.Harness {
	return providertest.Harness{New: func(t *testing.T) providertest.Setup {
		e := newEnv(t, fstype)
		return providertest.Setup{
			Provider:    e.p,
			Volume:      e.vol,
			Second:      e.vol2,
			Unsupported: e.other,
			ReadSnapshot: func(t *testing.T, s provider.Snapshot, rel string) []byte {
				b, err := os.ReadFile(filepath.Join(s.DevicePath, rel))
				if err != nil {
					t.Fatalf("read %s from the snapshot: %v", rel, err)
				}
				return b
			},
			ExposeDir: e.expose,
			// lvssd restarted: a provider on the same configuration, which
			// reads the copies' metadata.
			Restart: func(t *testing.T) provider.Provider { return e.provider(t) },
			// Copies, their metadata, and read-only mounts left by Expose.
			Residue: func(t *testing.T) []string {
				return append(providertest.Entries(t, e.copies), providertest.Mounts(t, e.expose)...)
			},
			// EndPrepare is held in its measuring walk, the commit in its
			// copy, each before or after an entry.
			Hold: func(t *testing.T, method string) (<-chan struct{}, func(), bool) {
				hook, held, release := providertest.HoldOnce(t)
				switch method {
				case "EndPrepareSnapshots":
					e.p.measuring = hook
				case "CommitSnapshots":
					e.p.afterEntry = func(string) { hook() }
				default:
					return nil, nil, false
				}
				return held, release, true
			},
			Without: map[string]string{
				"Hold DeleteSnapshot": "a delete finishes once it has begun, by design: a copy half removed is of no use",
			},
		}
	}}
}

// env is one loop filesystem laid out for the copy provider:
// <mnt>/vol and <mnt>/vol2 listed, <mnt>/other not, copies in <mnt>/copies
// (beside the volumes, on the same filesystem, so reflinks can work).
type env struct {
	fs                       *testenv.FS
	vol, vol2, other, expose string
	copies                   string
	cfg                      Config
	minFree                  confval.Size
	p                        *Provider
}

func newEnv(t *testing.T, fstype string) *env {
	t.Helper()
	fs := testenv.LoopFS(t, fstype, 512<<20)
	e := &env{fs: fs, vol: filepath.Join(fs.Mount, "vol"), vol2: filepath.Join(fs.Mount, "vol2"),
		other: filepath.Join(fs.Mount, "other"), expose: filepath.Join(fs.Mount, "expose"),
		copies: filepath.Join(fs.Mount, "copies")}
	for _, d := range []string{e.vol, e.vol2, e.other, e.expose} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.cfg = Config{Volumes: []string{e.vol, e.vol2}, SnapshotDir: e.copies, MaxBytes: 256 << 20}
	e.minFree = 1 << 20
	e.p = e.provider(t)
	return e
}

// provider makes a new Provider on the env's configuration, as lvssd
// does at every start.
func (e *env) provider(t *testing.T) *Provider {
	t.Helper()
	p, err := New(e.cfg, e.minFree, "", slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// steps runs the vss-reference §7.3 sequence for vols and stops at the first error,
// which it returns with the name of the step. Snapshots it made are
// deleted when the test ends.
func steps(t *testing.T, ctx context.Context, p *Provider, vols ...string) (uuid.UUID, []provider.Snapshot, string, error) {
	t.Helper()
	set := uuid.New()
	for _, v := range vols {
		if err := p.BeginPrepareSnapshot(ctx, set, uuid.New(), v, vss.CtxBackup); err != nil {
			return set, nil, "BeginPrepareSnapshot", err
		}
	}
	if err := p.EndPrepareSnapshots(ctx, set); err != nil {
		return set, nil, "EndPrepareSnapshots", err
	}
	if err := p.PreCommitSnapshots(ctx, set); err != nil {
		return set, nil, "PreCommitSnapshots", err
	}
	if err := p.CommitSnapshots(ctx, set); err != nil {
		return set, nil, "CommitSnapshots", err
	}
	snaps, err := p.PostCommitSnapshots(ctx, set, len(vols))
	if err != nil {
		return set, nil, "PostCommitSnapshots", err
	}
	t.Cleanup(func() {
		for _, s := range snaps {
			_ = p.DeleteSnapshot(context.Background(), s)
		}
	})
	if err := p.PreFinalCommitSnapshots(ctx, set); err != nil {
		return set, snaps, "PreFinalCommitSnapshots", err
	}
	if err := p.PostFinalCommitSnapshots(ctx, set); err != nil {
		return set, snaps, "PostFinalCommitSnapshots", err
	}
	return set, snaps, "", nil
}

// mustSnap runs steps and fails the test on any error.
func mustSnap(t *testing.T, p *Provider, vols ...string) []provider.Snapshot {
	t.Helper()
	_, snaps, step, err := steps(t, t.Context(), p, vols...)
	if err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	return snaps
}
