//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package btrfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's btrfs ioctl interface (include/uapi/linux/btrfs.h and
// btrfs_tree.h). golang.org/x/sys has neither the request numbers nor the
// argument structs, so the few this provider uses are declared here. The
// build is limited to 64-bit architectures with the generic _IOC layout
// (direction in bits 30-31, size in 16-29), where Go lays these structs out
// exactly as C does; TestIoctlABI checks sizes and numbers against the
// running kernel.

const (
	iocWrite     = 1
	iocRead      = 2
	iocDirShift  = 30
	iocSizeShift = 16
	iocTypeShift = 8
	btrfsMagic   = 0x94
)

// Argument structs, field for field as in the uapi header. Unions keep
// their largest member.
type (
	// struct btrfs_ioctl_vol_args
	volArgs struct {
		Fd   int64
		Name [4087 + 1]byte // BTRFS_PATH_NAME_MAX + 1
	}

	// struct btrfs_ioctl_vol_args_v2; the trailing union is name/devid/subvolid.
	volArgsV2 struct {
		Fd      int64
		Transid uint64
		Flags   uint64
		Unused  [4]uint64 // union with {size, qgroup_inherit *}
		Name    [4039 + 1]byte
	}

	// struct btrfs_ioctl_ino_lookup_args
	inoLookupArgs struct {
		TreeID   uint64
		ObjectID uint64
		Name     [4080]byte // BTRFS_INO_LOOKUP_PATH_MAX
	}

	// struct btrfs_ioctl_search_key
	searchKey struct {
		TreeID      uint64
		MinObjectID uint64
		MaxObjectID uint64
		MinOffset   uint64
		MaxOffset   uint64
		MinTransid  uint64
		MaxTransid  uint64
		MinType     uint32
		MaxType     uint32
		NrItems     uint32
		_           uint32
		_           [4]uint64
	}

	// struct btrfs_ioctl_search_args
	searchArgs struct {
		Key searchKey
		Buf [4096 - unsafe.Sizeof(searchKey{})]byte
	}

	// struct btrfs_ioctl_search_header
	searchHeader struct {
		Transid  uint64
		ObjectID uint64
		Offset   uint64
		Type     uint32
		Len      uint32
	}

	// struct btrfs_ioctl_timespec (padded to 16 bytes, as C pads it on 64-bit)
	ioctlTimespec struct {
		Sec  uint64
		Nsec uint32
		_    uint32
	}

	// struct btrfs_ioctl_get_subvol_info_args
	subvolInfoArgs struct {
		TreeID       uint64
		Name         [255 + 1]byte
		ParentID     uint64
		DirID        uint64
		Generation   uint64
		Flags        uint64
		UUID         [16]byte
		ParentUUID   [16]byte
		ReceivedUUID [16]byte
		Ctransid     uint64
		Otransid     uint64
		Stransid     uint64
		Rtransid     uint64
		Ctime        ioctlTimespec
		Otime        ioctlTimespec
		Stime        ioctlTimespec
		Rtime        ioctlTimespec
		_            [8]uint64
	}

	// struct btrfs_ioctl_fs_info_args
	fsInfoArgs struct {
		MaxID          uint64
		NumDevices     uint64
		FSID           [16]byte
		NodeSize       uint32
		SectorSize     uint32
		CloneAlignment uint32
		CsumType       uint16
		CsumSize       uint16
		Flags          uint64
		Generation     uint64
		MetadataUUID   [16]byte
		_              [944]byte
	}
)

