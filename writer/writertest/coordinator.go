package writertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/wire"
)

// WaitTimeout bounds every wait of the harness that has no context of its
// own (WaitWriters).
const WaitTimeout = 10 * time.Second

// defaultEventTimeout is the timeout_ms Send puts on an event that has
// none and whose context has no deadline.
const defaultEventTimeout = 30 * time.Second

// ErrDropped is what Send returns when the writer's stream ended before it
// answered.
var ErrDropped = errors.New("writertest: the writer's stream ended before it answered")

// Coordinator is an in-process stand-in for lvssd's writer side: it accepts
// subscriptions on a Unix socket, welcomes each writer with a fresh instance
// ID, and lets a test send events and read the answers. Writers are
// numbered in the order they subscribed, from 0; a writer that reconnects
// is a new writer with the next number, as it is a new instance.
type Coordinator struct {
	v1.UnimplementedWriterServer

	t      testing.TB
	socket string
	srv    *grpc.Server
	nextID atomic.Uint64

	mu        sync.Mutex
	freezeMax time.Duration
	writers   []*WriterConn
	changed   chan struct{} // closed and replaced when writers changes
}

// WriterConn is one subscription as the coordinator sees it.
type WriterConn struct {
	Hello        *v1.Hello
	InstanceID   uuid.UUID
	FreezeWindow time.Duration // what Welcome said

	stream  v1.Writer_SubscribeServer
	sendMu  sync.Mutex
	mu      sync.Mutex
	waiting map[uint64]chan *v1.EventResult
	done    chan struct{} // closed when the stream ended
	drop    chan struct{} // closed by DropWriter
	dropped sync.Once
}

// Done is closed when the writer's stream has ended.
func (w *WriterConn) Done() <-chan struct{} { return w.done }

// NewCoordinator starts a coordinator on a socket in a fresh temporary
// directory; it stops when the test ends.
func NewCoordinator(t testing.TB) *Coordinator {
	t.Helper()
	// Not t.TempDir(): a Unix socket path is limited to 107 bytes, and
	// subtest names make those directories long.
	dir, err := os.MkdirTemp("", "lvss-wt")
	if err != nil {
		t.Fatalf("writertest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return NewCoordinatorAt(t, filepath.Join(dir, "lvssd.sock"))
}

// NewCoordinatorAt starts a coordinator on the given socket path, for tests
// where the socket must appear after the writer started, or lvssd must
// come back at the same place.
func NewCoordinatorAt(t testing.TB, socket string) *Coordinator {
	t.Helper()
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatalf("writertest: listen on %s: %v", socket, err)
	}
	c := &Coordinator{t: t, socket: socket, changed: make(chan struct{}),
		srv: grpc.NewServer(grpc.MaxRecvMsgSize(wire.MaxMessageSize), grpc.MaxSendMsgSize(wire.MaxMessageSize))}
	v1.RegisterWriterServer(c.srv, c)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = c.srv.Serve(l)
	}()
	t.Cleanup(func() {
		c.Close()
		<-served
	})
	return c
}

// Socket is the path writers connect to.
func (c *Coordinator) Socket() string { return c.socket }

// SetFreezeTimeout caps the Freeze→Thaw window Welcome grants to writers
// that subscribe from now on, as lvssd's configured maximum does. Zero
// grants what the writer asks for.
func (c *Coordinator) SetFreezeTimeout(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.freezeMax = d
}

// Close stops the coordinator at once, ending every stream, as when lvssd
// is killed. The socket file is removed.
func (c *Coordinator) Close() {
	c.srv.Stop()
}

