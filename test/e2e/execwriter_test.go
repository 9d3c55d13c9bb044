package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
)

// TestExecWriterProcess runs `lvss-writer exec` as a real process whose
// hooks append their event to a log: the backup's events arrive in the
// order of vss-reference §3.2, listing writers sends no event, and a session the writer does
// not take part in sends it nothing at all (D14, D16).
func TestExecWriterProcess(t *testing.T) {
	d := startDaemon(t, shortTimeouts)
	data := filepath.Join(d.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(d.dir, "hooks.log")
	args := []string{"--socket", d.socket, "exec", "--name", "hooks", "--component", "data=" + data,
		"--tmpdir", "/dev/shm"}
	for _, ev := range []string{"prepare-backup", "prepare-snapshot", "freeze", "thaw", "post-snapshot", "abort",
		"backup-complete", "backup-shutdown"} {
		args = append(args, "--on-"+ev, "echo "+ev+" >> "+events)
	}
	start(t, d.dir, "lvss-writer", args...)
	d.waitWriters(t, 1)
	read := func() []string {
		b, _ := os.ReadFile(events)
		return strings.Fields(string(b))
	}

	ctx := context.Background()
	conn, err := client.Dial(ctx, d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ws, err := conn.ListWriters(ctx)
	if err != nil || len(ws) != 1 || ws[0].Name != "hooks" || !strings.Contains(ws[0].WMD, data) {
		t.Fatalf("list writers: %+v %v", ws, err)
	}
	if got := read(); len(got) != 0 {
		t.Fatalf("listing writers sent events: %v", got)
	}

	// A component-mode session that selects nothing of this writer.
	if _, err := backup(t, d.socket, backupSpec{selectComponents: true, backupType: vss.BackupFull}); err != nil {
		t.Fatal(err)
	}
	// backup returned after lvssd released the session, which it does only
	// once the writers it sent anything have answered: the hooks' log is
	// complete, and lvssd's log says whom it sent BackupShutdown.
	if rel := d.lastRelease(t); rel["shutdown_writers"] != "0" {
		t.Errorf("lvssd released the session with BackupShutdown to %s writers", rel["shutdown_writers"])
	}
	if got := read(); len(got) != 0 {
		t.Fatalf("a writer that took no part got events: %v", got)
	}

	// A whole backup it takes part in (non-component mode; the set holds
	// no volume: only the writer's sequence matters here).
	if _, err := backup(t, d.socket, backupSpec{complete: true}); err != nil {
		t.Fatal(err)
	}
	want := []string{"prepare-backup", "prepare-snapshot", "freeze", "thaw", "post-snapshot", "backup-complete", "backup-shutdown"}
	eventually(t, 5*time.Second, "backup-shutdown", func() bool { return slices.Contains(read(), "backup-shutdown") })
	if got := read(); !slices.Equal(got, want) {
		t.Fatalf("hooks ran %v, want %v", got, want)
	}
}
