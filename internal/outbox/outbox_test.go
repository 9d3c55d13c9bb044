package outbox

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// peer is a fake stream: send blocks while the peer is "stopped", and end
// unblocks it, as ending a gRPC stream does.
type peer struct {
	mu      sync.Mutex
	got     []int
	stopped chan struct{} // closed: the peer reads again
	ended   chan struct{}
	cause   error
	once    sync.Once
}

func newPeer(stopped bool) *peer {
	p := &peer{stopped: make(chan struct{}), ended: make(chan struct{})}
	if !stopped {
		close(p.stopped)
	}
	return p
}

func (p *peer) send(m int) error {
	select {
	case <-p.stopped:
	case <-p.ended:
		return errors.New("stream ended")
	}
	p.mu.Lock()
	p.got = append(p.got, m)
	p.mu.Unlock()
	return nil
}

func (p *peer) end(err error) { p.once.Do(func() { p.cause = err; close(p.ended) }) }

func TestWritesInOrder(t *testing.T) {
	p := newPeer(false)
	b := New(8, p.send, p.end)
	var last *Ticket
	for i := range 5 {
		last = b.Put(i, time.Now().Add(time.Minute), "message")
	}
	<-last.Written()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got) != 5 || p.got[0] != 0 || p.got[4] != 4 {
		t.Fatalf("peer got %v, want 0..4 in order", p.got)
	}
	if b.Cause() != nil {
		t.Fatalf("box ended: %v", b.Cause())
	}
}

// A peer that stops reading is ended at the deadline of the message
// stuck in Send, and Put never blocks meanwhile.
func TestStoppedPeerIsEndedAtDeadline(t *testing.T) {
	p := newPeer(true)
	b := New(4, p.send, p.end)
	tk := b.Put(1, time.Now().Add(50*time.Millisecond), "Freeze")
	select {
	case <-p.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("a peer that does not read was not ended")
	}
	if !strings.Contains(p.cause.Error(), "did not read Freeze") {
		t.Fatalf("cause = %v", p.cause)
	}
	<-b.Done()
	if tk.IsWritten() {
		t.Fatal("ticket says written")
	}
	// After the end, Put returns at once with a dropped ticket.
	if b.Put(2, time.Now().Add(time.Minute), "Thaw").IsWritten() {
		t.Fatal("put after end written")
	}
}

func TestFullQueueEnds(t *testing.T) {
	p := newPeer(true)
	b := New(2, p.send, p.end)
	far := time.Now().Add(time.Hour)
	// One message is taken by the sender (blocked in send), two fill the
	// queue; the next cannot be queued. The sender may not have taken the
	// first yet, so put until the box ends, with a bound.
	for i := 0; i < 10; i++ {
		b.Put(i, far, "event")
		select {
		case <-b.Done():
			if !strings.Contains(b.Cause().Error(), "queue is full") {
				t.Fatalf("cause = %v", b.Cause())
			}
			return
		default:
		}
	}
	t.Fatal("a full queue did not end the box")
}

func TestAbandonedIsNotSent(t *testing.T) {
	p := newPeer(true)
	b := New(4, p.send, p.end)
	far := time.Now().Add(time.Hour)
	first := b.Put(1, far, "first") // the sender blocks on it
	second := b.Put(2, far, "second")
	if !second.Abandon() {
		t.Fatal("a queued message could not be abandoned")
	}
	close(p.stopped)
	<-first.Written()
	third := b.Put(3, far, "third")
	<-third.Written()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got) != 2 || p.got[0] != 1 || p.got[1] != 3 {
		t.Fatalf("peer got %v, want [1 3]", p.got)
	}
	if first.Abandon() {
		t.Fatal("a written message was abandoned")
	}
}

func TestExpiredInQueueEnds(t *testing.T) {
	p := newPeer(true)
	b := New(4, p.send, p.end)
	b.Put(1, time.Now().Add(time.Hour), "slow")
	b.Put(2, time.Now().Add(-time.Second), "late") // already past its deadline
	// The first send blocks for an hour unless something ends the box;
	// freeing the peer lets the sender reach the expired one.
	close(p.stopped)
	select {
	case <-b.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a message past its deadline in the queue did not end the box")
	}
	if !strings.Contains(b.Cause().Error(), "did not read late before its deadline") {
		t.Fatalf("cause = %v", b.Cause())
	}
}

func TestEndIsIdempotent(t *testing.T) {
	p := newPeer(false)
	b := New(1, p.send, p.end)
	b.End(errors.New("first"))
	b.End(errors.New("second"))
	if b.Cause().Error() != "first" || p.cause.Error() != "first" {
		t.Fatalf("cause = %v / %v", b.Cause(), p.cause)
	}
}

// An idle box holds no goroutine: the sender runs only while messages
// wait, so a thousand idle writers cost lvssd no sender goroutines. A box
// used again after going idle still delivers, in order.
func TestIdleBoxHoldsNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	p := newPeer(false)
	boxes := make([]*Box[int], 100)
	for i := range boxes {
		boxes[i] = New(8, p.send, p.end)
		<-boxes[i].Put(i, time.Now().Add(time.Minute), "message").Written()
	}
	for deadline := time.Now().Add(time.Minute); runtime.NumGoroutine() > before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines a minute after 100 boxes went idle, %d before", runtime.NumGoroutine(), before)
		}
	}
	<-boxes[0].Put(100, time.Now().Add(time.Minute), "message").Written()
	<-boxes[0].Put(101, time.Now().Add(time.Minute), "message").Written()
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.got); n != 102 || p.got[100] != 100 || p.got[101] != 101 {
		t.Fatalf("peer got %d messages ending %v, want 102 ending 100, 101", n, p.got[max(0, n-2):])
	}
}
