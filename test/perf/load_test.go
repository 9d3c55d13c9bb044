//go:build perf

package perf_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the "mysql" driver of the MariaDB application
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/benchreport"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
)

// Samples and load of BenchmarkUnderLoad.
const (
	loadRounds = 10 // backups while the application is idle, and as many under load, per database
	// loadRate is the write load: transfers a second the application
	// asks for, all its connections together, the same for every
	// database. SQLite and Redis reach it; PostgreSQL and MariaDB, whose
	// commits are durable (an fsync through the loop device), may run at
	// their capacity below it. The rate reached is in the table's notes.
	loadRate    = 300
	loadWorkers = 3 // the application's connections
	// loadWarmup is how many transfers the application commits before the
	// first backup under load.
	loadWarmup = 100
	// Bank-style data every application works on: accounts whose total
	// never changes and a counter of transfers.
	loadAccounts = 100
	loadOpening  = 1000
)

// loadDB is one database lvss ships a writer for: how to start its server
// with the data on a volume, its writer, and its application.
type loadDB struct {
	name string
	// released is the message of the writer's record of each hold
	// (docs/writers.md: the database writers log it when they release the
	// application).
	released string
	// fsSize is the loop filesystem's size.
	fsSize int64
	// setup starts the server on vol and the writer subscribed to socket,
	// and returns the application (not running yet).
	setup func(b *testing.B, vol, work, socket string) (writerLog string, app loadApp)
}

// loadApp is the application under write load.
type loadApp interface {
	// start makes it commit transfers at loadRate, and returns once it
	// committed loadWarmup of them. count says how many it committed so
	// far; stop ends the load and fails b if a transfer failed.
	start(b *testing.B) (count func() int, stop func())
}

var loadDBs = []loadDB{
	{name: "sqlite", released: "write lock released", fsSize: 256 << 20, setup: setupSQLite},
	{name: "postgres", released: "postgres released", fsSize: 512 << 20, setup: setupPostgres},
	{name: "mysql", released: "mysql released", fsSize: 512 << 20, setup: setupMariaDB},
	{name: "redis", released: "redis released", fsSize: 256 << 20, setup: setupRedis},
}

// loadFigures are one (database, idle|load) cell.
type loadFigures struct {
	latency, held, window []time.Duration
	rate                  float64 // transfers a second reached (load only)
}

