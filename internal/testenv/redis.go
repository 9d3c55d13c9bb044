package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisOptions configure a throwaway redis-server.
type RedisOptions struct {
	// Dir is the server's data directory (its `dir`: dump.rdb and the AOF
	// directory live there). It must exist. Empty: a new temp dir.
	Dir string
	// AOF turns the append-only file on (appendonly yes, appendfsync
	// everysec); otherwise the server persists only by RDB.
	AOF bool
	// Args are further configuration directives, as redis-server takes
	// them on its command line: "--save", "60 1000", ...
	Args []string
}

// Redis is a running throwaway redis-server. It listens on a free TCP port
// of 127.0.0.1 and on a Unix socket in a private temp dir; its log is kept
// beside the socket, outside the data dir, so that a copy of the data dir
// holds only what the server keeps there.
type Redis struct {
	Addr   string // 127.0.0.1:PORT
	Socket string // the Unix socket's path
	Dir    string // the data dir
	Log    string // the server's log file

	t      testing.TB
	bin    string
	args   []string // redis-server's arguments
	run    string   // the private temp dir of socket and log
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
	once   sync.Once
}

// redisMinMajor is the oldest Redis the writer and its tests are written
// for: the multi-part AOF (a directory with a manifest) came with 7.0.
const redisMinMajor = 7

// StartRedis starts redis-server as opts say and waits until it answers
// PING. Cleanup kills it (SIGKILL to its process group, so that a BGSAVE
// or AOF rewrite child dies too and nothing keeps the data dir's
// filesystem busy) and removes its socket and log dir, also when the test
// fails; the log is shown then. A missing redis-server, or one older than
// 7.0, is reported with Missing. The server runs as the test's user: Redis
// does not refuse root.
func StartRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Missing(t, "redis-server (apt-get install redis-server)")
	}
	if v, err := redisVersion(bin); err != nil {
		Missing(t, "a usable redis-server: "+err.Error())
	} else if v < redisMinMajor {
		Missing(t, fmt.Sprintf("redis-server %d.x or later (found %d.x)", redisMinMajor, v))
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	// A short path of its own: a Unix socket path must fit in 108 bytes,
	// which a t.TempDir() named after a long test name may not.
	run, err := os.MkdirTemp("", "lvss-redis-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		r, err := startRedis(t, bin, run, attempt, opts)
		if err == nil {
			return r
		}
		lastErr = err
		if !errors.Is(err, errRedisPortTaken) {
			break
		}
	}
	t.Fatalf("redis-server: %v", lastErr)
	return nil
}

// errRedisPortTaken: the free port found was taken before the server bound
// it (another test's server); another port is tried.
var errRedisPortTaken = errors.New("port taken")

func startRedis(t testing.TB, bin, run string, attempt int, opts RedisOptions) (*Redis, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Redis{
		Addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Socket: filepath.Join(run, fmt.Sprintf("redis%d.sock", attempt)),
		Dir:    opts.Dir,
		Log:    filepath.Join(run, fmt.Sprintf("redis%d.log", attempt)),
		exited: make(chan struct{}),
	}
	aof := "no"
	if opts.AOF {
		aof = "yes"
	}
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--unixsocket", r.Socket, "--unixsocketperm", "700",
		"--dir", opts.Dir, "--logfile", r.Log, "--daemonize", "no",
		// No save points and no automatic rewrite unless the test asks:
		// the tests decide when the server writes its files.
		"--save", "", "--appendonly", aof, "--appendfsync", "everysec",
	}
	args = append(args, opts.Args...)
	r.t, r.bin, r.args, r.run = t, bin, args, run
	r.cmd = exec.Command(bin, args...)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(r.Log)
			t.Logf("--- redis-server %s log:\n%s", r.Addr, b)
		}
	})
	end := time.Now().Add(15 * time.Second)
	for {
		if err := redisPing(r.Socket); err == nil {
			return r, nil
		}
		select {
		case <-r.exited:
			b, _ := os.ReadFile(r.Log)
			if strings.Contains(string(b), "Address already in use") {
				return nil, errRedisPortTaken
			}
			return nil, fmt.Errorf("exited at start (%v); its log:\n%s", r.cmd.ProcessState, b)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(end) {
			r.Stop()
			b, _ := os.ReadFile(r.Log)
			return nil, fmt.Errorf("no answer to PING on %s within 15s; its log:\n%s", r.Socket, b)
		}
	}
}

// Stop kills the server and its children at once (no save) and waits for
// it; it is idempotent. Tests call it to make the server unreachable.
func (r *Redis) Stop() {
	r.once.Do(func() {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.exited
	})
}

// StopCommand is a shell command line that shuts the server down
// (redis-cli SHUTDOWN over its socket: it saves if the server has save
// points or the AOF on), for a writer's --stop-command.
func (r *Redis) StopCommand() string {
	return "redis-cli -s " + shellQuote(r.Socket) + " shutdown"
}

// StartCommand is a shell command line that starts a server with the same
// configuration (dir, port, socket, log, persistence), daemonized, for a
// writer's --start-command. A server it starts is not a child of the
// test: a cleanup registered here kills it (by the pid file it writes)
// before the test's other cleanups remove the directories.
func (r *Redis) StartCommand() string {
	pidFile := filepath.Join(r.run, "restarted.pid")
	r.t.Cleanup(func() { killPIDFile(r.t, pidFile, "redis-server", 0) })
	line := shellQuote(r.bin)
	for _, a := range r.args {
		line += " " + shellQuote(a)
	}
	// Later directives win: the test's server runs in the foreground,
	// this one detaches as a service manager's would.
	return line + " --daemonize yes --pidfile " + shellQuote(pidFile)
}

// redisVersion returns the major version `redis-server --version` reports.
func redisVersion(bin string) (int, error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`v=(\d+)\.`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unexpected version output %q", out)
	}
	return strconv.Atoi(string(m[1]))
}

// redisPing sends PING over the Unix socket in RESP and expects PONG. It
// needs no client library, so testenv depends on none.
func redisPing(socket string) error {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	switch line = strings.TrimSpace(line); {
	case line == "+PONG", strings.HasPrefix(line, "-NOAUTH"):
		// Up; a server with a password answers NOAUTH.
		return nil
	}
	// -LOADING while it reads its files: not ready yet.
	return fmt.Errorf("PING answered %q", line)
}
