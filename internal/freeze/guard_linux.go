package freeze

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lvss/lvss/vsserr"
)

// endGrace is how long, beyond the hold window, a Guard waits for its guard
// to report the end of a hold it asked to end. A FIFREEZE that is still
// flushing cannot be interrupted, and the thaw waits for it; past this the
// guard is presumed stuck, killed, and its records recovered once it exits.
const endGrace = 5 * time.Second

// Guard is lvssd's handle on one guard process. Its methods are safe for
// concurrent use.
type Guard struct {
	opt Options
	log *slog.Logger
	cmd *exec.Cmd
	pid int

	ctlMu sync.Mutex
	ctl   *os.File // requests; closing it (or dying) ends the guard

	ready  chan struct{} // "ready" read
	frozen chan struct{} // "frozen" read
	ended  chan struct{} // "ended" read
	eof    chan struct{} // the event pipe closed: the guard is gone
	exited chan struct{} // reaped, and whatever it left frozen recovered

	callMu sync.Mutex // one Freeze, Thaw or Close at a time

	mu         sync.Mutex
	freezing   bool // Freeze was called
	readyEv    *event
	frozenEv   *event
	endedEv    *event
	stats      Stats
	waitErr    error
	stderr     tail
	recovered  []string
	recoverErr error
	closed     bool
	closeErr   error
	thawLogged bool
}

// Start launches a guard and returns when it is ready, so that the
// process start (a few milliseconds) is off the freeze's critical path:
// the coordinator starts the guard before writers freeze.
func Start(ctx context.Context, opt Options) (*Guard, error) {
	if opt.Exe == "" {
		opt.Exe = "/proc/self/exe"
	}
	if opt.Hold <= 0 {
		opt.Hold = DefaultHold
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if !filepath.IsAbs(opt.RunDir) {
		return nil, vsserr.New(vsserr.InvalidArg, "freeze guard: run dir %q is not an absolute path", opt.RunDir)
	}
	if err := os.MkdirAll(recordDir(opt.RunDir), 0o700); err != nil {
		return nil, vsserr.Wrap(vsserr.Unexpected, err, "freeze guard: record directory")
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, vsserr.Wrap(vsserr.Unexpected, err, "freeze guard: pipe")
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, vsserr.Wrap(vsserr.Unexpected, err, "freeze guard: pipe")
	}
	g := &Guard{
		opt: opt, log: opt.Logger, ctl: ctlW,
		ready: make(chan struct{}), frozen: make(chan struct{}), ended: make(chan struct{}),
		eof: make(chan struct{}), exited: make(chan struct{}),
	}
	g.cmd = exec.Command(opt.Exe, GuardArg,
		"-v="+strconv.Itoa(ProtocolVersion),
		"-run-dir="+opt.RunDir,
		"-hold="+opt.Hold.String(),
		"-parent="+strconv.Itoa(os.Getpid()))
	g.cmd.ExtraFiles = []*os.File{ctlR, evW} // fds 3 and 4
	g.cmd.Stderr = &g.stderr                 // a Go panic's trace, for the error
	// "/" rather than our cwd: the guard must not pin a filesystem.
	g.cmd.Dir = "/"
	t0 := time.Now()
	err = g.cmd.Start()
	// The child has its copies; ours would keep the pipes open after it dies.
	ctlR.Close()
	evW.Close()
	if err != nil {
		ctlW.Close()
		evR.Close()
		return nil, vsserr.Wrap(vsserr.Unexpected, err, "freeze guard: start %s", opt.Exe)
	}
	g.pid = g.cmd.Process.Pid
	go g.readEvents(evR)
	go g.wait()

	select {
	case <-g.ready:
	case <-g.eof:
		<-g.exited
		return nil, vsserr.New(vsserr.Unexpected, "freeze guard %s did not start: %s", opt.Exe, g.death())
	case <-ctx.Done():
		g.Close()
		return nil, fmt.Errorf("freeze guard: start: %w", ctx.Err())
	}
	g.mu.Lock()
	g.stats.Spawn = time.Since(t0)
	spawn := g.stats.Spawn
	g.mu.Unlock()
	g.log.Debug("freeze guard started", "pid", g.pid, "spawn", spawn, "hold", opt.Hold)
	return g, nil
}

// Pid is the guard's process ID.
func (g *Guard) Pid() int { return g.pid }

// Done is closed when the guard process has exited and whatever its
// records said was still frozen has been thawed (see Recover).
func (g *Guard) Done() <-chan struct{} { return g.exited }

// Stats returns what was measured so far.
func (g *Guard) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Filesystems = append([]FSStat(nil), s.Filesystems...)
	return s
}

