// Package inplace runs a backup tool (restic, borg, tar, rsync...) so that
// it reads each snapshot at its volume's original path: the mechanism of
// `lvss backup --in-place -- COMMAND [ARGS...]`.
//
// A tool that reads /srv/.lvss-snapshots/<ID> records that path, so every
// backup looks like a new tree (restic issue #2092) and a restore lands in
// the wrong place. Instead COMMAND runs in a mount namespace of its own in
// which every snapshot is bind-mounted, read-only, over its original path:
// it names and records /srv and reads the snapshot's content. Measured on a
// btrfs snapshot: restic records the original paths, borg records them
// without the leading "/", as it does for any path.
//
// # Use
//
//	func main() {
//		inplace.MaybeRunChild() // first thing: the hidden mode never returns
//		...
//	}
//
//	// Before the snapshot set is made: the user learns about a missing
//	// privilege before anything is frozen.
//	if err := inplace.Check(); err != nil { ... }
//	// After it is made:
//	cmd, err := inplace.Command(ctx, mounts, dir, argv, env)
//	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
//	err = cmd.Run() // release the snapshot set only after this returns
//
// # Why a re-exec with Unshareflags
//
// unshare(CLONE_NEWNS) in lvss itself would move only the calling thread:
// it implies CLONE_FS, which gives that thread a filesystem context of its
// own, while the other threads keep the host's, and goroutines move
// between threads, so mounts, opens and the exec would land in either
// namespace. So Command re-executes the running binary (/proc/self/exe,
// the same file even if it was replaced on disk since) with
// SysProcAttr.Unshareflags = CLONE_NEWNS: the kernel gives the child its
// namespace between fork and exec, before its runtime starts a second
// thread. The child, in the hidden mode (argv[1] == ChildArg), reads what
// to mount from argv[2] (JSON), sets the namespace up and execve's
// COMMAND (argv[3:], verbatim). COMMAND is then that very process: its
// exit status and the signals it gets are its own, with no intermediate
// process to forward or swallow them.
//
// # Why private propagation
//
// A new mount namespace starts as a copy whose shared mounts are still
// peers of the host's (systemd mounts / shared): a bind made under one of
// them would appear on the host too, over the live data, for every
// process. The child therefore makes every mount private (MS_REC |
// MS_PRIVATE on "/") before it mounts anything. Go's exec does the same
// after its unshare; the child does it again so that its safety does not
// rest on how it was started. It also refuses to mount anything unless its
// mount namespace differs from the one the parent recorded in the spec: a
// hidden mode started by hand, without the namespace, must not mount over
// the host's paths.
//
// # Why parents before children, and sources opened first
//
// When one original is inside another (/srv and /srv/db), the inner
// snapshot must be mounted after the outer one, on top of it, or the outer
// bind would hide it: mounts are made in order of path depth. And a
// snapshot often lives inside the volume it is a snapshot of (btrfs keeps
// them in the subvolume's .lvss-snapshots, which is an empty directory in
// the snapshots themselves): once /srv shows its snapshot,
// /srv/.lvss-snapshots/<ID of /srv/db> no longer resolves. So every
// snapshot is opened (O_PATH) before the first mount and bound from its
// descriptor; the originals, by contrast, are resolved at their mount, in
// the namespace as it is by then.
//
// Each bind is then remounted read-only, nosuid and nodev (a bind ignores
// MS_RDONLY when it is made; nosuid and nodev as for an exposed snapshot,
// which may keep an old setuid program or device node the live system has
// removed). The bind is not recursive: a mount below an original on the
// host is hidden by its snapshot, whose content at that place (an empty
// directory, for a nested btrfs subvolume) is what a snapshot has there,
// unless that path is an original of its own. For that reason "/" cannot
// be an original: COMMAND would lose /proc, /dev and every other mount.
//
// # Why chdir after the mounts
//
// A process's working directory is a reference to a directory, not a
// path: a cwd taken before the mounts (lvss's own, inherited) would stay
// in the live tree underneath the snapshot. The child changes to the
// working directory by path after the last mount, so a cwd under an
// original is the snapshot's, and relative paths in ARGS read the
// snapshot too. A working directory that does not exist in the snapshot is
// a set-up failure, not a silent fallback: relative paths would then read
// something else.
//
// # Exit status
//
// The hidden mode exits with its own status only when COMMAND was never
// started, after one line on standard error that begins "lvss: --in-place:"
// and says what failed. The codes are those of env(1) and chroot(1):
//
//	ExitSetup     125  the namespace, a mount, the working directory or the spec failed
//	ExitCannotRun 126  COMMAND was found but could not be run (not executable, bad format)
//	ExitNotFound  127  COMMAND was not found (in PATH, or at the path given)
//
// Otherwise the status is COMMAND's own. As with env(1), a COMMAND that
// itself exits 125 to 127 cannot be told apart; the message on standard
// error can.
//
// # Privilege
//
// Making a mount namespace and mounting in it need CAP_SYS_ADMIN. Check
// (and Command) read CapEff from /proc/self/status and return
// ErrNoCapability, which says so and names the way out, before anything
// starts; a kernel that refuses anyway (a seccomp or LSM policy, a
// capability dropped on the way) gives EPERM in the child, which exits
// ExitSetup with the same message.
//
// # Signals and process groups
//
// Command's cmd is an exec.CommandContext: when ctx is done, Cancel sends
// SIGTERM (and SIGCONT, so that a stopped COMMAND can act on it) through
// Signal, and after StopGrace (cmd.WaitDelay) exec kills COMMAND's own
// process with SIGKILL and stops waiting for its output. The caller ends
// COMMAND by cancelling ctx (lvss's main cancels it on SIGINT and
// SIGTERM), or by Signal; after Wait, Signal(cmd, syscall.SIGKILL) ends
// whatever of COMMAND's group outlived it (os.ErrProcessDone: nothing
// did). It does not signal cmd.Process itself, because where COMMAND's
// tree is depends on the process group:
//
//   - When lvss is not the foreground job of a terminal (cron, systemd, a
//     pipe, a test), COMMAND leads a process group of its own (Setpgid),
//     and Signal signals the group: a COMMAND that is a shell script
//     stops with everything it started.
//   - When lvss is the foreground job of its terminal, COMMAND stays in
//     lvss's process group, as if the shell had started it: it may read
//     the terminal (restic and borg prompt for passwords there; a
//     background group that tries is stopped by SIGTTIN or SIGTTOU, and
//     the backup would hang silently), and Ctrl-C reaches it directly from
//     the terminal. Signal then signals COMMAND alone.
//
// The caller may set cmd.SysProcAttr.Setpgid itself before Start; Signal
// and Cancel follow what it says. Whatever ends COMMAND, the snapshots must
// stay until Wait has returned: they are what COMMAND is reading.
//
// Linux only; elsewhere Check and Command return an error and
// MaybeRunChild does nothing.
package inplace
