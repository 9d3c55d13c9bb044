package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/outbox"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Coordinator is one lvssd's shared state.
type Coordinator struct {
	opt Options
	log *slog.Logger

	// The event log is written by one goroutine in batches from a
	// bounded queue that never blocks (eventlog.go, L60); gate pauses it
	// while the freeze guard holds filesystems (lvssd writes nothing to a
	// volume it has frozen: the state directory may be on one).
	evq    *eventQueue
	evDone chan struct{}
	gate   sync.RWMutex
	// creatingSets counts the DoSnapshotSets running: while one runs the
	// event log holds its entries back (L68), so that its transactions
	// and their fsyncs stay out of the snapshot's way.
	creatingSets atomic.Int32

	// snapLocks serialise what changes one snapshot: ExposeSnapshot,
	// UnexposeSnapshot and deleting it (lockSnapshot).
	snapMu    sync.Mutex
	snapLocks map[uuid.UUID]*snapLock

	// reverts are each volume's latest revert (RevertToSnapshot,
	// QueryRevertStatus), by volume path.
	revMu   sync.Mutex
	reverts map[string]*revertRun

	mu       sync.Mutex
	writers  map[uuid.UUID]*WriterHandle
	sessions map[uuid.UUID]*Session
	creator  *Session // holds the creation lock (StartSnapshotSet..DoSnapshotSet end)
	lease    Stopper
	// lockedAt and leaseEnds say since when the creator holds the lock
	// and when its lease runs out (lvss status).
	lockedAt, leaseEnds time.Time
	closed              bool
	// creating are the volumes of the set being created (the creator's),
	// so that a revert of one of them is refused, and the other way round.
	creating map[string]bool

	recoveryState
}

