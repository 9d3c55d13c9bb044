//go:build faultmatrix

package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// The fault matrix (docs/reliability.md, "Fault matrix"): one backup per
// cell, each with one fault at one failpoint of the creation path, over
// real parts — a loop btrfs holding a SQLite database (examples/bankapp
// under `lvss-writer sqlite`) and a PostgreSQL cluster (under `lvss-writer
// postgres`), both written to all along, and a loop XFS snapshotted by an
// exec provider that clones its image, so that the freeze guard really
// freezes a filesystem. A third writer, in the test process, declares a
// directory on the XFS and is the writer that can be made to hang.
//
// After each cell the same checks: nothing frozen (no freeze record, and a
// child process writes to each volume within a bound), no application lock
// held (BEGIN IMMEDIATE on the SQLite database; no lock and no open
// transaction of the PostgreSQL writer's sessions), no orphan snapshot (the
// catalog, btrfs's .lvss-snapshots and the exec provider's clones agree,
// and hold nothing once the auto-release session is gone), and the next
// backup works and is application-consistent.
//
// The outcome of every cell goes into the table of docs/reliability.md:
// LVSS_UPDATE_RELIABILITY=1 rewrites it, otherwise the test fails when the
// committed table differs from what the run found.

// fault is what goes wrong at a failpoint.
type fault string

const (
	fKillLvssd     fault = "SIGKILL lvssd"
	fKillRequester fault = "SIGKILL requester"
	fKillWriter    fault = "SIGKILL writer"
	fStopWriter    fault = "SIGSTOP writer"
	fError         fault = "error"
	fHang          fault = "hang"
)

// matrixFaults are the table's columns, in order.
var matrixFaults = []fault{fKillLvssd, fKillRequester, fKillWriter, fStopWriter, fError, fHang}

// matrixPoints are the table's rows: the failpoints of a backup's creation
// path, in the order a backup reaches them. The writer rows act on the
// SQLite writer (writer.EVENT@sqlite: the one the test kills and stops),
// except for hang, which the in-process writer does by blocking in its
// handler (fmHangEvents).
var matrixPoints = []string{
	"writer.PrepareForBackup",
	"catalog.journal",
	"create.prepare-snapshot",
	"writer.PrepareForSnapshot",
	"create.end-prepare",
	"provider.EndPrepareSnapshots",
	"create.freeze",
	"writer.Freeze",
	"create.pre-commit",
	"provider.PreCommitSnapshots",
	"create.commit",
	"provider.CommitSnapshots",
	"create.commit.done",
	"create.post-commit",
	"provider.PostCommitSnapshots",
	"create.thaw",
	"writer.Thaw",
	"create.pre-final-commit",
	"provider.PreFinalCommitSnapshots",
	"create.post-snapshot",
	"writer.PostSnapshot",
	"create.post-final-commit",
	"provider.PostFinalCommitSnapshots",
	"create.record",
	"create.record.done",
	"writer.BackupComplete",
}

// cancellable says whether lvssd stands at point on a context that the
// requester's end cancels: before the commit, and in BackupComplete
// (after the commit a creation finishes whatever the requester does).
func cancellable(point string) bool {
	return slices.Index(matrixPoints, point) < slices.Index(matrixPoints, "create.commit") || point == "writer.BackupComplete"
}

// applies says whether a cell is in the matrix: hang is a provider's (the
// failpoint blocks until the call's context ends) or a writer's (the SDK
// writer blocks in its handler); a create.* or catalog.* step has no one
// to hang.
func applies(point string, f fault) bool {
	if f == fHang {
		return strings.HasPrefix(point, "provider.") || strings.HasPrefix(point, "writer.")
	}
	return true
}

// fmConfig is lvssd's configuration for the matrix: short deadlines, so
// that a hung writer or provider costs seconds, and the exec provider.
func fmConfig(volume, image, clones string) string {
	return fmt.Sprintf(`
[timeouts]
identify = "5s"
prepare_backup = "3s"
prepare_snapshot = "3s"
freeze = "6s"
thaw = "3s"
post_snapshot = "3s"
backup_complete = "3s"
backup_shutdown = "3s"
abort = "3s"
hold = "2s"
provider_call = "3s"

[providers]
order = ["btrfs", "exec"]

[[providers.exec]]
name = "image-clone"
volumes = [%[1]q]
timeout = "2s"
other_timeout = "5s"
commit = '''
set -eu
cp --reflink=auto --sparse=always -- %[2]q "%[3]s/$LVSS_SNAPSHOT_ID_1.img"
printf '%%s\n' "%[3]s/$LVSS_SNAPSHOT_ID_1.img"
'''
delete = 'rm -f -- "$LVSS_SNAPSHOT_HANDLE"'
list = 'for f in %[3]s/*.img; do if [ -e "$f" ]; then printf "%%s\n" "$f"; fi; done'
`, volume, image, clones)
}

