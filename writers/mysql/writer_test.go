package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// The writer's account in the test servers, with the privileges
// docs/writer-mysql.md asks for.
const (
	backupUser     = "lvss"
	backupPassword = "lvss-test-pw"
)

// server is a test server with the writer's account and an application
// database, and the test's own connection pool to it (as the server's
// administrator, through the socket).
type server struct {
	*testenv.MariaDB
	app *sql.DB
}

// startServer starts a MariaDB server in temp dirs (opts as for
// testenv.StartMariaDB) and prepares it for the writer.
func startServer(t *testing.T, opts testenv.MariaDBOptions) *server {
	t.Helper()
	m := testenv.StartMariaDB(t, opts)
	m.MustExec(fmt.Sprintf(`CREATE USER %[1]s@localhost IDENTIFIED BY '%[2]s';
		GRANT RELOAD, BINLOG MONITOR, PROCESS ON *.* TO %[1]s@localhost;
		CREATE DATABASE app;
		CREATE TABLE app.probe (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB;`,
		backupUser, backupPassword))
	db, err := sql.Open("mysql", m.DSN(m.OSUser, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &server{MariaDB: m, app: db}
}

// dsn is the writer's connection to s.
func (s *server) dsn() string { return s.DSN(backupUser, backupPassword) }

func mustNew(t *testing.T, cfg Config) (writer.Identity, *Writer) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testenv.Logger(t)
	}
	id, w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return id, w
}

// probeCommit tries one commit of the application with a 1 s lock wait:
// nil when it committed, the server's error otherwise (1205 while the
// writer holds commits).
func (s *server) probeCommit(ctx context.Context) error {
	conn, err := s.app.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = 1"); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "INSERT INTO app.probe (at) VALUES (NOW(6))")
	return err
}

// writerSessions counts the writer account's sessions in the server.
func (s *server) writerSessions(t *testing.T) int {
	t.Helper()
	var n int
	if err := s.app.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", backupUser).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitUntil polls query, a SELECT of one count, every interval until it
// is at least 1, failing t with what it waited for (and the server's
// process list) if that does not come. The bound only ends a broken test.
func (s *server) waitUntil(t *testing.T, what string, every time.Duration, query string, args ...any) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(every) {
		var n int
		if err := s.app.QueryRow(query, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("gave up waiting for %s; process list:\n%s", what, s.processList(t))
		}
	}
}

// waitLockWait waits until a session of user runs a statement that begins
// with stmt and waits in the server for a lock (a metadata or backup
// lock: its PROCESSLIST state is "Waiting for ...").
func (s *server) waitLockWait(t *testing.T, user, stmt string) {
	t.Helper()
	s.waitUntil(t, user+"'s "+stmt+" to wait for a lock", 5*time.Millisecond,
		"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE CONCAT(?, '%') AND STATE LIKE 'Waiting for%'",
		user, stmt)
}

// waitRowLockWait waits until a transaction whose statement begins with
// stmt waits for an InnoDB row lock. (PROCESSLIST says only "Updating".)
// InnoDB refreshes the INNODB_TRX table only when nobody read it for
// 100 ms, so it is polled less often than that.
func (s *server) waitRowLockWait(t *testing.T, stmt string) {
	t.Helper()
	s.waitUntil(t, stmt+" to wait for a row lock", 150*time.Millisecond,
		"SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT' AND trx_query LIKE CONCAT(?, '%')", stmt)
}

// processList is the server's PROCESSLIST, for failure messages.
func (s *server) processList(t *testing.T) string {
	t.Helper()
	rows, err := s.app.Query("SELECT ID, USER, COMMAND, COALESCE(STATE, ''), COALESCE(INFO, '') FROM information_schema.PROCESSLIST")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id int64
		var user, cmd, state, info string
		if err := rows.Scan(&id, &user, &cmd, &state, &info); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&b, "%d %s %s %q %q\n", id, user, cmd, state, info)
	}
	if err := rows.Err(); err != nil {
		fmt.Fprintln(&b, err)
	}
	return b.String()
}

