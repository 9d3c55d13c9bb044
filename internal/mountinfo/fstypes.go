package mountinfo

import "strings"

// What lvss knows about filesystem types, for lvss doctor: which mounts
// hold data someone might back up, and which the kernel can freeze.

// pseudo are filesystem types that hold no data of their own to back up:
// kernel interfaces, and memory-backed filesystems whose content is gone
// at reboot (tmpfs, ramfs). lvss doctor leaves them out of its volume
// list unless a provider's configuration names one.
var pseudo = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true, "ramfs": true,
	"cgroup": true, "cgroup2": true, "mqueue": true, "debugfs": true, "tracefs": true,
	"securityfs": true, "pstore": true, "bpf": true, "configfs": true, "fusectl": true,
	"hugetlbfs": true, "autofs": true, "binfmt_misc": true, "efivarfs": true, "nsfs": true,
	"rpc_pipefs": true, "selinuxfs": true, "overlay": true, "squashfs": true, "iso9660": true,
	"nfsd": true, "sockfs": true, "pipefs": true, "anon_inodefs": true, "rootfs": true,
	"fuse.portal": true, "fuse.gvfsd-fuse": true, "fuse.lxcfs": true, "binder": true,
}

// Pseudo reports whether a filesystem type holds no data of its own worth
// a snapshot: kernel interfaces (proc, sysfs, cgroup...), memory-backed
// filesystems (tmpfs), read-only images (squashfs, iso9660) and overlay
// mounts, whose data lives on the filesystems below them.
func Pseudo(fstype string) bool { return pseudo[fstype] }

// Freeze is whether the kernel can freeze (FIFREEZE) a filesystem type.
type Freeze string

// The answers FreezeSupport gives.
const (
	FreezeSupported   Freeze = "supported"
	FreezeUnsupported Freeze = "unsupported"
	FreezeUnknown     Freeze = "unknown"
)

// frozenBy are the types whose kernel driver implements freeze_fs or
// freeze_super, the operations FIFREEZE needs (fs/ioctl.c: without either
// it fails with EOPNOTSUPP). ext2 and ext3 are served by the ext4 driver
// on current kernels. btrfs, ext4 and xfs are checked against the running
// kernel by internal/freeze's tests.
var frozenBy = map[string]bool{
	"btrfs": true, "ext2": true, "ext3": true, "ext4": true, "xfs": true, "f2fs": true,
	"jfs": true, "nilfs2": true, "reiserfs": true, "gfs2": true,
}

// notFrozen are types known to refuse FIFREEZE (no freeze operation):
// memory-backed, FAT-family, network and FUSE filesystems, and read-only
// images.
var notFrozen = map[string]bool{
	"tmpfs": true, "ramfs": true, "vfat": true, "msdos": true, "exfat": true, "ntfs": true,
	"ntfs3": true, "overlay": true, "nfs": true, "nfs4": true, "cifs": true, "smb3": true,
	"9p": true, "virtiofs": true, "squashfs": true, "iso9660": true, "udf": true, "erofs": true,
	"devtmpfs": true, "proc": true, "sysfs": true,
}

// FreezeSupport says whether the kernel can freeze a filesystem of this
// type with FIFREEZE, which providers that copy from outside the
// filesystem (exec) need, and why. It knows the common types; for others
// it says it does not know: a freeze then tells (VSS_E_VOLUME_NOT_SUPPORTED
// when the kernel refuses). It never freezes anything to find out.
func FreezeSupport(fstype string) (Freeze, string) {
	switch {
	case frozenBy[fstype]:
		return FreezeSupported, "the " + fstype + " driver implements FIFREEZE"
	case notFrozen[fstype] || strings.HasPrefix(fstype, "fuse"):
		return FreezeUnsupported, "the kernel cannot freeze " + fstype + " (FIFREEZE fails with EOPNOTSUPP)"
	}
	return FreezeUnknown, "lvss does not know whether the kernel can freeze " + fstype + "; a freeze attempt fails with VSS_E_VOLUME_NOT_SUPPORTED if it cannot"
}
