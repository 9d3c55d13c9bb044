package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the "mysql" driver for the application and the checks
	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/writers/mysql"
)

// The MariaDB tests run the real `lvss-writer mysql` against the real
// lvssd and a real server (testenv.StartMariaDB) whose data directory is
// on a loopback btrfs. The application is the test process itself: its
// workers commit transfers over their own connections; the writer holds
// them in the server, whichever process they come from.

// mysqlReleased is the writer's hold record message.
const mysqlReleased = "mysql released"

// The writer's account: the privileges docs/writer-mysql.md asks for.
const (
	mysqlUser     = "lvss"
	mysqlPassword = "e2e-pw"
)

// mysqlServer starts a server with its data directory on vol, the
// writer's account and the bank: bankAccounts accounts of bankOpening
// each and a counter, all InnoDB. The password goes in a file for
// --password-file.
func mysqlServer(t *testing.T, vol, work string) (*testenv.MariaDB, string) {
	t.Helper()
	srv := testenv.StartMariaDB(t, testenv.MariaDBOptions{DataDir: filepath.Join(vol, "mysql")})
	var rows []string
	for i := 1; i <= bankAccounts; i++ {
		rows = append(rows, fmt.Sprintf("(%d,%d)", i, bankOpening))
	}
	srv.MustExec(fmt.Sprintf(`CREATE USER %[1]s@localhost IDENTIFIED BY '%[2]s';
		GRANT RELOAD, BINLOG MONITOR ON *.* TO %[1]s@localhost;
		CREATE DATABASE bank;
		CREATE TABLE bank.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB;
		CREATE TABLE bank.counter (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB;
		INSERT INTO bank.counter VALUES (1, 0);
		INSERT INTO bank.accounts VALUES %[3]s;`, mysqlUser, mysqlPassword, strings.Join(rows, ",")))
	pw := filepath.Join(work, "mysql.pw")
	if err := os.WriteFile(pw, []byte(mysqlPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, pw
}

// mysqlWriterProc is an `lvss-writer mysql` process; its stderr (JSON
// records) is in log.
type mysqlWriterProc struct {
	log  string
	proc *proc
}

func startMySQLWriter(t *testing.T, socket, dir, name, dsn string, extra ...string) *mysqlWriterProc {
	t.Helper()
	args := append([]string{"--socket", socket, "--log-format", "json", "--log-level", "debug", "mysql", "--dsn", dsn}, extra...)
	p := start(t, dir, "lvss-writer "+name, args...)
	return &mysqlWriterProc{log: p.Out, proc: p}
}

func (w *mysqlWriterProc) records(t *testing.T, msg string) []holdRecord {
	return logRecords(t, w.log, msg)
}

// mysqlBank is the application: appWorkers goroutines transferring money
// between accounts and counting their commits, each acknowledged commit
// logged. A transfer is one transaction: by default of several statements
// (the counter, then the accounts), or, with single set, one multi-table
// UPDATE. FLUSH TABLES WITH READ LOCK cannot be had while a transaction
// holds a row lock between two statements and another waits for that row
// (TestTransactionBetweenStatements in writers/mysql), so the ftwrl
// backups run with single statements.
type mysqlBank struct {
	acks   string
	db     *sql.DB
	single atomic.Bool
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

func startMySQLBank(t *testing.T, dsn, work string) *mysqlBank {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(appWorkers)
	f, err := os.Create(filepath.Join(work, "acks"))
	if err != nil {
		t.Fatal(err)
	}
	log := &ackLog{w: f}
	ctx, cancel := context.WithCancel(context.Background())
	b := &mysqlBank{acks: f.Name(), db: db, cancel: cancel}
	for range appWorkers {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for ctx.Err() == nil {
				transfer := mysqlTransfer
				if b.single.Load() {
					transfer = mysqlTransferOneStatement
				}
				n, err := transfer(ctx, db)
				if err == nil {
					err = log.record(n)
				}
				if err != nil && ctx.Err() == nil {
					b.mu.Lock()
					b.err = errors.Join(b.err, err)
					b.mu.Unlock()
					return
				}
			}
		}()
	}
	t.Cleanup(func() { b.stop(); f.Close(); db.Close() })
	eventually(t, 20*time.Second, "the application's first commits", func() bool { return len(b.read(t)) >= 200 })
	return b
}

// mysqlTransfer moves money between two accounts and counts the commit,
// in one transaction of four statements; it returns the counter value it
// committed. The counter row is locked first, so the transactions queue
// on it and never deadlock.
func mysqlTransfer(ctx context.Context, db *sql.DB) (int, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "UPDATE bank.counter SET n = LAST_INSERT_ID(n + 1) WHERE id = 1"); err != nil {
		return 0, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT LAST_INSERT_ID()").Scan(&n); err != nil {
		return 0, err
	}
	from, to := 1+rand.IntN(bankAccounts), 1+rand.IntN(bankAccounts)
	amount := 1 + rand.IntN(50)
	if _, err := tx.ExecContext(ctx, "UPDATE bank.accounts SET balance = balance - ? WHERE id = ?", amount, from); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE bank.accounts SET balance = balance + ? WHERE id = ?", amount, to); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// mysqlTransferOneStatement is the same transfer as one statement (an
// autocommit transaction): the counter's new value comes back as the
// statement's LAST_INSERT_ID.
func mysqlTransferOneStatement(ctx context.Context, db *sql.DB) (int, error) {
	from := 1 + rand.IntN(bankAccounts)
	to := 1 + (from+rand.IntN(bankAccounts-1))%bankAccounts // never from
	amount := 1 + rand.IntN(50)
	r, err := db.ExecContext(ctx, `UPDATE bank.counter c JOIN bank.accounts a ON a.id IN (?, ?)
		SET c.n = LAST_INSERT_ID(c.n + 1), a.balance = a.balance + IF(a.id = ?, -?, ?) WHERE c.id = 1`,
		from, to, from, amount, amount)
	if err != nil {
		return 0, err
	}
	n, err := r.LastInsertId()
	return int(n), err
}

func (b *mysqlBank) read(t *testing.T) []ack { return readAcks(t, b.acks) }

// stop ends the workers; end also fails t if a commit failed.
func (b *mysqlBank) stop() { b.cancel(); b.wg.Wait() }

func (b *mysqlBank) end(t *testing.T) {
	t.Helper()
	b.stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		t.Fatalf("the application failed: %v", b.err)
	}
}

// mysqlBackupResult is what a backup of the server saw.
type mysqlBackupResult struct {
	session  uuid.UUID
	position mysql.Position // from the component's backup metadata
	metadata string
}

// mysqlBackup is a requester: a component-mode full backup of the
// writer's component (the server) on vol, which copies the data directory
// out of the snapshot into copyDir and reads the component's backup
// metadata back from the Backup Components Document.
func mysqlBackup(t *testing.T, socket, vol, dataDir, copyDir string) mysqlBackupResult {
	t.Helper()
	r, err := componentBackup(t, socket, componentBackupSpec{
		classID: mysql.ClassID,
		volumes: []string{vol},
		copyOut: func(devices map[string]string, comps []*document.Component) error {
			if len(comps) != 1 || comps[0].Name != dataDir {
				return fmt.Errorf("the writer declares %d components (first %q), want one named %s", len(comps), comps[0].Name, dataDir)
			}
			return copyTree(devices[vol], vol, dataDir, copyDir)
		},
	})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	res := mysqlBackupResult{session: r.session}
	if len(r.written.Components) != 1 || r.written.Components[0].BackupMetadata == nil {
		t.Fatalf("the writer's component carries no backup metadata: %+v", r.written.Components)
	}
	res.metadata = *r.written.Components[0].BackupMetadata
	if res.position, err = mysql.ParsePosition(res.metadata); err != nil {
		t.Fatal(err)
	}
	return res
}

// gtidSeq is the sequence number of server 1 in domain 0 in a GTID
// position ("0-1-1234"): one per transaction the server logged.
func gtidSeq(t *testing.T, pos string) int {
	t.Helper()
	for _, g := range strings.Split(pos, ",") {
		f := strings.Split(strings.TrimSpace(g), "-")
		if len(f) == 3 && f[0] == "0" && f[1] == "1" {
			n, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("GTID position %q: %v", pos, err)
			}
			return n
		}
	}
	t.Fatalf("GTID position %q has no 0-1-N", pos)
	return 0
}