// mustHaveNoWriterSessions fails t unless the writer's sessions in the
// server are gone within a few seconds. The server ends a session whose
// connection closed asynchronously (MariaDB notices up to ~0.5 s later,
// more on a loaded machine), so a closed connection is not gone at once.
func (s *server) mustHaveNoWriterSessions(t *testing.T, when string) {
	t.Helper()
	// The bound only ends a broken test: a closed connection's session
	// ends as soon as the server notices.
	end := time.Now().Add(30 * time.Second)
	for n := s.writerSessions(t); n > 0; n = s.writerSessions(t) {
		if time.Now().After(end) {
			t.Fatalf("the writer still has %d session(s) in the server %s", n, when)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mustBeFrozen fails t unless an application commit waits for the
// writer's hold and gives up with the lock wait timeout.
func (s *server) mustBeFrozen(t *testing.T) {
	t.Helper()
	start := time.Now()
	err := s.probeCommit(context.Background())
	if serverErrorNumber(err) != erLockWaitTimeout {
		t.Fatalf("an application commit while frozen: %v after %s, want error 1205 (it waited for the writer's hold)", err, time.Since(start))
	}
}

// mustBeReleased fails t unless an application commit goes through at
// once, the writer keeps no session in the server (its connection is
// closed at every release), and no backup stage is left (another backup
// could start one).
func (s *server) mustBeReleased(t *testing.T) {
	t.Helper()
	start := time.Now()
	if err := s.probeCommit(context.Background()); err != nil {
		t.Fatalf("an application commit after the release: %v after %s", err, time.Since(start))
	}
	s.mustHaveNoWriterSessions(t, "after the release")
	if _, err := s.Exec("SET SESSION lock_wait_timeout = 1; BACKUP STAGE START; BACKUP STAGE END"); err != nil {
		t.Fatalf("another backup cannot start after the release: %v", err)
	}
}

func TestConformance(t *testing.T) {
	s := startServer(t, testenv.MariaDBOptions{})
	for _, tc := range []struct {
		name     string
		strategy Strategy
		stage    Stage
	}{
		{"BackupStage", StrategyBackupStage, ""},
		{"BackupStageBlockDDLAtPrepare", StrategyBackupStage, StageBlockDDL},
		{"FTWRL", StrategyFTWRL, ""},
		{"Auto", StrategyAuto, StageFlush},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writertest.Run(t, func(t *testing.T) (writer.Identity, writer.Writer) {
				return mustNew(t, Config{DSN: s.dsn(), Strategy: tc.strategy, PrepareStage: tc.stage, InstanceName: "test"})
			}, writertest.Options{
				CheckFrozen: s.mustBeFrozen,
				CheckThawed: s.mustBeReleased,
				// The restore does not depend on the strategy:
				// TestConformanceRestore runs it once.
				NoRestore: true,
			})
		})
	}
}

func TestNewRefusesBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{DSN: "no-at-sign-or-slash"}, "DSN"},
		{Config{Strategy: "sometimes"}, "strategy"},
		{Config{PrepareStage: "BLOCK_COMMIT"}, "prepare stage"},
		{Config{LockTimeout: -time.Second}, "negative"},
		{Config{Level: vss.LevelAuto}, "level"},
	} {
		if _, _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error about %q", tc.cfg, err, tc.want)
		}
	}
	id, w, err := New(Config{Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if id.ClassID != ClassID || id.Name != DefaultName || id.Level != vss.LevelBackEnd || id.Source != vss.SourceTransactedDB {
		t.Errorf("identity %+v", id)
	}
	if w.dc.Passwd != "secret" || w.dc.Addr != "/run/mysqld/mysqld.sock" || w.dc.Timeout != dialTimeout {
		t.Errorf("connection %+v", w.dc)
	}
	if strings.Contains(w.Server(), "secret") {
		t.Errorf("Server() shows the password: %s", w.Server())
	}
}

func TestParseVersionAndStrategy(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    Strategy
		status  string
	}{
		{"10.11.19-MariaDB-0+deb12u1-log", StrategyBackupStage, "SHOW MASTER STATUS"},
		{"10.4.1-MariaDB", StrategyBackupStage, "SHOW MASTER STATUS"},
		{"10.4.0-MariaDB", StrategyFTWRL, "SHOW MASTER STATUS"},
		{"5.5.5-10.3.39-MariaDB", StrategyFTWRL, "SHOW MASTER STATUS"},
		{"11.4.2-MariaDB", StrategyBackupStage, "SHOW MASTER STATUS"},
		{"8.0.36", StrategyFTWRL, "SHOW MASTER STATUS"},
		{"8.4.0", StrategyFTWRL, "SHOW BINARY LOG STATUS"},
		{"5.7.44-log", StrategyFTWRL, "SHOW MASTER STATUS"},
	} {
		v := parseVersion(tc.version)
		if got := StrategyAuto.resolve(v); got != tc.want {
			t.Errorf("%s (%s): auto is %s, want %s", tc.version, v, got, tc.want)
		}
		if got := v.binlogStatusStatement(); got != tc.status {
			t.Errorf("%s: %q, want %q", tc.version, got, tc.status)
		}
		if StrategyFTWRL.resolve(v) != StrategyFTWRL {
			t.Errorf("%s: an explicit strategy was changed", tc.version)
		}
	}
}

