package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // the "sqlite" driver for the application and the checks

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/writers/sqlite"
)

// The SQLite tests run the application (examples/bankapp) and the writer
// (lvss-writer sqlite) as processes of their own: SQLite's locks are
// POSIX locks, which only another process sees, and killing the writer
// must not kill the application.

// bankApp is a running application process and its acknowledgement log.
type bankApp struct {
	db, acks string
	proc     *proc
}

func startBankApp(t *testing.T, work, db string) *bankApp {
	t.Helper()
	a := &bankApp{db: db, acks: filepath.Join(work, "acks")}
	a.proc = startCmd(t, work, "app", exec.Command(filepath.Join(binaries(t), "bankapp"), "run", "--db", db, "--acks", a.acks))
	eventually(t, 20*time.Second, "the application's first commits", func() bool { return len(a.read(t)) >= 200 })
	return a
}

// read returns the acknowledgements so far, in counter order.
func (a *bankApp) read(t *testing.T) []ack { return readAcks(t, a.acks) }

// sqliteWriterProc is a writer helper process and its log.
type sqliteWriterProc struct {
	log  string
	proc *proc
}

func startSQLiteWriter(t *testing.T, work, socket, db string) *sqliteWriterProc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "lvss-writer"), "sqlite",
		"--socket", socket, "--log-format", "json", "--log-level", "debug", "--db", db)
	p := startCmd(t, work, "writer", cmd)
	return &sqliteWriterProc{log: p.Out, proc: p}
}

// records returns the writer's log records with the given message.
func (w *sqliteWriterProc) records(t *testing.T, msg string) []holdRecord {
	return logRecords(t, w.log, msg)
}

// backupResult is what one backup through the client saw.
type backupResult struct {
	session uuid.UUID
	copyDir string // the writable copy of the database's files
	copied  []string
}

