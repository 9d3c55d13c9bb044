package coordinator

import "time"

// Clock is where the coordinator's deadlines come from: the writers'
// Freeze→Thaw windows, the creation lease and the frozen times it reports.
// Every one is a duration measured from a Mark, and every timer is started
// with a duration, never computed by comparing wall-clock times. In the
// real clock a Mark is a time.Time with Go's monotonic reading and timers
// run on the monotonic clock, so a step of the wall clock (NTP, an admin's
// `date -s`, a suspended VM's catch-up) can neither shorten nor stretch a
// freeze window or a lease. Tests inject a clock whose wall time jumps
// while its monotonic time does not, to show it (clock_test.go).
type Clock interface {
	// Now is the wall-clock time, for records and display only.
	Now() time.Time
	// Mark starts a measurement; Since says how long ago it started.
	Mark() Mark
	Since(Mark) time.Duration
	// AfterFunc runs f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Stopper
}

// Mark is an instant on a Clock's monotonic time line. Its wall-clock
// time is for display only (status, the event log).
type Mark struct {
	mono time.Duration // the fake clock's position; unused by the real one
	at   time.Time
}

// Wall is the mark's wall-clock time, for display.
func (m Mark) Wall() time.Time { return m.at }

// Stopper is a timer that can be stopped.
type Stopper interface{ Stop() bool }

// realClock is Go's clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Mark keeps time.Now's monotonic reading: Since subtracts on it.
func (realClock) Mark() Mark { return Mark{at: time.Now()} }

func (realClock) Since(m Mark) time.Duration { return time.Since(m.at) }

func (realClock) AfterFunc(d time.Duration, f func()) Stopper { return time.AfterFunc(d, f) }
