package inplace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Check reports whether this process can run a command in place: nil, or
// ErrNoCapability without CAP_SYS_ADMIN. It only reads /proc/self/status,
// so the CLI calls it before it makes a snapshot set.
func Check() error {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("--in-place: checking for CAP_SYS_ADMIN: %w", err)
	}
	return checkStatus(string(b))
}

// Command returns a command that runs argv with each mount's snapshot
// bind-mounted read-only over its original path, in a mount namespace of
// its own, with the working directory dir as seen in that namespace.
//
// argv[0] is looked up in env's PATH, after the mounts and the change of
// directory (so "./script" is the snapshot's when dir is under an
// original). dir "" is lvss's own working directory; a relative dir is
// taken from it. env nil is lvss's environment, as for exec.Cmd; it is
// COMMAND's, unchanged. The binary running Command must call
// MaybeRunChild first thing in main: the command is that binary in its
// hidden mode.
//
// The caller sets Stdin, Stdout and Stderr, then Runs it (or Starts and
// Waits). It must not change Path, Args, Dir or SysProcAttr.Unshareflags;
// it may set SysProcAttr.Setpgid (see the package doc), Cancel and
// WaitDelay. To end COMMAND, cancel ctx or use Signal. Errors: what
// Check returns, and a spec that cannot work (no mount, a relative path,
// "/" as an original, two snapshots for one original, an empty argv).
// Failures inside the namespace come back as COMMAND's exit status
// ExitSetup, ExitCannotRun or ExitNotFound, with one line on its stderr.
func Command(ctx context.Context, mounts []Mount, dir string, argv []string, env []string) (*exec.Cmd, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("--in-place: no command to run")
	}
	switch {
	case dir == "":
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("--in-place: working directory: %w", err)
		}
		dir = wd
	case !filepath.IsAbs(dir):
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("--in-place: working directory: %w", err)
		}
		dir = abs
	}
	hostNS, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return nil, fmt.Errorf("--in-place: this process's mount namespace: %w", err)
	}
	s, err := newSpec(mounts, dir, hostNS)
	if err != nil {
		return nil, err
	}
	blob, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("--in-place: %w", err)
	}
	cmd := exec.CommandContext(ctx, "/proc/self/exe", append([]string{ChildArg, string(blob)}, argv...)...)
	cmd.Env = env
	// "/" rather than inheriting lvss's: the child changes directory by
	// path once the mounts are made, and an inherited one (possibly under
	// an original) would only be a reference into the live tree.
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNS,
		Setpgid:      !terminalForeground(),
	}
	cmd.Cancel = func() error { return Signal(cmd, syscall.SIGTERM) }
	cmd.WaitDelay = StopGrace
	return cmd, nil
}

// Direct returns a command that runs argv as it is, without a namespace,
// under the same rules as Command's: its own process group unless lvss is
// the foreground job of a terminal (so a password prompt works), ended by
// Signal when ctx ends, killed StopGrace later. The caller sets Stdin,
// Stdout and Stderr.
func Direct(ctx context.Context, argv []string, env []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !terminalForeground()}
	cmd.Cancel = func() error { return Signal(cmd, syscall.SIGTERM) }
	cmd.WaitDelay = StopGrace
	return cmd
}

// Signal sends sig to COMMAND, which cmd (from Command or Direct) started: to its
// process group when it leads one, else to the process itself. A stopped
// COMMAND gets SIGCONT as well, since a stopped process acts on no signal
// but SIGKILL. It returns os.ErrProcessDone when nothing is left to
// signal, the error exec.Cmd's Cancel expects then.
func Signal(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.Process == nil {
		return errors.New("--in-place: the command was not started")
	}
	cont := sig != syscall.SIGKILL && sig != syscall.SIGCONT
	if cmd.SysProcAttr == nil || !cmd.SysProcAttr.Setpgid {
		// os.Process.Signal knows when the process has been waited for,
		// and never signals a pid reused since.
		err := cmd.Process.Signal(sig)
		if err == nil && cont {
			_ = cmd.Process.Signal(syscall.SIGCONT)
		}
		return err
	}
	// The group's id stays allocated while any process is in it, so -pid
	// names COMMAND's group until the last of it is gone.
	pgid := -cmd.Process.Pid
	if err := unix.Kill(pgid, sig); errors.Is(err, unix.ESRCH) {
		return os.ErrProcessDone
	} else if err != nil {
		return err
	}
	if cont {
		_ = unix.Kill(pgid, unix.SIGCONT)
	}
	return nil
}

