package writer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vsserr"
)

// DefaultSocket is where lvssd listens unless $LVSS_SOCKET says otherwise.
const DefaultSocket = "/run/lvss/lvssd.sock"

// ErrStreamEnded is returned by Run without Retry when lvssd ended the
// subscription in an orderly way (it shut down or dropped the writer).
var ErrStreamEnded = errors.New("writer: lvssd ended the subscription")

// Options tune Run. The zero value is usable.
type Options struct {
	// Socket is lvssd's Unix socket: default $LVSS_SOCKET, else
	// DefaultSocket.
	Socket string
	// Logger receives the SDK's own records (connections, events, what it
	// did on its own). Nil discards them.
	Logger *slog.Logger
	// Retry keeps Run reconnecting, with exponential backoff between
	// MinBackoff and MaxBackoff, while the socket is missing or lvssd
	// restarts. Without it Run returns when the stream ends.
	Retry bool
	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts: defaults 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// ReleaseTimeout bounds each Abort and BackupShutdown the SDK calls on
	// its own (window expired, connection lost, Run's context ended), where
	// no coordinator deadline applies. Default 10 s.
	ReleaseTimeout time.Duration
	// WelcomeTimeout bounds the wait for lvssd's answer to Hello. Default
	// 30 s.
	WelcomeTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Socket == "" {
		o.Socket = os.Getenv("LVSS_SOCKET")
	}
	if o.Socket == "" {
		o.Socket = DefaultSocket
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.ReleaseTimeout <= 0 {
		o.ReleaseTimeout = 10 * time.Second
	}
	if o.WelcomeTimeout <= 0 {
		o.WelcomeTimeout = 30 * time.Second
	}
	return o
}

// Run subscribes one writer to lvssd and serves its events until ctx ends,
// or, without Options.Retry, until the stream ends. It returns nil when ctx
// ended, having first released every session as the package documentation
// promises. A process hosting several writers calls Run once per writer,
// each in its own goroutine: one stream carries one writer (D6), and the
// writers of a process share one connection to lvssd (L62).
//
// lvssd assigns a new instance ID on every subscription, so a writer that
// reconnects is a new instance, as a restarted Windows writer is.
func Run(ctx context.Context, opts Options, id Identity, w Writer) error {
	if w == nil {
		return vsserr.New(vsserr.InvalidArg, "writer.Run: nil Writer")
	}
	id = id.withDefaults()
	if err := id.validate(); err != nil {
		return err
	}
	opts = opts.withDefaults()
	log := opts.Logger.With("writer", id.Name, "class", id.ClassID.String())
	backoff := opts.MinBackoff
	for attempt := 1; ; attempt++ {
		subscribed, err := serve(ctx, opts, id, w, log)
		if ctx.Err() != nil {
			return nil
		}
		if !opts.Retry || permanent(err) {
			return err
		}
		if subscribed {
			// The connection worked: start over from the short wait, since
			// a restarted lvssd is usually back quickly.
			backoff, attempt = opts.MinBackoff, 1
			log.Warn("connection to lvssd lost; reconnecting", "err", err)
		} else if attempt == 1 {
			log.Warn("lvssd unavailable; retrying", "socket", opts.Socket, "err", err, "hint", unavailableHint(opts.Socket))
		}
		log.Debug("lvssd unavailable", "socket", opts.Socket, "attempt", attempt, "retry_in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, opts.MaxBackoff)
	}
}

// unavailableHint says what an operator can do about a writer that cannot
// reach lvssd. The gRPC error has lost the dial's errno, so the socket is
// looked at again: a missing one, one this process may not open, and one
// nobody answers at call for different fixes. The writer keeps retrying
// in every case, which the hint says so nobody restarts it for nothing.
func unavailableHint(socket string) string {
	const then = "; the writer subscribes as soon as lvssd answers"
	if _, err := os.Stat(socket); err != nil {
		return fmt.Sprintf("no socket at %s: start lvssd, or set $LVSS_SOCKET (lvss-writer --socket) to where it listens", socket) + then
	}
	if unix.Access(socket, unix.W_OK) != nil {
		return "this process may not connect to lvssd: run it as root, or give its user the writer role (access.writer_users or access.writer_groups in lvssd.toml, docs/operations.md \"Who may do what\")" + then
	}
	return "lvssd does not answer at " + socket + ": see lvssd's log" + then
}

// permanent errors will not go away by reconnecting: lvssd rejected the
// identity itself.
func permanent(err error) bool {
	return errors.Is(err, vsserr.InvalidArg)
}

// target turns a socket path into a gRPC target; "unix://" needs an
// absolute path, "unix:" takes a relative one.
func target(socket string) string {
	if filepath.IsAbs(socket) {
		return "unix://" + socket
	}
	return "unix:" + socket
}

// serve runs one subscription: connect, Hello, Welcome, events, release.
// subscribed says whether Welcome arrived, which resets the backoff.
func serve(ctx context.Context, opts Options, id Identity, w Writer, log *slog.Logger) (subscribed bool, err error) {
	// The process's connection to lvssd, shared with its other writers; an
	// attempt that fails retires it, so the next attempt starts a fresh
	// one (shared.go).
	conn, err := acquire(opts.Socket)
	if err != nil {
		return false, err
	}
	defer func() { conn.release(err != nil && ctx.Err() == nil) }()
	cc := conn.cc

	streamCtx, cancelStream := context.WithCancelCause(ctx)
	defer cancelStream(nil)
	stream, err := v1.NewWriterClient(cc).Subscribe(streamCtx)
	if err != nil {
		return false, wire.FromGRPC(err)
	}
	if err := stream.Send(&v1.WriterMessage{Msg: &v1.WriterMessage_Hello{Hello: id.hello()}}); err != nil {
		return false, streamErr(stream, err)
	}
	noWelcome := time.AfterFunc(opts.WelcomeTimeout, func() {
		cancelStream(fmt.Errorf("lvssd sent no Welcome within %s", opts.WelcomeTimeout))
	})
	first, err := stream.Recv()
	noWelcome.Stop()
	if err != nil {
		if cause := context.Cause(streamCtx); cause != nil && ctx.Err() == nil {
			return false, cause
		}
		return false, recvErr(err)
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return false, vsserr.New(vsserr.Unexpected, "lvssd answered Hello with %T, not Welcome", first.GetMsg())
	}
	instance, err := wire.ParseGUID(welcome.GetInstanceId())
	if err != nil || instance == uuid.Nil {
		return false, vsserr.New(vsserr.Unexpected, "lvssd assigned no usable instance ID (%q)", welcome.GetInstanceId())
	}
	window := id.FreezeTimeout
	if ms := welcome.GetFreezeTimeoutMs(); ms > 0 {
		window = min(window, time.Duration(ms)*time.Millisecond)
	}
	log = log.With("instance", instance.String())
	log.Info("subscribed to lvssd", "socket", opts.Socket, "freeze_window", window)

	c := newConn(ctx, opts, id, w, log, stream, instance, window)
	go c.read()
	err = c.dispatch(streamCtx)
	cancelStream(errStreamLost)
	_ = stream.CloseSend()
	return true, err
}

// recvErr maps the error that ended a stream.
func recvErr(err error) error {
	if errors.Is(err, io.EOF) {
		return ErrStreamEnded
	}
	return wire.FromGRPC(err)
}

// streamErr finds the real reason after a failed Send: grpc reports io.EOF
// from Send and keeps the status for Recv.
func streamErr(stream v1.Writer_SubscribeClient, err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.Recv(); rerr != nil {
			return recvErr(rerr)
		}
	}
	return wire.FromGRPC(err)
}
