package lvssdtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vsserr"
)

// DaemonOptions say how StartDaemon runs lvssd. The zero value runs it
// with its defaults in fresh temporary directories.
type DaemonOptions struct {
	// Config is the text of lvssd's TOML config file (docs/configuration.md);
	// empty: lvssd's defaults. lvssd always gets --config with a file of
	// the test's, so that /etc/lvss/lvssd.toml on the machine never
	// reaches a test.
	Config string
	// StateDir is --state-dir (catalog, event log). Default: Dir/state.
	StateDir string
	// RunDir is --run-dir. Default: Dir/run.
	RunDir string
	// Args are more flags for lvssd (e.g. --log-level debug).
	Args []string
	// Failpoints, when set, runs lvssd built with the lvss_failpoints tag
	// and this as $LVSSD_FAILPOINTS (internal/failpoint); its pause
	// files are in Daemon.FailpointDir.
	Failpoints string
	// Reachable makes the daemon's directory 0755, so that processes of
	// other uids reach its socket (the access tests). It stays writable
	// by root alone, as lvssd requires of the directories it uses (L51).
	Reachable bool
	// WithFailpoints runs lvssd built with the lvss_failpoints tag even
	// when Failpoints is empty: the test sets its rules later, while lvssd
	// runs (Daemon.SetFailpoints).
	WithFailpoints bool
	// Socket is --socket. Default: Dir/lvssd.sock. A test that restarts
	// lvssd over the same directories gives the same socket each time, so
	// that the writers it started reconnect to the new lvssd.
	Socket string
	// Netns is the path of a network namespace (/run/netns/NAME) to run
	// lvssd in, through nsenter --net: its network is the namespace's
	// (internal/testenv/cluster's hosts), everything else the test's. Its
	// mount namespace is the test's, so it sees the loop filesystems the
	// test mounted, and the test reaches its Unix socket by path. Empty:
	// the test's own namespace.
	Netns string
}

// Daemon is a running lvssd binary.
type Daemon struct {
	// Dir is the daemon's temporary directory, removed at cleanup. Tests
	// may put their own files (writers' data, logs) there too.
	Dir      string
	Socket   string
	StateDir string
	RunDir   string
	// Proc is the lvssd process; its output (lvssd's log) is shown when the
	// test fails.
	Proc *Proc
	// FailpointDir is $LVSSD_FAILPOINT_DIR (DaemonOptions.Failpoints).
	FailpointDir string
	fpGen        int
}

// readyTimeout bounds the wait for a started lvssd to answer.
const readyTimeout = 15 * time.Second

// StartDaemon builds lvssd if needed, starts it in a new temporary
// directory with a socket there, and returns once it answers an admin
// call. Cleanup stops it (SIGTERM, then SIGKILL after StopTimeout).
func StartDaemon(t testing.TB, opt DaemonOptions) *Daemon {
	t.Helper()
	name := "lvssd"
	if opt.Failpoints != "" || opt.WithFailpoints {
		name = "lvssd-failpoints"
	}
	bin := Bin(t, name)
	dir := shortTempDir(t, "lvssd-")
	if opt.Reachable {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := &Daemon{Dir: dir, Socket: filepath.Join(dir, "lvssd.sock"), StateDir: opt.StateDir, RunDir: opt.RunDir}
	if d.StateDir == "" {
		d.StateDir = filepath.Join(dir, "state")
	}
	if opt.Socket != "" {
		d.Socket = opt.Socket
	}
	if d.RunDir == "" {
		d.RunDir = filepath.Join(dir, "run")
	}
	args := []string{"--socket", d.Socket, "--state-dir", d.StateDir, "--run-dir", d.RunDir}
	cfg := filepath.Join(dir, "lvssd.toml")
	if err := os.WriteFile(cfg, []byte(opt.Config), 0o644); err != nil {
		t.Fatal(err)
	}
	args = append(args, "--config", cfg)
	args = append(args, opt.Args...)
	cmd := exec.Command(bin, args...)
	if opt.Netns != "" {
		// nsenter execs lvssd: the process the harness signals and waits
		// for is lvssd itself.
		cmd = exec.Command("nsenter", append([]string{"--net=" + opt.Netns, "--", bin}, args...)...)
	}
	if opt.Failpoints != "" || opt.WithFailpoints {
		d.FailpointDir = filepath.Join(dir, "failpoints")
		if err := os.Mkdir(d.FailpointDir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), "LVSSD_FAILPOINTS="+opt.Failpoints, "LVSSD_FAILPOINT_DIR="+d.FailpointDir)
	}
	d.Proc = Start(t, dir, "lvssd", cmd)
	waitAnswers(t, d.Socket, func() string {
		if !d.Proc.Exited() {
			return ""
		}
		return fmt.Sprintf("lvssd exited: %v\n%s", d.Proc.Wait(), d.Proc.Output())
	})
	return d
}

