package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writers/postgres"
)

// The PostgreSQL tests run the real `lvss-writer postgres` against the
// real lvssd and a real server (testenv.StartPostgres) whose data lives on
// a loopback btrfs. The application is the test process itself: its
// workers commit over their own connections, which the writer could not
// hold up even if it tried (PostgreSQL's locks are the server's, not the
// client process's).

// pgReleased is the writer's hold record message.
const pgReleased = "postgres released"

// pgWriterProc is an `lvss-writer postgres` process; its stderr (JSON
// records) is in log.
type pgWriterProc struct {
	log  string
	proc *proc
}

func startPostgresWriter(t *testing.T, socket, dir, dsn string, extra ...string) *pgWriterProc {
	t.Helper()
	args := append([]string{"--socket", socket, "--log-format", "json", "--log-level", "debug", "postgres", "--dsn", dsn}, extra...)
	p := start(t, dir, "lvss-writer", args...)
	return &pgWriterProc{log: p.Out, proc: p}
}

func (w *pgWriterProc) records(t *testing.T, msg string) []holdRecord {
	return logRecords(t, w.log, msg)
}

// checkpoints returns how long each session's CHECKPOINT took, from the
// writer's "checkpoint" records.
func (w *pgWriterProc) checkpoints(t *testing.T) map[string]time.Duration {
	t.Helper()
	b, err := os.ReadFile(w.log)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Duration{}
	for _, l := range strings.Split(string(b), "\n") {
		var r struct {
			Msg, Session string
			Took         time.Duration
		}
		if json.Unmarshal([]byte(l), &r) == nil && r.Msg == "checkpoint" {
			out[r.Session] = r.Took
		}
	}
	return out
}

// pgBank is the application: appWorkers goroutines, each on its own
// connection, move money between bankAccounts accounts (the total never
// changes) and count every transaction; after each COMMIT returns, the
// counter value it wrote goes to the acknowledgement log.
type pgBank struct {
	acks string
	stop atomic.Bool
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
}

func startPgBank(t *testing.T, dsn, work string) *pgBank {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, fmt.Sprintf(`
		CREATE TABLE accounts(id int PRIMARY KEY, balance bigint NOT NULL);
		CREATE TABLE counter(id int PRIMARY KEY CHECK (id = 1), n bigint NOT NULL);
		INSERT INTO counter VALUES (1, 0);
		INSERT INTO accounts SELECT i, %d FROM generate_series(0, %d) i;`, bankOpening, bankAccounts-1))
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := &pgBank{acks: filepath.Join(work, "acks")}
	f, err := os.OpenFile(b.acks, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	log := &ackLog{w: f}
	for range appWorkers {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		b.wg.Go(func() {
			defer conn.Close(context.Background())
			for !b.stop.Load() {
				n, err := pgTransfer(conn)
				if err == nil {
					err = log.record(n) // COMMIT has returned: acknowledged
				}
				if err != nil {
					b.mu.Lock()
					b.err = errors.Join(b.err, err)
					b.mu.Unlock()
					return
				}
			}
		})
	}
	t.Cleanup(func() { b.stop.Store(true); b.wg.Wait(); f.Close() })
	eventually(t, 20*time.Second, "the application's first commits", func() bool { return len(b.read(t)) >= 200 || b.failed() != nil })
	if err := b.failed(); err != nil {
		t.Fatalf("application: %v", err)
	}
	return b
}

// pgTransfer is one transaction; it returns the counter's new value. The
// accounts are updated in id order, so that two transfers never deadlock.
func pgTransfer(conn *pgx.Conn) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	a, b, amount := rand.IntN(bankAccounts), rand.IntN(bankAccounts), 1+rand.IntN(50)
	first, second := a, b
	if b < a {
		first, second = b, a
	}
	for _, id := range []int{first, second} {
		delta := amount
		if id == a {
			delta = -amount // from a to b; a == b is a no-op transfer
		}
		if id == a && id == b {
			delta = 0
		}
		if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", delta, id); err != nil {
			return 0, err
		}
	}
	var n int
	if err := tx.QueryRow(ctx, "UPDATE counter SET n = n + 1 WHERE id = 1 RETURNING n").Scan(&n); err != nil {
		return 0, err
	}
	return n, tx.Commit(ctx)
}

func (b *pgBank) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *pgBank) read(t *testing.T) []ack { return readAcks(t, b.acks) }

