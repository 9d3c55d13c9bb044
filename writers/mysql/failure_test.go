package mysql

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// TestIdentifyDeclaresTheServersFiles: a server with its redo log, undo
// tablespaces and a table's file outside the data directory; Identify
// declares each where the server keeps it, and PrepareSnapshot vetoes a
// set that captures the redo log at another instant than the data.
func TestIdentifyDeclaresTheServersFiles(t *testing.T) {
	dir := t.TempDir()
	data, redo, undo, remote := filepath.Join(dir, "data"), filepath.Join(dir, "redo"), filepath.Join(dir, "undo"), filepath.Join(dir, "remote")
	s := startServer(t, testenv.MariaDBOptions{
		DataDir: data, Dirs: []string{redo, undo, remote},
		Args: []string{"--innodb-log-group-home-dir=" + redo, "--innodb-undo-directory=" + undo, "--innodb-undo-tablespaces=2"},
	})
	s.MustExec("CREATE TABLE app.far (id INT PRIMARY KEY) ENGINE=InnoDB DATA DIRECTORY='" + remote + "'")
	_, w := mustNew(t, Config{DSN: s.dsn()})
	md, err := identify(t, w)
	if err != nil {
		t.Fatal(err)
	}
	md.Identity.Usage, md.Identity.Source = vss.UsageUserData, vss.SourceTransactedDB // the SDK fills these
	if err := md.Validate(); err != nil {
		t.Fatalf("invalid metadata: %v", err)
	}
	if len(md.Components) != 1 {
		t.Fatalf("%d components, want one for the server", len(md.Components))
	}
	c := md.Components[0]
	if c.Type != vss.ComponentDatabase || c.Name != data || !c.Selectable || !strings.Contains(c.Caption, "MariaDB 10.") {
		t.Errorf("component %+v", c)
	}
	sets := func(fds []document.FileDesc) []string {
		var out []string
		for _, f := range fds {
			out = append(out, filepath.Join(f.Path, f.Filespec))
		}
		return out
	}
	for _, want := range []string{data + "/*", data + "/mysql/*", data + "/app/*", undo + "/undo*", remote + "/app/far.ibd"} {
		if !slices.Contains(sets(c.DatabaseFiles), want) {
			t.Errorf("database files %v lack %s", sets(c.DatabaseFiles), want)
		}
	}
	for _, want := range []string{redo + "/ib_logfile*", data + "/binlog.*", data + "/aria_log*"} {
		if !slices.Contains(sets(c.DatabaseLogFiles), want) {
			t.Errorf("log files %v lack %s", sets(c.DatabaseLogFiles), want)
		}
	}
	var excluded []string
	for _, f := range md.ExcludeFiles {
		excluded = append(excluded, filepath.Join(f.Path, f.Filespec))
	}
	if !slices.Contains(excluded, data+"/ibtmp1") {
		t.Errorf("exclusions %v lack the temporary tablespace", excluded)
	}
	if again, _ := identify(t, w); fmt.Sprint(again.Components) != fmt.Sprint(md.Components) {
		t.Error("a second Identify declared other files")
	}

	// The redo log on a snapshot of its own, taken at another instant.
	sess := newSession(t, w)
	sess.placements = []writer.Placement{
		{Path: "/", SnapshotID: uuid.New(), OriginalVolume: "/", Instant: 1},
		{Path: redo, SnapshotID: uuid.New(), OriginalVolume: redo, Instant: 2},
	}
	err = w.PrepareSnapshot(sess.ctx(), sess.event(writer.EventPrepareSnapshot))
	if !errors.Is(err, vsserr.WriterErrorInconsistentSnapshot) || !strings.Contains(err.Error(), redo) {
		t.Fatalf("PrepareSnapshot with the redo log at another instant: %v", err)
	}
	s.mustHaveNoWriterSessions(t, "after the vetoing PrepareSnapshot")
	// The remote table's directory in no snapshot at all.
	sess.placements = []writer.Placement{
		{Path: "/", SnapshotID: uuid.New(), OriginalVolume: "/", Instant: 1},
		{Path: remote, SnapshotID: uuid.Nil, OriginalVolume: remote},
	}
	err = w.PrepareSnapshot(sess.ctx(), sess.event(writer.EventPrepareSnapshot))
	if !errors.Is(err, vsserr.WriterErrorInconsistentSnapshot) || !strings.Contains(err.Error(), remote) {
		t.Fatalf("PrepareSnapshot with a table's directory outside the set: %v", err)
	}
	// Everything at one instant, but copied file by file (the copy
	// provider): the server flushes pages while its commits are blocked.
	sess.placements = []writer.Placement{{Path: "/", SnapshotID: uuid.New(), OriginalVolume: "/", Instant: 1, FileByFile: true}}
	err = w.PrepareSnapshot(sess.ctx(), sess.event(writer.EventPrepareSnapshot))
	if !errors.Is(err, vsserr.WriterErrorInconsistentSnapshot) || !strings.Contains(err.Error(), "copied file by file") {
		t.Fatalf("PrepareSnapshot with the files copied file by file: %v", err)
	}
	s.mustHaveNoWriterSessions(t, "after the vetoing PrepareSnapshot")
}

