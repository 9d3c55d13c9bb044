package writertest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/writer"
)

// call is one handler invocation as the recorder saw it.
type call struct {
	Type       writer.EventType
	Session    uuid.UUID
	SelfRaised bool
	Err        error
}

// recorder sits between the SDK and the writer under test. It forwards
// every event (an optional one only if the writer implements it, so the
// outcome is the same as without it), remembers the calls so the suite can
// wait for what the SDK does on its own, and flags handlers that overlap.
type recorder struct {
	inner writer.Writer
	t     testing.TB

	inflight atomic.Int32

	mu      sync.Mutex
	calls   []call
	changed chan struct{} // closed and replaced on every call
}

func newRecorder(t testing.TB, w writer.Writer) *recorder {
	return &recorder{inner: w, t: t, changed: make(chan struct{})}
}

func (r *recorder) do(t writer.EventType, ev *writer.Event, fn func() error) error {
	if n := r.inflight.Add(1); n > 1 {
		r.t.Errorf("writertest: %s called while another handler of the writer was running", t)
	}
	err := fn()
	r.inflight.Add(-1)
	c := call{Type: t, Err: err}
	if ev != nil {
		c.Session, c.SelfRaised = ev.SessionID, ev.SelfRaised
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return err
}

// mark is the position after the calls so far, for waitFor.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// since returns the calls after a mark.
func (r *recorder) since(m int) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls[m:]...)
}

// waitFor waits until a call after mark matches, or until the timeout.
func (r *recorder) waitFor(m int, timeout time.Duration, match func(call) bool) (call, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for _, c := range r.calls[m:] {
			if match(c) {
				r.mu.Unlock()
				return c, true
			}
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return call{}, false
		}
	}
}

func (r *recorder) Identify(ctx context.Context, md *writer.Metadata) error {
	return r.do(writer.EventIdentify, nil, func() error { return r.inner.Identify(ctx, md) })
}

func (r *recorder) Freeze(ctx context.Context, ev *writer.Event) error {
	return r.do(ev.Type, ev, func() error { return r.inner.Freeze(ctx, ev) })
}

func (r *recorder) Thaw(ctx context.Context, ev *writer.Event) error {
	return r.do(ev.Type, ev, func() error { return r.inner.Thaw(ctx, ev) })
}

func (r *recorder) Abort(ctx context.Context, ev *writer.Event) error {
	return r.do(ev.Type, ev, func() error { return r.inner.Abort(ctx, ev) })
}

func (r *recorder) PrepareBackup(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	return r.do(ev.Type, ev, func() error {
		if h, ok := r.inner.(writer.PrepareBackuper); ok {
			return h.PrepareBackup(ctx, ev, c)
		}
		return nil
	})
}

func (r *recorder) PrepareSnapshot(ctx context.Context, ev *writer.Event) error {
	return r.do(ev.Type, ev, func() error {
		if h, ok := r.inner.(writer.PrepareSnapshotter); ok {
			return h.PrepareSnapshot(ctx, ev)
		}
		return nil
	})
}

func (r *recorder) PostSnapshot(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	return r.do(ev.Type, ev, func() error {
		if h, ok := r.inner.(writer.PostSnapshotter); ok {
			return h.PostSnapshot(ctx, ev, c)
		}
		return nil
	})
}

func (r *recorder) BackupComplete(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	return r.do(ev.Type, ev, func() error {
		if h, ok := r.inner.(writer.BackupCompleter); ok {
			return h.BackupComplete(ctx, ev, c)
		}
		return nil
	})
}

func (r *recorder) BackupShutdown(ctx context.Context, ev *writer.Event) error {
	return r.do(ev.Type, ev, func() error {
		if h, ok := r.inner.(writer.BackupShutdowner); ok {
			return h.BackupShutdown(ctx, ev)
		}
		return nil
	})
}

func (r *recorder) PreRestore(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	return r.do(ev.Type, ev, func() error {
		if h, ok := r.inner.(writer.PreRestorer); ok {
			return h.PreRestore(ctx, ev, c)
		}
		return nil
	})
}

func (r *recorder) PostRestore(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	return r.do(ev.Type, ev, func() error {
		if h, ok := r.inner.(writer.PostRestorer); ok {
			return h.PostRestore(ctx, ev, c)
		}
		return nil
	})
}

var (
	_ writer.PrepareBackuper    = (*recorder)(nil)
	_ writer.PrepareSnapshotter = (*recorder)(nil)
	_ writer.PostSnapshotter    = (*recorder)(nil)
	_ writer.BackupCompleter    = (*recorder)(nil)
	_ writer.BackupShutdowner   = (*recorder)(nil)
	_ writer.PreRestorer        = (*recorder)(nil)
	_ writer.PostRestorer       = (*recorder)(nil)
)