// end stops the workers and fails t if any commit failed.
func (b *pgBank) end(t *testing.T) {
	t.Helper()
	b.stop.Store(true)
	b.wg.Wait()
	if err := b.failed(); err != nil {
		t.Fatalf("application: a commit failed: %v", err)
	}
}

// checkPgCopy opens the copy's server and returns its counter after
// checking the bank's invariant.
func checkPgCopy(t *testing.T, p *testenv.Postgres) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		t.Fatalf("connecting to the copy: %v", err)
	}
	defer conn.Close(ctx)
	var accounts, total, n int
	if err := conn.QueryRow(ctx, "SELECT count(*), sum(balance) FROM accounts").Scan(&accounts, &total); err != nil {
		t.Fatal(err)
	}
	if accounts != bankAccounts || total != bankAccounts*bankOpening {
		t.Fatalf("the snapshot's copy has %d accounts holding %d, want %d holding %d", accounts, total, bankAccounts, bankAccounts*bankOpening)
	}
	if err := conn.QueryRow(ctx, "SELECT n FROM counter").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// pgLogLines returns the lines of a server log that contain any of subs.
func pgLogLines(log string, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				out = append(out, strings.TrimSpace(l))
				break
			}
		}
	}
	return out
}

// TestPostgresWriterOnBtrfsUnderLoad is the integration test: the
// real lvssd, a PostgreSQL cluster on a btrfs loop volume, the application
// committing under load, `lvss-writer postgres` as its own process, and
// component-mode backups through the Go client. Each snapshot's data
// directory, copied out, must start as a second server that completes
// crash recovery, keeps the invariant, and holds every commit acknowledged
// before Freeze reached the writer and none acknowledged after the first
// one after the release (the writer blocks nothing, L28).
func TestPostgresWriterOnBtrfsUnderLoad(t *testing.T) {
	fs := testenv.LoopFS(t, "btrfs", 512<<20)
	dataDir := filepath.Join(fs.Mount, "pg", "data")
	p := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dataDir})
	d := startDaemon(t, shortTimeouts)
	work := t.TempDir() // not on the snapshotted volume
	w := startPostgresWriter(t, d.socket, work, p.DSN("postgres"))
	d.waitWriters(t, 1)

	t.Run("ListWriters", func(t *testing.T) {
		listWritersShows(t, d.socket, "Writer name: 'postgres'", "Writer Id: "+postgres.ClassID.String(),
			"cluster (VSS_CT_FILEGROUP)", dataDir+"/* (recursive)")
	})

	app := startPgBank(t, p.DSN("postgres"), work)
	const rounds = 3
	type result struct {
		session string // as the writer logs it
		copyDir string
	}
	var results []result
	for i := range rounds {
		copyDir := filepath.Join(work, fmt.Sprintf("copy%d", i), "data")
		res, err := componentBackup(t, d.socket, componentBackupSpec{
			classID: postgres.ClassID,
			volumes: []string{fs.Mount},
			copyOut: func(devices map[string]string, comps []*document.Component) error {
				if len(comps) != 1 || len(comps[0].Files) != 1 || comps[0].Files[0].Path != dataDir {
					return fmt.Errorf("the writer declared %+v, want one component with the data directory", comps)
				}
				return copyTree(devices[fs.Mount], fs.Mount, comps[0].Files[0].Path, copyDir)
			},
		})
		if err != nil {
			if res.status != nil {
				t.Fatalf("backup %d: %v (writer: %s %s %q)", i, err, res.status.State, res.status.Failure, res.status.ApplicationMessage)
			}
			t.Fatalf("backup %d: %v", i, err)
		}
		results = append(results, result{res.session.String(), copyDir})
		moreCommits(t, app.read, 20) // the application runs between backups
	}
	app.end(t)
	acks := app.read(t)
	released := w.records(t, pgReleased)
	checkpoints := w.checkpoints(t)

	for i, res := range results {
		rec := sessionRecord(t, released, res.session)
		if rec.By != "Thaw" {
			t.Fatalf("backup %d: the writer was released by %s, not Thaw", i, rec.By)
		}
		started := time.Now()
		cp := testenv.StartPostgresCopy(t, res.copyDir)
		recovery := time.Since(started)
		log := cp.Log()
		if !strings.Contains(log, "automatic recovery in progress") || !strings.Contains(log, "ready to accept connections") {
			t.Fatalf("backup %d: the copy's server did not recover from a crash-consistent state:\n%s", i, log)
		}
		c := checkPgCopy(t, cp)
		cp.Stop()
		during := 0
		for _, a := range acks {
			if a.at.After(rec.LockedAt) && a.at.Before(rec.ReleaseAt) {
				during++
			}
		}
		t.Logf("backup %d: the copy started in %s: %s", i, recovery.Round(time.Millisecond),
			strings.Join(pgLogLines(log, "redo starts", "redo done", "ready to accept"), " | "))
		t.Logf("backup %d: CHECKPOINT at PrepareForSnapshot took %s; the writer held nothing: its Freeze→Thaw window lasted %s, with %d commits acknowledged inside it",
			i, checkpoints[res.session].Round(time.Microsecond), rec.Held.Round(time.Microsecond), during)
		checkCounter(t, fmt.Sprintf("backup %d", i), c, acks, rec, false)
	}
	t.Logf("the application made %d commits in all", len(acks))
}

