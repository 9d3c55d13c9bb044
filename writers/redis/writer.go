package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writers/internal/appctl"
	"github.com/lvss/lvss/writers/internal/handlerlock"
)

// pauseSlack is added to the pause bound. The coordinator aborts a writer
// at the end of its window, which Freeze's deadline marks; the slack
// covers the trip of a Thaw sent just before that end, so that the pause
// never ends between a timely Thaw and the writer's UNPAUSE.
const pauseSlack = time.Second

// Writer is the Redis writer. It implements writer.Writer,
// writer.PrepareSnapshotter, writer.BackupShutdowner, writer.PreRestorer
// and writer.PostRestorer. Create it with
// New, serve it with writer.Run, and Close it when Run has returned.
type Writer struct {
	cfg Config

	// mu guards everything below. The SDK never runs two handlers at
	// once; mu is for Close, which the host may call from another
	// goroutine.
	mu    handlerlock.Lock   // also cuts handlers short at Close
	srv   *server            // the pinned connection; nil when closed
	users map[uuid.UUID]bool // sessions between PrepareSnapshot and BackupShutdown
	hold  *hold              // the pause the writer holds; nil if none
	// declared is what the most recent Identify declared, and
	// declaredPaths the paths of its file sets.
	declared      *layout
	declaredPaths []string
	// app runs the stop and start commands of a restore.
	app appctl.Commands
}

// hold is one pause of the server's writes, held for one session.
type hold struct {
	session uuid.UUID
	freeze  time.Time // Freeze reached the writer
	locked  time.Time // CLIENT PAUSE returned: no write command runs from here on
	// The server ends the pause by itself between earliest and latest
	// (CLIENT PAUSE counts from when the server ran it, somewhere between
	// sending and the answer).
	earliest, latest time.Time
}

var errClosed = errors.New("the redis writer was closed")

func newWriter(cfg Config) *Writer {
	w := &Writer{cfg: cfg, users: map[uuid.UUID]bool{},
		app: appctl.Commands{Stop: cfg.StopCommand, Start: cfg.StartCommand, Log: cfg.Logger}}
	w.mu.Init(errClosed)
	return w
}

// open opens the pinned connection if it is not open.
func (w *Writer) open(ctx context.Context) error {
	if w.srv != nil {
		return nil
	}
	ctx, cancel := bounded(ctx, dialTimeout+ioTimeout)
	defer cancel()
	s, err := connect(ctx, &w.cfg)
	if err != nil {
		return fail(err, "connecting to %s", w.cfg.server())
	}
	w.srv = s
	w.cfg.Logger.Debug("connection opened", "server", w.cfg.server())
	return nil
}

// closeConn closes the pinned connection.
func (w *Writer) closeConn() error {
	if w.srv == nil {
		return nil
	}
	err := w.srv.close()
	w.srv = nil
	w.cfg.Logger.Debug("connection closed", "server", w.cfg.server())
	return err
}

// withConn runs fn on the pinned connection when one is open, else on one
// opened for fn and closed after it. A broken pinned connection is closed,
// so that the next user opens a fresh one.
func (w *Writer) withConn(ctx context.Context, fn func(*server) error) error {
	if w.srv != nil {
		err := fn(w.srv)
		if broken(err) {
			_ = w.closeConn()
		}
		return err
	}
	ctx, cancel := bounded(ctx, dialTimeout+ioTimeout)
	defer cancel()
	s, err := connect(ctx, &w.cfg)
	if err != nil {
		return err
	}
	defer s.close()
	return fn(s)
}

// readLayout reads the server's layout on the pinned connection, opening
// it, and opening it again once if it turns out to have broken while idle
// (a server restart, an idle timeout): the question is harmless to repeat.
func (w *Writer) readLayout(ctx context.Context) (layout, error) {
	var l layout
	get := func(s *server) (err error) { l, err = s.layout(ctx); return err }
	for attempt := 0; ; attempt++ {
		reused := w.srv != nil
		if err := w.open(ctx); err != nil {
			return l, err
		}
		err := w.withConn(ctx, get)
		if !reused || attempt > 0 || !broken(err) || ctx.Err() != nil {
			return l, fail(err, "reading the configuration of %s", w.cfg.server())
		}
		w.cfg.Logger.Debug("the connection broke while idle; opening a new one", "err", err)
	}
}

