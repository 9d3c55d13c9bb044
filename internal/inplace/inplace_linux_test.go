package inplace

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/internal/testenv"
)

// The tests use directories as stand-ins for snapshots: a "snapshot" with
// known content bound over an "original" with other content, on a tmpfs
// of the test's own (scratch). btrfs_linux_test.go does it with a real
// btrfs snapshot.

// runBound bounds one COMMAND of a broken run; a passing one takes
// milliseconds.
const runBound = time.Minute

// scratch mounts a tmpfs for one test and makes it a shared mount: a bind
// made under it in a namespace that is not private would propagate back
// here, so a leak would show in this namespace's mountinfo.
func scratch(t *testing.T) string {
	t.Helper()
	requireNamespaces(t)
	dir := t.TempDir()
	if err := unix.Mount("lvss-inplace-test", dir, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	// Registered after TempDir's: runs before it removes the directory.
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatalf("make %s shared: %v", dir, err)
	}
	return dir
}

// requireNamespaces stops the test unless it may make mount namespaces:
// root is not enough in a container that dropped CAP_SYS_ADMIN.
func requireNamespaces(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	if err := Check(); err != nil {
		testenv.Missing(t, err.Error())
	}
}

// tree makes files (name → content) and directories (name ending in "/")
// under root.
func tree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type result struct {
	stdout, stderr string
	code           int // -1 when killed by a signal
	state          *os.ProcessState
	pid            int
}

// run runs argv through Command and waits for it.
func run(t *testing.T, mounts []Mount, dir string, env []string, argv ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runBound)
	defer cancel()
	cmd, err := Command(ctx, mounts, dir, argv, env)
	if err != nil {
		t.Fatalf("Command: %v", err)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ee := (*exec.ExitError)(nil); err != nil && !errors.As(err, &ee) {
		t.Fatalf("%q: %v\nstderr: %s", argv, err, errOut.String())
	}
	return result{out.String(), errOut.String(), cmd.ProcessState.ExitCode(), cmd.ProcessState, cmd.Process.Pid}
}

// mountsAt returns this namespace's mounts at point.
func mountsAt(t *testing.T, point string) []mountinfo.Mount {
	t.Helper()
	ms, err := mountinfo.Read()
	if err != nil {
		t.Fatal(err)
	}
	var at []mountinfo.Mount
	for _, m := range ms {
		if m.MountPoint == point {
			at = append(at, m)
		}
	}
	return at
}

// COMMAND reads the snapshot at the original path; the host still sees
// the original there.
func TestSnapshotAtOriginalPath(t *testing.T) {
	root := scratch(t)
	snap, orig := filepath.Join(root, "snap"), filepath.Join(root, "orig")
	tree(t, root, map[string]string{"snap/f": "snapshot", "snap/only-in-snapshot": "", "orig/f": "original", "orig/only-live": ""})

	r := run(t, []Mount{{Snapshot: snap, Original: orig}}, "/", nil, "sh", "-c", `cat "$1"/f; echo; ls -A "$1"`, "sh", orig)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if want := "snapshot\nf\nonly-in-snapshot\n"; r.stdout != want {
		t.Errorf("COMMAND saw %q at %s, want the snapshot's %q", r.stdout, orig, want)
	}
	if b, _ := os.ReadFile(filepath.Join(orig, "f")); string(b) != "original" {
		t.Errorf("the host sees %q at %s/f after the run", b, orig)
	}
}

