package lvssdtest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/writer"
)

func TestMain(m *testing.M) { Main(m) }

func TestStartOutputAndStop(t *testing.T) {
	dir := t.TempDir()
	// The shell exits cleanly on SIGTERM, as the helpers tests run do.
	p := Start(t, dir, "helper", exec.Command("/bin/sh", "-c", `trap 'echo bye; exit 0' TERM; echo hello; while :; do sleep 0.05; done`))
	Eventually(t, 10*time.Second, "the helper's greeting", func() bool { return strings.Contains(p.Output(), "hello") })
	if p.Exited() {
		t.Fatal("the helper exited on its own")
	}
	p.Stop(t)
	if !p.Exited() || p.Wait() != nil || !strings.Contains(p.Output(), "bye") {
		t.Fatalf("after Stop: exited %v, %v, output %q", p.Exited(), p.Wait(), p.Output())
	}
}

func TestStartFailedExit(t *testing.T) {
	p := Start(t, t.TempDir(), "failing", exec.Command("/bin/sh", "-c", "echo oops >&2; exit 3"))
	if err := p.Wait(); exitCode(err) != 3 || !strings.Contains(p.Output(), "oops") {
		t.Fatalf("Wait %v, output %q", err, p.Output())
	}
}

// exitCode is the exit status in a Wait error (0 for nil).
func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// nopWriter answers every event with success.
type nopWriter struct{}

func (nopWriter) Identify(context.Context, *writer.Metadata) error { return nil }
func (nopWriter) Freeze(context.Context, *writer.Event) error      { return nil }
func (nopWriter) Thaw(context.Context, *writer.Event) error        { return nil }
func (nopWriter) Abort(context.Context, *writer.Event) error       { return nil }

func TestInProcess(t *testing.T) {
	s := StartInProcess(t, InProcessOptions{})
	if len(s.Socket) > 100 {
		t.Errorf("socket path of %d bytes: %s", len(s.Socket), s.Socket)
	}
	s.RunWriter(t, writer.Identity{ClassID: uuid.New(), Name: "nop"}, nopWriter{})
	s.WaitWriters(t, 1)
	found := false
	for _, e := range Events(t, s.Socket) {
		found = found || e.Message == "writer subscribed" && e.Fields["writer"] == "nop"
	}
	if !found {
		t.Errorf("lvssd's event log has no subscription of the writer: %v", Events(t, s.Socket))
	}
	if r := Lvss(t, s.Socket, "", "list", "writers"); r.Code != 0 || !strings.Contains(r.Stdout, "Writer name: 'nop'") {
		t.Errorf("lvss list writers: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	s.Stop()
	if answers(s.Socket) {
		t.Error("the daemon still answers after Stop")
	}
	s.Stop() // idempotent
}

func TestDaemon(t *testing.T) {
	testenv.SkipIfShort(t, "builds and starts lvssd")
	d := StartDaemon(t, DaemonOptions{Config: "[timeouts]\nidentify = \"5s\"\n"})
	r := d.Lvss(t, "", "list", "providers", "--json")
	if r.Code != 0 || !strings.HasPrefix(strings.TrimSpace(r.Stdout), "[") {
		t.Fatalf("lvss list providers: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	w := d.StartLogWriter(t, "w", "front-end")
	d.WaitWriters(t, 1)
	if got := w.Events(t); len(got) != 0 {
		t.Errorf("a writer that took part in nothing logged %v", got)
	}
	d.Proc.Stop(t)
}