// BenchmarkUnderLoad measures, for each database writer lvss ships, with
// the database's files on a loop btrfs, the snapshot latency and how long
// the writer held its application, while the application is idle and
// while it commits transfers at loadRate: the real lvssd, the shipped
// writer as its own process (`lvss-writer NAME`, JSON logs), the
// application committing over its own connections, and a Go requester.
func BenchmarkUnderLoad(b *testing.B) {
	type cell struct {
		db, state string
		f         loadFigures
	}
	var cells []cell
	for _, db := range loadDBs {
		b.Run(db.name, func(b *testing.B) {
			idle, load := runLoadDB(b, db)
			cells = append(cells, cell{db.name, "idle", idle}, cell{db.name, "load", load})
			b.ReportMetric(benchreport.Summarize(benchreport.Millis(idle.latency)).Median, "idle-ms")
			b.ReportMetric(benchreport.Summarize(benchreport.Millis(load.latency)).Median, "load-ms")
			b.ReportMetric(benchreport.Summarize(benchreport.Millis(idle.held)).Median, "idle-held-ms")
			b.ReportMetric(benchreport.Summarize(benchreport.Millis(load.held)).Median, "load-held-ms")
		})
	}
	var latency, held []benchreport.Row
	var rates []string
	for _, c := range cells {
		name := c.db + ", " + c.state
		latency = append(latency, benchreport.Row{Name: name, Unit: "ms", Stats: benchreport.Summarize(benchreport.Millis(c.f.latency))})
		held = append(held,
			benchreport.Row{Name: name + ": application held (writer's log)", Unit: "ms", Stats: benchreport.Summarize(benchreport.Millis(c.f.held))},
			benchreport.Row{Name: name + ": Freeze→Thaw (lvssd)", Unit: "ms", Stats: benchreport.Summarize(benchreport.Millis(c.f.window))})
		if c.state == "load" {
			rates = append(rates, fmt.Sprintf("%s %.0f", c.db, c.f.rate))
		}
	}
	setup := fmt.Sprintf("Each database's files are on a loop btrfs of their own; the real lvssd (its defaults, the btrfs provider), the shipped "+
		"writer as its own process (`lvss-writer sqlite|postgres|mysql|redis`, logging JSON at level info), and a Go requester (package client) "+
		"backing up the volume in VSS_CTX_BACKUP, every writer taking part. %d backups with the application idle (its server running, "+
		"nothing committing), then %d while it commits bank transfers (two balances and a counter in one transaction) over %d connections, "+
		"asking for %d a second (a server that cannot keep up runs at its capacity: PostgreSQL's and MariaDB's durable commits on a "+
		"loop device); transfers a second reached: %s. SQLite's application is examples/bankapp (its own process); PostgreSQL, "+
		"MariaDB (its default backup-stage strategy) and Redis (AOF, appendfsync everysec) take the benchmark's own clients.",
		loadRounds, loadRounds, loadWorkers, loadRate, strings.Join(rates, ", "))
	rep := benchreport.Report{Suite: "load", Order: 60, Tables: []benchreport.Table{
		{
			ID:    "load-latency",
			Title: "Snapshot latency with each database writer, idle and under write load",
			Notes: []string{setup, "Timed: DoSnapshotSet, from the call to the end of its Wait (PrepareForSnapshot — PostgreSQL's " +
				"CHECKPOINT is there —, Freeze, the btrfs snapshot, Thaw, PostSnapshot, the catalog record)."},
			Rows: latency,
			Plot: &benchreport.Plot{File: "load-latency", XLabel: "database, application", YLabel: "DoSnapshotSet, ms (median, p10–p90)", Bars: true},
		},
		{
			ID:    "load-held",
			Title: "How long each database writer held its application, idle and under write load",
			Notes: []string{"\"application held\" is the `held` field of the writer's record of each hold (from the instant it held " +
				"the application to the start of its release: SQLite's write lock, MariaDB's BACKUP STAGE BLOCK_COMMIT, Redis's " +
				"CLIENT PAUSE WRITE; PostgreSQL's writer holds no commit, its figure is its Freeze→Thaw window), as the end-to-end " +
				"tests print it. \"Freeze→Thaw (lvssd)\" is lvssd's view, from Freeze sent to Thaw answered " +
				"(lvss_writer_freeze_window_seconds: each backup's change of its sum). Same backups as the latency table."},
			Rows: held,
		},
	}}
	if err := rep.Write(); err != nil {
		b.Fatal(err)
	}
}

// runLoadDB measures one database: loadRounds backups idle, then as many
// under load.
func runLoadDB(b *testing.B, db loadDB) (idle, load loadFigures) {
	fs := testenv.LoopFS(b, "btrfs", db.fsSize)
	work := b.TempDir() // not on the snapshotted volume
	metricsSock := filepath.Join(work, "metrics.sock")
	d := lvssdtest.StartDaemon(b, lvssdtest.DaemonOptions{Config: fmt.Sprintf("[metrics]\nlisten = %q\n", "unix:"+metricsSock)})
	metrics := unixHTTP(metricsSock)
	writerLog, app := db.setup(b, fs.Mount, work, d.Socket)
	d.WaitWriters(b, 1)
	ctx := context.Background()
	conn, err := client.Dial(ctx, d.Socket)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	rounds := func(f *loadFigures) {
		for range loadRounds {
			before, err := scrape(metrics, "lvss_writer_freeze_window_seconds_sum")
			if err != nil {
				b.Fatal(err)
			}
			latency, session := loadBackup(b, conn, fs.Mount)
			after, err := scrape(metrics, "lvss_writer_freeze_window_seconds_sum")
			if err != nil {
				b.Fatal(err)
			}
			f.latency = append(f.latency, latency)
			f.window = append(f.window, time.Duration((after[0]-before[0])*float64(time.Second)))
			f.held = append(f.held, writerHeld(b, writerLog, db.released, session))
			settle(b, fs.Mount)
		}
	}
	rounds(&idle)
	count, stop := app.start(b)
	started, before := time.Now(), count()
	rounds(&load)
	load.rate = float64(count()-before) / time.Since(started).Seconds()
	stop()
	return idle, load
}

