package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// revertVolume is a btrfs subvolume "data" on a fresh loop filesystem, with
// f = "before"; it returns the filesystem's mount and the volume.
func revertVolume(t *testing.T) (string, string) {
	t.Helper()
	fs := testenv.LoopFS(t, "btrfs", 512<<20)
	vol := filepath.Join(fs.Mount, "data")
	if out, err := exec.Command("btrfs", "subvolume", "create", vol).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v\n%s", err, out)
	}
	writeFile(t, filepath.Join(vol, "f"), "before")
	return fs.Mount, vol
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// shadowOf takes a persistent snapshot of vol with `lvss create shadow`
// and returns its ID.
func shadowOf(t *testing.T, d *lvssdtest.Daemon, vol string) string {
	t.Helper()
	r := d.Lvss(t, "", "create", "shadow", "--for", vol, "--json")
	if r.Code != 0 {
		t.Fatalf("create shadow: %d\n%s", r.Code, r.Stderr)
	}
	var res struct {
		Snapshots []struct {
			SnapshotID string `json:"snapshot_id"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || len(res.Snapshots) != 1 {
		t.Fatalf("create shadow output: %v\n%s", err, r.Stdout)
	}
	return res.Snapshots[0].SnapshotID
}

// changeAfterSnapshot writes what a revert must take away.
func changeAfterSnapshot(t *testing.T, vol string) {
	t.Helper()
	writeFile(t, filepath.Join(vol, "f"), "after")
	writeFile(t, filepath.Join(vol, "g"), "made after the snapshot")
}

// checkRevertedTo asserts vol holds the snapshot's content and that the
// revert left nothing beside it.
func checkRevertedTo(t *testing.T, mount, vol string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vol, "f"))
	if err != nil || string(b) != "before" {
		t.Fatalf("f after the revert: %q, %v (want the snapshot's \"before\")", b, err)
	}
	if _, err := os.Stat(filepath.Join(vol, "g")); !os.IsNotExist(err) {
		t.Fatalf("g, made after the snapshot, is still there (%v)", err)
	}
	entries, err := os.ReadDir(mount)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), "lvss-revert") {
			t.Fatalf("revert left %s behind", e.Name())
		}
	}
}

func TestRevertCLI(t *testing.T) {
	mount, vol := revertVolume(t)
	d := lvssdtest.StartDaemon(t, lvssdtest.DaemonOptions{Config: shortTimeouts})
	id := shadowOf(t, d, vol)
	changeAfterSnapshot(t, vol)

	// A running writer with a component on the volume: refused (D10).
	w := d.StartLogWriter(t, "app", "front-end", "--path", filepath.Join(vol, "app"))
	d.WaitWriters(t, 1)
	r := d.Lvss(t, "", "revert", id)
	if r.Code != 1 || !strings.Contains(r.Stderr, "VSS_E_VOLUME_IN_USE (0x8004231D)") || !strings.Contains(r.Stderr, `writer "app"`) ||
		!strings.Contains(r.Stderr, "hint: ") || !strings.Contains(r.Stderr, "--force") {
		t.Fatalf("revert under a running writer: exit %d\n%s", r.Code, r.Stderr)
	}
	r = d.Lvss(t, "", "--json", "revert", id)
	var e struct {
		Error struct{ Hresult, Name, Message, Hint string } `json:"error"`
	}
	if r.Code != 1 || r.Stdout != "" || json.Unmarshal([]byte(r.Stderr), &e) != nil || e.Error.Name != "VSS_E_VOLUME_IN_USE" || e.Error.Hint == "" {
		t.Fatalf("--json refusal: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(vol, "f")); string(b) != "after" {
		t.Fatalf("a refused revert changed the volume: %q", b)
	}

	// Forced: reverted, and the writer got no event for it.
	before := len(w.Events(t))
	r = d.Lvss(t, "", "--json", "revert", id, "--force")
	if r.Code != 0 {
		t.Fatalf("revert --force: exit %d\n%s", r.Code, r.Stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || res["snapshot_id"] != id || res["volume"] != vol ||
		res["forced"] != true || res["status"] != "VSS_S_ASYNC_FINISHED" {
		t.Fatalf("revert --json: %v\n%s", err, r.Stdout)
	}
	checkRevertedTo(t, mount, vol)
	if got := w.Events(t); len(got) != before {
		t.Fatalf("the writer got events on a revert: %v", got[before:])
	}

	// The snapshot stays, and lvss call sees the status.
	if r := d.Lvss(t, "", "list", "shadows", "--for", vol); r.Code != 0 || !strings.Contains(r.Stdout, id) {
		t.Fatalf("list shadows after the revert: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = d.Lvss(t, "InitializeForBackup\nSetContext VSS_CTX_ALL\nQueryRevertStatus "+vol+"\nRevertToSnapshot 00000000-0000-0000-0000-000000000001\n", "call", "--keep-going")
	if !strings.Contains(r.Stdout, "VSS_S_ASYNC_FINISHED") || !strings.Contains(r.Stdout+r.Stderr, "VSS_E_OBJECT_NOT_FOUND") {
		t.Fatalf("lvss call: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}

	// The top level of the filesystem cannot be swapped.
	top := shadowOf(t, d, mount)
	r = d.Lvss(t, "", "revert", top, "--force")
	if r.Code != 1 || !strings.Contains(r.Stderr, "VSS_E_VOLUME_NOT_SUPPORTED") || !strings.Contains(r.Stderr, "top level") ||
		!strings.Contains(r.Stderr, "provider-btrfs.md#revert") {
		t.Fatalf("revert of the top level: exit %d\n%s", r.Code, r.Stderr)
	}
	// An unknown snapshot.
	r = d.Lvss(t, "", "revert", "6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b")
	if r.Code != 1 || !strings.Contains(r.Stderr, "VSS_E_OBJECT_NOT_FOUND") {
		t.Fatalf("unknown snapshot: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := d.Lvss(t, "", "revert", "not-an-id"); r.Code != 2 {
		t.Fatalf("bad ID: exit %d\n%s", r.Code, r.Stderr)
	}
}

// TestRevertKilledAtEachStep kills lvssd (SIGKILL, from inside, through
// the test-only LVSSD_TEST_REVERT_KILL_AT_STEP) right after each durable
// step of a revert in turn, then starts it again on the same state: the
// volume is then reverted, whole, and nothing of the revert is left.
// Between the two, the volume is there with one content or the other.
func TestRevertKilledAtEachStep(t *testing.T) {
	for step := 1; ; step++ {
		finished := false
		t.Run(fmt.Sprintf("step-%d", step), func(t *testing.T) {
			mount, vol := revertVolume(t)
			state := filepath.Join(t.TempDir(), "state")
			d := lvssdtest.StartDaemon(t, lvssdtest.DaemonOptions{Config: shortTimeouts, StateDir: state})
			id := shadowOf(t, d, vol)
			d.Proc.Stop(t)
			changeAfterSnapshot(t, vol)

			t.Setenv("LVSSD_TEST_REVERT_KILL_AT_STEP", fmt.Sprint(step))
			d = lvssdtest.StartDaemon(t, lvssdtest.DaemonOptions{Config: shortTimeouts, StateDir: state})
			os.Unsetenv("LVSSD_TEST_REVERT_KILL_AT_STEP")
			r := d.Lvss(t, "", "revert", id)
			if r.Code == 0 {
				finished = true // every step was passed: the loop is done
				if !strings.Contains(d.Proc.Output(), "test fault injection: lvssd kills itself") {
					t.Fatal("the daemon did not get the fault injection")
				}
				checkRevertedTo(t, mount, vol)
				return
			}
			select {
			case <-d.Proc.Done():
			case <-time.After(30 * time.Second):
				t.Fatalf("lvss revert failed but lvssd was not killed: exit %d\n%s", r.Code, r.Stderr)
			}
			if !strings.Contains(d.Proc.Output(), "killing lvssd") {
				t.Fatalf("lvssd ended otherwise:\n%s", d.Proc.Output())
			}
			b, err := os.ReadFile(filepath.Join(vol, "f"))
			if err != nil || (string(b) != "before" && string(b) != "after") {
				t.Fatalf("while lvssd is down the volume is half reverted: f = %q, %v", b, err)
			}

			d = lvssdtest.StartDaemon(t, lvssdtest.DaemonOptions{Config: shortTimeouts, StateDir: state})
			checkRevertedTo(t, mount, vol)
			if !strings.Contains(d.Proc.Output(), "finished a revert an earlier lvssd left unfinished") {
				t.Fatalf("no recovery logged:\n%s", d.Proc.Output())
			}
			r = d.Lvss(t, "InitializeForBackup\nSetContext VSS_CTX_ALL\nQueryRevertStatus "+vol+"\n", "call")
			if r.Code != 0 || !strings.Contains(r.Stdout, "VSS_S_ASYNC_FINISHED") {
				t.Fatalf("status after recovery: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
			}
			// The snapshot survived and is still usable.
			if r := d.Lvss(t, "", "revert", id); r.Code != 0 {
				t.Fatalf("second revert: exit %d\n%s", r.Code, r.Stderr)
			}
			checkRevertedTo(t, mount, vol)
			d.Proc.Stop(t)
		})
		if finished || t.Failed() {
			return
		}
		if step > 10 {
			t.Fatal("the revert never finished without being killed")
		}
	}
}
