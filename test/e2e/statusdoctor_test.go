package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
)

// doctorReport runs the real lvss doctor --json against d and returns its
// exit status and report. Standard error must stay empty: the report is
// the result.
func doctorReport(t *testing.T, socket string) (int, map[string]any) {
	t.Helper()
	r := lvssdtest.Lvss(t, socket, "", "doctor", "--json")
	if r.Stderr != "" {
		t.Fatalf("doctor wrote to standard error: %s", r.Stderr)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, r.Stdout)
	}
	return r.Code, rep
}

// volumeOf is the report's entry for path.
func volumeOf(t *testing.T, rep map[string]any, path string) map[string]any {
	t.Helper()
	for _, v := range rep["volumes"].([]any) {
		if m := v.(map[string]any); m["path"] == path {
			return m
		}
	}
	t.Fatalf("doctor does not report %s", path)
	return nil
}

// verdict is a provider's word on a volume.
func verdict(t *testing.T, vol map[string]any, provider string) map[string]any {
	t.Helper()
	for _, p := range vol["providers"].([]any) {
		if m := p.(map[string]any); m["name"] == provider {
			return m
		}
	}
	t.Fatalf("no verdict of %s on %s: %v", provider, vol["path"], vol["providers"])
	return nil
}

// findingIn returns the first finding of check in a list, nil if none.
func findingIn(list any, check string) map[string]any {
	for _, f := range list.([]any) {
		if m := f.(map[string]any); m["check"] == check {
			return m
		}
	}
	return nil
}

// noErrors fails t if any finding in list is an error.
func noErrors(t *testing.T, where string, list any) {
	t.Helper()
	for _, f := range list.([]any) {
		if m := f.(map[string]any); m["severity"] == "error" {
			t.Errorf("%s: error %v", where, m)
		}
	}
}

// mountTmpfs mounts a small tmpfs on a new directory until the test ends.
func mountTmpfs(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	dir, err := os.MkdirTemp("", "lvss-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	// mode=0755: a tmpfs root is 1777 by default, and lvssd refuses a run
	// dir others may write (L51).
	if err := unix.Mount("lvss-test", dir, "tmpfs", 0, "size=8m,mode=0755"); err != nil {
		os.Remove(dir)
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH); os.Remove(dir) })
	return dir
}

