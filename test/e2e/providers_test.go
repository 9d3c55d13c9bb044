package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// execConfig is an lvssd config with one exec provider for vol whose
// commit runs commitCmd.
func execConfig(hold, vol, commitCmd string) string {
	return fmt.Sprintf(`
[timeouts]
hold = %q
freeze = "20s"
[[providers.exec]]
name = "outside"
volumes = [%q]
commit = %q
delete = "true"
`, hold, vol, commitCmd)
}

// snapshotSet runs a writerless creation of the given volume and returns
// DoSnapshotSet's error; the session is released before it returns.
func snapshotSet(t *testing.T, socket, vol string, ctxt vss.Context) (uuid.UUID, error) {
	t.Helper()
	ctx := context.Background()
	var snap uuid.UUID
	err := client.Run(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if err := bc.SetContext(ctx, ctxt); err != nil {
			return err
		}
		if _, err := bc.StartSnapshotSet(ctx); err != nil {
			return err
		}
		var err error
		if snap, err = bc.AddToSnapshotSet(ctx, vol, uuid.Nil); err != nil {
			return err
		}
		a, err := bc.DoSnapshotSet(ctx)
		if err != nil {
			return err
		}
		return a.Wait(ctx)
	})
	return snap, err
}

// backupSpec describes a writer-context backup run by backup.
type backupSpec struct {
	context          vss.Context // zero: VSS_CTX_BACKUP
	selectComponents bool        // component mode (nothing is added: writers take no part)
	backupType       vss.BackupType
	volumes          []string
	complete         bool // send BackupComplete
}

// backup runs a writer-context backup through client.Run and returns the
// snapshot IDs of the volumes, in order.
func backup(t *testing.T, socket string, b backupSpec) ([]uuid.UUID, error) {
	t.Helper()
	if b.backupType == 0 {
		b.backupType = vss.BackupCopy
	}
	var snaps []uuid.UUID
	wait := func(ctx context.Context, op func(context.Context) (*client.Async, error)) error {
		a, err := op(ctx)
		if err == nil {
			err = a.Wait(ctx)
		}
		return err
	}
	err := client.Run(context.Background(), socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if b.context != vss.CtxBackup {
			if err := bc.SetContext(ctx, b.context); err != nil {
				return err
			}
		}
		if err := bc.SetBackupState(ctx, b.selectComponents, false, b.backupType, false); err != nil {
			return err
		}
		if err := wait(ctx, bc.GatherWriterMetadata); err != nil {
			return err
		}
		if _, err := bc.StartSnapshotSet(ctx); err != nil {
			return err
		}
		for _, v := range b.volumes {
			id, err := bc.AddToSnapshotSet(ctx, v, uuid.Nil)
			if err != nil {
				return err
			}
			snaps = append(snaps, id)
		}
		ops := []func(context.Context) (*client.Async, error){bc.PrepareForBackup, bc.DoSnapshotSet}
		if b.complete {
			ops = append(ops, bc.BackupComplete)
		}
		for _, op := range ops {
			if err := wait(ctx, op); err != nil {
				return err
			}
		}
		return nil
	})
	return snaps, err
}

// snapshotSetWithWriters runs a persistent creation with writers.
func snapshotSetWithWriters(t *testing.T, socket, vol string) (uuid.UUID, error) {
	t.Helper()
	snaps, err := backup(t, socket, backupSpec{context: vss.CtxAppRollback, volumes: []string{vol}})
	if len(snaps) == 0 {
		return uuid.Nil, err
	}
	return snaps[0], err
}

// TestExecCommitThatHangsIsCutAtTheHoldWindow: the filesystem is frozen
// around the exec commit; a commit that never ends is cut at the hold
// window, DoSnapshotSet fails with VSS_E_HOLD_WRITES_TIMEOUT, and the
// filesystem is writable again.
func TestExecCommitThatHangsIsCutAtTheHoldWindow(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", 64<<20)
	d := startDaemon(t, execConfig("1s", fs.Mount, "sleep 30"))
	start := time.Now()
	_, err := snapshotSet(t, d.socket, fs.Mount, vss.CtxNASRollback)
	if !errors.Is(err, vsserr.HoldWritesTimeout) {
		t.Fatalf("DoSnapshotSet: %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("took %s with a 1s hold window", el)
	}
	if !fs.Writable(2 * time.Second) {
		t.Fatal("filesystem still frozen after the hold window")
	}
}

// TestLvssdKilledWhileFrozen: SIGKILL of lvssd while a filesystem is
// frozen; the guard notices and thaws within the hold window plus a second.
func TestLvssdKilledWhileFrozen(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", 64<<20)
	marker := filepath.Join(t.TempDir(), "committing")
	d := startDaemon(t, execConfig("5s", fs.Mount, "touch "+marker+"; sleep 30"))
	// lvssd dies under this session; its error is not the point.
	go func() { _, _ = snapshotSet(t, d.socket, fs.Mount, vss.CtxNASRollback) }()
	eventually(t, 10*time.Second, "the commit to start inside the freeze", func() bool {
		_, err := os.Stat(marker)
		return err == nil
	})
	if fs.Writable(200 * time.Millisecond) {
		t.Fatal("filesystem not frozen during the commit")
	}
	killed := time.Now()
	if err := d.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 6*time.Second, "the filesystem to be writable after lvssd died", func() bool { return fs.Writable(200 * time.Millisecond) })
	t.Logf("writable again %s after SIGKILL of lvssd", time.Since(killed).Round(time.Millisecond))
}

