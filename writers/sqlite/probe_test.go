package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver for the test's own connections
)

// The application side of these tests runs in child processes (this test
// binary, re-executed): SQLite's locks are POSIX locks, which do not
// exclude connections of the process that holds them, so only another
// process sees the writer's freeze as an application would.
const (
	envProbe   = "LVSS_SQLITE_PROBE" // commit, hold, read, load
	envDB      = "LVSS_SQLITE_DB"
	envTimeout = "LVSS_SQLITE_TIMEOUT" // busy timeout, ms
)

// Exit codes of a probe.
const (
	probeBusy  = 3
	probeOther = 4
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envProbe); mode != "" {
		os.Exit(runProbe(mode, os.Getenv(envDB), os.Getenv(envTimeout)))
	}
	os.Exit(m.Run())
}

// runProbe is the child process: an application using the database.
//
//	commit  one write transaction with busy_timeout = timeout ms
//	hold    take the write lock, print HELD, keep it until stdin closes
//	read    open a read transaction, print HELD, keep it until stdin closes
//	load    write transactions back to back until stdin closes; print
//	        the number and the longest commit latency
func runProbe(mode, path, arg string) int {
	ms, _ := strconv.Atoi(arg)
	db, err := sql.Open("sqlite", "file:"+path+fmt.Sprintf("?_pragma=busy_timeout(%d)", ms))
	if err != nil {
		fmt.Println(err)
		return probeOther
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		fmt.Println(err)
		return probeOther
	}
	defer conn.Close()
	exit := func(err error) int {
		fmt.Println(err)
		if isBusy(err) {
			return probeBusy
		}
		return probeOther
	}
	write := func() error {
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO probe(x) VALUES (?)", time.Now().UnixNano()); err != nil {
			conn.ExecContext(ctx, "ROLLBACK")
			return err
		}
		_, err := conn.ExecContext(ctx, "COMMIT")
		return err
	}
	switch mode {
	case "commit":
		if err := write(); err != nil {
			return exit(err)
		}
	case "hold", "read":
		stmt := "BEGIN IMMEDIATE"
		if mode == "read" {
			stmt = "BEGIN"
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return exit(err)
		}
		var n int
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM probe").Scan(&n); err != nil {
			return exit(err)
		}
		fmt.Println("HELD")
		io.Copy(io.Discard, os.Stdin)
		conn.ExecContext(ctx, "ROLLBACK")
	case "load":
		stop := make(chan struct{})
		go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
		var n int
		var worst time.Duration
		for ; ; n++ {
			select {
			case <-stop:
				fmt.Printf("commits=%d worst=%s\n", n, worst)
				return 0
			default:
			}
			start := time.Now()
			if err := write(); err != nil {
				return exit(err)
			}
			worst = max(worst, time.Since(start))
		}
	default:
		fmt.Println("unknown probe mode", mode)
		return probeOther
	}
	return 0
}

func probeCmd(mode, db string, ms int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// Under -race a process sleeps a second at exit by default, waiting for
	// reports from other goroutines; a probe has none.
	cmd.Env = append(os.Environ(), envProbe+"="+mode, envDB+"="+db, envTimeout+"="+strconv.Itoa(ms), "GORACE=atexit_sleep_ms=0")
	return cmd
}

// commit runs one write transaction in another process with the given
// busy timeout; it returns the probe's exit code and output.
func commit(t *testing.T, db string, busy time.Duration) (int, string) {
	t.Helper()
	out, err := probeCmd("commit", db, int(busy.Milliseconds())).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), strings.TrimSpace(string(out))
	}
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	return 0, strings.TrimSpace(string(out))
}

// mustBeFrozen fails t unless another process's write is refused as busy.
func mustBeFrozen(t *testing.T, dbs ...string) {
	t.Helper()
	for _, db := range dbs {
		if code, out := commit(t, db, 200*time.Millisecond); code != probeBusy {
			t.Errorf("%s: another process could write while frozen (exit %d: %q)", db, code, out)
		}
	}
}

// mustBeWritable fails t unless another process can commit a write.
func mustBeWritable(t *testing.T, dbs ...string) {
	t.Helper()
	for _, db := range dbs {
		if code, out := commit(t, db, 2*time.Second); code != 0 {
			t.Errorf("%s: another process could not write after the release (exit %d: %q)", db, code, out)
		}
	}
}

// holder is a child process keeping a lock on the database until stop.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// hold starts a child holding the write lock (mode "hold") or a read
// transaction (mode "read") and waits until it has it.
func hold(t *testing.T, mode, db string) *holder {
	t.Helper()
	cmd := probeCmd(mode, db, 1000)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &holder{cmd: cmd, stdin: stdin}
	t.Cleanup(h.stop)
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "HELD" {
		t.Fatalf("holder: %q %v", line, err)
	}
	return h
}

func (h *holder) stop() {
	h.stdin.Close()
	h.cmd.Wait()
}