// The bind is read-only, nosuid and nodev inside: a write fails with
// EROFS, although the snapshot's own filesystem is writable.
func TestReadOnlyInside(t *testing.T) {
	root := scratch(t)
	snap, orig := filepath.Join(root, "snap"), filepath.Join(root, "orig")
	tree(t, root, map[string]string{"snap/f": "snapshot", "orig/f": "original"})
	mounts := []Mount{{Snapshot: snap, Original: orig}}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, mounts, "/", append(os.Environ(), helperEnv+"=write"), self, filepath.Join(orig, "new"))
	if r.code != 0 || r.stdout != "EROFS\n" {
		t.Errorf("writing under %s inside: exit %d, %q %s; want EROFS", orig, r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(snap, "new")); err == nil {
		t.Error("the write reached the snapshot")
	}

	r = run(t, mounts, "/", nil, "cat", "/proc/self/mountinfo")
	ms, err := mountinfo.Parse(strings.NewReader(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	var top *mountinfo.Mount
	for i := range ms {
		if ms[i].MountPoint == orig {
			top = &ms[i] // the last one is on top
		}
	}
	if top == nil {
		t.Fatalf("no mount at %s inside:\n%s", orig, r.stdout)
	}
	opts := "," + top.Options + ","
	for _, o := range []string{"ro", "nosuid", "nodev"} {
		if !strings.Contains(opts, ","+o+",") {
			t.Errorf("the mount at %s inside has options %s, without %s", orig, top.Options, o)
		}
	}
	if strings.Contains(top.Root, "orig") || !strings.HasSuffix(top.Root, "/snap") {
		t.Errorf("the mount at %s inside shows %s of its filesystem, want the snapshot", orig, top.Root)
	}
}

// An original inside another shows its own snapshot on top of the outer
// one's, whatever the order given; and snapshots kept inside the volume
// (as btrfs keeps them) are found although the outer snapshot, once
// mounted, hides where they are.
func TestNestedOriginals(t *testing.T) {
	root := scratch(t)
	vol := filepath.Join(root, "vol")
	tree(t, vol, map[string]string{
		"f": "live", "sub/g": "live sub",
		// The snapshot of vol has sub as an empty directory (a nested
		// subvolume) and no .snaps (left out of snapshots).
		".snaps/A/f": "snapshot A", ".snaps/A/sub/": "",
		".snaps/B/g": "snapshot B",
	})
	mounts := []Mount{
		{Snapshot: filepath.Join(vol, ".snaps/B"), Original: filepath.Join(vol, "sub")}, // the child first
		{Snapshot: filepath.Join(vol, ".snaps/A"), Original: vol},
	}
	r := run(t, mounts, "/", nil, "sh", "-c", `cat "$1"/f; echo; cat "$1"/sub/g; echo; ls -A "$1"`, "sh", vol)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if want := "snapshot A\nsnapshot B\nf\nsub\n"; r.stdout != want {
		t.Errorf("COMMAND saw %q, want %q", r.stdout, want)
	}
}

// A working directory under an original is the snapshot's; one the
// snapshot lacks is a set-up failure.
func TestWorkingDirectory(t *testing.T) {
	root := scratch(t)
	snap, orig := filepath.Join(root, "snap"), filepath.Join(root, "orig")
	tree(t, root, map[string]string{"snap/sub/g": "snapshot", "orig/sub/g": "original", "orig/only-live/": ""})
	mounts := []Mount{{Snapshot: snap, Original: orig}}

	r := run(t, mounts, filepath.Join(orig, "sub"), nil, "sh", "-c", "pwd; cat g")
	if want := filepath.Join(orig, "sub") + "\nsnapshot"; r.code != 0 || r.stdout != want {
		t.Errorf("in %s/sub: exit %d, %q, want %q (%s)", orig, r.code, r.stdout, want, r.stderr)
	}

	// lvss's own working directory under the original: the same.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(filepath.Join(orig, "sub")); err != nil {
		t.Fatal(err)
	}
	r = run(t, mounts, "", nil, "cat", "g")
	if err := os.Chdir(wd); err != nil {
		t.Fatal(err)
	}
	if r.code != 0 || r.stdout != "snapshot" {
		t.Errorf("from lvss's working directory %s/sub: exit %d, %q (%s)", orig, r.code, r.stdout, r.stderr)
	}

	r = run(t, mounts, filepath.Join(orig, "only-live"), nil, "true")
	if r.code != ExitSetup || !strings.Contains(r.stderr, "working directory "+filepath.Join(orig, "only-live")) {
		t.Errorf("a working directory missing from the snapshot: exit %d, %q; want %d and a message naming it", r.code, r.stderr, ExitSetup)
	}
}

// COMMAND is the child itself (the hidden mode exec'd it): same pid, its
// exit status and its death by a signal come back unchanged.
func TestExitStatusAndSignals(t *testing.T) {
	root := scratch(t)
	tree(t, root, map[string]string{"snap/": "", "orig/": ""})
	mounts := []Mount{{Snapshot: filepath.Join(root, "snap"), Original: filepath.Join(root, "orig")}}

	if r := run(t, mounts, "/", nil, "sh", "-c", "exit 3"); r.code != 3 {
		t.Errorf("exit 3 came back as %d (%s)", r.code, r.stderr)
	}
	r := run(t, mounts, "/", nil, "sh", "-c", `echo $$; kill -TERM $$`)
	if pid, _ := strconv.Atoi(strings.TrimSpace(r.stdout)); pid != r.pid {
		t.Errorf("COMMAND ran as pid %q, the started process is %d: the hidden mode did not exec it", r.stdout, r.pid)
	}
	if ws := r.state.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("COMMAND killed itself with SIGTERM; the status is %v", r.state)
	}
}

