package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// socketMode lets the socket's owner (lvssd's user, root) and group
// connect: connecting to a Unix socket needs write permission on it.
const socketMode = 0o660

// Listen opens the endpoint's listener: network "tcp" with a host:port,
// or "unix" with a socket path (config.Metrics.Address gives both). A
// Unix socket gets mode 0660 and, when group is set (a name or a numeric
// gid), that group, so that its members may scrape; the socket's
// directory is created if missing. A socket left by a dead lvssd is
// replaced; one that something answers on, or a path that is not a
// socket, is an error rather than something to remove.
func Listen(network, address, group string) (net.Listener, error) {
	return ListenAs("metrics", network, address, group, socketMode)
}

// ListenAs is Listen for another of lvssd's endpoints: errors name it as
// what, and a Unix socket gets mode (0600: its owner alone).
func ListenAs(what, network, address, group string, mode os.FileMode) (net.Listener, error) {
	if network != "unix" {
		l, err := net.Listen(network, address)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return l, nil
	}
	gid := -1
	if group != "" {
		id, err := lookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("%s: socket_group: %w", what, err)
		}
		gid = id
	}
	if err := os.MkdirAll(filepath.Dir(address), 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if fi, err := os.Lstat(address); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s: %s exists and is not a socket", what, address)
		}
		if c, err := net.DialTimeout("unix", address, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: something is listening on %s already", what, address)
		}
		_ = os.Remove(address)
	}
	l, err := net.Listen("unix", address)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// The socket is created with lvssd's umask (0022 under systemd: only
	// the owner may connect); the group is set before the group is given
	// the right to connect.
	if err := os.Chown(address, -1, gid); err != nil {
		l.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Chmod(address, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return l, nil
}

func lookupGroup(name string) (int, error) {
	if id, err := strconv.ParseUint(name, 10, 32); err == nil {
		return int(id), nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", name, err)
	}
	id, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q has gid %q: %w", name, g.Gid, err)
	}
	return id, nil
}

// HTTP limits. A scraper sends one small GET and reads a response of a
// few tens of kilobytes: a client slower than this is cut off instead of
// holding a connection, and nothing it does reaches the coordinator.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = scrapeTimeout + 20*time.Second
	idleTimeout       = time.Minute
	shutdownTimeout   = 5 * time.Second
)

// Serve serves /metrics on l until ctx ends, then stops: scrapes in
// progress get shutdownTimeout to finish, and a Unix socket is removed.
// It returns nil after ctx ended, or the error that ended serving
// otherwise.
func (m *Metrics) Serve(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "lvssd: metrics are at /metrics (docs/metrics.md)")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