// checkMySQLCopy starts a second server on a copy of the data directory
// taken out of a snapshot: InnoDB's crash recovery must succeed, the
// tables check, the bank's invariant holds, and the binary log and GTID
// position are exactly those the writer recorded while it held the
// server. It returns the counter.
func checkMySQLCopy(t *testing.T, copyDir string, res mysqlBackupResult, baseSeq int) int {
	t.Helper()
	pos := res.position
	// The binary log in the snapshot ends where the writer read its end:
	// nothing was logged while commits were held.
	if pos.BinlogFile == "" {
		t.Fatalf("no binary log position in the backup metadata %s", res.metadata)
	}
	fi, err := os.Stat(filepath.Join(copyDir, pos.BinlogFile))
	if err != nil {
		t.Fatal(err)
	}
	if uint64(fi.Size()) != pos.BinlogPosition {
		t.Errorf("the snapshot's %s is %d bytes; the writer recorded position %d", pos.BinlogFile, fi.Size(), pos.BinlogPosition)
	}
	c := testenv.StartMariaDBCopy(t, copyDir, testenv.MariaDBOptions{})
	defer c.Stop()
	if out := c.MustExec("CHECK TABLE bank.accounts, bank.counter"); strings.Count(out, "status\tOK") != 2 {
		t.Errorf("CHECK TABLE on the copy:\n%s", out)
	}
	f := strings.Fields(c.MustExec("SELECT COUNT(*), SUM(balance) FROM bank.accounts"))
	if len(f) != 2 || f[0] != strconv.Itoa(bankAccounts) || f[1] != strconv.Itoa(bankAccounts*bankOpening) {
		t.Fatalf("the snapshot's copy has accounts and total %v, want %d holding %d", f, bankAccounts, bankAccounts*bankOpening)
	}
	n, err := strconv.Atoi(c.MustExec("SELECT n FROM bank.counter"))
	if err != nil {
		t.Fatal(err)
	}
	// After recovery the copy's binary log ends at the recorded GTID, and
	// every transaction up to it is in the data: the counter counts the
	// application's transactions, one GTID each.
	copyGTID := c.MustExec("SELECT @@gtid_binlog_pos")
	if copyGTID != pos.GTIDBinlogPos {
		t.Errorf("the copy's gtid_binlog_pos is %q, the writer recorded %q", copyGTID, pos.GTIDBinlogPos)
	}
	if got := gtidSeq(t, pos.GTIDBinlogPos) - baseSeq; got != n {
		t.Errorf("the recorded GTID %s is %d transactions after the load began, the copy's counter is %d", pos.GTIDBinlogPos, got, n)
	}
	// What the copy's server said about its recovery, for the log.
	var recovery []string
	for _, l := range strings.Split(c.Log(), "\n") {
		for _, what := range []string{"InnoDB: To recover", "rollback of recovered", "Recovering after a crash", "Aria engine: recovery done"} {
			if i := strings.Index(l, what); i >= 0 {
				recovery = append(recovery, strings.TrimSpace(l[i:]))
			}
		}
	}
	t.Logf("copy of session %s: recorded %s:%d gtid %s; the copy's server: %s", res.session, pos.BinlogFile, pos.BinlogPosition,
		pos.GTIDBinlogPos, strings.Join(recovery, "; "))
	return n
}

