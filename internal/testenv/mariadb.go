package testenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MariaDBOptions say where a throwaway MariaDB server keeps its data and
// how it differs from the default test server.
type MariaDBOptions struct {
	// DataDir is where mariadb-install-db creates the data directory
	// (usually on a LoopFS). It must not exist or be empty. Default: a
	// temp dir. Its parents are made traversable for the server's user.
	DataDir string
	// Dirs are further directories the server writes to (a redo log or
	// undo directory named in Args): created, given to the server's user,
	// their parents made traversable. The test removes them (t.TempDir()).
	Dirs []string
	// Args are extra server options ("--innodb-log-group-home-dir=/x"),
	// given to mariadb-install-db and every start, after the defaults
	// (mariadbTestArgs), which they override.
	Args []string
	// NoBinlog turns binary logging off (it is on by default, so that
	// positions and GTIDs exist).
	NoBinlog bool
}

// MariaDB is a running throwaway MariaDB server: data where the test said,
// socket, pid file, error log and tmpdir in a temp dir of its own, TCP on a
// free port of 127.0.0.1. Started with --no-defaults, it reads no option
// file and never touches the machine's own server, its data directory or
// its service.
type MariaDB struct {
	t        testing.TB
	DataDir  string
	RunDir   string // socket, pid file, error log, tmpdir
	Socket   string
	Port     int
	ErrorLog string
	// OSUser is the operating-system user the test connects as through the
	// socket: its account, made by mariadb-install-db, authenticates by the
	// socket peer's user (unix_socket) and has every privilege.
	OSUser string

	args     []string // server options besides the per-start ones
	uid, gid int      // the server's user; -1 when it runs as the test's user
	cmd      *exec.Cmd
	exited   chan struct{}
	stopped  bool
}

// mariadbTestArgs make a small server that keeps production durability
// (every commit flushes the redo log and the binary log), since what the
// tests check is crash recovery. The binary log's name is relative, so it
// lies in the data directory and a copy of the data directory uses its
// own.
var mariadbTestArgs = []string{
	"--server-id=1", "--log-bin=binlog", "--binlog-format=ROW",
	"--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1",
	"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
	"--max-connections=60", "--skip-name-resolve", "--character-set-server=utf8mb4",
}

// mariadbBinaries finds the server and its tools, or stops the test.
func mariadbBinaries(t testing.TB) (server, install, client string) {
	t.Helper()
	find := func(names ...string) string {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
			if p := filepath.Join("/usr/sbin", n); isExecutable(p) {
				return p
			}
		}
		Missing(t, strings.Join(names, " or ")+" (apt-get install mariadb-server mariadb-client)")
		return ""
	}
	return find("mariadbd", "mysqld"), find("mariadb-install-db", "mysql_install_db"), find("mariadb", "mysql")
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// StartMariaDB creates a data directory with mariadb-install-db (the
// accounts root@localhost and the test's OS user through unix_socket, no
// test database) and starts a server on it. Cleanup stops the server
// (SIGTERM, SIGKILL after 30 s) and removes its temp dirs — also when the
// test fails, when the error log is shown too. A DataDir the test gave is
// left to the test (a LoopFS goes with its filesystem).
func StartMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	_, install, _ := mariadbBinaries(t)
	m := newMariaDB(t, opts)
	if opts.DataDir == "" {
		m.DataDir = filepath.Join(m.RunDir, "data")
	}
	if ents, err := os.ReadDir(m.DataDir); err == nil && len(ents) > 0 {
		t.Fatalf("testenv.StartMariaDB: %s is not empty", m.DataDir)
	}
	for _, d := range append([]string{m.DataDir}, opts.Dirs...) {
		m.MakeDir(d)
	}
	args := append([]string{"--no-defaults", "--datadir=" + m.DataDir, "--auth-root-authentication-method=socket",
		"--skip-test-db", "--tmpdir=" + filepath.Join(m.RunDir, "tmp")}, m.args...)
	if m.uid >= 0 {
		args = append(args, "--user=mysql")
	}
	cmd := exec.Command(install, args...)
	cmd.Dir = m.RunDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(install), strings.Join(args, " "), err, out)
	}
	m.start()
	return m
}