// Freeze flushes (syncfs) every filesystem holding the paths, then freezes
// each distinct one (by superblock) with FIFREEZE, in the order the paths
// first name them, each recorded in the run dir before its FIFREEZE. It
// returns when all are frozen. On failure the guard has thawed what it
// froze before Freeze returns, and has ended; Thaw and Close then do
// nothing.
//
// The hold window counts from the first FIFREEZE, not from Freeze's
// return: from that instant applications may be blocked, and the window
// bounds exactly that. The flush before it is bounded by ctx and by the
// hold window too (VSS_E_FLUSH_WRITES_TIMEOUT); a flush cannot be
// interrupted, but nothing is frozen during it, and the guard freezes
// nothing after it is told to stop.
//
// Errors: VSS_E_VOLUME_IN_USE wrapping ErrFrozenByOther when a filesystem
// was already frozen (left frozen: not ours to thaw); VSS_E_OBJECT_NOT_FOUND
// for a missing path; E_INVALIDARG for a relative path, a device node, or a
// path on the run dir's filesystem; VSS_E_VOLUME_NOT_SUPPORTED when the
// filesystem cannot be frozen; VSS_E_FLUSH_WRITES_TIMEOUT when the flush and
// freezing outlast the budget; VSS_E_BAD_STATE when called twice.
func (g *Guard) Freeze(ctx context.Context, paths []string) error {
	g.callMu.Lock()
	defer g.callMu.Unlock()
	g.mu.Lock()
	again, ended := g.freezing, g.endedEv
	g.freezing = true
	g.mu.Unlock()
	switch {
	case again:
		return vsserr.New(vsserr.BadState, "freeze guard: one Freeze per guard")
	case ended != nil:
		return vsserr.New(vsserr.BadState, "freeze guard has already ended (%s)", ended.Why)
	case g.isEnded():
		return vsserr.New(vsserr.BadState, "freeze guard is gone: %s", g.death())
	}
	t0 := time.Now()
	if err := g.send(request{Op: opFreeze, Paths: paths}); err != nil {
		<-g.exited
		return vsserr.New(vsserr.Unexpected, "freeze guard: %s", g.death())
	}
	budget := time.NewTimer(g.opt.Hold)
	defer budget.Stop()
	var abortErr error
	select {
	case <-g.frozen:
		g.mu.Lock()
		g.stats.Call = time.Since(t0)
		g.mu.Unlock()
		return nil
	case <-g.ended:
		select {
		case <-g.frozen:
			// Frozen, then at once ended (a tiny hold window): Freeze
			// did its job; Thaw tells how the hold ended.
			return nil
		default:
		}
		return g.freezeFailure()
	case <-g.eof:
		<-g.exited
		return g.freezeFailure()
	case <-ctx.Done():
		abortErr = ctx.Err()
		if errors.Is(abortErr, context.DeadlineExceeded) {
			abortErr = vsserr.Wrap(vsserr.FlushWritesTimeout, abortErr, "freeze %s", strings.Join(paths, ", "))
		} else {
			abortErr = fmt.Errorf("freeze %s: %w", strings.Join(paths, ", "), abortErr)
		}
	case <-budget.C:
		abortErr = vsserr.New(vsserr.FlushWritesTimeout, "freeze %s: flushing and freezing took longer than the hold window (%s)",
			strings.Join(paths, ", "), g.opt.Hold)
	}
	// Abort: the guard freezes nothing more and thaws what it froze.
	_ = g.send(request{Op: opThaw})
	if !g.awaitEnd() {
		// Still inside the kernel: do not log, something may be frozen.
		return fmt.Errorf("%w; the guard did not finish within %s and was killed: what it froze is thawed from its records when it exits", abortErr, g.opt.Hold+endGrace)
	}
	g.log.Warn("freeze aborted; everything the guard froze is thawed", "err", abortErr)
	return abortErr
}

// freezeFailure turns the guard's "ended" (or its death) during Freeze into
// an error. Called when nothing it froze is frozen any more, so it logs.
func (g *Guard) freezeFailure() error {
	g.mu.Lock()
	ev := g.endedEv
	g.mu.Unlock()
	var err error
	switch {
	case ev == nil:
		err = vsserr.New(vsserr.Unexpected, "freeze guard died during Freeze: %s", g.death())
	case ev.Why == whyFailed || ev.Why == whyProtocol:
		ve := &vsserr.Error{Code: vsserr.HRESULT(ev.Code), Msg: ev.Msg}
		if ev.Busy {
			ve.Err = ErrFrozenByOther
		}
		err = ve
	case ev.Why == whyExpired:
		err = vsserr.New(vsserr.FlushWritesTimeout, "freezing took longer than the hold window (%s)", g.opt.Hold)
	default:
		err = vsserr.Wrap(vsserr.Unexpected, ErrHoldLost, "freeze guard ended during Freeze (%s)", ev.Why)
	}
	g.log.Warn("freeze failed; everything the guard froze is thawed", "err", err)
	return err
}

