package exec

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
)

const supported = true

// procAttr puts a command in a process group of its own, so that the
// whole tree it started can be killed at its deadline with one signal.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// killGroup kills the process group led by pid (pgid == pid by Setpgid).
// ESRCH (all gone already) is the normal case for a race and not an error.
func killGroup(pid int) { _ = unix.Kill(-pid, unix.SIGKILL) }

// mountOf describes the filesystem that holds path, for the commit's
// environment.
func mountOf(path string) (mount, error) {
	m, err := mountinfo.ForPath(path)
	if err != nil {
		return mount{}, err
	}
	return mount{point: m.MountPoint, source: m.Source, fstype: m.FSType, number: m.Device()}, nil
}

// onTmpfs reports whether dir is on a memory filesystem, which a freeze
// cannot block.
func onTmpfs(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}