// waitNoWriters waits until lvssd lists no writer (a stopped one is
// gone), so that the next waitWriters sees the new one.
func (d *daemon) waitNoWriters(t *testing.T) {
	t.Helper()
	conn, err := client.Dial(context.Background(), d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, 10*time.Second, "no writers", func() bool {
		ws, err := conn.ListWriters(context.Background())
		return err == nil && len(ws) == 0
	})
}

// TestMySQLWriterOnBtrfsUnderLoad is the integration test: the
// real lvssd, MariaDB with its data directory on a btrfs loop volume, an
// application committing transfers, the mysql writer as its own process,
// and component-mode backups through the Go client, with each strategy.
// Each snapshot's data directory, copied out and started as a second
// server, must recover, hold the invariant and exactly the commits made
// before the writer held the server (checkCounter, blocksCommits), and
// match the binary log position and GTID the writer recorded in the
// component's backup metadata.
func TestMySQLWriterOnBtrfsUnderLoad(t *testing.T) {
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	d := startDaemon(t, shortTimeouts)
	work := t.TempDir() // not on the snapshotted volume
	srv, pw := mysqlServer(t, fs.Mount, work)
	baseSeq := gtidSeq(t, srv.MustExec("SELECT @@gtid_binlog_pos"))
	app := startMySQLBank(t, srv.DSN(srv.OSUser, ""), work)

	const rounds = 2
	type result struct {
		strategy string
		res      mysqlBackupResult
		copyDir  string
		w        *mysqlWriterProc
	}
	var results []result
	for _, strategy := range []string{"", "ftwrl"} {
		name := "backup-stage (default)"
		var extra []string
		if strategy != "" {
			name, extra = strategy, []string{"--strategy", strategy}
		}
		if strategy == "ftwrl" {
			app.single.Store(true)
		}
		w := startMySQLWriter(t, d.socket, work, strings.Fields(name)[0], srv.DSN(mysqlUser, ""), append(extra, "--password-file", pw)...)
		d.waitWriters(t, 1)
		if strategy == "" {
			listWritersShows(t, d.socket, "Writer name: 'mysql'", "Writer Id: "+mysql.ClassID.String(),
				srv.DataDir+" (VSS_CT_DATABASE)")
		}
		for i := range rounds {
			dir := filepath.Join(work, fmt.Sprintf("copy-%s-%d", strings.Fields(name)[0], i))
			res := mysqlBackup(t, d.socket, fs.Mount, srv.DataDir, dir)
			if want := mysql.StrategyBackupStage; strategy == "ftwrl" && res.position.Strategy != mysql.StrategyFTWRL ||
				strategy == "" && res.position.Strategy != want {
				t.Errorf("%s: the backup metadata says strategy %s", name, res.position.Strategy)
			}
			results = append(results, result{name, res, dir, w})
			moreCommits(t, app.read, 20) // the application runs between backups
		}
		w.proc.Stop(t)
		d.waitNoWriters(t)
	}
	moreCommits(t, app.read, 20)
	app.end(t)
	acks := app.read(t)

	for i, r := range results {
		rec := sessionRecord(t, r.w.records(t, mysqlReleased), r.res.session.String())
		if rec.By != "Thaw" {
			t.Fatalf("backup %d: the writer released the server by %s, not Thaw", i, rec.By)
		}
		label := fmt.Sprintf("backup %d (%s)", i, r.strategy)
		c := checkMySQLCopy(t, r.copyDir, r.res, baseSeq)
		// Both strategies block every commit while held: the snapshot is
		// the database at the instant the writer held it (L28).
		checkCounter(t, label, c, acks, rec, true)
		t.Logf("%s: the writer held commits for %s (Freeze took %s to hold them)", label,
			rec.Held.Round(time.Microsecond), rec.LockedAt.Sub(rec.FreezeAt).Round(time.Microsecond))
	}
	t.Logf("the application made %d commits in all", len(acks))
}