// TestPostgresWALOnAnotherVolumeIsVetoed: the WAL lives on a second btrfs
// volume (initdb --waldir). A backup of the data volume alone is vetoed at
// PrepareForSnapshot with INCONSISTENTSNAPSHOT naming both paths; so is a
// set with both volumes, which two separate filesystems capture at two
// instants.
func TestPostgresWALOnAnotherVolumeIsVetoed(t *testing.T) {
	fsData := testenv.LoopFS(t, "btrfs", 256<<20)
	fsWAL := testenv.LoopFS(t, "btrfs", 256<<20)
	dataDir, walDir := filepath.Join(fsData.Mount, "data"), filepath.Join(fsWAL.Mount, "wal")
	p := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dataDir, WALDir: walDir})
	d := startDaemon(t, shortTimeouts)
	work := t.TempDir()
	w := startPostgresWriter(t, d.socket, work, p.DSN("postgres"))
	d.waitWriters(t, 1)

	for _, tc := range []struct {
		name    string
		volumes []string
		want    []string // in the message
	}{
		{"DataVolumeOnly", []string{fsData.Mount}, []string{`"` + walDir + `" is in no snapshot of the set`}},
		{"BothVolumes", []string{fsData.Mount, fsWAL.Mount}, []string{"(instant 1)", "(instant 2)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := componentBackup(t, d.socket, componentBackupSpec{classID: postgres.ClassID, volumes: tc.volumes})
			if err == nil {
				t.Fatal("the backup succeeded; the writer must veto a set that splits data and WAL")
			}
			st := res.status
			if st == nil {
				t.Fatalf("the backup failed before the writer's status: %v", err)
			}
			if st.Failure != vsserr.WriterErrorInconsistentSnapshot || st.State != vss.WSFailedAtPrepareSnapshot {
				t.Fatalf("writer status %s %s %q, want %s at PrepareForSnapshot", st.State, st.Failure, st.ApplicationMessage, vsserr.WriterErrorInconsistentSnapshot)
			}
			for _, want := range append([]string{"data directory " + dataDir, "WAL directory " + walDir}, tc.want...) {
				if !strings.Contains(st.ApplicationMessage, want) {
					t.Errorf("the veto's message does not say %q: %s", want, st.ApplicationMessage)
				}
			}
			t.Logf("vetoed: %s %q", st.Failure, st.ApplicationMessage)
		})
	}
	if recs := w.records(t, pgReleased); len(recs) != 0 {
		t.Errorf("vetoed sessions were frozen: %+v", recs)
	}
}

// TestPostgresOnACopyingProviderIsVetoed: PostgreSQL on an ext4 volume,
// which only the copy provider snapshots (file by file). One snapshot is
// one "instant", but PostgreSQL writes pages and WAL while frozen, so the
// copy would not be crash-consistent: the writer vetoes with
// INCONSISTENTSNAPSHOT instead of letting it pass.
func TestPostgresOnACopyingProviderIsVetoed(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", 256<<20)
	dataDir := filepath.Join(fs.Mount, "data")
	p := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dataDir})
	cfg := shortTimeouts + fmt.Sprintf("\n[providers.copy]\nvolumes = [%q]\nsnapshot_dir = %q\n", fs.Mount, filepath.Join(fs.Mount, "copies"))
	d := startDaemon(t, cfg)
	work := t.TempDir()
	startPostgresWriter(t, d.socket, work, p.DSN("postgres"))
	d.waitWriters(t, 1)

	res, err := componentBackup(t, d.socket, componentBackupSpec{classID: postgres.ClassID, volumes: []string{fs.Mount}})
	if err == nil {
		t.Fatal("the backup succeeded; the writer must veto a snapshot copied file by file")
	}
	st := res.status
	if st == nil {
		t.Fatalf("the backup failed before the writer's status: %v", err)
	}
	if st.Failure != vsserr.WriterErrorInconsistentSnapshot || st.State != vss.WSFailedAtPrepareSnapshot ||
		!strings.Contains(st.ApplicationMessage, "copied file by file") || !strings.Contains(st.ApplicationMessage, dataDir) {
		t.Fatalf("writer status %s %s %q, want %s at PrepareForSnapshot naming %s as copied file by file",
			st.State, st.Failure, st.ApplicationMessage, vsserr.WriterErrorInconsistentSnapshot, dataDir)
	}
	t.Logf("vetoed: %s %q", st.Failure, st.ApplicationMessage)
}

