package procgroup

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Supported: process groups and statfs are available.
const Supported = true

// Attr puts a command in a process group of its own (pgid == pid).
func Attr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// Kill kills the process group led by pid. ESRCH (all gone already) is
// the normal outcome of a race and not an error.
func Kill(pid int) { _ = unix.Kill(-pid, unix.SIGKILL) }

// OnTmpfs reports whether dir is on a memory filesystem (tmpfs or ramfs).
func OnTmpfs(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}
