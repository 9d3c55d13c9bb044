package sqlite

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// restoreEvent sends PreRestore or PostRestore with a restore document
// selecting db's component with the given file restore status, and
// returns the answer and the writer's edited component.
func restoreEvent(t *testing.T, co *writertest.Coordinator, id writer.Identity, typ v1.EventType, db string, st vss.FileRestoreStatus) (*v1.EventResult, *document.ComponentState) {
	t.Helper()
	inst := co.Writer(0).InstanceID
	bcd := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull, RestoreType: vss.RestoreByCopy}
	if err := bcd.AddComponent(inst, id.ClassID, id.InstanceName, 0, vss.ComponentDatabase, "", db); err != nil {
		t.Fatal(err)
	}
	c := bcd.Writer(inst).Component("", db)
	c.BackupSucceeded, c.SelectedForRestore, c.RestoreTarget, c.FileRestoreStatus = true, true, vss.RTOriginal, st
	b, err := bcd.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	res, err := co.Send(context.Background(), 0, &v1.Event{Id: uint64(typ), Type: typ, SessionId: uuid.NewString(), SnapshotSetId: uuid.Nil.String(),
		SelectComponents: true, RestoreType: int32(vss.RestoreByCopy), TimeoutMs: 20000, BcdXml: string(b)})
	if err != nil {
		t.Fatal(err)
	}
	if x := res.GetBcdXml(); x != "" {
		edited, err := document.ParseBackupComponents([]byte(x))
		if err != nil {
			t.Fatal(err)
		}
		c = edited.Writer(inst).Component("", db)
	}
	return res, c
}

// TestPreRestoreRefusesWhileInUse: another process with the database open
// (a read transaction, or just an open connection) makes PreRestore fail
// RETRYABLE naming its PID; once it exits, PreRestore succeeds.
func TestPreRestoreRefusesWhileInUse(t *testing.T) {
	db := newDB(t, t.TempDir(), "app.db", true)
	id, w := mustNew(t, Config{Databases: []string{db}})
	co := writertest.Serve(t, id, w)
	h := hold(t, "read", db)
	res, c := restoreEvent(t, co, id, v1.EventType_EVENT_PRE_RESTORE, db, vss.RSUndefined)
	msg := res.GetApplicationMessage()
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorRetryable || !strings.Contains(msg, "PID "+strconv.Itoa(h.cmd.Process.Pid)) ||
		!strings.Contains(msg, "stop the application") || c.PreRestoreFailureMsg != msg {
		t.Fatalf("PreRestore while in use: %s %q (component message %q)", vsserr.HRESULT(res.GetFailure()), msg, c.PreRestoreFailureMsg)
	}
	t.Logf("refused: %s", msg)
	h.stop()
	if res, _ := restoreEvent(t, co, id, v1.EventType_EVENT_PRE_RESTORE, db, vss.RSUndefined); res.GetFailure() != 0 {
		t.Fatalf("PreRestore with the application stopped: %s", res.GetApplicationMessage())
	}
}

// TestPostRestoreChecksIntegrity: a restored database that is damaged
// fails PostRestore NONRETRYABLE with SQLite's findings; VSS_RS_NONE
// leaves it alone; VSS_RS_FAILED fails without looking.
func TestPostRestoreChecksIntegrity(t *testing.T) {
	dir := t.TempDir()
	db := newDB(t, dir, "app.db", false)
	conn, err := sql.Open("sqlite", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if _, err := conn.Exec("INSERT INTO probe(x) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec("CREATE INDEX probe_x ON probe(x)"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	id, w := mustNew(t, Config{Databases: []string{db}})
	co := writertest.Serve(t, id, w)
	if res, _ := restoreEvent(t, co, id, v1.EventType_EVENT_POST_RESTORE, db, vss.RSAll); res.GetFailure() != 0 {
		t.Fatalf("PostRestore of a sound database: %s", res.GetApplicationMessage())
	}
	// Damage the index's page: the table still reads, the check does not pass.
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	page := 4096
	if len(b) < 3*page {
		t.Fatalf("database of %d bytes, want at least three pages", len(b))
	}
	last := len(b) - page
	for i := last + 100; i < last+400; i++ {
		b[i] = 0x5A
	}
	if err := os.WriteFile(db, b, 0o644); err != nil {
		t.Fatal(err)
	}
	res, c := restoreEvent(t, co, id, v1.EventType_EVENT_POST_RESTORE, db, vss.RSAll)
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorNonRetryable || !strings.Contains(res.GetApplicationMessage(), db) ||
		c.PostRestoreFailureMsg != res.GetApplicationMessage() {
		t.Fatalf("PostRestore of a damaged database: %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
	t.Logf("damaged: %s", res.GetApplicationMessage())
	if res, _ := restoreEvent(t, co, id, v1.EventType_EVENT_POST_RESTORE, db, vss.RSNone); res.GetFailure() != 0 {
		t.Fatalf("PostRestore with VSS_RS_NONE: %s", res.GetApplicationMessage())
	}
	res, _ = restoreEvent(t, co, id, v1.EventType_EVENT_POST_RESTORE, db, vss.RSFailed)
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorNonRetryable || !strings.Contains(res.GetApplicationMessage(), "restore it again") {
		t.Fatalf("PostRestore with VSS_RS_FAILED: %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
}

// TestIdentifyAfterTheDatabaseIsGone: a database the writer identified
// and that is then removed (lost, or moved away for a restore) is still
// declared, as it was, so that a restore session finds the writer.
func TestIdentifyAfterTheDatabaseIsGone(t *testing.T) {
	db := newDB(t, t.TempDir(), "app.db", true)
	_, w := mustNew(t, Config{Databases: []string{db}})
	before, err := identify(t, w)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "-wal", "-shm"} {
		os.Remove(db + s)
	}
	after, err := identify(t, w)
	if err != nil {
		t.Fatalf("Identify after the database was removed: %v", err)
	}
	if len(after.Components) != 1 || len(after.Components[0].DatabaseLogFiles) != 1 ||
		after.Components[0].DatabaseLogFiles[0] != before.Components[0].DatabaseLogFiles[0] {
		t.Errorf("declared %+v, before %+v", after.Components, before.Components)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("Identify created the database: %v", err)
	}
}
