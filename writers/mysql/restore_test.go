package mysql

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// restart starts a server again on a stopped one's data directory, for t.
func restart(t *testing.T, dataDir string) *server {
	t.Helper()
	m := testenv.StartMariaDBCopy(t, dataDir, testenv.MariaDBOptions{})
	db, err := sql.Open("mysql", m.DSN(m.OSUser, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &server{MariaDB: m, app: db}
}

func (s *server) rows(t *testing.T) int {
	t.Helper()
	var n int
	if err := s.app.QueryRow("SELECT count(*) FROM app.probe").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConformanceRestore runs the suite's restore subtests (and the rest)
// once: the server is stopped before each restore session, as the
// writer's restore procedure says, and started again on the same data
// directory for the next subtest. After VSS_RS_ALL a server started on
// the files has the rows committed before the backup.
func TestConformanceRestore(t *testing.T) {
	first := startServer(t, testenv.MariaDBOptions{})
	first.MustExec("INSERT INTO app.probe (at) VALUES (NOW(6)), (NOW(6)), (NOW(6))")
	dataDir := first.DataDir
	var (
		mu  sync.Mutex
		cur = first
	)
	current := func() *server { mu.Lock(); defer mu.Unlock(); return cur }
	writertest.Run(t, func(t *testing.T) (writer.Identity, writer.Writer) {
		mu.Lock()
		if !cur.Running() {
			cur = restart(t, dataDir)
		}
		s := cur
		mu.Unlock()
		return mustNew(t, Config{DSN: s.dsn(), InstanceName: "test"})
	}, writertest.Options{
		CheckFrozen:    func(t *testing.T) { current().mustBeFrozen(t) },
		CheckThawed:    func(t *testing.T) { current().mustBeReleased(t) },
		PrepareRestore: func(t *testing.T) { current().Stop() },
		CheckRestored: func(t *testing.T, st vss.FileRestoreStatus) {
			if st != vss.RSAll {
				return
			}
			s := restart(t, dataDir)
			if n := s.rows(t); n < 3 {
				t.Errorf("a server started on the restored files has %d rows, want the 3 committed before the backup", n)
			}
			s.Stop()
		},
	})
}

// restoreEvent sends PreRestore or PostRestore selecting the server's
// component (named by its data directory) with a file restore status.
func restoreEvent(t *testing.T, co *writertest.Coordinator, id writer.Identity, typ v1.EventType, dataDir string, st vss.FileRestoreStatus) (*v1.EventResult, *document.ComponentState) {
	t.Helper()
	return restoreEventIn(t, co, id, uuid.New(), 20000, typ, dataDir, st)
}

// restoreEventIn is restoreEvent in session sid, with timeoutMs for the
// event.
func restoreEventIn(t *testing.T, co *writertest.Coordinator, id writer.Identity, sid uuid.UUID, timeoutMs int64, typ v1.EventType,
	dataDir string, st vss.FileRestoreStatus) (*v1.EventResult, *document.ComponentState) {
	t.Helper()
	inst := co.Writer(0).InstanceID
	bcd := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull, RestoreType: vss.RestoreByCopy}
	if err := bcd.AddComponent(inst, id.ClassID, id.InstanceName, 0, vss.ComponentDatabase, "", dataDir); err != nil {
		t.Fatal(err)
	}
	c := bcd.Writer(inst).Component("", dataDir)
	c.BackupSucceeded, c.SelectedForRestore, c.RestoreTarget, c.FileRestoreStatus = true, true, vss.RTOriginal, st
	b, err := bcd.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	res, err := co.Send(context.Background(), 0, &v1.Event{Id: uint64(typ), Type: typ, SessionId: sid.String(), SnapshotSetId: uuid.Nil.String(),
		SelectComponents: true, RestoreType: int32(vss.RestoreByCopy), TimeoutMs: timeoutMs, BcdXml: string(b)})
	if err != nil {
		t.Fatal(err)
	}
	if x := res.GetBcdXml(); x != "" {
		edited, err := document.ParseBackupComponents([]byte(x))
		if err != nil {
			t.Fatal(err)
		}
		c = edited.Writer(inst).Component("", dataDir)
	}
	return res, c
}

// TestRestoreRefusesARunningServerAndChecksTheFiles: PreRestore fails
// RETRYABLE while the server runs, naming the PID of its pid file; with
// the server stopped Identify declares the files it used, PreRestore
// passes, and PostRestore with VSS_RS_ALL passes the server's own files
// but fails NONRETRYABLE when the system tablespace is missing.
func TestRestoreRefusesARunningServerAndChecksTheFiles(t *testing.T) {
	s := startServer(t, testenv.MariaDBOptions{})
	id, w := mustNew(t, Config{DSN: s.dsn(), InstanceName: "test"})
	co := writertest.Serve(t, id, w)
	identify := func() *v1.EventResult {
		t.Helper()
		res, err := co.Send(context.Background(), 0, &v1.Event{Id: 1, Type: v1.EventType_EVENT_IDENTIFY, TimeoutMs: 20000})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := identify(); res.GetFailure() != 0 {
		t.Fatal(res.GetApplicationMessage())
	}
	var pidFile string
	if err := s.app.QueryRow("SELECT @@pid_file").Scan(&pidFile); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	dataDir, err := filepath.EvalSymlinks(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	res, c := restoreEvent(t, co, id, v1.EventType_EVENT_PRE_RESTORE, dataDir, vss.RSUndefined)
	msg := res.GetApplicationMessage()
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorRetryable || !strings.Contains(msg, "(PID "+strconv.Itoa(pid)+")") ||
		!strings.Contains(msg, "mariadb-admin shutdown") || c.PreRestoreFailureMsg != msg {
		t.Fatalf("PreRestore with the server running: %s %q", vsserr.HRESULT(res.GetFailure()), msg)
	}
	t.Logf("refused: %s", msg)

	s.Stop()
	if res := identify(); res.GetFailure() != 0 || !strings.Contains(res.GetWmdXml(), "server stopped") {
		t.Fatalf("Identify with the server stopped: %s", res.GetApplicationMessage())
	}
	if res, _ := restoreEvent(t, co, id, v1.EventType_EVENT_PRE_RESTORE, dataDir, vss.RSUndefined); res.GetFailure() != 0 {
		t.Fatalf("PreRestore with the server stopped: %s", res.GetApplicationMessage())
	}
	if res, _ := restoreEvent(t, co, id, v1.EventType_EVENT_POST_RESTORE, dataDir, vss.RSAll); res.GetFailure() != 0 {
		t.Fatalf("PostRestore of the server's own files: %s", res.GetApplicationMessage())
	}
	if err := os.Rename(filepath.Join(dataDir, "ibdata1"), filepath.Join(dataDir, "ibdata1.away")); err != nil {
		t.Fatal(err)
	}
	res, c = restoreEvent(t, co, id, v1.EventType_EVENT_POST_RESTORE, dataDir, vss.RSAll)
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorNonRetryable || !strings.Contains(res.GetApplicationMessage(), "ibdata1") ||
		c.PostRestoreFailureMsg != res.GetApplicationMessage() {
		t.Fatalf("PostRestore without the system tablespace: %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
	t.Logf("incomplete: %s", res.GetApplicationMessage())
	res, _ = restoreEvent(t, co, id, v1.EventType_EVENT_POST_RESTORE, dataDir, vss.RSFailed)
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorNonRetryable || !strings.Contains(res.GetApplicationMessage(), "restore them again") {
		t.Fatalf("PostRestore with VSS_RS_FAILED: %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
	if res, _ := restoreEvent(t, co, id, v1.EventType_EVENT_POST_RESTORE, dataDir, vss.RSNone); res.GetFailure() != 0 {
		t.Fatalf("PostRestore with VSS_RS_NONE: %s", res.GetApplicationMessage())
	}
}
