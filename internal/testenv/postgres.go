package testenv

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PostgresOptions say where a throwaway PostgreSQL cluster goes.
type PostgresOptions struct {
	// DataDir is where initdb creates the cluster (usually on a LoopFS).
	// It must not exist or be empty. Its parent directories are made
	// traversable for the server's user.
	DataDir string
	// WALDir, if set, is initdb's --waldir: the WAL lives there and
	// DataDir/pg_wal is a symbolic link to it.
	WALDir string
	// Settings are extra postgresql.conf lines (name → value, written as
	// given: quote strings yourself).
	Settings map[string]string
}

// Postgres is a running throwaway PostgreSQL server. Everything about it
// lives in temp dirs or where the test said; it never touches the
// machine's own clusters or services.
type Postgres struct {
	t         testing.TB
	Bin       string // the server's binaries (…/bin)
	DataDir   string
	SocketDir string // the Unix socket is SocketDir/.s.PGSQL.<Port>
	Port      int    // TCP, on 127.0.0.1
	LogFile   string // the server's stderr

	uid, gid int // the server's user; -1 when it runs as the test's user
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the postmaster has exited
	stopped  bool
	owned    []string // directories the starter created and removes
}

// postgresSettings are the test clusters' settings: small, but with
// durability left as in production (fsync, full page writes and
// synchronous commit on), since what is tested is crash recovery.
var postgresSettings = map[string]string{
	"fsync":              "on",
	"synchronous_commit": "on",
	"full_page_writes":   "on",
	"shared_buffers":     "16MB",
	"max_connections":    "30",
	"max_wal_size":       "64MB",
	"min_wal_size":       "32MB",
	"log_checkpoints":    "on",
	"logging_collector":  "off",
	"log_line_prefix":    "'%m [%p] '",
	"lc_messages":        "'C'",
}

// PostgresBin returns the bin directory of the newest PostgreSQL installed
// under /usr/lib/postgresql (Debian's layout), or stops the test with
// Missing.
func PostgresBin(t testing.TB) string {
	t.Helper()
	ents, _ := os.ReadDir("/usr/lib/postgresql")
	best := -1
	for _, e := range ents {
		v, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join("/usr/lib/postgresql", e.Name(), "bin", "postgres")); err == nil && v > best {
			best = v
		}
	}
	if best < 0 {
		Missing(t, "PostgreSQL server binaries in /usr/lib/postgresql/N/bin (apt-get install postgresql)")
	}
	bin := filepath.Join("/usr/lib/postgresql", strconv.Itoa(best), "bin")
	for _, tool := range []string{"initdb", "pg_ctl", "pg_isready"} {
		if _, err := os.Stat(filepath.Join(bin, tool)); err != nil {
			Missing(t, filepath.Join(bin, tool))
		}
	}
	return bin
}

