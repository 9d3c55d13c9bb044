package freeze

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment the test binary reads when it is re-executed.
const (
	// envHook picks the guard's beforeFreezeHook: unset checks that the
	// record exists before every FIFREEZE; "fail-second" also fails the
	// second filesystem's freeze.
	envHook = "LVSS_FREEZE_TEST_HOOK"
	// envFake* make the test binary a stand-in lvssd that starts a
	// guard, freezes one path, prints "READY <guard pid>" and waits to be
	// killed.
	envFakePath   = "LVSS_FREEZE_TEST_FAKE_PATH"
	envFakeRunDir = "LVSS_FREEZE_TEST_FAKE_RUNDIR"
	envFakeHold   = "LVSS_FREEZE_TEST_FAKE_HOLD"
	// envFakeLeak makes the stand-in lvssd leak the write end of the
	// guard's control pipe into a long-lived child, so that lvssd's death
	// does not close it: only the pidfd can tell the guard.
	envFakeLeak = "LVSS_FREEZE_TEST_FAKE_LEAK"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == GuardArg {
		beforeFreezeHook = checkRecordHook
		if os.Getenv(envHook) == "fail-second" {
			beforeFreezeHook = func(path string, i int) error {
				if i == 1 {
					return errors.New("test hook: failing the second FIFREEZE")
				}
				return checkRecordHook(path, i)
			}
		}
		os.Exit(GuardMain(os.Args[2:]))
	}
	if os.Getenv(envFakePath) != "" {
		os.Exit(fakeLvssd())
	}
	os.Exit(m.Run())
}

// checkRecordHook runs in the guard right before each FIFREEZE and fails
// the freeze unless the filesystem's record is already on disk, complete,
// and names this guard: "record the compensation before taking the
// resource", observed from outside the code that does it.
func checkRecordHook(path string, _ int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("record missing before FIFREEZE: %w", err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("record unreadable before FIFREEZE: %w", err)
	}
	if r.Pid != os.Getpid() || r.Dev == "" || r.Mnt == "" {
		return fmt.Errorf("record incomplete before FIFREEZE: %+v", r)
	}
	return nil
}

// fakeLvssd is the parent whose death the guard must notice.
func fakeLvssd() int {
	hold, err := time.ParseDuration(os.Getenv(envFakeHold))
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := Start(ctx, Options{RunDir: os.Getenv(envFakeRunDir), Hold: hold})
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	if err := g.Freeze(ctx, []string{os.Getenv(envFakePath)}); err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	if os.Getenv(envFakeLeak) != "" {
		leak := exec.Command("sleep", "60")
		leak.ExtraFiles = []*os.File{g.ctl}
		if err := leak.Start(); err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		fmt.Printf("READY %d %d\n", g.Pid(), leak.Process.Pid)
	} else {
		fmt.Printf("READY %d\n", g.Pid())
	}
	// Hold until killed (or stdin closes).
	_, _ = io.Copy(io.Discard, os.Stdin)
	runtime.KeepAlive(g)
	g.Close()
	return 0
}

// testLogger sends the package's log to t.Log, and drops what comes after
// the test (a guard's exit is noticed asynchronously).
func testLogger(t testing.TB) *slog.Logger {
	w := &tlogWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tlogWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// startGuard starts a guard with a fresh run dir; Close is a cleanup that
// runs before the loop filesystems' cleanups (cleanups run last-first, and
// the filesystems are made before the guard).
func startGuard(t testing.TB, hold time.Duration) (*Guard, string) {
	t.Helper()
	runDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := Start(ctx, Options{RunDir: runDir, Hold: hold, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g, runDir
}

// records lists the guard records in a run dir.
func records(t testing.TB, runDir string) []record {
	t.Helper()
	recs, errs := readRecords(recordDir(runDir))
	if len(errs) > 0 {
		t.Fatalf("records: %v", errs)
	}
	var out []record
	for _, r := range recs {
		out = append(out, r)
	}
	return out
}

func readLine(t testing.TB, r io.Reader, d time.Duration) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		ch <- strings.TrimSpace(s)
	}()
	select {
	case s := <-ch:
		return s
	case <-time.After(d):
		t.Fatalf("no line within %s", d)
		return ""
	}
}

func procState(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "stat"))
	if err != nil {
		return "gone"
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return "?"
}
