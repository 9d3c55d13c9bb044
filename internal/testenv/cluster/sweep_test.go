package cluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
)

// TestSweepStale: the namespaces and temp dir a crashed test process left
// (named with its pid, no longer running) are removed with the process
// still running in them; those of a live process are left alone.
func TestSweepStale(t *testing.T) {
	testenv.RequireRoot(t)
	requireTools(t)
	// A pid that ran and is gone: the crashed test process's.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	// A live one: another test process's, running in parallel.
	live := exec.Command("sleep", "1000")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Process.Kill(); _ = live.Wait() })

	staleNS := namePrefix + strconv.Itoa(gone.Process.Pid) + "-1-h0"
	liveNS := namePrefix + strconv.Itoa(live.Process.Pid) + "-1-h0"
	for _, ns := range []string{staleNS, liveNS} {
		mustIP(t, "netns", "add", ns)
		t.Cleanup(func() { _ = removeNetns(ns) })
	}
	// What the crashed run left running in its namespace.
	orphan := exec.Command("nsenter", "--net="+filepath.Join(netnsDir, staleNS), "--", "sleep", "1000")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = orphan.Wait(); close(exited) }()
	t.Cleanup(func() { _ = orphan.Process.Kill(); <-exited })
	// In the namespace once nsenter has entered it and exec'd sleep.
	testenv.Eventually(t, 10*time.Second, "the orphan to be in the stale namespace", func() bool {
		return slices.Contains(netnsPids(filepath.Join(netnsDir, staleNS)), orphan.Process.Pid)
	})
	staleDir, err := os.MkdirTemp("", namePrefix+strconv.Itoa(gone.Process.Pid)+"-1-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(staleDir) })

	sweepStale(t)

	if _, err := os.Stat(filepath.Join(netnsDir, staleNS)); !os.IsNotExist(err) {
		t.Errorf("the stale namespace %s is left (stat: %v)", staleNS, err)
	}
	// Killed: it ends (its zombie reaped by the goroutine above) at once.
	testenv.Eventually(t, 10*time.Second, "the process left in the stale namespace to end", func() bool {
		select {
		case <-exited:
			return true
		default:
			return false
		}
	})
	if _, err := os.Stat(staleDir); !os.IsNotExist(err) {
		t.Errorf("the stale dir %s is left (stat: %v)", staleDir, err)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, liveNS)); err != nil {
		t.Errorf("the namespace of a live test process was removed: %v", err)
	}
}
