package redis

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

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

// get reads key over a new connection; ok is false when the server does
// not answer.
func get(t *testing.T, r *testenv.Redis, key string) (val string, ok bool) {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Network: "unix", Addr: r.Socket, Protocol: 2, DisableIdentity: true,
		DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, MaxRetries: -1})
	defer c.Close()
	val, err := c.Get(context.Background(), key).Result()
	return val, err == nil
}

// restoreIn runs PreRestore and PostRestore with file restore status st
// in one new session.
func restoreIn(t *testing.T, co *writertest.Coordinator, id writer.Identity, timeoutMs int64, st vss.FileRestoreStatus) (pre, post *v1.EventResult) {
	t.Helper()
	sid := uuid.New()
	pre, _ = restoreEventIn(t, co, id, sid, timeoutMs, v1.EventType_EVENT_PRE_RESTORE, st)
	post, _ = restoreEventIn(t, co, id, sid, timeoutMs, v1.EventType_EVENT_POST_RESTORE, st)
	return pre, post
}

func mustSucceed(t *testing.T, what string, res *v1.EventResult) {
	t.Helper()
	if res.GetFailure() != 0 {
		t.Fatalf("%s: %s %s", what, vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
}

// TestRestoreStopsAndStartsTheServer: with --stop-command and
// --start-command, PreRestore shuts the answering server down and
// succeeds; PostRestore with VSS_RS_ALL starts it on the checked files
// and it answers with their data. VSS_RS_NONE starts it again only when
// the writer stopped it in that session; VSS_RS_FAILED never starts it.
func TestRestoreStopsAndStartsTheServer(t *testing.T) {
	r := startServer(t, false)
	ctx := context.Background()
	cl := client(t, r)
	if err := cl.Set(ctx, "restored", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	id, w, _ := mustNew(t, r, Config{StopCommand: r.StopCommand(), StartCommand: r.StartCommand()})
	co := writertest.Serve(t, id, w)
	mustSucceed(t, "Identify", identifyOver(t, co))

	sid := uuid.New()
	res, _ := restoreEventIn(t, co, id, sid, 20000, v1.EventType_EVENT_PRE_RESTORE, vss.RSUndefined)
	mustSucceed(t, "PreRestore with the server running", res)
	if _, ok := get(t, r, "restored"); ok {
		t.Fatal("PreRestore succeeded but the server answers")
	}
	res, _ = restoreEventIn(t, co, id, sid, 20000, v1.EventType_EVENT_POST_RESTORE, vss.RSAll)
	mustSucceed(t, "PostRestore VSS_RS_ALL", res)
	if v, ok := get(t, r, "restored"); !ok || v != "yes" {
		t.Fatalf("after PostRestore the server answers %v, with %q", ok, v)
	}

	pre, post := restoreIn(t, co, id, 20000, vss.RSNone)
	mustSucceed(t, "PreRestore", pre)
	mustSucceed(t, "PostRestore VSS_RS_NONE", post)
	if _, ok := get(t, r, "restored"); !ok {
		t.Fatal("the server the writer stopped was not started again after VSS_RS_NONE")
	}

	runShell(t, r.StopCommand())
	pre, post = restoreIn(t, co, id, 20000, vss.RSNone)
	mustSucceed(t, "PreRestore with the server stopped", pre)
	mustSucceed(t, "PostRestore VSS_RS_NONE", post)
	if _, ok := get(t, r, "restored"); ok {
		t.Fatal("VSS_RS_NONE started a server the writer had not stopped")
	}

	runShell(t, r.StartCommand())
	// A daemonized server listens a moment after the command returns.
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, ok := get(t, r, "restored"); ok {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the server the start command started does not answer")
		}
	}
	pre, post = restoreIn(t, co, id, 20000, vss.RSFailed)
	mustSucceed(t, "PreRestore", pre)
	if vsserr.HRESULT(post.GetFailure()) != vsserr.WriterErrorNonRetryable || !strings.Contains(post.GetApplicationMessage(), "do not start the server") {
		t.Fatalf("PostRestore VSS_RS_FAILED: %s %q", vsserr.HRESULT(post.GetFailure()), post.GetApplicationMessage())
	}
	if _, ok := get(t, r, "restored"); ok {
		t.Fatal("VSS_RS_FAILED started the server")
	}
}

// TestRestoreCommandsThatFail: a stop command that fails refuses
// PreRestore (RETRYABLE) with its last line of output; one that succeeds
// without stopping the server refuses once the event's time is up; a
// start command that fails fails PostRestore with its output.
func TestRestoreCommandsThatFail(t *testing.T) {
	r := startServer(t, true)
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
	serve := func(cfg Config) (*writertest.Coordinator, writer.Identity) {
		id, w, _ := mustNew(t, r, cfg)
		co := writertest.Serve(t, id, w)
		mustSucceed(t, "Identify", identifyOver(t, co))
		return co, id
	}

	co, id := serve(Config{StopCommand: "echo 'Failed to stop redis-test.service: Access denied' >&2; exit 4"})
	pre, _ := restoreIn(t, co, id, 20000, vss.RSNone)
	refused(pre, "Failed to stop redis-test.service: Access denied", "exit status 4")

	co, id = serve(Config{StopCommand: "true"})
	pre, _ = restoreIn(t, co, id, 3000, vss.RSNone)
	refused(pre, "did not stop it", "still answers")

	co, id = serve(Config{StartCommand: "echo 'redis-server: no such file' >&2; exit 127"})
	r.Stop()
	pre, post := restoreIn(t, co, id, 20000, vss.RSAll)
	mustSucceed(t, "PreRestore", pre)
	refused(post, "redis-server: no such file", "exit status 127")
}