// loadBackup runs one backup of vol with every writer taking part and
// returns how long DoSnapshotSet took and the session's ID.
func loadBackup(b *testing.B, conn *client.Conn, vol string) (time.Duration, uuid.UUID) {
	b.Helper()
	ctx := context.Background()
	bc, err := conn.NewBackupComponents(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer bc.Release(ctx)
	wait := func(a *client.Async, err error) {
		b.Helper()
		if err == nil {
			err = a.Wait(ctx)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	must := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	must(bc.InitializeForBackup(ctx, ""))
	must(bc.SetBackupState(ctx, false, false, vss.BackupFull, false))
	session, err := bc.GetSessionID(ctx)
	must(err)
	wait(bc.GatherWriterMetadata(ctx))
	_, err = bc.StartSnapshotSet(ctx)
	must(err)
	_, err = bc.AddToSnapshotSet(ctx, vol, uuid.Nil)
	must(err)
	wait(bc.PrepareForBackup(ctx))
	start := time.Now()
	wait(bc.DoSnapshotSet(ctx))
	took := time.Since(start)
	wait(bc.BackupComplete(ctx))
	rel, err := bc.Release(ctx)
	must(err)
	if len(rel.ShutdownWriters) != 1 || len(rel.DeletedSnapshots) != 1 {
		b.Fatalf("release: %d writers sent BackupShutdown, %d snapshots deleted; want 1 and 1", len(rel.ShutdownWriters), len(rel.DeletedSnapshots))
	}
	return took, session
}

// writerHeld returns the hold of session from the writer's JSON log (the
// record msg that a shipped database writer logs when it releases its
// application), failing b unless Thaw released it.
func writerHeld(b *testing.B, log, msg string, session uuid.UUID) time.Duration {
	b.Helper()
	var rec struct {
		Msg, Session, By string
		Held             time.Duration
	}
	lvssdtest.Eventually(b, 10*time.Second, "the writer's record of session "+session.String(), func() bool {
		f, err := os.Open(log)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == msg && rec.Session == session.String() {
				return true
			}
		}
		return false
	})
	if rec.By != "Thaw" {
		b.Fatalf("session %s: the writer released its application by %s, not Thaw", session, rec.By)
	}
	return rec.Held
}

// startWriter runs `lvss-writer name args...` against socket with JSON
// logs at level info; it returns the log file.
func startWriter(b *testing.B, work, socket, name string, args ...string) string {
	b.Helper()
	cmd := exec.Command(lvssdtest.Bin(b, "lvss-writer"),
		append([]string{name, "--socket", socket, "--log-format", "json", "--log-level", "info"}, args...)...)
	return lvssdtest.Start(b, work, "lvss-writer-"+name, cmd).Out
}

// paced runs loadWorkers workers that each commit a transfer (txn) per
// token of a pacer giving loadRate tokens a second, until stop (see
// loadApp.start). A transfer that fails fails b at stop.
func paced(b *testing.B, txn func(ctx context.Context, worker int) error) (count func() int, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	tokens := make(chan struct{}, loadWorkers)
	var wg sync.WaitGroup
	var commits atomic.Int64
	var mu sync.Mutex
	var failed error
	wg.Go(func() {
		t := time.NewTicker(time.Second / loadRate)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				select {
				case tokens <- struct{}{}:
				default: // the application is behind; the rate reached says so
				}
			}
		}
	})
	for w := range loadWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-tokens:
				}
				if err := txn(ctx, w); err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						failed = errors.Join(failed, err)
						mu.Unlock()
						cancel()
					}
					return
				}
				commits.Add(1)
			}
		})
	}
	lvssdtest.Eventually(b, 30*time.Second, fmt.Sprintf("the application's first %d transfers", loadWarmup), func() bool {
		return commits.Load() >= loadWarmup || ctx.Err() != nil
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if failed != nil {
				b.Errorf("a transfer failed: %v", failed)
			}
		})
	}
	b.Cleanup(stop)
	return func() int { return int(commits.Load()) }, stop
}

