package client

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vsserr"
)

// DefaultSocket is where lvssd listens unless told otherwise.
const DefaultSocket = "/run/lvss/lvssd.sock"

// SocketEnv names the environment variable that overrides DefaultSocket.
const SocketEnv = "LVSS_SOCKET"

// probeTimeout bounds the reachability check of Dial when the caller's
// context has no deadline: a daemon that does not accept a local connection
// within it is not going to serve a backup either.
const probeTimeout = 5 * time.Second

// SocketPath resolves the socket to use: the argument, else $LVSS_SOCKET,
// else DefaultSocket.
func SocketPath(socket string) string {
	if socket != "" {
		return socket
	}
	if s := os.Getenv(SocketEnv); s != "" {
		return s
	}
	return DefaultSocket
}

// Conn is a connection to lvssd. It is safe for concurrent use; sessions
// opened on it end when it is closed.
type Conn struct {
	cc    *grpc.ClientConn
	req   v1.RequesterClient
	admin v1.AdminClient
	path  string

	closeOnce sync.Once
}

// Dial connects to lvssd at socket ("" = $LVSS_SOCKET, else
// /run/lvss/lvssd.sock). The transport is plain gRPC over the Unix socket:
// the daemon decides who may do what from the peer credentials of the
// socket, not from anything the client presents.
//
// gRPC connects lazily, which would turn a missing daemon into a failure of
// the first call, far from its cause. Dial therefore checks the socket and
// makes one plain connection first, and fails at once with
// VSS_E_UNEXPECTED naming the socket and the reason. Such a failure also
// matches ErrUnreachable.
func Dial(ctx context.Context, socket string) (*Conn, error) {
	path := SocketPath(socket)
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, unreachable(vsserr.Wrap(vsserr.Unexpected, err, "lvssd socket %s", path))
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, unreachable(vsserr.Wrap(vsserr.Unexpected, err,
			"lvssd socket %s: not there (is lvssd running? use --socket or $%s)", abs, SocketEnv))
	}
	pctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, probeTimeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(pctx, "unix", abs)
	if err != nil {
		return nil, unreachable(vsserr.Wrap(vsserr.Unexpected, err, "cannot connect to lvssd at %s", abs))
	}
	nc.Close()

	cc, err := grpc.NewClient("unix://"+abs,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(wire.MaxMessageSize),
			grpc.MaxCallSendMsgSize(wire.MaxMessageSize)),
	)
	if err != nil {
		return nil, vsserr.Wrap(vsserr.Unexpected, err, "lvssd client for %s", abs)
	}
	return &Conn{cc: cc, req: v1.NewRequesterClient(cc), admin: v1.NewAdminClient(cc), path: abs}, nil
}

// ErrUnreachable matches (errors.Is) the errors of Dial, and so of Run,
// that mean lvssd could not be reached at all: no socket, or nothing
// listening on it. Tools tell "the service is down" from "the call failed"
// by it (lvss exits 69, EX_UNAVAILABLE); the error's text and HRESULT are
// unchanged by the mark.
var ErrUnreachable = errors.New("lvssd unreachable")

type unreachableError struct{ err error }

func unreachable(err error) error { return &unreachableError{err} }

func (e *unreachableError) Error() string        { return e.err.Error() }
func (e *unreachableError) Unwrap() error        { return e.err }
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

// Socket is the absolute path of the socket the connection uses.
func (c *Conn) Socket() string { return c.path }

// Close ends the connection. Sessions still open on it are ended too, which
// the daemon treats as their release (D11). Calling Close twice is
// harmless.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if cerr := c.cc.Close(); cerr != nil {
			err = vsserr.Wrap(vsserr.Unexpected, cerr, "close connection to lvssd")
		}
	})
	return err
}