// Request numbers: _IOW/_IOR/_IOWR(BTRFS_IOCTL_MAGIC, nr, type).
const (
	iocSubvolCreate   = iocWrite<<iocDirShift | uint(unsafe.Sizeof(volArgs{}))<<iocSizeShift | btrfsMagic<<iocTypeShift | 14
	iocSnapDestroy    = iocWrite<<iocDirShift | uint(unsafe.Sizeof(volArgs{}))<<iocSizeShift | btrfsMagic<<iocTypeShift | 15
	iocTreeSearch     = (iocRead|iocWrite)<<iocDirShift | uint(unsafe.Sizeof(searchArgs{}))<<iocSizeShift | btrfsMagic<<iocTypeShift | 17
	iocInoLookup      = (iocRead|iocWrite)<<iocDirShift | uint(unsafe.Sizeof(inoLookupArgs{}))<<iocSizeShift | btrfsMagic<<iocTypeShift | 18
	iocSnapCreateV2   = iocWrite<<iocDirShift | uint(unsafe.Sizeof(volArgsV2{}))<<iocSizeShift | btrfsMagic<<iocTypeShift | 23
	iocSubvolGetFlags = iocRead<<iocDirShift | 8<<iocSizeShift | btrfsMagic<<iocTypeShift | 25
	iocFSInfo         = iocRead<<iocDirShift | uint(unsafe.Sizeof(fsInfoArgs{}))<<iocSizeShift | btrfsMagic<<iocTypeShift | 31
	iocGetSubvolInfo  = iocRead<<iocDirShift | uint(unsafe.Sizeof(subvolInfoArgs{}))<<iocSizeShift | btrfsMagic<<iocTypeShift | 60
)

const (
	subvolRDOnly = 1 << 1 // BTRFS_SUBVOL_RDONLY (ioctl flags, not root item flags)

	firstFreeObjectID = 256 // BTRFS_FIRST_FREE_OBJECTID: the root directory inode of every subvolume
	rootTreeObjectID  = 1   // BTRFS_ROOT_TREE_OBJECTID: the tree of tree roots
	rootRefKey        = 156 // BTRFS_ROOT_REF_KEY: (parent, ROOT_REF, child) -> struct btrfs_root_ref
	rootRefSize       = 18  // sizeof(struct btrfs_root_ref), packed: dirid, sequence, name_len
)

