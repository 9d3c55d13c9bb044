package coordinator

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/lvss/lvss/vsserr"
)

// Async is an IVssAsync: one asynchronous operation of a session.
type Async struct {
	id     uint64
	method Method
	done   chan struct{}
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	err       error
	cancelled bool // Cancel was called before it finished
	// uncancellable: Cancel while it runs is refused (a revert's status,
	// which is never VSS_S_ASYNC_CANCELLED: vss-reference §4).
	uncancellable bool
}

// ID is the handle the wire carries.
func (a *Async) ID() uint64 { return a.id }

// Method is the call that started the operation.
func (a *Async) Method() Method { return a.method }

// Wait blocks until the operation ends, d passes (d < 0: no limit) or ctx
// ends, and returns QueryStatus's answer then. Wait's own success says
// nothing about the operation (vss-reference §4).
func (a *Async) Wait(ctx context.Context, d time.Duration) (vsserr.HRESULT, string) {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-a.done:
	case <-timeout:
	case <-ctx.Done():
	}
	return a.Status()
}

// Status is QueryStatus: VSS_S_ASYNC_PENDING, VSS_S_ASYNC_FINISHED,
// VSS_S_ASYNC_CANCELLED or the operation's error.
func (a *Async) Status() (vsserr.HRESULT, string) {
	select {
	case <-a.done:
	default:
		return vsserr.AsyncPending, ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.err == nil:
		return vsserr.AsyncFinished, ""
	case a.cancelled && errors.Is(a.err, context.Canceled):
		return vsserr.AsyncCancelled, ""
	}
	return vsserr.Code(a.err), vsserr.Message(a.err)
}

// Err is the operation's final error (nil while pending or on success).
func (a *Async) Err() error {
	select {
	case <-a.done:
	default:
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Cancel asks the operation to stop (vss-reference §4, D17). S_OK when the request was
// taken (the operation then ends cancelled, unless it was past a point
// where stopping is no longer possible, such as a provider commit);
// VSS_S_ASYNC_CANCELLED when it was already cancelled; once it has ended,
// VSS_S_ASYNC_FINISHED after a success, VSS_S_ASYNC_CANCELLED after a
// cancellation, and the operation's own error after a failure.
//
// A taken Cancel returns once the operation has stopped ("cancelled now"
// in vss-reference §4), or when ctx ends: a requester's next call, such as
// restic's AbortBackup right after Cancel, must find no operation pending.
// The wait is bounded by the operation itself: its writer calls are
// abandoned at once, providers honour their context, and what cannot stop
// (a provider commit) ends within its own deadline.
func (a *Async) Cancel(ctx context.Context) (vsserr.HRESULT, string) {
	select {
	case <-a.done:
		return a.Status()
	default:
	}
	if a.uncancellable {
		return vsserr.Unexpected, "a revert cannot be cancelled"
	}
	a.mu.Lock()
	if a.cancelled {
		a.mu.Unlock()
		return vsserr.AsyncCancelled, ""
	}
	a.cancelled = true
	a.cancel(context.Canceled)
	a.mu.Unlock()
	select {
	case <-a.done:
	case <-ctx.Done():
	}
	return vsserr.OK, ""
}

// startAsync runs op in the background as the session's pending async
// operation, admitted in state from. Caller holds s.mu. op does the work
// and never changes the session's state: the outcome is applied here, by
// the table (a success moves, a failure or cancellation moves only where
// the table says, D3, D17), before anyone waiting is told.
func (s *Session) startAsync(m Method, from State, op func(ctx context.Context) error) *Async {
	ctx, cancel := context.WithCancelCause(context.Background())
	s.nextAsync++
	a := &Async{id: s.nextAsync, method: m, done: make(chan struct{}), cancel: cancel}
	s.asyncs[a.id] = a
	s.pending, s.opCancel, s.opDone = a, cancel, a.done
	go func() {
		err := op(ctx)
		if err == nil && ctx.Err() != nil && m != MDoSnapshotSet {
			err = ctx.Err()
		}
		// lvssd's own reasons to stop an operation (the creation lease)
		// are its result; a requester's Cancel is VSS_S_ASYNC_CANCELLED.
		if cause := context.Cause(ctx); err != nil && errors.Is(err, context.Canceled) && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		s.mu.Lock()
		switch {
		case err == nil:
			s.transition(m, from)
		case errors.Is(err, errLeaseExpired) && m != MDoSnapshotSet:
			// The lease moves the session, before anyone waiting is
			// told (DoSnapshotSet's own failure path handles it).
			s.transition(mLeaseExpired, s.state)
		default:
			s.transitionFailed(m, from)
		}
		s.pending, s.opCancel = nil, nil
		s.mu.Unlock()
		a.mu.Lock()
		a.err = err
		a.mu.Unlock()
		cancel(nil)
		close(a.done)
	}()
	return a
}

// Async finds an operation of this session by handle.
func (s *Session) Async(id uint64) (*Async, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.asyncs[id]
	if a == nil {
		return nil, vsserr.New(vsserr.InvalidArg, "no asynchronous operation %d in this session", id)
	}
	return a, nil
}
