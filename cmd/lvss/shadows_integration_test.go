package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
)

// lvssJSON runs a --json verb that must succeed and decodes its output.
func (d *daemon) lvssJSON(t *testing.T, v any, argv ...string) {
	t.Helper()
	code, out, errOut := d.run(t, append(argv, "--json")...)
	if code != 0 {
		t.Fatalf("lvss %v: exit %d: %s", argv, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("lvss %v: %v\n%s", argv, err, out)
	}
}

// requireBtrfsProvider fails when lvssd does not offer the btrfs provider:
// it is built in, so its absence is a regression, not a missing tool.
func (d *daemon) requireBtrfsProvider(t *testing.T) {
	t.Helper()
	var ps []map[string]any
	d.lvssJSON(t, &ps, "list", "providers")
	for _, p := range ps {
		if strings.EqualFold(p["name"].(string), "btrfs") {
			return
		}
	}
	t.Fatal("lvssd registers no btrfs provider (cmd/lvssd/providers.go)")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestIntegrationShadowsBtrfs runs create → list → expose → unexpose →
// delete against the real lvssd and the btrfs provider on a loop device.
func TestIntegrationShadowsBtrfs(t *testing.T) {
	if testing.Short() {
		testenv.SkipIfShort(t, "builds and starts lvssd")
	}
	fs := testenv.LoopFS(t, "btrfs", 512<<20)
	d := startDaemon(t)
	d.requireBtrfsProvider(t)
	vol := fs.Mount
	if err := os.WriteFile(filepath.Join(vol, "data.txt"), []byte("monday"), 0o644); err != nil {
		t.Fatal(err)
	}

	// create
	var created struct {
		SetID     string           `json:"snapshot_set_id"`
		Context   string           `json:"context"`
		Snapshots []map[string]any `json:"snapshots"`
		Writers   []map[string]any `json:"writers"`
		Warnings  []string         `json:"warnings"`
	}
	d.lvssJSON(t, &created, "create", "shadow", "--for", vol, "--provider", "BTRFS")
	if len(created.Snapshots) != 1 || created.Context != "VSS_CTX_CLIENT_ACCESSIBLE" || len(created.Warnings) != 0 {
		t.Fatalf("create: %+v", created)
	}
	snap := created.Snapshots[0]
	id, path := snap["snapshot_id"].(string), snap["snapshot_path"].(string)
	if snap["provider"] != "btrfs" || snap["original_volume"] != vol || snap["snapshot_set_id"] != created.SetID ||
		snap["auto_release"] != false || snap["consistency"] == "" {
		t.Errorf("created snapshot: %v", snap)
	}
	if err := os.WriteFile(filepath.Join(vol, "data.txt"), []byte("tuesday"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(path, "data.txt")); got != "monday" {
		t.Errorf("the snapshot at %s holds %q, want the content at creation", path, got)
	}

	// list
	var list []map[string]any
	d.lvssJSON(t, &list, "list", "shadows", "--for", vol)
	if len(list) != 1 || list[0]["snapshot_id"] != id || list[0]["live_session"] != false ||
		list[0]["context"] != "VSS_CTX_CLIENT_ACCESSIBLE" || list[0]["exposed_path"] != "" {
		t.Fatalf("list: %v", list)
	}
	if code, out, _ := d.run(t, "list", "shadows", "--set", created.SetID); code != 0 ||
		!strings.Contains(out, "Contents of shadow copy set ID: "+created.SetID) || !strings.Contains(out, "Shadow Copy ID: "+id) {
		t.Errorf("list text: exit %d\n%s", code, out)
	}

	// expose
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A failed test must not leave the loop filesystem busy.
		d.run(t, "unexpose", id)
		unix.Unmount(dir, unix.MNT_DETACH)
	})
	var exp map[string]any
	d.lvssJSON(t, &exp, "expose", id, dir)
	if exp["exposed_path"] != dir {
		t.Fatalf("expose: %v", exp)
	}
	if got := readFile(t, filepath.Join(dir, "data.txt")); got != "monday" {
		t.Errorf("exposed %s holds %q", dir, got)
	}
	d.lvssJSON(t, &list, "list", "shadows", "--for", vol)
	if list[0]["exposed_path"] != dir || !slices.Contains(list[0]["attributes"].([]any), any("VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY")) {
		t.Errorf("list after expose: %v", list[0])
	}

	// unexpose
	var unexp map[string]any
	d.lvssJSON(t, &unexp, "unexpose", id)
	if unexp["previous_exposed_path"] != dir || unexp["exposed_path"] != "" {
		t.Errorf("unexpose: %v", unexp)
	}
	if _, err := os.Stat(filepath.Join(dir, "data.txt")); err == nil {
		t.Errorf("%s still shows the snapshot", dir)
	}
	if code, _, errOut := d.run(t, "unexpose", id); code != 1 || !strings.Contains(errOut, "VSS_E_OBJECT_NOT_FOUND (0x80042308)") {
		t.Errorf("unexpose twice: exit %d, %s", code, errOut)
	}

	// delete
	var del struct {
		Deleted []string `json:"deleted"`
		Skipped []any    `json:"skipped"`
		Failed  any      `json:"failed"`
	}
	d.lvssJSON(t, &del, "delete", "shadows", "--shadow", id)
	if !slices.Equal(del.Deleted, []string{id}) || len(del.Skipped) != 0 || del.Failed != nil {
		t.Fatalf("delete: %+v", del)
	}
	d.lvssJSON(t, &list, "list", "shadows")
	if len(list) != 0 {
		t.Errorf("list after delete: %v", list)
	}
	if _, err := os.Stat(path); err == nil {
		t.Errorf("%s is still there after delete", path)
	}
	if code, out, _ := d.run(t, "delete", "shadows", "--for", vol); code != 0 || out != "No shadow copies matched.\n" {
		t.Errorf("delete again: exit %d, %q", code, out)
	}
}

// TestIntegrationShadowsWritersAndLiveSessions: create with a writer
// context runs the writer sequence in the real coordinator, and another
// session's auto-release snapshot is listed as live and left alone by
// delete.
func TestIntegrationShadowsWritersAndLiveSessions(t *testing.T) {
	if testing.Short() {
		testenv.SkipIfShort(t, "builds and starts lvssd")
	}
	fs := testenv.LoopFS(t, "btrfs", 512<<20)
	d := startDaemon(t)
	d.requireBtrfsProvider(t)
	d.startWriter(t)

	var created struct {
		SetID     string           `json:"snapshot_set_id"`
		Snapshots []map[string]any `json:"snapshots"`
		Writers   []map[string]any `json:"writers"`
		Warnings  []string         `json:"warnings"`
	}
	d.lvssJSON(t, &created, "create", "shadow", "--for", fs.Mount, "--context", "VSS_CTX_APP_ROLLBACK")
	if len(created.Snapshots) != 1 || len(created.Writers) != 1 || len(created.Warnings) != 0 ||
		created.Writers[0]["name"] != "files" || created.Writers[0]["failure"] != "S_OK" {
		t.Fatalf("create with writers: %+v", created)
	}
	persistent := created.Snapshots[0]["snapshot_id"].(string)
	var ws []map[string]any
	d.lvssJSON(t, &ws, "list", "writers")
	if len(ws) != 1 || ws[0]["state"] != "VSS_WS_STABLE" {
		t.Errorf("the writer after create (BackupComplete sent, session released): %v", ws)
	}

	// A backup holds a session with an auto-release snapshot.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := client.Dial(ctx, d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bc, err := conn.NewBackupComponents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var live uuid.UUID
	err = func() error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if err := bc.SetContext(ctx, vss.CtxFileShareBackup); err != nil {
			return err
		}
		if _, err := bc.StartSnapshotSet(ctx); err != nil {
			return err
		}
		if live, err = bc.AddToSnapshotSet(ctx, fs.Mount, uuid.Nil); err != nil {
			return err
		}
		a, err := bc.DoSnapshotSet(ctx)
		if err != nil {
			return err
		}
		return a.Wait(ctx)
	}()
	if err != nil {
		t.Fatal(err)
	}

	var list []map[string]any
	d.lvssJSON(t, &list, "list", "shadows", "--for", fs.Mount)
	var liveObj map[string]any
	for _, s := range list {
		if s["snapshot_id"] == live.String() {
			liveObj = s
		}
	}
	if len(list) != 2 || liveObj == nil || liveObj["auto_release"] != true || liveObj["live_session"] != true ||
		liveObj["context"] != "VSS_CTX_FILE_SHARE_BACKUP" {
		t.Fatalf("list with a live session: %v", list)
	}
	var del struct {
		Deleted []string         `json:"deleted"`
		Skipped []map[string]any `json:"skipped"`
	}
	d.lvssJSON(t, &del, "delete", "shadows", "--all")
	if !slices.Equal(del.Deleted, []string{persistent}) || len(del.Skipped) != 1 || del.Skipped[0]["snapshot_id"] != live.String() {
		t.Fatalf("delete --all with a live session: %+v", del)
	}
	if _, err := bc.GetSnapshotProperties(ctx, live); err != nil {
		t.Errorf("the live snapshot is gone: %v", err)
	}
	rel, err := bc.Release(ctx)
	if err != nil || !slices.Contains(rel.DeletedSnapshots, live) {
		t.Fatalf("release: %+v %v", rel, err)
	}
	d.lvssJSON(t, &list, "list", "shadows")
	if len(list) != 0 {
		t.Errorf("left after the session: %v", list)
	}
}
