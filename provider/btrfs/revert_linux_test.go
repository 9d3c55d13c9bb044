//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package btrfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vsserr"
)

var _ provider.Reverter = (*Provider)(nil)

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// revertFixture is a volume subvolume with one file, snapshotted, then
// changed: after a revert f is "before" again and g is gone.
func revertFixture(t *testing.T) (*Provider, string, provider.Snapshot) {
	t.Helper()
	fs := newBtrfs(t)
	vol := subvol(t, filepath.Join(fs, "data"))
	write(t, filepath.Join(vol, "f"), "before")
	p := newProvider(t, Config{}, 0)
	s := take(t, p, vol)[0]
	write(t, filepath.Join(vol, "f"), "after")
	write(t, filepath.Join(vol, "g"), "new")
	return p, vol, s
}

// checkReverted asserts the volume holds the snapshot's content, its
// snapshots are still there, and nothing of the revert is left over.
func checkReverted(t *testing.T, p *Provider, vol string, s provider.Snapshot) {
	t.Helper()
	if got := readFile(t, filepath.Join(vol, "f")); got != "before" {
		t.Fatalf("f = %q after the revert, want the snapshot's %q", got, "before")
	}
	if _, err := os.Stat(filepath.Join(vol, "g")); !os.IsNotExist(err) {
		t.Fatalf("g, made after the snapshot, still there: %v", err)
	}
	if ro, err := isReadOnlySubvolume(s.Handle); err != nil || !ro {
		t.Fatalf("snapshot %s after the revert: read-only subvolume %v, %v", s.Handle, ro, err)
	}
	if got := readFile(t, filepath.Join(s.DevicePath, "f")); got != "before" {
		t.Fatalf("snapshot content changed: %q", got)
	}
	checkClean(t, p, vol)
}

func checkClean(t *testing.T, p *Provider, vol string) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Dir(vol))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".lvss-revert-") {
			t.Errorf("left over: %s", e.Name())
		}
	}
	if js, err := p.journals(); err != nil || len(js) != 0 {
		t.Errorf("journals left: %v, %v", js, err)
	}
}

func TestRevertSwapsSubvolume(t *testing.T) {
	p, vol, s := revertFixture(t)
	var stdev unix.Stat_t
	if err := unix.Stat(vol, &stdev); err != nil {
		t.Fatal(err)
	}
	if err := p.Revert(bg(t), s, false); err != nil {
		t.Fatal(err)
	}
	checkReverted(t, p, vol, s)
	// The snapshot is still listed by Query at the same handle: its
	// .lvss-snapshots was carried into the new volume.
	snaps, err := p.Query(bg(t))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, q := range snaps { // Query lists every btrfs of the machine
		found = found || q.ID == s.ID && q.Handle == s.Handle
	}
	if !found {
		t.Fatalf("Query after revert lacks %s: %+v", s.ID, snaps)
	}
	// It can be reverted to again, and the volume is writable.
	write(t, filepath.Join(vol, "f"), "again")
	if err := p.Revert(bg(t), s, false); err != nil {
		t.Fatal(err)
	}
	checkReverted(t, p, vol, s)
}

func TestRevertCarriesNestedSubvolumes(t *testing.T) {
	p, vol, s := revertFixture(t)
	// One nested subvolume the snapshot shows as a stand-in, one made
	// after it in a directory the snapshot does not have.
	inner := subvol(t, filepath.Join(vol, "inner"))
	write(t, filepath.Join(inner, "x"), "kept")
	later := subvol(t, filepath.Join(mkdir(t, filepath.Join(vol, "d")), "later"))
	write(t, filepath.Join(later, "y"), "kept too")
	if err := p.Revert(bg(t), s, false); err != nil {
		t.Fatal(err)
	}
	checkReverted(t, p, vol, s)
	if readFile(t, filepath.Join(inner, "x")) != "kept" || readFile(t, filepath.Join(later, "y")) != "kept too" {
		t.Fatal("nested subvolumes not carried")
	}
}

