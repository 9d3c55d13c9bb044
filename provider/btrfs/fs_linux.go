//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package btrfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
)

// errNoBtrfs says a path is not on btrfs (or not a directory): not an
// error of the system, an answer.
var errNoBtrfs = errors.New("not a directory on btrfs")

func openDir(path string) (int, error) {
	return unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// locate says where a directory lives in btrfs: the innermost subvolume
// holding it, its path relative to that subvolume's root, and where that
// root is reachable in this mount namespace.
func locate(path string) (location, error) {
	fd, err := openDir(path)
	if errors.Is(err, unix.ENOTDIR) {
		return location{}, errNoBtrfs
	}
	if err != nil {
		return location{}, err
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return location{}, err
	}
	if uint64(sfs.Type) != uint64(unix.BTRFS_SUPER_MAGIC) {
		return location{}, errNoBtrfs
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return location{}, err
	}
	// Inode numbers are per subvolume: the tree the directory's inode
	// lives in is the innermost subvolume holding it.
	tree, rel, err := inoLookup(fd, 0, st.Ino)
	if err != nil {
		return location{}, fmt.Errorf("BTRFS_IOC_INO_LOOKUP: %w", err)
	}
	fi, err := fsInfo(fd)
	if err != nil {
		return location{}, fmt.Errorf("BTRFS_IOC_FS_INFO: %w", err)
	}
	loc := location{FSID: fi.FSID, Subvol: tree, Rel: strings.Trim(rel, "/"), Ino: st.Ino, Dev: st.Dev}
	loc.Root = reachableRoot(path, loc)
	return loc, nil
}

// reachableRoot finds the subvolume root by stripping the relative path
// from path. It checks the result, because a bind mount of a subdirectory
// makes the two disagree; "" means the root is not visible here.
func reachableRoot(path string, loc location) string {
	root := path
	if loc.Rel != "" {
		suffix := "/" + loc.Rel
		if !strings.HasSuffix(path, suffix) {
			return ""
		}
		root = strings.TrimSuffix(path, suffix)
		if root == "" {
			root = "/"
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil || st.Ino != firstFreeObjectID || st.Dev != loc.Dev {
		return ""
	}
	return root
}

// createSubvolume makes an empty subvolume parent/name with the given mode.
func createSubvolume(parent, name string, mode os.FileMode) error {
	fd, err := openDir(parent)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := subvolCreate(fd, name); err != nil {
		return fmt.Errorf("BTRFS_IOC_SUBVOL_CREATE %s: %w", filepath.Join(parent, name), err)
	}
	return os.Chmod(filepath.Join(parent, name), mode)
}

// snapshot is the commit: one ioctl, nothing else.
func snapshot(dst, src *os.File, name string) error {
	return snapCreate(int(dst.Fd()), int(src.Fd()), name)
}

// destroySubvolume deletes the subvolume at path; a missing one is not an
// error. It refuses anything that is not a read-only subvolume root, so a
// wrong handle can never delete live data.
func destroySubvolume(path string) error {
	ro, err := isReadOnlySubvolume(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !ro {
		return fmt.Errorf("%s: %w", path, errNotSnapshot)
	}
	fd, err := openDir(filepath.Dir(path))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := snapDestroy(fd, filepath.Base(path)); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("BTRFS_IOC_SNAP_DESTROY %s: %w", path, err)
	}
	return nil
}

// isReadOnlySubvolume reports whether path is the root of a read-only
// subvolume.
func isReadOnlySubvolume(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != firstFreeObjectID {
		return false, nil
	}
	fd, err := openDir(path)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return false, err
	}
	if uint64(sfs.Type) != uint64(unix.BTRFS_SUPER_MAGIC) {
		return false, nil
	}
	flags, err := subvolGetFlags(fd)
	if err != nil {
		return false, fmt.Errorf("BTRFS_IOC_SUBVOL_GETFLAGS %s: %w", path, err)
	}
	return flags&subvolRDOnly != 0, nil
}

// rootSubvolRDOnly is BTRFS_ROOT_SUBVOL_RDONLY, the read-only bit of a
// root item's flags, which BTRFS_IOC_GET_SUBVOL_INFO returns (the
// SUBVOL_GETFLAGS ioctl reports the same state as another bit).
const rootSubvolRDOnly = 1 << 0

// readOnlySnapshotInfo is isReadOnlySubvolume and subvolumeCreated in one
// open and one ioctl: Query asks both of every snapshot at every start of
// lvssd, and with 10,000 snapshots the second open and ioctl were a third
// of the start.
func readOnlySnapshotInfo(path string) (ro bool, created time.Time, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false, time.Time{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != firstFreeObjectID {
		return false, time.Time{}, nil
	}
	fd, err := openDir(path)
	if err != nil {
		return false, time.Time{}, err
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return false, time.Time{}, err
	}
	if uint64(sfs.Type) != uint64(unix.BTRFS_SUPER_MAGIC) {
		return false, time.Time{}, nil
	}
	info, err := getSubvolInfo(fd)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("BTRFS_IOC_GET_SUBVOL_INFO %s: %w", path, err)
	}
	return info.Flags&rootSubvolRDOnly != 0, info.Otime.time(), nil
}

// subvolumeCreated is the kernel's creation time of the subvolume at path.
func subvolumeCreated(path string) (time.Time, error) {
	fd, err := openDir(path)
	if err != nil {
		return time.Time{}, err
	}
	defer unix.Close(fd)
	info, err := getSubvolInfo(fd)
	if err != nil {
		return time.Time{}, fmt.Errorf("BTRFS_IOC_GET_SUBVOL_INFO %s: %w", path, err)
	}
	return info.Otime.time(), nil
}

// childSubvolumes lists the subvolumes nested directly in subvolume id,
// with their paths relative to its root. path is any directory on the
// same filesystem.
func childSubvolumes(path string, id uint64) ([]nested, error) {
	fd, err := openDir(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	refs, err := rootRefs(fd, id, id)
	if err != nil {
		return nil, fmt.Errorf("BTRFS_IOC_TREE_SEARCH: %w", err)
	}
	out := make([]nested, 0, len(refs))
	for _, r := range refs {
		_, dir, err := inoLookup(fd, id, r.DirID)
		if err != nil {
			return nil, fmt.Errorf("BTRFS_IOC_INO_LOOKUP: %w", err)
		}
		out = append(out, nested{ID: r.Child, DirIno: r.DirID, Rel: filepath.Join(strings.Trim(dir, "/"), r.Name)})
	}
	return out, nil
}

// freeBytes is the space an unprivileged writer could still use on the
// filesystem holding path.
func freeBytes(path string) (uint64, error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		return 0, err
	}
	return sfs.Bavail * uint64(sfs.Bsize), nil
}

// defaultDirs finds the .lvss-snapshots subvolumes reachable from the
// btrfs mounts of this namespace, also those of subvolumes that are not
// mount points themselves: one search of each filesystem's root tree gives
// every (parent, child, name) link, and a .lvss-snapshots child is
// resolved to a path by walking up to a mounted ancestor.
func defaultDirs() ([]string, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, err
	}
	type mounted struct {
		point string
		fd    int
	}
	// Per filesystem: one open mount per mounted subvolume root.
	byFS := map[[16]byte]map[uint64]mounted{}
	defer func() {
		for _, subs := range byFS {
			for _, m := range subs {
				unix.Close(m.fd)
			}
		}
	}()
	for _, m := range ms {
		if m.FSType != "btrfs" {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(m.MountPoint, &st) != nil || st.Ino != firstFreeObjectID {
			continue // a mount of a plain directory shows no subvolume root
		}
		fd, err := openDir(m.MountPoint)
		if err != nil {
			continue
		}
		tree, _, err1 := inoLookup(fd, 0, firstFreeObjectID)
		fi, err2 := fsInfo(fd)
		if err1 != nil || err2 != nil || byFS[fi.FSID] != nil && byFS[fi.FSID][tree].point != "" {
			unix.Close(fd)
			continue
		}
		if byFS[fi.FSID] == nil {
			byFS[fi.FSID] = map[uint64]mounted{}
		}
		byFS[fi.FSID][tree] = mounted{m.MountPoint, fd}
	}
	var out []string
	for _, subs := range byFS {
		var any int
		for _, m := range subs {
			any = m.fd
			break
		}
		refs, err := rootRefs(any, 0, ^uint64(0))
		if err != nil {
			return nil, fmt.Errorf("BTRFS_IOC_TREE_SEARCH: %w", err)
		}
		up := map[uint64]rootRef{} // child -> its link to the parent
		for _, r := range refs {
			up[r.Child] = r
		}
		var pathOf func(id uint64, depth int) string
		pathOf = func(id uint64, depth int) string {
			if m, ok := subs[id]; ok {
				return m.point
			}
			r, ok := up[id]
			if !ok || depth > 64 {
				return ""
			}
			parent := pathOf(r.Parent, depth+1)
			if parent == "" {
				return ""
			}
			_, dir, err := inoLookup(any, r.Parent, r.DirID)
			if err != nil {
				return ""
			}
			return filepath.Join(parent, dir, r.Name)
		}
		for _, r := range refs {
			if r.Name != defaultDirName || r.DirID != firstFreeObjectID {
				continue
			}
			p := pathOf(r.Child, 0)
			if p == "" {
				continue
			}
			// Check that the path really is that subvolume here (nothing
			// mounted over it, no stale link).
			if fd, err := openDir(p); err == nil {
				tree, _, err := inoLookup(fd, 0, firstFreeObjectID)
				unix.Close(fd)
				if err == nil && tree == r.Child {
					out = append(out, p)
				}
			}
		}
	}
	return out, nil
}

// snapshotMounts lists the mount points (innermost first) of btrfs mounts
// that show part of the snapshot named id: its exposures. The name of a
// snapshot is its GUID, so a path component equal to it identifies it.
func snapshotMounts(id string) ([]string, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, err
	}
	var out []string
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].FSType == "btrfs" && strings.Contains(ms[i].Root+"/", "/"+id+"/") {
			out = append(out, ms[i].MountPoint)
		}
	}
	return out, nil
}

