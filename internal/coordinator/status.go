package coordinator

import (
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// What lvss status and lvss events read. Everything here is copied under
// the coordinator's and each session's lock, one at a time and never
// across a send, a provider call or a disk write (those locks are never
// held across one either), so a status never waits for a writer, a
// provider or a frozen filesystem.

// SessionInfo is one requester session as lvss status shows it.
type SessionInfo struct {
	ID        uuid.UUID
	Peer      Peer
	State     State
	Context   vss.Context
	SetID     uuid.UUID // uuid.Nil before StartSnapshotSet
	Operation Method    // the asynchronous call running, "" when none
	Started   time.Time
	Volumes   int // volumes added to its set
}

// LockInfo is the creation lock's holder (D7).
type LockInfo struct {
	Session   uuid.UUID
	SetID     uuid.UUID
	Since     time.Time
	LeaseEnds time.Time
}

// Activity returns the sessions in progress, oldest first, and the
// creation lock's holder (nil when no set is being created).
func (c *Coordinator) Activity() ([]SessionInfo, *LockInfo) {
	c.mu.Lock()
	ss := make([]*Session, 0, len(c.sessions))
	for _, s := range c.sessions {
		ss = append(ss, s)
	}
	var lock *LockInfo
	creator := c.creator
	if creator != nil {
		lock = &LockInfo{Session: creator.id, Since: c.lockedAt, LeaseEnds: c.leaseEnds}
	}
	c.mu.Unlock()
	// Each session's lock is taken after c.mu is released: a session
	// takes c.mu while holding its own (StartSnapshotSet).
	out := make([]SessionInfo, 0, len(ss))
	for _, s := range ss {
		s.mu.Lock()
		info := SessionInfo{ID: s.id, Peer: s.peer, State: s.state, Context: s.context, SetID: s.setID,
			Started: s.started, Volumes: len(s.volumes)}
		if s.pending != nil {
			info.Operation = s.pending.method
		}
		s.mu.Unlock()
		if lock != nil && s == creator {
			lock.SetID = info.SetID
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out, lock
}

// EventFilter selects event-log entries (lvss events). Zero fields do not
// filter.
type EventFilter struct {
	AfterSeq uint64
	Limit    int
	// Newest: with a Limit, the newest Limit matching entries rather than
	// the first ones after AfterSeq (listed oldest first either way).
	Newest   bool
	Since    time.Time
	Session  uuid.UUID
	Writer   string // a writer's name (any case) or instance ID, as the entry's fields name it
	MinLevel Level  // this level and above
	Code     vsserr.HRESULT
}

var levelRank = map[Level]int{LevelInfo: 0, LevelWarn: 1, LevelError: 2}

// ValidLevel reports whether l is an event-log level.
func ValidLevel(l Level) bool { _, ok := levelRank[l]; return ok }

func (f EventFilter) match(e catalog.Event) bool {
	switch {
	case !f.Since.IsZero() && e.Time.Before(f.Since):
		return false
	case f.Session != uuid.Nil && e.SessionID != f.Session:
		return false
	case f.MinLevel != "" && levelRank[Level(e.Level)] < levelRank[f.MinLevel]:
		return false
	case f.Code != 0 && e.Code != f.Code:
		return false
	case f.Writer != "" && !strings.EqualFold(e.Fields["writer"], f.Writer) && !strings.EqualFold(e.Fields["instance"], f.Writer):
		return false
	}
	return true
}

// QueryEvents reads the event log after writing out what is queued, as
// Events does. last is the sequence number of the log's newest entry as
// the read saw it (catalog.DB.QueryEvents).
func (c *Coordinator) QueryEvents(f EventFilter) (entries []LogEntry, last uint64, err error) {
	c.FlushEvents()
	return c.queryEvents(f)
}

// RecentErrors returns the newest n error entries, oldest first. It lets
// what is queued be written first, but never waits for a thaw: while
// filesystems are held frozen the log is not written (pauseLog), and a
// status must not wait for that. Those entries show once it is over.
func (c *Coordinator) RecentErrors(n int) ([]LogEntry, error) {
	if n <= 0 {
		return nil, nil
	}
	c.flushUnlessHeld(time.Second)
	out, _, err := c.queryEvents(EventFilter{Limit: n, Newest: true, MinLevel: LevelError})
	return out, err
}

// flushUnlessHeld waits, up to d, until what is queued is in the log,
// unless the log is paused for a hold: then it returns at once.
func (c *Coordinator) flushUnlessHeld(d time.Duration) {
	if !c.gate.TryRLock() {
		return // paused: filesystems are held frozen
	}
	c.gate.RUnlock()
	ch := c.evq.flush()
	if ch == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

func (c *Coordinator) queryEvents(f EventFilter) ([]LogEntry, uint64, error) {
	if c.opt.Catalog == nil {
		return nil, 0, nil
	}
	evs, last, err := c.opt.Catalog.QueryEvents(catalog.EventQuery{AfterSeq: f.AfterSeq, Limit: f.Limit, Newest: f.Newest, Match: f.match})
	if err != nil {
		return nil, 0, err
	}
	out := make([]LogEntry, len(evs))
	for i, e := range evs {
		out[i] = LogEntry{Seq: e.Seq, Time: e.Time, Level: Level(e.Level), Code: e.Code, SessionID: e.SessionID, Message: e.Message, Fields: e.Fields}
	}
	return out, last, nil
}
