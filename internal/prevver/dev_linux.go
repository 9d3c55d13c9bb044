package prevver

import (
	"os"
	"syscall"
)

// sameFilesystem reports whether two paths are on one filesystem tree: the
// same device number, which btrfs gives each subvolume its own of, so a
// nested subvolume (empty in a snapshot of its parent) is another one.
func sameFilesystem(a, b os.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Dev == sb.Dev
}
