package inplace

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/internal/testenv"
)

// A real btrfs snapshot, laid out as the btrfs provider lays them out (a
// read-only snapshot in the subvolume's .lvss-snapshots), is what COMMAND
// reads at the subvolume's path, and .lvss-snapshots is the empty
// directory a nested subvolume leaves in a snapshot.
func TestBtrfsSnapshot(t *testing.T) {
	requireNamespaces(t)
	fs := testenv.LoopFS(t, "btrfs", 300<<20)
	if _, err := exec.LookPath("btrfs"); err != nil {
		testenv.Missing(t, "btrfs (apt-get install btrfs-progs)")
	}
	btrfs := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("btrfs", args...).CombinedOutput(); err != nil {
			t.Fatalf("btrfs %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	vol := filepath.Join(fs.Mount, "vol")
	snap := filepath.Join(vol, ".lvss-snapshots", "s1")
	btrfs("subvolume", "create", vol)
	btrfs("subvolume", "create", filepath.Join(vol, ".lvss-snapshots"))
	tree(t, vol, map[string]string{"f": "before", "dir/g": "before"})
	btrfs("subvolume", "snapshot", "-r", vol, snap)
	tree(t, vol, map[string]string{"f": "after", "dir/g": "after", "new": ""})

	mounts := []Mount{{Snapshot: snap, Original: vol}}
	// From a working directory under the volume, by relative and by
	// absolute path.
	r := run(t, mounts, filepath.Join(vol, "dir"), nil, "sh", "-c", `cat g "$1"/f`, "sh", vol)
	if r.code != 0 || r.stdout != "beforebefore" {
		t.Errorf("COMMAND read %q at %s/dir/g and %s/f (exit %d, %s), want the snapshot's \"before\" twice", r.stdout, vol, vol, r.code, r.stderr)
	}
	// LC_ALL=C: some locales sort .lvss-snapshots as if without its dot.
	r = run(t, mounts, "/", append(os.Environ(), "LC_ALL=C"), "ls", "-A", vol, filepath.Join(vol, ".lvss-snapshots"))
	if want := vol + ":\n.lvss-snapshots\ndir\nf\n\n" + filepath.Join(vol, ".lvss-snapshots") + ":\n"; r.code != 0 || r.stdout != want {
		t.Errorf("COMMAND listed (exit %d, %s)\n%s\nwant\n%s", r.code, r.stderr, r.stdout, want)
	}
	r = run(t, mounts, "/", nil, "cat", "/proc/self/mountinfo")
	ms, err := mountinfo.Parse(strings.NewReader(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	var top mountinfo.Mount
	for _, m := range ms {
		if m.MountPoint == vol {
			top = m
		}
	}
	if top.FSType != "btrfs" || top.Root != "/vol/.lvss-snapshots/s1" || !top.ReadOnly() {
		t.Errorf("the mount at %s inside is %+v, want the read-only snapshot /vol/.lvss-snapshots/s1", vol, top)
	}
	if b, _ := os.ReadFile(filepath.Join(vol, "f")); string(b) != "after" {
		t.Errorf("the host reads %q at %s/f", b, vol)
	}
}
