package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// FS is a real filesystem on a loop device, made for one test.
type FS struct {
	Type   string // btrfs, xfs, ext4
	Image  string // the sparse image file
	Device string // /dev/loopN
	Mount  string // where it is mounted
}

// fifreeze/fithaw: x/sys/unix has no names for them (_IOWR('X', 119/120, int)).
const (
	fifreeze = 0xC0045877
	fithaw   = 0xC0045878
)

// LoopFS makes a filesystem of the given type (btrfs, xfs, ext4) in a
// sparse image in a private temp dir, attaches it to a loop device and
// mounts it. Cleanup thaws it if a test left it frozen, unmounts it,
// detaches the loop device and removes the image — also when the test
// fails. What it needs (root, losetup, mkfs.TYPE, kernel support) is
// checked with Missing: a failure on CI, a skip elsewhere.
func LoopFS(t testing.TB, fstype string, size int64, mkfsArgs ...string) *FS {
	t.Helper()
	RequireRoot(t)
	for _, tool := range []string{"losetup", "mkfs." + fstype, "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			Missing(t, tool+" (apt-get install util-linux btrfs-progs xfsprogs e2fsprogs)")
		}
	}
	if !kernelHas(fstype) {
		Missing(t, fstype+" support in the kernel")
	}
	reapOnce.Do(reapStale)
	// The pid in the name lets a later test process clean up after one
	// that was killed before its cleanups ran (reapStale).
	dir, err := os.MkdirTemp("", fmt.Sprintf("lvss-loopfs-%d-", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	fs := &FS{Type: fstype, Image: filepath.Join(dir, fstype+".img"), Mount: filepath.Join(dir, "mnt")}
	t.Cleanup(func() { fs.destroy(t); os.RemoveAll(dir) })
	if err := os.Mkdir(fs.Mount, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(fs.Image)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, "mkfs."+fstype, append(append(quietFlag(fstype), mkfsArgs...), fs.Image)...)
	out := run(t, "losetup", "--find", "--show", fs.Image)
	fs.Device = strings.TrimSpace(out)
	run(t, "mount", fs.Device, fs.Mount)
	return fs
}

var reapOnce sync.Once

// reapStale removes what LoopFS made for test processes that are gone: a
// test binary killed by go test's -timeout (a panic, which skips every
// t.Cleanup) or by a signal leaves its filesystem mounted and its loop
// device attached, and loop devices and /tmp fill up over days of
// development. Only directories named with a pid that no longer runs are
// touched; anything else is left alone.
func reapStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "lvss-loopfs-*-*"))
	for _, dir := range dirs {
		fields := strings.Split(filepath.Base(dir), "-")
		if len(fields) != 4 {
			continue
		}
		pid, err := strconv.Atoi(fields[2])
		if err != nil || pid <= 0 || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		mnt := filepath.Join(dir, "mnt")
		if f, err := os.Open(mnt); err == nil {
			_ = unix.IoctlSetInt(int(f.Fd()), fithaw, 0)
			f.Close()
		}
		_ = unix.Unmount(mnt, unix.MNT_DETACH)
		imgs, _ := filepath.Glob(filepath.Join(dir, "*.img"))
		for _, img := range imgs {
			out, _ := exec.Command("losetup", "-j", img).Output()
			for _, l := range strings.Split(string(out), "\n") {
				if dev, _, ok := strings.Cut(l, ":"); ok && strings.HasPrefix(dev, "/dev/loop") {
					_ = exec.Command("losetup", "-d", dev).Run()
				}
			}
		}
		_ = os.RemoveAll(dir)
	}
}

func quietFlag(fstype string) []string {
	switch fstype {
	case "btrfs":
		return []string{"-q"}
	case "xfs":
		return []string{"-q"}
	case "ext4":
		return []string{"-q", "-F"}
	}
	return nil
}

func kernelHas(fstype string) bool {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(l, "nodev")) == fstype {
			return true
		}
	}
	// Not loaded yet: modprobe happens at first mount; assume it can.
	_, err = os.Stat("/lib/modules")
	return err == nil
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Thaw thaws the filesystem if it is frozen; harmless otherwise.
func (fs *FS) Thaw() {
	f, err := os.Open(fs.Mount)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.IoctlSetInt(int(f.Fd()), fithaw, 0)
}

// Frozen reports whether the filesystem is frozen now, without waiting and
// without writing: FIFREEZE on a frozen filesystem fails with EBUSY. On one
// that is not, the probe's own freeze is undone at once (so do not call it
// while something else may be about to freeze the filesystem: that freeze
// would find it busy).
func (fs *FS) Frozen() (bool, error) {
	f, err := os.Open(fs.Mount)
	if err != nil {
		return false, err
	}
	defer f.Close()
	switch err := unix.IoctlSetInt(int(f.Fd()), fifreeze, 0); err {
	case nil:
		return false, unix.IoctlSetInt(int(f.Fd()), fithaw, 0)
	case unix.EBUSY:
		return true, nil
	default:
		return false, err
	}
}

// Writable reports whether a small write to the filesystem finishes within
// d: a frozen filesystem blocks writers, so a write that does not return
// means it is frozen. The probe runs in a child process, because a write
// blocked on a frozen filesystem cannot be interrupted.
func (fs *FS) Writable(d time.Duration) bool {
	probe := filepath.Join(fs.Mount, fmt.Sprintf(".lvss-probe-%d", time.Now().UnixNano()))
	cmd := exec.Command("sh", "-c", "echo x > \"$1\" && rm -f \"$1\"", "probe", probe)
	if err := cmd.Start(); err != nil {
		return false
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err == nil
	case <-time.After(d):
		// Thawing later lets it finish; it is reaped by the goroutine.
		return false
	}
}

func (fs *FS) destroy(t testing.TB) {
	if fs.Device == "" {
		return
	}
	fs.Thaw()
	for i := 0; ; i++ {
		err := unix.Unmount(fs.Mount, 0)
		if err == nil || err == unix.EINVAL || err == unix.ENOENT {
			break
		}
		if i == 50 {
			// Something still holds it (a snapshot mount, an open file):
			// detach lazily rather than leave it behind.
			_ = unix.Unmount(fs.Mount, unix.MNT_DETACH)
			t.Logf("loopfs: lazy unmount of %s after %v", fs.Mount, err)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = exec.Command("losetup", "-d", fs.Device).Run()
}