// TestStateDirOnAFrozenVolume: lvssd's state directory (catalog, event
// log) lives on the volume it freezes; it must not write there while the
// volume is frozen, or it would hang.
func TestStateDirOnAFrozenVolume(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", 64<<20)
	d := startDaemonWith(t, lvssdtest.DaemonOptions{Config: execConfig("5s", fs.Mount, "echo handle-$LVSS_SNAPSHOT_ID_1"),
		StateDir: filepath.Join(fs.Mount, "lvss-state")})
	w := d.startWriter(t, "w", "front-end")
	d.waitWriters(t, 1)
	done := make(chan error, 1)
	go func() {
		// VSS_CTX_APP_ROLLBACK: persistent, with writers, so the catalog
		// and the event log are written around the freeze.
		_, err := snapshotSetWithWriters(t, d.socket, fs.Mount)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("DoSnapshotSet with the state dir on the frozen volume: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("DoSnapshotSet hung: lvssd wrote to a frozen filesystem")
	}
	if got := w.events(t); len(got) == 0 || got[len(got)-1] != "BackupShutdown" {
		t.Fatalf("writer events %v", got)
	}
	if !fs.Writable(2 * time.Second) {
		t.Fatal("filesystem left frozen")
	}
}

// appender writes fixed-size numbered records to a file until stopped, as
// many as it is allowed; a writer can pause it (hold mu) for the freeze
// window. The allowance bounds the file by bytes, not by how fast the
// machine appends: unbounded, a fast appender on a slow snapshot filled
// the test's volume.
type appender struct {
	file  string
	mu    sync.Mutex
	count int
	limit int           // records it may have written; allow raises it
	more  chan struct{} // wakes run, waiting at limit, when allow raised it
}

const rec = 64

func newAppender(file string) *appender {
	return &appender{file: file, more: make(chan struct{}, 1)}
}

// allow lets the appender write n records more than it has written so far.
func (a *appender) allow(n int) {
	a.mu.Lock()
	a.limit = a.count + n
	a.mu.Unlock()
	select {
	case a.more <- struct{}{}:
	default:
	}
}

func (a *appender) run(stop <-chan struct{}, done chan<- error) {
	f, err := os.OpenFile(a.file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		done <- err
		return
	}
	defer f.Close()
	for {
		select {
		case <-stop:
			done <- nil
			return
		default:
		}
		a.mu.Lock()
		if a.count >= a.limit {
			// Wait outside mu, so that a writer can still pause it.
			a.mu.Unlock()
			select {
			case <-stop:
				done <- nil
				return
			case <-a.more:
			}
			continue
		}
		_, err := f.WriteString(fmt.Sprintf("%0*d\n", rec-1, a.count))
		if err == nil {
			a.count++
		}
		a.mu.Unlock()
		if err != nil {
			done <- err
			return
		}
	}
}

// checkRecords verifies the records of a snapshot's copy of the file:
// records [0, intact) must all be there and whole; records after that may
// only be whole or (a torn tail) all zero bytes.
func checkRecords(t *testing.T, data []byte, intact int) {
	t.Helper()
	if len(data)%rec != 0 {
		t.Fatalf("%d bytes is not a whole number of %d-byte records", len(data), rec)
	}
	if len(data)/rec < intact {
		t.Fatalf("snapshot holds %d records, but %d were written before it was taken", len(data)/rec, intact)
	}
	for j := 0; j < len(data)/rec; j++ {
		got := string(data[j*rec : (j+1)*rec])
		if got == fmt.Sprintf("%0*d\n", rec-1, j) {
			continue
		}
		if j >= intact && strings.Trim(got, "\x00") == "" {
			continue
		}
		t.Fatalf("record %d is %q (%d records were written before the snapshot)", j, got, intact)
	}
}

func devicePath(t *testing.T, conn *client.Conn, vol string, snap uuid.UUID) client.SnapshotProp {
	t.Helper()
	shadows, err := conn.ListShadows(context.Background(), uuid.Nil, vol)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shadows {
		if s.SnapshotID == snap {
			return s
		}
	}
	t.Fatalf("snapshot %s not listed", snap)
	return client.SnapshotProp{}
}

// TestBtrfsSnapshotUnderConcurrentWriter: snapshots of a btrfs volume
// under a process appending fixed-size records. Without writer cover
// (writerless context, "crash") every record written before the snapshot
// was requested is in it, whole; a btrfs snapshot racing an un-quiesced
// append may end in a zero-filled block (observed on Linux 6.18; see
// docs/provider-btrfs.md), which is exactly what writers prevent. With a
// writer that pauses the appender at Freeze, the snapshot holds exactly
// the records written before Freeze, all whole, and is "application".
//
// Before each snapshot the appender is allowed perSnapshot more bytes:
// enough to keep it appending while a snapshot is requested and taken
// (20 to 90 ms here, at some 400k records a second), and, for the eleven
// allowances of the test, 88 MiB in all, a sixth of the volume. Where the
// snapshot is slower, the appender may finish its allowance before the
// commit; what the test asserts holds either way.
func TestBtrfsSnapshotUnderConcurrentWriter(t *testing.T) {
	const volume, perSnapshot = 512 << 20, 8 << 20
	fs := testenv.LoopFS(t, "btrfs", volume)
	d := startDaemon(t, shortTimeouts)
	app := newAppender(filepath.Join(fs.Mount, "records"))
	app.allow(perSnapshot / rec)
	stop, done := make(chan struct{}), make(chan error, 1)
	go app.run(stop, done)
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	eventually(t, 5*time.Second, "some records", func() bool { app.mu.Lock(); defer app.mu.Unlock(); return app.count > 100 })
	conn, err := client.Dial(context.Background(), d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	t.Run("writerless", func(t *testing.T) {
		for i := range 5 {
			app.allow(perSnapshot / rec)
			app.mu.Lock()
			before := app.count
			app.mu.Unlock()
			snap, err := snapshotSet(t, d.socket, fs.Mount, vss.CtxClientAccessible)
			if err != nil {
				t.Fatalf("snapshot %d: %v", i, err)
			}
			sp := devicePath(t, conn, fs.Mount, snap)
			if sp.Consistency != "crash" || sp.ProviderName != "btrfs" {
				t.Fatalf("snapshot %+v", sp)
			}
			data, err := os.ReadFile(filepath.Join(sp.DevicePath, "records"))
			if err != nil {
				t.Fatal(err)
			}
			checkRecords(t, data, before)
		}
	})

	t.Run("with-writer", func(t *testing.T) {
		var frozenAt atomic.Int64
		w := &pauseWriter{path: fs.Mount, app: app, frozenAt: &frozenAt}
		ctx, cancel := context.WithCancel(context.Background())
		wdone := make(chan struct{})
		go func() {
			defer close(wdone)
			_ = writer.Run(ctx, writer.Options{Socket: d.socket}, writer.Identity{
				ClassID: uuid.NewSHA1(uuid.NameSpaceURL, []byte("lvss:e2e:appender")), Name: "appender"}, w)
		}()
		defer func() { cancel(); <-wdone }()
		d.waitWriters(t, 1)
		for i := range 5 {
			app.allow(perSnapshot / rec)
			snap, err := snapshotSetWithWriters(t, d.socket, fs.Mount)
			if err != nil {
				t.Fatalf("snapshot %d: %v", i, err)
			}
			sp := devicePath(t, conn, fs.Mount, snap)
			if sp.Consistency != "application" {
				t.Fatalf("snapshot %d consistency %s (%s)", i, sp.Consistency, sp.ConsistencyReason)
			}
			data, err := os.ReadFile(filepath.Join(sp.DevicePath, "records"))
			if err != nil {
				t.Fatal(err)
			}
			n := int(frozenAt.Load())
			if len(data) != n*rec {
				t.Fatalf("snapshot %d holds %d records, the application had committed %d at Freeze", i, len(data)/rec, n)
			}
			checkRecords(t, data, n)
		}
	})

	// Delete them all through a VSS_CTX_ALL session, as lvss delete does.
	err = client.Run(context.Background(), d.socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if err := bc.SetContext(ctx, vss.CtxAll); err != nil {
			return err
		}
		shadows, err := conn.ListShadows(ctx, uuid.Nil, fs.Mount)
		if err != nil {
			return err
		}
		for _, s := range shadows {
			if _, _, err := bc.DeleteSnapshots(ctx, s.SnapshotID, vss.ObjectSnapshot, false); err != nil {
				return err
			}
			if _, err := os.Stat(s.DevicePath); !os.IsNotExist(err) {
				return fmt.Errorf("%s still exists after delete: %v", s.DevicePath, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pauseWriter is the appending application's VSS writer: Freeze stops its
// appends (holds the app's lock) until Thaw or Abort.
type pauseWriter struct {
	path     string
	app      *appender
	frozenAt *atomic.Int64
	mu       sync.Mutex
	held     bool
}

func (w *pauseWriter) Identify(_ context.Context, md *writer.Metadata) error {
	if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, Name: "records", Selectable: true}); err != nil {
		return err
	}
	return md.AddFiles("", "records", w.path, "records", false, "", 0)
}

func (w *pauseWriter) Freeze(context.Context, *writer.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.held {
		w.app.mu.Lock()
		w.held = true
		w.frozenAt.Store(int64(w.app.count))
	}
	return nil
}

func (w *pauseWriter) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held {
		w.held = false
		w.app.mu.Unlock()
	}
}

func (w *pauseWriter) Thaw(context.Context, *writer.Event) error  { w.release(); return nil }
func (w *pauseWriter) Abort(context.Context, *writer.Event) error { w.release(); return nil }

// TestCopyProviderRecordsConsistencyHonestly: the opt-in copy provider on
// ext4 (no reflink, no snapshots). With its writer frozen and nothing else
// writing, the copy is "application"; a file another process changes while
// it is copied makes it "none", naming the file; without writers it is
// "none" too.
func TestCopyProviderRecordsConsistencyHonestly(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", 256<<20)
	vol := filepath.Join(fs.Mount, "vol")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if err := os.WriteFile(filepath.Join(vol, fmt.Sprintf("f%03d", i)), make([]byte, 16<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := shortTimeouts + fmt.Sprintf("\n[providers.copy]\nvolumes = [%q]\nsnapshot_dir = %q\n", vol, filepath.Join(fs.Mount, "copies"))
	d := startDaemon(t, cfg)
	conn, err := client.Dial(context.Background(), d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	consistency := func(snap uuid.UUID) client.SnapshotProp {
		t.Helper()
		sp := devicePath(t, conn, vol, snap)
		if sp.ProviderName != "copy" {
			t.Fatalf("provider %s", sp.ProviderName)
		}
		return sp
	}

	// No writer at all.
	snap, err := snapshotSet(t, d.socket, vol, vss.CtxNASRollback)
	if err != nil {
		t.Fatal(err)
	}
	if sp := consistency(snap); sp.Consistency != "none" {
		t.Fatalf("writerless copy: %s (%s)", sp.Consistency, sp.ConsistencyReason)
	}

	// A writer with a component on the volume, nothing else writing.
	wvol := &pauseWriter{path: vol, app: &appender{}, frozenAt: new(atomic.Int64)}
	ctx, cancel := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		_ = writer.Run(ctx, writer.Options{Socket: d.socket}, writer.Identity{
			ClassID: uuid.NewSHA1(uuid.NameSpaceURL, []byte("lvss:e2e:copy")), Name: "volwriter"}, wvol)
	}()
	defer func() { cancel(); <-wdone }()
	d.waitWriters(t, 1)
	snap, err = snapshotSetWithWriters(t, d.socket, vol)
	if err != nil {
		t.Fatal(err)
	}
	if sp := consistency(snap); sp.Consistency != "application" {
		t.Fatalf("quiet copy under its writer: %s (%s)", sp.Consistency, sp.ConsistencyReason)
	}

	// Another process keeps rewriting a file during the copy. Whether one
	// of its writes lands between the copy of that file and the check
	// after the copy (some 20 ms) is up to the scheduler on a busy
	// machine, so the set is taken again until one does; every set is
	// either marked "none" naming the file, or was untouched and is
	// application-consistent — never anything else.
	hot := filepath.Join(vol, "f150")
	stop := make(chan struct{})
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = os.WriteFile(hot, []byte(strconv.Itoa(i)), 0o644)
		}
	}()
	defer func() { close(stop); <-busy }()
	var seen []string
	for range 20 {
		snap, err = snapshotSetWithWriters(t, d.socket, vol)
		if err != nil {
			t.Fatal(err)
		}
		sp := consistency(snap)
		seen = append(seen, sp.Consistency)
		switch {
		case sp.Consistency == "none" && strings.Contains(sp.ConsistencyReason, hot):
			return
		case sp.Consistency != "application":
			t.Fatalf("copy with a file changing under it: %s (%s)", sp.Consistency, sp.ConsistencyReason)
		}
	}
	t.Fatalf("20 copies with a file rewritten all the time, none marked inconsistent: %v", seen)
}