// transfer amounts and accounts: a random move between two accounts.
func randomTransfer() (from, to, amount int) {
	from = rand.IntN(loadAccounts)
	to = (from + 1 + rand.IntN(loadAccounts-1)) % loadAccounts
	return from, to, 1 + rand.IntN(50)
}

// SQLite: examples/bankapp (its own process: SQLite's locks are POSIX
// locks, which only another process sees) on a database of the volume,
// and `lvss-writer sqlite --db`.

type sqliteApp struct {
	db, work string
}

func setupSQLite(b *testing.B, vol, work, socket string) (string, loadApp) {
	app := &sqliteApp{db: filepath.Join(vol, "bank.db"), work: work}
	// bankapp creates the database; a short run leaves it for the writer,
	// which refuses a database that does not exist.
	p := app.run(b, "init", 0)
	lvssdtest.Eventually(b, 20*time.Second, "bankapp's first commits", func() bool { return app.acks(b, "init") > 0 })
	p.Stop(b)
	return startWriter(b, work, socket, "sqlite", "--db", app.db), app
}

func (a *sqliteApp) run(b *testing.B, name string, rate int) *lvssdtest.Proc {
	cmd := exec.Command(lvssdtest.Bin(b, "bankapp"), "run", "--db", a.db, "--workers", fmt.Sprint(loadWorkers),
		"--rate", fmt.Sprint(rate), "--acks", filepath.Join(a.work, "acks-"+name))
	return lvssdtest.Start(b, a.work, "bankapp-"+name, cmd)
}

// acks counts the commits the run named name acknowledged.
func (a *sqliteApp) acks(b *testing.B, name string) int {
	data, err := os.ReadFile(filepath.Join(a.work, "acks-"+name))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	} else if err != nil {
		b.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

func (a *sqliteApp) start(b *testing.B) (func() int, func()) {
	p := a.run(b, "load", loadRate)
	lvssdtest.Eventually(b, 30*time.Second, fmt.Sprintf("bankapp's first %d transfers", loadWarmup), func() bool {
		if p.Exited() {
			b.Fatalf("bankapp exited: %v\n%s", p.Wait(), p.Output())
		}
		return a.acks(b, "load") >= loadWarmup
	})
	return func() int { return a.acks(b, "load") },
		func() { p.Stop(b) } // bankapp exits non-zero if a commit failed
}

// PostgreSQL: a cluster with its data directory (and WAL) on the volume,
// `lvss-writer postgres --dsn`, and loadWorkers pgx connections.

type pgApp struct{ dsn string }

func setupPostgres(b *testing.B, vol, work, socket string) (string, loadApp) {
	p := testenv.StartPostgres(b, testenv.PostgresOptions{DataDir: filepath.Join(vol, "pg", "data")})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		b.Fatal(err)
	}
	_, err = conn.Exec(ctx, fmt.Sprintf(`
		CREATE TABLE accounts(id int PRIMARY KEY, balance bigint NOT NULL);
		CREATE TABLE counter(id int PRIMARY KEY CHECK (id = 1), n bigint NOT NULL);
		INSERT INTO counter VALUES (1, 0);
		INSERT INTO accounts SELECT i, %d FROM generate_series(0, %d) i;`, loadOpening, loadAccounts-1))
	conn.Close(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return startWriter(b, work, socket, "postgres", "--dsn", p.DSN("postgres")), &pgApp{dsn: p.DSN("postgres")}
}

func (a *pgApp) start(b *testing.B) (func() int, func()) {
	ctx := context.Background()
	conns := make([]*pgx.Conn, loadWorkers)
	for i := range conns {
		c, err := pgx.Connect(ctx, a.dsn)
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
		b.Cleanup(func() { c.Close(context.Background()) })
	}
	return paced(b, func(ctx context.Context, w int) error {
		from, to, amount := randomTransfer()
		return pgx.BeginFunc(ctx, conns[w], func(tx pgx.Tx) error {
			// In id order, so that two transfers never deadlock.
			for _, u := range [][2]int{{min(from, to), 0}, {max(from, to), 0}} {
				delta := amount
				if u[0] == from {
					delta = -amount
				}
				if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", delta, u[0]); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, "UPDATE counter SET n = n + 1 WHERE id = 1")
			return err
		})
	})
}

// MariaDB: a server with its data directory on the volume, the writer's
// account with the privileges docs/writer-mysql.md asks for, `lvss-writer
// mysql`, and loadWorkers connections of database/sql.

type mariaApp struct{ dsn string }

func setupMariaDB(b *testing.B, vol, work, socket string) (string, loadApp) {
	const user, password = "lvss", "perf-pw"
	srv := testenv.StartMariaDB(b, testenv.MariaDBOptions{DataDir: filepath.Join(vol, "mysql")})
	var rows []string
	for i := range loadAccounts {
		rows = append(rows, fmt.Sprintf("(%d,%d)", i, loadOpening))
	}
	srv.MustExec(fmt.Sprintf(`CREATE USER %[1]s@localhost IDENTIFIED BY '%[2]s';
		GRANT RELOAD, BINLOG MONITOR ON *.* TO %[1]s@localhost;
		CREATE DATABASE bank;
		CREATE TABLE bank.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB;
		CREATE TABLE bank.counter (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB;
		INSERT INTO bank.counter VALUES (1, 0);
		INSERT INTO bank.accounts VALUES %[3]s;`, user, password, strings.Join(rows, ",")))
	pw := filepath.Join(work, "mysql.pw")
	if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	log := startWriter(b, work, socket, "mysql", "--dsn", srv.DSN(user, ""), "--password-file", pw)
	return log, &mariaApp{dsn: srv.DSN(srv.OSUser, "")}
}

func (a *mariaApp) start(b *testing.B) (func() int, func()) {
	db, err := sql.Open("mysql", a.dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(loadWorkers)
	b.Cleanup(func() { db.Close() })
	return paced(b, func(ctx context.Context, _ int) error {
		from, to, amount := randomTransfer()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		// The counter first: transfers queue on its row and never deadlock.
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"UPDATE bank.counter SET n = n + 1 WHERE id = 1", nil},
			{"UPDATE bank.accounts SET balance = balance - ? WHERE id = ?", []any{amount, from}},
			{"UPDATE bank.accounts SET balance = balance + ? WHERE id = ?", []any{amount, to}},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
				return err
			}
		}
		return tx.Commit()
	})
}