// TestDoctorBtrfsExt4XFS is the acceptance check of lvss doctor on a host
// with a btrfs, an ext4 and an XFS volume: the btrfs is taken by the btrfs
// provider (with its nested subvolume named), the ext4 and the XFS are not
// btrfs's, with the reason, and can be frozen; the copy provider takes only
// the volume it is configured for. A run dir that is not on a tmpfs is a
// finding; on a tmpfs it is fine.
func TestDoctorBtrfsExt4XFS(t *testing.T) {
	btr := testenv.LoopFS(t, "btrfs", 256<<20)
	e4 := testenv.LoopFS(t, "ext4", 64<<20)
	xf := testenv.LoopFS(t, "xfs", 320<<20)
	if _, err := exec.LookPath("btrfs"); err != nil {
		testenv.Missing(t, "btrfs (apt-get install btrfs-progs)")
	}
	nested := filepath.Join(btr.Mount, "nested")
	if out, err := exec.Command("btrfs", "subvolume", "create", nested).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v\n%s", err, out)
	}
	cfg := fmt.Sprintf("[providers.copy]\nvolumes = [%q]\n", xf.Mount)
	// The run dir on the ext4: a filesystem that can be frozen.
	d := startDaemonWith(t, lvssdtest.DaemonOptions{Config: cfg, RunDir: filepath.Join(e4.Mount, "run")})

	code, rep := doctorReport(t, d.socket)
	// Other tests' filesystems may be mounted meanwhile, with problems of
	// their own (little free space): lvss doctor's status is judged on
	// ours only.
	if code != 0 && code != 1 {
		t.Fatalf("doctor: exit %d", code)
	}
	noErrors(t, "lvssd-wide findings", rep["findings"])

	b := volumeOf(t, rep, btr.Mount)
	if b["provider"] != "btrfs" || b["type"] != "btrfs" || b["freeze"] != "supported" || b["mounted"] != true ||
		b["snapshot_dir"] != filepath.Join(btr.Mount, ".lvss-snapshots") || b["total_bytes"].(float64) == 0 {
		t.Errorf("btrfs: %v", b)
	}
	if v := verdict(t, b, "copy"); v["supported"] != false || !strings.Contains(v["reason"].(string), "not listed in providers.copy.volumes") {
		t.Errorf("copy on btrfs: %v", v)
	}
	if f := findingIn(b["findings"], "btrfs.nested_subvolumes"); f == nil || f["severity"] != "warning" ||
		!strings.Contains(f["message"].(string), nested) || f["fix"] == "" {
		t.Errorf("nested subvolume: %v", b["findings"])
	}
	noErrors(t, btr.Mount, b["findings"])

	for _, fs := range []*testenv.FS{e4, xf} {
		v := volumeOf(t, rep, fs.Mount)
		if v["type"] != fs.Type || v["freeze"] != "supported" || !strings.Contains(v["freeze_reason"].(string), "FIFREEZE") {
			t.Errorf("%s: %v", fs.Type, v)
		}
		if bv := verdict(t, v, "btrfs"); bv["supported"] != false || bv["reason"] != "not a directory on btrfs" {
			t.Errorf("btrfs on %s: %v", fs.Type, bv)
		}
		noErrors(t, fs.Mount, v["findings"])
	}
	if v := volumeOf(t, rep, e4.Mount); v["provider"] != "" || verdict(t, v, "copy")["supported"] != false ||
		findingIn(v["findings"], "volume.provider")["severity"] != "info" {
		t.Errorf("ext4 is taken without being configured: %v", v)
	}
	if v := volumeOf(t, rep, xf.Mount); v["provider"] != "copy" || v["configured"] != true || v["snapshot_dir"] != filepath.Join(d.dir, "state", "copies") {
		t.Errorf("xfs, configured for copy: %v", v)
	}
	if f := findingIn(rep["findings"], "run_dir.tmpfs"); f == nil || f["severity"] != "warning" || f["subject"] != filepath.Join(e4.Mount, "run") {
		t.Errorf("a run dir on ext4: %v", f)
	}

	text := lvssdtest.Lvss(t, d.socket, "", "doctor")
	for _, want := range []string{
		"\n  " + btr.Mount + " (btrfs, " + btr.Device + ")\n    provider   btrfs: a directory on btrfs, in subvolume 5\n",
		"\n  " + e4.Mount + " (ext4, " + e4.Device + ")\n    provider   none\n               btrfs would not take it: not a directory on btrfs\n",
		"\n    freeze     supported: the xfs driver implements FIFREEZE\n",
		"\n  warning  run dir " + filepath.Join(e4.Mount, "run") + " is on " + e4.Mount + " (ext4), not a tmpfs",
	} {
		if !strings.Contains(text.Stdout, want) {
			t.Errorf("text lacks %q:\n%s", want, text.Stdout)
		}
	}
	t.Logf("lvss doctor:\n%s", text.Stdout)

	// The same host with the run dir on a tmpfs.
	d2 := startDaemonWith(t, lvssdtest.DaemonOptions{Config: cfg, RunDir: mountTmpfs(t)})
	_, rep2 := doctorReport(t, d2.socket)
	if f := findingIn(rep2["findings"], "run_dir.tmpfs"); f == nil || f["severity"] != "ok" {
		t.Errorf("a run dir on a tmpfs: %v", f)
	}
}

// TestDoctorErrors: an exec provider for a filesystem that holds the run
// dir (the guard refuses to freeze it) and for one the kernel cannot freeze
// (tmpfs) are errors, the state dir on a frozen filesystem a warning, and
// lvss doctor exits 1.
func TestDoctorErrors(t *testing.T) {
	e4 := testenv.LoopFS(t, "ext4", 64<<20)
	tmp := mountTmpfs(t)
	cfg := fmt.Sprintf(`
[[providers.exec]]
name = "outside"
volumes = [%q, %q]
commit = "echo handle"
delete = "true"
`, e4.Mount, tmp)
	d := startDaemonWith(t, lvssdtest.DaemonOptions{Config: cfg, RunDir: filepath.Join(e4.Mount, "run"), StateDir: filepath.Join(e4.Mount, "state")})
	code, rep := doctorReport(t, d.socket)
	if code != 1 || rep["ok"] != false {
		t.Fatalf("doctor: exit %d, ok %v", code, rep["ok"])
	}
	v := volumeOf(t, rep, e4.Mount)
	if v["provider"] != "outside" || findingIn(v["findings"], "volume.run_dir")["severity"] != "error" ||
		findingIn(v["findings"], "volume.freeze")["severity"] != "ok" {
		t.Errorf("ext4 holding the run dir: %v", v)
	}
	tv := volumeOf(t, rep, tmp)
	if tv["provider"] != "outside" || tv["freeze"] != "unsupported" || tv["configured"] != true ||
		findingIn(tv["findings"], "volume.freeze")["severity"] != "error" {
		t.Errorf("tmpfs: %v", tv)
	}
	if f := findingIn(rep["findings"], "state_dir.frozen"); f == nil || f["severity"] != "warning" || !strings.Contains(f["message"].(string), "outside") {
		t.Errorf("state dir on a frozen filesystem: %v", f)
	}
	if s := rep["summary"].(map[string]any); s["error"].(float64) < 2 {
		t.Errorf("summary: %v", s)
	}
}

