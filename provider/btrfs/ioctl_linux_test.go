//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package btrfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"
)

// TestIoctlABI checks the declared structs and request numbers twice: the
// sizes and numbers against the values of the kernel's uapi header
// (linux/btrfs.h on 64-bit), and each ioctl against the running kernel on a
// loop btrfs, where a wrong size or number fails with ENOTTY and a wrong
// layout returns nonsense that the checks below catch (cross-checked with
// btrfs-progs where it reports the same facts).
func TestIoctlABI(t *testing.T) {
	sizes := []struct {
		name      string
		got, want uintptr
	}{
		{"btrfs_ioctl_vol_args", unsafe.Sizeof(volArgs{}), 4096},
		{"btrfs_ioctl_vol_args_v2", unsafe.Sizeof(volArgsV2{}), 4096},
		{"btrfs_ioctl_ino_lookup_args", unsafe.Sizeof(inoLookupArgs{}), 4096},
		{"btrfs_ioctl_search_key", unsafe.Sizeof(searchKey{}), 104},
		{"btrfs_ioctl_search_args", unsafe.Sizeof(searchArgs{}), 4096},
		{"btrfs_ioctl_search_header", unsafe.Sizeof(searchHeader{}), 32},
		{"btrfs_ioctl_get_subvol_info_args", unsafe.Sizeof(subvolInfoArgs{}), 504},
		{"btrfs_ioctl_get_subvol_info_args.otime offset", unsafe.Offsetof(subvolInfoArgs{}.Otime), 392},
		{"btrfs_ioctl_fs_info_args", unsafe.Sizeof(fsInfoArgs{}), 1024},
		{"btrfs_ioctl_vol_args_v2.name offset", unsafe.Offsetof(volArgsV2{}.Name), 56},
	}
	for _, s := range sizes {
		if s.got != s.want {
			t.Errorf("%s: %d bytes, the kernel's is %d", s.name, s.got, s.want)
		}
	}
	numbers := []struct {
		name      string
		got, want uint
	}{
		{"BTRFS_IOC_SUBVOL_CREATE", iocSubvolCreate, 0x5000940e},
		{"BTRFS_IOC_SNAP_DESTROY", iocSnapDestroy, 0x5000940f},
		{"BTRFS_IOC_TREE_SEARCH", iocTreeSearch, 0xd0009411},
		{"BTRFS_IOC_INO_LOOKUP", iocInoLookup, 0xd0009412},
		{"BTRFS_IOC_SNAP_CREATE_V2", iocSnapCreateV2, 0x50009417},
		{"BTRFS_IOC_SUBVOL_GETFLAGS", iocSubvolGetFlags, 0x80089419},
		{"BTRFS_IOC_FS_INFO", iocFSInfo, 0x8400941f},
		{"BTRFS_IOC_GET_SUBVOL_INFO", iocGetSubvolInfo, 0x81f8943c},
	}
	for _, n := range numbers {
		if n.got != n.want {
			t.Errorf("%s = %#x, the kernel's is %#x", n.name, n.got, n.want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	mnt := newBtrfs(t)
	open := func(path string) int {
		t.Helper()
		fd, err := openDir(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	top := open(mnt)

	// SUBVOL_CREATE: a subvolume root is inode 256.
	if err := subvolCreate(top, "sv"); err != nil {
		t.Fatalf("BTRFS_IOC_SUBVOL_CREATE: %v", err)
	}
	sv := filepath.Join(mnt, "sv")
	var st unix.Stat_t
	if err := unix.Stat(sv, &st); err != nil || st.Ino != firstFreeObjectID {
		t.Fatalf("new subvolume: ino %d, %v", st.Ino, err)
	}
	svfd := open(sv)

	// INO_LOOKUP: the tree id matches btrfs-progs, the path of a nested
	// directory comes back relative to the subvolume root.
	id, rel, err := inoLookup(svfd, 0, firstFreeObjectID)
	if err != nil || rel != "" {
		t.Fatalf("BTRFS_IOC_INO_LOOKUP of the root: %d %q %v", id, rel, err)
	}
	if want := progsSubvolID(t, sv); id != want {
		t.Fatalf("BTRFS_IOC_INO_LOOKUP: tree %d, btrfs-progs says %d", id, want)
	}
	deep := mkdir(t, filepath.Join(sv, "a", "b"))
	if err := unix.Stat(deep, &st); err != nil {
		t.Fatal(err)
	}
	if tree, rel, err := inoLookup(svfd, 0, st.Ino); err != nil || tree != id || rel != "a/b/" {
		t.Fatalf("BTRFS_IOC_INO_LOOKUP of a/b: %d %q %v", tree, rel, err)
	}

	// FS_INFO: one fsid for the whole filesystem, the one btrfs-progs shows.
	fiTop, err1 := fsInfo(top)
	fiSv, err2 := fsInfo(svfd)
	if err1 != nil || err2 != nil || fiTop.FSID != fiSv.FSID || fiTop.FSID == [16]byte{} || fiTop.SectorSize == 0 {
		t.Fatalf("BTRFS_IOC_FS_INFO: %x %x %v %v", fiTop.FSID, fiSv.FSID, err1, err2)
	}
	if want := progsFSID(t, mnt); want != "" && uuid.UUID(fiTop.FSID).String() != want {
		t.Fatalf("BTRFS_IOC_FS_INFO fsid %s, btrfs-progs says %s", uuid.UUID(fiTop.FSID).String(), want)
	}

	// GET_SUBVOL_INFO: id, name, parent, creation time.
	info, err := getSubvolInfo(svfd)
	if err != nil {
		t.Fatalf("BTRFS_IOC_GET_SUBVOL_INFO: %v", err)
	}
	if info.TreeID != id || cString(info.Name[:]) != "sv" || info.ParentID != 5 || info.DirID != firstFreeObjectID {
		t.Fatalf("BTRFS_IOC_GET_SUBVOL_INFO: tree %d name %q parent %d dir %d", info.TreeID, cString(info.Name[:]), info.ParentID, info.DirID)
	}
	if d := time.Since(info.Otime.time()); d < -time.Minute || d > time.Minute {
		t.Fatalf("BTRFS_IOC_GET_SUBVOL_INFO: otime %v is not now", info.Otime.time())
	}

	// SNAP_CREATE_V2 read-only: GETFLAGS says so, writes are refused, the
	// snapshot's parent_uuid is the source's uuid.
	write(t, filepath.Join(sv, "f"), "data")
	if err := snapCreate(top, svfd, "snap"); err != nil {
		t.Fatalf("BTRFS_IOC_SNAP_CREATE_V2: %v", err)
	}
	snap := filepath.Join(mnt, "snap")
	snapfd := open(snap)
	flags, err := subvolGetFlags(snapfd)
	if err != nil || flags&subvolRDOnly == 0 {
		t.Fatalf("BTRFS_IOC_SUBVOL_GETFLAGS: %#x %v", flags, err)
	}
	if flags, err := subvolGetFlags(svfd); err != nil || flags&subvolRDOnly != 0 {
		t.Fatalf("BTRFS_IOC_SUBVOL_GETFLAGS of the source: %#x %v", flags, err)
	}
	if err := os.WriteFile(filepath.Join(snap, "g"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("write into a read-only snapshot: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(snap, "f")); err != nil || string(b) != "data" {
		t.Fatalf("snapshot content: %q %v", b, err)
	}
	sinfo, err := getSubvolInfo(snapfd)
	if err != nil || sinfo.ParentUUID != info.UUID || sinfo.TreeID == id {
		t.Fatalf("snapshot info: parent uuid %x, source uuid %x, %v", sinfo.ParentUUID, info.UUID, err)
	}

	// TREE_SEARCH: the root tree's ROOT_REF items name both subvolumes of
	// the top level, and a nested one with the directory it sits in.
	if err := subvolCreate(open(deep), "n"); err != nil {
		t.Fatal(err)
	}
	refs, err := rootRefs(top, 5, 5)
	if err != nil {
		t.Fatalf("BTRFS_IOC_TREE_SEARCH: %v", err)
	}
	names := map[string]uint64{}
	for _, r := range refs {
		if r.Parent != 5 || r.DirID != firstFreeObjectID {
			t.Fatalf("unexpected ref %+v", r)
		}
		names[r.Name] = r.Child
	}
	if names["sv"] != id || names["snap"] != sinfo.TreeID || len(names) != 2 {
		t.Fatalf("BTRFS_IOC_TREE_SEARCH refs of the top level: %v", names)
	}
	kids, err := childSubvolumes(sv, id)
	if err != nil || len(kids) != 1 || kids[0].Rel != "a/b/n" || kids[0].ID != progsSubvolID(t, filepath.Join(deep, "n")) {
		t.Fatalf("nested subvolumes of sv: %+v %v", kids, err)
	}
	all, err := rootRefs(top, 0, ^uint64(0))
	if err != nil || len(all) != 3 {
		t.Fatalf("all refs: %+v %v", all, err)
	}

	// SNAP_DESTROY: gone.
	if err := snapDestroy(top, "snap"); err != nil {
		t.Fatalf("BTRFS_IOC_SNAP_DESTROY: %v", err)
	}
	if _, err := os.Stat(snap); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("destroyed snapshot still there: %v", err)
	}
}

func progsSubvolID(t *testing.T, path string) uint64 {
	t.Helper()
	out, err := exec.Command("btrfs", "inspect-internal", "rootid", path).Output()
	if err != nil {
		t.Fatalf("btrfs inspect-internal rootid %s: %v", path, err)
	}
	n, err := strconv.ParseUint(string(regexp.MustCompile(`\d+`).Find(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func progsFSID(t *testing.T, path string) string {
	out, err := exec.Command("btrfs", "filesystem", "show", path).Output()
	if err != nil {
		t.Logf("btrfs filesystem show: %v", err)
		return ""
	}
	m := regexp.MustCompile(`uuid: ([0-9a-f-]{36})`).FindSubmatch(out)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// TestRootRefsPages: the root tree of a filesystem with many subvolumes
// takes many 4 KiB search rounds (its ROOT_ITEMs are large); none of the
// links may be lost or repeated between rounds.
func TestRootRefsPages(t *testing.T) {
	mnt := newBtrfs(t)
	parent := subvol(t, filepath.Join(mnt, "p"))
	want := map[string]bool{"p": true}
	for i := range 150 {
		name := "s" + strconv.Itoa(i)
		dir := mnt
		if i%2 == 1 {
			dir = parent
		}
		subvol(t, filepath.Join(dir, name))
		want[name] = true
	}
	fd, err := openDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	refs, err := rootRefs(fd, 0, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range refs {
		if got[r.Name] {
			t.Fatalf("%s listed twice", r.Name)
		}
		got[r.Name] = true
	}
	if len(got) != len(want) {
		t.Fatalf("%d links, want %d", len(got), len(want))
	}
	id := progsSubvolID(t, parent)
	kids, err := childSubvolumes(parent, id)
	if err != nil || len(kids) != 75 {
		t.Fatalf("children of p: %d %v", len(kids), err)
	}
}
