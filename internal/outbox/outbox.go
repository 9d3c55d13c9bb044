package outbox

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Ticket follows one queued message. Its methods are safe to call from any
// goroutine.
type Ticket struct {
	state   atomic.Int32
	written chan struct{}
}

const (
	queued int32 = iota
	sending
	written
	abandoned
	dropped
)

// Written is closed once the message was handed to the transport.
func (t *Ticket) Written() <-chan struct{} { return t.written }

// IsWritten reports whether the message was handed to the transport.
func (t *Ticket) IsWritten() bool { return t.state.Load() == written }

// Abandon withdraws a message that was not yet taken for sending, so a
// caller that gave up (its operation was cancelled) does not have it
// delivered late. It reports whether the message will not be sent; false
// means it is being sent or was sent already.
func (t *Ticket) Abandon() bool {
	if t.state.CompareAndSwap(queued, abandoned) {
		return true
	}
	s := t.state.Load()
	return s == abandoned || s == dropped
}

type item[T any] struct {
	msg      T
	deadline time.Time
	what     string
	t        *Ticket
}

// Box is one peer's outbound queue.
type Box[T any] struct {
	send     func(T) error
	end      func(error)
	capacity int

	mu sync.Mutex
	// q is the queue; running says a sender goroutine is draining it.
	// The sender runs only while there is something to send: an idle
	// peer (a writer between sessions, which is what most of a
	// thousand writers are) costs no goroutine and no queue storage.
	q       []item[T]
	running bool

	once  sync.Once
	done  chan struct{}
	cause error
}

// New makes a queue of up to capacity messages. send writes one message to
// the peer and may block; end must make a blocked send return (by ending
// the peer's stream) and is called at most once.
func New[T any](capacity int, send func(T) error, end func(error)) *Box[T] {
	return &Box[T]{send: send, end: end, capacity: capacity, done: make(chan struct{})}
}

// Put queues msg, to be written to the peer before deadline. It never
// blocks. If the queue is full the peer has stopped reading: its stream is
// ended and the returned ticket is never written. what names the message
// in the cause given to end.
func (b *Box[T]) Put(msg T, deadline time.Time, what string) *Ticket {
	t := &Ticket{written: make(chan struct{})}
	b.mu.Lock()
	select {
	case <-b.done:
		b.mu.Unlock()
		t.state.Store(dropped)
		return t
	default:
	}
	if len(b.q) >= b.capacity {
		b.mu.Unlock()
		t.state.Store(dropped)
		b.End(fmt.Errorf("its outbound queue is full (%d messages it has not read)", b.capacity))
		return t
	}
	b.q = append(b.q, item[T]{msg: msg, deadline: deadline, what: what, t: t})
	if !b.running {
		b.running = true
		go b.run()
	}
	b.mu.Unlock()
	return t
}

// End ends the peer's stream with cause; messages still queued are
// dropped. Idempotent: only the first cause counts.
func (b *Box[T]) End(cause error) {
	b.once.Do(func() {
		b.cause = cause
		close(b.done)
		b.drain()
		b.end(cause)
	})
}

// Done is closed when the box was ended.
func (b *Box[T]) Done() <-chan struct{} { return b.done }

// Cause is why the box was ended (nil while it runs).
func (b *Box[T]) Cause() error {
	select {
	case <-b.done:
		return b.cause
	default:
		return nil
	}
}

// next takes the first message, or stops the sender when there is none or
// the box was ended.
func (b *Box[T]) next() (item[T], bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.done:
		b.running = false
		return item[T]{}, false
	default:
	}
	if len(b.q) == 0 {
		b.running = false
		return item[T]{}, false
	}
	it := b.q[0]
	b.q[0] = item[T]{}
	b.q = b.q[1:]
	if len(b.q) == 0 {
		b.q = nil
	}
	return it, true
}

func (b *Box[T]) run() {
	for {
		it, ok := b.next()
		if !ok {
			return
		}
		if !it.t.state.CompareAndSwap(queued, sending) {
			continue // abandoned by its caller
		}
		left := time.Until(it.deadline)
		if left <= 0 {
			it.t.state.Store(dropped)
			b.End(fmt.Errorf("it did not read %s before its deadline: earlier messages were still unread", it.what))
			continue
		}
		// The watchdog is what bounds a Send the peer does not drain:
		// ending the stream makes the blocked Send return.
		dog := time.AfterFunc(left, func() {
			b.End(fmt.Errorf("it did not read %s within %s", it.what, left.Round(time.Millisecond)))
		})
		err := b.send(it.msg)
		dog.Stop()
		if err != nil {
			it.t.state.Store(dropped)
			b.End(fmt.Errorf("sending %s: %w", it.what, err))
			continue
		}
		it.t.state.Store(written)
		close(it.t.written)
	}
}

// drain marks what is left in the queue as dropped, so tickets say the
// truth after End.
func (b *Box[T]) drain() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, it := range b.q {
		it.t.state.CompareAndSwap(queued, dropped)
	}
	b.q = nil
}
