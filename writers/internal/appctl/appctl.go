package appctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	osexec "os/exec"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/cmdout"
	"github.com/lvss/lvss/internal/procgroup"
)

const (
	// outputTail is how much of the end of a command's output is kept:
	// the last line says why it failed, the rest goes to the log.
	outputTail = 8 << 10
	// drainWait is how long, after the command exited, its output pipe may
	// take to reach end of file. A start command leaves the server
	// running, and a server that inherited the pipe keeps it open; the
	// pipe is then drained in the background, never closed under it
	// (SIGPIPE would kill the server).
	drainWait = 100 * time.Millisecond
	// pollInterval is how often Wait checks its condition.
	pollInterval = 100 * time.Millisecond
	// answerMargin is what Reserve keeps of an event's time for the
	// writer's answer, so that a command or a wait that uses up the
	// rest still gets reported as itself, not as a writer that did not
	// respond.
	answerMargin = time.Second
)

// Error is a command that did not succeed: it exited non-zero, could not
// start, or was killed when its context ended.
type Error struct {
	What     string // "stop command", "start command"
	Command  string // the command line
	Status   string // "exit status 1", "killed: context deadline exceeded", ...
	LastLine string // the last non-blank line of its output; "" if none
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("the %s %q failed (%s)", e.What, e.Command, e.Status)
	if e.LastLine != "" {
		msg += ": " + e.LastLine
	}
	return msg
}

// Run runs cmdline (what names it: "stop command") with /bin/sh -c in a
// process group of its own, stdin from /dev/null, stdout and stderr
// together into a bounded buffer. It
// returns when the command exits, or when ctx ends: then the group is
// killed (a command that does not go away within procgroup.KillGrace is
// abandoned). Anything but exit status 0 is an *Error. Processes the
// command leaves running (the server a start command started) are not
// touched.
func Run(ctx context.Context, log *slog.Logger, what, cmdline string) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return &Error{What: what, Command: cmdline, Status: "not started: " + context.Cause(ctx).Error()}
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return &Error{What: what, Command: cmdline, Status: err.Error()}
	}
	cmd := osexec.Command("/bin/sh", "-c", cmdline)
	cmd.Dir = "/"
	cmd.SysProcAttr = procgroup.Attr()
	// An *os.File is handed to the child as it is, with no copying
	// goroutine of os/exec: Wait returns when the command exits even if a
	// server it started holds the pipe.
	cmd.Stdout, cmd.Stderr = pw, pw
	started := time.Now()
	err = cmd.Start()
	pw.Close()
	if err != nil {
		r.Close()
		return &Error{What: what, Command: cmdline, Status: "could not start: " + err.Error()}
	}
	pid := cmd.Process.Pid
	out := &cmdout.Tail{Max: outputTail}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		defer r.Close()
		_, _ = io.Copy(out, r)
	}()
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	var stopped string
	select {
	case <-exited:
	case <-ctx.Done():
		stopped = "killed: " + context.Cause(ctx).Error()
		procgroup.Kill(pid)
		select {
		case <-exited:
		case <-time.After(procgroup.KillGrace):
			stopped += "; it did not exit and was abandoned"
		}
	}
	select {
	case <-drained:
	case <-time.After(drainWait):
	}
	log = log.With("command", cmdline, "pid", pid, "took", time.Since(started).Round(time.Millisecond))
	switch {
	case stopped != "":
		log.Warn("the "+what+" was stopped", "reason", stopped, "output", out.LastLine())
		return &Error{What: what, Command: cmdline, Status: stopped, LastLine: out.LastLine()}
	case waitErr != nil:
		var ee *osexec.ExitError
		status := waitErr.Error()
		if errors.As(waitErr, &ee) {
			status = ee.ProcessState.String()
		}
		log.Warn("the "+what+" failed", "status", status, "output", out.LastLine())
		return &Error{What: what, Command: cmdline, Status: status, LastLine: out.LastLine()}
	}
	log.Info("the "+what+" succeeded", "output", out.LastLine())
	return nil
}

