//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package btrfs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/confval"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// newBtrfs makes a btrfs on a loop device for the test (a failure on CI if
// root, losetup or mkfs.btrfs is missing; LoopFS cleans up in any case).
func newBtrfs(t testing.TB, mkfsArgs ...string) string {
	t.Helper()
	return testenv.LoopFS(t, "btrfs", 512<<20, mkfsArgs...).Mount
}

// subvol makes an empty subvolume at path.
func subvol(t testing.TB, path string) string {
	t.Helper()
	if err := createSubvolume(filepath.Dir(path), filepath.Base(path), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func mkdir(t testing.TB, path string) string {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newProvider(t testing.TB, cfg Config, minFree confval.Size) *Provider {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	if _, bench := t.(*testing.B); bench {
		log = nil // keep benchmark output to the numbers
	}
	p, err := New(cfg, minFree, t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func bg(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// take runs the whole creation sequence for the volumes and registers the
// deletion of the snapshots.
func take(t testing.TB, p *Provider, vols ...string) []provider.Snapshot {
	t.Helper()
	c := bg(t)
	set := uuid.New()
	for _, v := range vols {
		if err := p.BeginPrepareSnapshot(c, set, uuid.New(), v, vss.Context(0)); err != nil {
			t.Fatalf("BeginPrepareSnapshot %s: %v", v, err)
		}
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("EndPrepareSnapshots", p.EndPrepareSnapshots(c, set))
	must("PreCommitSnapshots", p.PreCommitSnapshots(c, set))
	must("CommitSnapshots", p.CommitSnapshots(c, set))
	snaps, err := p.PostCommitSnapshots(c, set, len(vols))
	must("PostCommitSnapshots", err)
	must("PreFinalCommitSnapshots", p.PreFinalCommitSnapshots(c, set))
	must("PostFinalCommitSnapshots", p.PostFinalCommitSnapshots(c, set))
	t.Cleanup(func() {
		for _, s := range snaps {
			_ = p.DeleteSnapshot(context.Background(), s)
		}
	})
	return snaps
}

// unmountUnder removes every mount below dir, innermost first: a failed
// test must not leave an exposure that pins the loop filesystem.
func unmountUnder(t testing.TB, dir string) {
	ms, err := mountinfo.Read()
	if err != nil {
		return
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if strings.HasPrefix(ms[i].MountPoint+"/", dir+"/") {
			if err := unix.Unmount(ms[i].MountPoint, unix.MNT_DETACH); err != nil {
				t.Logf("cleanup: unmount %s: %v", ms[i].MountPoint, err)
			}
		}
	}
}

// exposeDir is a temporary directory whose mounts are removed at cleanup.
func exposeDir(t testing.TB) string {
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountUnder(t, d) })
	return d
}

func wantCode(t testing.TB, err error, code vsserr.HRESULT) {
	t.Helper()
	if !errors.Is(err, code) {
		t.Fatalf("want %v, got %v", code, err)
	}
}
