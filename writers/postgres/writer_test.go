package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// startServer starts a throwaway cluster in the test's temp dir; walDir,
// if set, is initdb's --waldir.
func startServer(t *testing.T, walDir string) *testenv.Postgres {
	t.Helper()
	return testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: filepath.Join(t.TempDir(), "data"), WALDir: walDir})
}

// sql runs statements on the server as its superuser.
func sql(t *testing.T, p *testenv.Postgres, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// connections counts the server's sessions with the application name.
func connections(t *testing.T, p *testenv.Postgres, app string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitConnections waits until the server has want sessions of app: a
// backend ends a moment after its client closed the socket.
func waitConnections(t *testing.T, p *testenv.Postgres, app string, want int) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for {
		n := connections(t, p, app)
		if n == want {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("the server has %d sessions of %s, want %d", n, app, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mustCommit commits a transaction on the server within a second: the
// writer never blocks the application.
func mustCommit(t *testing.T, p *testenv.Postgres) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS probe(x int8); INSERT INTO probe VALUES (1)"); err != nil {
		t.Fatalf("the application could not commit: %v", err)
	}
}

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

// dsnApp is the server's DSN with an application name that identifies one
// writer's sessions.
func dsnApp(p *testenv.Postgres, app string) string {
	return p.DSN("postgres") + " application_name=" + app
}

// TestConformance runs the SDK's suite against the writer and a real
// server. Snapshot mode holds nothing: while "frozen" the application
// must still commit, and the writer must have exactly its one pinned
// connection open; after every release it must have none.
//
// The restore subtests stop the server before each restore session (the
// writer's restore procedure: it refuses PreRestore while the server
// runs) and check what PostRestore leaves for each file restore status;
// the next subtest starts the server again on the same data directory.
func TestConformance(t *testing.T) {
	first := startServer(t, "")
	dataDir := first.DataDir
	var (
		mu  sync.Mutex
		app string
		p   = first
		n   atomic.Int32
	)
	current := func() (string, *testenv.Postgres) { mu.Lock(); defer mu.Unlock(); return app, p }
	writertest.Run(t, func(t *testing.T) (writer.Identity, writer.Writer) {
		name := fmt.Sprintf("lvss-conformance-%d", n.Add(1))
		mu.Lock()
		app = name
		if !p.Running() {
			// A restore subtest stopped it.
			p = testenv.StartPostgresCopy(t, dataDir)
		}
		srv := p
		mu.Unlock()
		id, w := mustNew(t, Config{DSN: dsnApp(srv, name), InstanceName: "test"})
		return id, w
	}, writertest.Options{
		CheckFrozen: func(t *testing.T) {
			name, p := current()
			mustCommit(t, p)
			if n := connections(t, p, name); n != 1 {
				t.Errorf("frozen with %d connections of the writer, want its one pinned connection", n)
			}
		},
		CheckThawed: func(t *testing.T) {
			name, p := current()
			mustCommit(t, p)
			waitConnections(t, p, name, 0)
		},
		PrepareRestore: func(t *testing.T) {
			_, p := current()
			p.Stop()
		},
		Restore: func(t *testing.T, status vss.FileRestoreStatus) {
			if status == vss.RSAll {
				// The files stay as the stopped server left them, which is
				// what a crash-consistent copy holds; a copy may carry a
				// stale lock file, which PostRestore must remove.
				writeStalePID(t, dataDir)
			}
		},
		CheckRestored: func(t *testing.T, status vss.FileRestoreStatus) {
			for _, f := range []string{"backup_label", "recovery.signal"} {
				if _, err := os.Stat(filepath.Join(dataDir, f)); !os.IsNotExist(err) {
					t.Errorf("after %s: %s in a snapshot-mode restore (%v)", status, f, err)
				}
			}
			if status != vss.RSAll {
				return
			}
			if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); !os.IsNotExist(err) {
				t.Errorf("after %s: the stale postmaster.pid is still there (%v)", status, err)
			}
		},
	})
}

// writeStalePID leaves a postmaster.pid naming a process that has exited.
func writeStalePID(t *testing.T, dataDir string) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.ProcessState.Pid()
	if err := os.WriteFile(filepath.Join(dataDir, "postmaster.pid"), []byte(fmt.Sprintf("%d\n%s\n", pid, dataDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestNewRefusesBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{DSN: "host=/x port=notaport"}, "--dsn"},
		{Config{DSN: "postgres://%zz"}, "--dsn"},
		{Config{Mode: "archive"}, `say "snapshot" (crash-consistent snapshots) or "pitr"`},
		{Config{FreezeTimeout: -time.Second}, "negative"},
		{Config{ConnectTimeout: -time.Second}, "negative"},
	} {
		_, _, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error about %q", tc.cfg, err, tc.want)
		}
	}
	id, w, err := New(Config{DSN: "host=/nowhere password=secret"})
	if err != nil {
		t.Fatal(err)
	}
	if id.ClassID != ClassID || id.Name != DefaultName || id.Level != vss.LevelBackEnd || id.Source != vss.SourceTransactedDB {
		t.Errorf("identity %+v", id)
	}
	if w.pgcfg.ConnectTimeout != DefaultConnectTimeout || w.pgcfg.RuntimeParams["application_name"] != "lvss-writer" {
		t.Errorf("connect timeout %s, application_name %q", w.pgcfg.ConnectTimeout, w.pgcfg.RuntimeParams["application_name"])
	}
	// The PG* environment fills what the DSN leaves out, as libpq does.
	t.Setenv("PGPORT", "6543")
	t.Setenv("PGCONNECT_TIMEOUT", "3")
	_, w, err = New(Config{DSN: "host=/nowhere"})
	if err != nil {
		t.Fatal(err)
	}
	if w.pgcfg.Port != 6543 || w.pgcfg.ConnectTimeout != 3*time.Second {
		t.Errorf("PGPORT/PGCONNECT_TIMEOUT ignored: port %d, connect timeout %s", w.pgcfg.Port, w.pgcfg.ConnectTimeout)
	}
}

func TestSQLStateHRESULT(t *testing.T) {
	for code, want := range map[string]vsserr.HRESULT{
		"00000": 0xA0000000, "42501": 0xA06809D1, "57P01": 0xA0859F51, "53100": 0xA0824CD0, "ZZZZZ": 0xA39AA3FF,
	} {
		got := SQLStateHRESULT(code)
		if got != want {
			t.Errorf("SQLStateHRESULT(%s) = %s, want %s", code, got.Hex(), want.Hex())
		}
		if back, ok := SQLState(got); !ok || back != code {
			t.Errorf("SQLState(%s) = %q, %v", got.Hex(), back, ok)
		}
	}
	for _, bad := range []string{"", "4250", "425011", "42-01"} {
		if hr := SQLStateHRESULT(bad); hr != 0 {
			t.Errorf("SQLStateHRESULT(%q) = %s", bad, hr.Hex())
		}
	}
	for _, hr := range []vsserr.HRESULT{0, 0xA0000005 | 0x04000000, 0x80042302, 0xA39AA400} {
		if code, ok := SQLState(hr); ok {
			t.Errorf("SQLState(%s) = %q", hr.Hex(), code)
		}
	}
}

func TestFailureCodesBySQLState(t *testing.T) {
	for code, want := range map[string]vsserr.HRESULT{
		"53100": vsserr.WriterErrorOutOfResources, "53300": vsserr.WriterErrorOutOfResources,
		"08006": vsserr.WriterErrorRetryable, "40P01": vsserr.WriterErrorRetryable, "55P03": vsserr.WriterErrorRetryable,
		"57P01": vsserr.WriterErrorRetryable, "57014": vsserr.WriterErrorRetryable, "57P04": vsserr.WriterErrorNonRetryable,
		"42501": vsserr.WriterErrorNonRetryable, "28P01": vsserr.WriterErrorNonRetryable, "3D000": vsserr.WriterErrorNonRetryable,
		"58030": vsserr.WriterErrorNonRetryable, "XX000": vsserr.WriterErrorNonRetryable,
	} {
		err := fmt.Errorf("wrapped: %w", &pgconn.PgError{Severity: "ERROR", Code: code, Message: "m"})
		if got := failureCode(err); got != want {
			t.Errorf("SQLSTATE %s: %s, want %s", code, got, want)
		}
	}
	if got := failureCode(errors.New("dial unix: connect: connection refused")); got != vsserr.WriterErrorRetryable {
		t.Errorf("a connection error: %s", got)
	}
}

func identify(t *testing.T, w *Writer) (*document.WriterMetadata, error) {
	t.Helper()
	md := &writer.Metadata{}
	err := w.Identify(context.Background(), md)
	return md.Document(), err
}

// TestIdentifyDeclaresTheCluster: one selectable file-group component with
// the data directory, and the WAL directory and a tablespace that lie
// outside it, as recursive file sets; the lock files excluded.
func TestIdentifyDeclaresTheCluster(t *testing.T) {
	walDir := filepath.Join(t.TempDir(), "wal")
	p := startServer(t, walDir)
	tsDir := filepath.Join(t.TempDir(), "ts1")
	p.MakeDir(tsDir)
	inside := filepath.Join(p.DataDir, "inside")
	p.MakeDir(inside) // a tablespace inside the data directory: its tree holds it
	sql(t, p, "CREATE TABLESPACE ts1 LOCATION '"+tsDir+"'", "CREATE TABLESPACE ts0 LOCATION '"+inside+"'")
	_, w := mustNew(t, Config{DSN: p.DSN("postgres")})
	md, err := identify(t, w)
	if err != nil {
		t.Fatal(err)
	}
	md.Identity.Usage, md.Identity.Source = vss.UsageUserData, vss.SourceTransactedDB
	if err := md.Validate(); err != nil {
		t.Fatalf("invalid metadata: %v", err)
	}
	if len(md.Components) != 1 {
		t.Fatalf("%d components, want 1", len(md.Components))
	}
	c := md.Components[0]
	if c.Name != ComponentName || c.LogicalPath != "" || c.Type != vss.ComponentFileGroup || !c.Selectable {
		t.Errorf("component %+v", c)
	}
	if !strings.Contains(c.Caption, "PostgreSQL 1") || !strings.Contains(c.Caption, walDir) {
		t.Errorf("caption %q", c.Caption)
	}
	var got []string
	for _, f := range c.Files {
		if f.Filespec != "*" || !f.Recursive {
			t.Errorf("file set %+v", f)
		}
		got = append(got, f.Path)
	}
	if want := []string{p.DataDir, walDir, tsDir}; !slices.Equal(got, want) {
		t.Errorf("file sets %v, want %v", got, want)
	}
	var ex []string
	for _, e := range md.ExcludeFiles {
		ex = append(ex, filepath.Join(e.Path, e.Filespec))
	}
	if want := []string{filepath.Join(p.DataDir, "postmaster.pid"), filepath.Join(p.DataDir, "postmaster.opts")}; !slices.Equal(ex, want) {
		t.Errorf("exclusions %v, want %v", ex, want)
	}
	if md.RestoreMethod.Method != vss.RMERestoreIfCanReplace || md.RestoreMethod.WriterRestore != vss.WREAlways || md.RestoreMethod.UserProcedure == "" {
		t.Errorf("restore method %+v", md.RestoreMethod)
	}
	// Identify connects and disconnects: no connection stays open.
	waitConnections(t, p, "lvss-writer", 0)
}

// TestIdentifyFailsWhenTheServerIsUnreachable: RETRYABLE, with pgx's
// message; over the wire the message reaches the coordinator.
func TestIdentifyFailsWhenTheServerIsUnreachable(t *testing.T) {
	sock := t.TempDir() // no server listens there
	_, w := mustNew(t, Config{DSN: "host=" + sock + " port=5432 user=postgres", ConnectTimeout: 2 * time.Second})
	_, err := identify(t, w)
	f := writertest.AsFailure(t, err)
	if f.Code != vsserr.WriterErrorRetryable || f.ApplicationHR != 0 ||
		!strings.Contains(f.Message, "connecting to the server") || !strings.Contains(f.Message, sock) {
		t.Fatalf("Identify: %v", err)
	}

	id, w2 := mustNew(t, Config{DSN: "host=" + sock + " port=5432 user=postgres"})
	co := writertest.Serve(t, id, w2)
	res, err := co.Send(context.Background(), 0, &v1.Event{Id: 1, Type: v1.EventType_EVENT_IDENTIFY, TimeoutMs: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorRetryable || !strings.Contains(res.GetApplicationMessage(), "no such file or directory") {
		t.Fatalf("Identify answered %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
}

// drive runs one session of a writer directly, as the SDK would.
type drive struct {
	t          *testing.T
	w          *Writer
	id         uuid.UUID
	placements []writer.Placement
}

// newSession places every given path in one snapshot of "/", at one
// instant.
func newSession(t *testing.T, w *Writer, paths ...string) *drive {
	s := &drive{t: t, w: w, id: uuid.New()}
	snap := uuid.New()
	for _, p := range paths {
		s.placements = append(s.placements, writer.Placement{Path: p, SnapshotID: snap, OriginalVolume: "/", Instant: 1})
	}
	return s
}

func (s *drive) event(typ writer.EventType) *writer.Event {
	return &writer.Event{
		Type: typ, SessionID: s.id, Context: vss.CtxBackup, Volumes: []string{"/"},
		Deadline: time.Now().Add(20 * time.Second), Placements: s.placements,
	}
}

func (s *drive) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	s.t.Cleanup(cancel)
	return ctx
}

func (s *drive) prepareBackup() {
	s.t.Helper()
	if err := s.w.PrepareBackup(s.ctx(), s.event(writer.EventPrepareBackup), nil); err != nil {
		s.t.Fatal(err)
	}
}

func (s *drive) prepareSnapshot() error {
	return s.w.PrepareSnapshot(s.ctx(), s.event(writer.EventPrepareSnapshot))
}

func (s *drive) do(typ writer.EventType) error {
	s.t.Helper()
	ev := s.event(typ)
	switch typ {
	case writer.EventFreeze:
		return s.w.Freeze(s.ctx(), ev)
	case writer.EventThaw:
		return s.w.Thaw(s.ctx(), ev)
	case writer.EventAbort:
		return s.w.Abort(s.ctx(), ev)
	case writer.EventBackupShutdown:
		return s.w.BackupShutdown(s.ctx(), ev)
	}
	s.t.Fatalf("session.do(%s)", typ)
	return nil
}

func (s *drive) ok(typ writer.EventType) {
	s.t.Helper()
	if err := s.do(typ); err != nil {
		s.t.Fatalf("%s: %v", typ, err)
	}
}

// TestPrepareSnapshotVetoesWALOutsideTheSet: the WAL lives in another
// directory tree (initdb --waldir); a set that does not hold it, or holds
// it at another instant than the data, is vetoed with
// INCONSISTENTSNAPSHOT naming both paths; one instant passes.
func TestPrepareSnapshotVetoesWALOutsideTheSet(t *testing.T) {
	walDir := filepath.Join(t.TempDir(), "wal")
	p := startServer(t, walDir)
	_, w := mustNew(t, Config{DSN: dsnApp(p, "lvss-veto")})
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		wal  writer.Placement
		veto bool
	}{
		{"WALNotInTheSet", writer.Placement{Path: walDir}, true},
		{"WALAtAnotherInstant", writer.Placement{Path: walDir, SnapshotID: uuid.New(), OriginalVolume: "/wal", Instant: 2}, true},
		{"OneInstant", writer.Placement{Path: walDir, SnapshotID: uuid.New(), OriginalVolume: "/wal", Instant: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, w, p.DataDir)
			s.placements = append(s.placements, tc.wal)
			s.prepareBackup()
			err := s.prepareSnapshot()
			if !tc.veto {
				if err != nil {
					t.Fatal(err)
				}
				waitConnections(t, p, "lvss-veto", 1)
				s.ok(writer.EventAbort)
				waitConnections(t, p, "lvss-veto", 0)
				return
			}
			f := writertest.AsFailure(t, err)
			if f.Code != vsserr.WriterErrorInconsistentSnapshot || !strings.Contains(f.Message, "data directory "+p.DataDir) ||
				!strings.Contains(f.Message, "WAL directory "+walDir) {
				t.Fatalf("PrepareSnapshot: %v", err)
			}
			t.Logf("veto: %s", f.Message)
			// The veto touches nothing on the server.
			waitConnections(t, p, "lvss-veto", 0)
			s.ok(writer.EventBackupShutdown)
		})
	}
}

// TestPrepareSnapshotNeedsCheckpointPrivilege: a role that may read the
// settings but not CHECKPOINT fails PrepareSnapshot with the server's
// SQLSTATE and message, and leaves no connection open; without the
// checkpoint it passes. A role that may not read data_directory fails
// Identify the same way.
func TestPrepareSnapshotNeedsCheckpointPrivilege(t *testing.T) {
	p := startServer(t, "")
	sql(t, p, "CREATE ROLE settings LOGIN IN ROLE pg_read_all_settings", "CREATE ROLE nobody LOGIN")

	_, w := mustNew(t, Config{DSN: p.DSN("postgres") + " user=nobody"})
	_, err := identify(t, w)
	f := writertest.AsFailure(t, err)
	if f.Code != vsserr.WriterErrorNonRetryable || f.ApplicationHR != SQLStateHRESULT("42501") ||
		!strings.Contains(f.Message, "pg_read_all_settings") || !strings.Contains(f.Message, "SQLSTATE 42501") {
		t.Fatalf("Identify as a role without pg_read_all_settings: %v", err)
	}

	_, w = mustNew(t, Config{DSN: dsnApp(p, "lvss-priv") + " user=settings"})
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	s := newSession(t, w, p.DataDir)
	s.prepareBackup()
	f = writertest.AsFailure(t, s.prepareSnapshot())
	if f.Code != vsserr.WriterErrorNonRetryable || f.ApplicationHR != SQLStateHRESULT("42501") ||
		!strings.Contains(f.Message, "CHECKPOINT") || !strings.Contains(f.Message, "must be superuser or have privileges of pg_checkpoint") {
		t.Fatalf("PrepareSnapshot: %v (application %s)", f, f.ApplicationHR.Hex())
	}
	t.Logf("PrepareSnapshot: %s", f)
	waitConnections(t, p, "lvss-priv", 0)

	_, w = mustNew(t, Config{DSN: dsnApp(p, "lvss-priv") + " user=settings", NoCheckpoint: true})
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	s = newSession(t, w, p.DataDir)
	s.prepareBackup()
	if err := s.prepareSnapshot(); err != nil {
		t.Fatalf("PrepareSnapshot without the checkpoint: %v", err)
	}
	s.ok(writer.EventFreeze)
	s.ok(writer.EventThaw)
	waitConnections(t, p, "lvss-priv", 0)
}

// TestServerGoneAfterIdentify: the server stops after Identify. A session
// already past PrepareSnapshot completes (the snapshot needs nothing from
// the server) and is released; the next PrepareSnapshot fails RETRYABLE
// with the connection's message, while Identify declares the stopped
// cluster from its data directory.
func TestServerGoneAfterIdentify(t *testing.T) {
	p := startServer(t, "")
	_, w := mustNew(t, Config{DSN: p.DSN("postgres"), ConnectTimeout: 2 * time.Second})
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	s := newSession(t, w, p.DataDir)
	s.prepareBackup()
	if err := s.prepareSnapshot(); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	s.ok(writer.EventFreeze)
	s.ok(writer.EventThaw)
	s.ok(writer.EventBackupShutdown)

	s = newSession(t, w, p.DataDir)
	s.prepareBackup()
	f := writertest.AsFailure(t, s.prepareSnapshot())
	if f.Code != vsserr.WriterErrorRetryable || !strings.Contains(f.Message, "connecting to the server") ||
		!strings.Contains(f.Message, ".s.PGSQL."+strconv.Itoa(p.Port)) {
		t.Fatalf("PrepareSnapshot: %v", f)
	}
	t.Logf("PrepareSnapshot: %s", f.Message)
	s.ok(writer.EventBackupShutdown)
	// The server is stopped, not just unreachable: Identify declares the
	// cluster from its data directory (L40: a restore stops the server,
	// and a restore session needs the writer identified).
	md, err := identify(t, w)
	if err != nil || len(md.Components) != 1 || !strings.Contains(md.Components[0].Caption, "server stopped") {
		t.Fatalf("Identify with the server stopped: %v %+v", err, md)
	}
}

// TestLayoutChangeAfterIdentifyIsRefused: a tablespace created after
// Identify is missing from the requester's metadata: PrepareSnapshot fails
// RETRYABLE, saying so; after the next Identify the tablespace is declared
// and must share the data's instant.
func TestLayoutChangeAfterIdentifyIsRefused(t *testing.T) {
	p := startServer(t, "")
	_, w := mustNew(t, Config{DSN: p.DSN("postgres")})
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	tsDir := filepath.Join(t.TempDir(), "ts")
	p.MakeDir(tsDir)
	sql(t, p, "CREATE TABLESPACE late LOCATION '"+tsDir+"'")
	s := newSession(t, w, p.DataDir, tsDir)
	s.prepareBackup()
	f := writertest.AsFailure(t, s.prepareSnapshot())
	if f.Code != vsserr.WriterErrorRetryable || !strings.Contains(f.Message, "tablespace late was created in "+tsDir) ||
		!strings.Contains(f.Message, "gather writer metadata again") {
		t.Fatalf("PrepareSnapshot: %v", f)
	}
	s.ok(writer.EventBackupShutdown)

	md, err := identify(t, w)
	if err != nil {
		t.Fatal(err)
	}
	if fs := md.Components[0].Files; len(fs) != 2 || fs[1].Path != tsDir {
		t.Fatalf("file sets after the new Identify: %+v", fs)
	}
	s = newSession(t, w, p.DataDir) // the tablespace is in no snapshot
	s.prepareBackup()
	f = writertest.AsFailure(t, s.prepareSnapshot())
	if f.Code != vsserr.WriterErrorInconsistentSnapshot || !strings.Contains(f.Message, "tablespace late "+tsDir) {
		t.Fatalf("PrepareSnapshot: %v", f)
	}
	s = newSession(t, w, p.DataDir, tsDir)
	s.prepareBackup()
	if err := s.prepareSnapshot(); err != nil {
		t.Fatal(err)
	}
	s.ok(writer.EventAbort)
}

// TestHoldRecords: each release of a frozen session logs exactly one
// "postgres released" record with exactly the attributes the tooling
// reads, by the event that released it; a second Abort logs nothing.
func TestHoldRecords(t *testing.T) {
	p := startServer(t, "")
	var buf syncBuffer
	_, w := mustNew(t, Config{DSN: p.DSN("postgres"), Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	thawed := newSession(t, w, p.DataDir)
	thawed.prepareBackup()
	if err := thawed.prepareSnapshot(); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	thawed.ok(writer.EventFreeze)
	time.Sleep(20 * time.Millisecond)
	thawed.ok(writer.EventThaw)
	thawed.ok(writer.EventAbort) // nothing left: no record
	thawed.ok(writer.EventBackupShutdown)

	aborted := newSession(t, w, p.DataDir)
	aborted.prepareBackup()
	if err := aborted.prepareSnapshot(); err != nil {
		t.Fatal(err)
	}
	aborted.ok(writer.EventFreeze)
	aborted.ok(writer.EventAbort)
	aborted.ok(writer.EventAbort)
	aborted.ok(writer.EventBackupShutdown)

	unfrozen := newSession(t, w, p.DataDir) // released before Freeze: no hold
	unfrozen.prepareBackup()
	if err := unfrozen.prepareSnapshot(); err != nil {
		t.Fatal(err)
	}
	unfrozen.ok(writer.EventBackupShutdown)

	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "postgres released" {
			recs = append(recs, m)
		}
	}
	if len(recs) != 2 {
		t.Fatalf("%d hold records, want 2 (Thaw, Abort): %v", len(recs), recs)
	}
	for i, want := range []struct {
		s  *drive
		by string
	}{{thawed, "Thaw"}, {aborted, "Abort"}} {
		r := recs[i]
		var keys []string
		for k := range r {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if w := []string{"by", "freeze_at", "held", "level", "locked_at", "msg", "release_at", "session", "time"}; !slices.Equal(keys, w) {
			t.Errorf("record %d has %v, want %v", i, keys, w)
		}
		if r["session"] != want.s.id.String() || r["by"] != want.by || r["level"] != "INFO" {
			t.Errorf("record %d: %v, want session %s by %s", i, r, want.s.id, want.by)
		}
		times := map[string]time.Time{}
		for _, k := range []string{"freeze_at", "locked_at", "release_at"} {
			ts, err := time.Parse(time.RFC3339Nano, r[k].(string))
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			times[k] = ts
		}
		if times["freeze_at"].Before(before) || times["locked_at"].Before(times["freeze_at"]) || times["release_at"].Before(times["locked_at"]) {
			t.Errorf("record %d: times out of order: %v", i, times)
		}
		// The record's times are wall clock; held is measured on the
		// monotonic clock: they agree to well within a millisecond.
		if held := time.Duration(r["held"].(float64)); (held - times["release_at"].Sub(times["locked_at"])).Abs() > time.Millisecond {
			t.Errorf("record %d: held %s, want release_at - locked_at", i, held)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPostSnapshotRecordsBackupMetadata: over the wire, a component-mode
// backup gets the cluster's identity, layout and the checkpoint recovery
// starts from in the component's backup metadata.
func TestPostSnapshotRecordsBackupMetadata(t *testing.T) {
	p := startServer(t, "")
	id, w := mustNew(t, Config{DSN: p.DSN("postgres"), InstanceName: "main"})
	co := writertest.Serve(t, id, w)
	inst := co.Writer(0).InstanceID

	sid, set, snap := uuid.New(), uuid.New(), uuid.New()
	bcd := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull, SnapshotSetID: set}
	if err := bcd.AddComponent(inst, ClassID, "main", 0, vss.ComponentFileGroup, "", ComponentName); err != nil {
		t.Fatal(err)
	}
	b, err := bcd.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	send := func(typ v1.EventType, withBCD bool) *v1.EventResult {
		t.Helper()
		n++
		ev := &v1.Event{Id: n, Type: typ, SessionId: sid.String(), SnapshotSetId: set.String(), Context: int32(vss.CtxBackup),
			BackupType: int32(vss.BackupFull), SelectComponents: true, TimeoutMs: 20000, Volumes: []string{"/"},
			Placements: []*v1.PathPlacement{{Path: p.DataDir, SnapshotId: snap.String(), OriginalVolume: "/", Instant: 1, DevicePath: t.TempDir()}}}
		if typ == v1.EventType_EVENT_IDENTIFY {
			ev.SessionId, ev.SnapshotSetId = "", ""
		}
		if withBCD {
			ev.BcdXml = string(b)
		}
		res, err := co.Send(context.Background(), 0, ev)
		if err != nil {
			t.Fatal(err)
		}
		if res.GetFailure() != 0 {
			t.Fatalf("%s: %s %s", writer.EventType(typ), vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
		}
		return res
	}
	send(v1.EventType_EVENT_IDENTIFY, false)
	send(v1.EventType_EVENT_PREPARE_BACKUP, true)
	send(v1.EventType_EVENT_PREPARE_SNAPSHOT, false)
	send(v1.EventType_EVENT_FREEZE, false)
	send(v1.EventType_EVENT_THAW, false)
	res := send(v1.EventType_EVENT_POST_SNAPSHOT, true)
	got, err := document.ParseBackupComponents([]byte(res.GetBcdXml()))
	if err != nil {
		t.Fatalf("PostSnapshot's document: %v", err)
	}
	c := got.Writer(inst).Component("", ComponentName)
	if c == nil || c.BackupMetadata == nil {
		t.Fatalf("PostSnapshot set no backup metadata: %s", res.GetBcdXml())
	}
	var info backupInfo
	if err := json.Unmarshal([]byte(*c.BackupMetadata), &info); err != nil {
		t.Fatalf("backup metadata %q: %v", *c.BackupMetadata, err)
	}
	conn, err := pgx.Connect(context.Background(), p.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var (
		raw  int64 // the server shows the unsigned identifier as a bigint
		redo string
	)
	if err := conn.QueryRow(context.Background(), "SELECT system_identifier, redo_lsn::text FROM pg_control_system(), pg_control_checkpoint()").Scan(&raw, &redo); err != nil {
		t.Fatal(err)
	}
	sysid := strconv.FormatUint(uint64(raw), 10)
	if info.Mode != ModeSnapshot || info.SystemIdentifier != sysid || info.DataDirectory != p.DataDir ||
		info.WALDirectory != filepath.Join(p.DataDir, "pg_wal") || info.RedoLSN != redo || info.ServerVersionNum < MinServerVersion {
		t.Errorf("backup metadata %+v; server: system identifier %s, redo %s", info, sysid, redo)
	}
	t.Logf("backup metadata: %s", *c.BackupMetadata)
	send(v1.EventType_EVENT_BACKUP_SHUTDOWN, false)
}

// TestCloseReleasesAPreparedSession: the host's last resort closes the
// pinned connection and refuses later events.
func TestCloseReleasesAPreparedSession(t *testing.T) {
	p := startServer(t, "")
	_, w := mustNew(t, Config{DSN: dsnApp(p, "lvss-close")})
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	s := newSession(t, w, p.DataDir)
	s.prepareBackup()
	if err := s.prepareSnapshot(); err != nil {
		t.Fatal(err)
	}
	s.ok(writer.EventFreeze)
	waitConnections(t, p, "lvss-close", 1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	waitConnections(t, p, "lvss-close", 0)
	if err := s.prepareSnapshot(); err == nil {
		t.Fatal("PrepareSnapshot after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestHungServer: a server that accepts connections and answers nothing
// (all its processes stopped). Identify gives up at the connect timeout,
// RETRYABLE; over the wire, a PrepareForSnapshot whose deadline comes
// first is reported VSS_E_WRITERERROR_TIMEOUT by the SDK.
func TestHungServer(t *testing.T) {
	p := startServer(t, "")
	_, quick := mustNew(t, Config{DSN: p.DSN("postgres"), ConnectTimeout: 300 * time.Millisecond})
	id, w := mustNew(t, Config{DSN: p.DSN("postgres")}) // 10 s connect timeout
	co := writertest.Serve(t, id, w)
	sid := uuid.New().String()
	send := func(n uint64, typ v1.EventType, timeout time.Duration) *v1.EventResult {
		t.Helper()
		res, err := co.Send(context.Background(), 0, &v1.Event{Id: n, Type: typ, SessionId: sid, Context: int32(vss.CtxBackup),
			TimeoutMs: timeout.Milliseconds(), Volumes: []string{"/"},
			Placements: []*v1.PathPlacement{{Path: p.DataDir, SnapshotId: uuid.New().String(), OriginalVolume: "/", Instant: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for i, typ := range []v1.EventType{v1.EventType_EVENT_IDENTIFY, v1.EventType_EVENT_PREPARE_BACKUP} {
		if res := send(uint64(i+1), typ, 10*time.Second); res.GetFailure() != 0 {
			t.Fatalf("%s: %s", writer.EventType(typ), res.GetApplicationMessage())
		}
	}

	p.Pause()
	defer p.Resume()
	start := time.Now()
	_, err := identify(t, quick)
	took := time.Since(start)
	f := writertest.AsFailure(t, err)
	if f.Code != vsserr.WriterErrorRetryable || !strings.Contains(f.Message, "connecting to the server") || !strings.Contains(f.Message, "timeout") {
		t.Fatalf("Identify of a hung server: %v", err)
	}
	if took > 10*time.Second { // the event's own deadline is far longer
		t.Errorf("Identify took %s with a 300ms connect timeout", took)
	}
	t.Logf("Identify gave up after %s: %s", took.Round(time.Millisecond), f.Message)

	res := send(3, v1.EventType_EVENT_PREPARE_SNAPSHOT, time.Second)
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorTimeout {
		t.Fatalf("PrepareSnapshot of a hung server answered %s %q, want %s", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage(), vsserr.WriterErrorTimeout)
	}
	t.Logf("PrepareSnapshot: %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	p.Resume()
	if res := send(4, v1.EventType_EVENT_BACKUP_SHUTDOWN, 10*time.Second); res.GetFailure() != 0 {
		t.Fatalf("BackupShutdown: %s", res.GetApplicationMessage())
	}
}

// TestPrepareSnapshotVetoesADataDirectoryOutsideTheSet: the requester
// included the cluster but not its volume.
func TestPrepareSnapshotVetoesADataDirectoryOutsideTheSet(t *testing.T) {
	p := startServer(t, "")
	_, w := mustNew(t, Config{DSN: p.DSN("postgres")})
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	s := newSession(t, w)
	s.placements = []writer.Placement{{Path: p.DataDir}}
	s.prepareBackup()
	f := writertest.AsFailure(t, s.prepareSnapshot())
	if f.Code != vsserr.WriterErrorInconsistentSnapshot || !strings.Contains(f.Message, "data directory "+p.DataDir+" is not captured") ||
		!strings.Contains(f.Message, "is in no snapshot of the set") {
		t.Fatalf("PrepareSnapshot: %v", f)
	}
	s.ok(writer.EventBackupShutdown)
}

// --mode pitr needs WAL archiving: Identify fails, saying what to set,
// against a server that does not archive (the test clusters do not).
func TestPITRNeedsArchiving(t *testing.T) {
	p := startServer(t, "")
	_, w := mustNew(t, Config{DSN: p.DSN("postgres"), Mode: ModePITR})
	_, err := identify(t, w)
	var f *writer.Failure
	if !errors.As(err, &f) || f.Code != vsserr.WriterErrorNonRetryable || !strings.Contains(err.Error(), "archive_mode is off") ||
		!strings.Contains(err.Error(), "archive_command") {
		t.Fatalf("Identify in pitr mode without archiving: %v", err)
	}
}
