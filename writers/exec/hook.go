package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"strings"
	"time"

	"github.com/lvss/lvss/internal/cmdout"
	"github.com/lvss/lvss/internal/procgroup"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

const (
	// exitRetryable is EX_TEMPFAIL of sysexits.h, the conventional "try
	// again later"; it maps to VSS_E_WRITERERROR_RETRYABLE.
	exitRetryable = 75
	// stderrTail is how much of the end of stderr is kept: the last line
	// is the application message, the rest is context for the log.
	stderrTail = 8 << 10
	// identifyOutCap bounds a Writer Metadata Document printed by the
	// identify hook; the wire takes a few MiB, real documents are KiB.
	identifyOutCap = 4 << 20
	// otherOutCap bounds what other hooks print: it is only logged.
	otherOutCap = 64 << 10
	// drainWait is how long, after a hook exited, its output pipes may
	// take to reach end of file. A process the hook left running (a lock
	// holder started by a freeze hook) keeps them open; its output is
	// then drained in the background, never cut off, because closing the
	// pipe would kill it with SIGPIPE and release the lock early.
	drainWait = 100 * time.Millisecond
)

// hook is one command to run.
type hook struct {
	event   string   // the event's flag name; selects the timeout
	what    string   // how messages name it: "freeze hook", "hook script /d/10-db freeze"
	args    []string // arguments of /bin/sh
	env     []string // LVSS_* variables
	tmpdir  string
	timeout time.Duration
	// release hooks (thaw, abort, backup shutdown) are bounded only by
	// their own timeout, not by lvssd's deadline or the handler's
	// context: a release cut short leaves the application frozen, while
	// one that runs past the deadline only makes the answer late.
	release bool
	// selfRaised: an Abort or BackupShutdown the SDK raised, whose
	// deadline is the SDK's ReleaseTimeout, not one of lvssd's.
	selfRaised bool
	outCap     int
}

// outcome is what a finished hook printed.
type outcome struct {
	stdout []byte
	over   bool // stdout exceeded the hook's cap
}

// run runs h and maps its end to what the SDK reports: nil for exit 0;
// a *writer.Failure with RETRYABLE for exit 75, NONRETRYABLE for any
// other end and TIMEOUT when h.timeout passed (the process group is then
// killed); a plain error when ctx ended first, which the SDK reports by
// why it cancelled the handler. The message of a failure is the last
// line of stderr.
func (w *Writer) run(ctx context.Context, h hook) (outcome, error) {
	w.checkDeadline(ctx, h)
	if h.release {
		ctx = context.WithoutCancel(ctx)
	}
	if err := ctx.Err(); err != nil {
		return outcome{}, fmt.Errorf("%s not started: %w", h.what, context.Cause(ctx))
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return outcome{}, fmt.Errorf("%s: %w", h.what, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return outcome{}, fmt.Errorf("%s: %w", h.what, err)
	}
	cmd := osexec.Command("/bin/sh", h.args...)
	cmd.Dir = "/"
	cmd.Env = append(baseEnv(), h.env...)
	cmd.Env = append(cmd.Env, "TMPDIR="+h.tmpdir)
	cmd.SysProcAttr = procgroup.Attr()
	// *os.File outputs are handed to the child as they are: no copying
	// goroutine of os/exec, so Wait returns when the hook exits even if
	// something it started keeps the pipes open.
	cmd.Stdout, cmd.Stderr = outW, errW
	started := time.Now()
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return outcome{}, fmt.Errorf("%s could not start: %w", h.what, err)
	}
	pid := cmd.Process.Pid
	stdout, stderr := &cmdout.Capped{Max: h.outCap}, &cmdout.Tail{Max: stderrTail}
	outDone, errDone := drain(outR, stdout), drain(errR, stderr)
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()

	timer := time.NewTimer(h.timeout)
	defer timer.Stop()
	var (
		stopped   string // why the hook was killed; "" if it ended by itself
		timedOut  bool
		abandoned bool
	)
	select {
	case <-exited:
	case <-timer.C:
		stopped, timedOut = "did not finish within "+h.timeout.String(), true
	case <-ctx.Done():
		stopped = "was stopped (" + context.Cause(ctx).Error() + ")"
	}
	if stopped != "" {
		procgroup.Kill(pid)
		select {
		case <-exited:
		case <-time.After(procgroup.KillGrace):
			abandoned = true
		}
	}
	waitDrained(drainWait, outDone, errDone)
	out, over := stdout.Bytes()
	res := outcome{stdout: out, over: over}
	last := stderr.LastLine()
	log := w.log.With("event", h.event, "hook", h.what, "pid", pid, "took", time.Since(started).Round(time.Millisecond))

	if stopped != "" {
		msg := fmt.Sprintf("%s %s; its process group was killed", h.what, stopped)
		if abandoned {
			msg += ", but it did not exit within " + procgroup.KillGrace.String() +
				" (blocked in the kernel, e.g. writing to a frozen filesystem) and was abandoned"
		}
		if last != "" {
			msg += "; last stderr line: " + last
		}
		log.Warn("hook stopped", "reason", msg)
		if timedOut {
			return res, writer.Fail(vsserr.WriterErrorTimeout, 0, "%s", msg)
		}
		return res, errors.New(msg)
	}
	if waitErr == nil {
		log.Debug("hook succeeded", "stderr", last)
		return res, nil
	}
	var ee *osexec.ExitError
	if !errors.As(waitErr, &ee) {
		log.Warn("hook failed", "err", waitErr)
		return res, fmt.Errorf("%s: %w", h.what, waitErr)
	}
	code := vsserr.WriterErrorNonRetryable
	if ee.ExitCode() == exitRetryable {
		code = vsserr.WriterErrorRetryable
	}
	msg := last
	if msg == "" {
		msg = fmt.Sprintf("%s failed (%s) and printed nothing on stderr", h.what, ee.ProcessState)
	}
	log.Warn("hook failed", "status", ee.ProcessState.String(), "code", code.String(), "message", msg)
	return res, writer.Fail(code, 0, "%s", msg)
}

// checkDeadline warns, once per event, when lvssd gives the event less
// time than the hook may take: lvssd would then report the writer as not
// responding (or the SDK a timeout) instead of the hook's own outcome.
func (w *Writer) checkDeadline(ctx context.Context, h hook) {
	d, ok := ctx.Deadline()
	if !ok || h.selfRaised || time.Until(d) >= h.timeout {
		return
	}
	w.mu.Lock()
	warned := w.warned[h.event]
	w.warned[h.event] = true
	w.mu.Unlock()
	if !warned {
		w.log.Warn("the hook timeout is longer than the time lvssd allows the event; lower it below lvssd's timeouts setting for the event",
			"event", h.event, "hook_timeout", h.timeout, "event_deadline_in", time.Until(d).Round(time.Millisecond))
	}
}

// baseEnv is the writer's own environment minus TMPDIR and LVSS_*, so
// that a hook sees only what this invocation means.
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

// drain copies a pipe into w until end of file and closes it.
func drain(r *os.File, w io.Writer) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.Close()
		_, _ = io.Copy(w, r)
	}()
	return done
}

// waitDrained waits for the output pipes' end of file, at most d.
func waitDrained(d time.Duration, chans ...<-chan struct{}) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for _, ch := range chans {
		select {
		case <-ch:
		case <-timer.C:
			return
		}
	}
}