// Thaw ends the hold: FITHAW on every filesystem the guard froze, records
// removed, guard ended. held runs from the first FIFREEZE to the last
// FITHAW. If the hold had already ended — the window passed
// (VSS_E_HOLD_WRITES_TIMEOUT), a signal, the guard's death — the error
// wraps ErrHoldLost: whatever was committed in the hold may be
// inconsistent. Thaw before Freeze, or after a failed Freeze, only ends the
// guard. Idempotent: later calls return the same.
func (g *Guard) Thaw() (time.Duration, error) {
	g.callMu.Lock()
	defer g.callMu.Unlock()
	if !g.isEnded() {
		_ = g.send(request{Op: opThaw})
		if !g.awaitEnd() {
			return 0, vsserr.New(vsserr.Unexpected, "freeze guard did not thaw within %s and was killed: what it froze is thawed from its records when it exits", g.opt.Hold+endGrace)
		}
	}
	held, err := g.result()
	g.mu.Lock()
	first := !g.thawLogged
	g.thawLogged = true
	st := g.stats
	g.mu.Unlock()
	if first && st.Held > 0 {
		// Everything is thawed (or recovered) by now: safe to log.
		g.log.Info("filesystems held", "held", held, "ended", st.Ended, "filesystems", mounts(st.Filesystems),
			"sync", st.Sync, "fifreeze", st.Freeze, "fithaw", st.Thaw, "err", err)
	}
	return held, err
}

// result interprets how the hold ended. Called only once it has.
func (g *Guard) result() (time.Duration, error) {
	g.mu.Lock()
	ev, froze, st := g.endedEv, g.frozenEv != nil, g.stats
	recovered, rerr := g.recovered, g.recoverErr
	g.mu.Unlock()
	if !froze {
		// Never frozen (no Freeze, or it failed and said so): nothing to
		// report.
		return 0, nil
	}
	if ev == nil {
		// Died without a word while holding. wait() thawed its records.
		err := vsserr.Wrap(vsserr.Unexpected, ErrHoldLost, "freeze guard died while holding (%s); recovered from its records: %s",
			g.death(), strings.Join(recovered, ", "))
		if rerr != nil {
			err = vsserr.Wrap(vsserr.Unexpected, errors.Join(ErrHoldLost, rerr), "freeze guard died while holding (%s), and recovery failed", g.death())
		}
		return 0, err
	}
	held := time.Duration(ev.HeldNs)
	var stuck []string
	for _, f := range ev.FS {
		if f.ThawErr != "" {
			stuck = append(stuck, f.Mnt+": "+f.ThawErr)
		}
	}
	if len(stuck) > 0 {
		return held, vsserr.New(vsserr.Unexpected, "thaw failed, still frozen (records kept for Recover): %s", strings.Join(stuck, "; "))
	}
	switch {
	case ev.Why == whyThaw:
		return held, nil
	case ev.Why == whyExpired:
		return held, vsserr.Wrap(vsserr.HoldWritesTimeout, ErrHoldLost, "the guard thawed %s on its own when the hold window (%s) passed", mounts(st.Filesystems), g.opt.Hold)
	default:
		return held, vsserr.Wrap(vsserr.Unexpected, ErrHoldLost, "the guard thawed %s on its own (%s)", mounts(st.Filesystems), ev.Why)
	}
}

func mounts(fs []FSStat) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.MountPoint)
	}
	return strings.Join(s, ", ")
}

// Close ends the guard, thawing whatever is still frozen, and waits for it
// to exit. Idempotent; safe after Thaw. It reports only what is left
// frozen or unrecovered, not how the hold ended (that is Thaw's).
func (g *Guard) Close() error {
	g.callMu.Lock()
	defer g.callMu.Unlock()
	g.mu.Lock()
	if g.closed {
		defer g.mu.Unlock()
		return g.closeErr
	}
	g.mu.Unlock()
	var err error
	if !g.isEnded() {
		_ = g.send(request{Op: opThaw})
		if !g.awaitEnd() {
			err = vsserr.New(vsserr.Unexpected, "freeze guard did not end within %s and was killed", g.opt.Hold+endGrace)
		}
	}
	g.ctlMu.Lock()
	g.ctl.Close()
	g.ctlMu.Unlock()
	select {
	case <-g.exited:
	case <-time.After(endGrace):
		_ = g.cmd.Process.Kill()
		if err == nil {
			err = vsserr.New(vsserr.Unexpected, "freeze guard pid %d did not exit after its hold ended; killed", g.pid)
		}
	}
	g.mu.Lock()
	if err == nil && g.endedEv != nil {
		for _, f := range g.endedEv.FS {
			if f.ThawErr != "" {
				err = vsserr.New(vsserr.Unexpected, "thaw %s failed, still frozen (record kept for Recover): %s", f.Mnt, f.ThawErr)
				break
			}
		}
	}
	if err == nil && g.recoverErr != nil {
		err = g.recoverErr
	}
	g.closed, g.closeErr = true, err
	g.mu.Unlock()
	return err
}

