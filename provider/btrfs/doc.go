// Package btrfs is the lvss snapshot provider for btrfs subvolumes.
//
// A volume is a btrfs subvolume or any directory inside one. The provider
// snapshots the innermost subvolume that holds the volume path (the one
// whose tree the directory's inode lives in), read-only, with one
// BTRFS_IOC_SNAP_CREATE_V2 per volume. Because btrfs commits each snapshot
// in its own transaction, a set of several subvolumes is several instants:
// Info.SetAtomic is false and the coordinator tells writers so (D15). The
// snapshot's DevicePath is the volume's own directory inside the
// snapshot, so a file of the volume is found at DevicePath plus its path
// relative to the volume, whichever directory of the subvolume was named.
//
// The provider talks to the kernel only: its ioctls are defined here from
// the kernel's uapi header (linux/btrfs.h), and btrfs-progs is not needed at
// run time. It never freezes a filesystem: a btrfs snapshot is atomic on
// its own, and the kernel blocks snapshot creation on a frozen btrfs, so
// FIFREEZE would only turn a fast commit into a hang.
//
// Where snapshots live, how they are found again after a restart, nested
// subvolumes, exposure and errors are described in docs/provider-btrfs.md.
package btrfs