// statusReport runs the real lvss status --json.
func statusReport(t *testing.T, socket string) map[string]any {
	t.Helper()
	r := lvssdtest.Lvss(t, socket, "", "status", "--json")
	if r.Code != 0 {
		t.Fatalf("status: exit %d: %s", r.Code, r.Stderr)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.Stdout)
	}
	return st
}

// TestStatusWhileFrozen: during a backup whose provider commits inside a
// filesystem freeze, lvss status answers while the filesystem is frozen and
// shows the session, the creation lock's holder and the frozen filesystem;
// after the thaw, none of them. The exec provider's commit waits for a
// file to appear (bounded by the hold window), which holds the freeze for
// as long as the test needs.
func TestStatusWhileFrozen(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", 64<<20)
	marker := filepath.Join(t.TempDir(), "go")
	commit := fmt.Sprintf(`while [ ! -e %q ]; do sleep 0.05; done; echo handle-$LVSS_SNAPSHOT_ID_1`, marker)
	// The hold window bounds how long the test may keep it frozen.
	d := startDaemon(t, strings.Replace(execConfig("60s", fs.Mount, commit), `freeze = "20s"`, `freeze = "120s"`, 1))
	d.startWriter(t, "w", "front-end")
	d.waitWriters(t, 1)
	done := make(chan error, 1)
	go func() {
		_, err := snapshotSet(t, d.socket, fs.Mount, vss.CtxNASRollback)
		done <- err
	}()
	t.Cleanup(func() { os.WriteFile(marker, nil, 0o644) }) // never leave the commit waiting

	var st map[string]any
	eventually(t, 30*time.Second, "lvss status to show the frozen filesystem", func() bool {
		st = statusReport(t, d.socket)
		return len(st["frozen"].([]any)) == 1
	})
	// The guard's record, which status reads, is written just before its
	// syncfs and FIFREEZE: on a busy machine status can name the
	// filesystem a moment before the kernel has frozen it. It must then
	// freeze, and stay frozen while the commit waits.
	eventually(t, 30*time.Second, "the filesystem status names to be frozen", func() bool {
		return !fs.Writable(200 * time.Millisecond)
	})
	fz := st["frozen"].([]any)[0].(map[string]any)
	if fz["mount_point"] != fs.Mount || fz["type"] != "ext4" || fz["guard_running"] != true || !slices.Contains(toStrings(fz["paths"]), fs.Mount) ||
		fz["frozen_ms"].(float64) < 0 || fz["guard_pid"].(float64) <= 0 {
		t.Errorf("frozen: %v", fz)
	}
	ss := st["sessions"].([]any)
	if len(ss) != 1 {
		t.Fatalf("sessions: %v", ss)
	}
	s := ss[0].(map[string]any)
	lock, _ := st["creation_lock"].(map[string]any)
	if s["operation"] != "DoSnapshotSet" || s["context"] != "VSS_CTX_NAS_ROLLBACK" || s["volumes"] != 1.0 || s["command"] == "" ||
		lock == nil || lock["session_id"] != s["session_id"] || lock["snapshot_set_id"] != s["snapshot_set_id"] || lock["lease_remaining_ms"].(float64) <= 0 {
		t.Errorf("session %v, lock %v", s, lock)
	}
	if w := st["writers"].(map[string]any); w["subscribed"] != 1.0 {
		t.Errorf("writers: %v", w)
	}
	text := lvssdtest.Lvss(t, d.socket, "", "status")
	if text.Code != 0 || !strings.Contains(text.Stdout, "Frozen filesystems: 1\n   "+fs.Mount+" (ext4, ") ||
		!strings.Contains(text.Stdout, "DoSnapshotSet running; state set, VSS_CTX_NAS_ROLLBACK") {
		t.Errorf("status text:\n%s", text.Stdout)
	}
	t.Logf("lvss status while frozen:\n%s", text.Stdout)

	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the backup: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the backup did not end after its commit was let go")
	}
	eventually(t, 15*time.Second, "the session to be gone from lvss status", func() bool {
		st = statusReport(t, d.socket)
		return len(st["sessions"].([]any)) == 0
	})
	if st["creation_lock"] != nil || len(st["frozen"].([]any)) != 0 {
		t.Errorf("after the backup: lock %v, frozen %v", st["creation_lock"], st["frozen"])
	}
	vols := st["volumes"].([]any)
	if len(vols) != 1 || vols[0].(map[string]any)["volume"] != fs.Mount || vols[0].(map[string]any)["provider"] != "outside" {
		t.Errorf("volumes: %v", vols)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