// sqliteBackup is a requester: a component-mode full backup of the
// database's component on vol. It copies the component's files out of the
// snapshot, as a backup application would, before the snapshot goes.
func sqliteBackup(t *testing.T, socket, vol, db, copyDir string) backupResult {
	t.Helper()
	res := backupResult{copyDir: copyDir}
	r, err := componentBackup(t, socket, componentBackupSpec{
		classID:    sqlite.ClassID,
		components: []string{db},
		volumes:    []string{vol},
		copyOut: func(devices map[string]string, comps []*document.Component) error {
			for _, fd := range slices.Concat(comps[0].DatabaseFiles, comps[0].DatabaseLogFiles) {
				got, err := copyFileSet(devices[vol], vol, fd, copyDir)
				if err != nil {
					return err
				}
				res.copied = append(res.copied, got...)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	res.session = r.session
	return res
}

// copyFileSet copies the files of one file set from the snapshot (device,
// standing for vol) into dir, as they were named.
func copyFileSet(device, vol string, fd document.FileDesc, dir string) ([]string, error) {
	rel, err := filepath.Rel(vol, fd.Path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("file set %s is not on %s", fd.Path, vol)
	}
	src := filepath.Join(device, rel)
	ents, err := os.ReadDir(src)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if ok, _ := filepath.Match(fd.Filespec, e.Name()); !ok || !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%s (%d bytes)", e.Name(), len(b)))
	}
	return out, nil
}

// checkCopy opens the writable copy and returns its counter after checking
// integrity and the invariant.
func checkCopy(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var integrity string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check of the snapshot's copy: %q %v", integrity, err)
	}
	var accounts, total, n int
	if err := db.QueryRow("SELECT count(*), sum(balance) FROM accounts").Scan(&accounts, &total); err != nil {
		t.Fatal(err)
	}
	if accounts != bankAccounts || total != bankAccounts*bankOpening {
		t.Fatalf("the snapshot's copy has %d accounts holding %d, want %d holding %d", accounts, total, bankAccounts, bankAccounts*bankOpening)
	}
	if err := db.QueryRow("SELECT n FROM counter").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSQLiteWriterOnBtrfsUnderLoad is the integration test: the
// real lvssd, a btrfs loop volume holding the database, an application
// process writing to it under load, the sqlite writer as its own process,
// and backups through the Go client. Each snapshot's copy must open with
// integrity, keep the invariant, and hold exactly the commits made before
// the writer took the lock: every commit acknowledged before Freeze
// reached the writer is in it, and the first commit not in it was
// acknowledged only after the writer released the lock.
func TestSQLiteWriterOnBtrfsUnderLoad(t *testing.T) {
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	d := startDaemon(t, shortTimeouts)
	work := t.TempDir() // not on the snapshotted volume
	if err := os.MkdirAll(filepath.Join(fs.Mount, "bank"), 0o755); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(fs.Mount, "bank", "bank.db")
	app := startBankApp(t, work, dbPath)
	w := startSQLiteWriter(t, work, d.socket, dbPath)
	d.waitWriters(t, 1)

	const rounds = 3
	var results []backupResult
	for i := range rounds {
		dir := filepath.Join(work, fmt.Sprintf("copy%d", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		results = append(results, sqliteBackup(t, d.socket, fs.Mount, dbPath, dir))
		moreCommits(t, app.read, 20) // the application runs between backups
	}
	app.proc.Stop(t) // exits non-zero if a commit failed (busy timeout too short, ...)
	acks := app.read(t)
	released := w.records(t, "write lock released")

	for i, res := range results {
		rec := sessionRecord(t, released, res.session.String())
		if rec.By != "Thaw" {
			t.Fatalf("backup %d: the writer released the lock by %s, not Thaw", i, rec.By)
		}
		c := checkCopy(t, filepath.Join(res.copyDir, "bank.db"))
		t.Logf("backup %d: copied %v", i, res.copied)
		// BEGIN IMMEDIATE blocks every commit while held: the snapshot is
		// the database at the instant the writer took the lock (L28).
		checkCounter(t, fmt.Sprintf("backup %d", i), c, acks, rec, true)
	}
	t.Logf("the application made %d commits in all", len(acks))
}

// TestSQLiteWriterKilledWhileFrozen: SIGKILL of the writer process while it
// holds the database frozen; the kernel drops its locks with the process,
// so the application, blocked in its busy handler, commits again at once.
// A back-end writer that stays in Freeze until the test wakes it keeps the
// sqlite writer (front-end, frozen first) frozen meanwhile: nothing but the
// writer's death can release the application before that.
func TestSQLiteWriterKilledWhileFrozen(t *testing.T) {
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	d := startDaemon(t, frozenTimeouts(t))
	work := t.TempDir()
	dbPath := filepath.Join(fs.Mount, "bank.db")
	app := startBankApp(t, work, dbPath)
	w := startSQLiteWriter(t, work, d.socket, dbPath)
	slow := d.startDawdler(t, "back-end")
	d.waitWriters(t, 2)

	done := make(chan error, 1)
	go func() {
		// The set's outcome is not the point: the writer dies in it.
		_, err := snapshotSetWithWriters(t, d.socket, fs.Mount)
		done <- err
	}()
	slow.lw.WaitEntered(t, "Freeze", 1) // the sqlite writer's Freeze has answered
	if len(w.records(t, "write lock taken")) == 0 {
		t.Fatal("the sqlite writer answered Freeze without the lock")
	}
	// No commit while the writer holds the lock: the counter stays, and no
	// acknowledgement is of a later value (commits made just before the
	// lock may still be acknowledged: COMMIT returns after the
	// application's autocheckpoint).
	held := liveCounter(t, dbPath)
	time.Sleep(300 * time.Millisecond) // the window of the check, not a wait for anything
	if n := liveCounter(t, dbPath); n != held {
		t.Fatalf("the application committed %d transactions while the writer held the lock", n-held)
	}
	if acks := app.read(t); len(acks) > 0 && acks[len(acks)-1].n > held {
		t.Fatalf("commit %d was acknowledged while the writer held the lock at %d", acks[len(acks)-1].n, held)
	}
	killed := time.Now()
	if err := w.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = w.proc.Wait()
	// The set stays frozen (the back-end writer is still in Freeze), so
	// only the writer's death can let the application commit; 15 s only
	// ends a broken run.
	var resumed time.Time
	eventually(t, 15*time.Second, "the application's next commit", func() bool {
		for _, a := range app.read(t) {
			if a.n > held {
				resumed = a.at
				return true
			}
		}
		return false
	})
	t.Logf("the application committed again %s after the frozen writer was killed", resumed.Sub(killed).Round(time.Microsecond))
	slow.wake(t)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the snapshot set did not end after the writer died")
	}
	app.proc.Stop(t)
}

// liveCounter reads the counter of the application's live database: a
// reader in WAL mode waits for no lock, the writer's included.
func liveCounter(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT n FROM counter").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSQLiteWriterMissingDatabaseFailsIdentify: a configured database that
// does not exist fails Identify with a message naming it; lvssd leaves the
// writer out of the metadata gathering and logs why.
func TestSQLiteWriterMissingDatabaseFailsIdentify(t *testing.T) {
	d := startDaemon(t, shortTimeouts)
	work := t.TempDir()
	missing := filepath.Join(work, "nowhere", "missing.db")
	startSQLiteWriter(t, work, d.socket, missing)
	identifyLeftOut(t, d.socket, missing+" does not exist")
}
