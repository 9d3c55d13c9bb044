package coordinator

import (
	"time"

	"github.com/lvss/lvss/vsserr"
)

// Observer is told what the coordinator does, as it happens, so that
// lvssd can export metrics (package internal/metrics implements it with
// Prometheus). The coordinator depends on this interface only: it stays
// free of any metrics library, its unit tests need none, and a scrape
// never reaches into the coordinator's state or locks, since everything
// a metric shows has already been handed over through these calls.
//
// Every method is called on a session's or a writer's path, some of them
// between Freeze and Thaw, and some while the coordinator holds a lock:
// an implementation must record and return at once (an atomic add, a
// histogram observation), never block, never call back into the
// coordinator, and be safe for concurrent use. Names passed in are
// writer names (Identity.Name), event names and VSS error names: bounded
// sets, never IDs.
type Observer interface {
	// SessionOpened and SessionClosed bracket each requester session,
	// from NewSession to the end of its Release.
	SessionOpened()
	SessionClosed()

	// CreationLockRefused: StartSnapshotSet was refused with
	// VSS_E_SNAPSHOT_SET_IN_PROGRESS because another session holds the
	// creation lock; first says this is the session's first refusal (it
	// starts waiting: requesters such as lvss backup retry).
	CreationLockRefused(first bool)
	// CreationLockWaited ends a session's wait that began with its first
	// refusal: acquired when it then got the lock, false when the
	// session ended without it.
	CreationLockWaited(wait time.Duration, acquired bool)

	// SnapshotSetCreated and SnapshotSetFailed end each DoSnapshotSet,
	// with how long it ran. failure is the VSS error it ended with
	// (VSS_S_ASYNC_CANCELLED for a requester's Cancel or release).
	SnapshotSetCreated(took time.Duration)
	SnapshotSetFailed(took time.Duration, failure vsserr.HRESULT)

	// WriterThawed: a writer froze and thawed in time; window runs from
	// Freeze sent to Thaw answered.
	WriterThawed(writer string, window time.Duration)
	// FilesystemsHeld: the freeze guard held filesystems (FIFREEZE to
	// FITHAW) for a set whose provider needs it.
	FilesystemsHeld(held time.Duration)
	// WriterFailed: a writer failed an event (event is its name, such as
	// "Freeze"): it vetoed, did not answer in time, or its window
	// expired. Counted once per writer and session, as the writer's
	// status records only its first failure (vss-reference §3.3); a
	// failed first Identify after subscribing counts too.
	WriterFailed(writer, event string, failure vsserr.HRESULT)

	// WriterSubscribed and WriterUnsubscribed bracket each writer's
	// subscription.
	WriterSubscribed(writer string)
	WriterUnsubscribed(writer string)

	// EventDropped: an event-log entry of this level ("info", "warn",
	// "error") was dropped because the log's queue was full (L60). The
	// log itself says so once there is room again.
	EventDropped(level string)
}

// nopObserver is the Observer of a coordinator given none.
type nopObserver struct{}

func (nopObserver) SessionOpened()                                  {}
func (nopObserver) SessionClosed()                                  {}
func (nopObserver) CreationLockRefused(bool)                        {}
func (nopObserver) CreationLockWaited(time.Duration, bool)          {}
func (nopObserver) SnapshotSetCreated(time.Duration)                {}
func (nopObserver) SnapshotSetFailed(time.Duration, vsserr.HRESULT) {}
func (nopObserver) WriterThawed(string, time.Duration)              {}
func (nopObserver) FilesystemsHeld(time.Duration)                   {}
func (nopObserver) WriterFailed(string, string, vsserr.HRESULT)     {}
func (nopObserver) WriterSubscribed(string)                         {}
func (nopObserver) WriterUnsubscribed(string)                       {}
func (nopObserver) EventDropped(string)                             {}