// New builds a coordinator, after recovering what an earlier lvssd left
// unfinished (recover.go): reverts (D10), cut creations and exposures from
// the journal, auto-release snapshots whose sessions died with it (D11),
// and the catalog against the providers' own listings.
func New(ctx context.Context, opt Options) (*Coordinator, error) {
	opt.fill()
	c := &Coordinator{opt: opt, log: opt.Logger, writers: map[uuid.UUID]*WriterHandle{}, sessions: map[uuid.UUID]*Session{},
		snapLocks: map[uuid.UUID]*snapLock{}, reverts: map[string]*revertRun{}, evDone: make(chan struct{})}
	c.evq = newEventQueue(evQueueEntries, evQueueBytes, func(l Level) { c.opt.Observer.EventDropped(string(l)) })
	go c.eventLoop()
	// Every snapshot record passes through the catalog, so its commit
	// hook sees each change, whichever path below made it (recovery's
	// included, hence before it runs); revert, which the catalog does
	// not see, calls snapshotsChanged itself.
	if opt.Catalog != nil {
		opt.Catalog.OnSnapshotsChanged(c.snapshotsChanged)
	}
	if err := c.recover(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// snapshotsChanged tells Options.SnapshotsChanged that the snapshots
// changed.
func (c *Coordinator) snapshotsChanged() {
	if c.opt.SnapshotsChanged != nil {
		c.opt.SnapshotsChanged()
	}
}

// Level is an event-log entry's severity.
type Level string

// Event-log levels (the catalog stores them as these strings).
const (
	LevelInfo  Level = catalog.LevelInfo
	LevelWarn  Level = catalog.LevelWarn
	LevelError Level = catalog.LevelError
)

func levelFor(err error) Level {
	if err != nil {
		return LevelError
	}
	return LevelInfo
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Options returns the effective options (defaults filled in).
func (c *Coordinator) Options() Options { return c.opt }

// event writes to the slog logger and to the catalog's event log, which is
// what `lvss` shows. kv are alternating key/value strings.
func (c *Coordinator) event(ctx context.Context, level Level, code vsserr.HRESULT, session uuid.UUID, msg string, kv ...string) {
	fields := map[string]string{}
	attrs := []any{}
	msg = clip(msg)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		v := clip(kv[i+1])
		fields[kv[i]] = v
		attrs = append(attrs, kv[i], v)
	}
	if code != 0 {
		attrs = append(attrs, "hresult", code.String())
	}
	if session != uuid.Nil {
		attrs = append(attrs, "session", session.String())
	}
	lvl := slog.LevelInfo
	switch level {
	case LevelWarn:
		lvl = slog.LevelWarn
	case LevelError:
		lvl = slog.LevelError
	}
	c.log.Log(ctx, lvl, msg, attrs...)
	c.evq.put(catalog.Event{Time: time.Now().UTC(), Level: string(level), Code: code, SessionID: session, Message: msg, Fields: fields})
}

// DefaultMaxEvents is how many events the event log keeps by default: a
// few hundred bytes each, so tens of MiB at most; months of backups at a
// few dozen events each, and still minutes of history in a storm of
// writer failures. Without a bound the log grew for ever, and the catalog
// file with it (found by the soak test, test/soak).
const DefaultMaxEvents = 100_000

// eventPruneStep is how many events are appended between prunings of the
// log: pruning walks back MaxEvents entries to find where to cut, so it
// is done in steps, not after every batch.
func eventPruneStep(maxEvents int) int { return max(1, min(1024, maxEvents/10)) }

// FlushEvents waits until every event logged so far is in the catalog.
func (c *Coordinator) FlushEvents() {
	if ch := c.evq.flush(); ch != nil {
		<-ch
	}
}

// LogEntry is one event-log entry.
type LogEntry struct {
	Seq       uint64
	Time      time.Time
	Level     Level
	Code      vsserr.HRESULT
	SessionID uuid.UUID
	Message   string
	Fields    map[string]string
}

// Events reads the event log after writing out what is queued.
func (c *Coordinator) Events(afterSeq uint64, limit int) ([]LogEntry, error) {
	c.FlushEvents()
	evs, err := c.opt.Catalog.Events(afterSeq, limit)
	if err != nil {
		return nil, err
	}
	out := make([]LogEntry, len(evs))
	for i, e := range evs {
		out[i] = LogEntry{Seq: e.Seq, Time: e.Time, Level: Level(e.Level), Code: e.Code, SessionID: e.SessionID, Message: e.Message, Fields: e.Fields}
	}
	return out, nil
}

// pauseLog stops event-log writes (waiting for one in progress) until the
// returned func is called; the coordinator holds it while filesystems are
// frozen.
func (c *Coordinator) pauseLog() (resume func()) {
	c.gate.Lock()
	var once sync.Once
	return func() { once.Do(c.gate.Unlock) }
}

// Unexpected records an internal error in the event log with its code and
// returns it as VSS_E_UNEXPECTED (spec: details are in the log).
func (c *Coordinator) Unexpected(ctx context.Context, session uuid.UUID, where string, err error) error {
	e := vsserr.Wrap(vsserr.Unexpected, err, "%s", where)
	c.event(ctx, LevelError, vsserr.Unexpected, session, "unexpected internal error", "where", where, "error", err.Error())
	return e
}

// Logf records a notable event (used by the server for access denials).
func (c *Coordinator) Logf(ctx context.Context, level Level, code vsserr.HRESULT, msg string, kv ...string) {
	c.event(ctx, level, code, uuid.Nil, msg, kv...)
}

// errUnsubscribed is the cause of a writer's end when its own stream
// ended (it exited, or closed the connection).
var errUnsubscribed = errors.New("the writer closed its stream")

// AddWriter registers a subscribed writer. Every message to it goes
// through its own bounded queue and sender (package outbox), so a writer
// that stops reading never blocks a caller; the first message is always
// the Welcome, queued before the writer is visible to anyone who could
// send it an event. The server then calls IdentifyNew, so that `lvss list
// writers` can show its components (D16).
func (c *Coordinator) AddWriter(ctx context.Context, id Identity, peer Peer, stream WriterStream) (*WriterHandle, error) {
	if id.ClassID == uuid.Nil {
		return nil, vsserr.New(vsserr.InvalidArg, "writer class ID is GUID_NULL")
	}
	if id.Name == "" {
		return nil, vsserr.New(vsserr.InvalidArg, "writer name is empty")
	}
	window := c.opt.Timeouts.Freeze
	if id.FreezeTimeout > 0 && id.FreezeTimeout < window {
		window = id.FreezeTimeout
	}
	w := &WriterHandle{InstanceID: uuid.New(), Identity: id, Peer: peer, Window: window,
		gone: make(chan struct{}), pending: map[uint64]chan Result{}}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, vsserr.New(vsserr.WriterInfrastructure, "lvssd is shutting down")
	}
	for _, o := range c.writers {
		if o.Identity.ClassID == id.ClassID && o.Identity.InstanceName == id.InstanceName {
			c.mu.Unlock()
			return nil, vsserr.New(vsserr.WriterAlreadySubscribed, "writer class %s instance name %q is already subscribed (pid %d)",
				id.ClassID, id.InstanceName, o.Peer.PID)
		}
	}
	w.box = outbox.New(outboxSize, stream.Send, func(cause error) { c.writerEnded(w, stream, cause) })
	// Put under c.mu is safe only because the box is new: it can be
	// neither full nor ended, so Put cannot call writerEnded, which takes
	// c.mu.
	w.box.Put(Outbound{Welcome: &Welcome{InstanceID: w.InstanceID, Window: window}}, time.Now().Add(c.opt.Timeouts.Identify), "Welcome")
	c.writers[w.InstanceID] = w
	c.mu.Unlock()
	c.opt.Observer.WriterSubscribed(id.Name)
	c.event(ctx, LevelInfo, 0, uuid.Nil, "writer subscribed", "writer", id.Name, "class", id.ClassID.String(),
		"instance", w.InstanceID.String(), "pid", fmt.Sprint(peer.PID))
	return w, nil
}

// writerEnded runs once per writer, when its outbox ends: the stream is
// ended (if the writer did not end it itself), sessions waiting for its
// answers see it gone at once, and it leaves the registry.
func (c *Coordinator) writerEnded(w *WriterHandle, stream WriterStream, cause error) {
	w.markGone()
	c.mu.Lock()
	if c.writers[w.InstanceID] == w {
		delete(c.writers, w.InstanceID)
	}
	c.mu.Unlock()
	c.opt.Observer.WriterUnsubscribed(w.Identity.Name)
	ctx := context.Background()
	if errors.Is(cause, errUnsubscribed) {
		c.event(ctx, LevelInfo, 0, uuid.Nil, "writer unsubscribed", "writer", w.Identity.Name, "instance", w.InstanceID.String())
		return
	}
	stream.End(cause)
	c.event(ctx, LevelWarn, vsserr.WriterNotResponding, uuid.Nil, "writer's stream ended by lvssd; it may subscribe again",
		"writer", w.Identity.Name, "instance", w.InstanceID.String(), "pid", fmt.Sprint(w.Peer.PID), "reason", cause.Error())
}

// IdentifyNew runs the first Identify of a freshly subscribed writer. The
// server calls it after it has started reading the writer's stream.
func (c *Coordinator) IdentifyNew(ctx context.Context, w *WriterHandle) {
	if _, err := c.identify(ctx, w, uuid.Nil); err != nil {
		c.opt.Observer.WriterFailed(w.Identity.Name, EvIdentify.String(), vsserr.Code(err))
		c.event(ctx, LevelWarn, vsserr.Code(err), uuid.Nil, "writer failed its first Identify", "writer", w.Identity.Name, "error", err.Error())
	}
	c.abortCut(ctx, w)
}

// identify sends Identify and validates the WMD. The document's identity
// is forced to what the writer subscribed with, so a requester can trust
// writerId and instanceId in it.
func (c *Coordinator) identify(ctx context.Context, w *WriterHandle, session uuid.UUID) (*document.WriterMetadata, error) {
	res, err := w.call(ctx, &Event{Type: EvIdentify, SessionID: session, Timeout: c.opt.Timeouts.Identify})
	if err != nil {
		return nil, err
	}
	if res.Failure.Failed() {
		return nil, vsserr.New(res.Failure, "writer %q failed Identify: %s", w.Identity.Name, res.ApplicationMessage)
	}
	// A writer sends the same document at every Identify unless its
	// metadata changed: parsing it again was a twentieth of lvssd's CPU in
	// a gather of a thousand writers.
	w.mu.Lock()
	if w.wmd != nil && bytes.Equal(w.wmdRaw, res.WMD) {
		md := w.wmd.Clone()
		w.mu.Unlock()
		return md, nil
	}
	w.mu.Unlock()
	md, err := document.ParseWriterMetadata(res.WMD)
	if err != nil {
		return nil, fmt.Errorf("writer %q sent a bad Writer Metadata Document: %w", w.Identity.Name, err)
	}
	md.Identity.WriterID = w.Identity.ClassID
	md.Identity.InstanceID = w.InstanceID
	md.Identity.InstanceName = w.Identity.InstanceName
	if md.Identity.FriendlyName == "" {
		md.Identity.FriendlyName = w.Identity.Name
	}
	w.mu.Lock()
	w.wmd, w.wmdRaw = md, res.WMD
	w.mu.Unlock()
	return md.Clone(), nil
}

// RemoveWriter unsubscribes a writer whose stream ended. Sessions waiting
// for its answers see it gone at once. Idempotent, and a no-op for a
// writer lvssd ended itself.
func (c *Coordinator) RemoveWriter(ctx context.Context, w *WriterHandle) {
	w.box.End(errUnsubscribed)
}

// subscribed returns the live writers, in a stable order (by name, then
// instance) so that metadata indexes are reproducible.
func (c *Coordinator) subscribed() []*WriterHandle {
	c.mu.Lock()
	out := make([]*WriterHandle, 0, len(c.writers))
	for _, w := range c.writers {
		out = append(out, w)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Identity.Name != out[j].Identity.Name {
			return out[i].Identity.Name < out[j].Identity.Name
		}
		return out[i].InstanceID.String() < out[j].InstanceID.String()
	})
	return out
}