// waitAnswers waits until the daemon at socket answers an admin call, or
// fails t if the wait times out or gone says (with a non-empty reason)
// that the daemon ended before it answered.
func waitAnswers(t testing.TB, socket string, gone func() string) {
	t.Helper()
	Eventually(t, readyTimeout, "lvssd to answer on "+socket, func() bool {
		if why := gone(); why != "" {
			t.Fatalf("lvssd ended before it answered on %s: %s", socket, why)
		}
		return answers(socket)
	})
}

// answers reports whether a daemon answers ListProviders at socket. A
// refusal (E_ACCESSDENIED, for a test that is not root) is an answer too:
// the daemon is up, and what it refuses is the test's to report.
func answers(socket string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return false
	}
	defer conn.Close()
	_, err = conn.ListProviders(ctx)
	return err == nil || vsserr.Code(err) == vsserr.AccessDenied
}

// Lvss runs the built lvss binary against the daemon (see Lvss).
func (d *Daemon) Lvss(t testing.TB, stdin string, args ...string) Result {
	t.Helper()
	return Lvss(t, d.Socket, stdin, args...)
}

// WaitWriters waits until the daemon lists n writers with their metadata.
func (d *Daemon) WaitWriters(t testing.TB, n int) {
	t.Helper()
	WaitWriters(t, d.Socket, n)
}

// StartLogWriter starts an examples/logwriter process subscribed to the
// daemon, its data directory and event log in the daemon's directory.
func (d *Daemon) StartLogWriter(t testing.TB, name, level string, extra ...string) *LogWriter {
	t.Helper()
	return StartLogWriter(t, d.Socket, d.Dir, name, level, extra...)
}

// AwaitFailpoint waits until lvssd stands at the paused failpoint name
// (DaemonOptions.Failpoints with the pause action), or fails t if lvssd
// exits first.
func (d *Daemon) AwaitFailpoint(t testing.TB, name string, timeout time.Duration) {
	t.Helper()
	file := filepath.Join(d.FailpointDir, strings.ReplaceAll(name, "/", "_")+".reached")
	Eventually(t, timeout, "lvssd to reach failpoint "+name, func() bool {
		if d.Proc.Exited() {
			t.Fatalf("lvssd exited before failpoint %s: %v\n%s", name, d.Proc.Wait(), d.Proc.Output())
		}
		_, err := os.Stat(file)
		return err == nil
	})
}

// ReleaseFailpoint lets lvssd go on from the paused failpoint name.
func (d *Daemon) ReleaseFailpoint(t testing.TB, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(d.FailpointDir, strings.ReplaceAll(name, "/", "_")+".go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// SetFailpoints replaces the rules of the running lvssd's failpoints with
// spec (LVSSD_FAILPOINTS's format; "" for none), from the next failpoint
// it reaches on (internal/failpoint). The pause files of earlier rules are
// removed first, so that an old go-ahead does not release a new pause.
func (d *Daemon) SetFailpoints(t testing.TB, spec string) {
	t.Helper()
	if d.FailpointDir == "" {
		t.Fatal("SetFailpoints: lvssd was not started with failpoints (DaemonOptions.WithFailpoints)")
	}
	old, _ := filepath.Glob(filepath.Join(d.FailpointDir, "*.reached"))
	gos, _ := filepath.Glob(filepath.Join(d.FailpointDir, "*.go"))
	for _, f := range append(old, gos...) {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	// Written whole and renamed, so lvssd never reads half of it.
	tmp := filepath.Join(d.FailpointDir, ".failpoints.tmp")
	// A generation line (no '=': not a rule) makes each call new content,
	// so that the same rules set again act afresh.
	d.fpGen++
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%s\n#%d\n", spec, d.fpGen)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.FailpointDir, "failpoints")); err != nil {
		t.Fatal(err)
	}
}

// FailpointReached reports whether lvssd stands at the paused failpoint
// name now (it removes the announcement when it goes on).
func (d *Daemon) FailpointReached(name string) bool {
	_, err := os.Stat(filepath.Join(d.FailpointDir, strings.ReplaceAll(name, "/", "_")+".reached"))
	return err == nil
}
