package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/writer"
)

// btrfsSnapshots lists the snapshot subvolumes lvss's btrfs provider holds
// on the filesystem mounted at mount: the provider's own listing, read
// from the disk.
func btrfsSnapshots(t *testing.T, mount string) []string {
	t.Helper()
	subs, _ := filepath.Glob(filepath.Join(mount, ".lvss-snapshots", "*"))
	var out []string
	for _, s := range subs {
		if !strings.HasSuffix(s, ".json") {
			out = append(out, filepath.Base(s))
		}
	}
	slices.Sort(out)
	return out
}

type recoveryStatus struct {
	Recovery struct {
		Actions []struct {
			Action string `json:"action"`
			Object string `json:"object"`
			Detail string `json:"detail"`
		} `json:"actions"`
	} `json:"recovery"`
}

func statusRecovery(t *testing.T, socket string) recoveryStatus {
	t.Helper()
	r := lvssdtest.Lvss(t, socket, "", "status", "--json")
	var st recoveryStatus
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &st) != nil {
		t.Fatalf("lvss status: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	return st
}

func (st recoveryStatus) has(action, object string) bool {
	for _, a := range st.Recovery.Actions {
		if a.Action == action && (object == "" || a.Object == object) {
			return true
		}
	}
	return false
}

func listShadowIDs(t *testing.T, socket string) []string {
	t.Helper()
	r := lvssdtest.Lvss(t, socket, "", "list", "shadows", "--json")
	var list []struct {
		SnapshotID  string `json:"snapshot_id"`
		Consistency string `json:"consistency"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &list) != nil {
		t.Fatalf("list shadows: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.SnapshotID)
	}
	slices.Sort(ids)
	return ids
}

// TestKillBetweenCommitAndRecord is the crash the journal exists for:
// lvssd is SIGKILLed after btrfs made a snapshot and before the catalog
// recorded it. The next lvssd deletes that snapshot, says so in the event
// log and in lvss status, keeps the one recorded before, and backs up
// again. Then a persistent snapshot the catalog lost is reported, and
// adopted with --adopt-snapshots.
func TestKillBetweenCommitAndRecord(t *testing.T) {
	testenv.RequireRoot(t)
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	data := filepath.Join(fs.Mount, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	dirs := t.TempDir()
	state, run := filepath.Join(dirs, "state"), filepath.Join(dirs, "run")
	opts := lvssdtest.DaemonOptions{Config: shortTimeouts, StateDir: state, RunDir: run}

	d0 := lvssdtest.StartDaemon(t, opts)
	if r := d0.Lvss(t, "", "create", "shadow", "--for", data); r.Code != 0 {
		t.Fatalf("create shadow: exit %d\n%s", r.Code, r.Stderr)
	}
	kept := listShadowIDs(t, d0.Socket)
	d0.Proc.Stop(t)

	fopts := opts
	fopts.Failpoints = "create.record=pause"
	d1 := lvssdtest.StartDaemon(t, fopts)
	cmd := exec.Command(lvssdtest.Bin(t, "lvss"), "--socket", d1.Socket, "create", "shadow", "--for", data)
	out := filepath.Join(dirs, "requester.out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d1.AwaitFailpoint(t, "create.record", 30*time.Second)
	if got := btrfsSnapshots(t, fs.Mount); len(got) != 2 {
		t.Fatalf("at the failpoint btrfs holds %v, want the kept snapshot and the new one", got)
	}
	if err := d1.Proc.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d1.Proc.Done()
	if err := cmd.Wait(); err == nil {
		b, _ := os.ReadFile(out)
		t.Fatalf("the requester succeeded although lvssd died before recording its set:\n%s", b)
	}
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), "the connection to lvssd was lost") || !strings.Contains(string(b), "Recovery at start") {
		t.Errorf("the requester does not say that lvssd went away and what happens next:\n%s", b)
	}

	d2 := lvssdtest.StartDaemon(t, opts)
	if got := btrfsSnapshots(t, fs.Mount); !slices.Equal(got, kept) {
		t.Fatalf("after recovery btrfs holds %v, want only %v", got, kept)
	}
	if got := listShadowIDs(t, d2.Socket); !slices.Equal(got, kept) {
		t.Fatalf("after recovery the catalog lists %v, want %v", got, kept)
	}
	st := statusRecovery(t, d2.Socket)
	if !st.has("set-aborted", "") || !st.has("snapshot-deleted", "") {
		t.Fatalf("lvss status does not report the recovery: %+v", st.Recovery.Actions)
	}
	r := d2.Lvss(t, "", "events", "--json")
	if !strings.Contains(r.Stdout, "recovery: deleted a snapshot of a cut snapshot set") {
		t.Fatalf("the event log does not say what recovery did:\n%s", r.Stdout)
	}
	if r := d2.Lvss(t, "", "create", "shadow", "--for", data); r.Code != 0 {
		t.Fatalf("the next snapshot after recovery failed: exit %d\n%s", r.Code, r.Stderr)
	}
	all := listShadowIDs(t, d2.Socket)
	if got := btrfsSnapshots(t, fs.Mount); !slices.Equal(got, all) {
		t.Fatalf("btrfs holds %v, the catalog lists %v", got, all)
	}
	d2.Proc.Stop(t)

	// The catalog loses a persistent snapshot (an older copy of the file
	// put back, say): the next start reports it and keeps it.
	lost := kept[0]
	cat, err := catalog.Open(filepath.Join(state, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.DeleteSnapshot(uuid.MustParse(lost)); err != nil {
		t.Fatal(err)
	}
	cat.Close()
	d3 := lvssdtest.StartDaemon(t, opts)
	if st := statusRecovery(t, d3.Socket); !st.has("snapshot-unknown", lost) {
		t.Fatalf("the lost snapshot is not reported: %+v", st.Recovery.Actions)
	}
	if !slices.Contains(btrfsSnapshots(t, fs.Mount), lost) {
		t.Fatal("an unknown snapshot was deleted")
	}
	d3.Proc.Stop(t)
	aopts := opts
	aopts.Args = []string{"--adopt-snapshots"}
	d4 := lvssdtest.StartDaemon(t, aopts)
	if st := statusRecovery(t, d4.Socket); !st.has("snapshot-adopted", lost) {
		t.Fatalf("--adopt-snapshots did not adopt it: %+v", st.Recovery.Actions)
	}
	if !slices.Contains(listShadowIDs(t, d4.Socket), lost) {
		t.Fatal("the adopted snapshot is not listed")
	}
	if r := d4.Lvss(t, "", "delete", "shadows", "--shadow", lost); r.Code != 0 {
		t.Fatalf("delete the adopted snapshot: exit %d\n%s", r.Code, r.Stderr)
	}
	if slices.Contains(btrfsSnapshots(t, fs.Mount), lost) {
		t.Fatal("deleting the adopted snapshot left it on disk")
	}
}

// TestDamagedCatalogRefused: lvssd does not start over a catalog it cannot
// read, and says which file and how to recover.
func TestDamagedCatalogRefused(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(state, "catalog.db")
	junk := []byte(strings.Repeat("not a bbolt file ", 1000))
	if err := os.WriteFile(file, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "lvssd.toml")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(lvssdtest.Bin(t, "lvssd"), "--socket", filepath.Join(dir, "s.sock"), "--state-dir", state,
		"--run-dir", filepath.Join(dir, "run"), "--config", cfg)
	b, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("lvssd started over a damaged catalog:\n%s", b)
	}
	for _, want := range []string{file, "cannot be read", "--adopt-snapshots", "mv " + file} {
		if !strings.Contains(string(b), want) {
			t.Errorf("message lacks %q:\n%s", want, b)
		}
	}
	if got, _ := os.ReadFile(file); string(got) != string(junk) {
		t.Fatal("lvssd changed the damaged catalog")
	}
}

// abortCounter is a dirWriter that counts the Aborts it gets per session.
type abortCounter struct {
	dirWriter
	mu     sync.Mutex
	aborts map[uuid.UUID]int
}

func (w *abortCounter) Abort(_ context.Context, ev *writer.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.aborts[ev.SessionID]++
	return nil
}

func (w *abortCounter) count(session uuid.UUID) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.aborts[session]
}

// TestWriterGetsAbortAfterRestart: lvssd is SIGKILLed while a writer is
// frozen. The SDK releases the writer's application at once (its own
// Abort); when the writer has subscribed to the next lvssd, that lvssd
// sends it Abort, then BackupShutdown, for the creation that was cut
// (L43), and says so in the event log.
func TestWriterGetsAbortAfterRestart(t *testing.T) {
	testenv.RequireRoot(t)
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	data := filepath.Join(fs.Mount, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	dirs := t.TempDir()
	opts := lvssdtest.DaemonOptions{Config: shortTimeouts, StateDir: filepath.Join(dirs, "state"), RunDir: filepath.Join(dirs, "run"),
		Socket: filepath.Join(dirs, "lvssd.sock")}
	fopts := opts
	fopts.Failpoints = "create.thaw=pause"
	d1 := lvssdtest.StartDaemon(t, fopts)

	w := &abortCounter{dirWriter: dirWriter{dir: data}, aborts: map[uuid.UUID]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- writer.Run(ctx, writer.Options{Socket: opts.Socket, Retry: true, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
			writer.Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceOID, []byte("restartwriter")), Name: "restartwriter"}, w)
	}()
	t.Cleanup(func() { cancel(); <-done })
	lvssdtest.Eventually(t, 15*time.Second, "the writer to subscribe", func() bool {
		return strings.Contains(d1.Lvss(t, "", "list", "writers").Stdout, "restartwriter")
	})

	cmd := exec.Command(lvssdtest.Bin(t, "lvss"), "--socket", opts.Socket, "backup", "--writer", "restartwriter", "--json", "--", "true")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d1.AwaitFailpoint(t, "create.thaw", 30*time.Second)
	if err := d1.Proc.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d1.Proc.Done()
	if err := cmd.Wait(); err == nil {
		t.Fatalf("the backup succeeded although lvssd died while the writer was frozen:\n%s", out.String())
	}

	d2 := lvssdtest.StartDaemon(t, opts)
	var session uuid.UUID
	lvssdtest.Eventually(t, 30*time.Second, "the next lvssd to send the writer Abort for the cut creation", func() bool {
		r := d2.Lvss(t, "", "events", "--json")
		var evs []struct {
			Message string            `json:"message"`
			Session string            `json:"session_id"`
			Fields  map[string]string `json:"fields"`
		}
		if json.Unmarshal([]byte(r.Stdout), &evs) != nil {
			return false
		}
		for _, e := range evs {
			if strings.HasPrefix(e.Message, "sent Abort to a writer for a creation") && e.Fields["writer"] == "restartwriter" {
				if e.Fields["error"] != "" {
					t.Fatalf("the writer did not take the Abort: %s", e.Fields["error"])
				}
				session = uuid.MustParse(e.Session)
				return true
			}
		}
		return false
	})
	// One Abort from the SDK when the stream broke, one from the next lvssd.
	if n := w.count(session); n != 2 {
		t.Fatalf("the writer's Abort ran %d times for the cut session, want 2 (the SDK's own, then lvssd's)", n)
	}
	if st := statusRecovery(t, d2.Socket); !st.has("set-aborted", "") {
		t.Fatalf("recovery did not abort the cut set: %+v", st.Recovery.Actions)
	}
	if got := btrfsSnapshots(t, fs.Mount); len(got) != 0 {
		t.Fatalf("the cut set's snapshot is still on disk: %v", got)
	}
}
