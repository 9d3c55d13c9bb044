package coordinator

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// TestActivity: while a writer holds DoSnapshotSet in its Freeze, the
// sessions and the lock holder are reported at once, with the creation's
// set, its operation and the lease; when it ends the lock is free.
func TestActivity(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writer("db", vss.LevelFrontEnd, 0)
	held, release := w.holdAt(EvFreeze)
	defer release()
	idle := e.c.NewSession(Peer{PID: 7, UID: 1000})
	defer idle.Release(context.Background())

	s := e.toMeta(vss.CtxBackup, true)
	defer s.Release(context.Background())
	e.addAll(s)
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	a, err := s.DoSnapshotSet()
	must(t, err)
	<-held

	done := make(chan struct{})
	var sessions []SessionInfo
	var lock *LockInfo
	go func() { sessions, lock = e.c.Activity(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Activity waits for the frozen writer")
	}
	if len(sessions) != 2 || sessions[0].ID != idle.ID() || sessions[0].State != StNew || sessions[0].Peer.PID != 7 {
		t.Fatalf("sessions: %+v", sessions)
	}
	got := sessions[1]
	if got.ID != s.ID() || got.State != StPrepared || got.Operation != MDoSnapshotSet || got.SetID == uuid.Nil || got.Volumes != 1 ||
		got.Context != vss.CtxBackup || got.Started.IsZero() {
		t.Fatalf("the creating session: %+v", got)
	}
	if lock == nil || lock.Session != s.ID() || lock.SetID != got.SetID || lock.LeaseEnds.Sub(lock.Since) != time.Minute {
		t.Fatalf("lock: %+v", lock)
	}

	release()
	must(t, e.wait(a, nil))
	sessions, lock = e.c.Activity()
	if lock != nil || len(sessions) != 2 || sessions[1].State != StSnapped || sessions[1].Operation != "" {
		t.Fatalf("after DoSnapshotSet: %+v, lock %+v", sessions, lock)
	}
}

// TestEventFilter: each filter on its own, and a writer matched by name in
// any case or by instance ID.
func TestEventFilter(t *testing.T) {
	sess := uuid.New()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := catalog.Event{Time: at, Level: catalog.LevelWarn, Code: vsserr.WriterNotResponding, SessionID: sess,
		Fields: map[string]string{"writer": "Postgres", "instance": "6e5a"}}
	for _, c := range []struct {
		name string
		f    EventFilter
		want bool
	}{
		{"none", EventFilter{}, true},
		{"since before", EventFilter{Since: at.Add(-time.Second)}, true},
		{"since at", EventFilter{Since: at}, true},
		{"since after", EventFilter{Since: at.Add(time.Second)}, false},
		{"session", EventFilter{Session: sess}, true},
		{"other session", EventFilter{Session: uuid.New()}, false},
		{"level info", EventFilter{MinLevel: LevelInfo}, true},
		{"level warn", EventFilter{MinLevel: LevelWarn}, true},
		{"level error", EventFilter{MinLevel: LevelError}, false},
		{"code", EventFilter{Code: vsserr.WriterNotResponding}, true},
		{"other code", EventFilter{Code: vsserr.ProviderVeto}, false},
		{"writer name", EventFilter{Writer: "postgres"}, true},
		{"writer instance", EventFilter{Writer: "6E5A"}, true},
		{"other writer", EventFilter{Writer: "redis"}, false},
	} {
		if got := c.f.match(ev); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}

// TestRecentErrorsDuringHold: while the log is paused for a hold, the
// latest errors come from what is written, at once; after the thaw the
// held-back error is there, without any wait by the caller.
func TestRecentErrorsDuringHold(t *testing.T) {
	e := newEnv(t, nil)
	e.c.Logf(context.Background(), LevelError, vsserr.ProviderVeto, "before the hold")
	if errs, err := e.c.RecentErrors(5); err != nil || len(errs) != 1 || errs[0].Message != "before the hold" {
		t.Fatalf("before the hold: %+v %v", errs, err)
	}
	resume := e.c.pauseLog()
	defer resume()
	e.c.Logf(context.Background(), LevelError, vsserr.ProviderVeto, "during the hold")
	done := make(chan []LogEntry, 1)
	go func() { errs, _ := e.c.RecentErrors(5); done <- errs }()
	select {
	case errs := <-done:
		if len(errs) != 1 {
			t.Fatalf("during the hold: %+v", errs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RecentErrors waits for the hold to end")
	}
	resume()
	e.until("the held-back error in the log", func() bool {
		errs, _ := e.c.RecentErrors(5)
		return len(errs) == 2 && errs[1].Message == "during the hold"
	})
}

// TestEventLogIsBounded: past MaxEvents the oldest events are pruned, in
// steps, and the newest are kept.
func TestEventLogIsBounded(t *testing.T) {
	const maxEvents = 50
	e := newEnv(t, func(o *Options) { o.MaxEvents = maxEvents })
	ctx := context.Background()
	for i := range 20 * maxEvents {
		e.c.event(ctx, LevelInfo, 0, uuid.Nil, "soak", "i", strconv.Itoa(i))
	}
	evs, err := e.c.Events(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if limit := maxEvents + eventPruneStep(maxEvents); len(evs) == 0 || len(evs) >= limit {
		t.Fatalf("the log holds %d events after %d with MaxEvents %d (want fewer than %d)", len(evs), 20*maxEvents, maxEvents, limit)
	}
	last := evs[len(evs)-1]
	if last.Fields["i"] != strconv.Itoa(20*maxEvents-1) {
		t.Errorf("the newest event was pruned: the last is %+v", last)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq != evs[i-1].Seq+1 {
			t.Fatalf("the log kept a gap: seq %d then %d (pruning must cut only the oldest)", evs[i-1].Seq, evs[i].Seq)
		}
	}
}
