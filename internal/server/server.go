package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vsserr"
)

// Server is lvssd's gRPC front.
type Server struct {
	c      *coordinator.Coordinator
	access *Access
	log    *slog.Logger
	grpc   *grpc.Server
	daemon Daemon
	codec  *codec
}

// Daemon is what lvss status and lvss doctor say about lvssd itself,
// which only its main knows.
type Daemon struct {
	Started    time.Time // when lvssd started
	ConfigFile string    // --config; "" when the defaults apply
	Socket     string
	StateDir   string
	RunDir     string // where the freeze guards keep their records; "" when there is no guard
}

// Option changes how New builds the server.
type Option func(*Server)

// WithDaemon tells the server about the daemon it serves (lvss status,
// lvss doctor). Without it, those report no directories, no config file
// and the server's own start as lvssd's.
func WithDaemon(d Daemon) Option { return func(s *Server) { s.daemon = d } }

// New builds the gRPC server with access control on every call.
func New(c *coordinator.Coordinator, access *Access, log *slog.Logger, opts ...Option) *Server {
	s := &Server{c: c, access: access, log: log, daemon: Daemon{Started: time.Now()}, codec: newCodec()}
	for _, o := range opts {
		o(s)
	}
	s.grpc = grpc.NewServer(
		grpc.Creds(peerCreds{}),
		grpc.ForceServerCodecV2(s.codec),
		grpc.MaxRecvMsgSize(MaxRequestSize),
		grpc.MaxSendMsgSize(wire.MaxMessageSize),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := s.authorize(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			if m, ok := req.(proto.Message); ok {
				if err := s.codec.takeBad(m); err != nil {
					return nil, wire.ToGRPC(err)
				}
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := s.authorize(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	)
	v1.RegisterRequesterServer(s.grpc, &requester{s: s})
	v1.RegisterWriterServer(s.grpc, &writerService{s: s})
	v1.RegisterAdminServer(s.grpc, &admin{s: s})
	return s
}

func peerOf(ctx context.Context) PeerInfo {
	if p, ok := peer.FromContext(ctx); ok {
		if pi, ok := p.AuthInfo.(PeerInfo); ok {
			return pi
		}
	}
	return PeerInfo{UID: ^uint32(0), GID: ^uint32(0)}
}

func toPeer(p PeerInfo) coordinator.Peer { return coordinator.Peer{UID: p.UID, GID: p.GID, PID: p.PID} }

// authorize is the one access decision point.
func (s *Server) authorize(ctx context.Context, method string) error {
	p := peerOf(ctx)
	if s.access.Allowed(p) {
		return nil
	}
	s.c.Logf(ctx, coordinator.LevelWarn, vsserr.AccessDenied, "access denied", "method", method,
		"uid", fmt.Sprint(p.UID), "gid", fmt.Sprint(p.GID), "pid", fmt.Sprint(p.PID))
	return wire.ToGRPC(vsserr.New(vsserr.AccessDenied, "uid %d may not use lvssd (allowed: %s)", p.UID, s.access))
}

// Listen creates the socket (replacing a stale one), world-reachable.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		// A socket nobody answers on is a leftover of a dead lvssd.
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("another lvssd is listening on %s", path)
		}
		_ = os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Serve blocks serving l.
func (s *Server) Serve(l net.Listener) error { return s.grpc.Serve(l) }

// Stop ends every stream (sessions release, writers unsubscribe) and stops.
func (s *Server) Stop() { s.grpc.Stop() }