func identify(t *testing.T, w *Writer) (*document.WriterMetadata, error) {
	t.Helper()
	md := &writer.Metadata{}
	err := w.Identify(context.Background(), md)
	return md.Document(), err
}

// session drives a writer directly, as the SDK would, with placements that
// put every path in one snapshot, at one instant.
type session struct {
	t       *testing.T
	w       *Writer
	id      uuid.UUID
	timeout time.Duration
	// placements override the default ("/" holds everything).
	placements []writer.Placement
}

func newSession(t *testing.T, w *Writer) *session {
	return &session{t: t, w: w, id: uuid.New(), timeout: 10 * time.Second}
}

func (s *session) event(typ writer.EventType) *writer.Event {
	ps := s.placements
	if ps == nil {
		ps = []writer.Placement{{Path: "/", SnapshotID: uuid.New(), OriginalVolume: "/", Instant: 1}}
	}
	return &writer.Event{
		Type: typ, SessionID: s.id, Context: vss.CtxBackup, Volumes: []string{"/"},
		Deadline: time.Now().Add(s.timeout), Placements: ps,
	}
}

func (s *session) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	s.t.Cleanup(cancel)
	return ctx
}

func (s *session) prepare() error {
	s.t.Helper()
	if _, err := identify(s.t, s.w); err != nil {
		s.t.Fatal(err)
	}
	return s.w.PrepareSnapshot(s.ctx(), s.event(writer.EventPrepareSnapshot))
}

func (s *session) freeze() error { return s.w.Freeze(s.ctx(), s.event(writer.EventFreeze)) }
func (s *session) thaw() error   { return s.w.Thaw(s.ctx(), s.event(writer.EventThaw)) }
func (s *session) abort() error  { return s.w.Abort(s.ctx(), s.event(writer.EventAbort)) }

// holdTables keeps LOCK TABLES app.probe WRITE on a connection of its own
// until the returned function is called: a lock the writer's lock
// statements must wait for.
func (s *server) holdTables(t *testing.T) (unlock func()) {
	t.Helper()
	conn, err := s.app.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "LOCK TABLES app.probe WRITE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	unlock = func() {
		once.Do(func() {
			conn.ExecContext(context.Background(), "UNLOCK TABLES")
			conn.Close()
		})
	}
	t.Cleanup(unlock)
	return unlock
}