// WriterInfo is what `lvss list writers` shows (D16).
type WriterInfo struct {
	InstanceID  uuid.UUID
	Identity    Identity
	Window      time.Duration
	Peer        Peer
	WMD         []byte
	LastSession uuid.UUID
	State       vss.WriterState
	Failure     vsserr.HRESULT
	AppHRESULT  vsserr.HRESULT
	AppMessage  string
}

// ListWriters reports every subscribed writer without sending any event.
func (c *Coordinator) ListWriters() []WriterInfo {
	var out []WriterInfo
	for _, w := range c.subscribed() {
		w.mu.Lock()
		info := WriterInfo{InstanceID: w.InstanceID, Identity: w.Identity, Window: w.Window, Peer: w.Peer, State: vss.WSStable}
		if w.wmd != nil {
			info.WMD, _ = w.wmd.Marshal()
		}
		last, sid := w.last, w.lastSID
		w.mu.Unlock()
		if last != nil {
			st := last.status()
			info.LastSession, info.State, info.Failure, info.AppHRESULT, info.AppMessage = sid, st.State, st.Failure, st.AppHRESULT, st.AppMessage
		}
		out = append(out, info)
	}
	return out
}

// NewSession creates an IVssBackupComponents session for a requester.
func (c *Coordinator) NewSession(peer Peer) *Session {
	s := newSession(c, peer)
	c.mu.Lock()
	c.sessions[s.id] = s
	c.mu.Unlock()
	c.opt.Observer.SessionOpened()
	return s
}

