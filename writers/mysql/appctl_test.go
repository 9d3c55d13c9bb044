package mysql

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// runShell runs a command line as the test, the way an operator would.
func runShell(t *testing.T, cmdline string) {
	t.Helper()
	if out, err := exec.Command("/bin/sh", "-c", cmdline).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", cmdline, err, out)
	}
}

// answers reports whether the server answers a query on its socket, and
// the rows of app.probe.
func answers(s *server) (string, bool) {
	out, err := s.Exec("SELECT count(*) FROM app.probe")
	return out, err == nil
}

func mustSucceed(t *testing.T, what string, res *v1.EventResult) {
	t.Helper()
	if res.GetFailure() != 0 {
		t.Fatalf("%s: %s %s", what, vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
}

// appctlRig is a writer with the given commands, identified, over the
// server's data directory.
type appctlRig struct {
	t       *testing.T
	co      *writertest.Coordinator
	id      writer.Identity
	dataDir string
}

func newAppctlRig(t *testing.T, s *server, cfg Config) *appctlRig {
	t.Helper()
	cfg.DSN, cfg.InstanceName = s.dsn(), "test"
	id, w := mustNew(t, cfg)
	co := writertest.Serve(t, id, w)
	res, err := co.Send(context.Background(), 0, &v1.Event{Id: 1, Type: v1.EventType_EVENT_IDENTIFY, TimeoutMs: 20000})
	if err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, "Identify", res)
	dataDir, err := filepath.EvalSymlinks(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return &appctlRig{t: t, co: co, id: id, dataDir: dataDir}
}

// restore runs PreRestore and PostRestore with st in one new session.
func (r *appctlRig) restore(timeoutMs int64, st vss.FileRestoreStatus) (pre, post *v1.EventResult) {
	r.t.Helper()
	sid := uuid.New()
	pre, _ = restoreEventIn(r.t, r.co, r.id, sid, timeoutMs, v1.EventType_EVENT_PRE_RESTORE, r.dataDir, st)
	post, _ = restoreEventIn(r.t, r.co, r.id, sid, timeoutMs, v1.EventType_EVENT_POST_RESTORE, r.dataDir, st)
	return pre, post
}

// TestRestoreStopsAndStartsTheServer: with --stop-command and
// --start-command, PreRestore shuts the running server down
// (mariadb-admin shutdown) and succeeds; PostRestore with VSS_RS_ALL
// starts mariadbd on the checked files and it answers with their rows.
// VSS_RS_NONE starts it again only when the writer stopped it in that
// session; VSS_RS_FAILED never starts it.
func TestRestoreStopsAndStartsTheServer(t *testing.T) {
	s := startServer(t, testenv.MariaDBOptions{})
	s.MustExec("INSERT INTO app.probe (at) VALUES (NOW(6)), (NOW(6))")
	r := newAppctlRig(t, s, Config{StopCommand: s.StopCommand(), StartCommand: s.StartCommand()})

	sid := uuid.New()
	res, _ := restoreEventIn(t, r.co, r.id, sid, 60000, v1.EventType_EVENT_PRE_RESTORE, r.dataDir, vss.RSUndefined)
	mustSucceed(t, "PreRestore with the server running", res)
	if _, ok := answers(s); ok || s.Running() {
		t.Fatal("PreRestore succeeded but the server runs")
	}
	res, _ = restoreEventIn(t, r.co, r.id, sid, 60000, v1.EventType_EVENT_POST_RESTORE, r.dataDir, vss.RSAll)
	mustSucceed(t, "PostRestore VSS_RS_ALL", res)
	if n, ok := answers(s); !ok || n != "2" {
		t.Fatalf("after PostRestore the server answers %v, with %s rows, want 2", ok, n)
	}

	pre, post := r.restore(60000, vss.RSNone)
	mustSucceed(t, "PreRestore", pre)
	mustSucceed(t, "PostRestore VSS_RS_NONE", post)
	if _, ok := answers(s); !ok {
		t.Fatal("the server the writer stopped was not started again after VSS_RS_NONE")
	}

	runShell(t, s.StopCommand())
	pre, post = r.restore(60000, vss.RSNone)
	mustSucceed(t, "PreRestore with the server stopped", pre)
	mustSucceed(t, "PostRestore VSS_RS_NONE", post)
	if _, ok := answers(s); ok {
		t.Fatal("VSS_RS_NONE started a server the writer had not stopped")
	}

	runShell(t, s.StartCommand())
	// The detached server answers a moment after the command returns.
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, ok := answers(s); ok {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the server the start command started does not answer\n%s", s.Log())
		}
	}
	pre, post = r.restore(60000, vss.RSFailed)
	mustSucceed(t, "PreRestore", pre)
	if vsserr.HRESULT(post.GetFailure()) != vsserr.WriterErrorNonRetryable || !strings.Contains(post.GetApplicationMessage(), "do not start the server") {
		t.Fatalf("PostRestore VSS_RS_FAILED: %s %q", vsserr.HRESULT(post.GetFailure()), post.GetApplicationMessage())
	}
	if _, ok := answers(s); ok {
		t.Fatal("VSS_RS_FAILED started the server")
	}
}

// TestRestoreCommandsThatFail: a stop command that fails refuses
// PreRestore (RETRYABLE) with its last line of output; one that succeeds
// without stopping the server refuses once the event's time is up; a
// start command that fails fails PostRestore with its output.
func TestRestoreCommandsThatFail(t *testing.T) {
	s := startServer(t, testenv.MariaDBOptions{})
	refused := func(res *v1.EventResult, want ...string) {
		t.Helper()
		msg := res.GetApplicationMessage()
		if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorRetryable {
			t.Fatalf("%s %q, want VSS_E_WRITERERROR_RETRYABLE", vsserr.HRESULT(res.GetFailure()), msg)
		}
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Fatalf("%q lacks %q", msg, w)
			}
		}
		t.Logf("failed: %s", msg)
	}

	r := newAppctlRig(t, s, Config{StopCommand: "echo 'Failed to stop mariadb-test.service: Interactive authentication required.' >&2; exit 1"})
	pre, _ := r.restore(20000, vss.RSNone)
	refused(pre, "Interactive authentication required.", "exit status 1")
	if _, ok := answers(s); !ok {
		t.Fatal("the server stopped")
	}

	r = newAppctlRig(t, s, Config{StopCommand: "true"})
	pre, _ = r.restore(3000, vss.RSNone)
	refused(pre, "did not stop it", "still runs")

	r = newAppctlRig(t, s, Config{StartCommand: "echo 'mariadbd: Can not start' >&2; exit 2"})
	s.Stop()
	pre, post := r.restore(20000, vss.RSAll)
	mustSucceed(t, "PreRestore", pre)
	refused(post, "mariadbd: Can not start", "exit status 2")
}