// TestPostgresUnreachableServer: the writer cannot reach its server.
// Identify fails (the writer is left out, lvssd's event log carries pgx's
// or the server's message); a server that goes away between Identify and
// PrepareForSnapshot makes the writer fail there, RETRYABLE, with the
// connection's message.
func TestPostgresUnreachableServer(t *testing.T) {
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	d := startDaemon(t, shortTimeouts)
	work := t.TempDir()
	p := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: filepath.Join(fs.Mount, "data")})
	nowhere := filepath.Join(work, "nowhere") // a socket directory no server listens in
	if err := os.Mkdir(nowhere, 0o755); err != nil {
		t.Fatal(err)
	}
	noServer := startPostgresWriter(t, d.socket, work, "host="+nowhere+" port=5432 user=postgres", "--name", "pg-nowhere", "--instance-name", "nowhere")
	noRole := startPostgresWriter(t, d.socket, work, p.DSN("postgres")+" user=ghost", "--name", "pg-ghost", "--instance-name", "ghost")
	ctx := context.Background()
	conn, err := client.Dial(ctx, d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, 15*time.Second, "both writers to subscribe", func() bool {
		ws, err := conn.ListWriters(ctx)
		return err == nil && len(ws) == 2
	})
	wants := map[string]string{
		"pg-nowhere": filepath.Join(nowhere, ".s.PGSQL.5432") + ": connect: no such file or directory",
		"pg-ghost":   `FATAL: role "ghost" does not exist (SQLSTATE 28000)`,
	}
	for name, want := range wants {
		eventually(t, 10*time.Second, name+"'s failed Identify in lvssd's event log", func() bool {
			evs, err := conn.ListEvents(ctx, 0, 0)
			if err != nil {
				return false
			}
			for _, e := range evs {
				if e.Fields["writer"] == name && strings.Contains(e.Fields["error"], want) {
					t.Logf("lvssd: %s: %s", e.Message, e.Fields["error"])
					return true
				}
			}
			return false
		})
	}
	noServer.proc.Stop(t)
	noRole.proc.Stop(t)

	// The server goes away between Identify and PrepareForSnapshot.
	startPostgresWriter(t, d.socket, work, p.DSN("postgres"), "--connect-timeout", "2s")
	eventually(t, 15*time.Second, "the writer's metadata", func() bool {
		ws, err := conn.ListWriters(ctx)
		return err == nil && len(ws) == 1 && ws[0].WMD != ""
	})
	st := backupStoppingServer(t, d.socket, fs.Mount, p)
	if st.Failure != vsserr.WriterErrorRetryable || st.State != vss.WSFailedAtPrepareSnapshot ||
		!strings.Contains(st.ApplicationMessage, "connecting to the server") || !strings.Contains(st.ApplicationMessage, "no such file or directory") {
		t.Fatalf("writer status %s %s %q, want RETRYABLE at PrepareForSnapshot with the connection's message", st.State, st.Failure, st.ApplicationMessage)
	}
	t.Logf("server gone after Identify: %s %s %q", st.State, st.Failure, st.ApplicationMessage)
}

