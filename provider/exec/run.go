package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"strings"
	"time"

	"github.com/lvss/lvss/internal/cmdout"
	"github.com/lvss/lvss/internal/procgroup"
	"github.com/lvss/lvss/vsserr"
)

const (
	// commitOutCap bounds what commit may print: one short line per
	// volume; more is a broken command, and the buffer lives in memory
	// during the hold.
	commitOutCap = 64 << 10
	// otherOutCap bounds the other commands; list prints a line per
	// snapshot, possibly thousands.
	otherOutCap = 4 << 20
	// stderrTail is how much of the end of stderr is kept; the last line
	// is the one reported, the rest is context for the log.
	stderrTail = 8 << 10
)

// Operation names, also given to commands as LVSS_OPERATION so that one
// script can serve several of them.
const (
	opCommit   = "commit"
	opDelete   = "delete"
	opList     = "list"
	opExpose   = "expose"
	opUnexpose = "unexpose"
)

// child is one running command.
type child struct {
	op     string
	pid    int
	stdout *cmdout.Capped
	stderr *cmdout.Tail
	done   chan struct{} // closed when the process has been reaped
	err    error         // Wait's result, valid after done
}

// start launches script with sh -c. env is the LVSS_* part of the
// environment; the rest is lvssd's own, minus TMPDIR and any LVSS_*
// variables it happens to carry, so a command sees only what this
// invocation means.
func start(op, script string, env []string, tmpdir string, outCap int) (*child, error) {
	cmd := osexec.Command("/bin/sh", "-c", script)
	cmd.Dir = "/"
	cmd.Env = append(baseEnv(), env...)
	cmd.Env = append(cmd.Env, "TMPDIR="+tmpdir, "LVSS_OPERATION="+op)
	cmd.SysProcAttr = procgroup.Attr()
	c := &child{op: op, stdout: &cmdout.Capped{Max: outCap}, stderr: &cmdout.Tail{Max: stderrTail}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	// A background process the command left behind may hold the output
	// pipes open; do not wait for it once the command itself has exited.
	cmd.WaitDelay = procgroup.KillGrace
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s command: %w", op, err)
	}
	c.pid = cmd.Process.Pid
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TMPDIR=") || strings.HasPrefix(kv, "LVSS_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// stopError says a command was stopped at its deadline (or its caller's)
// and killed. It unwraps to context.DeadlineExceeded or context.Canceled,
// which is how the coordinator recognises a commit that overran the hold.
type stopError struct {
	op        string
	reason    string // "did not finish within 2s", "was cancelled"...
	abandoned bool
	stderr    string
	cause     error
}

func (e *stopError) Error() string {
	s := fmt.Sprintf("%s command %s; its process group was killed", e.op, e.reason)
	if e.abandoned {
		s += ", but it did not exit within " + procgroup.KillGrace.String() +
			" (blocked in the kernel, e.g. writing to a frozen filesystem) and was abandoned"
	}
	if e.stderr != "" {
		s += "; last stderr line: " + e.stderr
	}
	return s
}

func (e *stopError) Unwrap() error { return e.cause }

// wait waits for the command until timeout or ctx ends, whichever is
// first; then it kills the command's process group. It returns nil for
// exit status 0, a VSS_E_PROVIDER_VETO error for any other end, and a
// *stopError when the command was stopped. When the killed process does not
// go away within procgroup.KillGrace, wait returns anyway and c.done closes later.
func (c *child) wait(ctx context.Context, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var stop *stopError
	select {
	case <-c.done:
		return c.exitError()
	case <-timer.C:
		stop = &stopError{op: c.op, reason: "did not finish within " + timeout.String(), cause: context.DeadlineExceeded}
	case <-ctx.Done():
		cause := context.Cause(ctx)
		reason := "was cancelled"
		if errors.Is(cause, context.DeadlineExceeded) {
			reason = "did not finish by its caller's deadline"
		}
		stop = &stopError{op: c.op, reason: reason, cause: cause}
	}
	procgroup.Kill(c.pid)
	select {
	case <-c.done:
	case <-time.After(procgroup.KillGrace):
		stop.abandoned = true
	}
	stop.stderr = c.stderr.LastLine()
	return stop
}

// exitError turns a finished command's status into an error. The caller
// has seen c.done closed.
func (c *child) exitError() error {
	err := c.err
	if err == nil || errors.Is(err, osexec.ErrWaitDelay) {
		// ErrWaitDelay only means a leftover background process kept the
		// pipes open after a successful exit.
		return nil
	}
	msg := c.stderr.LastLine()
	if msg == "" {
		msg = "no message on stderr"
	}
	var ee *osexec.ExitError
	if errors.As(err, &ee) {
		return vsserr.New(vsserr.ProviderVeto, "%s command failed (%s): %s", c.op, ee.ProcessState.String(), msg)
	}
	return vsserr.Wrap(vsserr.ProviderVeto, err, "%s command failed: %s", c.op, msg)
}

// finished reports whether the command has been reaped.
func (c *child) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
