//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package btrfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/provider"
)

func problem(d provider.Diagnosis, check string, sev provider.Severity) *provider.Problem {
	for i, p := range d.Problems {
		if p.Check == check && p.Severity == sev {
			return &d.Problems[i]
		}
	}
	return nil
}

// TestDiagnose: what lvss doctor hears from the btrfs provider agrees with
// IsVolumeSupported and with what a snapshot would meet, and Diagnose
// creates nothing.
func TestDiagnose(t *testing.T) {
	mnt := newBtrfs(t)
	ext := testenv.LoopFS(t, "ext4", 64<<20)
	other := newBtrfs(t)
	sv := subvol(t, filepath.Join(mnt, "sv"))
	sub := subvol(t, filepath.Join(sv, "sub"))
	mkdir(t, filepath.Join(sv, "x", "y"))
	deep := subvol(t, filepath.Join(sv, "x", "y", "deep"))
	p := newProvider(t, Config{}, 1<<20)

	for _, vol := range []string{ext.Mount, mnt, sv} {
		ok, err := p.IsVolumeSupported(bg(t), vol)
		if d := p.Diagnose(bg(t), vol); err != nil || d.Supported != ok {
			t.Errorf("%s: Diagnose says %v (%s), IsVolumeSupported %v, %v", vol, d.Supported, d.Reason, ok, err)
		}
	}
	if d := p.Diagnose(bg(t), ext.Mount); d.Supported || d.Reason != "not a directory on btrfs" || len(d.Problems) != 0 {
		t.Errorf("ext4: %+v", d)
	}

	d := p.Diagnose(bg(t), sv)
	if !d.Supported || !strings.Contains(d.Reason, "subvolume") || d.SnapshotDir != filepath.Join(sv, defaultDirName) {
		t.Fatalf("a subvolume: %+v", d)
	}
	nested := problem(d, "btrfs.nested_subvolumes", provider.Warning)
	if nested == nil || !strings.Contains(nested.Message, sub) || !strings.Contains(nested.Message, deep) || nested.Fix == "" {
		t.Fatalf("nested subvolumes: %+v", d.Problems)
	}
	if len(d.Problems) != 1 {
		t.Errorf("problems besides the nested subvolumes: %+v", d.Problems)
	}
	if _, err := os.Stat(filepath.Join(sv, defaultDirName)); !os.IsNotExist(err) {
		t.Fatalf("Diagnose made the snapshot directory: %v", err)
	}
	// Once snapshots exist, their directory is not a nested subvolume.
	take(t, p, sv)
	if d := p.Diagnose(bg(t), sv); len(d.Problems) != 1 || strings.Contains(d.Problems[0].Message, defaultDirName) {
		t.Errorf("after a snapshot: %+v", d.Problems)
	}
	// A volume below the subvolume root hears only of what is under it.
	if d := p.Diagnose(bg(t), filepath.Join(sv, "x")); problem(d, "btrfs.nested_subvolumes", provider.Warning) == nil ||
		strings.Contains(d.Problems[0].Message, sub) {
		t.Errorf("below the root: %+v", d.Problems)
	}

	t.Run("not lvss's directory", func(t *testing.T) {
		sv2 := subvol(t, filepath.Join(mnt, "sv2"))
		mkdir(t, filepath.Join(sv2, defaultDirName))
		d := p.Diagnose(bg(t), sv2)
		if pr := problem(d, "btrfs.snapshot_dir", provider.Error); !d.Supported || pr == nil || !strings.Contains(pr.Fix, "snapshot_dir") {
			t.Fatalf("%+v", d)
		}
	})
	t.Run("configured snapshot_dir", func(t *testing.T) {
		for _, c := range []struct {
			name, dir string
			bad       bool
		}{
			{"on the same filesystem, not made yet", filepath.Join(mnt, "store"), false},
			{"on ext4", ext.Mount, true},
			{"on another btrfs", other, true},
			{"without a parent", filepath.Join(mnt, "no", "such"), true},
		} {
			q := newProvider(t, Config{Volumes: []VolumeConfig{{Path: sv, SnapshotDir: c.dir}}}, 1<<20)
			d := q.Diagnose(bg(t), sv)
			pr := problem(d, "btrfs.snapshot_dir", provider.Error)
			if !d.Supported || (pr != nil) != c.bad || c.bad && !strings.Contains(pr.Message, c.dir) {
				t.Errorf("%s: %+v", c.name, d)
			}
			if !c.bad && d.SnapshotDir != c.dir {
				t.Errorf("%s: snapshot dir %q", c.name, d.SnapshotDir)
			}
			if got := q.ConfiguredVolumes(); len(got) != 1 || got[0] != sv {
				t.Errorf("ConfiguredVolumes = %q", got)
			}
		}
		if _, err := os.Stat(filepath.Join(mnt, "store")); !os.IsNotExist(err) {
			t.Fatalf("Diagnose made the configured directory: %v", err)
		}
	})
	t.Run("free space", func(t *testing.T) {
		q := newProvider(t, Config{}, 1<<40)
		if d := q.Diagnose(bg(t), sv); problem(d, "btrfs.free_space", provider.Error) == nil {
			t.Fatalf("%+v", d.Problems)
		}
	})
}