// Nothing propagates to the host, under a shared mount, while COMMAND
// runs or after.
func TestNothingLeaks(t *testing.T) {
	root := scratch(t)
	snap, orig := filepath.Join(root, "snap"), filepath.Join(root, "orig")
	tree(t, root, map[string]string{"snap/f": "snapshot", "orig/f": "original", "orig/sub/": "", "snap/sub/": ""})
	mounts := []Mount{{Snapshot: snap, Original: orig}, {Snapshot: snap, Original: filepath.Join(orig, "sub")}}
	before := len(mountsAt(t, orig)) + len(mountsAt(t, filepath.Join(orig, "sub")))

	ctx, cancel := context.WithTimeout(context.Background(), runBound)
	defer cancel()
	cmd, err := Command(ctx, mounts, "/", []string{"sh", "-c", `cat "$1"/f; echo; read x || true`, "sh", orig}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// COMMAND has printed: the mounts are made and it is still running.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "snapshot\n" {
		t.Fatalf("COMMAND printed %q (%v): %s", line, err, stderr.String())
	}
	check := func(when string) {
		if n := len(mountsAt(t, orig)) + len(mountsAt(t, filepath.Join(orig, "sub"))); n != before {
			t.Errorf("%s: %d mounts at %s and below on the host, %d before", when, n, orig, before)
		}
		if b, _ := os.ReadFile(filepath.Join(orig, "f")); string(b) != "original" {
			t.Errorf("%s: the host reads %q at %s/f", when, b, orig)
		}
	}
	check("while COMMAND runs")
	stdin.Close()
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	check("after COMMAND")
}

// A failure before COMMAND starts: the hidden mode's own status and one
// line that says what failed.
func TestSetUpFailures(t *testing.T) {
	root := scratch(t)
	snap, orig := filepath.Join(root, "snap"), filepath.Join(root, "orig")
	tree(t, root, map[string]string{"snap/script": "#!/bin/sh\n", "orig/": "", "snap/sub/": "", "orig/sub/": ""})
	good := Mount{Snapshot: snap, Original: orig}
	for _, c := range []struct {
		name   string
		mounts []Mount
		argv   []string
		code   int
		says   string
	}{
		{"missing snapshot", []Mount{good, {Snapshot: filepath.Join(root, "gone"), Original: filepath.Join(orig, "sub")}}, []string{"true"},
			ExitSetup, "snapshot " + filepath.Join(root, "gone")},
		{"missing original", []Mount{{Snapshot: snap, Original: filepath.Join(root, "nowhere")}}, []string{"true"},
			ExitSetup, "over " + filepath.Join(root, "nowhere")},
		{"command not found", []Mount{good}, []string{"lvss-no-such-command"}, ExitNotFound, "lvss-no-such-command"},
		{"path not found", []Mount{good}, []string{filepath.Join(orig, "no-such-file")}, ExitNotFound, "no-such-file"},
		{"not executable", []Mount{good}, []string{filepath.Join(orig, "script")}, ExitCannotRun, "script"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, c.mounts, "/", nil, c.argv...)
			if r.code != c.code {
				t.Errorf("exit %d, want %d (%s)", r.code, c.code, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "lvss: --in-place: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, c.says) {
				t.Errorf("stderr %q: want one line, beginning \"lvss: --in-place: \", that says %q", r.stderr, c.says)
			}
		})
	}
	// Nothing of the failed runs is left on the host.
	if ms := mountsAt(t, orig); len(ms) != 0 {
		t.Errorf("mounts at %s after failed runs: %v", orig, ms)
	}
}

