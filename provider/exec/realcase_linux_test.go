package exec

import (
	"context"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/testenv"
)

// FIFREEZE and FITHAW, _IOWR('X', 119/120, int); x/sys/unix has no names
// for them.
const (
	fifreeze = 0xC0045877
	fithaw   = 0xC0045878
)

// The worked example of docs/provider-exec.md: every volume is an ext4 (or
// any filesystem) in an image file attached to a loop device; the snapshot
// is a reflink clone of the image, made on the image's host filesystem,
// which is not frozen. Keep the two in step.
const (
	imageCloneCommit = `set -eu
i=1
while [ "$i" -le "$LVSS_VOLUME_COUNT" ]; do
	eval dev=\$LVSS_DEVICE_$i id=\$LVSS_SNAPSHOT_ID_$i
	img=$(cat "/sys/block/${dev#/dev/}/loop/backing_file")
	clone="$(dirname "$img")/.snapshots/$id.img"
	cp --reflink=always -- "$img" "$clone"
	printf '%s\n' "$clone"
	i=$((i + 1))
done`
	imageCloneDelete   = `rm -f -- "$LVSS_SNAPSHOT_HANDLE"`
	imageCloneExpose   = `mount -o ro,loop -- "$LVSS_SNAPSHOT_HANDLE" "$LVSS_EXPOSE_PATH"`
	imageCloneUnexpose = `if mountpoint -q -- "$LVSS_EXPOSE_PATH"; then umount -- "$LVSS_EXPOSE_PATH"; fi`
)

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := osexec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// attach puts an image on a loop device and mounts it. The returned
// function unmounts and detaches (thawing first, in case a failed test left
// it frozen); it is idempotent and also registered as cleanup.
func attach(t *testing.T, image, mnt string, readOnly bool) (detach func()) {
	t.Helper()
	args, opts := []string{"--find", "--show"}, []string{}
	if readOnly {
		args, opts = append(args, "--read-only"), []string{"-o", "ro"}
	}
	dev := sh(t, "losetup", append(args, image)...)
	mounted := false
	var once sync.Once
	detach = func() {
		once.Do(func() {
			if mounted {
				thaw(mnt)
				if err := unix.Unmount(mnt, 0); err != nil {
					t.Errorf("unmount %s: %v", mnt, err)
				}
			}
			if out, err := osexec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
				t.Errorf("losetup -d %s: %v %s", dev, err, out)
			}
		})
	}
	t.Cleanup(detach)
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "mount", append(opts, dev, mnt)...)
	mounted = true
	return detach
}

func freeze(t *testing.T, mnt string) {
	t.Helper()
	f, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), fifreeze, 0); err != nil {
		t.Fatalf("FIFREEZE %s: %v", mnt, err)
	}
}

func thaw(mnt string) {
	f, err := os.Open(mnt)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.IoctlSetInt(int(f.Fd()), fithaw, 0)
}

// freezeHooks freeze the filesystem at mnt around the commit exactly as
// the coordinator does, and check that it really is frozen, and that the
// filesystems listed in open stay writable meanwhile.
func freezeHooks(t *testing.T, mnt string, open ...*testenv.FS) hooks {
	probe := &testenv.FS{Mount: mnt}
	return hooks{
		freeze: func() {
			freeze(t, mnt)
			if probe.Writable(200 * time.Millisecond) {
				t.Fatalf("%s accepted a write while frozen", mnt)
			}
			for _, o := range open {
				if !o.Writable(2 * time.Second) {
					t.Errorf("%s is not writable: only the snapshotted filesystem may be frozen", o.Mount)
				}
			}
		},
		thaw: func() { thaw(mnt) },
	}
}

