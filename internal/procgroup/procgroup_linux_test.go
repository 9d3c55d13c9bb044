package procgroup

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/mountinfo"
)

// A command that started children is gone, children included, after Kill.
func TestKillTakesTheWholeGroup(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60 & wait")
	cmd.SysProcAttr = Attr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Kill once sh has started its children: the group is sh and its two
	// sleeps.
	for end := time.Now().Add(20 * time.Second); len(inGroup(t, cmd.Process.Pid)) < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("sh did not start its children: group %v", inGroup(t, cmd.Process.Pid))
		}
	}
	Kill(cmd.Process.Pid)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the group leader survived Kill")
	}
	// The children were in the group: soon no process is left in it
	// (SIGKILL is delivered at once; their exit and reaping take a moment).
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := inGroup(t, cmd.Process.Pid)
		if len(left) == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("processes left in the group 5 s after Kill: %v", left)
		}
	}
}

// inGroup lists the processes of process group pgid (pgrep -g).
func inGroup(t *testing.T, pgid int) []string {
	t.Helper()
	out, err := exec.Command("pgrep", "-g", strconv.Itoa(pgid)).Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		return nil // pgrep: no process matched
	} else if err != nil {
		t.Fatalf("pgrep: %v", err)
	}
	return strings.Fields(string(out))
}

// OnTmpfs agrees with the mount table on every directory tried.
func TestOnTmpfs(t *testing.T) {
	for _, dir := range []string{"/dev/shm", "/run", "/proc", "/", os.TempDir(), t.TempDir()} {
		m, err := mountinfo.ForPath(dir)
		if err != nil {
			continue // not on this machine
		}
		want := m.FSType == "tmpfs" || m.FSType == "ramfs"
		if got := OnTmpfs(dir); got != want {
			t.Errorf("OnTmpfs(%s) = %v, but it is on %s (%s)", dir, got, m.MountPoint, m.FSType)
		}
	}
	if OnTmpfs("/nonexistent/dir") {
		t.Error("a missing directory is reported as a tmpfs")
	}
}