// A child without CAP_SYS_ADMIN (started as nobody, after the namespace
// was made) meets EPERM at its first mount and says what it needs.
func TestWithoutCapabilityInTheChild(t *testing.T) {
	root := scratch(t)
	tree(t, root, map[string]string{"snap/": "", "orig/": ""})
	ctx, cancel := context.WithTimeout(context.Background(), runBound)
	defer cancel()
	cmd, err := Command(ctx, []Mount{{Snapshot: filepath.Join(root, "snap"), Original: filepath.Join(root, "orig")}}, "/", []string{"true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Go's exec unshares before it changes the credentials: the child is
	// in a namespace of its own, as nobody, with no capability left.
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != ExitSetup {
		t.Fatalf("%v, want exit %d: %s", err, ExitSetup, stderr.String())
	}
	if want := "lvss: " + ErrNoCapability.Error() + ": "; !strings.HasPrefix(stderr.String(), want) || !strings.Contains(stderr.String(), "operation not permitted") {
		t.Errorf("stderr %q, want %q and the kernel's EPERM", stderr.String(), want)
	}
}

// The hidden mode started in its parent's namespace mounts nothing. The
// parent is itself in a throwaway namespace, so that a broken guard
// could not touch the host.
func TestRefusesTheParentsNamespace(t *testing.T) {
	root := scratch(t)
	snap, orig := filepath.Join(root, "snap"), filepath.Join(root, "orig")
	tree(t, root, map[string]string{"snap/": "", "orig/": ""})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	parent := exec.Command(self, snap, orig)
	parent.Env = append(os.Environ(), helperEnv+"=same-namespace")
	parent.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	var stdout, stderr bytes.Buffer
	parent.Stdout, parent.Stderr = &stdout, &stderr
	err = parent.Run()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != ExitSetup {
		t.Errorf("%v, want exit %d: %s", err, ExitSetup, stderr.String())
	}
	if !strings.Contains(stderr.String(), "still in the parent's mount namespace") {
		t.Errorf("stderr %q does not say why", stderr.String())
	}
	if strings.Contains(stdout.String(), "LEAKED") {
		t.Error("the hidden mode mounted in its parent's namespace")
	}
}

// Cancelling ctx ends COMMAND: its whole process group when it leads one,
// COMMAND alone when it shares lvss's.
func TestCancel(t *testing.T) {
	root := scratch(t)
	tree(t, root, map[string]string{"snap/": "", "orig/": ""})
	mounts := []Mount{{Snapshot: filepath.Join(root, "snap"), Original: filepath.Join(root, "orig")}}
	for _, group := range []bool{true, false} {
		t.Run("setpgid="+strconv.FormatBool(group), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// A shell that started a child and waits for it; it prints the
			// child's pid once both are running.
			cmd, err := Command(ctx, mounts, "/", []string{"sh", "-c", "sleep 1000 & echo $!; wait"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Fixed here: Command decides by the terminal, which a test
			// run from one has.
			cmd.SysProcAttr.Setpgid = group
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			line, err := bufio.NewReader(stdout).ReadString('\n')
			sleeper, _ := strconv.Atoi(strings.TrimSpace(line))
			if err != nil || sleeper == 0 {
				t.Fatalf("read the child's pid: %q %v", line, err)
			}
			t.Cleanup(func() { _ = unix.Kill(sleeper, unix.SIGKILL) })
			go func() { done <- cmd.Wait() }()
			cancel()
			select {
			case err = <-done:
			case <-time.After(runBound):
				t.Fatal("COMMAND outlived the cancellation")
			}
			if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
				t.Errorf("COMMAND ended with %v (%v), want SIGTERM", cmd.ProcessState, err)
			}
			if group {
				testenv.Eventually(t, runBound, "COMMAND's child to end with it", func() bool { return gone(sleeper) })
			} else if gone(sleeper) {
				t.Error("without a group of its own, SIGTERM reached COMMAND's child too: it was not COMMAND alone")
			}
		})
	}
}

// Signal after COMMAND was waited for says so, as exec's Cancel expects,
// with a group or without.
func TestSignalAfterTheEnd(t *testing.T) {
	root := scratch(t)
	tree(t, root, map[string]string{"snap/": "", "orig/": ""})
	mounts := []Mount{{Snapshot: filepath.Join(root, "snap"), Original: filepath.Join(root, "orig")}}
	for _, group := range []bool{true, false} {
		cmd, err := Command(context.Background(), mounts, "/", []string{"true"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cmd.SysProcAttr.Setpgid = group
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		// true started nothing: with its end the group is empty.
		if err := Signal(cmd, syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("setpgid=%v: Signal after the end: %v, want os.ErrProcessDone", group, err)
		}
	}
}

// gone reports whether pid has ended (or is a zombie no one reaps).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) STATE ...; comm may hold spaces and parentheses.
	s := string(b)
	rest := s[strings.LastIndexByte(s, ')')+1:]
	return strings.HasPrefix(strings.TrimSpace(rest), "Z")
}