// Wait calls probe every pollInterval until it returns nil, or ctx
// ends: then it returns an error with ctx's cause and probe's last error,
// which says what was seen last ("PID 123 still runs", "connection
// refused").
func Wait(ctx context.Context, probe func(context.Context) error) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last error
	for {
		err := probe(ctx)
		if err == nil {
			return nil
		}
		// A probe cut short by ctx's end says nothing about the
		// application: keep what the one before saw.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			why := context.Cause(ctx).Error()
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				why = "the event's time ran out"
			}
			return fmt.Errorf("%s; last seen: %v", why, last)
		case <-t.C:
		}
	}
}

// Commands are a writer's stop and start commands ("" = none given) and
// the sessions it stopped the application in.
type Commands struct {
	Stop, Start string
	Log         *slog.Logger
	stopped     Stopped
}

// ErrNotStopped wraps what StopApp saw when the stop command succeeded but
// the application was still running when the event's time was up.
var ErrNotStopped = errors.New("the stop command did not stop it")

// StopApp runs the stop command and waits until stopped returns nil, both
// bounded by ctx less a margin for the answer (Reserve). Its errors: an
// *Error (the command failed), or ErrNotStopped wrapping what was seen
// last. Once the application is seen stopped, session is remembered
// (TakeStopped).
func (c *Commands) StopApp(ctx context.Context, session uuid.UUID, stopped func(context.Context) error) error {
	ctx, cancel := Reserve(ctx)
	defer cancel()
	if err := Run(ctx, c.Log, "stop command", c.Stop); err != nil {
		return err
	}
	if err := Wait(ctx, stopped); err != nil {
		return fmt.Errorf("%w: %v", ErrNotStopped, err)
	}
	c.stopped.Mark(session)
	return nil
}

// TakeStopped reports whether StopApp stopped the application in session,
// and forgets it.
func (c *Commands) TakeStopped(session uuid.UUID) bool { return c.stopped.Take(session) }

// RestoreAbandoned is for BackupShutdown: when the writer stopped the
// application at this session's PreRestore and PostRestore never came
// (the requester died or gave up, or lvssd ended), the files may be partly
// restored, so the application is left stopped rather than started on
// them (L44) — and said so, loudly, with what to do. It reports whether
// that was the case.
func (c *Commands) RestoreAbandoned(session uuid.UUID, app string) bool {
	if !c.stopped.Take(session) {
		return false
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Error(app+" was stopped for a restore that ended without PostRestore; it is left stopped, since its files may be partly restored",
		"session", session.String(),
		"hint", fmt.Sprintf("restore the files again (lvss restore), or check them, then start it yourself (%s)", c.Start))
	return true
}

// StartApp runs the start command and waits until answers returns nil,
// both bounded by ctx less a margin for the answer. Its errors: an *Error
// (the command failed), or one saying the application did not answer,
// with what was seen last.
func (c *Commands) StartApp(ctx context.Context, answers func(context.Context) error) error {
	ctx, cancel := Reserve(ctx)
	defer cancel()
	if err := Run(ctx, c.Log, "start command", c.Start); err != nil {
		return err
	}
	if err := Wait(ctx, answers); err != nil {
		return fmt.Errorf("the start command %q succeeded, but the application did not answer: %w", c.Start, err)
	}
	return nil
}

// Reserve returns a context that ends answerMargin before ctx's deadline
// (when that leaves time to work with), for a command or a wait whose
// failure the writer must still be able to report.
func Reserve(ctx context.Context) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok || time.Until(d) < 2*answerMargin {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, d.Add(-answerMargin))
}

// Stopped remembers the restore sessions in which the writer stopped the
// application at PreRestore, for PostRestore. It lives in memory only: a
// writer restarted between the two events no longer knows, and leaves
// the application as it finds it.
type Stopped struct {
	mu sync.Mutex
	m  map[uuid.UUID]bool
}

// Mark records that the writer stopped the application in session id.
func (s *Stopped) Mark(id uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[uuid.UUID]bool{}
	}
	s.m[id] = true
}

// Take reports whether the writer stopped the application in session id,
// and forgets it.
func (s *Stopped) Take(id uuid.UUID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.m[id]
	delete(s.m, id)
	return was
}