// StartPostgres initialises a cluster with initdb (superuser "postgres",
// trust authentication, UTF8, C locale) and starts a server on it, on a
// free port on 127.0.0.1 and a Unix socket in a temp dir. Cleanup stops
// it with an immediate shutdown and removes the data (and WAL) directory
// — also when the test fails, when the server's log is shown too.
func StartPostgres(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	bin := PostgresBin(t)
	uid, gid := serverAccount(t, "postgres", "PostgreSQL refuses to run as root; apt-get install postgresql creates it")
	if opts.DataDir == "" {
		t.Fatal("testenv.StartPostgres: no DataDir")
	}
	p := &Postgres{t: t, Bin: bin, DataDir: opts.DataDir, uid: uid, gid: gid}
	for _, dir := range []string{opts.DataDir, opts.WALDir} {
		if dir == "" {
			continue
		}
		if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
			t.Fatalf("testenv.StartPostgres: %s is not empty", dir)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		p.owned = append(p.owned, dir)
		p.prepareDir(dir)
	}
	t.Cleanup(p.cleanup)
	args := []string{"-D", opts.DataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"}
	if opts.WALDir != "" {
		args = append(args, "--waldir", opts.WALDir)
	}
	if out, err := p.command(filepath.Join(bin, "initdb"), args...).CombinedOutput(); err != nil {
		t.Fatalf("initdb %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var conf strings.Builder
	conf.WriteString("\n# lvss test settings\n")
	settings := map[string]string{}
	for k, v := range postgresSettings {
		settings[k] = v
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&conf, "%s = %s\n", k, settings[k])
	}
	f, err := os.OpenFile(filepath.Join(opts.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(conf.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	p.start()
	return p
}

// StartPostgresCopy starts a second server on dataDir, a writable copy of
// a cluster's data directory (for example copied out of a snapshot): it
// gives the copy to the server's user, removes the postmaster.pid and
// postmaster.opts the copy may carry, and starts the server on a port and
// socket of its own, where it runs crash recovery if the copy needs it.
// It refuses a copy whose pg_wal or tablespaces are symbolic links: the
// copy would write into the original cluster's directories. Cleanup stops
// it; dataDir is left to the test.
func StartPostgresCopy(t testing.TB, dataDir string) *Postgres {
	t.Helper()
	bin := PostgresBin(t)
	uid, gid := serverAccount(t, "postgres", "PostgreSQL refuses to run as root; apt-get install postgresql creates it")
	p := &Postgres{t: t, Bin: bin, DataDir: dataDir, uid: uid, gid: gid}
	if fi, err := os.Lstat(filepath.Join(dataDir, "pg_wal")); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
		t.Fatalf("testenv.StartPostgresCopy: %s/pg_wal is missing or a symbolic link (%v): the copy would use the original's WAL", dataDir, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dataDir, "pg_tblspc")); len(ents) > 0 {
		t.Fatalf("testenv.StartPostgresCopy: %s has tablespaces, which would link to the original's", dataDir)
	}
	for _, f := range []string{"postmaster.pid", "postmaster.opts"} {
		if err := os.Remove(filepath.Join(dataDir, f)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	p.prepareDir(dataDir)
	if uid >= 0 {
		err := filepath.WalkDir(dataDir, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, uid, gid)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The server refuses a data directory others can read.
	if err := os.Chmod(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.cleanup)
	p.start()
	return p
}

// prepareDir gives dir to the server's user and makes its parents
// traversable for that user: t.TempDir() and LoopFS mount points sit in
// directories of mode 0700.
func (p *Postgres) prepareDir(dir string) {
	p.t.Helper()
	if p.uid >= 0 {
		if err := os.Chown(dir, p.uid, p.gid); err != nil {
			p.t.Fatal(err)
		}
	}
	traversable(p.t, filepath.Dir(dir), p.uid)
}

// MakeDir creates dir (and its parents) for the server to use, e.g. as a
// tablespace location: owned by the server's user, mode 0700, its parents
// searchable.
func (p *Postgres) MakeDir(dir string) {
	p.t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		p.t.Fatal(err)
	}
	p.prepareDir(dir)
}

// command runs a PostgreSQL program as the server's user.
func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if p.uid >= 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.gid)}
	}
	return cmd
}

// start runs the postmaster in the foreground of a child process (so the
// test notices at once if it dies) and waits until it accepts
// connections. Port and socket are given on the command line, where they
// win over a copied postgresql.conf.
func (p *Postgres) start() {
	t := p.t
	t.Helper()
	sock, err := os.MkdirTemp("", "lvss-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.SocketDir = sock
	p.owned = append(p.owned, sock)
	p.prepareDir(sock)
	logDir, err := os.MkdirTemp("", "lvss-pglog-")
	if err != nil {
		t.Fatal(err)
	}
	p.owned = append(p.owned, logDir)
	p.LogFile = filepath.Join(logDir, "postgres.log")
	logf, err := os.Create(p.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	for attempt := 0; ; attempt++ {
		p.Port = mustFreePort(t)
		p.cmd = p.command(filepath.Join(p.Bin, "postgres"), "-D", p.DataDir,
			"-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(p.Port),
			"-c", "unix_socket_directories="+sock)
		p.cmd.Stdout, p.cmd.Stderr = logf, logf
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("starting postgres: %v", err)
		}
		p.exited = make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.exited)
		err := p.waitReady(60 * time.Second)
		if err == nil {
			return
		}
		// Another process may have taken the port between freePort and
		// the server's bind: try another one.
		if attempt < 2 && strings.Contains(p.Log(), "could not bind") {
			<-p.exited
			continue
		}
		t.Fatalf("postgres on %s: %v\n--- server log:\n%s", p.DataDir, err, p.Log())
	}
}

// waitReady polls pg_isready until the server accepts connections, it
// exits, or d passes.
func (p *Postgres) waitReady(d time.Duration) error {
	end := time.Now().Add(d)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("the server exited during start-up (%v)", p.cmd.ProcessState)
		default:
		}
		cmd := exec.Command(filepath.Join(p.Bin, "pg_isready"), "-q", "-h", p.SocketDir, "-p", strconv.Itoa(p.Port), "-U", "postgres", "-d", "postgres")
		if cmd.Run() == nil {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("not accepting connections after %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DSN is a libpq keyword/value connection string for database db as the
// superuser "postgres", through the Unix socket.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", p.SocketDir, p.Port, db)
}

// TCPDSN is DSN over TCP to 127.0.0.1.
func (p *Postgres) TCPDSN(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable", p.Port, db)
}

// Log returns the server's log so far.
func (p *Postgres) Log() string {
	b, _ := os.ReadFile(p.LogFile)
	return string(b)
}

// Running reports whether the postmaster is still running.
func (p *Postgres) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Pause stops the server and all its processes with SIGSTOP: a hung
// server, which accepts connections (the kernel queues them) and answers
// nothing. Resume, Stop and cleanup let it go on.
func (p *Postgres) Pause() {
	p.t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		p.t.Fatal(err)
	}
}

// Resume continues a paused server.
func (p *Postgres) Resume() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT)
}