// Identify declares one DATABASE component, ComponentName, holding the
// files a restart of the server loads: with appendonly yes the AOF
// directory (manifest, base and incr files), and the RDB file if it exists
// (Redis ignores it then, but it is part of the directory a restore puts
// back); with appendonly no the RDB file, which Freeze writes. Identify
// fails when the server cannot be reached (VSS_E_WRITERERROR_RETRYABLE
// with the driver's message), refuses the writer (its reply), is older
// than 7.0, or keeps its files where this host does not see them.
func (w *Writer) Identify(ctx context.Context, md *writer.Metadata) error {
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	var (
		l       layout
		version string
	)
	err = w.withConn(ctx, func(s *server) error {
		info, err := s.info(ctx, "server")
		if err != nil {
			return err
		}
		version = info["redis_version"]
		l, err = s.layout(ctx)
		return err
	})
	caption := ""
	if err != nil {
		// A server stopped for a restore: the files it used, as the writer
		// last saw them, so that a restore session finds the writer.
		sl := w.stoppedLayout(ctx)
		if sl == nil {
			return fail(err, "redis writer: asking %s for its files", w.cfg.server())
		}
		l, caption = *sl, fmt.Sprintf("Redis dataset in %s (%s; server stopped)", sl.Dir, sl.mode())
	} else {
		if err := l.checkLocal(); err != nil {
			return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "redis writer: %v", err)
		}
		if err := checkNames(l); err != nil {
			return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "redis writer: %v", err)
		}
		caption = fmt.Sprintf("Redis %s dataset in %s (%s)", version, l.Dir, l.mode())
	}
	// L40: the requester puts the files back while the server is stopped;
	// PreRestore checks it is, PostRestore checks the files.
	md.SetRestoreMethod(vss.RMERestoreIfCanReplace, "", restoreProcedure, vss.WREAlways, false)
	if err := md.AddComponent(document.Component{
		Type: vss.ComponentDatabase, Name: ComponentName, Selectable: true, Caption: caption,
	}); err != nil {
		return err
	}
	paths := declaredPaths(l)
	for _, p := range paths {
		dir, spec := l.Dir, l.DBFilename
		if p == l.aofDir() {
			dir, spec = p, "*"
		}
		if err := md.AddDatabaseFiles("", ComponentName, dir, spec, 0); err != nil {
			return err
		}
	}
	w.declared, w.declaredPaths = &l, paths
	return nil
}