// terminalForeground reports whether this process is in the foreground
// process group of its controlling terminal: then COMMAND shares the
// group, as a command started by the shell would (see the package doc).
func terminalForeground() bool {
	fd, err := unix.Open("/dev/tty", unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false // no controlling terminal
	}
	defer unix.Close(fd)
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// MaybeRunChild runs the hidden mode and never returns if this process was
// started in it (argv[1] == ChildArg); otherwise it returns at once. A
// binary that calls Command must call it first thing in main, and its
// tests from TestMain, before anything else starts.
func MaybeRunChild() {
	if len(os.Args) < 2 || os.Args[1] != ChildArg {
		return
	}
	code, err := runChild(os.Args[2:])
	// Reached only when COMMAND was not started: one line, then the
	// hidden mode's own status.
	fmt.Fprintf(os.Stderr, "lvss: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	os.Exit(code)
}

// runChild sets up the namespace and execs COMMAND. It returns only on
// failure, with the exit status to use.
func runChild(args []string) (int, error) {
	if len(args) < 2 {
		return ExitSetup, fmt.Errorf("--in-place: %s is lvss's internal mode and needs a spec and a command", ChildArg)
	}
	var s spec
	dec := json.NewDecoder(strings.NewReader(args[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return ExitSetup, fmt.Errorf("--in-place: bad spec: %w", err)
	}
	if err := s.validate(); err != nil {
		return ExitSetup, err
	}
	argv := args[1:]
	if err := setUp(s); err != nil {
		if errors.Is(err, unix.EPERM) {
			return ExitSetup, fmt.Errorf("%w: %v", ErrNoCapability, err)
		}
		return ExitSetup, fmt.Errorf("--in-place: %w", err)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return ExitNotFound, fmt.Errorf("--in-place: %w", err)
		}
		return ExitCannotRun, fmt.Errorf("--in-place: %w", err)
	}
	// execve keeps the process, its pid, its group and the namespace;
	// signals the runtime handled are back to their defaults, ignored
	// ones stay ignored, as they were when lvss started.
	err = unix.Exec(path, argv, os.Environ())
	if errors.Is(err, unix.ENOENT) {
		return ExitNotFound, fmt.Errorf("--in-place: run %s: %w", path, err)
	}
	return ExitCannotRun, fmt.Errorf("--in-place: run %s: %w", path, err)
}

// setUp makes the namespace: private, the snapshots over their originals
// read-only, parents first, then the working directory by path.
func setUp(s spec) error {
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return fmt.Errorf("own mount namespace: %w", err)
	}
	if ns == s.HostNS {
		// Started without Unshareflags (by hand, or by a broken caller):
		// every mount below would be made over the host's live paths.
		return fmt.Errorf("still in the parent's mount namespace %s: refusing to mount over the host's paths (start this mode with inplace.Command)", ns)
	}
	if err := unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the mount namespace private: %w", err)
	}
	// Open every snapshot before the first mount: one may live under an
	// original (btrfs keeps them in the subvolume), where a mount made
	// before it is bound would hide it.
	fds := make([]int, len(s.Mounts))
	for i, m := range s.Mounts {
		fd, err := unix.Open(m.Snapshot, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", m.Snapshot, err)
		}
		fds[i] = fd
	}
	for _, i := range mountOrder(s.Mounts) {
		m := s.Mounts[i]
		if err := bindReadOnly("/proc/self/fd/"+strconv.Itoa(fds[i]), m.Original); err != nil {
			return fmt.Errorf("snapshot %s over %s: %w", m.Snapshot, m.Original, err)
		}
		unix.Close(fds[i])
	}
	// By path, now: the directory the path names may be a snapshot's.
	if err := unix.Chdir(s.Dir); err != nil {
		return fmt.Errorf("working directory %s, in the snapshots: %w", s.Dir, err)
	}
	return nil
}

// bindReadOnly binds src over dst and makes that mount read-only. A bind
// ignores MS_RDONLY when it is made; only a remount of the bind applies
// it, and that remount sets the per-mount flags to exactly those given,
// so noexec is carried over from the snapshot's mount. nosuid and nodev as
// for an exposed snapshot: it may keep an old setuid program or device
// node the live system has removed.
func bindReadOnly(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dst, &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	if st.Flags&unix.ST_NOEXEC != 0 {
		flags |= unix.MS_NOEXEC
	}
	if err := unix.Mount("", dst, "", flags, ""); err != nil {
		return fmt.Errorf("remount read-only: %w", err)
	}
	return nil
}
