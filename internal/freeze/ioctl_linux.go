package freeze

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
)

// FIFREEZE and FITHAW are _IOWR('X', 119, int) and _IOWR('X', 120, int)
// in <linux/fs.h>; x/sys/unix has no names for them. The encoding below is
// asm-generic's (dir in bits 30-31, read|write = 3, size in bits 16-29).
// powerpc, mips and sparc put dir in bits 29-31 with read|write = 6, which
// yields the same number for a 4-byte argument, so one definition serves
// every architecture. TestIoctlNumbersAgainstKernel checks them on the
// running kernel.
const (
	iocWrite     = 1
	iocRead      = 2
	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = 30
	sizeofInt    = 4

	fiFreeze uint = (iocRead|iocWrite)<<iocDirShift | sizeofInt<<iocSizeShift | 'X'<<iocTypeShift | 119
	fiThaw   uint = (iocRead|iocWrite)<<iocDirShift | sizeofInt<<iocSizeShift | 'X'<<iocTypeShift | 120
)

func fifreeze(fd int) error { return unix.IoctlSetInt(fd, fiFreeze, 0) }
func fithaw(fd int) error   { return unix.IoctlSetInt(fd, fiThaw, 0) }

// openNoWrite opens a path for the ioctls without any chance of a write or
// a side effect: read-only, no controlling terminal, and non-blocking so a
// FIFO that slipped past the type check cannot hang the guard.
func openNoWrite(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// fdMount is what statx says about an open file: its type and, on kernels
// since 5.8, the ID of the mount it was reached through — the same ID as
// mountinfo's first field, so it names the mount exactly, even where a
// longest-prefix match on mount points would be fooled (stacked mounts,
// bind mounts, a path whose mount point was overmounted).
type fdMount struct {
	mntID   uint64
	hasMnt  bool
	regOrDr bool // a directory or a regular file: the only things we open
}

func statFD(fd int) (fdMount, error) {
	var st unix.Statx_t
	err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_SYNC_AS_STAT, unix.STATX_TYPE|unix.STATX_MNT_ID, &st)
	if err != nil {
		return fdMount{}, err
	}
	t := st.Mode & unix.S_IFMT
	return fdMount{
		mntID: st.Mnt_id, hasMnt: st.Mask&unix.STATX_MNT_ID != 0,
		regOrDr: t == unix.S_IFDIR || t == unix.S_IFREG,
	}, nil
}

// mountOf returns the mount an open fd was reached through: by mount ID
// where the kernel gives one, by path otherwise.
func mountOf(ms []mountinfo.Mount, fm fdMount, path string) (mountinfo.Mount, error) {
	if fm.hasMnt {
		for _, m := range ms {
			if uint64(m.ID) == fm.mntID {
				return m, nil
			}
		}
	}
	return mountinfo.Find(ms, path)
}

// mountOfPath is mountOf for a path without keeping it open.
func mountOfPath(ms []mountinfo.Mount, path string) (mountinfo.Mount, error) {
	fd, err := openNoWrite(path)
	if err != nil {
		return mountinfo.Mount{}, err
	}
	defer unix.Close(fd)
	fm, err := statFD(fd)
	if err != nil {
		return mountinfo.Mount{}, err
	}
	return mountOf(ms, fm, path)
}

// errnoText names the errors FIFREEZE and FITHAW give, for messages a human
// reads at 3 a.m.
func errnoText(op string, err error) string {
	switch {
	case errors.Is(err, unix.EBUSY) && op == "FIFREEZE":
		return "already frozen by someone else (EBUSY)"
	case errors.Is(err, unix.EINVAL) && op == "FITHAW":
		return "not frozen (EINVAL)"
	case errors.Is(err, unix.EOPNOTSUPP):
		return "the filesystem cannot be frozen (EOPNOTSUPP)"
	case errors.Is(err, unix.EPERM):
		return "CAP_SYS_ADMIN is required (EPERM)"
	}
	return fmt.Sprintf("%s: %v", op, err)
}