// backupStoppingServer runs a component-mode backup of the postgres
// writer's cluster and stops the server right after PrepareForBackup; it
// returns the writer's status after DoSnapshotSet.
func backupStoppingServer(t *testing.T, socket, vol string, p *testenv.Postgres) client.WriterStatus {
	t.Helper()
	var st *client.WriterStatus
	wait := func(a *client.Async, err error) error {
		if err != nil {
			return err
		}
		return a.Wait(context.Background())
	}
	err := client.Run(context.Background(), socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if err := bc.SetBackupState(ctx, true, false, vss.BackupFull, false); err != nil {
			return err
		}
		if err := wait(bc.GatherWriterMetadata(ctx)); err != nil {
			return err
		}
		id, _, err := bc.GetWriterMetadata(ctx, 0)
		if err != nil {
			return err
		}
		if err := bc.AddComponent(ctx, id, postgres.ClassID, vss.ComponentFileGroup, "", postgres.ComponentName); err != nil {
			return err
		}
		if _, err := bc.StartSnapshotSet(ctx); err != nil {
			return err
		}
		if _, err := bc.AddToSnapshotSet(ctx, vol, uuid.Nil); err != nil {
			return err
		}
		if err := wait(bc.PrepareForBackup(ctx)); err != nil {
			return err
		}
		p.Stop()
		_ = wait(bc.DoSnapshotSet(ctx)) // its outcome is the writer status below
		if err := wait(bc.GatherWriterStatus(ctx)); err != nil {
			return err
		}
		st, err = writerStatusOf(ctx, bc, id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return *st
}

// TestPostgresWriterKilledWhileFrozen: the writer process is stopped while
// it is frozen (a system-level writer that stays in Freeze until the test
// wakes it keeps the back-end postgres writer frozen), by SIGKILL and by
// SIGTERM. The writer holds nothing in snapshot mode, so the application
// commits throughout: while it is frozen, and after it died. SIGTERM
// releases the session (the SDK's Abort) before the process exits; either
// way the server is left with none of the writer's connections.
func TestPostgresWriterKilledWhileFrozen(t *testing.T) {
	// Room for the cluster, its WAL and lvssd's min_free (64 MiB) after
	// the first round's persistent snapshot.
	fs := testenv.LoopFS(t, "btrfs", 512<<20)
	p := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: filepath.Join(fs.Mount, "data")})
	d := startDaemon(t, frozenTimeouts(t))
	slow := d.startDawdler(t, "system")
	app := startPgBank(t, p.DSN("postgres"), t.TempDir())
	for i, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			work := t.TempDir()
			w := startPostgresWriter(t, d.socket, work, p.DSN("postgres"))
			d.waitWriters(t, 2)
			done := make(chan error, 1)
			go func() {
				_, err := snapshotSetWithWriters(t, d.socket, fs.Mount)
				done <- err
			}()
			slow.lw.WaitEntered(t, "Freeze", i+1) // the postgres writer's Freeze has answered
			if len(w.records(t, "frozen")) == 0 {
				t.Fatal("the postgres writer answered Freeze without freezing")
			}
			if n := pgConnections(t, p); n != 1 {
				t.Errorf("the frozen writer has %d connections to the server, want its one pinned connection", n)
			}
			// The application commits while the writer is frozen: it stays
			// frozen until the system-level writer is woken.
			frozenAt := time.Now()
			var whileFrozen ack
			eventually(t, 15*time.Second, "a commit while the postgres writer is frozen", func() bool {
				for _, a := range app.read(t) {
					if a.at.After(frozenAt) {
						whileFrozen = a
						return true
					}
				}
				return false
			})
			if recs := w.records(t, pgReleased); len(recs) != 0 {
				t.Fatalf("the writer was released before the test went on: %+v", recs)
			}
			stopped := time.Now()
			if err := w.proc.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := w.proc.Wait()
			if sig == syscall.SIGTERM {
				if err != nil {
					t.Errorf("the writer exited with %v after SIGTERM", err)
				}
				recs := w.records(t, pgReleased)
				if len(recs) != 1 || recs[0].By != "Abort" {
					t.Errorf("after SIGTERM the writer logged %+v, want one release by Abort", recs)
				}
			}
			var next time.Time
			eventually(t, 15*time.Second, "the application's next commit", func() bool {
				for _, a := range app.read(t) {
					if a.at.After(stopped) {
						next = a.at
						return true
					}
				}
				return false
			})
			eventually(t, 15*time.Second, "the writer's connection to end", func() bool { return pgConnections(t, p) == 0 })
			t.Logf("%s: commit %d acknowledged %s after the writer was frozen; the next %s after the signal",
				sig, whileFrozen.n, whileFrozen.at.Sub(frozenAt).Round(time.Microsecond), next.Sub(stopped).Round(time.Microsecond))
			slow.wake(t)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the snapshot set did not end after the writer died")
			}
		})
	}
	app.end(t)
}

// pgConnections counts the server's sessions of lvss-writer (its default
// application_name).
func pgConnections(t *testing.T, p *testenv.Postgres) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lvss-writer'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
