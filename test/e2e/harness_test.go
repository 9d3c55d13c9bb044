package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds lvssd, lvss and the example writer once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "lvss-e2e-bin-")
		if buildErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/lvssd", "./cmd/lvss", "./cmd/lvss-writer", "./examples/logwriter", "./examples/bankapp")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// proc is a child process whose output goes to a file in the test's dir.
type proc struct {
	cmd *exec.Cmd
	out string
}

func start(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	return startCmd(t, dir, name, exec.Command(filepath.Join(binaries(t), strings.Fields(name)[0]), args...))
}

// startCmd starts cmd in its own process group with its output in
// dir/name.out; cleanup stops it (SIGTERM, then SIGKILL after 5 s) and
// shows the output if the test failed.
func startCmd(t *testing.T, dir, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	out := filepath.Join(dir, name+".out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // not already waited for (proc.stop)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(out)
			t.Logf("--- %s output:\n%s", name, b)
		}
	})
	return &proc{cmd: cmd, out: out}
}

// daemon is a running lvssd in temp dirs.
type daemon struct {
	dir, socket string
	proc        *proc
}

func startDaemon(t *testing.T, config string) *daemon {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "lvssd.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &daemon{dir: dir, socket: filepath.Join(dir, "lvssd.sock")}
	d.proc = start(t, dir, "lvssd", "--socket", d.socket, "--state-dir", filepath.Join(dir, "state"),
		"--run-dir", filepath.Join(dir, "run"), "--config", cfg)
	eventually(t, 10*time.Second, "lvssd socket", func() bool {
		_, err := os.Stat(d.socket)
		return err == nil
	})
	return d
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

// writerProc is a logwriter process.
type writerProc struct {
	name, log string
	proc      *proc
}

func (d *daemon) startWriter(t *testing.T, name, level string, extra ...string) *writerProc {
	t.Helper()
	data := filepath.Join(d.dir, "data-"+name)
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &writerProc{name: name, log: filepath.Join(d.dir, name+".events")}
	args := append([]string{"--socket", d.socket, "--name", name, "--level", level, "--path", data, "--log", w.log}, extra...)
	w.proc = start(t, d.dir, "logwriter "+name, args...)
	return w
}

// events returns the event names the writer logged, in order.
func (w *writerProc) events(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(w.log)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 2 {
			out = append(out, fs[1])
		}
	}
	return out
}

// eventLine returns the timestamp of the writer's first event of that name.
func (w *writerProc) eventTime(t *testing.T, name string) time.Time {
	t.Helper()
	b, err := os.ReadFile(w.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if fs := strings.Fields(l); len(fs) >= 2 && fs[1] == name {
			ts, err := time.Parse(time.RFC3339Nano, fs[0])
			if err != nil {
				t.Fatal(err)
			}
			return ts
		}
	}
	t.Fatalf("%s never logged %s: %v", w.name, name, w.events(t))
	return time.Time{}
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitWriters waits until lvssd lists n writers with their metadata.
func (d *daemon) waitWriters(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	conn, err := client.Dial(ctx, d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, 15*time.Second, fmt.Sprintf("%d writers", n), func() bool {
		ws, err := conn.ListWriters(ctx)
		if err != nil || len(ws) != n {
			return false
		}
		for _, w := range ws {
			if w.WMD == "" {
				return false
			}
		}
		return true
	})
}

// listWritersShows runs the real `lvss list writers` (which sends writers
// no event) and fails t unless its output holds every want.
func listWritersShows(t *testing.T, socket string, want ...string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(binaries(t), "lvss"), "--socket", socket, "list", "writers").CombinedOutput()
	if err != nil {
		t.Fatalf("lvss list writers: %v\n%s", err, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
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