// exposedAt reports whether the topmost mount at point shows the snapshot
// named id.
func exposedAt(point, id string) (bool, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return false, err
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].MountPoint == point {
			return ms[i].FSType == "btrfs" && strings.Contains(ms[i].Root+"/", "/"+id+"/"), nil
		}
	}
	return false, nil
}

// bindReadOnly mounts src at dst and makes that mount read-only. A bind
// mount ignores MS_RDONLY on creation; only a remount of the bind applies
// it. nosuid and nodev because a snapshot may keep an old setuid binary or
// device node that the live system has since removed.
func bindReadOnly(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s at %s: %w", src, dst, err)
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	if err := unix.Mount("", dst, "", flags, ""); err != nil {
		_ = unix.Unmount(dst, 0)
		return fmt.Errorf("remount %s read-only: %w", dst, err)
	}
	return nil
}

// unmountBusyFor is how long unmount retries a mount that is busy. A
// process that looks at every btrfs mount (another lvssd's start-up
// recovery listing snapshots, updatedb, a backup tool) holds one open for
// a moment; a mount that is really in use is still busy after it.
const unmountBusyFor = time.Second

// unmount detaches the mount at path; not mounted is not an error.
func unmount(path string) error {
	deadline := time.Now().Add(unmountBusyFor)
	for {
		err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// supported: this build has the btrfs ioctls.
func supported() error { return nil }

func accessW(path string) error { return unix.Access(path, unix.W_OK) }

// syncFS writes out the dirty data of the filesystem holding path and
// commits its transaction.
func syncFS(path string) error {
	fd, err := openDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// dirtyBytes is the system's dirty and under-writeback page cache
// (/proc/meminfo). When it cannot be read it reports "a lot", so that
// callers sync rather than skip.
func dirtyBytes() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 1 << 62
	}
	var total int64
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "Dirty:" || f[0] == "Writeback:") {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 1 << 62
			}
			total += kb << 10
		}
	}
	return total
}