// TestImageCloneOfFrozenExt4 is the case the exec provider exists for: an
// ext4 in an image file on XFS, snapshotted by a reflink clone of the
// image taken on the XFS while the ext4 is frozen.
func TestImageCloneOfFrozenExt4(t *testing.T) {
	host := testenv.LoopFS(t, "xfs", 512<<20, "-m", "reflink=1")
	if _, err := osexec.LookPath("mkfs.ext4"); err != nil {
		testenv.Missing(t, "mkfs.ext4 (apt-get install e2fsprogs)")
	}
	disks := filepath.Join(host.Mount, "disks")
	if err := os.MkdirAll(filepath.Join(disks, ".snapshots"), 0o755); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(disks, "data.img")
	if err := os.WriteFile(image, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(image, 64<<20); err != nil {
		t.Fatal(err)
	}
	sh(t, "mkfs.ext4", "-q", "-F", image)
	mnt := filepath.Join(t.TempDir(), "data")
	attach(t, image, mnt, false)

	file := filepath.Join(mnt, "payload")
	if err := os.WriteFile(file, []byte("before the snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Name: "image-clone", Volumes: []string{mnt}, Commit: imageCloneCommit, Delete: imageCloneDelete,
		Expose: imageCloneExpose, Unexpose: imageCloneUnexpose, Timeout: dur(5 * time.Second)}
	p, _ := newProvider(t, cfg, 10*time.Second)

	snap := mustRun(t, p, freezeHooks(t, mnt, host), mnt)[0]
	if !host.Writable(2 * time.Second) {
		t.Fatal("host XFS not writable after the snapshot")
	}
	if err := os.WriteFile(file, []byte("after the snapshot, must not be in it"), 0o644); err != nil {
		t.Fatal(err)
	}
	unix.Sync()

	clone := filepath.Join(disks, ".snapshots", snap.ID.String()+".img")
	if snap.Handle != clone || snap.DevicePath != clone {
		t.Fatalf("snapshot %+v, want handle and device path %s", snap, clone)
	}
	// A read-only mount succeeds only if the clone needs no journal
	// recovery: the freeze left the image clean.
	view := filepath.Join(t.TempDir(), "view")
	detachView := attach(t, clone, view, true)
	if got, err := os.ReadFile(filepath.Join(view, "payload")); err != nil || string(got) != "before the snapshot" {
		t.Fatalf("clone holds %q (%v), want the content at the snapshot", got, err)
	}

	// The same through the provider's expose/unexpose commands.
	exposed := filepath.Join(t.TempDir(), "exposed")
	if err := os.Mkdir(exposed, 0o755); err != nil {
		t.Fatal(err)
	}
	name, err := p.Expose(tctx(t), snap, exposed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(exposed, 0) })
	if got, err := os.ReadFile(filepath.Join(name, "payload")); err != nil || string(got) != "before the snapshot" {
		t.Fatalf("exposed snapshot holds %q (%v)", got, err)
	}
	for range 2 {
		if err := p.Unexpose(tctx(t), snap, name); err != nil {
			t.Fatal(err)
		}
	}
	detachView()
	// mount -o loop attaches with autoclear: unmounting detached it.
	if out := sh(t, "losetup", "-j", clone); out != "" {
		t.Fatalf("loop devices left on the clone: %s", out)
	}

	for range 2 {
		if err := p.DeleteSnapshot(tctx(t), snap); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(clone); !os.IsNotExist(err) {
		t.Fatalf("clone survives DeleteSnapshot: %v", err)
	}
}

// TestHungCommitIsKilledAndFilesystemThaws: a commit that hangs is killed
// with its whole process group at its timeout, and the filesystem the
// coordinator froze around it thaws and takes writes again.
func TestHungCommitIsKilledAndFilesystemThaws(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", 128<<20)
	pidfile := filepath.Join(t.TempDir(), "pid") // not on the frozen fs
	cfg := Config{Name: "hang", Volumes: []string{fs.Mount}, Commit: `echo $$ > '` + pidfile + `'; sleep 30`,
		Delete: "true", Timeout: dur(time.Second)}
	p, _ := newProvider(t, cfg, 10*time.Second)
	t0 := time.Now()
	a := run(t, p, freezeHooks(t, fs.Mount), fs.Mount)
	took := time.Since(t0)
	if a.step != "CommitSnapshots" || !errors.Is(a.err, context.DeadlineExceeded) {
		t.Fatalf("want a timeout at CommitSnapshots, got %s: %v", a.step, a.err)
	}
	if msg := a.err.Error(); !strings.Contains(msg, "commit command did not finish within 1s; its process group was killed") {
		t.Fatalf("unclear error: %v", a.err)
	}
	if took > 3*time.Second {
		t.Fatalf("creation took %s with a 1s commit timeout", took)
	}
	waitGroupGone(t, readPid(t, pidfile), 2*time.Second)
	if err := p.AbortSnapshots(tctx(t), a.set); err != nil {
		t.Fatal(err)
	}
	if !fs.Writable(2 * time.Second) {
		t.Fatal("filesystem not writable after thaw")
	}
}

// TestCommitBlockedOnFrozenFilesystemIsAbandoned: a commit that writes to
// the frozen filesystem cannot be waited for — it sleeps in the kernel
// until thaw and SIGKILL cannot end it sooner. Commit returns at its
// deadline anyway; after thaw the process ends and the handle it printed
// before blocking is deleted by Abort.
func TestCommitBlockedOnFrozenFilesystemIsAbandoned(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", 128<<20)
	deleted := filepath.Join(t.TempDir(), "deleted")
	cfg := Config{Name: "blocked", Volumes: []string{fs.Mount},
		Commit: `echo early-handle; echo x > "$LVSS_VOLUME_1/written-while-frozen"; echo late-handle`,
		Delete: logDelete(deleted), Timeout: dur(time.Second)}
	p, _ := newProvider(t, cfg, 10*time.Second)
	t0 := time.Now()
	a := run(t, p, freezeHooks(t, fs.Mount), fs.Mount)
	if a.step != "CommitSnapshots" || !errors.Is(a.err, context.DeadlineExceeded) {
		t.Fatalf("want a timeout at CommitSnapshots, got %s: %v", a.step, a.err)
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Fatalf("commit blocked on a frozen filesystem held the caller %s", took)
	}
	t.Logf("commit error: %v", a.err)
	// run has thawed by now, as the coordinator does before aborting.
	if err := p.AbortSnapshots(tctx(t), a.set); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitAbandoned(ctx); err != nil {
		t.Fatalf("abandoned commit did not end after thaw: %v", err)
	}
	if got := readLines(t, deleted); len(got) != 1 || got[0] != "early-handle" {
		t.Fatalf("deleted %q, want the handle printed before the commit blocked", got)
	}
	if !fs.Writable(2 * time.Second) {
		t.Fatal("filesystem not writable after thaw")
	}
	if ents, _ := os.ReadDir(p.tmpRoot); len(ents) != 0 {
		t.Fatalf("TMPDIRs left behind: %v", ents)
	}
}
