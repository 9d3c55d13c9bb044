package writer

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vsserr"
)

// conn serves one subscription. Two goroutines share it: read receives
// from the stream and queues events, and can therefore cancel a running
// handler the moment an Abort arrives; dispatch runs the handlers one at a
// time in arrival order and is the only one that sends. Timers of the
// Freeze→Thaw window put an SDK-raised Abort at the head of the queue.
type conn struct {
	runCtx   context.Context // Run's context; its values reach SDK-raised calls
	opts     Options
	id       Identity
	w        Writer
	log      *slog.Logger
	stream   v1.Writer_SubscribeClient
	instance uuid.UUID
	window   time.Duration // effective Freeze→Thaw window

	mu       sync.Mutex
	queue    []*item
	wake     chan struct{} // capacity 1: "the queue or readErr changed"
	readErr  error         // why the stream ended; nil while it lives
	running  *running      // the cancellable handler in progress, if any
	sessions map[uuid.UUID]*session
	seq      uint64
}

// item is one unit of work for dispatch.
type item struct {
	msg      *v1.Event
	received time.Time
	skip     error // answer without calling the writer: its session was aborted while it waited

	expired uuid.UUID // set with window: the SDK's own Abort of that session
	window  bool
}

type running struct {
	session uuid.UUID
	typ     EventType
	cancel  context.CancelCauseFunc
}

// session is what the SDK knows of one requester session. Guarded by
// conn.mu: the reader and the window timers touch timer and expiredAt.
type session struct {
	id         uuid.UUID
	seq        uint64 // first seen; releases go in this order
	last       Event  // template for events the SDK raises itself
	volumes    []string
	placements []Placement
	frozen     bool // Freeze called, neither Thaw nor Abort yet
	prepared   bool // PrepareSnapshot called, none of PostSnapshot/Abort/BackupShutdown yet
	frozenAt   time.Time
	timer      *time.Timer // the armed Freeze→Thaw window
	armed      uint64      // counts arms, so a stale timer callback knows it is stale
	expiredAt  time.Time   // non-zero: the window expired and the SDK aborted
}

func newConn(runCtx context.Context, opts Options, id Identity, w Writer, log *slog.Logger,
	stream v1.Writer_SubscribeClient, instance uuid.UUID, window time.Duration) *conn {
	return &conn{
		runCtx: runCtx, opts: opts, id: id, w: w, log: log, stream: stream, instance: instance, window: window,
		wake: make(chan struct{}, 1), sessions: map[uuid.UUID]*session{},
	}
}

// signal wakes dispatch; c.mu need not be held.
func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// releasing events move the application back to normal running. They are
// never cancelled early (only their deadline bounds them): cutting a Thaw
// or an Abort short would leave the application frozen.
func releasing(t EventType) bool {
	return t == EventThaw || t == EventAbort || t == EventBackupShutdown
}

// read is the stream's only receiver.
func (c *conn) read() {
	for {
		m, err := c.stream.Recv()
		if err != nil {
			c.mu.Lock()
			c.readErr = recvErr(err)
			if c.running != nil {
				c.running.cancel(errStreamLost)
			}
			c.mu.Unlock()
			c.signal()
			return
		}
		ev := m.GetEvent()
		if ev == nil {
			c.log.Warn("unexpected message from lvssd ignored", "type", fmt.Sprintf("%T", m.GetMsg()))
			continue
		}
		t := EventType(ev.GetType())
		sid, _ := wire.ParseGUID(ev.GetSessionId())
		c.log.Debug("event received", "type", t, "id", ev.GetId(), "session", sid.String())
		c.mu.Lock()
		if releasing(t) {
			// The window is about arrival: a Thaw that came in time but
			// waits behind another handler is not late.
			if s := c.sessions[sid]; s != nil && s.timer != nil {
				s.timer.Stop()
				s.timer = nil
			}
		}
		if t == EventAbort {
			// Identify keeps no session state, so an Abort leaves it alone.
			if c.running != nil && c.running.session == sid && c.running.typ != EventIdentify {
				c.running.cancel(errAbortArrived)
			}
			for _, it := range c.queue {
				if it.msg == nil {
					continue
				}
				qt := EventType(it.msg.GetType())
				if qsid, err := wire.ParseGUID(it.msg.GetSessionId()); err == nil && qsid == sid && !releasing(qt) && qt != EventIdentify {
					it.skip = errAbortArrived
				}
			}
		}
		c.queue = append(c.queue, &item{msg: ev, received: time.Now()})
		c.mu.Unlock()
		c.signal()
	}
}