func ioctl(fd int, req uint, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// setName copies a NUL-terminated name into an ioctl buffer.
func setName(dst []byte, name string) error {
	if len(name) >= len(dst) || bytes.IndexByte([]byte(name), 0) >= 0 {
		return fmt.Errorf("invalid subvolume name %q", name)
	}
	copy(dst, name)
	return nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// snapCreate makes a read-only snapshot of the subvolume that holds src,
// named name inside the directory dst (both open file descriptors on the
// same btrfs).
func snapCreate(dst, src int, name string) error {
	var a volArgsV2
	a.Fd = int64(src)
	a.Flags = subvolRDOnly
	if err := setName(a.Name[:], name); err != nil {
		return err
	}
	return ioctl(dst, iocSnapCreateV2, unsafe.Pointer(&a))
}

// snapCreateWritable makes a writable snapshot of the subvolume that
// holds src, named name inside the directory dst (revert's new volume).
func snapCreateWritable(dst, src int, name string) error {
	var a volArgsV2
	a.Fd = int64(src)
	if err := setName(a.Name[:], name); err != nil {
		return err
	}
	return ioctl(dst, iocSnapCreateV2, unsafe.Pointer(&a))
}

// subvolCreate makes an empty subvolume named name inside directory dir.
func subvolCreate(dir int, name string) error {
	var a volArgs
	if err := setName(a.Name[:], name); err != nil {
		return err
	}
	return ioctl(dir, iocSubvolCreate, unsafe.Pointer(&a))
}

// snapDestroy deletes the subvolume named name inside directory dir.
func snapDestroy(dir int, name string) error {
	var a volArgs
	if err := setName(a.Name[:], name); err != nil {
		return err
	}
	return ioctl(dir, iocSnapDestroy, unsafe.Pointer(&a))
}

// inoLookup returns the id of the subvolume (tree) treeID, or of the one fd
// lives in when treeID is 0, and the path of inode objectID relative to
// that subvolume's root, with a trailing slash ("" for the root itself).
// Any objectID but the root directory needs CAP_SYS_ADMIN.
func inoLookup(fd int, treeID, objectID uint64) (uint64, string, error) {
	a := inoLookupArgs{TreeID: treeID, ObjectID: objectID}
	if err := ioctl(fd, iocInoLookup, unsafe.Pointer(&a)); err != nil {
		return 0, "", err
	}
	return a.TreeID, cString(a.Name[:]), nil
}

func subvolGetFlags(fd int) (uint64, error) {
	var f uint64
	err := ioctl(fd, iocSubvolGetFlags, unsafe.Pointer(&f))
	return f, err
}

func getSubvolInfo(fd int) (subvolInfoArgs, error) {
	var a subvolInfoArgs
	err := ioctl(fd, iocGetSubvolInfo, unsafe.Pointer(&a))
	return a, err
}

func (t ioctlTimespec) time() time.Time { return time.Unix(int64(t.Sec), int64(t.Nsec)).UTC() }

func fsInfo(fd int) (fsInfoArgs, error) {
	var a fsInfoArgs
	err := ioctl(fd, iocFSInfo, unsafe.Pointer(&a))
	return a, err
}

// rootRef is one ROOT_REF item of the root tree: subvolume Child sits in
// directory DirID of subvolume Parent under Name.
type rootRef struct {
	Parent, Child, DirID uint64
	Name                 string
}

// rootRefs lists the ROOT_REF items whose parent subvolume id is in
// [minParent, maxParent] (needs CAP_SYS_ADMIN). fd is any file on the
// filesystem.
func rootRefs(fd int, minParent, maxParent uint64) ([]rootRef, error) {
	var a searchArgs
	k := &a.Key
	k.TreeID = rootTreeObjectID
	k.MinObjectID, k.MaxObjectID = minParent, maxParent
	k.MinType, k.MaxType = rootRefKey, rootRefKey
	k.MinOffset, k.MaxOffset = 0, ^uint64(0)
	k.MinTransid, k.MaxTransid = 0, ^uint64(0)
	var out []rootRef
	for {
		k.NrItems = 4096
		if err := ioctl(fd, iocTreeSearch, unsafe.Pointer(&a)); err != nil {
			return nil, err
		}
		if k.NrItems == 0 {
			return out, nil
		}
		var last searchHeader
		buf := a.Buf[:]
		for i := uint32(0); i < k.NrItems; i++ {
			hsz := int(unsafe.Sizeof(searchHeader{}))
			if len(buf) < hsz {
				return nil, fmt.Errorf("tree search: truncated result")
			}
			h := *(*searchHeader)(unsafe.Pointer(&buf[0]))
			buf = buf[hsz:]
			if int(h.Len) > len(buf) {
				return nil, fmt.Errorf("tree search: truncated item")
			}
			item := buf[:h.Len]
			buf = buf[h.Len:]
			last = h
			// The search range is a range of whole keys, so other item
			// types of the objectids in between come back too.
			if h.Type != rootRefKey || len(item) < rootRefSize {
				continue
			}
			n := int(binary.LittleEndian.Uint16(item[16:18]))
			if rootRefSize+n > len(item) {
				continue
			}
			out = append(out, rootRef{
				Parent: h.ObjectID, Child: h.Offset,
				DirID: binary.LittleEndian.Uint64(item[0:8]),
				Name:  string(item[rootRefSize : rootRefSize+n]),
			})
		}
		// Continue after the last key returned.
		switch {
		case last.Offset < ^uint64(0):
			k.MinObjectID, k.MinType, k.MinOffset = last.ObjectID, last.Type, last.Offset+1
		case last.Type < 255:
			k.MinObjectID, k.MinType, k.MinOffset = last.ObjectID, last.Type+1, 0
		case last.ObjectID < ^uint64(0):
			k.MinObjectID, k.MinType, k.MinOffset = last.ObjectID+1, 0, 0
		default:
			return out, nil
		}
		if k.MinObjectID > maxParent || k.MinObjectID == maxParent && k.MinType > rootRefKey {
			return out, nil
		}
	}
}
