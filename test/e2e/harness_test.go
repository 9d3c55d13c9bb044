package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// The suite's helpers are thin wrappers of internal/testenv/lvssdtest, the
// harness the CLI's tests share: building the binaries, starting lvssd and
// helper processes, waiting for writers.

func TestMain(m *testing.M) { lvssdtest.Main(m) }

// binaries builds lvssd, lvss, lvss-writer and the examples once per test
// run and returns their directory.
func binaries(t *testing.T) string {
	t.Helper()
	return lvssdtest.Binaries(t)
}

// proc is a child process whose output goes to a file in the test's dir.
type proc = lvssdtest.Proc

// start starts the built binary named by name's first word; name (which
// may say which instance it is, "logwriter alpha") names its output file.
func start(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	return startCmd(t, dir, name, exec.Command(filepath.Join(binaries(t), strings.Fields(name)[0]), args...))
}

// startCmd starts cmd in its own process group with its output in
// dir/name.out; cleanup stops it (SIGTERM, then SIGKILL) and shows the
// output if the test failed.
func startCmd(t *testing.T, dir, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	return lvssdtest.Start(t, dir, name, cmd)
}

// daemon is a running lvssd in temp dirs.
type daemon struct {
	dir, socket string
	proc        *proc
}

func startDaemon(t *testing.T, config string) *daemon {
	t.Helper()
	return startDaemonWith(t, lvssdtest.DaemonOptions{Config: config})
}

func startDaemonWith(t *testing.T, opt lvssdtest.DaemonOptions) *daemon {
	t.Helper()
	d := lvssdtest.StartDaemon(t, opt)
	return &daemon{dir: d.Dir, socket: d.Socket, proc: d.Proc}
}

const shortTimeouts = `
[timeouts]
identify = "5s"
prepare_backup = "5s"
prepare_snapshot = "5s"
freeze = "5s"
thaw = "5s"
post_snapshot = "5s"
backup_complete = "5s"
backup_shutdown = "5s"
abort = "5s"
hold = "2s"
`

