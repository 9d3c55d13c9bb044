package postgres

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer/writertest"
)

// runShell runs a command line as the test, the way an operator would.
func runShell(t *testing.T, cmdline string) {
	t.Helper()
	if out, err := exec.Command("/bin/sh", "-c", cmdline).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", cmdline, err, out)
	}
}

// serverRuns reports whether a server runs on the data directory.
func serverRuns(t *testing.T, p *testenv.Postgres) bool {
	t.Helper()
	_, running, err := postmaster(p.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return running
}

// rows counts the rows of table lvss_probe, over a new connection that
// must succeed.
func rows(t *testing.T, p *testenv.Postgres) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		t.Fatalf("the server does not answer: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM lvss_probe").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// restoreWith runs PreRestore and, if it succeeded, PostRestore with the
// file restore status st, in a new session; it returns both results.
func restoreWith(t *testing.T, r *restoreSession, st vss.FileRestoreStatus) (pre, post *v1.EventResult) {
	t.Helper()
	r.id = uuid.New()
	r.bcd = restoreDoc(t, r.inst, nil, "")
	pre = r.send(v1.EventType_EVENT_PRE_RESTORE)
	r.bcd.Writer(r.inst).Component("", ComponentName).FileRestoreStatus = st
	post = r.send(v1.EventType_EVENT_POST_RESTORE)
	r.send(v1.EventType_EVENT_BACKUP_SHUTDOWN)
	return pre, post
}

func mustSucceed(t *testing.T, what string, res *v1.EventResult) {
	t.Helper()
	if res.GetFailure() != 0 {
		t.Fatalf("%s: %s %s", what, vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
}

// TestRestoreStopsAndStartsTheServer: with --stop-command and
// --start-command, PreRestore stops the running server (pg_ctl stop) and
// succeeds; PostRestore with VSS_RS_ALL starts it (pg_ctl start) and it
// answers with its data. VSS_RS_NONE starts it again only when the
// writer stopped it in that session; VSS_RS_FAILED never starts it.
func TestRestoreStopsAndStartsTheServer(t *testing.T) {
	p := startServer(t, "")
	sql(t, p, "CREATE TABLE lvss_probe (id int)", "INSERT INTO lvss_probe VALUES (1), (2)")
	id, w := mustNew(t, Config{DSN: p.DSN("postgres"), InstanceName: "main", DataDir: p.DataDir,
		StopCommand: p.StopCommand(), StartCommand: p.StartCommand()})
	co := writertest.Serve(t, id, w)
	r := &restoreSession{t: t, co: co, inst: co.Writer(0).InstanceID, id: uuid.New()}
	mustSucceed(t, "Identify", r.send(v1.EventType_EVENT_IDENTIFY))

	// VSS_RS_ALL: stopped for the copy, started after it.
	r.id = uuid.New()
	r.bcd = restoreDoc(t, r.inst, nil, "")
	mustSucceed(t, "PreRestore with the server running", r.send(v1.EventType_EVENT_PRE_RESTORE))
	if serverRuns(t, p) || p.Running() {
		t.Fatal("PreRestore succeeded but the server still runs")
	}
	r.bcd.Writer(r.inst).Component("", ComponentName).FileRestoreStatus = vss.RSAll
	mustSucceed(t, "PostRestore VSS_RS_ALL", r.send(v1.EventType_EVENT_POST_RESTORE))
	r.send(v1.EventType_EVENT_BACKUP_SHUTDOWN)
	if n := rows(t, p); n != 2 {
		t.Fatalf("the restarted server has %d rows, want 2", n)
	}

	// VSS_RS_NONE after the writer stopped it: back as it was.
	pre, post := restoreWith(t, r, vss.RSNone)
	mustSucceed(t, "PreRestore", pre)
	mustSucceed(t, "PostRestore VSS_RS_NONE", post)
	if n := rows(t, p); n != 2 {
		t.Fatalf("after VSS_RS_NONE the server has %d rows, want 2", n)
	}

	// VSS_RS_NONE with the server stopped by someone else: left stopped.
	runShell(t, p.StopCommand())
	pre, post = restoreWith(t, r, vss.RSNone)
	mustSucceed(t, "PreRestore with the server stopped", pre)
	mustSucceed(t, "PostRestore VSS_RS_NONE", post)
	if serverRuns(t, p) {
		t.Fatal("VSS_RS_NONE started a server the writer had not stopped")
	}

	// VSS_RS_FAILED: never started.
	runShell(t, p.StartCommand())
	pre, post = restoreWith(t, r, vss.RSFailed)
	mustSucceed(t, "PreRestore", pre)
	if vsserr.HRESULT(post.GetFailure()) != vsserr.WriterErrorNonRetryable || !strings.Contains(post.GetApplicationMessage(), "do not start the server") {
		t.Fatalf("PostRestore VSS_RS_FAILED: %s %q", vsserr.HRESULT(post.GetFailure()), post.GetApplicationMessage())
	}
	if serverRuns(t, p) {
		t.Fatal("VSS_RS_FAILED started the server")
	}
}

// TestRestoreCommandsThatFail: a stop command that fails refuses
// PreRestore (RETRYABLE) with its last line of output, the server still
// running; one that succeeds without stopping the server refuses once
// the event's time is up; a start command that fails fails PostRestore
// with its output.
func TestRestoreCommandsThatFail(t *testing.T) {
	p := startServer(t, "")
	session := func(cfg Config) *restoreSession {
		cfg.DSN, cfg.InstanceName, cfg.DataDir = p.DSN("postgres"), "main", p.DataDir
		id, w := mustNew(t, cfg)
		co := writertest.Serve(t, id, w)
		r := &restoreSession{t: t, co: co, inst: co.Writer(0).InstanceID, id: uuid.New()}
		mustSucceed(t, "Identify", r.send(v1.EventType_EVENT_IDENTIFY))
		return r
	}
	refused := func(res *v1.EventResult, want ...string) {
		t.Helper()
		msg := res.GetApplicationMessage()
		if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorRetryable {
			t.Fatalf("%s %q, want VSS_E_WRITERERROR_RETRYABLE", vsserr.HRESULT(res.GetFailure()), msg)
		}
		for _, s := range want {
			if !strings.Contains(msg, s) {
				t.Fatalf("%q lacks %q", msg, s)
			}
		}
		t.Logf("failed: %s", msg)
	}

	r := session(Config{StopCommand: "echo stopping; echo 'Failed to stop lvss-test.service: Unit lvss-test.service not loaded.' >&2; exit 5"})
	pre, _ := restoreWith(t, r, vss.RSNone)
	refused(pre, "Unit lvss-test.service not loaded.", "exit status 5")
	if !serverRuns(t, p) {
		t.Fatal("the server stopped")
	}

	r = session(Config{StopCommand: "true"})
	r.timeoutMs = 3000
	pre, _ = restoreWith(t, r, vss.RSNone)
	refused(pre, "did not stop it", "still runs")

	r = session(Config{StartCommand: "echo 'Job for lvss-test.service failed.' >&2; exit 1"})
	p.Stop()
	pre, post := restoreWith(t, r, vss.RSAll)
	mustSucceed(t, "PreRestore", pre)
	refused(post, "Job for lvss-test.service failed.", "exit status 1")
	if got := r.bcd.Writer(r.inst).Component("", ComponentName).PostRestoreFailureMsg; got != post.GetApplicationMessage() {
		t.Errorf("post-restore failure message %q", got)
	}
}
