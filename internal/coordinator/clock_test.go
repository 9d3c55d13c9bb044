package coordinator

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// fakeClock has a monotonic time the test advances and a wall clock the
// test can step either way, as NTP or `date -s` would, without touching
// the machine's clock.
type fakeClock struct {
	mu     sync.Mutex
	mono   time.Duration
	wall   time.Time // wall time at mono 0
	timers []*fakeTimer
}

type fakeTimer struct {
	c   *fakeClock
	at  time.Duration
	f   func()
	off bool
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.off
	t.off = true
	return was
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wall.Add(c.mono)
}

func (c *fakeClock) Mark() Mark {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Mark{mono: c.mono, at: c.wall.Add(c.mono)}
}

func (c *fakeClock) Since(m Mark) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono - m.mono
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.mono + d, f: f}
	c.timers = append(c.timers, t)
	return t
}

// step moves the wall clock only.
func (c *fakeClock) step(d time.Duration) {
	c.mu.Lock()
	c.wall = c.wall.Add(d)
	c.mu.Unlock()
}

// advance moves monotonic time and runs the timers that came due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.mono += d
	var due []func()
	for _, t := range c.timers {
		if !t.off && t.at <= c.mono {
			t.off = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		go f()
	}
}

// pending is how many timers have not fired or been stopped.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.off {
			n++
		}
	}
	return n
}

// A writer's Freeze→Thaw window is measured on monotonic time: steps of
// the wall clock by hours, forward and back, while the writer is frozen
// neither end its window early nor keep it from ending on time.
func TestFreezeWindowIgnoresWallClockSteps(t *testing.T) {
	clk := &fakeClock{wall: time.Date(2026, 3, 29, 1, 59, 0, 0, time.UTC)}
	// The commit is held while db is frozen; its real-time deadline (the
	// hold window) must not end the creation first on a busy machine.
	e := newEnv(t, func(o *Options) { o.Clock = clk; o.Timeouts.Hold = time.Hour })
	const window = 10 * time.Second
	w := e.writer("db", vss.LevelBackEnd, window)
	held, release := e.prov.HoldAt("CommitSnapshots")
	s := e.toMeta(vss.CtxBackup, true)
	e.addAll(s)
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	op, err := s.DoSnapshotSet()
	must(t, err)
	<-held // db is frozen; its window timer runs, beside the lease's
	e.until("the window timer is set", func() bool { return clk.pending() >= 2 })

	clk.step(3 * time.Hour) // forward: must not shorten the window
	clk.advance(window - time.Millisecond)
	clk.step(-6 * time.Hour) // back: must not stretch it
	if n := w.count(EvAbort); n != 0 {
		t.Fatalf("db got Abort %d time(s) before its window ended", n)
	}
	clk.advance(time.Millisecond)
	e.until("db's window ends on monotonic time", func() bool { return w.count(EvAbort) == 1 })
	release()
	if hr, msg := op.Wait(context.Background(), -1); hr != vsserr.AsyncFinished {
		t.Fatalf("DoSnapshotSet: %s %s", hr, msg)
	}
	snaps, err := e.cat.ListSnapshots(catalog.Filter{SessionID: s.ID()})
	must(t, err)
	if len(snaps) != 1 || snaps[0].Consistency != string(ConsistencyCrash) {
		t.Fatalf("snapshots %+v: want one crash-consistent (db's window expired)", snaps)
	}
	s.Release(context.Background())
}

// The creation lease runs on monotonic time too.
func TestCreationLeaseIgnoresWallClockSteps(t *testing.T) {
	clk := &fakeClock{wall: time.Date(2026, 10, 25, 2, 30, 0, 0, time.UTC)}
	e := newEnv(t, func(o *Options) { o.Clock = clk; o.Timeouts.CreationLease = time.Minute })
	s := e.toMeta(vss.CtxBackup, false)
	e.toSet(s)
	clk.step(24 * time.Hour)
	clk.advance(time.Minute - time.Millisecond)
	if st := s.State(); st == StAborted {
		t.Fatal("the lease expired early after a wall-clock step")
	}
	clk.step(-48 * time.Hour)
	clk.advance(time.Millisecond)
	e.until("the lease expires on monotonic time", func() bool { return s.State() == StAborted })
	s.Release(context.Background())
}
