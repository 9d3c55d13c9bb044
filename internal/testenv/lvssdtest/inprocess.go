package lvssdtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/prevver"
	"github.com/lvss/lvss/internal/server"
	"github.com/lvss/lvss/internal/smbshare"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/fake"
	"github.com/lvss/lvss/vsserr"
)

// This file is the one place the tests outside internal/coordinator and
// internal/server wire those packages together (as cmd/lvssd does): when
// their API changes, this is what follows it.

// InProcessOptions say how StartInProcess builds its daemon. The zero
// value registers one fake provider.
type InProcessOptions struct {
	// Providers are registered instead of the default fake provider.
	Providers []provider.Provider
	// SambaConf is the smb.conf of the Samba remote exposure publishes
	// with, as lvssd's [samba] config names it with remote_exposure =
	// true ("": remote exposure off). With
	// it, the daemon has a run directory (Dir/run), where snapshots
	// without a directory are exposed to be shared.
	SambaConf string
	// PreviousVersions are [[previous_versions]] paths: checked as
	// lvssd checks them (StartInProcess fails the test otherwise), their
	// snapdirs kept under RunDir as lvssd keeps them. A relative path is
	// a directory under Root, made if missing (the default fake
	// provider's volumes are there).
	PreviousVersions []string
	// SambaConfig is [samba] config.
	SambaConfig string
}

// InProcess is the real coordinator, catalog and gRPC server of lvssd
// running inside the test process, serving a Unix socket like lvssd. It
// answers the same calls with the same code as the binary; only the
// providers differ (the fake provider by default, which snapshots
// nothing), and there is no freeze guard and no config file.
type InProcess struct {
	// Dir is its temporary directory (catalog, socket, log), removed at
	// cleanup.
	Dir    string
	Socket string
	// Root is the directory the default fake provider supports: the
	// volumes of the test's snapshot sets are directories under it
	// (Volume makes them).
	Root string
	// Fake is the default fake provider, for failure injection (FailAt,
	// HangAt) and to see what the coordinator asked of it. Nil when
	// Options.Providers replaced it.
	Fake *fake.Provider
	// Log is the file the coordinator and server log to; it is shown when
	// the test fails.
	Log string

	// RunDir holds the previous-versions snapdirs.
	RunDir string

	srv    *server.Server
	coord  *coordinator.Coordinator
	keeper *prevver.Keeper
	served chan struct{}
	stop   sync.Once
}

// StartInProcess starts a daemon in the test process and returns once it
// listens. Cleanup stops it as lvssd stops (every stream ends, sessions
// are released, writers unsubscribe), closes its catalog and shows its log
// if the test failed.
func StartInProcess(t testing.TB, opt InProcessOptions) *InProcess {
	t.Helper()
	dir := shortTempDir(t, "lvssd-")
	// Reachable by everyone, as /srv is: the fake volumes under it may be
	// exposed anywhere (lvssd refuses to expose a volume others cannot
	// reach where they can, L53), and other uids may reach the socket.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &InProcess{Dir: dir, Socket: filepath.Join(dir, "lvssd.sock"), Root: filepath.Join(dir, "vol"),
		Log: filepath.Join(dir, "lvssd.log"), RunDir: filepath.Join(dir, "run"), served: make(chan struct{})}
	for _, d := range []string{s.Root, filepath.Join(dir, "state"), s.RunDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	provs := opt.Providers
	if provs == nil {
		s.Fake = fake.New(s.Root)
		provs = []provider.Provider{s.Fake}
	}
	logf, err := os.Create(s.Log)
	if err != nil {
		t.Fatal(err)
	}
	// A file, not t.Log: the server's goroutines may still log for a
	// moment after the test ended, which t.Log does not allow.
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cat, err := catalog.Open(filepath.Join(dir, "state", "catalog.db"))
	if err != nil {
		logf.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		cat.Close()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(s.Log)
			t.Logf("--- in-process lvssd log (%s):\n%s", s.Log, b)
		}
	})
	var shares []prevver.Share
	for i, p := range opt.PreviousVersions {
		if !filepath.IsAbs(p) {
			p = filepath.Join(s.Root, p)
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		path, err := prevver.Check(context.Background(), fmt.Sprintf("previous_versions[%d].path", i), p, provs)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, prevver.Share{Path: path, Dir: prevver.Snapdir(s.RunDir, path)})
	}
	s.keeper = prevver.New(prevver.Options{Shares: shares, Root: filepath.Join(s.RunDir, prevver.DirName), Catalog: cat, Logger: log})
	var smb coordinator.Shares
	runDir := ""
	if opt.SambaConf != "" {
		runDir = s.RunDir
		smb = smbshare.New(smbshare.Options{Conf: opt.SambaConf, Logger: log})
	}
	s.coord, err = coordinator.New(context.Background(), coordinator.Options{
		Catalog:          cat,
		Providers:        provider.NewRegistry(provs...),
		Logger:           log,
		Shares:           smb,
		RunDir:           runDir,
		SnapshotsChanged: s.keeper.Trigger,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.keeper.Start(func(level string, code vsserr.HRESULT, msg string, kv ...string) {
		s.coord.Logf(context.Background(), coordinator.Level(level), code, msg, kv...)
	})
	// Root always may; the test's own user too, so that the tests run for
	// a developer who is not root.
	access := server.NewAccess(server.Rules{Users: []string{strconv.Itoa(os.Getuid())}}, log)
	l, err := server.Listen(s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = server.New(s.coord, access, log, server.WithPreviousVersions(server.PreviousVersions{Keeper: s.keeper, SambaConfig: opt.SambaConfig}))
	var serveErr error
	go func() {
		defer close(s.served)
		serveErr = s.srv.Serve(l)
	}()
	waitAnswers(t, s.Socket, func() string {
		select {
		case <-s.served:
			return fmt.Sprintf("Serve returned %v", serveErr)
		default:
			return ""
		}
	})
	return s
}

// Stop stops the daemon as lvssd does on SIGTERM: every stream ends
// (requesters see their connection lost, writers their subscription
// end), then every session is released. Tests call it to break the
// connection under a client; cleanup calls it too. It is idempotent.
func (s *InProcess) Stop() {
	s.stop.Do(func() {
		if s.srv != nil {
			s.srv.Stop()
			<-s.served
		}
		if s.coord != nil {
			s.coord.Close(context.Background())
		}
		if s.keeper != nil {
			s.keeper.Stop()
		}
	})
}

// Volume makes a directory under Root, which the default fake provider
// can snapshot, and returns its path.
func (s *InProcess) Volume(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(s.Root, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// WaitWriters waits until the daemon lists n writers with their metadata.
func (s *InProcess) WaitWriters(t testing.TB, n int) {
	t.Helper()
	WaitWriters(t, s.Socket, n)
}

// StartLogWriter starts an examples/logwriter process subscribed to the
// daemon, its files in the daemon's directory.
func (s *InProcess) StartLogWriter(t testing.TB, name, level string, extra ...string) *LogWriter {
	t.Helper()
	return StartLogWriter(t, s.Socket, s.Dir, name, level, extra...)
}