func (g *Guard) isEnded() bool {
	select {
	case <-g.ended:
		return true
	case <-g.exited:
		return true
	default:
		return false
	}
}

func (g *Guard) freezingCalled() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.freezing
}

// awaitEnd waits for the guard to report the end of the hold, or to die.
// It never waits longer than the hold window plus endGrace: by then the
// guard's own timer has fired, so a guard still silent is stuck in the
// kernel or stopped; it is killed (the kill lands when it leaves the
// kernel) and its records are recovered once it has exited.
func (g *Guard) awaitEnd() bool {
	t := time.NewTimer(g.opt.Hold + endGrace)
	defer t.Stop()
	select {
	case <-g.ended:
		return true
	case <-g.eof:
		<-g.exited
		return true
	case <-t.C:
		_ = g.cmd.Process.Kill()
		return false
	}
}

func (g *Guard) send(r request) error {
	r.V = ProtocolVersion
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	g.ctlMu.Lock()
	defer g.ctlMu.Unlock()
	_, err = g.ctl.Write(append(b, '\n'))
	return err
}

// readEvents records the guard's events as they come, so that an "ended"
// the guard sends on its own (hold window, signal) is known before anyone
// asks.
func (g *Guard) readEvents(r *os.File) {
	defer r.Close()
	defer close(g.eof)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.V != ProtocolVersion {
			// Not our guard (another build?); it ends when its pipe closes.
			g.stderr.Write([]byte(fmt.Sprintf("unreadable guard event: %.200q\n", sc.Bytes())))
			continue
		}
		g.mu.Lock()
		switch ev.Ev {
		case evReady:
			if g.readyEv == nil {
				g.readyEv = &ev
				close(g.ready)
			}
		case evFrozen:
			if g.frozenEv == nil && g.endedEv == nil {
				g.frozenEv = &ev
				g.fillStats(&ev)
				close(g.frozen)
			}
		case evEnded:
			if g.endedEv == nil {
				g.endedEv = &ev
				g.fillStats(&ev)
				g.stats.Ended = ev.Why
				close(g.ended)
			}
		}
		g.mu.Unlock()
	}
}

// fillStats copies the guard's measurements; the last event has the most.
func (g *Guard) fillStats(ev *event) {
	s := &g.stats
	s.Resolve, s.Sync = time.Duration(ev.ResolveNs), time.Duration(ev.SyncNs)
	if ev.FreezeNs > 0 {
		s.Freeze = time.Duration(ev.FreezeNs)
	}
	s.Thaw, s.Held = time.Duration(ev.ThawNs), time.Duration(ev.HeldNs)
	if len(ev.FS) > 0 {
		s.Filesystems = s.Filesystems[:0]
		for _, f := range ev.FS {
			s.Filesystems = append(s.Filesystems, f.stat())
		}
	}
}

// wait reaps the guard. A guard that exits without "ended" (SIGKILL, a
// crash) cannot have thawed: its records are recovered at once rather
// than leaving filesystems frozen until lvssd notices.
func (g *Guard) wait() {
	err := g.cmd.Wait()
	<-g.eof
	g.mu.Lock()
	g.waitErr = err
	clean := g.endedEv != nil
	g.mu.Unlock()
	// Even after a clean end a record may remain (a FITHAW that failed):
	// one more try costs nothing.
	thawed, rerr := recoverRecords(g.opt.RunDir, g.pid, g.log)
	g.mu.Lock()
	g.recovered, g.recoverErr = thawed, rerr
	if !clean {
		g.stats.Ended = whyKilled
	}
	g.mu.Unlock()
	if !clean && g.freezingCalled() {
		g.log.Warn("freeze guard died without ending its hold; thawed from its records", "pid", g.pid, "exit", err, "thawed", thawed, "err", rerr)
	}
	close(g.exited)
}

// death describes how the guard ended, with the tail of its stderr.
func (g *Guard) death() string {
	g.mu.Lock()
	err, ev := g.waitErr, g.endedEv
	g.mu.Unlock()
	s := "exited"
	if ev != nil && ev.Msg != "" {
		// The guard said why (a refused protocol version, bad arguments).
		s = ev.Msg + "; " + s
	}
	if err != nil {
		s = err.Error()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				s = "killed by " + ws.Signal().String()
			}
		}
	}
	if t := strings.TrimSpace(g.stderr.String()); t != "" {
		s += ": " + t
	}
	return s
}

// tail keeps the last few KiB written to it: enough for a panic's first
// lines, bounded whatever the guard prints.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 4 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