// acquireCreation takes the system-wide creation lock for s, with its
// lease. The lock is never waited for here: another session's creation
// may take minutes, so a refusal goes back to the requester at once
// (VSS_E_SNAPSHOT_SET_IN_PROGRESS) and it decides whether to retry. The
// time from a session's first refusal to its getting the lock is its
// wait, reported to the Observer.
func (c *Coordinator) acquireCreation(s *Session) error {
	obs := c.opt.Observer
	c.mu.Lock()
	if c.creator != nil && c.creator != s {
		err := vsserr.New(vsserr.SnapshotSetInProgress, "session %s is creating snapshot set %s", c.creator.id, c.creator.setIDForLock())
		first := s.lockWaitSince.IsZero()
		if first {
			s.lockWaitSince = time.Now()
		}
		c.mu.Unlock()
		obs.CreationLockRefused(first)
		return err
	}
	c.creator = s
	lease := c.opt.Timeouts.CreationLease
	// The lease runs on the clock's monotonic time (clock.go); lockedAt
	// and leaseEnds are wall times for lvss status only.
	c.lockedAt = c.opt.Clock.Now()
	c.leaseEnds = c.lockedAt.Add(lease)
	c.lease = c.opt.Clock.AfterFunc(lease, func() { s.leaseExpired(lease) })
	since := s.lockWaitSince
	s.lockWaitSince = time.Time{}
	c.mu.Unlock()
	if !since.IsZero() {
		obs.CreationLockWaited(time.Since(since), true)
	}
	return nil
}