// fmEnv is the matrix's world: volumes, applications, writers and lvssd.
type fmEnv struct {
	btrfs, xfs *testenv.FS
	clones     string
	db         string // the SQLite database
	pg         *testenv.Postgres
	sdkDir     string // the in-process writer's directory on the XFS
	work       string
	opts       lvssdtest.DaemonOptions
	d          *lvssdtest.Daemon
	sqliteW    *proc
	sdk        *hangWriter
	pgLoadErr  atomic.Value
}

// hangWriter is the in-process writer: a directory on the XFS. When hangAt
// is set, its handler for that event blocks until the test releases it: a
// writer that does not answer.
type hangWriter struct {
	quietWriter
	dir     string
	mu      sync.Mutex
	hangAt  writer.EventType
	entered chan struct{}
	release chan struct{}
}

func (w *hangWriter) Identify(_ context.Context, md *writer.Metadata) error {
	if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, Name: "data", Selectable: true}); err != nil {
		return err
	}
	return md.AddFiles("", "data", w.dir, "*", true, "", vss.DefaultFileBackupTypeMask)
}

// arm makes the next handler of t block; it returns a channel closed once
// it does.
func (w *hangWriter) arm(t writer.EventType) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hangAt, w.entered, w.release = t, make(chan struct{}), make(chan struct{})
	return w.entered
}

// disarm releases a blocked handler and blocks no more.
func (w *hangWriter) disarm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.release != nil {
		close(w.release)
		w.release = nil
	}
	w.hangAt = 0
}

func (w *hangWriter) maybeHang(ctx context.Context, t writer.EventType) error {
	w.mu.Lock()
	if w.hangAt != t {
		w.mu.Unlock()
		return nil
	}
	entered, release := w.entered, w.release
	w.hangAt = 0
	w.mu.Unlock()
	close(entered)
	// Not even the event's deadline ends it: a writer that answers late
	// (the SDK's own timeout failure) and one that never answers race at
	// that deadline, and the matrix wants the one that never answers.
	<-release
	return nil
}

func (w *hangWriter) PrepareBackup(ctx context.Context, ev *writer.Event, _ *writer.Components) error {
	return w.maybeHang(ctx, writer.EventPrepareBackup)
}

func (w *hangWriter) PrepareSnapshot(ctx context.Context, ev *writer.Event) error {
	return w.maybeHang(ctx, writer.EventPrepareSnapshot)
}

func (w *hangWriter) Freeze(ctx context.Context, ev *writer.Event) error {
	return w.maybeHang(ctx, writer.EventFreeze)
}

func (w *hangWriter) Thaw(ctx context.Context, ev *writer.Event) error {
	return w.maybeHang(ctx, writer.EventThaw)
}

func (w *hangWriter) PostSnapshot(ctx context.Context, ev *writer.Event, _ *writer.Components) error {
	return w.maybeHang(ctx, writer.EventPostSnapshot)
}

func (w *hangWriter) BackupComplete(ctx context.Context, ev *writer.Event, _ *writer.Components) error {
	return w.maybeHang(ctx, writer.EventBackupComplete)
}

// fmHangEvents maps the writer rows to the in-process writer's events.
var fmHangEvents = map[string]writer.EventType{
	"writer.PrepareForBackup":   writer.EventPrepareBackup,
	"writer.PrepareForSnapshot": writer.EventPrepareSnapshot,
	"writer.Freeze":             writer.EventFreeze,
	"writer.Thaw":               writer.EventThaw,
	"writer.PostSnapshot":       writer.EventPostSnapshot,
	"writer.BackupComplete":     writer.EventBackupComplete,
}

