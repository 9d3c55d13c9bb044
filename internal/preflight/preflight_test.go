package preflight

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/fake"
	"github.com/lvss/lvss/vss"
)

// diagnosing is a fake that explains itself, with a problem to report.
type diagnosing struct {
	*fake.Provider
	dir string
}

func (d diagnosing) Diagnose(ctx context.Context, volume string) provider.Diagnosis {
	ok, _ := d.IsVolumeSupported(ctx, volume)
	if !ok {
		return provider.Diagnosis{Reason: "not under its root"}
	}
	return provider.Diagnosis{Supported: true, Reason: "under its root", SnapshotDir: d.dir,
		Problems: []provider.Problem{{Check: "snap.layout", Severity: provider.Warning, Message: "a nested thing", Fix: "flatten it"}}}
}

// configured is a fake whose configuration names volumes.
type configured struct {
	*fake.Provider
	vols []string
}

func (c configured) ConfiguredVolumes() []string { return c.vols }

func find(t *testing.T, rep Report, path string) Volume {
	t.Helper()
	for _, v := range rep.Volumes {
		if v.Path == path {
			return v
		}
	}
	t.Fatalf("no volume %s in %+v", path, rep.Volumes)
	return Volume{}
}

func has(fs []Finding, check string, sev Severity) bool {
	for _, f := range fs {
		if f.Check == check && f.Severity == sev {
			return true
		}
	}
	return false
}

