package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

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
	r := lvssdtest.Lvss(t, d.socket, "", "backup", "--writer", "dirwriter", "--exclude-file-format", "tar", "--json", "--", "sh", "-c", script)
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