func newFaultMatrixEnv(t *testing.T) *fmEnv {
	t.Helper()
	e := &fmEnv{work: t.TempDir()}
	e.btrfs = testenv.LoopFS(t, "btrfs", 1<<30)
	e.xfs = testenv.LoopFS(t, "xfs", 320<<20)
	e.clones = filepath.Join(filepath.Dir(e.xfs.Image), "clones")
	e.sdkDir = filepath.Join(e.xfs.Mount, "sdk")
	for _, d := range []string{e.clones, e.sdkDir, filepath.Join(e.btrfs.Mount, "app")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(e.sdkDir, "file"), []byte("sdk writer's data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("cp"); err != nil {
		testenv.Missing(t, "cp (coreutils)")
	}
	e.pg = testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: filepath.Join(e.btrfs.Mount, "pg", "data")})

	// One socket path for every lvssd of the matrix, so the writers'
	// reconnections find the restarted one.
	sockDir, err := os.MkdirTemp("", "lvss-fm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	e.opts = lvssdtest.DaemonOptions{Config: fmConfig(e.sdkDir, e.xfs.Image, e.clones),
		StateDir: filepath.Join(e.work, "state"), RunDir: filepath.Join(e.work, "run"),
		Socket: filepath.Join(sockDir, "lvssd.sock"), WithFailpoints: true}
	e.d = lvssdtest.StartDaemon(t, e.opts)

	e.db = filepath.Join(e.btrfs.Mount, "app", "bank.db")
	startBankApp(t, e.work, e.db)
	e.startSQLiteWriter(t)
	// No CHECKPOINT at PrepareForSnapshot: the snapshot is as consistent,
	// and the matrix makes some 300 backups.
	startPostgresWriter(t, e.d.Socket, e.work, e.pg.DSN("postgres"), "--checkpoint=false")
	e.startPgLoad(t)
	e.sdk = &hangWriter{dir: e.sdkDir}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		writer.Run(ctx, writer.Options{Socket: e.d.Socket, Retry: true, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
			writer.Identity{ClassID: uuid.MustParse("5d1f07c2-3b0e-4c55-9a51-6e0a0c6f7a11"), Name: "fm-sdk", Level: vss.LevelFrontEnd}, e.sdk)
	}()
	t.Cleanup(func() { e.sdk.disarm(); cancel(); <-done })
	e.d.WaitWriters(t, 3)
	return e
}

func (e *fmEnv) startSQLiteWriter(t *testing.T) {
	t.Helper()
	// A Freeze→Thaw window well inside the others' (6 s, lvssd's bound),
	// so that whose window ends first never depends on the machine's
	// speed: a stopped SQLite writer fails alone, and one frozen while
	// the in-process writer hangs has its window end first.
	e.sqliteW = startCmd(t, e.work, "sqlite-writer", exec.Command(lvssdtest.Bin(t, "lvss-writer"), "sqlite",
		"--socket", e.opts.Socket, "--log-level", "debug", "--db", e.db, "--freeze-timeout", "2s"))
}

// startPgLoad is the PostgreSQL application: one connection inserting a
// row every few milliseconds until the test ends.
func (e *fmEnv) startPgLoad(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(ctx, e.pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE load(id serial PRIMARY KEY, at timestamptz DEFAULT now())"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer conn.Close(context.Background())
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if _, err := conn.Exec(ctx, "INSERT INTO load DEFAULT VALUES"); err != nil && ctx.Err() == nil {
				e.pgLoadErr.Store(err)
				return
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// requester is one `lvss backup` of the three writers' data.
type requester struct {
	cmd        *exec.Cmd
	out, errb  bytes.Buffer
	done       chan struct{}
	code       int
	killedByUs bool
}

func (e *fmEnv) startBackup(t *testing.T) *requester {
	t.Helper()
	r := &requester{done: make(chan struct{})}
	r.cmd = exec.Command(lvssdtest.Bin(t, "lvss"), "--socket", e.opts.Socket, "--json", "backup",
		"--writer", "sqlite", "--writer", "postgres", "--writer", "fm-sdk", "--timeout", "60s", "--", "true")
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.errb
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.cmd.Wait()
		r.code = r.cmd.ProcessState.ExitCode()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.done
		}
	})
	return r
}

func (r *requester) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *requester) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("%s: lvss backup did not end\nstdout: %s\nstderr: %s", what, r.out.String(), r.errb.String())
	}
}

