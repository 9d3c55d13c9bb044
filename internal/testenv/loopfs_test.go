package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestLoopFSAndFreezeProbe(t *testing.T) {
	for _, typ := range []string{"btrfs", "xfs", "ext4"} {
		t.Run(typ, func(t *testing.T) {
			fs := LoopFS(t, typ, 400<<20)
			var st unix.Statfs_t
			if err := unix.Statfs(fs.Mount, &st); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(fs.Mount, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if !fs.Writable(2 * time.Second) {
				t.Fatal("fresh filesystem not writable")
			}
			if frozen, err := fs.Frozen(); frozen || err != nil {
				t.Fatalf("fresh filesystem: Frozen() = %v, %v", frozen, err)
			}
			f, err := os.Open(fs.Mount)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.IoctlSetInt(int(f.Fd()), fifreeze, 0); err != nil {
				t.Fatalf("FIFREEZE: %v", err)
			}
			f.Close()
			if frozen, err := fs.Frozen(); !frozen || err != nil {
				t.Fatalf("frozen filesystem: Frozen() = %v, %v", frozen, err)
			}
			if fs.Writable(300 * time.Millisecond) {
				t.Fatal("frozen filesystem accepted a write")
			}
			// Cleanup must thaw and unmount even though the test leaves it frozen.
		})
	}
}

// A LoopFS left by a test process that was killed before its cleanups ran
// is removed by the next one: unmounted, its loop device detached, its
// directory gone. The dead process is a child that made one and was
// killed.
func TestLoopFSReapsWhatDeadProcessesLeft(t *testing.T) {
	RequireRoot(t)
	if os.Getenv("LVSS_LOOPFS_CHILD") == "1" {
		fs := LoopFS(t, "ext4", 64<<20)
		fmt.Println(filepath.Dir(fs.Mount), fs.Device)
		os.Stdout.Sync()
		// Killed here, as by go test's -timeout: no cleanup runs.
		select {}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoopFSReapsWhatDeadProcessesLeft$", "-test.v")
	cmd.Env = append(os.Environ(), "LVSS_LOOPFS_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var dir, dev string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && strings.HasPrefix(f[1], "/dev/loop") {
			dir, dev = f[0], f[1]
			break
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if dir == "" {
		t.Fatal("the child made no LoopFS")
	}
	t.Cleanup(func() { // in case reaping fails, leave nothing behind
		_ = unix.Unmount(filepath.Join(dir, "mnt"), unix.MNT_DETACH)
		_ = exec.Command("losetup", "-d", dev).Run()
		_ = os.RemoveAll(dir)
	})
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the dead child's LoopFS is not there to reap: %v", err)
	}
	reapStale()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s is still there after reapStale: %v", dir, err)
	}
	if out, _ := exec.Command("losetup", "-j", filepath.Join(dir, "ext4.img")).Output(); len(out) != 0 {
		t.Fatalf("its loop device is still attached: %s", out)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) {
		t.Fatalf("%s is still mounted", dir)
	}
}
