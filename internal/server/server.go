package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
	// prevver answers PreviousVersions (prevver.go).
	prevver PreviousVersions
	codec   *codec
	// denials bounds how many refusals reach the event log.
	denials denialLimiter
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

// writeBufferSize is each connection's gRPC write buffer.
const writeBufferSize = 8 << 10

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
		// Each connection takes a write buffer from a shared pool while it
		// writes. Events to writers are a few KB, but lvssd writes to a
		// thousand writers at once, and gRPC's default 32 KiB buffer made
		// most of lvssd's garbage in such a fan-out (BENCHMARKS.md); larger
		// messages go out in several writes.
		grpc.WriteBufferSize(writeBufferSize),
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

// authorize is the access decision of every RPC: which role each service
// needs (L50). A session's calls are judged again one by one
// (authorizeCall), a writer's class once its Hello names it
// (writerService.Subscribe).
func (s *Server) authorize(ctx context.Context, method string) error {
	p := peerOf(ctx)
	roles := s.access.Roles(p)
	switch {
	case strings.HasPrefix(method, "/lvss.v1.Requester/"), strings.HasPrefix(method, "/lvss.v1.Admin/"):
		// An admin may open a session for the calls that only read.
		if roles.Has(RoleRequester) || roles.Has(RoleAdmin) {
			return nil
		}
		need := "it needs the requester role (" + RoleRequester.keys() + ") or the read-only admin role (" + RoleAdmin.keys() + ")"
		return wire.ToGRPC(s.deny(ctx, p, rpcName(method), need))
	case strings.HasPrefix(method, "/lvss.v1.Writer/"):
		if roles.Has(RoleWriter) || s.access.bound(p) {
			return nil
		}
		return wire.ToGRPC(s.deny(ctx, p, rpcName(method), "it needs the writer role ("+RoleWriter.keys()+")"))
	}
	if roles.Has(RoleRequester) {
		return nil
	}
	return wire.ToGRPC(s.deny(ctx, p, rpcName(method), "it needs the requester role ("+RoleRequester.keys()+")"))
}

// rpcName is "Requester.Session" for "/lvss.v1.Requester/Session".
func rpcName(method string) string {
	return strings.Replace(strings.TrimPrefix(method, "/lvss.v1."), "/", ".", 1)
}

// deny logs a refusal (event log and slog: uid, gid, pid, the peer's
// executable, the method) and returns the E_ACCESSDENIED the peer gets,
// saying what it lacks and which keys grant it.
func (s *Server) deny(ctx context.Context, p PeerInfo, method, need string) error {
	exe := peerExe(p.PID)
	if s.denials.admit(p.UID, time.Now()) {
		s.c.Logf(ctx, coordinator.LevelWarn, vsserr.AccessDenied, "access denied", "method", method,
			"uid", fmt.Sprint(p.UID), "gid", fmt.Sprint(p.GID), "pid", fmt.Sprint(p.PID), "exe", exe, "reason", need)
	} else {
		s.log.Debug("access denied (not written to the event log: this uid was refused too often)", "method", method,
			"uid", p.UID, "pid", p.PID, "exe", exe)
	}
	return vsserr.New(vsserr.AccessDenied, "uid %d may not call %s: %s", p.UID, method, need)
}

// peerExe is the executable of the peer's process, as far as lvssd can
// see it; "" when the process is gone. lvssd runs in the host's PID
// namespace (architecture: no PrivateMounts), so SO_PEERCRED's pid is
// valid here, though the process may have exited or exec'd since.
func peerExe(pid int32) string {
	if pid <= 0 {
		return ""
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(int(pid)) + "/exe")
	if err != nil {
		return ""
	}
	return exe
}

// denialBurst is how many refusals of one uid per denialWindow reach the
// event log; the rest go to lvssd's debug log only. A local user retrying
// in a loop (or a denied writer reconnecting) must not fill the catalog.
const (
	denialBurst  = 20
	denialWindow = time.Minute
)

// denialLimiter counts refusals per uid in fixed windows.
type denialLimiter struct {
	mu   sync.Mutex
	seen map[uint32]*denialCount
}

type denialCount struct {
	since time.Time
	n     int
}

func (l *denialLimiter) admit(uid uint32, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[uint32]*denialCount{}
	}
	c := l.seen[uid]
	if c == nil || now.Sub(c.since) >= denialWindow {
		if len(l.seen) > 4096 {
			// Bounded: forget old windows rather than grow with every
			// uid that ever knocked.
			for k, v := range l.seen {
				if now.Sub(v.since) >= denialWindow {
					delete(l.seen, k)
				}
			}
		}
		c = &denialCount{since: now}
		l.seen[uid] = c
	}
	c.n++
	return c.n <= denialBurst
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