// outcome says, deterministically, how the backup ended: its exit
// status and the VSS error it reported, the consistency levels of the
// snapshots it made, and the writers that failed with their failures.
func (r *requester) outcome() string {
	if r.killedByUs {
		return "requester killed"
	}
	out := fmt.Sprintf("exit %d", r.code)
	for _, l := range strings.Split(r.errb.String(), "\n") {
		var e struct {
			Error *struct {
				Name string `json:"name"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Error != nil {
			out += " " + e.Error.Name
		}
	}
	var sum backupSummary
	if json.Unmarshal(r.out.Bytes(), &sum) != nil {
		return out
	}
	levels := map[string]bool{}
	for _, s := range sum.Snapshots {
		levels[s.Consistency] = true
	}
	var ls []string
	for l := range levels {
		ls = append(ls, l)
	}
	slices.Sort(ls)
	if len(ls) > 0 {
		out += ", snapshots " + strings.Join(ls, "+")
	}
	var failed []string
	for _, w := range sum.Writers {
		if w.Failure != "" && w.Failure != "S_OK" {
			failed = append(failed, fmt.Sprintf("%s %s", w.Name, w.Failure))
		}
	}
	slices.Sort(failed)
	if len(failed) > 0 {
		out += ", writer failed: " + strings.Join(failed, ", ")
	}
	return out
}

// cellResult is one cell of the table.
type cellResult struct {
	backup, recovery, leak string
}

func (c cellResult) String() string {
	s := c.backup
	if c.recovery != "" {
		s += "; at restart: " + c.recovery
	}
	if c.leak != "" {
		s += "; **" + c.leak + "**"
	}
	return s
}

// knownGaps are the cells that leave something behind today, each with
// the reason; the table shows them. A leak in any other cell fails the
// test.
var knownGaps = map[string]string{}

// runCell makes one backup with the fault at the point and returns how it
// ended, after restoring what the fault took away (lvssd, the writer).
func (e *fmEnv) runCell(t *testing.T, point string, f fault) cellResult {
	t.Helper()
	target := point
	if strings.HasPrefix(point, "writer.") {
		target = point + "@sqlite"
	}
	var res cellResult
	switch f {
	case fKillLvssd:
		e.d.SetFailpoints(t, target+"=kill")
	case fError:
		e.d.SetFailpoints(t, target+"=error")
	case fHang:
		if strings.HasPrefix(point, "writer.") {
			e.d.SetFailpoints(t, "")
			e.sdk.arm(fmHangEvents[point])
		} else {
			e.d.SetFailpoints(t, target+"=hang")
		}
	default:
		e.d.SetFailpoints(t, target+"=pause")
	}
	released := e.releases(t)
	r := e.startBackup(t)
	switch f {
	case fKillLvssd:
		select {
		case <-e.d.Proc.Done():
		case <-r.done:
			// The requester sees lvssd's death at once: lvssd must be gone.
			select {
			case <-e.d.Proc.Done():
			case <-time.After(10 * time.Second):
				t.Fatalf("the backup ended before lvssd reached %s: %s\n%s", point, r.out.String(), r.errb.String())
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("lvssd did not reach %s", point)
		}
	case fKillRequester, fKillWriter, fStopWriter:
		lvssdtest.Eventually(t, 60*time.Second, "lvssd to reach "+target, func() bool {
			if r.exited() {
				t.Fatalf("the backup ended before lvssd reached %s: %s\n%s", target, r.out.String(), r.errb.String())
			}
			return e.d.FailpointReached(target)
		})
		switch f {
		case fKillRequester:
			r.killedByUs = true
			syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			if cancellable(point) {
				// lvssd cancels the operation when the requester's
				// stream ends, and a pause on its context ends with
				// it: wait for that rather than race it with the
				// go-ahead.
				lvssdtest.Eventually(t, 30*time.Second, "lvssd to cancel the killed requester's operation at "+target, func() bool {
					return !e.d.FailpointReached(target)
				})
			}
		case fKillWriter:
			if err := e.sqliteW.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-e.sqliteW.Done()
		case fStopWriter:
			if err := e.sqliteW.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			// kill(2) returns before every thread has stopped: lvssd
			// goes on only once the whole writer is, or the writer
			// could still answer what lvssd sends next.
			waitStopped(t, e.sqliteW.Cmd.Process.Pid)
		}
		e.d.ReleaseFailpoint(t, target)
		lvssdtest.Eventually(t, 30*time.Second, "lvssd to go on from "+target, func() bool {
			return !e.d.FailpointReached(target) || e.d.Proc.Exited()
		})
	}
	r.wait(t, point+" "+string(f))
	res.backup = r.outcome()
	if f == fKillRequester {
		// What lvssd did when the requester's stream ended: its
		// release of the session.
		var rel map[string]string
		lvssdtest.Eventually(t, 30*time.Second, "lvssd to release the killed requester's session", func() bool {
			all := e.releasesFields(t)
			if len(all) > released {
				rel = all[released]
				return true
			}
			return false
		})
		res.backup += fmt.Sprintf("; lvssd released its session: aborted %s, %s snapshot(s) deleted", rel["aborted"], cmpOr(rel["deleted_snapshots"], "0"))
	}
	switch f {
	case fKillLvssd:
		e.d = lvssdtest.StartDaemon(t, e.opts)
		res.recovery = e.recoveryActions(t)
	case fKillWriter:
		e.startSQLiteWriter(t)
	case fStopWriter:
		if err := e.sqliteW.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	case fHang:
		e.sdk.disarm()
	}
	e.d.SetFailpoints(t, "")
	return res
}

// releases counts the sessions lvssd's event log says it released.
func (e *fmEnv) releases(t *testing.T) int { return len(e.releasesFields(t)) }

// releasesFields are the fields of each "session released" event, oldest
// first.
func (e *fmEnv) releasesFields(t *testing.T) []map[string]string {
	t.Helper()
	var out []map[string]string
	for _, ev := range lvssdtest.Events(t, e.d.Socket) {
		if ev.Message == "session released" {
			out = append(out, ev.Fields)
		}
	}
	return out
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// recoveryActions names what the restarted lvssd's recovery did, each
// action once, in a fixed order.
func (e *fmEnv) recoveryActions(t *testing.T) string {
	t.Helper()
	st := statusRecovery(t, e.d.Socket)
	seen := map[string]bool{}
	var out []string
	for _, a := range st.Recovery.Actions {
		if !seen[a.Action] {
			seen[a.Action] = true
			out = append(out, a.Action)
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return "nothing to do"
	}
	return strings.Join(out, ", ")
}

// checkClean is what every cell must leave: nothing frozen, no lock held,
// no orphan snapshot (what is left is returned), and a next backup that
// is application-consistent.
func (e *fmEnv) checkClean(t *testing.T, what string) (leak string) {
	t.Helper()
	leak = e.checkNothingHeld(t, what)
	if got := e.nextBackup(t, what); got != "exit 0, snapshots application" {
		t.Fatalf("%s: the next backup: %s", what, got)
	}
	return leak
}

// checkNothingHeld checks that nothing is frozen and no application lock
// is held, and returns what snapshots are left that the catalog does not
// list ("" when none), after removing them.
func (e *fmEnv) checkNothingHeld(t *testing.T, what string) (leak string) {
	t.Helper()
	e.d.WaitWriters(t, 3)
	// Nothing frozen: no freeze record, and a write to each volume from a
	// child process ends within a bound.
	lvssdtest.Eventually(t, 15*time.Second, what+": no freeze record in the run directory", func() bool {
		recs, _ := filepath.Glob(filepath.Join(e.opts.RunDir, "freeze", "*.json"))
		return len(recs) == 0
	})
	for _, vol := range []string{e.btrfs.Mount, e.xfs.Mount} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, "sh", "-c", `echo probe >> "$1/.fm-probe" && sync -f "$1/.fm-probe"`, "sh", vol).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: a write to %s did not complete (frozen?): %v %s", what, vol, err, out)
		}
	}
	// No application lock: SQLite's write lock can be taken; the
	// PostgreSQL writer's sessions hold no lock and no transaction.
	db, err := sql.Open("sqlite", "file:"+e.db+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer db.Close()
		conn, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
			t.Fatalf("%s: BEGIN IMMEDIATE on the SQLite database: %v", what, err)
		}
		conn.ExecContext(context.Background(), "ROLLBACK")
	}()
	lvssdtest.Eventually(t, 15*time.Second, what+": the PostgreSQL writer holding no lock or transaction", func() bool {
		return e.pgWriterHolds(t) == 0
	})
	if err, _ := e.pgLoadErr.Load().(error); err != nil {
		t.Fatalf("%s: the PostgreSQL application's insert failed: %v", what, err)
	}
	// No orphan: once the session is gone, neither provider holds a
	// snapshot and the catalog lists none. What is left is reported (and
	// removed, so the next cells start clean): the caller decides whether
	// it is a known gap.
	clean := func() bool {
		return len(listShadowIDs(t, e.d.Socket)) == 0 && len(btrfsSnapshots(t, e.btrfs.Mount)) == 0 && len(e.clonesLeft()) == 0
	}
	end := time.Now().Add(20 * time.Second)
	for !clean() && time.Now().Before(end) {
		time.Sleep(20 * time.Millisecond)
	}
	if !clean() {
		if n := len(listShadowIDs(t, e.d.Socket)); n > 0 {
			t.Fatalf("%s: the catalog still lists %d snapshots after the session ended", what, n)
		}
		var left []string
		if n := len(btrfsSnapshots(t, e.btrfs.Mount)); n > 0 {
			left = append(left, fmt.Sprintf("%d btrfs snapshot(s)", n))
			for _, s := range btrfsSnapshots(t, e.btrfs.Mount) {
				exec.Command("btrfs", "subvolume", "delete", filepath.Join(e.btrfs.Mount, ".lvss-snapshots", s)).Run()
			}
		}
		if n := len(e.clonesLeft()); n > 0 {
			left = append(left, fmt.Sprintf("%d exec clone(s)", n))
			for _, c := range e.clonesLeft() {
				os.Remove(c)
			}
		}
		leak = "LEAK: " + strings.Join(left, ", ") + " the catalog does not list"
	}
	return leak
}

// nextBackup makes a backup without faults and returns its outcome once
// its snapshots are released (or the outcome with what they left).
func (e *fmEnv) nextBackup(t *testing.T, what string) string {
	t.Helper()
	e.d.WaitWriters(t, 3) // they reconnect to a restarted lvssd
	r := e.startBackup(t)
	r.wait(t, what+": the next backup")
	got := r.outcome()
	if got != "exit 0, snapshots application" {
		t.Logf("%s: the next backup: %s\n%s\n%s", what, got, r.out.String(), r.errb.String())
	}
	if leak := e.checkNothingHeld(t, what+": after the next backup"); leak != "" {
		got += "; " + leak
	}
	return got
}

func (e *fmEnv) clonesLeft() []string {
	m, _ := filepath.Glob(filepath.Join(e.clones, "*.img"))
	return m
}

// pgWriterHolds counts the locks (other than their own transaction IDs)
// and open transactions of the writer's sessions.
func (e *fmEnv) pgWriterHolds(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		         WHERE a.application_name = 'lvss-writer' AND l.locktype NOT IN ('virtualxid'))
		     + (SELECT count(*) FROM pg_stat_activity
		         WHERE application_name = 'lvss-writer' AND xact_start IS NOT NULL AND pid <> pg_backend_pid())`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dirResult is one row of the directories' table.
type dirResult struct {
	condition, during, after string
}

// dirFaults breaks lvssd's own directories under it: the state directory
// full and read-only (on a small ext4 of its own), the run directory
// removed. A backup while the condition lasts must fail cleanly (a VSS
// error, nothing frozen, locked or left behind) or work; once the
// condition is fixed, the next backup must work.
func (e *fmEnv) dirFaults(t *testing.T) []dirResult {
	t.Helper()
	// No reserved blocks: lvssd runs as root and would write into them.
	small := testenv.LoopFS(t, "ext4", 32<<20, "-m", "0")
	e.d.Proc.Stop(t)
	e.opts.StateDir = filepath.Join(small.Mount, "state")
	e.d = lvssdtest.StartDaemon(t, e.opts)
	if leak := e.checkClean(t, "the state directory on a small ext4"); leak != "" {
		t.Fatal(leak)
	}
	fill := filepath.Join(small.Mount, "fill")
	mount := func(args ...string) {
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v: %v %s", args, err, out)
		}
	}
	var out []dirResult
	during := func(cond string) string {
		e.d.WaitWriters(t, 3)
		r := e.startBackup(t)
		r.wait(t, cond)
		got := r.outcome()
		if leak := e.checkNothingHeld(t, cond); leak != "" {
			got += "; " + leak
		}
		return got
	}

	// Full: a file takes every free block.
	cond := "state directory full (ENOSPC)"
	// Both end with ENOSPC; the second takes what the first left.
	exec.Command("dd", "if=/dev/zero", "of="+fill, "bs=1M").Run()
	exec.Command("dd", "if=/dev/zero", "of="+fill+"2", "bs=1k").Run()
	res := dirResult{condition: cond, during: during(cond)}
	for _, f := range []string{fill, fill + "2"} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	res.after = e.nextBackup(t, cond+", fixed")
	out = append(out, res)

	// Read-only: a filesystem with a file open for writing cannot be
	// remounted read-only, so lvssd is stopped, and started again over
	// the read-only state directory.
	cond = "state directory read-only (remount ro; lvssd restarted)"
	e.d.Proc.Stop(t)
	mount("-o", "remount,ro", small.Mount)
	res = dirResult{condition: cond, during: e.startRefused(t)}
	mount("-o", "remount,rw", small.Mount)
	e.d = lvssdtest.StartDaemon(t, e.opts)
	res.after = e.nextBackup(t, cond+", fixed")
	out = append(out, res)

	// The run directory removed under a running lvssd (a tmpfs cleaner,
	// an operator): the freeze records, the journal's step files and the
	// exec provider's TMPDIRs live there.
	cond = "run directory removed under a running lvssd"
	if err := os.RemoveAll(e.opts.RunDir); err != nil {
		t.Fatal(err)
	}
	e.d.WaitWriters(t, 3)
	res = dirResult{condition: cond, during: during(cond)}
	res.after = e.nextBackup(t, cond+", a second backup")
	out = append(out, res)

	// Back to the matrix's state directory.
	e.d.Proc.Stop(t)
	return out
}

// startRefused starts lvssd over e.opts expecting it not to start, and
// says how it ended: its exit status and its last line.
func (e *fmEnv) startRefused(t *testing.T) string {
	t.Helper()
	cfg := filepath.Join(e.work, "refused.toml")
	if err := os.WriteFile(cfg, []byte(e.opts.Config), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, lvssdtest.Bin(t, "lvssd-failpoints"), "--socket", e.opts.Socket,
		"--state-dir", e.opts.StateDir, "--run-dir", e.opts.RunDir, "--config", cfg)
	b, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("lvssd started (or did not end) over a read-only state directory: %v\n%s", err, b)
	}
	t.Logf("lvssd over a read-only state directory: %v\n%s", err, b)
	if !strings.Contains(string(b), "hint: the catalog is not damaged") {
		t.Errorf("lvssd's hint for a read-only state directory does not say the catalog is not damaged:\n%s", b)
	}
	first, _, _ := strings.Cut(strings.ReplaceAll(string(b), e.opts.StateDir, "STATE"), "\n")
	return fmt.Sprintf("lvssd does not start (exit %d): `%s`", cmd.ProcessState.ExitCode(), first)
}

// TestFaultMatrix runs every cell of the matrix and checks (or, with
// LVSS_UPDATE_RELIABILITY=1, rewrites) its table in docs/reliability.md.
func TestFaultMatrix(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.SkipIfShort(t, "the fault matrix makes about 300 backups")
	e := newFaultMatrixEnv(t)
	if leak := e.checkClean(t, "before the matrix"); leak != "" {
		t.Fatal(leak)
	}
	// LVSS_FAULTMATRIX_CELLS (a regular expression over "POINT / FAULT")
	// runs only the cells it matches, when working on one; the document
	// is then neither checked nor written.
	only := regexp.MustCompile(os.Getenv("LVSS_FAULTMATRIX_CELLS"))
	all := os.Getenv("LVSS_FAULTMATRIX_CELLS") == ""
	results := map[string]map[fault]cellResult{}
	for _, p := range matrixPoints {
		results[p] = map[fault]cellResult{}
		for _, f := range matrixFaults {
			what := p + " / " + string(f)
			if !applies(p, f) || !only.MatchString(what) {
				continue
			}
			t0 := time.Now()
			res := e.runCell(t, p, f)
			t1 := time.Now()
			if leak := e.checkClean(t, what); leak != "" {
				res.leak = leak
				if knownGaps[what] == "" {
					t.Errorf("%s: %s", what, leak)
				}
			}
			t.Logf("%-34s %-18s %s (cell %s, checks %s)", p, f, res, t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
			results[p][f] = res
		}
	}
	var dirs []dirResult
	if all || only.MatchString("directories") {
		dirs = e.dirFaults(t)
		for _, d := range dirs {
			t.Logf("%s: during: %s; after: %s", d.condition, d.during, d.after)
		}
	}
	if all {
		checkReliabilityDoc(t, renderMatrix(results, dirs))
	}
}

// renderMatrix writes the table region of docs/reliability.md: only what
// is deterministic (the fault, the failpoint, how the backup ended and
// what recovery did), no timings.
func renderMatrix(results map[string]map[fault]cellResult, dirs []dirResult) string {
	var b strings.Builder
	b.WriteString(`## Fault matrix

Generated by TestFaultMatrix (test/e2e/faultmatrix_test.go, ` + "`make test-faultmatrix`" + `);
do not edit: ` + "`LVSS_UPDATE_RELIABILITY=1 make test-faultmatrix`" + ` rewrites it, and the
test fails when this table differs from what a run finds.

Each cell is one ` + "`lvss backup --writer sqlite --writer postgres --writer fm-sdk -- true`" + `
over real parts: a loop btrfs holding a SQLite database under
examples/bankapp's writes (` + "`lvss-writer sqlite`" + `) and a PostgreSQL cluster
under inserts (` + "`lvss-writer postgres`" + `), and a loop XFS that an exec provider
snapshots by cloning its image inside the freeze guard's hold, with an SDK
writer (` + "`fm-sdk`" + `, front-end) on it. The fault strikes at the failpoint
(internal/failpoint): **SIGKILL lvssd** (the ` + "`kill`" + ` action; lvssd is then
restarted over the same state and run directories), **SIGKILL requester**,
**SIGKILL writer** and **SIGSTOP writer** (the SQLite writer's process, while
lvssd is paused there; writer rows pause at that writer's event;
SIGCONT once the backup ended), **error** (the step, provider call or
writer event fails), **hang** (provider rows: the call never returns until
its context ends; writer rows: the SDK writer's handler blocks).

After every cell the test checks, and every cell below passed: nothing
frozen (no freeze record in the run directory; a child process's write to
each volume completes), no application lock held (` + "`BEGIN IMMEDIATE`" + ` on
the SQLite database succeeds; the PostgreSQL writer's sessions hold no lock
and no transaction), no orphan snapshot (the catalog, btrfs's
` + "`.lvss-snapshots`" + ` and the exec provider's clones agree, and hold nothing
once the backup's auto-release session is gone), and the next backup
succeeds with every snapshot application-consistent.

"exit N NAME" is ` + "`lvss backup`" + `'s exit status and the VSS error it
reported; "exit 0, LEVELS" a backup that ran its command, with the
consistency levels of its snapshots; "at restart" the recovery actions of
the next lvssd (docs/reliability.md, "Recovery at start").
`)
	for _, f := range matrixFaults {
		fmt.Fprintf(&b, "\n### %s\n\n| failpoint | outcome |\n|---|---|\n", f)
		for _, p := range matrixPoints {
			if !applies(p, f) {
				continue
			}
			fmt.Fprintf(&b, "| `%s` | %s |\n", p, results[p][f])
		}
	}
	b.WriteString(`
### lvssd's own directories

The state directory on a small ext4 of its own, the run directory removed:
a backup while the condition lasts, then the next backup once it is fixed
(the same checks after each).

| condition | backup while it lasts | once fixed |
|---|---|---|
`)
	for _, d := range dirs {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", d.condition, d.during, d.after)
	}
	return b.String()
}

const (
	matrixBegin = "<!-- fault-matrix:begin -->\n"
	matrixEnd   = "<!-- fault-matrix:end -->"
)

// checkReliabilityDoc compares the generated region of
// docs/reliability.md with table, or rewrites it when
// LVSS_UPDATE_RELIABILITY=1.
func checkReliabilityDoc(t *testing.T, table string) {
	t.Helper()
	file := filepath.Join("..", "..", "docs", "reliability.md")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, matrixBegin), strings.Index(doc, matrixEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q ... %q region", file, matrixBegin, matrixEnd)
	}
	i += len(matrixBegin)
	if doc[i:j] == table {
		return
	}
	if os.Getenv("LVSS_UPDATE_RELIABILITY") == "1" {
		if err := os.WriteFile(file, []byte(doc[:i]+table+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the fault matrix in %s", file)
		return
	}
	t.Errorf("the fault matrix in %s differs from this run's; run LVSS_UPDATE_RELIABILITY=1 make test-faultmatrix and review the diff.\n--- this run:\n%s", file, table)
}