// dispatch runs queued work until the stream ends, then releases every
// session and returns why the stream ended.
func (c *conn) dispatch(streamCtx context.Context) error {
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && c.readErr == nil {
			c.mu.Unlock()
			<-c.wake // the reader always signals when the stream ends
			c.mu.Lock()
		}
		if err := c.readErr; err != nil {
			// Queued events cannot be answered any more; release covers
			// what they would have undone.
			c.queue = nil
			c.mu.Unlock()
			c.release(err)
			return err
		}
		it := c.queue[0]
		c.queue = c.queue[1:]
		c.mu.Unlock()
		c.handle(streamCtx, it)
	}
}

// handle runs one item. Every event gets exactly one answer.
func (c *conn) handle(streamCtx context.Context, it *item) {
	if it.window {
		c.windowExpired(it.expired)
		return
	}
	ev, err := eventFromWire(it.msg, c.instance, it.received, c.window)
	if err != nil {
		c.answer(it.msg.GetId(), EventType(it.msg.GetType()), Failure{Code: vsserr.WriterErrorNonRetryable, Message: "malformed event: " + err.Error()}, "", "")
		return
	}
	if it.skip != nil {
		c.answer(ev.ID, ev.Type, Failure{Code: vsserr.WriterErrorRetryable, Message: it.skip.Error()}, "", "")
		return
	}
	c.log.Debug("event", "type", ev.Type, "id", ev.ID, "session", ev.SessionID.String())
	switch ev.Type {
	case EventIdentify:
		c.identify(streamCtx, ev)
	case EventPrepareBackup:
		c.session(ev)
		h, _ := c.w.(PrepareBackuper)
		c.withComponents(streamCtx, ev, it.msg.GetBcdXml(), document.PhasePrepareBackup, h != nil, func(ctx context.Context, comps *Components) error {
			return h.PrepareBackup(ctx, ev, comps)
		})
	case EventPrepareSnapshot:
		s := c.session(ev)
		c.mu.Lock()
		s.prepared = true
		c.mu.Unlock()
		f := Failure{}
		if h, ok := c.w.(PrepareSnapshotter); ok {
			f = c.call(streamCtx, ev, func(ctx context.Context) error { return h.PrepareSnapshot(ctx, ev) })
		}
		c.answer(ev.ID, ev.Type, f, "", "")
	case EventFreeze:
		c.freeze(streamCtx, ev)
	case EventThaw:
		c.thaw(streamCtx, ev)
	case EventPostSnapshot:
		s := c.session(ev)
		h, _ := c.w.(PostSnapshotter)
		if c.withComponents(streamCtx, ev, it.msg.GetBcdXml(), document.PhasePostSnapshot, h != nil, func(ctx context.Context, comps *Components) error {
			return h.PostSnapshot(ctx, ev, comps)
		}) {
			c.mu.Lock()
			s.prepared = false
			c.mu.Unlock()
		}
	case EventAbort:
		s := c.session(ev)
		c.stopWindow(s)
		f := c.call(streamCtx, ev, func(ctx context.Context) error { return c.w.Abort(ctx, ev) })
		c.mu.Lock()
		s.frozen, s.prepared = false, false
		c.mu.Unlock()
		c.answer(ev.ID, ev.Type, f, "", "")
	case EventBackupComplete:
		c.session(ev)
		h, _ := c.w.(BackupCompleter)
		c.withComponents(streamCtx, ev, it.msg.GetBcdXml(), document.PhaseReadOnly, h != nil, func(ctx context.Context, comps *Components) error {
			return h.BackupComplete(ctx, ev, comps)
		})
	case EventBackupShutdown:
		c.backupShutdown(streamCtx, ev)
	case EventPreRestore:
		c.session(ev)
		h, _ := c.w.(PreRestorer)
		c.withComponents(streamCtx, ev, it.msg.GetBcdXml(), document.PhasePreRestore, h != nil, func(ctx context.Context, comps *Components) error {
			return h.PreRestore(ctx, ev, comps)
		})
	case EventPostRestore:
		c.session(ev)
		h, _ := c.w.(PostRestorer)
		c.withComponents(streamCtx, ev, it.msg.GetBcdXml(), document.PhasePostRestore, h != nil, func(ctx context.Context, comps *Components) error {
			return h.PostRestore(ctx, ev, comps)
		})
	default:
		// A newer coordinator may know events this SDK does not; like an
		// unimplemented optional event, they succeed.
		c.log.Warn("unknown event type answered success", "type", ev.Type, "id", ev.ID)
		c.answer(ev.ID, ev.Type, Failure{}, "", "")
	}
}

