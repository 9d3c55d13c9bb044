package testenv

import (
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// What the throwaway database servers (PostgreSQL, MariaDB, Redis) share.

// serverAccount is the system user a server that refuses root runs as
// when the test runs as root (uid, gid -1: the test's own user, no
// switch). A missing account is Missing: the server's Debian package
// creates it.
func serverAccount(t testing.TB, name, why string) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return -1, -1
	}
	u, err := user.Lookup(name)
	if err != nil {
		Missing(t, "the "+name+" system user ("+why+")")
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// traversable adds search permission (only) for others to dir and its
// parents where they lack it and the test's own user owns them (the
// test's temp dirs are 0700), so that a server running as uid reaches its
// directories. A directory of uid is searchable for it already; one of
// another owner that others cannot search fails t. uid < 0: the server
// runs as the test's user, who made these directories.
func traversable(t testing.TB, dir string, uid int) {
	t.Helper()
	if uid < 0 {
		return
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm()&0o001 == 0 && (st == nil || int(st.Uid) != uid) {
			if st == nil || int(st.Uid) != os.Geteuid() {
				t.Fatalf("testenv: %s is not searchable by the server's user (uid %d), and not the test's to change", d, uid)
			}
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				t.Fatal(err)
			}
		}
		if d == "/" || d == "." {
			return
		}
	}
}

// freePort asks the kernel for a TCP port of 127.0.0.1 that is free now.
// Another process may take it before the server binds it: the starters
// retry with another port when the server cannot bind.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// mustFreePort is freePort failing t.
func mustFreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// shellQuote quotes s for /bin/sh: the command lines testenv hands out
// (a server's stop and start commands) are run by a shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// asUser prefixes a command line with runuser when the server runs as
// another user (uid >= 0) than the test.
func asUser(name string, uid int, cmdline string) string {
	if uid < 0 {
		return cmdline
	}
	return "runuser -u " + name + " -- " + cmdline
}

// killPIDFile kills (SIGKILL) the process a pid file names, if it runs
// the program comm and is not except, and waits until it is gone: the
// cleanup of a server a test's start command daemonized, which no test
// process waits for.
func killPIDFile(t testing.TB, pidFile, comm string, except int) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return // never started, or removed at a clean shutdown
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || pid == except {
		return
	}
	alive := func() bool {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return false
		}
		// "pid (comm) S ...": a zombie (Z) has exited.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		return i < 0 || !strings.HasPrefix(s[i+1:], " Z") && strings.Contains(s[:i], "("+comm)
	}
	if !alive() {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for end := time.Now().Add(30 * time.Second); alive(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Errorf("testenv: %s (PID %d, from %s) survived SIGKILL for 30 s", comm, pid, pidFile)
			return
		}
	}
}