func TestRevertRefusesLayouts(t *testing.T) {
	fs := testenv.LoopFS(t, "btrfs", 512<<20)
	p := newProvider(t, Config{}, 0)
	vol := subvol(t, filepath.Join(fs.Mount, "data"))
	dir := mkdir(t, filepath.Join(vol, "dir"))

	top := take(t, p, fs.Mount)[0]
	err := p.Revert(bg(t), top, true)
	wantCode(t, err, vsserr.VolumeNotSupported)
	if !strings.Contains(err.Error(), "top level") {
		t.Errorf("no reason: %v", err)
	}

	inDir := take(t, p, dir)[0]
	err = p.Revert(bg(t), inDir, true)
	wantCode(t, err, vsserr.VolumeNotSupported)
	if !strings.Contains(err.Error(), "subvolume of its own") {
		t.Errorf("no layout hint: %v", err)
	}

	// The subvolume mounted on its own with subvol=.
	mnt := exposeDir(t)
	if err := unix.Mount(fs.Device, mnt, "btrfs", 0, "subvol=data"); err != nil {
		t.Fatal(err)
	}
	mounted := take(t, p, mnt)[0]
	err = p.Revert(bg(t), mounted, true)
	wantCode(t, err, vsserr.VolumeNotSupported)
	if !strings.Contains(err.Error(), "subvol=") || !strings.Contains(err.Error(), "parent") {
		t.Errorf("no layout hint: %v", err)
	}
	checkClean(t, p, vol)
}

// TestRevertInUse: a process working in the volume makes it in use; a
// forced revert goes ahead and the process keeps the old content.
func TestRevertInUse(t *testing.T) {
	p, vol, s := revertFixture(t)
	cmd := exec.Command("sh", "-c", "exec 3<f; read x; cat <&3")
	cmd.Dir = vol
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	err = p.Revert(bg(t), s, false)
	wantCode(t, err, vsserr.VolumeInUse)
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Errorf("the user is not named: %v", err)
	}
	if got := readFile(t, filepath.Join(vol, "f")); got != "after" {
		t.Fatalf("refused revert changed the volume: %q", got)
	}
	checkClean(t, p, vol)

	// A mount below the volume is a use too.
	sub := mkdir(t, filepath.Join(vol, "m"))
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	err = p.Revert(bg(t), s, false)
	wantCode(t, err, vsserr.VolumeInUse)
	if !strings.Contains(err.Error(), "a mount at "+sub) {
		t.Errorf("the mount is not named: %v", err)
	}
	if err := unix.Unmount(sub, 0); err != nil {
		t.Fatal(err)
	}

	if err := p.Revert(bg(t), s, true); err != nil {
		t.Fatal(err)
	}
	checkReverted(t, p, vol, s)
	// The process still reads the old file through its descriptor.
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "after" {
		t.Fatalf("the process's open file reads %q, want the old content", out.String())
	}
}

// crash is what the step hook panics with: the revert stops there as if
// the process had been killed (no error path runs).
type crash struct{}

// TestRevertRecoversAfterCrashAtEachStep stops a revert after each of its
// durable steps in turn, then runs a new provider's RecoverReverts over the
// same state directory: the volume is then fully reverted, never half.
func TestRevertRecoversAfterCrashAtEachStep(t *testing.T) {
	for n := 1; ; n++ {
		done := false
		t.Run(fmt.Sprintf("after-step-%d", n), func(t *testing.T) {
			p, vol, s := revertFixture(t)
			subvol(t, filepath.Join(vol, "inner")) // one more subvolume to carry
			calls := 0
			var at string
			p.SetRevertStepHook(func(step string) {
				if calls++; calls == n {
					at = step
					panic(crash{})
				}
			})
			func() {
				defer func() {
					if r := recover(); r != nil && r != (crash{}) {
						panic(r)
					}
				}()
				if err := p.Revert(bg(t), s, false); err != nil {
					t.Fatal(err)
				}
			}()
			if at == "" {
				done = true // ran to the end: every step was tried
				checkReverted(t, p, vol, s)
				return
			}
			t.Logf("stopped after step %q", at)
			again, err := New(Config{}, 0, p.stateDir, nil)
			if err != nil {
				t.Fatal(err)
			}
			out := again.RecoverReverts(context.Background())
			if len(out) != 1 || !out[0].Completed || out[0].Err != nil || out[0].Volume != vol {
				t.Fatalf("RecoverReverts: %+v", out)
			}
			checkReverted(t, again, vol, s)
			if _, err := os.Stat(filepath.Join(vol, "inner")); err != nil {
				t.Fatalf("nested subvolume lost: %v", err)
			}
		})
		if done || t.Failed() || n > 20 {
			return
		}
	}
}