// session returns the session of ev, creating it, and completes ev with
// what earlier events of the session said (volumes, placements) when the
// coordinator does not repeat it.
func (c *conn) session(ev *Event) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[ev.SessionID]
	if s == nil {
		c.seq++
		s = &session{id: ev.SessionID, seq: c.seq}
		c.sessions[ev.SessionID] = s
	}
	if len(ev.Volumes) == 0 {
		ev.Volumes = slices.Clone(s.volumes)
	} else {
		s.volumes = slices.Clone(ev.Volumes)
	}
	if len(ev.Placements) == 0 {
		ev.Placements = slices.Clone(s.placements)
	} else {
		s.placements = slices.Clone(ev.Placements)
	}
	s.last = *ev
	return s
}

// stopWindow disarms a session's Freeze→Thaw timer.
func (c *conn) stopWindow(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// call runs one handler under the event's deadline. A handler that is not
// releasing is registered as running so that an Abort of its session, an
// expired window or a lost stream cancels it.
func (c *conn) call(streamCtx context.Context, ev *Event, fn func(context.Context) error) Failure {
	base := streamCtx
	if releasing(ev.Type) {
		base = context.WithoutCancel(streamCtx)
	}
	ctx, cancel := context.WithCancelCause(base)
	defer cancel(nil)
	ctx, cancelDeadline := context.WithDeadline(ctx, ev.Deadline)
	defer cancelDeadline()
	if !releasing(ev.Type) {
		c.mu.Lock()
		if c.readErr != nil {
			cancel(errStreamLost)
		}
		c.running = &running{session: ev.SessionID, typ: ev.Type, cancel: cancel}
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.running = nil
			c.mu.Unlock()
		}()
	}
	err := c.protect(ctx, ev, fn)
	return failureOf(ctx, err)
}

// protect turns a handler's panic into a failure: the writer keeps serving
// and its sessions can still be released.
func (c *conn) protect(ctx context.Context, ev *Event, fn func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("handler panicked", "event", ev.Type, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%s handler panicked: %v", ev.Type, r)
		}
	}()
	return fn(ctx)
}

func (c *conn) identify(streamCtx context.Context, ev *Event) {
	md := newMetadata()
	f := c.call(streamCtx, ev, func(ctx context.Context) error { return c.w.Identify(ctx, md) })
	var wmd string
	if f.Code == vsserr.OK {
		b, err := md.finish(c.id, c.instance)
		if err != nil {
			f = Failure{Code: vsserr.WriterErrorNonRetryable, Message: "Identify built an invalid Writer Metadata Document: " + vsserr.Message(err)}
		} else {
			wmd = string(b)
		}
	}
	c.answer(ev.ID, ev.Type, f, wmd, "")
}

