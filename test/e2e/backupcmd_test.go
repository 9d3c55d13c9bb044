package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// dirWriter has one component, a directory, and excludes the *.tmp files
// under it (the WMD's EXCLUDE_FILES), and whatever more says.
type dirWriter struct {
	quietWriter
	dir  string
	more []document.FileSpec
}

func (w dirWriter) Identify(_ context.Context, md *writer.Metadata) error {
	if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, Name: "data", Selectable: true}); err != nil {
		return err
	}
	if err := md.AddFiles("", "data", w.dir, "*", true, "", vss.DefaultFileBackupTypeMask); err != nil {
		return err
	}
	for _, x := range append([]document.FileSpec{{Path: w.dir, Filespec: "*.tmp", Recursive: true}}, w.more...) {
		if err := md.AddExcludeFiles(x.Path, x.Filespec, x.Recursive); err != nil {
			return err
		}
	}
	return nil
}

type backupSummary struct {
	SnapshotSetID string `json:"snapshot_set_id"`
	Created       bool   `json:"created"`
	Snapshots     []struct {
		OriginalVolume string `json:"original_volume"`
		SnapshotPath   string `json:"snapshot_path"`
		Consistency    string `json:"consistency"`
	} `json:"snapshots"`
	Writers []struct {
		Name    string `json:"name"`
		State   string `json:"state"`
		Failure string `json:"failure"`
	} `json:"writers"`
	Command struct {
		ExitStatus int `json:"exit_status"`
	} `json:"command"`
	DeletedSnapshots []string `json:"deleted_snapshots"`
	WritersFrozenMS  *float64 `json:"writers_frozen_ms"`
}