// TestRun: each volume gets the first provider that takes it, every
// provider's verdict, and the findings its provider, filesystem and
// snapshot count call for; the directories are judged; pseudo
// filesystems are left out; a provider that hangs costs its own verdict.
func TestRun(t *testing.T) {
	root := t.TempDir()
	dir := func(name string) string {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c, p := dir("a"), dir("b"), dir("c"), dir("proc")
	runDir, stateDir := dir("b/run"), dir("b/state")
	ms := []mountinfo.Mount{
		{ID: 1, MountPoint: "/", FSType: "ext4", Major: 254, Minor: 0, Options: "rw"},
		{ID: 2, MountPoint: a, FSType: "ext4", Major: 7, Minor: 1, Options: "rw", Source: "/dev/loop1"},
		{ID: 3, MountPoint: b, FSType: "xfs", Major: 7, Minor: 2, Options: "rw"},
		{ID: 4, MountPoint: c, FSType: "vfat", Major: 7, Minor: 3, Options: "ro"},
		{ID: 5, MountPoint: p, FSType: "proc", Options: "rw"},
	}
	snap := diagnosing{fake.New(a), filepath.Join(a, ".snaps")}
	outside := configured{fake.New(b, c).WithInfo(provider.Info{ID: uuid.New(), Name: "outside", Type: vss.ProvHardware, NeedsFreeze: true}),
		[]string{filepath.Join(root, "missing")}}
	slow := fake.New().WithInfo(provider.Info{ID: uuid.New(), Name: "slow"})
	release := slow.HangAt("IsVolumeSupported")
	t.Cleanup(release)

	rep := Run(context.Background(), Input{Providers: []provider.Provider{snap, outside, slow}, Mounts: ms,
		Snapshots: map[string]int{a: 9, filepath.Join(root, "gone"): 3}, MaxSnapshots: 10,
		RunDir: runDir, StateDir: stateDir, CallTimeout: 200 * time.Millisecond})

	for _, v := range rep.Volumes {
		if v.Path == p {
			t.Errorf("a proc mount is listed: %+v", v)
		}
	}
	va := find(t, rep, a)
	if va.Provider != "fake" || !va.Mounted || va.Type != "ext4" || va.Device != "7:1" || va.Freeze != mountinfo.FreezeSupported ||
		va.SnapshotDir != filepath.Join(a, ".snaps") || va.Total == 0 || va.Snapshots != 9 {
		t.Errorf("%s: %+v", a, va)
	}
	if len(va.Verdicts) != 3 || !va.Verdicts[0].Supported || va.Verdicts[1].Supported || va.Verdicts[1].Reason != "it does not support the volume" ||
		va.Verdicts[2].Supported || !strings.Contains(va.Verdicts[2].Reason, "did not answer within") {
		t.Errorf("%s verdicts: %+v", a, va.Verdicts)
	}
	if !has(va.Findings, "volume.provider", OK) || !has(va.Findings, "snap.layout", Warning) || !has(va.Findings, "volume.snapshots", Warning) ||
		has(va.Findings, "volume.freeze", OK) {
		t.Errorf("%s findings: %+v", a, va.Findings)
	}

	vb := find(t, rep, b)
	if vb.Provider != "outside" || !has(vb.Findings, "volume.freeze", OK) || !has(vb.Findings, "volume.run_dir", Error) {
		t.Errorf("%s: %+v", b, vb)
	}
	vc := find(t, rep, c)
	if vc.Provider != "outside" || vc.Freeze != mountinfo.FreezeUnsupported || !vc.ReadOnly || !has(vc.Findings, "volume.freeze", Error) ||
		has(vc.Findings, "volume.run_dir", Error) {
		t.Errorf("%s: %+v", c, vc)
	}
	if vr := find(t, rep, "/"); vr.Provider != "" || !has(vr.Findings, "volume.provider", Info) {
		t.Errorf("/: %+v", vr)
	}
	if vm := find(t, rep, filepath.Join(root, "missing")); !vm.Configured || vm.Exists || !has(vm.Findings, "volume.exists", Warning) {
		t.Errorf("configured and missing: %+v", vm)
	}
	if vg := find(t, rep, filepath.Join(root, "gone")); vg.Snapshots != 3 || !has(vg.Findings, "volume.exists", Info) {
		t.Errorf("snapshots of a gone volume: %+v", vg)
	}

	if !has(rep.Findings, "run_dir.tmpfs", Warning) || !has(rep.Findings, "state_dir.persistent", OK) || !has(rep.Findings, "state_dir.frozen", Warning) {
		t.Errorf("directories: %+v", rep.Findings)
	}
	for _, f := range rep.Findings {
		if f.Check == "state_dir.frozen" && !strings.Contains(f.Message, b+" (outside)") {
			t.Errorf("state_dir.frozen names no freezer: %s", f.Message)
		}
	}
}

// TestRunDirOnTmpfsAndCap: a run dir on a tmpfs is fine, a state dir on one
// is not, and a volume at the cap is an error.
func TestRunDirOnTmpfsAndCap(t *testing.T) {
	root := t.TempDir()
	run, state, vol := filepath.Join(root, "run"), filepath.Join(root, "state"), filepath.Join(root, "vol")
	for _, d := range []string{run, state, vol} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ms := []mountinfo.Mount{
		{ID: 1, MountPoint: "/", FSType: "ext4", Major: 254},
		{ID: 2, MountPoint: root, FSType: "tmpfs", Minor: 40},
		{ID: 3, MountPoint: vol, FSType: "btrfs", Minor: 41},
	}
	rep := Run(context.Background(), Input{Providers: []provider.Provider{fake.New(vol)}, Mounts: ms,
		Snapshots: map[string]int{vol: 10}, MaxSnapshots: 10, RunDir: run, StateDir: state})
	if !has(rep.Findings, "run_dir.tmpfs", OK) || !has(rep.Findings, "state_dir.persistent", Warning) || !has(rep.Findings, "state_dir.frozen", OK) {
		t.Errorf("directories: %+v", rep.Findings)
	}
	v := find(t, rep, vol)
	if !has(v.Findings, "volume.snapshots", Error) {
		t.Errorf("at the cap: %+v", v.Findings)
	}
	for _, v := range rep.Volumes {
		if v.Path == root {
			t.Errorf("a tmpfs mount is listed: %+v", v)
		}
	}
}

// TestSpaceOfAMissingDir: a snapshot directory made at the first snapshot
// is judged by the filesystem it would be made on.
func TestSpaceOfAMissingDir(t *testing.T) {
	free, total, err := Space(context.Background(), time.Second, filepath.Join(t.TempDir(), "not", "yet"))
	if err != nil || total == 0 || free > total {
		t.Fatalf("Space: %d of %d, %v", free, total, err)
	}
}