// Subscribe implements the Writer service.
func (c *Coordinator) Subscribe(stream v1.Writer_SubscribeServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message must be Hello")
	}
	if _, err := uuid.Parse(hello.GetWriterId()); err != nil {
		return status.Errorf(codes.InvalidArgument, "bad writer_id %q", hello.GetWriterId())
	}
	window := time.Duration(hello.GetFreezeTimeoutMs()) * time.Millisecond
	if window <= 0 {
		window = 60 * time.Second
	}
	c.mu.Lock()
	if c.freezeMax > 0 && c.freezeMax < window {
		window = c.freezeMax
	}
	c.mu.Unlock()
	w := &WriterConn{
		Hello: hello, InstanceID: uuid.New(), FreezeWindow: window, stream: stream,
		waiting: map[uint64]chan *v1.EventResult{}, done: make(chan struct{}), drop: make(chan struct{}),
	}
	if err := stream.Send(&v1.CoordinatorMessage{Msg: &v1.CoordinatorMessage_Welcome{Welcome: &v1.Welcome{
		InstanceId: w.InstanceID.String(), FreezeTimeoutMs: uint32(window / time.Millisecond),
	}}}); err != nil {
		return err
	}
	c.mu.Lock()
	c.writers = append(c.writers, w)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()

	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		w.receive()
	}()
	select {
	case <-w.drop:
	case <-recvDone:
	case <-stream.Context().Done():
	}
	w.end()
	return nil
}

// receive routes the writer's answers to the Send calls waiting for them.
func (w *WriterConn) receive() {
	for {
		m, err := w.stream.Recv()
		if err != nil {
			return
		}
		r := m.GetResult()
		if r == nil {
			continue
		}
		w.mu.Lock()
		ch := w.waiting[r.GetId()]
		delete(w.waiting, r.GetId())
		w.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

func (w *WriterConn) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.done:
	default:
		close(w.done)
	}
}

// WaitWriters waits until n writers have subscribed since the coordinator
// started (reconnects count), failing the test after WaitTimeout. Call it
// from the test's goroutine.
func (c *Coordinator) WaitWriters(n int) {
	c.t.Helper()
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		have, changed := len(c.writers), c.changed
		c.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			c.t.Fatalf("writertest: %d writer(s) subscribed within %s, want %d", have, WaitTimeout, n)
		}
	}
}

// Writer returns the i-th subscription, or nil.
func (c *Coordinator) Writer(i int) *WriterConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.writers) {
		return nil
	}
	return c.writers[i]
}

// DropWriter ends the i-th writer's stream from the coordinator's side, as
// lvssd does when it shuts down. It returns once the stream has ended.
func (c *Coordinator) DropWriter(i int) {
	c.t.Helper()
	w := c.Writer(i)
	if w == nil {
		c.t.Fatalf("writertest: DropWriter(%d): no such writer", i)
		return
	}
	w.dropped.Do(func() { close(w.drop) })
	select {
	case <-w.done:
	case <-time.After(WaitTimeout):
		c.t.Fatalf("writertest: DropWriter(%d): the stream did not end within %s", i, WaitTimeout)
	}
}

// Send sends ev to the i-th writer and waits for its answer. An ev without
// an id gets the next free one; without timeout_ms it gets ctx's remaining
// time, or 30 s. ev itself is not modified. Send may be called from several
// goroutines at once (an Abort while a Freeze is pending).
func (c *Coordinator) Send(ctx context.Context, i int, ev *v1.Event) (*v1.EventResult, error) {
	w := c.Writer(i)
	if w == nil {
		return nil, fmt.Errorf("writertest: no writer %d", i)
	}
	ev = proto.Clone(ev).(*v1.Event)
	if ev.Id == 0 {
		ev.Id = c.nextID.Add(1)
	}
	if ev.TimeoutMs == 0 {
		timeout := defaultEventTimeout
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d)
		}
		ev.TimeoutMs = max(1, timeout.Milliseconds())
	}
	ch := make(chan *v1.EventResult, 1)
	w.mu.Lock()
	select {
	case <-w.done:
		w.mu.Unlock()
		return nil, ErrDropped
	default:
	}
	w.waiting[ev.Id] = ch
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.waiting, ev.Id)
		w.mu.Unlock()
	}()

	w.sendMu.Lock()
	err := w.stream.Send(&v1.CoordinatorMessage{Msg: &v1.CoordinatorMessage_Event{Event: ev}})
	w.sendMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("writertest: send %s: %w", ev.Type, err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-w.done:
		select {
		case r := <-ch:
			return r, nil
		default:
			return nil, ErrDropped
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("writertest: no answer to %s (id %d): %w", ev.Type, ev.Id, ctx.Err())
	}
}
