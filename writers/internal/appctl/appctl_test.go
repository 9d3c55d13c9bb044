package appctl

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var discard = slog.New(slog.DiscardHandler)

// A command that fails is an *Error with its exit status and the last
// line it printed, on stdout or stderr.
func TestRunReportsTheLastLine(t *testing.T) {
	if err := Run(context.Background(), discard, "test", "echo fine"); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), discard, "test", "echo first; echo 'unit not found' >&2; exit 3")
	var e *Error
	if !errors.As(err, &e) || e.LastLine != "unit not found" || e.Status != "exit status 3" {
		t.Fatalf("%#v", err)
	}
}

// A command still running when its context ends is killed with its
// children, and Run returns without waiting for them.
func TestRunKillsAtTheDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	mark := filepath.Join(t.TempDir(), "started")
	done := make(chan error, 1)
	go func() { done <- Run(ctx, discard, "test", "touch "+mark+"; sleep 600 & wait") }()
	for {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("ended before it was cancelled: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	var e *Error
	if err := <-done; !errors.As(err, &e) || !strings.HasPrefix(e.Status, "killed") {
		t.Fatalf("%v", err)
	}
}

// A start command that leaves a process holding its output pipe (a
// server started in the background) returns when the command exits.
func TestRunDoesNotWaitForWhatItStarted(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	if err := Run(context.Background(), discard, "test", "sleep 600 & echo $! > "+pidFile); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Run(context.Background(), discard, "cleanup", "kill "+strings.TrimSpace(string(b))) })
}

// StopApp remembers the session only once the application is seen
// stopped; a stop that leaves it running is ErrNotStopped.
func TestStopAppRemembersTheSession(t *testing.T) {
	c := &Commands{Stop: "true", Log: discard}
	s1, s2 := uuid.New(), uuid.New()
	calls := 0
	if err := c.StopApp(context.Background(), s1, func(context.Context) error {
		if calls++; calls < 3 {
			return errors.New("still running")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.StopApp(ctx, s2, func(context.Context) error { return errors.New("PID 1 runs") })
	var e *Error
	if !errors.As(err, &e) { // the cancelled context stops the command before it starts
		t.Fatalf("%v", err)
	}
	if !c.TakeStopped(s1) || c.TakeStopped(s1) || c.TakeStopped(s2) {
		t.Fatal("sessions remembered wrongly")
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.StopApp(ctx, s2, func(context.Context) error { return errors.New("PID 1 runs") }); !errors.Is(err, ErrNotStopped) ||
		!strings.Contains(err.Error(), "PID 1 runs") {
		t.Fatalf("%v", err)
	}
}

// A restore session that ends without PostRestore, after the writer
// stopped the application for it, leaves the application stopped and says
// so at error level with the start command; other sessions say nothing.
func TestRestoreAbandonedSaysSo(t *testing.T) {
	var buf bytes.Buffer
	c := &Commands{Stop: "true", Start: "systemctl start postgresql", Log: slog.New(slog.NewTextHandler(&buf, nil))}
	s, other := uuid.New(), uuid.New()
	if err := c.StopApp(context.Background(), s, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if c.RestoreAbandoned(other, "PostgreSQL") || buf.Len() != 0 {
		t.Fatalf("a session the writer did not stop for: %q", buf.String())
	}
	if !c.RestoreAbandoned(s, "PostgreSQL") {
		t.Fatal("the abandoned restore is not reported")
	}
	out := buf.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "left stopped") || !strings.Contains(out, "systemctl start postgresql") {
		t.Fatalf("log: %q", out)
	}
	if c.RestoreAbandoned(s, "PostgreSQL") {
		t.Fatal("reported twice")
	}
}