// checkNames refuses file names a file set cannot name exactly.
func checkNames(l layout) error {
	for _, n := range []string{l.DBFilename, l.AOFDirname} {
		if strings.ContainsAny(n, `*?\`) {
			return fmt.Errorf("the server's file name %q contains a wildcard or a backslash, which a file set cannot name exactly", n)
		}
	}
	return nil
}

// declaredPaths are the files and directories Identify puts in the
// component for l: the AOF directory when appendonly is yes, and the RDB
// file unless appendonly is yes and it does not exist.
func declaredPaths(l layout) []string {
	var out []string
	if _, err := os.Stat(l.rdbPath()); !l.AOF || err == nil {
		out = append(out, l.rdbPath())
	}
	if l.AOF {
		out = append(out, l.aofDir())
	}
	return out
}

// checkDeclared fails when the server's layout differs from what Identify
// declared: the requester's copy of the metadata would miss the files the
// server now loads.
func (w *Writer) checkDeclared(l layout) error {
	d := w.declared
	if d == nil || *d == l {
		return nil
	}
	return writer.Fail(vsserr.WriterErrorRetryable, 0,
		"the server's persistence changed after Identify (dir %s, %s, %s, AOF %t in %s; now dir %s, %s, %s, AOF %t in %s); gather writer metadata again",
		d.Dir, d.DBFilename, d.AOFFilename, d.AOF, d.AOFDirname, l.Dir, l.DBFilename, l.AOFFilename, l.AOF, l.AOFDirname)
}

// PrepareSnapshot opens the writer's connection, checks that the server
// still keeps its files as Identify declared, and that those files are
// captured at one instant (D15): the AOF directory and the RDB
// file share the server's dir, so this fails only when that dir's volume
// is not in the set.
func (w *Writer) PrepareSnapshot(ctx context.Context, ev *writer.Event) error {
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	l, err := w.readLayout(ctx) // opens the connection the session keeps
	if err != nil {
		return err
	}
	if err := w.checkDeclared(l); err != nil {
		return err
	}
	paths := w.declaredPaths
	if w.declared == nil {
		paths = declaredPaths(l)
	}
	if err := ev.SharedInstant(paths...); err != nil {
		return err
	}
	w.users[ev.SessionID] = true
	return nil
}

// pauseBound is the CLIENT PAUSE timeout for a Freeze: until the event's
// deadline (lvssd sends Freeze with the writer's Freeze→Thaw window as its
// timeout, and aborts the writer when it ends), at most the writer's own
// window, plus pauseSlack. If the writer dies, the server's writes resume
// by themselves at that bound.
func (w *Writer) pauseBound(ev *writer.Event) time.Duration {
	d := w.cfg.FreezeTimeout
	if !ev.Deadline.IsZero() {
		d = min(d, time.Until(ev.Deadline))
	}
	return max(d, 0).Truncate(time.Millisecond) + pauseSlack
}

// persistBudget is how long Freeze may wait for the files: half the time
// left before its deadline, at most PersistTimeout.
func (w *Writer) persistBudget(ev *writer.Event) time.Duration {
	d := w.cfg.FreezeTimeout / 2
	if !ev.Deadline.IsZero() {
		d = time.Until(ev.Deadline) / 2
	}
	if w.cfg.PersistTimeout > 0 {
		d = min(d, w.cfg.PersistTimeout)
	}
	return d
}

// Freeze pauses the server's writes with CLIENT PAUSE <bound> WRITE on the
// writer's connection, then waits until the files on disk hold exactly the
// paused dataset: with the AOF on, until the AOF buffer is written out;
// without it, until a BGSAVE forked under the pause has replaced the RDB
// file. If that cannot be had within the persist budget, the pause is
// lifted at once and Freeze fails (RETRYABLE, or TIMEOUT when the BGSAVE
// itself is too slow), with the reason.
func (w *Writer) Freeze(ctx context.Context, ev *writer.Event) error {
	arrived := time.Now()
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	err = w.freeze(ctx, ev, arrived)
	if err != nil {
		// Let the server's writes go at once rather than keep them waiting
		// for the Abort that follows.
		w.releaseHold(context.WithoutCancel(ctx), ev.SessionID, "failed Freeze")
	}
	return err
}

func (w *Writer) freeze(ctx context.Context, ev *writer.Event, arrived time.Time) error {
	if h := w.hold; h != nil {
		if h.session == ev.SessionID {
			return nil // a repeated Freeze
		}
		// lvssd's creation lock makes this impossible; an UNPAUSE for the
		// other session would end this one's pause too.
		return writer.Fail(vsserr.WriterErrorRetryable, 0, "the server's writes are already paused for session %s", h.session)
	}
	// Read the layout before pausing: it checks the connection (and
	// replaces one that broke while idle, or opens it if no
	// PrepareSnapshot came) without lengthening the pause.
	l, err := w.readLayout(ctx)
	if err != nil {
		return err
	}
	w.users[ev.SessionID] = true
	if err := w.checkDeclared(l); err != nil {
		return err
	}
	bound := w.pauseBound(ev)
	sent := time.Now()
	if err := w.srv.pause(ctx, bound); err != nil {
		if broken(err) {
			// Whether the server ran it is unknown: undo it in case.
			w.cfg.Logger.Warn("CLIENT PAUSE got no answer; unpausing in case it took effect", "session", ev.SessionID.String(), "err", err)
			if uerr := w.unpause(context.WithoutCancel(ctx)); uerr != nil {
				w.cfg.Logger.Warn("CLIENT UNPAUSE failed too; a pause, if any, ends at its bound", "session", ev.SessionID.String(),
					"until", time.Now().Add(bound), "err", uerr)
			}
		}
		return fail(err, "CLIENT PAUSE %d WRITE", bound.Milliseconds())
	}
	locked := time.Now()
	w.hold = &hold{session: ev.SessionID, freeze: arrived, locked: locked, earliest: sent.Add(bound), latest: locked.Add(bound)}
	w.cfg.Logger.Info("writes paused", "session", ev.SessionID.String(), "freeze_at", arrived, "locked_at", locked,
		"bound", bound, "until", w.hold.latest, "persistence", l.mode())

	budget := w.persistBudget(ev)
	var (
		r     persisted
		start = time.Now()
		p     = &poller{ctx: ctx, until: start.Add(budget), n: &r.polls}
	)
	if l.AOF {
		err = w.srv.flushAOF(p, l, &r)
	} else {
		err = w.srv.bgsave(p, l, &r)
	}
	if err != nil {
		if broken(err) {
			_ = w.closeConn()
		}
		return err
	}
	attrs := []any{"session", ev.SessionID.String(), "persistence", l.mode(), "took", time.Since(start), "polls", r.polls}
	if l.AOF {
		attrs = append(attrs, "aof_buffer_at_pause", r.bufferAtStart, "waited_buffer", r.waitedBuffer)
		if r.waitedSwitch > 0 {
			attrs = append(attrs, "waited_first_rewrite", r.waitedSwitch)
		}
	} else {
		attrs = append(attrs, "waited_running_save", r.waitedSave, "bgsave", r.bgsave, "lastsave", r.lastsave)
	}
	w.cfg.Logger.Info("files match the paused dataset", attrs...)
	return nil
}

// unpause sends CLIENT UNPAUSE on the pinned connection and, if that
// fails, on a fresh one: the pause is the server's, so any connection ends
// it. It fails only when both attempts failed, with both errors.
func (w *Writer) unpause(ctx context.Context) error {
	ctx, cancel := bounded(ctx, dialTimeout+ioTimeout)
	defer cancel()
	var err error
	if w.srv != nil {
		if err = w.srv.unpause(ctx); err == nil {
			return nil
		}
		if broken(err) {
			_ = w.closeConn()
		}
	}
	s, cerr := connect(ctx, &w.cfg)
	if cerr != nil {
		return errors.Join(err, cerr)
	}
	defer s.close()
	if uerr := s.unpause(ctx); uerr != nil {
		return errors.Join(err, uerr)
	}
	if err != nil {
		w.cfg.Logger.Info("CLIENT UNPAUSE sent on a fresh connection; the writer's own had broken", "err", err)
	}
	return nil
}

// releaseHold lifts the session's pause, if it holds one, and logs the
// hold. It reports whether the pause had already passed its bound, and
// the error of CLIENT UNPAUSE: then the pause ends by itself at its bound,
// which is logged.
func (w *Writer) releaseHold(ctx context.Context, session uuid.UUID, by string) (late bool, err error) {
	h := w.hold
	if h == nil || h.session != session || session == uuid.Nil {
		return false, nil
	}
	w.hold = nil
	releasing := time.Now()
	late = releasing.After(h.earliest)
	err = w.unpause(ctx)
	if err != nil {
		w.cfg.Logger.Warn("CLIENT UNPAUSE failed; the server's writes resume when the pause bound passes",
			"session", session.String(), "by", by, "until", h.latest, "err", err)
	}
	w.cfg.Logger.Info("redis released", "session", session.String(), "by", by, "held", releasing.Sub(h.locked),
		"freeze_at", h.freeze, "locked_at", h.locked, "release_at", releasing)
	return late, err
}

// Thaw lifts the pause. If the pause had already passed its bound, the
// server may have resumed writes before the snapshot was complete: Thaw
// then fails with VSS_E_WRITERERROR_TIMEOUT. A failed UNPAUSE is logged,
// not reported: the snapshot is consistent, and the pause ends at its
// bound.
func (w *Writer) Thaw(ctx context.Context, ev *writer.Event) error {
	late, _, err := w.release(ctx, ev, "Thaw")
	if err != nil {
		return err
	}
	if late {
		return writer.Fail(vsserr.WriterErrorTimeout, 0,
			"the server's pause had reached its bound before Thaw: writes may have resumed before the snapshot was complete")
	}
	return nil
}

// Abort lifts the session's pause. It is idempotent: a second Abort finds
// nothing held. The SDK cancels a running Freeze before it calls Abort;
// Freeze's waits watch that cancellation and Freeze lifts its own pause.
func (w *Writer) Abort(ctx context.Context, ev *writer.Event) error {
	_, uerr, err := w.release(ctx, ev, "Abort")
	if err != nil {
		return err
	}
	if uerr != nil {
		return fail(uerr, "Abort: CLIENT UNPAUSE")
	}
	return nil
}

func (w *Writer) release(ctx context.Context, ev *writer.Event, by string) (late bool, unpauseErr, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.Closed() {
		return false, nil, nil // Close released everything
	}
	ctx, done := w.mu.Join(ctx)
	defer done()
	late, unpauseErr = w.releaseHold(ctx, ev.SessionID, by)
	return late, unpauseErr, nil
}

// BackupShutdown ends the session: its pause is lifted (the SDK has
// already sent Abort if it was frozen) and the connection is closed when
// no other session uses it.
func (w *Writer) BackupShutdown(ctx context.Context, ev *writer.Event) error {
	w.app.RestoreAbandoned(ev.SessionID, "Redis")
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.Closed() {
		return nil
	}
	ctx, done := w.mu.Join(ctx)
	defer done()
	_, uerr := w.releaseHold(ctx, ev.SessionID, "BackupShutdown")
	delete(w.users, ev.SessionID)
	var cerr error
	if len(w.users) == 0 && w.hold == nil {
		cerr = w.closeConn()
	}
	if uerr != nil {
		return fail(uerr, "BackupShutdown: CLIENT UNPAUSE")
	}
	if cerr != nil {
		w.cfg.Logger.Debug("closing the connection", "err", cerr)
	}
	return nil
}

// Close lifts any pause and closes the connection; the writer refuses
// further events. Call it after writer.Run returned (Run has then released
// every session already); it is also safe while a handler runs, which it
// cuts short. It is idempotent.
func (w *Writer) Close() error {
	first := w.mu.Close()
	defer w.mu.Unlock()
	if !first {
		return nil
	}
	var err error
	if h := w.hold; h != nil {
		_, err = w.releaseHold(context.Background(), h.session, "Close")
	}
	w.users = nil
	return errors.Join(err, w.closeConn())
}