// releaseCreation frees the lock if s holds it.
func (c *Coordinator) releaseCreation(s *Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.creator == s {
		c.creator = nil
		c.creating = nil
		if c.lease != nil {
			c.lease.Stop()
			c.lease = nil
		}
	}
}

func (c *Coordinator) forgetSession(s *Session) {
	c.mu.Lock()
	_, open := c.sessions[s.id]
	delete(c.sessions, s.id)
	since := s.lockWaitSince
	s.lockWaitSince = time.Time{}
	c.mu.Unlock()
	if !since.IsZero() {
		c.opt.Observer.CreationLockWaited(time.Since(since), false)
	}
	if open {
		c.opt.Observer.SessionClosed()
	}
}

// sessionLive reports whether the session runs now. A session is
// forgotten only after its release has deleted its auto-release
// snapshots, so a snapshot whose session is live is still that session's.
func (c *Coordinator) sessionLive(id uuid.UUID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.sessions[id]
	return ok
}

// Close releases every session (as if each requester had gone) and stops
// accepting writers.
func (c *Coordinator) Close(ctx context.Context) {
	c.mu.Lock()
	c.closed = true
	ss := make([]*Session, 0, len(c.sessions))
	for _, s := range c.sessions {
		ss = append(ss, s)
	}
	c.mu.Unlock()
	for _, s := range ss {
		s.Release(ctx)
	}
	c.evq.close()
	<-c.evDone
}

// Shadow is a snapshot with whether its session is still running.
type Shadow struct {
	Snapshot
	LiveSession bool
}

// ShadowQuery selects what ListShadows lists. Zero fields do not select.
type ShadowQuery struct {
	SetID  uuid.UUID
	Volume string
	// After continues a listing after this snapshot (its position in the
	// listing's order); it must still be in the catalog.
	After uuid.UUID
	Limit int // at most this many (<= 0: all)
}

// ListShadows lists snapshots of every context (no session, no event),
// selected by q, set by set as `lvss list shadows` shows them: fn gets them
// in pages of at most page, each read from the catalog in a transaction of
// its own, so a listing of 10,000 never holds more than a page (issue 14).
// fn's error ends the listing and is returned.
func (c *Coordinator) ListShadows(q ShadowQuery, page int, fn func([]Shadow) error) error {
	if page <= 0 {
		page = 256
	}
	l := c.opt.Catalog.List(catalog.Filter{SetID: q.SetID, Volume: q.Volume}).Grouped()
	if q.After != uuid.Nil {
		if err := l.After(q.After); err != nil {
			return err
		}
	}
	left := q.Limit
	for !l.Done() {
		n := page
		if q.Limit > 0 {
			if left <= 0 {
				return nil
			}
			n = min(n, left)
		}
		snaps, err := l.Next(n)
		if err != nil {
			return err
		}
		if len(snaps) == 0 {
			return nil
		}
		left -= len(snaps)
		c.mu.Lock()
		out := make([]Shadow, len(snaps))
		for i, sn := range snaps {
			_, live := c.sessions[sn.SessionID]
			out[i] = Shadow{Snapshot: snapshotOf(sn), LiveSession: live}
		}
		c.mu.Unlock()
		if err := fn(out); err != nil {
			return err
		}
	}
	return nil
}
