package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// restoreSummary is the part of `lvss restore --json` the tests read.
type restoreSummary struct {
	DryRun     bool   `json:"dry_run"`
	Target     string `json:"target"`
	Root       string `json:"root"`
	Options    string `json:"restore_options"`
	Components []struct {
		Component         string   `json:"component"`
		Paths             []string `json:"paths"`
		Targets           []string `json:"targets"`
		RestoreTarget     *string  `json:"restore_target"`
		FileRestoreStatus *string  `json:"file_restore_status"`
	} `json:"components"`
	Writers []struct {
		Name   string   `json:"name"`
		Events []string `json:"events"`
		State  string   `json:"state"`
	} `json:"writers"`
	FileRestoreStatus *string `json:"file_restore_status"`
	Command           *struct {
		ExitStatus int `json:"exit_status"`
	} `json:"command"`
	Warnings []string `json:"warnings"`
}

// restoreLog is the PreRestore and PostRestore lines of a logwriter's log,
// without their time.
func restoreLog(t *testing.T, w *writerProc) []string {
	t.Helper()
	b, err := os.ReadFile(w.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && (f[1] == "PreRestore" || f[1] == "PostRestore") {
			out = append(out, strings.Join(f[1:], " "))
		}
	}
	return out
}

// count is how many times w logged event.
func eventCount(t *testing.T, w *writerProc, event string) int {
	t.Helper()
	n := 0
	for _, e := range w.events(t) {
		if e == event {
			n++
		}
	}
	return n
}

const nilSet = "00000000-0000-0000-0000-000000000000"

// restoreRig is a btrfs volume with the directories of two logwriters,
// app and other, taking part in restores, and a full backup of both made
// by lvss backup --bcd with tar: the archive, the tar file.
type restoreCmdRig struct {
	d            *daemon
	app, other   *writerProc
	appDir       string
	otherDir     string
	bcd, tarball string
}

func newRestoreCmdRig(t *testing.T) *restoreCmdRig {
	t.Helper()
	return newRestoreCmdRigWith(t, func(r *restoreCmdRig) []string {
		return []string{"tar", "-cf", r.tarball, r.appDir, r.otherDir}
	})
}