// TestIdentifyFailsWhenTheServerIsUnreachable: the driver's message, with
// where the writer tried, is Identify's error; over the wire it reaches
// the coordinator.
func TestIdentifyFailsWhenTheServerIsUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nothing.sock")
	for _, tc := range []struct{ dsn, want string }{
		{"lvss@unix(" + sock + ")/", "no such file or directory"},
		{"lvss@tcp(127.0.0.1:1)/", "connection refused"},
	} {
		_, w := mustNew(t, Config{DSN: tc.dsn})
		start := time.Now()
		_, err := identify(t, w)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), w.Server()) {
			t.Errorf("Identify with %s: %v, want the driver's %q and where", tc.dsn, err, tc.want)
		} else if f := writertest.AsFailure(t, err); f.Code != vsserr.WriterErrorRetryable {
			t.Errorf("Identify with %s: code %s, want RETRYABLE (a server not up yet)", tc.dsn, f.Code)
		}
		if took := time.Since(start); took > 8*time.Second { // a refusal is answered at once; no retrying
			t.Errorf("Identify took %s to fail", took)
		}
	}

	id, w := mustNew(t, Config{DSN: "lvss@unix(" + sock + ")/"})
	co := writertest.Serve(t, id, w)
	res, err := co.Send(context.Background(), 0, &v1.Event{Id: 1, Type: v1.EventType_EVENT_IDENTIFY, TimeoutMs: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetFailure() == 0 || !strings.Contains(res.GetApplicationMessage(), sock) {
		t.Fatalf("Identify answered %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
}

// TestServerRefusals: the server's own error number and text, with the
// right failure code, for an account that cannot log in or lacks a
// privilege; PrepareSnapshot fails before anything is held.
func TestServerRefusals(t *testing.T) {
	s := startServer(t, testenv.MariaDBOptions{})
	s.MustExec(`CREATE USER noreload@localhost IDENTIFIED BY 'pw'; GRANT BINLOG MONITOR ON *.* TO noreload@localhost;
		CREATE USER nomonitor@localhost IDENTIFIED BY 'pw'; GRANT RELOAD ON *.* TO nomonitor@localhost;`)

	_, w := mustNew(t, Config{DSN: s.DSN(backupUser, "wrong")})
	_, err := identify(t, w)
	if f := writertest.AsFailure(t, err); f.ApplicationHR != 0xA0000000|erAccessDenied || f.Code != vsserr.WriterErrorNonRetryable ||
		!strings.Contains(f.Message, "Access denied for user 'lvss'@'localhost'") {
		t.Errorf("Identify with a wrong password: %v", err)
	}

	for _, tc := range []struct {
		user     string
		strategy Strategy
		want     string
	}{
		{"noreload", StrategyBackupStage, "RELOAD"},
		{"noreload", StrategyFTWRL, "RELOAD"},
		{"nomonitor", StrategyBackupStage, "BINLOG MONITOR"},
	} {
		_, w := mustNew(t, Config{DSN: s.DSN(tc.user, "pw"), Strategy: tc.strategy})
		sess := newSession(t, w)
		err := sess.prepare()
		f := writertest.AsFailure(t, err)
		if f.Code != vsserr.WriterErrorNonRetryable || f.ApplicationHR != 0xA0000000|erSpecificAccess || !strings.Contains(f.Message, tc.want) {
			t.Errorf("%s, %s: PrepareSnapshot: %v (application %s)", tc.user, tc.strategy, err, f.ApplicationHR.Hex())
		}
		s.mustBeReleased(t)
	}
}

// TestLockWaitsFailRetryable: a table the application keeps write-locked
// makes the writer's lock statement wait; it gives up after the lock
// timeout with the server's error 1205, RETRYABLE, and holds nothing.
func TestLockWaitsFailRetryable(t *testing.T) {
	s := startServer(t, testenv.MariaDBOptions{})
	for _, strategy := range []Strategy{StrategyBackupStage, StrategyFTWRL} {
		t.Run(string(strategy), func(t *testing.T) {
			_, w := mustNew(t, Config{DSN: s.dsn(), Strategy: strategy, LockTimeout: time.Second})
			sess := newSession(t, w)
			if err := sess.prepare(); err != nil {
				t.Fatal(err)
			}
			unlock := s.holdTables(t)
			start := time.Now()
			err := sess.freeze()
			took := time.Since(start)
			f := writertest.AsFailure(t, err)
			if f.Code != vsserr.WriterErrorRetryable || f.ApplicationHR != 0xA00004B5 || !strings.Contains(f.Message, "Lock wait timeout exceeded") {
				t.Errorf("Freeze: %v (application %s)", err, f.ApplicationHR.Hex())
			}
			if took < time.Second || took > 15*time.Second {
				t.Errorf("Freeze gave up after %s with a 1s lock timeout", took)
			}
			unlock()
			s.mustBeReleased(t)
			if err := sess.abort(); err != nil {
				t.Errorf("Abort after the failed Freeze: %v", err)
			}
		})
	}

	// Another backup (mariadb-backup, a second writer) holds a backup
	// stage: the writer's BACKUP STAGE START waits, then fails.
	conn, err := s.app.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BACKUP STAGE START"); err != nil {
		t.Fatal(err)
	}
	_, w := mustNew(t, Config{DSN: s.dsn(), LockTimeout: time.Second})
	f := writertest.AsFailure(t, newSession(t, w).prepare())
	if f.Code != vsserr.WriterErrorRetryable || !strings.Contains(f.Message, "BACKUP STAGE START") || !strings.Contains(f.Message, "Lock wait timeout") {
		t.Errorf("PrepareSnapshot while another backup runs: %v", f)
	}
	conn.ExecContext(context.Background(), "BACKUP STAGE END")
	conn.Close()
	s.mustBeReleased(t)
}

// TestAbortCutsAFreezeWaitingForTheLock: over the SDK, an Abort arriving
// while Freeze waits in the server ends the wait at once, and the writer's
// session is gone from the server (no lock request of it is left queued).
func TestAbortCutsAFreezeWaitingForTheLock(t *testing.T) {
	s := startServer(t, testenv.MariaDBOptions{})
	id, w := mustNew(t, Config{DSN: s.dsn(), LockTimeout: time.Minute})
	co := writertest.Serve(t, id, w)

	sid := uuid.New().String()
	ev := func(n uint64, typ v1.EventType) *v1.Event {
		return &v1.Event{Id: n, Type: typ, SessionId: sid, Context: int32(vss.CtxBackup), TimeoutMs: 120000,
			Volumes:    []string{"/"},
			Placements: []*v1.PathPlacement{{Path: "/", SnapshotId: uuid.New().String(), OriginalVolume: "/", Instant: 1}}}
	}
	send := func(e *v1.Event) *v1.EventResult {
		t.Helper()
		res, err := co.Send(context.Background(), 0, e)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := send(&v1.Event{Id: 1, Type: v1.EventType_EVENT_IDENTIFY, TimeoutMs: 10000}); res.GetFailure() != 0 {
		t.Fatal(res.GetApplicationMessage())
	}
	for i, typ := range []v1.EventType{v1.EventType_EVENT_PREPARE_BACKUP, v1.EventType_EVENT_PREPARE_SNAPSHOT} {
		if res := send(ev(uint64(2+i), typ)); res.GetFailure() != 0 {
			t.Fatal(res.GetApplicationMessage())
		}
	}
	unlock := s.holdTables(t)
	frozen := make(chan *v1.EventResult, 1)
	go func() { res, _ := co.Send(context.Background(), 0, ev(4, v1.EventType_EVENT_FREEZE)); frozen <- res }()
	s.waitLockWait(t, backupUser, "BACKUP STAGE BLOCK_COMMIT") // Freeze now waits in the server
	start := time.Now()
	if res := send(ev(5, v1.EventType_EVENT_ABORT)); res.GetFailure() != 0 {
		t.Fatalf("Abort: %s", res.GetApplicationMessage())
	}
	res := <-frozen
	// The alternative is the minute's lock timeout: half of it tells the
	// two apart on any machine.
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("Freeze and Abort took %s after the Abort was sent", took)
	}
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorRetryable || !strings.Contains(res.GetApplicationMessage(), "Abort") {
		t.Errorf("the cut Freeze answered %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
	// The writer has closed its connection; the server ends the session
	// when it notices, a moment later on a busy machine.
	s.mustHaveNoWriterSessions(t, "after the Abort")
	unlock()
	s.mustBeReleased(t)
}

// TestThawAfterTheSessionWasKilled: someone kills the writer's session
// while it holds the server; the server released the commits before the
// snapshot's end, so Thaw fails (RETRYABLE) and says so: lvssd then
// records the snapshot as crash-consistent only.
func TestThawAfterTheSessionWasKilled(t *testing.T) {
	s := startServer(t, testenv.MariaDBOptions{})
	_, w := mustNew(t, Config{DSN: s.dsn()})
	sess := newSession(t, w)
	if err := sess.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := sess.freeze(); err != nil {
		t.Fatal(err)
	}
	s.mustBeFrozen(t)
	s.MustExec(fmt.Sprintf("KILL CONNECTION %d", w.held.id))
	if err := s.probeCommit(context.Background()); err != nil {
		t.Fatalf("the application is still held after the writer's session was killed: %v", err)
	}
	f := writertest.AsFailure(t, sess.thaw())
	if f.Code != vsserr.WriterErrorRetryable || !strings.Contains(f.Message, "commits may have run while the snapshot was taken") {
		t.Errorf("Thaw: %v", f)
	}
	s.mustBeReleased(t)
}

// TestPositionInTheBackupMetadata: over the SDK, PostSnapshot stores the
// binary log position and GTID of the frozen point in the component's
// backup metadata, as the server reported them while frozen (a commit
// after the thaw moves past them); a server without binary log gets a
// position without file.
func TestPositionInTheBackupMetadata(t *testing.T) {
	for _, binlog := range []bool{true, false} {
		t.Run(fmt.Sprintf("binlog=%v", binlog), func(t *testing.T) {
			s := startServer(t, testenv.MariaDBOptions{NoBinlog: !binlog})
			s.MustExec("INSERT INTO app.probe (at) VALUES (NOW(6))")
			id, w := mustNew(t, Config{DSN: s.dsn()})
			co := writertest.Serve(t, id, w)
			inst := co.Writer(0).InstanceID

			sid, set := uuid.New().String(), uuid.New().String()
			n := uint64(0)
			send := func(typ v1.EventType, bcd *document.BackupComponents) *v1.EventResult {
				t.Helper()
				n++
				ev := &v1.Event{Id: n, Type: typ, SessionId: sid, SnapshotSetId: set, Context: int32(vss.CtxBackup),
					BackupType: int32(vss.BackupFull), SelectComponents: true, TimeoutMs: 10000, Volumes: []string{"/"},
					Placements: []*v1.PathPlacement{{Path: "/", SnapshotId: uuid.New().String(), OriginalVolume: "/", Instant: 1}}}
				if bcd != nil {
					b, err := bcd.Marshal()
					if err != nil {
						t.Fatal(err)
					}
					ev.BcdXml = string(b)
				}
				res, err := co.Send(context.Background(), 0, ev)
				if err != nil {
					t.Fatal(err)
				}
				if res.GetFailure() != 0 {
					t.Fatalf("%s: %s %s", typ, vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
				}
				return res
			}
			res := send(v1.EventType_EVENT_IDENTIFY, nil)
			md, err := document.ParseWriterMetadata([]byte(res.GetWmdXml()))
			if err != nil {
				t.Fatal(err)
			}
			bcd := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull}
			c := md.Components[0]
			if err := bcd.AddComponent(inst, ClassID, "", md.BackupSchema, c.Type, c.LogicalPath, c.Name); err != nil {
				t.Fatal(err)
			}
			send(v1.EventType_EVENT_PREPARE_BACKUP, bcd)
			send(v1.EventType_EVENT_PREPARE_SNAPSHOT, nil)
			send(v1.EventType_EVENT_FREEZE, nil)
			frozen := s.MustExec("SHOW MASTER STATUS")
			gtid := s.MustExec("SELECT @@gtid_binlog_pos")
			send(v1.EventType_EVENT_THAW, nil)
			s.MustExec("INSERT INTO app.probe (at) VALUES (NOW(6))")
			res = send(v1.EventType_EVENT_POST_SNAPSHOT, bcd)
			edited, err := document.ParseBackupComponents([]byte(res.GetBcdXml()))
			if err != nil {
				t.Fatalf("PostSnapshot's document: %v", err)
			}
			if err := bcd.ApplyWriterEdits(document.PhasePostSnapshot, inst, edited.Writer(inst)); err != nil {
				t.Fatalf("lvssd would refuse the edits: %v", err)
			}
			got := bcd.Writer(inst).Components[0].BackupMetadata
			if got == nil {
				t.Fatal("no backup metadata")
			}
			pos, err := ParsePosition(*got)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("backup metadata: %s", *got)
			if pos.Strategy != StrategyBackupStage || pos.ServerID != 1 || !strings.Contains(pos.Server, "MariaDB") || pos.LockedAt.IsZero() {
				t.Errorf("position %+v", pos)
			}
			want := ""
			if pos.BinlogFile != "" {
				want = fmt.Sprintf("%s %d", pos.BinlogFile, pos.BinlogPosition)
			}
			if want != strings.Join(strings.Fields(frozen), " ") || pos.GTIDBinlogPos != gtid {
				t.Errorf("recorded %q %q; the server said %q and %q while frozen", want, pos.GTIDBinlogPos, frozen, gtid)
			}
			if binlog && (pos.BinlogFile == "" || pos.GTIDBinlogPos == "") {
				t.Errorf("no binary log position recorded: %+v", pos)
			}
			send(v1.EventType_EVENT_BACKUP_SHUTDOWN, nil)
		})
	}
}

// TestDatabaseCreatedAfterIdentify: a database created after Identify has
// a directory the requester's file list lacks: PrepareSnapshot fails
// RETRYABLE (gather the metadata again); one created between
// PrepareSnapshot and Freeze fails Freeze, which sees it under the lock.
func TestDatabaseCreatedAfterIdentify(t *testing.T) {
	s := startServer(t, testenv.MariaDBOptions{})
	_, w := mustNew(t, Config{DSN: s.dsn()})
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	s.MustExec("CREATE DATABASE later")
	sess := newSession(t, w)
	err := w.PrepareSnapshot(sess.ctx(), sess.event(writer.EventPrepareSnapshot))
	if f := writertest.AsFailure(t, err); f.Code != vsserr.WriterErrorRetryable || !strings.Contains(f.Message, "later") {
		t.Fatalf("PrepareSnapshot: %v", err)
	}
	s.mustBeReleased(t)

	if err := sess.prepare(); err != nil { // Identify again, then PrepareSnapshot
		t.Fatal(err)
	}
	s.MustExec("CREATE DATABASE evenlater")
	err = sess.freeze()
	if f := writertest.AsFailure(t, err); f.Code != vsserr.WriterErrorRetryable || !strings.Contains(f.Message, "evenlater") {
		t.Fatalf("Freeze: %v", err)
	}
	s.mustBeReleased(t)
}

// TestCloseReleasesAFrozenServer: the host's last resort (process end)
// releases the server and refuses later events.
func TestCloseReleasesAFrozenServer(t *testing.T) {
	s := startServer(t, testenv.MariaDBOptions{})
	_, w := mustNew(t, Config{DSN: s.dsn(), Strategy: StrategyFTWRL})
	sess := newSession(t, w)
	if err := sess.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := sess.freeze(); err != nil {
		t.Fatal(err)
	}
	s.mustBeFrozen(t)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s.mustBeReleased(t)
	if err := sess.freeze(); err == nil {
		t.Fatal("Freeze after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestDefaultAccountThroughUnixSocket: as root, the DSN without password
// logs in as the server's root account through unix_socket
// authentication, as DefaultDSN does on a Debian server.
func TestDefaultAccountThroughUnixSocket(t *testing.T) {
	testenv.RequireRoot(t)
	s := startServer(t, testenv.MariaDBOptions{})
	_, w := mustNew(t, Config{DSN: s.DSN("root", "")})
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.DataDir); err != nil {
		t.Fatal(err)
	}
}

// TestTransactionBetweenStatements is why backup-stage is the default on
// MariaDB: a transaction holds a row lock between two statements (T1) and
// another waits for that row inside a statement (T2). FLUSH TABLES WITH
// READ LOCK must wait for T2's statement to end, T2 waits for T1, and T1's
// next statement waits for the read lock: nobody moves until the lock
// timeout fails Freeze. BACKUP STAGE BLOCK_COMMIT blocks only commits:
// it is granted at once, T1 can go on until its COMMIT, which waits for
// the thaw.
func TestTransactionBetweenStatements(t *testing.T) {
	s := startServer(t, testenv.MariaDBOptions{})
	s.MustExec("INSERT INTO app.probe (id, at) VALUES (1, NOW(6))")
	for _, strategy := range []Strategy{StrategyFTWRL, StrategyBackupStage} {
		t.Run(string(strategy), func(t *testing.T) {
			ctx := context.Background()
			t1, err := s.app.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer t1.Close()
			for _, q := range []string{"SET SESSION lock_wait_timeout = 1", "BEGIN", "UPDATE app.probe SET at = NOW(6) WHERE id = 1"} {
				if _, err := t1.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			t2 := make(chan error, 1)
			go func() { _, err := s.app.ExecContext(ctx, "UPDATE app.probe SET at = NOW(6) WHERE id = 1"); t2 <- err }()
			s.waitRowLockWait(t, "UPDATE app.probe") // T2 now waits for T1's row lock

			_, w := mustNew(t, Config{DSN: s.dsn(), Strategy: strategy, LockTimeout: time.Second})
			sess := newSession(t, w)
			if err := sess.prepare(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = sess.freeze()
			took := time.Since(start)
			if strategy == StrategyFTWRL {
				if f := writertest.AsFailure(t, err); f.ApplicationHR != 0xA00004B5 || took < time.Second {
					t.Fatalf("FLUSH TABLES WITH READ LOCK with a transaction between statements: %v after %s, want error 1205 after the 1s lock timeout", err, took)
				}
				t.Logf("ftwrl: Freeze failed after %s: %v", took.Round(time.Millisecond), err)
			} else {
				// Granted, not timed out: an error, or anything near the
				// 1 s lock timeout, would mean it waited for T1.
				if err != nil || took > 900*time.Millisecond {
					t.Fatalf("BACKUP STAGE BLOCK_COMMIT with a transaction between statements: %v after %s", err, took)
				}
				// T1 goes on with statements; its COMMIT waits for the thaw.
				if _, err := t1.ExecContext(ctx, "UPDATE app.probe SET at = NOW(6) WHERE id = 1"); err != nil {
					t.Fatalf("a statement of T1 while frozen: %v", err)
				}
				if _, err := t1.ExecContext(ctx, "COMMIT"); serverErrorNumber(err) != erLockWaitTimeout {
					t.Fatalf("T1's COMMIT while frozen: %v, want it to wait (1205)", err)
				}
				t.Logf("backup-stage: Freeze held commits after %s", took.Round(time.Microsecond))
				if err := sess.thaw(); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := t1.ExecContext(ctx, "COMMIT"); err != nil {
				t.Fatalf("T1's COMMIT after the release: %v", err)
			}
			select {
			case err := <-t2:
				if err != nil {
					t.Fatalf("T2: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("T2 did not finish after T1 committed")
			}
			s.mustBeReleased(t)
		})
	}
}

// TestBackupStageNeedsMariaDB: a server that reports a MySQL version
// (mariadbd --version=8.0.36-…) gets ftwrl from auto, and an explicit
// backup-stage is refused at PrepareSnapshot, naming the version, before
// anything is held.
func TestBackupStageNeedsMariaDB(t *testing.T) {
	s := startServer(t, testenv.MariaDBOptions{Args: []string{"--version=8.0.36-lvss-test"}})
	if v := s.MustExec("SELECT VERSION()"); v != "8.0.36-lvss-test" {
		t.Fatalf("the server reports %q, not the version it was given", v)
	}
	_, w := mustNew(t, Config{DSN: s.dsn(), Strategy: StrategyBackupStage})
	f := writertest.AsFailure(t, newSession(t, w).prepare())
	if f.Code != vsserr.WriterErrorNonRetryable || !strings.Contains(f.Message, "MySQL 8.0.36") || !strings.Contains(f.Message, "10.4.1") {
		t.Errorf("PrepareSnapshot: %v", f)
	}
	s.mustBeReleased(t)
}