// StartMariaDBCopy starts a second server on dataDir, a writable copy of a
// server's data directory (for example copied out of a snapshot), with the
// same options (opts.Args, opts.NoBinlog) as the original: it gives the
// copy to the server's user and starts the server on a port, socket and
// run directory of its own, where InnoDB runs crash recovery if the copy
// needs it. Directories outside dataDir that opts.Args name would be the
// original's: the copy must bring its own. Cleanup stops the server;
// dataDir is left to the test.
func StartMariaDBCopy(t testing.TB, dataDir string, opts MariaDBOptions) *MariaDB {
	t.Helper()
	mariadbBinaries(t)
	opts.DataDir = dataDir
	m := newMariaDB(t, opts)
	if _, err := os.Stat(filepath.Join(dataDir, "mysql")); err != nil {
		t.Fatalf("testenv.StartMariaDBCopy: %s is no MariaDB data directory: %v", dataDir, err)
	}
	m.prepareDir(dataDir)
	for _, d := range opts.Dirs {
		m.MakeDir(d)
	}
	if m.uid >= 0 {
		err := filepath.WalkDir(dataDir, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, m.uid, m.gid)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	m.start()
	return m
}

func newMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	uid, gid := serverAccount(t, "mysql", "mariadbd does not run as root; apt-get install mariadb-server creates it")
	// A temp dir of its own, with a short path: a Unix socket's path must
	// fit in 108 bytes, which t.TempDir()'s long names may not.
	run, err := os.MkdirTemp("", "lvss-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	m := &MariaDB{t: t, DataDir: opts.DataDir, RunDir: run, Socket: filepath.Join(run, "mysqld.sock"),
		ErrorLog: filepath.Join(run, "error.log"), uid: uid, gid: gid, exited: make(chan struct{})}
	t.Cleanup(m.cleanup)
	m.OSUser = "root"
	if uid < 0 {
		if u, err := user.Current(); err == nil {
			m.OSUser = u.Username
		}
	}
	m.args = append(append([]string{}, mariadbTestArgs...), opts.Args...)
	if opts.NoBinlog {
		m.args = append(m.args, "--skip-log-bin")
	}
	for _, d := range []string{run, filepath.Join(run, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if uid >= 0 {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	traversable(t, run, uid)
	return m
}

// MakeDir creates dir (and its parents) for the server to use: owned by
// the server's user, its parents searchable.
func (m *MariaDB) MakeDir(dir string) {
	m.t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		m.t.Fatal(err)
	}
	m.prepareDir(dir)
}

// prepareDir gives dir to the server's user and makes its parents
// traversable for that user: t.TempDir() and LoopFS mount points sit in
// directories of mode 0700.
func (m *MariaDB) prepareDir(dir string) {
	m.t.Helper()
	if m.uid >= 0 {
		if err := os.Chown(dir, m.uid, m.gid); err != nil {
			m.t.Fatal(err)
		}
	}
	traversable(m.t, filepath.Dir(dir), m.uid)
}

// start runs mariadbd in the foreground of a child process (so the test
// notices at once if it dies) and waits until it answers on its socket. A
// port taken between choosing and binding it is retried with another.
func (m *MariaDB) start() {
	m.t.Helper()
	server, _, _ := mariadbBinaries(m.t)
	for attempt := 1; ; attempt++ {
		m.Port = mustFreePort(m.t)
		m.cmd = exec.Command(server, m.serverArgs()...)
		m.cmd.Dir = m.RunDir
		m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		m.exited = make(chan struct{})
		if err := m.cmd.Start(); err != nil {
			m.t.Fatalf("%s: %v", server, err)
		}
		go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(m.cmd, m.exited)
		err := m.waitReady(60 * time.Second)
		if err == nil {
			m.stopped = false
			return
		}
		m.kill()
		if attempt < 3 && strings.Contains(m.Log(), "Address already in use") {
			continue
		}
		m.t.Fatalf("MariaDB on %s did not start: %v\n%s", m.DataDir, err, m.Log())
	}
}

// serverArgs are mariadbd's arguments for a start on the current port.
func (m *MariaDB) serverArgs() []string {
	args := append([]string{"--no-defaults", "--datadir=" + m.DataDir, "--socket=" + m.Socket,
		"--port=" + strconv.Itoa(m.Port), "--bind-address=127.0.0.1",
		"--pid-file=" + filepath.Join(m.RunDir, "mysqld.pid"), "--log-error=" + m.ErrorLog,
		"--tmpdir=" + filepath.Join(m.RunDir, "tmp")}, m.args...)
	if m.uid >= 0 {
		args = append(args, "--user=mysql")
	}
	return args
}

// StopCommand is a shell command line that shuts the server down cleanly
// (mariadb-admin shutdown over its socket, which returns once the server
// has exited), for a writer's --stop-command.
func (m *MariaDB) StopCommand() string {
	_, _, client := mariadbBinaries(m.t)
	admin := filepath.Join(filepath.Dir(client), "mariadb-admin")
	return shellQuote(admin) + " --no-defaults --socket=" + shellQuote(m.Socket) + " -u " + shellQuote(m.OSUser) + " shutdown"
}

// StartCommand is a shell command line that starts a server with the same
// options (data directory, port, socket, pid file, error log), detached
// in a session of its own as a service manager would run it, for a
// writer's --start-command. It returns at once; the server answers a
// moment later. A server it starts is not a child of the test: a cleanup
// registered here kills it (by its pid file) before the test's other
// cleanups remove the directories.
func (m *MariaDB) StartCommand() string {
	m.t.Helper()
	server, _, _ := mariadbBinaries(m.t)
	m.t.Cleanup(func() {
		except := 0
		if m.cmd != nil {
			except = m.cmd.Process.Pid // the test's own server: its cleanup stops it
		}
		killPIDFile(m.t, filepath.Join(m.RunDir, "mysqld.pid"), "mariadbd", except)
	})
	line := "setsid -f " + shellQuote(server)
	for _, a := range m.serverArgs() {
		line += " " + shellQuote(a)
	}
	return line + " </dev/null >/dev/null 2>&1"
}

// waitReady waits until the server answers a query on its socket.
func (m *MariaDB) waitReady(d time.Duration) error {
	end := time.Now().Add(d)
	for {
		select {
		case <-m.exited:
			return fmt.Errorf("mariadbd exited: %v", m.cmd.ProcessState)
		default:
		}
		if _, err := os.Stat(m.Socket); err == nil {
			if _, err := m.Exec("SELECT 1"); err == nil {
				return nil
			}
		}
		if time.Now().After(end) {
			return fmt.Errorf("no answer within %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Exec runs SQL statements through the mariadb client, as the test's OS
// user over the socket (every privilege), and returns the output:
// tab-separated rows without column names.
func (m *MariaDB) Exec(sql string) (string, error) {
	_, _, client := mariadbBinaries(m.t)
	cmd := exec.Command(client, "--no-defaults", "--socket="+m.Socket, "-u", m.OSUser, "--batch", "--skip-column-names", "-e", sql)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%s: %v: %s", sql, err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// MustExec is Exec that fails the test on an error.
func (m *MariaDB) MustExec(sql string) string {
	m.t.Helper()
	out, err := m.Exec(sql)
	if err != nil {
		m.t.Fatal(err)
	}
	return out
}

// DSN is a go-sql-driver/mysql DSN for user through the server's socket.
func (m *MariaDB) DSN(user, password string) string {
	if password != "" {
		user += ":" + password
	}
	return user + "@unix(" + m.Socket + ")/"
}

// TCPDSN is a go-sql-driver/mysql DSN for user over TCP.
func (m *MariaDB) TCPDSN(user, password string) string {
	if password != "" {
		user += ":" + password
	}
	return fmt.Sprintf("%s@tcp(127.0.0.1:%d)/", user, m.Port)
}

// Log returns the server's error log.
func (m *MariaDB) Log() string {
	b, _ := os.ReadFile(m.ErrorLog)
	return string(b)
}

// Running reports whether the server process is alive.
func (m *MariaDB) Running() bool {
	select {
	case <-m.exited:
		return false
	default:
		return m.cmd != nil
	}
}

// Stop shuts the server down cleanly (SIGTERM) and waits; SIGKILL after
// 30 s.
func (m *MariaDB) Stop() {
	if m.cmd == nil || m.stopped {
		return
	}
	m.stopped = true
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		m.kill()
	}
}

// kill ends the server at once, as a crash would.
func (m *MariaDB) kill() {
	if m.cmd == nil {
		return
	}
	m.stopped = true
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.exited
}

func (m *MariaDB) cleanup() {
	m.Stop()
	if m.t.Failed() && m.cmd != nil {
		m.t.Logf("--- MariaDB error log (%s):\n%s", m.DataDir, m.Log())
	}
	os.RemoveAll(m.RunDir)
}
