package mountinfo

import (
	"os"
	"strings"
	"testing"
)

const sample = `22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
25 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 25 0:45 /@data /srv/data rw,relatime shared:20 - btrfs /dev/loop0 rw,space_cache=v2,subvolid=256,subvol=/@data
41 25 0:45 /@logs /srv/my\040logs rw,relatime shared:21 - btrfs /dev/loop0 rw,subvolid=257,subvol=/@logs
42 40 7:1 / /srv/data/inner ro,relatime - xfs /dev/loop1 rw
43 40 7:2 / /srv/data/inner rw,relatime - ext4 /dev/loop2 rw
`

func TestParseAndFind(t *testing.T) {
	ms, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 6 {
		t.Fatalf("%d mounts", len(ms))
	}
	logs := ms[3]
	if logs.MountPoint != "/srv/my logs" || logs.Root != "/@logs" || logs.FSType != "btrfs" || logs.Device() != "0:45" {
		t.Fatalf("escaped mount: %+v", logs)
	}
	if !ms[4].ReadOnly() || ms[3].ReadOnly() {
		t.Fatal("ReadOnly")
	}
	// Two btrfs subvolumes share one superblock.
	if ms[2].Device() != ms[3].Device() {
		t.Fatal("subvolumes of one filesystem must share the superblock device")
	}
	if _, err := Parse(strings.NewReader("garbage\n")); err == nil {
		t.Fatal("malformed line accepted")
	}
}

func TestFindStackedAndLongestPrefix(t *testing.T) {
	ms, _ := Parse(strings.NewReader(sample))
	// Find resolves symlinks, so exercise it on real paths; the sample's
	// logic is checked through within and the stacking rule below.
	best := -1
	for i, m := range ms {
		if within("/srv/data/inner/x", m.MountPoint) && (best < 0 || len(m.MountPoint) >= len(ms[best].MountPoint)) {
			best = i
		}
	}
	if ms[best].ID != 43 {
		t.Fatalf("stacked mount: got %d, want the last one (43)", ms[best].ID)
	}
	if within("/srv/database", "/srv/data") {
		t.Fatal("prefix without a separator matched")
	}
}

func TestForPathOnThisMachine(t *testing.T) {
	dir := t.TempDir()
	m, err := ForPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !within(dir, m.MountPoint) || m.FSType == "" {
		t.Fatalf("%s on %+v", dir, m)
	}
	if _, err := ForPath(dir + "/missing"); !os.IsNotExist(err) {
		t.Fatalf("missing path: %v", err)
	}
}

// What lvss doctor says of filesystem types: data filesystems are not
// pseudo, kernel interfaces and memory are; the freeze answer is known
// for the common types and says so when it is not.
func TestFSTypes(t *testing.T) {
	for _, typ := range []string{"ext4", "xfs", "btrfs", "vfat", "nfs4", "zfs"} {
		if Pseudo(typ) {
			t.Errorf("Pseudo(%s)", typ)
		}
	}
	for _, typ := range []string{"proc", "sysfs", "tmpfs", "cgroup2", "overlay", "squashfs"} {
		if !Pseudo(typ) {
			t.Errorf("!Pseudo(%s)", typ)
		}
	}
	for typ, want := range map[string]Freeze{"ext4": FreezeSupported, "xfs": FreezeSupported, "btrfs": FreezeSupported,
		"tmpfs": FreezeUnsupported, "vfat": FreezeUnsupported, "fuse.sshfs": FreezeUnsupported, "nfs4": FreezeUnsupported,
		"zfs": FreezeUnknown, "": FreezeUnknown} {
		if got, why := FreezeSupport(typ); got != want || why == "" {
			t.Errorf("FreezeSupport(%q) = %s (%q), want %s", typ, got, why, want)
		}
	}
}