// TestMySQLWriterKilledWhileFrozen: the writer process ends while it
// holds BACKUP STAGE BLOCK_COMMIT. SIGKILL: the server ends the dead
// session and releases its backup lock with it, so the application,
// waiting in COMMIT, commits again at once. SIGTERM: the writer releases
// the server itself (an Abort the SDK raises) and exits cleanly. A
// system-level writer that stays in Freeze until the test wakes it keeps
// the mysql writer (back-end, frozen before it) frozen meanwhile: nothing
// but the writer's end can release the application before that.
func TestMySQLWriterKilledWhileFrozen(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			fs := testenv.LoopFS(t, "btrfs", 256<<20)
			d := startDaemon(t, frozenTimeouts(t))
			work := t.TempDir()
			srv, pw := mysqlServer(t, fs.Mount, work)
			app := startMySQLBank(t, srv.DSN(srv.OSUser, ""), work)
			w := startMySQLWriter(t, d.socket, work, "frozen", srv.DSN(mysqlUser, ""), "--password-file", pw)
			slow := d.startDawdler(t, "system")
			d.waitWriters(t, 2)

			done := make(chan error, 1)
			go func() {
				// The set's outcome is not the point: the writer goes in it.
				_, err := snapshotSetWithWriters(t, d.socket, fs.Mount)
				done <- err
			}()
			slow.lw.WaitEntered(t, "Freeze", 1) // the mysql writer's Freeze has answered
			if len(w.records(t, "mysql holds commits")) == 0 {
				t.Fatal("the mysql writer answered Freeze without holding the server")
			}
			// No commit while the writer holds the server: the counter stays,
			// and no acknowledgement is of a later value (commits made just
			// before the hold may still be acknowledged).
			counter := func() int {
				n, err := strconv.Atoi(srv.MustExec("SELECT n FROM bank.counter WHERE id = 1"))
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			held := counter()
			time.Sleep(300 * time.Millisecond) // the window of the check, not a wait for anything
			if n := counter(); n != held {
				t.Fatalf("the application committed %d transactions while the writer held the server", n-held)
			}
			if acks := app.read(t); len(acks) > 0 && acks[len(acks)-1].n > held {
				t.Fatalf("commit %d was acknowledged while the writer held the server at %d", acks[len(acks)-1].n, held)
			}
			signalled := time.Now()
			if err := w.proc.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := w.proc.Wait()
			if sig == syscall.SIGTERM && err != nil {
				t.Errorf("the writer exited with %v after SIGTERM", err)
			}
			// The set stays frozen (the system-level writer is still in
			// Freeze), so only the writer's end can let the application
			// commit; 15 s only ends a broken run.
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
			t.Logf("%s: the application committed again %s after the frozen writer was signalled", sig, resumed.Sub(signalled).Round(time.Microsecond))
			if sig == syscall.SIGTERM {
				recs := w.records(t, mysqlReleased)
				if len(recs) != 1 || recs[0].By != "Abort" {
					t.Errorf("after SIGTERM the writer logged %+v, want one release by Abort", recs)
				} else {
					t.Logf("SIGTERM: the writer released the server by %s after holding it %s", recs[0].By, recs[0].Held.Round(time.Microsecond))
				}
			}
			slow.wake(t)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the snapshot set did not end after the writer went")
			}
			app.end(t)
		})
	}
}

// TestMySQLWriterUnreachableServer: a writer whose server is not there
// fails Identify with the driver's message, naming where it tried; lvssd
// leaves it out of the metadata gathering and logs why.
func TestMySQLWriterUnreachableServer(t *testing.T) {
	d := startDaemon(t, shortTimeouts)
	work := t.TempDir()
	sock := filepath.Join(work, "no-server.sock")
	startMySQLWriter(t, d.socket, work, "unreachable", mysqlUser+"@unix("+sock+")/")
	identifyLeftOut(t, d.socket, sock+": connect: no such file or directory")
}