// newRestoreCmdRigWith is the rig with the backup COMMAND backup returns.
func newRestoreCmdRigWith(t *testing.T, backup func(r *restoreCmdRig) []string) *restoreCmdRig {
	t.Helper()
	testenv.RequireRoot(t)
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	r := &restoreCmdRig{d: startDaemon(t, shortTimeouts), appDir: filepath.Join(fs.Mount, "app"), otherDir: filepath.Join(fs.Mount, "other")}
	for _, dir := range []string{r.appDir, r.otherDir} {
		if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "sub", "file.txt"), []byte("backed up in "+dir+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.app = r.d.startWriter(t, "app", "front-end", "--path", r.appDir, "--restore", "always")
	r.other = r.d.startWriter(t, "other", "front-end", "--path", r.otherDir, "--restore", "always")
	r.d.waitWriters(t, 2)
	out := t.TempDir()
	r.bcd, r.tarball = filepath.Join(out, "srv.lvss"), filepath.Join(out, "srv.tar")
	args := append([]string{"backup", "--writer", "app", "--writer", "other", "--type", "full", "--in-place", "--bcd", r.bcd, "--"}, backup(r)...)
	res := lvssdtest.Lvss(t, r.d.socket, "", args...)
	if res.Code != 0 {
		t.Fatalf("lvss backup: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	return r
}

// destroy removes the writers' data, as a disaster would.
func (r *restoreCmdRig) destroy(t *testing.T) {
	t.Helper()
	for _, dir := range []string{r.appDir, r.otherDir} {
		if err := os.RemoveAll(filepath.Join(dir, "sub")); err != nil {
			t.Fatal(err)
		}
	}
}

// restore runs lvss restore --json with args and parses its summary (when
// it printed one).
func (r *restoreCmdRig) restore(t *testing.T, args ...string) (lvssdtest.Result, restoreSummary) {
	t.Helper()
	res := lvssdtest.Lvss(t, r.d.socket, "", append([]string{"--json", "restore", "--bcd", r.bcd}, args...)...)
	var sum restoreSummary
	if res.Stdout != "" {
		if err := json.Unmarshal([]byte(res.Stdout), &sum); err != nil {
			t.Fatalf("summary: %v\n%s", err, res.Stdout)
		}
	}
	return res, sum
}

// waitShutdown waits until w logged its n-th BackupShutdown: the end of
// the restore session it took part in.
func waitShutdown(t *testing.T, w *writerProc, n int) {
	t.Helper()
	eventually(t, liveness, w.name+" to get BackupShutdown", func() bool { return eventCount(t, w, "BackupShutdown") >= n })
}

func content(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}

// TestRestoreCommandRoundTrip: back up two writers' data with lvss backup
// --bcd and tar, destroy it, and put it back with lvss restore -- tar -x:
// the writers get PreRestore and PostRestore with their component
// selected, the restore options and VSS_RS_ALL, and the files are back.
// --dry-run before it tells them nothing. Then the same to an alternate
// place, a COMMAND that fails (VSS_RS_FAILED, lvss exits with its status)
// and one that says it wrote nothing (VSS_RS_NONE).
func TestRestoreCommandRoundTrip(t *testing.T) {
	r := newRestoreCmdRig(t)
	shutdowns := eventCount(t, r.app, "BackupShutdown")
	r.destroy(t)

	// --dry-run: the selection, and who would be told; nothing is sent
	// but Identify.
	res, sum := r.restore(t, "--dry-run")
	if res.Code != 0 || !sum.DryRun || len(sum.Components) != 2 || len(sum.Writers) != 2 {
		t.Fatalf("--dry-run: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, w := range sum.Writers {
		if !slices.Equal(w.Events, []string{"PreRestore", "PostRestore"}) || w.State != "" {
			t.Errorf("--dry-run: writer %+v", w)
		}
	}
	if got := []string{sum.Components[0].Component, sum.Components[1].Component}; !slices.Equal(got, []string{"app:data", "other:data"}) ||
		!slices.Equal(sum.Components[0].Paths, []string{r.appDir}) || sum.Components[0].FileRestoreStatus != nil {
		t.Errorf("--dry-run components: %+v", sum.Components)
	}
	text := lvssdtest.Lvss(t, r.d.socket, "", "restore", "--bcd", r.bcd, "--dry-run")
	if text.Code != 0 || !strings.Contains(text.Stdout, "'app' (VSS_WRE_ALWAYS): would be told PreRestore, PostRestore") {
		t.Errorf("--dry-run text: exit %d\n%s\n%s", text.Code, text.Stdout, text.Stderr)
	}
	if l := append(restoreLog(t, r.app), restoreLog(t, r.other)...); len(l) != 0 {
		t.Fatalf("--dry-run sent restore events: %v", l)
	}

	// The restore, with a recovery target passed as restore options.
	envFile := filepath.Join(r.d.dir, "restore.env")
	script := `set -e
env | grep '^LVSS_' | sort > ` + envFile + `
tar -xf ` + r.tarball + ` -C "$LVSS_RESTORE_ROOT"`
	res, sum = r.restore(t, "--recovery-target", "time:2026-12-06 13:56:59+00", "--", "sh", "-c", script)
	if res.Code != 0 || sum.FileRestoreStatus == nil || *sum.FileRestoreStatus != "VSS_RS_ALL" || sum.Command == nil || sum.Command.ExitStatus != 0 {
		t.Fatalf("lvss restore: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, w := range sum.Writers {
		if w.State != "VSS_WS_STABLE" {
			t.Errorf("writer after the restore: %+v", w)
		}
	}
	for _, dir := range []string{r.appDir, r.otherDir} {
		if got := content(t, filepath.Join(dir, "sub", "file.txt")); got != "backed up in "+dir+"\n" {
			t.Errorf("%s/sub/file.txt after the restore: %q", dir, got)
		}
	}
	env := content(t, envFile)
	for _, want := range []string{"LVSS_RESTORE_ROOT=/", "LVSS_RESTORE_TARGET=original", "LVSS_COMPONENT_COUNT=2", "LVSS_COMPONENT_1=app:data",
		"LVSS_COMPONENT_1_RESTORE_TARGET=VSS_RT_ORIGINAL", "LVSS_RESTORE_PATH_COUNT=2", "LVSS_RESTORE_PATH_1=" + r.appDir,
		"LVSS_RESTORE_OPTIONS=recovery_target_time=2026-12-06 13:56:59+00", "LVSS_BACKUP_TYPE=full", "LVSS_RESTORE_NOTHING_WRITTEN=99"} {
		if !slices.Contains(strings.Split(env, "\n"), want) {
			t.Errorf("COMMAND's environment lacks %q:\n%s", want, env)
		}
	}
	opts := "options=recovery_target_time=2026-12-06+13:56:59+00"
	wantLog := func(w *writerProc, status string, extra ...string) []string {
		pre := strings.Join(append([]string{"PreRestore", nilSet, "type=VSS_RTYPE_BY_COPY", "data:selected:VSS_RT_ORIGINAL:VSS_RS_UNDEFINED"}, extra...), " ")
		post := strings.Join(append(append([]string{"PostRestore", nilSet, "type=VSS_RTYPE_BY_COPY", "data:selected:VSS_RT_ORIGINAL:" + status}, extra...),
			"metadata="+w.name+"-restore"), " ")
		return []string{pre, post}
	}
	for _, w := range []*writerProc{r.app, r.other} {
		if got, want := restoreLog(t, w), wantLog(w, "VSS_RS_ALL", opts); !slices.Equal(got, want) {
			t.Errorf("writer %s logged\n%s\nwant\n%s", w.name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	waitShutdown(t, r.app, shutdowns+1)

	// COMMAND fails: the writers hear VSS_RS_FAILED, lvss exits with its
	// status. One component only: the other writer hears nothing.
	otherLines := len(restoreLog(t, r.other))
	res, sum = r.restore(t, "--component", "app", "--", "sh", "-c", "exit 7")
	if res.Code != 7 || sum.FileRestoreStatus == nil || *sum.FileRestoreStatus != "VSS_RS_FAILED" || len(sum.Components) != 1 {
		t.Fatalf("failing COMMAND: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	if got := restoreLog(t, r.app); !slices.Equal(got[len(got)-2:], wantLog(r.app, "VSS_RS_FAILED")) {
		t.Errorf("after a failing COMMAND app logged\n%s", strings.Join(got, "\n"))
	}
	if len(restoreLog(t, r.other)) != otherLines {
		t.Errorf("a writer whose component was not selected got restore events: %v", restoreLog(t, r.other))
	}

	// COMMAND says it wrote nothing: VSS_RS_NONE; lvss exits with that
	// status too.
	res, sum = r.restore(t, "--component", "app:data", "--", "sh", "-c", `exit "$LVSS_RESTORE_NOTHING_WRITTEN"`)
	if res.Code != 99 || sum.FileRestoreStatus == nil || *sum.FileRestoreStatus != "VSS_RS_NONE" {
		t.Fatalf("nothing written: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	if got := restoreLog(t, r.app); !slices.Equal(got[len(got)-2:], wantLog(r.app, "VSS_RS_NONE")) {
		t.Errorf("after nothing written app logged\n%s", strings.Join(got, "\n"))
	}

	// To an alternate place: the writer is told of the new target, and
	// the files go under DIR with their original paths.
	alt := t.TempDir()
	res, sum = r.restore(t, "--component", "app", "--target", "alternate:"+alt, "--",
		"sh", "-c", `tar -xf `+r.tarball+` -C "$LVSS_RESTORE_ROOT" "${LVSS_RESTORE_PATH_1#/}"`)
	if res.Code != 0 || sum.Target != "alternate" || sum.Root != alt || !slices.Equal(sum.Components[0].Targets, []string{filepath.Join(alt, r.appDir)}) {
		t.Fatalf("--target alternate: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	if got := content(t, filepath.Join(alt, r.appDir, "sub", "file.txt")); got != "backed up in "+r.appDir+"\n" {
		t.Errorf("the alternate copy: %q", got)
	}
	if _, err := os.Stat(filepath.Join(alt, r.otherDir)); err == nil {
		t.Error("--component app restored other's files too")
	}
	nt := "newtarget=" + r.appDir + "->" + filepath.Join(alt, r.appDir)
	if got := restoreLog(t, r.app); !slices.Equal(got[len(got)-2:], wantLog(r.app, "VSS_RS_ALL", nt)) {
		t.Errorf("after an alternate restore app logged\n%s", strings.Join(got, "\n"))
	}
}

// TestRestoreCommandWriters: a component whose writer is not running is
// VSS_E_OBJECT_NOT_FOUND before any writer is told anything; a writer that
// fails PreRestore stops the restore before COMMAND (exit 3) and every
// writer hears VSS_RS_NONE; SIGINT during COMMAND ends it and the writers
// hear VSS_RS_FAILED (exit 130).
func TestRestoreCommandWriters(t *testing.T) {
	r := newRestoreCmdRig(t)
	r.other.proc.Stop(t)
	r.d.waitWriters(t, 1)
	marker := filepath.Join(r.d.dir, "command-ran")
	res, _ := r.restore(t, "--", "touch", marker)
	if res.Code != 1 || !strings.Contains(res.Stderr, `"name":"VSS_E_OBJECT_NOT_FOUND"`) || !strings.Contains(res.Stderr, "start the writer 'other'") {
		t.Fatalf("writer not running: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	if _, err := os.Stat(marker); err == nil || len(restoreLog(t, r.app)) != 0 {
		t.Fatalf("with a writer not running, COMMAND ran or app got restore events: %v", restoreLog(t, r.app))
	}
	// Leaving its components out, the restore goes ahead.
	res, _ = r.restore(t, "--component", "app", "--", "true")
	if res.Code != 0 || len(restoreLog(t, r.app)) != 2 {
		t.Fatalf("--component app: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}

	// other comes back, refusing PreRestore.
	r.other = r.d.startWriter(t, "other", "front-end", "--path", r.otherDir, "--restore", "always", "--fail-at", "PreRestore")
	r.d.waitWriters(t, 2)
	before := len(restoreLog(t, r.app))
	res, sum := r.restore(t, "--", "touch", marker)
	if res.Code != 3 || !strings.Contains(res.Stderr, "writer 'other' failed: VSS_WS_FAILED_AT_PRE_RESTORE") ||
		sum.FileRestoreStatus == nil || *sum.FileRestoreStatus != "VSS_RS_NONE" || sum.Command != nil {
		t.Fatalf("a writer vetoing PreRestore: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("COMMAND ran although a writer failed PreRestore")
	}
	if got := restoreLog(t, r.app)[before:]; len(got) != 2 || !strings.Contains(got[1], "data:selected:VSS_RT_ORIGINAL:VSS_RS_NONE") {
		t.Errorf("after the veto app logged %v, want PreRestore and PostRestore with VSS_RS_NONE", got)
	}
	// --allow-writer-failures runs COMMAND anyway.
	res, _ = r.restore(t, "--allow-writer-failures", "--", "touch", marker)
	if res.Code != 0 {
		t.Fatalf("--allow-writer-failures: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("--allow-writer-failures: COMMAND did not run")
	}

	// SIGINT during COMMAND.
	started, ended := filepath.Join(r.d.dir, "started"), filepath.Join(r.d.dir, "ended")
	script := "trap 'touch " + ended + "; exit 143' TERM; touch " + started + "; while :; do sleep 0.1; done"
	cmd := exec.Command(lvssdtest.Bin(t, "lvss"), "--socket", r.d.socket, "restore", "--bcd", r.bcd, "--component", "app", "--", "sh", "-c", script)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	before = len(restoreLog(t, r.app))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	eventually(t, liveness, "COMMAND to start", func() bool {
		select {
		case <-exited:
			t.Fatalf("lvss restore ended early: exit %d\n%s\n%s", cmd.ProcessState.ExitCode(), out.String(), errb.String())
		default:
		}
		_, err := os.Stat(started)
		return err == nil
	})
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-exited
	if code := cmd.ProcessState.ExitCode(); code != 130 || !strings.Contains(errb.String(), "writers were told the restore failed (VSS_RS_FAILED") {
		t.Fatalf("interrupted during COMMAND: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	if _, err := os.Stat(ended); err != nil {
		t.Fatal("COMMAND was not told to end")
	}
	if got := restoreLog(t, r.app)[before:]; len(got) != 2 || !strings.Contains(got[1], "data:selected:VSS_RT_ORIGINAL:VSS_RS_FAILED") {
		t.Errorf("after an interrupt app logged %v, want PreRestore and PostRestore with VSS_RS_FAILED", got)
	}
}

// TestRestoreCommandRestic: docs/restore.md's restic example. A backup
// with restic recording the original paths, the data destroyed, and lvss
// restore -- restic restore latest --target "$LVSS_RESTORE_ROOT": the
// files are back and the writers were told VSS_RS_ALL; then the same to
// an alternate place.
func TestRestoreCommandRestic(t *testing.T) {
	needTool(t, "restic", "restic")
	repo := t.TempDir()
	password := filepath.Join(repo, "password")
	if err := os.WriteFile(password, []byte("restore\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RESTIC_REPOSITORY", filepath.Join(repo, "restic"))
	t.Setenv("RESTIC_PASSWORD_FILE", password)
	t.Setenv("RESTIC_CACHE_DIR", t.TempDir())
	toolOutput(t, "restic", "init")
	r := newRestoreCmdRigWith(t, func(r *restoreCmdRig) []string {
		return []string{"restic", "backup", r.appDir, r.otherDir}
	})
	r.destroy(t)
	res, sum := r.restore(t, "--", "sh", "-c", `restic restore latest --target "$LVSS_RESTORE_ROOT"`)
	if res.Code != 0 || sum.FileRestoreStatus == nil || *sum.FileRestoreStatus != "VSS_RS_ALL" {
		t.Fatalf("lvss restore with restic: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, dir := range []string{r.appDir, r.otherDir} {
		if got := content(t, filepath.Join(dir, "sub", "file.txt")); got != "backed up in "+dir+"\n" {
			t.Errorf("%s/sub/file.txt after the restore: %q", dir, got)
		}
	}
	for _, w := range []*writerProc{r.app, r.other} {
		if got := restoreLog(t, w); len(got) != 2 || !strings.Contains(got[1], "data:selected:VSS_RT_ORIGINAL:VSS_RS_ALL") {
			t.Errorf("writer %s logged %v", w.name, got)
		}
	}
	// One component under another directory: restic's --include takes
	// the path as backed up.
	alt := t.TempDir()
	res, _ = r.restore(t, "--component", "other", "--target", "alternate:"+alt, "--",
		"sh", "-c", `restic restore latest --target "$LVSS_RESTORE_ROOT" --include "$LVSS_RESTORE_PATH_1"`)
	if res.Code != 0 {
		t.Fatalf("lvss restore --target alternate with restic: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	if got := content(t, filepath.Join(alt, r.otherDir, "sub", "file.txt")); got != "backed up in "+r.otherDir+"\n" {
		t.Errorf("the alternate copy: %q", got)
	}
	if _, err := os.Stat(filepath.Join(alt, r.appDir)); err == nil {
		t.Error("--component other restored app's files too")
	}
}

// TestRestoreCommandProgress: on a terminal, lvss restore says which phase
// it is in and, while one is slow, where each writer is.
func TestRestoreCommandProgress(t *testing.T) {
	r := newRestoreCmdRig(t)
	r.app.proc.Stop(t)
	r.d.waitWriters(t, 1)
	// PreRestore takes 5 s: longer than the 3 s after which lvss reports.
	r.app = r.d.startWriter(t, "app", "front-end", "--path", r.appDir, "--restore", "always", "--sleep-at", "PreRestore=5s")
	r.d.waitWriters(t, 2)

	got := onTerminal(t, r.d.socket, "restore", "--bcd", r.bcd, "--component", "app", "--", "true")
	for _, want := range []string{"preparing the writers (PreRestore)", "PreRestore has taken", "'app' ", "running true", "completing the restore (PostRestore)"} {
		if !strings.Contains(got, want) {
			t.Fatalf("the terminal did not show %q:\n%s", want, got)
		}
	}
}