// withComponents runs an event that carries the BCD. It reports whether
// the handler was reached (or there is none), which is when the event
// counts as delivered.
func (c *conn) withComponents(streamCtx context.Context, ev *Event, bcd string, phase document.Phase, implemented bool,
	fn func(context.Context, *Components) error) bool {
	if !implemented {
		c.answer(ev.ID, ev.Type, Failure{}, "", "")
		return true
	}
	comps, err := componentsFromXML(bcd, c.instance, phase)
	if err != nil {
		c.answer(ev.ID, ev.Type, Failure{Code: vsserr.WriterErrorNonRetryable,
			Message: "the Backup Components Document from lvssd does not parse: " + vsserr.Message(err)}, "", "")
		return false
	}
	f := c.call(streamCtx, ev, func(ctx context.Context) error { return fn(ctx, comps) })
	// Edits are sent also with a failure: a component failure message set
	// before vetoing is how the requester learns why.
	out, err := comps.result(c.instance)
	if err != nil {
		if f.Code == vsserr.OK {
			f = Failure{Code: vsserr.WriterErrorNonRetryable, Message: "the writer's edits to the Backup Components Document are refused: " + err.Error()}
		} else {
			c.log.Warn("edited Backup Components Document dropped", "event", ev.Type, "err", err)
		}
	}
	c.answer(ev.ID, ev.Type, f, "", out)
	return true
}

func (c *conn) freeze(streamCtx context.Context, ev *Event) {
	s := c.session(ev)
	// Frozen from the call on, whatever Freeze returns: a Freeze that
	// failed or timed out may have frozen part of the application, and
	// Abort is idempotent.
	c.mu.Lock()
	s.frozen = true
	s.expiredAt = time.Time{}
	c.mu.Unlock()
	f := c.call(streamCtx, ev, func(ctx context.Context) error { return c.w.Freeze(ctx, ev) })
	c.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.frozenAt = time.Now()
	s.armed++
	armed := s.armed
	s.timer = time.AfterFunc(c.window, func() { c.windowTimer(s, armed) })
	c.mu.Unlock()
	c.answer(ev.ID, ev.Type, f, "", "")
}

// windowTimer fires when a session stayed frozen for the whole window.
func (c *conn) windowTimer(s *session, armed uint64) {
	c.mu.Lock()
	if s.timer == nil || s.armed != armed {
		// Disarmed or re-armed while this callback waited for the lock.
		c.mu.Unlock()
		return
	}
	s.timer = nil
	s.expiredAt = time.Now()
	c.queue = append([]*item{{window: true, expired: s.id}}, c.queue...)
	if c.running != nil {
		// The frozen application outranks whatever else is running.
		c.running.cancel(errWindowExpired)
	}
	c.mu.Unlock()
	c.signal()
}

// windowExpired is the SDK's own Abort after the window.
func (c *conn) windowExpired(id uuid.UUID) {
	c.mu.Lock()
	s := c.sessions[id]
	frozen := s != nil && s.frozen
	c.mu.Unlock()
	if !frozen {
		return
	}
	c.log.Warn("Freeze→Thaw window expired without Thaw or Abort; aborting", "session", id.String(), "window", c.window)
	c.selfCall(s, EventAbort)
	c.mu.Lock()
	s.frozen, s.prepared = false, false
	c.mu.Unlock()
}

func (c *conn) thaw(streamCtx context.Context, ev *Event) {
	s := c.session(ev)
	c.stopWindow(s)
	c.mu.Lock()
	expiredAt, frozenAt := s.expiredAt, s.frozenAt
	c.mu.Unlock()
	if !expiredAt.IsZero() {
		// The application was already released by the SDK's Abort;
		// thawing now would report a consistency that did not hold.
		c.answer(ev.ID, ev.Type, Failure{Code: vsserr.WriterErrorTimeout, Message: fmt.Sprintf(
			"Thaw arrived %s after Freeze returned; the Freeze→Thaw window is %s and the writer aborted at %s",
			time.Since(frozenAt).Round(time.Millisecond), c.window, expiredAt.Format(time.RFC3339Nano))}, "", "")
		return
	}
	f := c.call(streamCtx, ev, func(ctx context.Context) error { return c.w.Thaw(ctx, ev) })
	c.mu.Lock()
	s.frozen = false
	c.mu.Unlock()
	c.answer(ev.ID, ev.Type, f, "", "")
}

