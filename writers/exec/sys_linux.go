package exec

import (
	"syscall"

	"golang.org/x/sys/unix"
)

const supported = true

// procAttr puts a hook in a process group of its own, so that at its
// timeout the whole tree it started is killed with one signal.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// killGroup kills the process group led by pid (pgid == pid by Setpgid).
// ESRCH, everything gone already, is the normal outcome of a race.
func killGroup(pid int) { _ = unix.Kill(-pid, unix.SIGKILL) }

// onTmpfs reports whether dir is on a memory filesystem, which no freeze
// can block.
func onTmpfs(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}
