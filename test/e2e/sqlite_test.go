package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // the "sqlite" driver for the application and the checks

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writers/sqlite"
)

// The SQLite tests run the application and the writer as processes of
// their own (this test binary, re-executed): SQLite's locks are POSIX
// locks, which only another process sees, and killing the writer must not
// kill the application.
const (
	envSQLiteApp    = "LVSS_E2E_SQLITE_APP"    // database path: run the application
	envSQLiteAcks   = "LVSS_E2E_SQLITE_ACKS"   // where the application records each commit
	envSQLiteWriter = "LVSS_E2E_SQLITE_WRITER" // database path: run the writer
	envSQLiteLog    = "LVSS_E2E_SQLITE_LOG"    // the writer's JSON log
)

// TestHelperSQLiteApp is the application: transfers between accounts (the
// total never changes) and a counter incremented by every transaction, by
// several connections at once. After each commit it appends "counter
// ack-time" to the acknowledgement log. Its busy timeout (30 s) is longer
// than the freeze window, as docs/writer-sqlite.md requires; any error
// ends it with exit status 3.
func TestHelperSQLiteApp(t *testing.T) {
	path := os.Getenv(envSQLiteApp)
	if path == "" {
		return // only meaningful as a child process of the real test
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	die := func(err error) {
		fmt.Println("ERROR", err)
		os.Exit(3)
	}
	db, err := sql.Open("sqlite", "file:"+path+
		"?_pragma=busy_timeout(30000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)&_txlock=immediate")
	if err != nil {
		die(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(appWorkers + 1)
	if err := bankSchema(db); err != nil {
		die(err)
	}
	f, err := os.OpenFile(os.Getenv(envSQLiteAcks), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		die(err)
	}
	defer f.Close()
	acks := &ackLog{w: f}
	var (
		// With connections always reading and writing, SQLite's automatic
		// checkpoints never find a moment to start the -wal over, and it
		// grows by tens of MB a second (checkpoint starvation) until the
		// test volume is full. Like an application under such load, this
		// one pauses its own connections now and then (gate) to reset the
		// -wal with a TRUNCATE checkpoint; while frozen, that waits too.
		gate sync.RWMutex
		wg   sync.WaitGroup
	)
	for range appWorkers {
		wg.Go(func() {
			for ctx.Err() == nil {
				gate.RLock()
				n, err := transfer(db)
				gate.RUnlock()
				if err != nil {
					die(err)
				}
				// COMMIT has returned: the commit is acknowledged.
				if err := acks.record(n); err != nil {
					die(err)
				}
				if n%500 == 0 {
					gate.Lock()
					_, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
					gate.Unlock()
					if err != nil {
						die(err)
					}
				}
			}
		})
	}
	// A reader checks the invariant live; readers are never blocked.
	wg.Go(func() {
		for ctx.Err() == nil {
			var total int
			gate.RLock()
			err := db.QueryRow("SELECT sum(balance) FROM accounts").Scan(&total)
			gate.RUnlock()
			if err != nil {
				die(err)
			}
			if total != bankAccounts*bankOpening {
				die(fmt.Errorf("live total %d", total))
			}
			time.Sleep(time.Millisecond)
		}
	})
	fmt.Println("READY")
	wg.Wait()
}

func bankSchema(db *sql.DB) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'accounts'").Scan(&n); err != nil || n > 0 {
		return err
	}
	for _, s := range []string{
		"CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
		"CREATE TABLE counter(id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)",
		"INSERT INTO counter VALUES (1, 0)",
	} {
		if _, err := tx.Exec(s); err != nil {
			return err
		}
	}
	for i := range bankAccounts {
		if _, err := tx.Exec("INSERT INTO accounts VALUES (?, ?)", i, bankOpening); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// transfer moves a random amount between two accounts and counts the
// transaction; it returns the counter's new value.
func transfer(db *sql.DB) (int, error) {
	tx, err := db.Begin() // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	from, to, amount := rand.IntN(bankAccounts), rand.IntN(bankAccounts), 1+rand.IntN(50)
	if _, err := tx.Exec("UPDATE accounts SET balance = balance - ? WHERE id = ?", amount, from); err != nil {
		return 0, err
	}
	if _, err := tx.Exec("UPDATE accounts SET balance = balance + ? WHERE id = ?", amount, to); err != nil {
		return 0, err
	}
	var n int
	if err := tx.QueryRow("UPDATE counter SET n = n + 1 WHERE id = 1 RETURNING n").Scan(&n); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// TestHelperSQLiteWriter is the sqlite writer as its own process, logging
// JSON to $LVSS_E2E_SQLITE_LOG; SIGTERM ends it the way lvss-writer ends.
func TestHelperSQLiteWriter(t *testing.T) {
	path := os.Getenv(envSQLiteWriter)
	if path == "" {
		return
	}
	f, err := os.Create(os.Getenv(envSQLiteLog))
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(3)
	}
	log := slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	id, w, err := sqlite.New(sqlite.Config{Databases: []string{path}, Logger: log})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(3)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err = writer.Run(ctx, writer.Options{Socket: os.Getenv("LVSS_SOCKET"), Logger: log}, id, w)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(3)
	}
}

// startSelf runs one of the helper tests above as a process, with its
// output in dir/name.out.
func startSelf(t *testing.T, dir, name, test string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	return startCmd(t, dir, name, cmd)
}

// stop ends a helper with SIGTERM and fails t unless it exits cleanly.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		b, _ := os.ReadFile(p.out)
		t.Fatalf("%s: %v\n%s", filepath.Base(p.out), err, b)
	}
}