// TestBackupCommandWithTar: lvss backup finds a writer's volume by itself,
// freezes it around the snapshot, runs tar on the snapshot with the
// writer's exclusions, tells the writer the backup succeeded and deletes
// the snapshot at the end. COMMAND's own failure is lvss's exit status.
func TestBackupCommandWithTar(t *testing.T) {
	testenv.RequireRoot(t)
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	data := filepath.Join(fs.Mount, "data")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(data, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(data, "keep.txt"), []byte("before the snapshot\n"), 0o644))
	must(os.WriteFile(filepath.Join(data, "sub", "scratch.tmp"), []byte("excluded\n"), 0o644))
	d := startDaemon(t, shortTimeouts)
	id := writer.Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceOID, []byte("dirwriter")), Name: "dirwriter"}
	lvssdtest.RunWriter(t, d.socket, id, dirWriter{dir: data})

	archive := filepath.Join(t.TempDir(), "data.tar")
	script := `set -e
echo "$LVSS_SNAPSHOT_COUNT $LVSS_SNAPSHOT_1_ORIGINAL" > ` + filepath.Join(d.dir, "env") + `
cp "$LVSS_EXCLUDE_FILE" ` + filepath.Join(d.dir, "exclude") + `
# the live volume changes after the snapshot: the archive must not see it
echo after > ` + filepath.Join(data, "keep.txt") + `
tar --exclude-from "$LVSS_EXCLUDE_FILE" -cf ` + archive + ` "$LVSS_SNAPSHOT_1_PATH"
tar -tf ` + archive + ` | sed "s|^${LVSS_SNAPSHOT_1_PATH#/}|.|" > ` + filepath.Join(d.dir, "names")
	bcd := filepath.Join(t.TempDir(), "backup.lvss.tar")
	r := lvssdtest.Lvss(t, d.socket, "", "backup", "--writer", "dirwriter", "--exclude-file-format", "tar", "--bcd", bcd, "--json", "--", "sh", "-c", script)
	if r.Code != 0 {
		t.Fatalf("lvss backup: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	var sum backupSummary
	if err := json.Unmarshal([]byte(r.Stdout), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, r.Stdout)
	}
	if !sum.Created || len(sum.Snapshots) != 1 || sum.Snapshots[0].OriginalVolume != data || sum.Snapshots[0].Consistency != "application" {
		t.Fatalf("summary: %+v", sum)
	}
	if len(sum.Writers) != 1 || sum.Writers[0].State != "VSS_WS_STABLE" || sum.Command.ExitStatus != 0 || len(sum.DeletedSnapshots) != 1 {
		t.Fatalf("summary: %+v", sum)
	}
	if sum.WritersFrozenMS == nil || *sum.WritersFrozenMS <= 0 {
		t.Fatalf("the summary does not say how long the writer was frozen: %s", r.Stdout)
	}
	// The archive records the end of the backup: the command's status
	// and the writer's component marked as backed up.
	show := lvssdtest.Lvss(t, d.socket, "", "backup", "show", bcd, "--json")
	var shown struct {
		Manifest struct {
			Stage           string   `json:"stage"`
			SnapshotSetID   string   `json:"snapshot_set_id"`
			ExitStatus      *int     `json:"exit_status"`
			WritersFrozenMS *float64 `json:"writers_frozen_ms"`
			Writers         []struct {
				Name string `json:"name"`
			} `json:"writers"`
		} `json:"manifest"`
		Components []map[string]any `json:"components"`
	}
	if show.Code != 0 || json.Unmarshal([]byte(show.Stdout), &shown) != nil {
		t.Fatalf("lvss backup show: exit %d\n%s\n%s", show.Code, show.Stdout, show.Stderr)
	}
	if m := shown.Manifest; m.Stage != "backup_complete" || m.SnapshotSetID != sum.SnapshotSetID || m.ExitStatus == nil ||
		*m.ExitStatus != 0 || len(m.Writers) != 1 || m.Writers[0].Name != "dirwriter" ||
		m.WritersFrozenMS == nil || *m.WritersFrozenMS != *sum.WritersFrozenMS {
		t.Fatalf("archive manifest: %+v", m)
	}
	if len(shown.Components) != 1 || shown.Components[0]["backup_succeeded"] != true {
		t.Fatalf("archive components: %v", shown.Components)
	}
	env, _ := os.ReadFile(filepath.Join(d.dir, "env"))
	if strings.TrimSpace(string(env)) != "1 "+data {
		t.Fatalf("COMMAND's environment: %q", env)
	}
	ex, _ := os.ReadFile(filepath.Join(d.dir, "exclude"))
	if !strings.Contains(string(ex), "*.tmp") {
		t.Fatalf("exclude file: %q", ex)
	}
	names, err := os.ReadFile(filepath.Join(d.dir, "names"))
	must(err)
	if strings.Contains(string(names), "scratch.tmp") || !strings.Contains(string(names), "./keep.txt") {
		t.Fatalf("archive holds:\n%s", names)
	}
	var keep string
	list, err := exec.Command("tar", "-tf", archive).Output()
	must(err)
	for _, n := range strings.Split(string(list), "\n") {
		if strings.HasSuffix(n, "/keep.txt") {
			keep = n
		}
	}
	content, err := exec.Command("tar", "-xOf", archive, keep).Output()
	if err != nil || string(content) != "before the snapshot\n" {
		t.Fatalf("keep.txt in the archive: %q %v", content, err)
	}
	if left, _ := filepath.Glob(filepath.Join(fs.Mount, ".lvss-snapshots", "*")); len(left) != 0 {
		t.Fatalf("snapshots left behind: %v", left)
	}

	// --in-place: the tool names the original path and reads the
	// snapshot there; nothing stays mounted.
	must(os.WriteFile(filepath.Join(data, "keep.txt"), []byte("second snapshot\n"), 0o644))
	archive2 := filepath.Join(t.TempDir(), "inplace.tar")
	script = `set -e
test "$(cat ` + filepath.Join(data, "keep.txt") + `)" = "second snapshot"
echo changed > ` + filepath.Join(data, "keep.txt") + ` 2>/dev/null && exit 9 # read-only: must fail
tar --exclude-from "$LVSS_EXCLUDE_FILE" -cf ` + archive2 + ` ` + data
	r = lvssdtest.Lvss(t, d.socket, "", "backup", "--writer", "dirwriter", "--in-place", "--exclude-file-format", "tar", "--", "sh", "-c", script)
	if r.Code != 0 {
		t.Fatalf("lvss backup --in-place: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	list, err = exec.Command("tar", "-tf", archive2).Output()
	must(err)
	rel := strings.TrimPrefix(data, "/")
	if !strings.Contains(string(list), rel+"/keep.txt") || strings.Contains(string(list), "scratch.tmp") || strings.Contains(string(list), ".lvss-snapshots") {
		t.Fatalf("in-place archive holds:\n%s", list)
	}
	content, err = exec.Command("tar", "-xOf", archive2, rel+"/keep.txt").Output()
	if err != nil || string(content) != "second snapshot\n" {
		t.Fatalf("keep.txt in the in-place archive: %q %v", content, err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	must(err)
	if strings.Count(string(mounts), " "+data+" ") != 0 {
		t.Fatalf("a mount was left at %s:\n%s", data, mounts)
	}

	// COMMAND's failure is lvss's exit status, and the writer is told
	// the backup failed (it still gets BackupComplete).
	r = lvssdtest.Lvss(t, d.socket, "", "backup", "--writer", "dirwriter", "--", "sh", "-c", "exit 7")
	if r.Code != 7 || !strings.Contains(r.Stdout, "exited with status 7") {
		t.Fatalf("failing COMMAND: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	// Killed by a signal, it reports as a shell would.
	r = lvssdtest.Lvss(t, d.socket, "", "backup", "--writer", "dirwriter", "--", "sh", "-c", "kill -TERM $$")
	if r.Code != 143 || !strings.Contains(r.Stdout, "ended with status 143 (killed by terminated)") {
		t.Fatalf("COMMAND killed by SIGTERM: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestBackupCommandRefusals: what lvss backup refuses before anything is
// frozen, with its exit status.
func TestBackupCommandRefusals(t *testing.T) {
	d := startDaemon(t, shortTimeouts)
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"backup"}, 2, "needs --for PATH or --writer NAME"},
		{[]string{"backup", "--for", "/", "--no-writers", "--writer", "x"}, 2, "--no-writers takes no --writer"},
		{[]string{"backup", "--for", "/", "--type", "weekly"}, 2, `--type "weekly"`},
		{[]string{"backup", "--writer", "nosuchwriter", "--", "true"}, 1, `no subscribed writer is named "nosuchwriter"`},
		{[]string{"--socket", filepath.Join(d.dir, "nothing.sock"), "backup", "--for", "/"}, 69, "not there"},
	} {
		r := lvssdtest.Lvss(t, d.socket, "", tc.args...)
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.says) {
			t.Errorf("lvss %v: exit %d, stderr %q; want %d and %q", tc.args, r.Code, r.Stderr, tc.code, tc.says)
		}
	}
	// Nothing was started: lvssd's log has no snapshot set.
	if slices.ContainsFunc(lvssdtest.Events(t, d.socket), func(e client.LogEvent) bool { return strings.Contains(e.Message, "creation started") }) {
		t.Fatal("a refused backup started a snapshot set")
	}
}

// TestBackupCommandInterrupted: SIGINT to lvss backup while COMMAND runs,
// and while the writers are frozen, ends everything it started: COMMAND,
// the session, the snapshots; the writer is released; lvss exits 130.
func TestBackupCommandInterrupted(t *testing.T) {
	testenv.RequireRoot(t)
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	d := startDaemon(t, frozenTimeouts(t))
	lvss := lvssdtest.Bin(t, "lvss")
	noSnapshots := func() {
		t.Helper()
		if left, _ := filepath.Glob(filepath.Join(fs.Mount, ".lvss-snapshots", "*")); len(left) != 0 {
			t.Fatalf("snapshots left behind: %v", left)
		}
	}
	interrupt := func(args []string, ready func() bool, after func()) lvssdtest.Result {
		t.Helper()
		cmd := exec.Command(lvss, append([]string{"--socket", d.socket}, args...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		eventually(t, liveness, "lvss backup to reach the point to interrupt", func() bool {
			select {
			case <-exited:
				t.Fatalf("lvss backup ended early: exit %d\n%s\n%s", cmd.ProcessState.ExitCode(), out.String(), errb.String())
			default:
			}
			return ready()
		})
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		after()
		<-exited
		return lvssdtest.Result{Code: cmd.ProcessState.ExitCode(), Stdout: out.String(), Stderr: errb.String()}
	}

	// During COMMAND: it is ended (its group gets SIGTERM), the writer
	// gets BackupComplete, the snapshot goes.
	for _, dir := range []string{"app", "slow"} {
		if err := os.Mkdir(filepath.Join(fs.Mount, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w := d.startWriter(t, "app", "front-end", "--path", filepath.Join(fs.Mount, "app"))
	d.waitWriters(t, 1)
	started := filepath.Join(d.dir, "command-started")
	ended := filepath.Join(d.dir, "command-ended")
	script := "trap 'touch " + ended + "; exit 143' TERM; touch " + started + "; while :; do sleep 0.1; done"
	r := interrupt([]string{"backup", "--writer", "app", "--", "sh", "-c", script}, func() bool {
		_, err := os.Stat(started)
		return err == nil
	}, func() {})
	if r.Code != 130 {
		t.Fatalf("interrupted during COMMAND: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(ended); err != nil {
		t.Fatal("COMMAND was not told to end")
	}
	eventually(t, liveness, "the writer to get BackupShutdown", func() bool {
		return slices.Contains(w.events(t), "BackupShutdown")
	})
	if ev := w.events(t); !slices.Contains(ev, "BackupComplete") || slices.Contains(ev, "Abort") {
		t.Fatalf("writer events after an interrupt during COMMAND: %v", ev)
	}
	noSnapshots()

	// While the writers are frozen: creation is aborted, the writer gets
	// Abort (which ends its Freeze handler: the SDK cancels a running
	// handler for Abort), nothing is left.
	slow := d.startWriter(t, "slow", "front-end", "--sleep-at", "Freeze=1h", "--path", filepath.Join(fs.Mount, "slow"))
	d.waitWriters(t, 2)
	r = interrupt([]string{"backup", "--writer", "slow", "--", "true"}, func() bool {
		return slices.Contains(slow.lw.EnteredEvents(t), "Freeze")
	}, func() {})
	if r.Code != 130 {
		t.Fatalf("interrupted during Freeze: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	eventually(t, liveness, "the frozen writer to get Abort", func() bool {
		return slices.Contains(slow.events(t), "Abort")
	})
	noSnapshots()
}

// TestBackupCommandProgress: on a terminal, lvss backup says which phase
// it is in and, while one is slow, where each writer is.
func TestBackupCommandProgress(t *testing.T) {
	testenv.RequireRoot(t)
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	d := startDaemon(t, frozenTimeouts(t))
	if err := os.Mkdir(filepath.Join(fs.Mount, "slow"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Freeze takes 5 s: longer than the 3 s after which lvss reports.
	d.startWriter(t, "slow", "front-end", "--sleep-at", "Freeze=5s", "--path", filepath.Join(fs.Mount, "slow"))
	d.waitWriters(t, 1)

	got := onTerminal(t, d.socket, "backup", "--writer", "slow", "--", "true")
	for _, want := range []string{"creating the snapshots (DoSnapshotSet)", "DoSnapshotSet has taken", "'slow' "} {
		if !strings.Contains(got, want) {
			t.Fatalf("the terminal did not show %q:\n%s", want, got)
		}
	}
}

// openPty opens a pseudo-terminal: its master, and its slave for a child.
func openPty(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		testenv.Missing(t, "a pseudo-terminal (/dev/ptmx: "+err.Error()+")")
	}
	ptm := os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ptm, pts
}

// TestBackupCommandWriterVeto: a writer that vetoes fails lvss backup
// (exit 3) naming the writer, the phase, the code and its message, and
// COMMAND never runs; with --allow-writer-failures COMMAND runs on the
// snapshot, which the summary calls crash-consistent. Either way nothing
// is left behind.
func TestBackupCommandWriterVeto(t *testing.T) {
	testenv.RequireRoot(t)
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	d := startDaemon(t, shortTimeouts)
	for _, dir := range []string{"freeze", "prepare"} {
		if err := os.Mkdir(filepath.Join(fs.Mount, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.startWriter(t, "vetofreeze", "front-end", "--fail-at", "Freeze", "--path", filepath.Join(fs.Mount, "freeze"))
	d.startWriter(t, "vetoprepare", "front-end", "--fail-at", "PrepareForBackup", "--path", filepath.Join(fs.Mount, "prepare"))
	d.waitWriters(t, 2)
	ran := filepath.Join(d.dir, "command-ran")
	command := []string{"--", "sh", "-c", "touch " + ran}
	nothingLeft := func(what string) {
		t.Helper()
		if _, err := os.Stat(ran); err == nil {
			t.Fatalf("%s: COMMAND ran", what)
		}
		if left, _ := filepath.Glob(filepath.Join(fs.Mount, ".lvss-snapshots", "*")); len(left) != 0 {
			t.Fatalf("%s: snapshots left behind: %v", what, left)
		}
		if r := lvssdtest.Lvss(t, d.socket, "", "list", "shadows", "--json"); strings.TrimSpace(r.Stdout) != "[]" {
			t.Fatalf("%s: lvssd still lists snapshots: %s", what, r.Stdout)
		}
	}

	for _, tc := range []struct{ writer, state string }{
		{"vetofreeze", "VSS_WS_FAILED_AT_FREEZE"},
		{"vetoprepare", "VSS_WS_FAILED_AT_PREPARE_BACKUP"},
	} {
		r := lvssdtest.Lvss(t, d.socket, "", append([]string{"backup", "--writer", tc.writer}, command...)...)
		want := "lvss: writer '" + tc.writer + "' failed: " + tc.state + ", VSS_E_WRITERERROR_RETRYABLE (0x800423F3): "
		if r.Code != 3 || !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, "told to fail at") ||
			!strings.Contains(r.Stderr, "\nhint: ") {
			t.Fatalf("veto by %s: exit %d, want 3 and %q\n%s\n%s", tc.writer, r.Code, want, r.Stdout, r.Stderr)
		}
		nothingLeft("veto by " + tc.writer)
	}

	r := lvssdtest.Lvss(t, d.socket, "", append([]string{"backup", "--writer", "vetofreeze", "--allow-writer-failures", "--json"}, command...)...)
	var sum backupSummary
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &sum) != nil {
		t.Fatalf("--allow-writer-failures: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if len(sum.Snapshots) != 1 || sum.Snapshots[0].Consistency != "crash" || len(sum.Writers) != 1 ||
		sum.Writers[0].State != "VSS_WS_FAILED_AT_FREEZE" || sum.Command.ExitStatus != 0 || sum.WritersFrozenMS != nil {
		t.Fatalf("--allow-writer-failures summary: %s", r.Stdout)
	}
	if _, err := os.Stat(ran); err != nil {
		t.Fatal("--allow-writer-failures: COMMAND did not run")
	}
	if err := os.Remove(ran); err != nil {
		t.Fatal(err)
	}
	nothingLeft("--allow-writer-failures")
}

// TestBackupCommandKeep: --persistent --keep N prunes the backup's own
// volume and context after each successful backup, so that the newest N
// stay; snapshots of another context on the volume are not its business.
// Without --persistent, --keep is a usage error before anything is made.
func TestBackupCommandKeep(t *testing.T) {
	testenv.RequireRoot(t)
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	data := filepath.Join(fs.Mount, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, shortTimeouts)
	id := writer.Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceOID, []byte("dirwriter")), Name: "dirwriter"}
	lvssdtest.RunWriter(t, d.socket, id, dirWriter{dir: data})

	// A client-accessible snapshot of the same volume, made by hand.
	if r := lvssdtest.Lvss(t, d.socket, "", "create", "shadow", "--for", data); r.Code != 0 {
		t.Fatalf("create shadow: exit %d\n%s", r.Code, r.Stderr)
	}
	var made []string
	for i := range 4 {
		r := lvssdtest.Lvss(t, d.socket, "", "backup", "--writer", "dirwriter", "--persistent", "--keep", "2", "--json", "--", "true")
		var sum struct {
			Snapshots []struct {
				SnapshotID string `json:"snapshot_id"`
			} `json:"snapshots"`
			Retention *struct {
				Deleted []string `json:"deleted"`
			} `json:"retention"`
		}
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &sum) != nil || len(sum.Snapshots) != 1 || sum.Retention == nil {
			t.Fatalf("backup %d: exit %d\n%s\n%s", i, r.Code, r.Stdout, r.Stderr)
		}
		made = append(made, sum.Snapshots[0].SnapshotID)
		// The third backup deletes the first, the fourth the second.
		var want []string
		if i >= 2 {
			want = []string{made[i-2]}
		}
		if !slices.Equal(sum.Retention.Deleted, want) && !(len(want) == 0 && len(sum.Retention.Deleted) == 0) {
			t.Fatalf("backup %d deleted %v, want %v", i, sum.Retention.Deleted, want)
		}
	}
	var left []struct {
		SnapshotID string `json:"snapshot_id"`
		Context    string `json:"context"`
	}
	r := lvssdtest.Lvss(t, d.socket, "", "list", "shadows", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &left); err != nil {
		t.Fatalf("list shadows: %v\n%s", err, r.Stdout)
	}
	var kept []string
	others := 0
	for _, s := range left {
		if strings.Contains(s.Context, "APP_ROLLBACK") {
			kept = append(kept, s.SnapshotID)
		} else {
			others++
		}
	}
	slices.Sort(kept)
	want := []string{made[2], made[3]}
	slices.Sort(want)
	if !slices.Equal(kept, want) || others != 1 {
		t.Fatalf("left: %+v; want the backups %v and the hand-made snapshot", left, want)
	}
	// Each btrfs snapshot is a subvolume with a .json record beside it.
	subs, _ := filepath.Glob(filepath.Join(fs.Mount, ".lvss-snapshots", "*"))
	subs = slices.DeleteFunc(subs, func(p string) bool { return strings.HasSuffix(p, ".json") })
	if len(subs) != 3 {
		t.Fatalf("btrfs holds %d snapshots, want 3: %v", len(subs), subs)
	}

	r = lvssdtest.Lvss(t, d.socket, "", "backup", "--writer", "dirwriter", "--keep", "2", "--", "true")
	if r.Code != 2 || !strings.Contains(r.Stderr, "go with --persistent") {
		t.Fatalf("--keep without --persistent: exit %d\n%s", r.Code, r.Stderr)
	}
}

// onTerminal runs lvss with its standard error on a pseudo-terminal, as
// an interactive user would, and returns what the terminal showed once
// lvss has exited (successfully: the test fails otherwise).
func onTerminal(t *testing.T, socket string, args ...string) string {
	t.Helper()
	ptm, pts := openPty(t)
	cmd := exec.Command(lvssdtest.Bin(t, "lvss"), append([]string{"--socket", socket}, args...)...)
	cmd.Stderr = pts
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	var tty strings.Builder
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 4096)
		for {
			n, err := ptm.Read(buf)
			tty.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("lvss %s: %v\n%s", args[0], err, out.String())
	}
	// The reader ends (EIO) once every slave descriptor is closed, after
	// it has read all lvss wrote.
	<-read
	return tty.String()
}