// Redis: a server with AOF, its data directory on the volume, `lvss-writer
// redis --socket-path`, and transfers as MULTI/EXEC over loadWorkers
// connections.

type redisApp struct{ socket string }

func setupRedis(b *testing.B, vol, work, socket string) (string, loadApp) {
	dir := filepath.Join(vol, "redis")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	srv := testenv.StartRedis(b, testenv.RedisOptions{Dir: dir, AOF: true})
	c := goredis.NewClient(&goredis.Options{Network: "unix", Addr: srv.Socket, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	pairs := []any{"counter", 0}
	for i := range loadAccounts {
		pairs = append(pairs, fmt.Sprintf("acct:%d", i), loadOpening)
	}
	if err := c.MSet(context.Background(), pairs...).Err(); err != nil {
		b.Fatal(err)
	}
	return startWriter(b, work, socket, "redis", "--socket-path", srv.Socket), &redisApp{socket: srv.Socket}
}

func (a *redisApp) start(b *testing.B) (func() int, func()) {
	// Reads wait up to 30 s: a paused server answers writes when the
	// pause ends.
	c := goredis.NewClient(&goredis.Options{Network: "unix", Addr: a.socket, Protocol: 2, DisableIdentity: true,
		PoolSize: loadWorkers, MaxRetries: -1, ReadTimeout: 30 * time.Second})
	b.Cleanup(func() { c.Close() })
	return paced(b, func(ctx context.Context, _ int) error {
		from, to, amount := randomTransfer()
		_, err := c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.DecrBy(ctx, fmt.Sprintf("acct:%d", from), int64(amount))
			p.IncrBy(ctx, fmt.Sprintf("acct:%d", to), int64(amount))
			p.Incr(ctx, "counter")
			return nil
		})
		return err
	})
}