// bankApp is a running application process and its acknowledgement log.
type bankApp struct {
	db, acks string
	proc     *proc
}

func startBankApp(t *testing.T, work, db string) *bankApp {
	t.Helper()
	a := &bankApp{db: db, acks: filepath.Join(work, "acks")}
	a.proc = startSelf(t, work, "app", "TestHelperSQLiteApp", envSQLiteApp+"="+db, envSQLiteAcks+"="+a.acks)
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
	w := &sqliteWriterProc{log: filepath.Join(work, "writer.log")}
	w.proc = startSelf(t, work, "writer", "TestHelperSQLiteWriter",
		envSQLiteWriter+"="+db, envSQLiteLog+"="+w.log, "LVSS_SOCKET="+socket)
	return w
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
		time.Sleep(200 * time.Millisecond) // let the application run between backups
	}
	app.proc.stop(t) // exits non-zero if a commit failed (busy timeout too short, ...)
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
// A back-end writer that dawdles in Freeze keeps the sqlite writer
// (front-end, frozen first) frozen long enough to kill it.
func TestSQLiteWriterKilledWhileFrozen(t *testing.T) {
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	d := startDaemon(t, shortTimeouts)
	work := t.TempDir()
	dbPath := filepath.Join(fs.Mount, "bank.db")
	app := startBankApp(t, work, dbPath)
	w := startSQLiteWriter(t, work, d.socket, dbPath)
	d.startWriter(t, "slow", "back-end", "--sleep-at", "Freeze=4s")
	d.waitWriters(t, 2)

	done := make(chan error, 1)
	go func() {
		// The set's outcome is not the point: the writer dies in it.
		_, err := snapshotSetWithWriters(t, d.socket, fs.Mount)
		done <- err
	}()
	eventually(t, 15*time.Second, "the writer to take the lock", func() bool { return len(w.records(t, "write lock taken")) > 0 })
	// Commits made just before the lock may still be acknowledged (COMMIT
	// returns after the application's autocheckpoint); after that, none.
	time.Sleep(100 * time.Millisecond)
	frozen := len(app.read(t))
	time.Sleep(300 * time.Millisecond)
	if n := len(app.read(t)); n != frozen {
		t.Fatalf("the application committed %d transactions while the writer held the lock", n-frozen)
	}
	killed := time.Now()
	if err := w.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = w.proc.cmd.Wait()
	var resumed time.Time
	eventually(t, 5*time.Second, "the application's next commit", func() bool {
		for _, a := range app.read(t) {
			if a.at.After(killed) {
				resumed = a.at
				return true
			}
		}
		return false
	})
	took := resumed.Sub(killed)
	t.Logf("the application committed again %s after the frozen writer was killed", took.Round(time.Microsecond))
	if took > time.Second {
		t.Errorf("the application waited %s after the writer died", took)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the snapshot set did not end after the writer died")
	}
	app.proc.stop(t)
}

// TestSQLiteWriterMissingDatabaseFailsIdentify: a configured database that
// does not exist fails Identify with a message naming it; lvssd leaves the
// writer out of the metadata gathering and logs why.
func TestSQLiteWriterMissingDatabaseFailsIdentify(t *testing.T) {
	d := startDaemon(t, shortTimeouts)
	work := t.TempDir()
	missing := filepath.Join(work, "nowhere", "missing.db")
	startSQLiteWriter(t, work, d.socket, missing)
	ctx := context.Background()
	conn, err := client.Dial(ctx, d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, 15*time.Second, "the writer to subscribe", func() bool {
		ws, err := conn.ListWriters(ctx)
		return err == nil && len(ws) == 1
	})
	err = client.Run(ctx, d.socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if err := bc.SetBackupState(ctx, true, false, vss.BackupFull, false); err != nil {
			return err
		}
		a, err := bc.GatherWriterMetadata(ctx)
		if err == nil {
			err = a.Wait(ctx)
		}
		if err != nil {
			return err
		}
		n, err := bc.GetWriterMetadataCount(ctx)
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d writers gathered; the one failing Identify must be left out", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := missing + " does not exist"
	eventually(t, 5*time.Second, "lvssd's log of the failed Identify", func() bool {
		evs, err := conn.ListEvents(ctx, 0, 0)
		if err != nil {
			return false
		}
		for _, e := range evs {
			if e.Message == "writer failed Identify and is left out" && strings.Contains(e.Fields["error"], want) {
				t.Logf("lvssd: %s: %s", e.Message, e.Fields["error"])
				return true
			}
		}
		return false
	})
}