// Stop stops the server with an immediate shutdown (pg_ctl stop -m
// immediate: no checkpoint, as in a crash) and waits for it to exit. It is
// idempotent; cleanup calls it too.
func (p *Postgres) Stop() {
	if p.stopped || p.cmd == nil {
		return
	}
	p.stopped = true
	p.Resume() // a paused server would not see the shutdown request
	out, err := p.command(filepath.Join(p.Bin, "pg_ctl"), "stop", "-D", p.DataDir, "-m", "immediate", "-w", "-t", "10").CombinedOutput()
	select {
	case <-p.exited:
		return
	case <-time.After(10 * time.Second):
	}
	// pg_ctl failed or the server hangs: kill its process group.
	p.t.Logf("testenv: pg_ctl stop -m immediate did not stop the server (%v: %s); killing it", err, strings.TrimSpace(string(out)))
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

func (p *Postgres) cleanup() {
	p.Stop()
	if p.t.Failed() && p.LogFile != "" {
		p.t.Logf("--- PostgreSQL server log (%s):\n%s", p.DataDir, p.Log())
	}
	for _, d := range p.owned {
		os.RemoveAll(d)
	}
}

// StopCommand is a shell command line that stops the server the way an
// operator's service manager would (pg_ctl stop, fast shutdown, as the
// server's user), for a writer's --stop-command.
func (p *Postgres) StopCommand() string {
	return asUser("postgres", p.uid, shellQuote(filepath.Join(p.Bin, "pg_ctl"))+" stop -D "+shellQuote(p.DataDir)+" -m fast -w -t 60")
}

// StartCommand is a shell command line that starts a server on the same
// data directory, port and socket (pg_ctl start, as the server's user,
// logging to LogFile), for a writer's --start-command. A server it
// starts is not a child of the test: a cleanup registered here stops
// whatever server then runs on the data directory (immediate shutdown),
// before the test's other cleanups remove the directories.
func (p *Postgres) StartCommand() string {
	p.t.Helper()
	if p.uid >= 0 {
		if err := os.Chown(p.LogFile, p.uid, p.gid); err != nil {
			p.t.Fatal(err)
		}
		traversable(p.t, filepath.Dir(p.LogFile), p.uid)
	}
	p.t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(p.DataDir, "postmaster.pid")); err != nil {
			return // no server
		}
		out, err := p.command(filepath.Join(p.Bin, "pg_ctl"), "stop", "-D", p.DataDir, "-m", "immediate", "-w", "-t", "30").CombinedOutput()
		if err != nil && !strings.Contains(string(out), "Is server running?") {
			p.t.Errorf("testenv: stopping the server the start command started: %v: %s", err, out)
		}
	})
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s", p.Port, p.SocketDir)
	return asUser("postgres", p.uid, shellQuote(filepath.Join(p.Bin, "pg_ctl"))+" start -D "+shellQuote(p.DataDir)+
		" -w -t 120 -l "+shellQuote(p.LogFile)+" -o "+shellQuote(opts))
}

// WALArchive is a directory a test server archives its WAL into, for
// point-in-time recovery.
type WALArchive struct{ Dir string }

// NewWALArchive makes dir (which must not exist) for the server's user,
// its parents traversable. Settings gives the server the archive_command
// that fills it.
func NewWALArchive(t testing.TB, dir string) *WALArchive {
	t.Helper()
	uid, gid := serverAccount(t, "postgres", "PostgreSQL refuses to run as root; apt-get install postgresql creates it")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	traversable(t, filepath.Dir(dir), uid)
	return &WALArchive{Dir: dir}
}

// Settings are the server settings that archive into a: copy, then
// rename, so that a copy cut short (an immediate shutdown) never leaves a
// short segment that recovery would read.
func (a *WALArchive) Settings() map[string]string {
	return map[string]string{"archive_mode": "on", "wal_level": "replica",
		"archive_command": "'cp %p " + a.Dir + "/%f.part && mv " + a.Dir + "/%f.part " + a.Dir + "/%f'"}
}

// RestoreCommand is the restore_command that reads a.
func (a *WALArchive) RestoreCommand() string { return "cp " + a.Dir + "/%f %p" }

// WaitArchived waits until the WAL segment walFile (pg_walfile_name of a
// pg_switch_wal) is in the archive; the bound only ends a broken test.
func (a *WALArchive) WaitArchived(t testing.TB, walFile string) {
	t.Helper()
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(a.Dir, walFile)); err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("WAL segment %s did not reach the archive %s", walFile, a.Dir)
		}
	}
}