// withTimeout returns config (such as shortTimeouts) with its timeout key
// set to value, failing t if config does not set key: a test that needs a
// longer timeout must not run with the short one unnoticed.
func withTimeout(t *testing.T, config, key, value string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s*=.*$`)
	if !re.MatchString(config) {
		t.Fatalf("the config sets no %s:\n%s", key, config)
	}
	return re.ReplaceAllLiteralString(config, key+" = "+strconv.Quote(value))
}

// frozenTimeouts is shortTimeouts with a Freeze→Thaw window that only a
// broken run reaches: for tests that keep a set frozen as long as they
// need, with a writer that stays in Freeze until woken (startDawdler).
func frozenTimeouts(t *testing.T) string {
	t.Helper()
	return withTimeout(t, shortTimeouts, "freeze", "60s")
}

// writerProc is a logwriter process.
type writerProc struct {
	name, log string
	proc      *proc
	lw        *lvssdtest.LogWriter
}

func (d *daemon) startWriter(t *testing.T, name, level string, extra ...string) *writerProc {
	t.Helper()
	lw := lvssdtest.StartLogWriter(t, d.socket, d.dir, name, level, extra...)
	return &writerProc{name: lw.Name, log: lw.Log, proc: lw.Proc, lw: lw}
}

// startDawdler starts a logwriter named slow at level that stays in each
// Freeze until wake (or the Freeze→Thaw window) ends it. Once it entered
// Freeze (w.lw.WaitEntered), lvssd has frozen every writer of the levels
// before it, and they stay frozen until it is woken.
func (d *daemon) startDawdler(t *testing.T, level string) *writerProc {
	t.Helper()
	return d.startWriter(t, "slow", level, "--sleep-at", "Freeze=1h")
}

// wake ends the Freeze a dawdler is in (if it still is: lvssd may have
// aborted it already).
func (w *writerProc) wake(t *testing.T) {
	t.Helper()
	if w.lw.InHandler(t, "Freeze") {
		w.lw.Wake(t)
	}
}

// events returns the event names the writer logged, in order.
func (w *writerProc) events(t *testing.T) []string {
	t.Helper()
	return w.lw.Events(t)
}

// eventTime returns the timestamp of the writer's first event of that name.
func (w *writerProc) eventTime(t *testing.T, name string) time.Time {
	t.Helper()
	return w.lw.EventTime(t, name)
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	lvssdtest.Eventually(t, d, what, cond)
}

// waitWriters waits until lvssd lists n writers with their metadata.
func (d *daemon) waitWriters(t *testing.T, n int) {
	t.Helper()
	lvssdtest.WaitWriters(t, d.socket, n)
}

// waitReleased waits for lvssd's event log to record the release of the
// session and returns its fields (aborted, shutdown_writers,
// deleted_snapshots). Release sends the session's writers everything they
// get (Abort, BackupShutdown) and waits for their answers before it logs
// this, so a test can check what a writer did not get without waiting
// "long enough".
func (d *daemon) waitReleased(t *testing.T, session string) map[string]string {
	t.Helper()
	var fields map[string]string
	eventually(t, 15*time.Second, "lvssd to log the release of session "+session, func() bool {
		for _, e := range lvssdtest.Events(t, d.socket) {
			if e.Message == "session released" && e.SessionID.String() == session {
				fields = e.Fields
				return true
			}
		}
		return false
	})
	return fields
}

// lastRelease returns the fields of the last session release in lvssd's
// event log (see waitReleased), failing t if there is none.
func (d *daemon) lastRelease(t *testing.T) map[string]string {
	t.Helper()
	evs := lvssdtest.Events(t, d.socket)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Message == "session released" {
			return evs[i].Fields
		}
	}
	t.Fatal("lvssd logged no session release")
	return nil
}

// listWritersShows runs the real `lvss list writers` (which sends writers
// no event) and fails t unless its output holds every want.
func listWritersShows(t *testing.T, socket string, want ...string) {
	t.Helper()
	r := lvssdtest.Lvss(t, socket, "", "list", "writers")
	out := r.Stdout + r.Stderr
	if r.Code != 0 {
		t.Fatalf("lvss list writers: exit %d\n%s", r.Code, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("lvss list writers does not show %q:\n%s", w, out)
		}
	}
	t.Logf("lvss list writers:\n%s", out)
}

// identifyLeftOut checks what lvssd does with the one subscribed writer
// when its Identify fails: a metadata gathering leaves it out, and lvssd's
// event log says why, with the writer's message (which must contain
// want). It returns the failure code lvssd logged.
func identifyLeftOut(t *testing.T, socket, want string) vsserr.HRESULT {
	t.Helper()
	ctx := context.Background()
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, 15*time.Second, "the writer to subscribe", func() bool {
		ws, err := conn.ListWriters(ctx)
		return err == nil && len(ws) == 1
	})
	err = client.Run(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if err := bc.SetBackupState(ctx, true, false, vss.BackupFull, false); err != nil {
			return err
		}
		a, err := bc.GatherWriterMetadata(ctx)
		if err == nil {
			err = a.Wait(ctx)
		}
		if err != nil {
			return err
		}
		if n, err := bc.GetWriterMetadataCount(ctx); err != nil || n != 0 {
			return fmt.Errorf("%d writers gathered (%v); the one failing Identify must be left out", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var hr vsserr.HRESULT
	eventually(t, 5*time.Second, "lvssd's log of the failed Identify", func() bool {
		evs, err := conn.ListEvents(ctx, 0, 0)
		if err != nil {
			return false
		}
		for _, e := range evs {
			if e.Message == "writer failed Identify and is left out" && strings.Contains(e.Fields["error"], want) {
				t.Logf("lvssd: %s (%s): %s", e.Message, e.HRESULT, e.Fields["error"])
				hr = e.HRESULT
				return true
			}
		}
		return false
	})
	return hr
}
