package writer

import (
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vsserr"
)

// Writers of one process share one connection to lvssd per socket: each
// writer is a stream of its own (D6), but a connection costs lvssd a
// reader, a writer and a keepalive goroutine and their buffers, which for
// a process hosting hundreds of writers was most of lvssd's memory
// (BENCHMARKS.md).
//
// A connection that failed a writer is retired: writers still on it keep
// it until their streams end, but every new attempt starts a fresh
// connection, so that gRPC's own reconnect backoff (up to two minutes)
// never overrides Run's, as a fresh connection per attempt ensured before.
var shared = struct {
	sync.Mutex
	bySocket map[string]*sharedConn
}{bySocket: map[string]*sharedConn{}}

type sharedConn struct {
	socket  string
	cc      *grpc.ClientConn
	refs    int
	retired bool
}

// acquire returns the process's current connection to socket, making one
// when there is none (or only a retired one).
func acquire(socket string) (*sharedConn, error) {
	shared.Lock()
	defer shared.Unlock()
	if c := shared.bySocket[socket]; c != nil && !c.retired {
		c.refs++
		return c, nil
	}
	cc, err := grpc.NewClient(target(socket),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(wire.MaxMessageSize), grpc.MaxCallSendMsgSize(wire.MaxMessageSize)))
	if err != nil {
		return nil, vsserr.Wrap(vsserr.InvalidArg, err, "socket %q", socket)
	}
	c := &sharedConn{socket: socket, cc: cc, refs: 1}
	shared.bySocket[socket] = c
	return c, nil
}

// release gives the connection back; failed retires it. The last writer
// to leave closes it.
func (c *sharedConn) release(failed bool) {
	shared.Lock()
	if failed && !c.retired {
		c.retired = true
		if shared.bySocket[c.socket] == c {
			delete(shared.bySocket, c.socket)
		}
	}
	c.refs--
	last := c.refs == 0
	if last && shared.bySocket[c.socket] == c {
		delete(shared.bySocket, c.socket)
	}
	shared.Unlock()
	if last {
		_ = c.cc.Close()
	}
}