func (c *conn) backupShutdown(streamCtx context.Context, ev *Event) {
	s := c.session(ev)
	c.stopWindow(s)
	c.mu.Lock()
	held := s.frozen || s.prepared
	c.mu.Unlock()
	if held {
		// D14: what PrepareSnapshot locked is released on Abort or
		// BackupShutdown, whichever comes first; a writer without a
		// BackupShutdown handler releases in Abort, so call it.
		c.log.Warn("BackupShutdown for a session still frozen or prepared; aborting first", "session", ev.SessionID.String())
		c.selfCall(s, EventAbort)
	}
	f := Failure{}
	if h, ok := c.w.(BackupShutdowner); ok {
		f = c.call(streamCtx, ev, func(ctx context.Context) error { return h.BackupShutdown(ctx, ev) })
	}
	c.mu.Lock()
	delete(c.sessions, s.id)
	c.mu.Unlock()
	c.answer(ev.ID, ev.Type, f, "", "")
}

// selfCall raises Abort or BackupShutdown for a session on the SDK's own
// account. It runs outside any stream: Run's context may have ended (that
// is one reason to release), so only ReleaseTimeout bounds it.
func (c *conn) selfCall(s *session, t EventType) {
	c.mu.Lock()
	ev := s.last
	c.mu.Unlock()
	ev.ID, ev.Type, ev.SelfRaised = 0, t, true
	ev.Deadline = time.Now().Add(c.opts.ReleaseTimeout)
	fn := func(ctx context.Context) error { return c.w.Abort(ctx, &ev) }
	if t == EventBackupShutdown {
		h, ok := c.w.(BackupShutdowner)
		if !ok {
			return
		}
		fn = func(ctx context.Context) error { return h.BackupShutdown(ctx, &ev) }
	}
	f := c.call(context.WithoutCancel(c.runCtx), &ev, fn)
	if f.Code != vsserr.OK {
		c.log.Warn("writer failed an SDK-raised event", "event", t, "session", s.id.String(), "failure", f.Code.String(), "message", f.Message)
	}
}

// release runs when the stream has ended: nobody will send Thaw, Abort or
// BackupShutdown any more, so the SDK does.
func (c *conn) release(why error) {
	type entry struct {
		s    *session
		held bool
	}
	c.mu.Lock()
	list := make([]entry, 0, len(c.sessions))
	for _, s := range c.sessions {
		if s.timer != nil {
			s.timer.Stop()
			s.timer = nil
		}
		list = append(list, entry{s, s.frozen || s.prepared})
	}
	c.sessions = map[uuid.UUID]*session{}
	c.mu.Unlock()
	if len(list) == 0 {
		return
	}
	slices.SortFunc(list, func(a, b entry) int { return cmp.Compare(a.s.seq, b.s.seq) })
	c.log.Warn("stream to lvssd ended; releasing sessions", "sessions", len(list), "reason", why)
	// Every Abort before any BackupShutdown: unfreezing is what is urgent.
	for _, e := range list {
		if e.held {
			c.selfCall(e.s, EventAbort)
		}
	}
	for _, e := range list {
		c.selfCall(e.s, EventBackupShutdown)
	}
}

// answer sends one EventResult. A failed send means the stream is gone;
// the reader sees that too and dispatch then releases.
func (c *conn) answer(id uint64, t EventType, f Failure, wmd, bcd string) {
	if f.Code != vsserr.OK {
		c.log.Warn("event failed", "type", t, "id", id, "failure", f.Code.String(), "application_hresult", f.ApplicationHR.Hex(), "message", f.Message)
	}
	err := c.stream.Send(&v1.WriterMessage{Msg: &v1.WriterMessage_Result{Result: &v1.EventResult{
		Id: id, Failure: uint32(f.Code), ApplicationHresult: uint32(f.ApplicationHR),
		ApplicationMessage: f.Message, WmdXml: wmd, BcdXml: bcd,
	}}})
	if err != nil {
		c.log.Debug("answer not sent", "type", t, "id", id, "err", err)
	}
}