// TestRevertRecoveryUndoesWhenSnapshotGone: killed right after the journal
// was written, and the snapshot deleted while lvssd was down: the revert
// cannot be finished and the volume is left as it was.
func TestRevertRecoveryUndoesWhenSnapshotGone(t *testing.T) {
	p, vol, s := revertFixture(t)
	p.SetRevertStepHook(func(string) { panic(crash{}) })
	func() {
		defer func() { _ = recover() }()
		_ = p.Revert(bg(t), s, false)
	}()
	if err := p.DeleteSnapshot(bg(t), s); err != nil {
		t.Fatal(err)
	}
	out := p.RecoverReverts(context.Background())
	if len(out) != 1 || out[0].Completed || out[0].Err == nil {
		t.Fatalf("RecoverReverts: %+v", out)
	}
	if got := readFile(t, filepath.Join(vol, "f")); got != "after" {
		t.Fatalf("volume changed: %q", got)
	}
	checkClean(t, p, vol)
}

func TestRevertRefusesWhileJournaled(t *testing.T) {
	p, vol, s := revertFixture(t)
	if err := p.writeJournal(&revertJournal{SnapshotID: s.ID, Volume: vol, Step: stepSnapshot}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, p.Revert(bg(t), s, false), vsserr.RevertInProgress)
	if err := p.removeJournal(s.ID); err != nil {
		t.Fatal(err)
	}
}

// TestRevertForcedDetachesMountsBelow: forced with a mount inside the
// volume, the old subvolume is deleted all the same and the kernel
// detaches the mount with it (as a lazy unmount would).
func TestRevertForcedDetachesMountsBelow(t *testing.T) {
	p, vol, s := revertFixture(t)
	sub := mkdir(t, filepath.Join(vol, "m"))
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountUnder(t, filepath.Dir(vol)) })
	if err := p.Revert(bg(t), s, true); err != nil {
		t.Fatal(err)
	}
	checkReverted(t, p, vol, s)
	ms, err := mountinfo.Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if strings.HasPrefix(m.MountPoint, filepath.Dir(vol)+"/") {
			t.Fatalf("mount left after the revert: %s", m.MountPoint)
		}
	}
}

// TestRevertRefusesWhenOldContentKept: an earlier revert's old content
// still at the working name (something pinned it then) is named, with
// what to do about it.
func TestRevertRefusesWhenOldContentKept(t *testing.T) {
	p, vol, s := revertFixture(t)
	kept := subvol(t, filepath.Join(filepath.Dir(vol), ".data.lvss-revert-"+s.ID.String()))
	err := p.Revert(bg(t), s, true)
	wantCode(t, err, vsserr.VolumeInUse)
	if !strings.Contains(err.Error(), "btrfs subvolume delete "+kept) {
		t.Errorf("no advice: %v", err)
	}
	if err := destroyOwn(kept, mustSubvolID(t, kept)); err != nil {
		t.Fatal(err)
	}
	if err := p.Revert(bg(t), s, false); err != nil {
		t.Fatal(err)
	}
	checkReverted(t, p, vol, s)
}

func mustSubvolID(t *testing.T, path string) uint64 {
	t.Helper()
	id, err := subvolID(path)
	if err != nil || id == 0 {
		t.Fatalf("subvolume ID of %s: %d, %v", path, id, err)
	}
	return id
}
