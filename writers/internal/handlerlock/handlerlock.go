package handlerlock

import (
	"context"
	"sync"

	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// Lock is a mutex (its Lock and Unlock guard the writer's state) that
// knows whether the writer was closed. Init it before use.
type Lock struct {
	sync.Mutex
	closed    bool
	base      context.Context
	cancel    context.CancelCauseFunc
	closedErr error
}

// Init prepares l; closedErr is what handlers cut short by Close, and
// handlers after it, report.
func (l *Lock) Init(closedErr error) {
	l.base, l.cancel = context.WithCancelCause(context.Background())
	l.closedErr = closedErr
}

// Begin takes the lock for a handler and joins ctx with the writer's
// life: the returned context also ends when Close is called. The caller
// calls done when the handler returns, which releases the lock. After
// Close, Begin fails and holds nothing.
func (l *Lock) Begin(ctx context.Context) (_ context.Context, done func(), _ error) {
	if err := l.LockOpen(); err != nil {
		return nil, nil, err
	}
	ctx, cancel := l.Join(ctx)
	return ctx, func() { cancel(); l.Unlock() }, nil
}

// LockOpen takes the lock unless the writer was closed, for a handler
// that needs no context.
func (l *Lock) LockOpen() error {
	l.Lock()
	if l.closed {
		l.Unlock()
		return writer.Fail(vsserr.WriterErrorRetryable, 0, "%v", l.closedErr)
	}
	return nil
}

// Join returns ctx, ended also when Close is called; cancel releases it.
func (l *Lock) Join(ctx context.Context) (_ context.Context, cancel context.CancelFunc) {
	ctx, c := context.WithCancelCause(ctx)
	stop := context.AfterFunc(l.base, func() { c(context.Cause(l.base)) })
	return ctx, func() { stop(); c(nil) }
}

// Close cuts short whatever handler runs, takes the lock and marks the
// writer closed. It returns with the lock held (the caller releases the
// application, then unlocks); first is false when it was closed already.
func (l *Lock) Close() (first bool) {
	l.cancel(l.closedErr)
	l.Lock()
	if l.closed {
		return false
	}
	l.closed = true
	return true
}

// Closed reports whether Close was called; call it with the lock held.
func (l *Lock) Closed() bool { return l.closed }
