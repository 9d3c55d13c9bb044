//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package btrfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/providertest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// TestConformance runs the suite on one btrfs, each Setup with its own
// subvolumes and provider. Hold stops EndPrepare where it waits for the
// syncs and the commit before its snapshot ioctl; a delete is one ioctl
// and cannot be held.
func TestConformance(t *testing.T) {
	mnt := newBtrfs(t)
	other := testenv.LoopFS(t, "ext4", 64<<20)
	unsupported := mkdir(t, filepath.Join(other.Mount, "plain"))
	var n atomic.Int32
	providertest.Run(t, providertest.Harness{New: func(t *testing.T) providertest.Setup {
		i := n.Add(1)
		vol := subvol(t, filepath.Join(mnt, fmt.Sprintf("vol%d", i)))
		second := subvol(t, filepath.Join(mnt, fmt.Sprintf("second%d", i)))
		expose := exposeDir(t)
		p := newProvider(t, Config{}, 1<<20)
		return providertest.Setup{
			Provider:    p,
			Volume:      vol,
			Second:      second,
			Unsupported: unsupported,
			ReadSnapshot: func(t *testing.T, s provider.Snapshot, rel string) []byte {
				b, err := os.ReadFile(filepath.Join(s.DevicePath, rel))
				if err != nil {
					t.Fatalf("read %s from the snapshot: %v", rel, err)
				}
				return b
			},
			ExposeDir: expose,
			// lvssd restarted: a provider with the same configuration,
			// which knows nothing but what is on the filesystem.
			Restart: func(t *testing.T) provider.Provider { return newProvider(t, Config{}, 1<<20) },
			// Snapshots and their records live in .lvss-snapshots of each
			// volume's subvolume; the directory itself is made at the
			// first BeginPrepareSnapshot and stays.
			Residue: func(t *testing.T) []string {
				var out []string
				for _, v := range []string{vol, second} {
					out = append(out, providertest.Entries(t, filepath.Join(v, defaultDirName))...)
				}
				return append(out, providertest.Mounts(t, expose)...)
			},
			Hold: func(t *testing.T, method string) (<-chan struct{}, func(), bool) {
				if method == "DeleteSnapshot" {
					return nil, nil, false
				}
				hook, held, release := providertest.HoldOnce(t)
				p.working = func(m string) {
					if m == method {
						hook()
					}
				}
				return held, release, true
			},
			Without: map[string]string{
				"Hold DeleteSnapshot": "a delete is one BTRFS_IOC_SNAP_DESTROY ioctl after unexposing, with no point inside it to hold",
			},
		}
	}})
}

func TestInfo(t *testing.T) {
	p, err := New(Config{}, 0, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	i := p.Info()
	if i.ID != ProviderID || i.Name != "btrfs" || i.Type != vss.ProvSoftware || !i.Atomic || i.SetAtomic || i.NeedsFreeze || i.LongCommit {
		t.Fatalf("Info: %+v", i)
	}
	if _, err := New(Config{Volumes: []VolumeConfig{{Path: "rel"}}}, 0, "", nil); err == nil {
		t.Fatal("a relative volume path was accepted")
	}
}

// A path inside a subvolume snapshots that (innermost) subvolume; the
// device path is the volume's directory inside the snapshot.
func TestPathInsideSubvolume(t *testing.T) {
	mnt := newBtrfs(t)
	sv := subvol(t, filepath.Join(mnt, "sv"))
	vol := mkdir(t, filepath.Join(sv, "srv", "data"))
	write(t, filepath.Join(vol, "f"), "inside")
	write(t, filepath.Join(sv, "top"), "outside the volume, inside the subvolume")
	p := newProvider(t, Config{}, 1<<20)
	if ok, err := p.IsVolumeSupported(bg(t), vol); err != nil || !ok {
		t.Fatalf("IsVolumeSupported(%s): %v %v", vol, ok, err)
	}
	s := take(t, p, vol)[0]
	wantHandle := filepath.Join(sv, defaultDirName, s.ID.String())
	if s.Handle != wantHandle || s.DevicePath != filepath.Join(wantHandle, "srv", "data") || s.OriginalVolume != vol {
		t.Fatalf("snapshot %+v, want handle %s", s, wantHandle)
	}
	if b, err := os.ReadFile(filepath.Join(s.DevicePath, "f")); err != nil || string(b) != "inside" {
		t.Fatalf("file in snapshot: %q %v", b, err)
	}
	// The whole subvolume is in it.
	if _, err := os.Stat(filepath.Join(s.Handle, "top")); err != nil {
		t.Fatal(err)
	}
	// The innermost subvolume wins: a subvolume nested in sv is snapshotted
	// on its own.
	inner := subvol(t, filepath.Join(vol, "inner"))
	write(t, filepath.Join(inner, "g"), "inner")
	s2 := take(t, p, filepath.Join(inner))[0]
	if s2.Handle != filepath.Join(inner, defaultDirName, s2.ID.String()) || s2.DevicePath != s2.Handle {
		t.Fatalf("nested subvolume snapshot: %+v", s2)
	}
	fi, err := os.Stat(filepath.Join(sv, defaultDirName))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v %v", defaultDirName, fi.Mode(), err)
	}
}

func TestUnsupportedPaths(t *testing.T) {
	mnt := newBtrfs(t)
	p := newProvider(t, Config{}, 0)
	file := filepath.Join(mnt, "file")
	write(t, file, "x")
	ext := testenv.LoopFS(t, "ext4", 64<<20)
	for _, path := range []string{file, ext.Mount, "relative"} {
		if ok, err := p.IsVolumeSupported(bg(t), path); err != nil || ok {
			t.Fatalf("IsVolumeSupported(%s): %v %v", path, ok, err)
		}
	}
	wantCode(t, p.BeginPrepareSnapshot(bg(t), uuid.New(), uuid.New(), ext.Mount, 0), vsserr.VolumeNotSupportedByProvider)
	wantCode(t, p.BeginPrepareSnapshot(bg(t), uuid.New(), uuid.New(), file, 0), vsserr.VolumeNotSupportedByProvider)
	wantCode(t, p.BeginPrepareSnapshot(bg(t), uuid.New(), uuid.New(), "relative", 0), vsserr.InvalidArg)
	_, err := p.IsVolumeSupported(bg(t), filepath.Join(mnt, "missing"))
	wantCode(t, err, vsserr.ObjectNotFound)
	wantCode(t, p.BeginPrepareSnapshot(bg(t), uuid.New(), uuid.New(), filepath.Join(mnt, "missing"), 0), vsserr.ObjectNotFound)
}

func TestConfiguredSnapshotDir(t *testing.T) {
	mnt := newBtrfs(t)
	sv := subvol(t, filepath.Join(mnt, "sv"))
	vol := mkdir(t, filepath.Join(sv, "data"))
	write(t, filepath.Join(vol, "f"), "configured")
	store := subvol(t, filepath.Join(mnt, "store"))

	t.Run("same filesystem", func(t *testing.T) {
		dir := mkdir(t, filepath.Join(store, "existing"))
		p := newProvider(t, Config{Volumes: []VolumeConfig{{Path: vol, SnapshotDir: dir}}}, 1<<20)
		s := take(t, p, vol)[0]
		if filepath.Dir(s.Handle) != dir {
			t.Fatalf("snapshot at %s, want it in %s", s.Handle, dir)
		}
		if b, err := os.ReadFile(filepath.Join(s.DevicePath, "f")); err != nil || string(b) != "configured" {
			t.Fatalf("%q %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(sv, defaultDirName)); !os.IsNotExist(err) {
			t.Fatalf("the default place was made anyway: %v", err)
		}
		// A fresh provider (as after a restart) finds it through the
		// configuration, with its record.
		q := queryByID(t, newProvider(t, Config{Volumes: []VolumeConfig{{Path: vol, SnapshotDir: dir}}}, 0), s.ID)
		if q == nil || q.SetID != s.SetID || q.OriginalVolume != vol || q.DevicePath != s.DevicePath || !q.Created.Equal(s.Created) {
			t.Fatalf("Query after restart: %+v, want %+v", q, s)
		}
	})
	t.Run("missing directory is made as a subvolume", func(t *testing.T) {
		dir := filepath.Join(store, "new")
		// The entry names another path in the same subvolume: it applies.
		p := newProvider(t, Config{Volumes: []VolumeConfig{{Path: sv, SnapshotDir: dir}}}, 1<<20)
		s := take(t, p, vol)[0]
		if filepath.Dir(s.Handle) != dir {
			t.Fatalf("snapshot at %s, want it in %s", s.Handle, dir)
		}
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil || st.Ino != firstFreeObjectID {
			t.Fatalf("%s is not a subvolume: %v", dir, err)
		}
	})
	t.Run("inside the volume's own subvolume", func(t *testing.T) {
		dir := mkdir(t, filepath.Join(sv, "snaps"))
		p := newProvider(t, Config{Volumes: []VolumeConfig{{Path: vol, SnapshotDir: dir}}}, 1<<20)
		s1 := take(t, p, sv)[0]
		s2 := take(t, p, sv)[0]
		if len(s1.Warnings)+len(s2.Warnings) != 0 {
			t.Fatalf("lvss's own snapshots reported as nested subvolumes: %q %q", s1.Warnings, s2.Warnings)
		}
		// A plain directory is copied into later snapshots, but each
		// snapshot in it is a subvolume and shows there as an empty
		// directory.
		if !empty(t, filepath.Join(s2.DevicePath, "snaps", s1.ID.String())) {
			t.Fatal("the earlier snapshot's content shows inside the later one")
		}
	})
	t.Run("no parent is refused", func(t *testing.T) {
		dir := filepath.Join(store, "no", "such")
		p := newProvider(t, Config{Volumes: []VolumeConfig{{Path: vol, SnapshotDir: dir}}}, 0)
		err := p.BeginPrepareSnapshot(bg(t), uuid.New(), uuid.New(), vol, 0)
		wantCode(t, err, vsserr.ProviderVeto)
		if !strings.Contains(err.Error(), dir) {
			t.Fatalf("the refusal does not name the directory: %v", err)
		}
	})
	t.Run("another filesystem is refused", func(t *testing.T) {
		ext := testenv.LoopFS(t, "ext4", 64<<20)
		otherBtrfs := newBtrfs(t)
		for _, dir := range []string{ext.Mount, otherBtrfs} {
			p := newProvider(t, Config{Volumes: []VolumeConfig{{Path: vol, SnapshotDir: dir}}}, 0)
			err := p.BeginPrepareSnapshot(bg(t), uuid.New(), uuid.New(), vol, 0)
			wantCode(t, err, vsserr.ProviderVeto)
			if !strings.Contains(err.Error(), "snapshot_dir") || !strings.Contains(err.Error(), dir) {
				t.Fatalf("the refusal does not say what to fix: %v", err)
			}
		}
	})
}

func empty(t *testing.T, dir string) bool {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(es) == 0
}

func queryByID(t *testing.T, p *Provider, id uuid.UUID) *provider.Snapshot {
	t.Helper()
	all, err := p.Query(bg(t))
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	for _, s := range all {
		if s.ID == id {
			return &s
		}
	}
	return nil
}

func TestNestedSubvolumeWarning(t *testing.T) {
	mnt := newBtrfs(t)
	sv := subvol(t, filepath.Join(mnt, "sv"))
	sub := subvol(t, filepath.Join(sv, "sub"))
	write(t, filepath.Join(sub, "f"), "in the nested subvolume")
	mkdir(t, filepath.Join(sv, "x", "y"))
	deep := subvol(t, filepath.Join(sv, "x", "y", "deep"))
	p := newProvider(t, Config{}, 1<<20)

	s := take(t, p, sv)[0]
	want := []string{
		"nested subvolume " + sub + " is not in the snapshot; it appears as an empty directory",
		"nested subvolume " + deep + " is not in the snapshot; it appears as an empty directory",
	}
	if !slices.Equal(s.Warnings, want) {
		t.Fatalf("warnings:\n%q\nwant\n%q", s.Warnings, want)
	}
	if !empty(t, filepath.Join(s.DevicePath, "sub")) {
		t.Fatal("the nested subvolume is not empty in the snapshot: the warning is wrong")
	}
	// A volume below the subvolume root hears only of what is under it.
	s2 := take(t, p, filepath.Join(sv, "x"))[0]
	if len(s2.Warnings) != 1 || s2.Warnings[0] != want[1] {
		t.Fatalf("warnings for %s: %q", filepath.Join(sv, "x"), s2.Warnings)
	}
	// Query (from a fresh provider) repeats them.
	if q := queryByID(t, newProvider(t, Config{}, 0), s.ID); q == nil || !slices.Equal(q.Warnings, want) {
		t.Fatalf("Query: %+v", q)
	}
}

// The provider's own directory is a subvolume: it appears empty in later
// snapshots and is never reported as a lost nested subvolume.
func TestOwnDirectoryExcluded(t *testing.T) {
	mnt := newBtrfs(t)
	sv := subvol(t, filepath.Join(mnt, "sv"))
	write(t, filepath.Join(sv, "f"), "x")
	p := newProvider(t, Config{}, 1<<20)
	s1 := take(t, p, sv)[0]
	s2 := take(t, p, sv)[0]
	if len(s1.Warnings) != 0 || len(s2.Warnings) != 0 {
		t.Fatalf("warnings: %q %q", s1.Warnings, s2.Warnings)
	}
	if !empty(t, filepath.Join(s2.DevicePath, defaultDirName)) {
		t.Fatal("the first snapshot shows inside the second")
	}
	if empty(t, filepath.Join(sv, defaultDirName)) {
		t.Fatal("no snapshots in the live directory")
	}
}

func TestFreeSpace(t *testing.T) {
	mnt := newBtrfs(t)
	sv := subvol(t, filepath.Join(mnt, "sv"))
	take(t, newProvider(t, Config{}, 1), sv)

	p := newProvider(t, Config{}, 1<<40)
	set, id := uuid.New(), uuid.New()
	if err := p.BeginPrepareSnapshot(bg(t), set, id, sv, 0); err != nil {
		t.Fatal(err)
	}
	err := p.EndPrepareSnapshots(bg(t), set)
	wantCode(t, err, vsserr.InsufficientStorage)
	if !strings.Contains(err.Error(), "min_free") {
		t.Fatalf("the refusal does not name the limit: %v", err)
	}
	if err := p.AbortSnapshots(bg(t), set); err != nil {
		t.Fatal(err)
	}
	if queryByID(t, p, id) != nil {
		t.Fatal("a refused snapshot exists")
	}
}

func TestAbortAfterCommit(t *testing.T) {
	mnt := newBtrfs(t)
	a := subvol(t, filepath.Join(mnt, "a"))
	b := subvol(t, filepath.Join(mnt, "b"))
	p := newProvider(t, Config{}, 1<<20)
	c := bg(t)
	set := uuid.New()
	ids := []uuid.UUID{uuid.New(), uuid.New()}
	for i, v := range []string{a, b} {
		if err := p.BeginPrepareSnapshot(c, set, ids[i], v, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []func(context.Context, uuid.UUID) error{p.EndPrepareSnapshots, p.PreCommitSnapshots, p.CommitSnapshots} {
		if err := step(c, set); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(a, defaultDirName, ids[0].String())); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := p.AbortSnapshots(c, set); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range []string{a, b} {
		if es, _ := os.ReadDir(filepath.Join(v, defaultDirName)); len(es) != 0 {
			t.Fatalf("abort left %v behind", es)
		}
		if queryByID(t, p, ids[i]) != nil {
			t.Fatal("Query lists an aborted snapshot")
		}
	}
	wantCode(t, p.CommitSnapshots(c, set), vsserr.ObjectNotFound)
}

func TestDeleteAfterExpose(t *testing.T) {
	mnt := newBtrfs(t)
	sv := subvol(t, filepath.Join(mnt, "sv"))
	write(t, filepath.Join(sv, "f"), "exposed")
	p := newProvider(t, Config{}, 1<<20)
	s := take(t, p, sv)[0]
	at := mkdir(t, filepath.Join(exposeDir(t), "x"))
	name, err := p.Expose(bg(t), s, at)
	if err != nil || name != at {
		t.Fatalf("Expose: %q %v", name, err)
	}
	if again, err := p.Expose(bg(t), s, at); err != nil || again != at {
		t.Fatalf("second Expose: %q %v", again, err)
	}
	if b, err := os.ReadFile(filepath.Join(at, "f")); err != nil || string(b) != "exposed" {
		t.Fatalf("exposed content: %q %v", b, err)
	}
	// Read-only as a mount, not only as a subvolume.
	if ok, _ := exposedAt(at, s.ID.String()); !ok {
		t.Fatal("not mounted")
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(at, &sfs); err != nil || sfs.Flags&unix.ST_RDONLY == 0 || sfs.Flags&unix.ST_NOSUID == 0 {
		t.Fatalf("exposure flags %#x %v", sfs.Flags, err)
	}
	if err := p.DeleteSnapshot(bg(t), s); err != nil {
		t.Fatalf("DeleteSnapshot of an exposed snapshot: %v", err)
	}
	if ok, _ := exposedAt(at, s.ID.String()); ok {
		t.Fatal("still exposed after delete")
	}
	if _, err := os.Stat(s.Handle); !os.IsNotExist(err) {
		t.Fatalf("snapshot still there: %v", err)
	}
	if err := p.Unexpose(bg(t), s, at); err != nil {
		t.Fatalf("Unexpose after delete: %v", err)
	}
	if err := p.DeleteSnapshot(bg(t), s); err != nil {
		t.Fatal(err)
	}
	_, err = p.Expose(bg(t), s, at)
	wantCode(t, err, vsserr.ObjectNotFound)
}

func TestHandleIsChecked(t *testing.T) {
	mnt := newBtrfs(t)
	sv := subvol(t, filepath.Join(mnt, "sv"))
	p := newProvider(t, Config{}, 0)
	// A handle that does not name the snapshot's GUID, or names a live
	// subvolume, never deletes anything.
	wantCode(t, p.DeleteSnapshot(bg(t), provider.Snapshot{ID: uuid.New(), Handle: sv}), vsserr.InvalidArg)
	id := uuid.New()
	live := subvol(t, filepath.Join(mnt, id.String()))
	wantCode(t, p.DeleteSnapshot(bg(t), provider.Snapshot{ID: id, Handle: live}), vsserr.InvalidArg)
	if _, err := os.Stat(live); err != nil {
		t.Fatal("a writable subvolume was deleted")
	}
}

// Snapshots of a subvolume that is not a mount point itself are found
// after a restart through the root tree.
func TestQueryFindsNestedDefaultDirs(t *testing.T) {
	mnt := newBtrfs(t)
	outer := subvol(t, filepath.Join(mnt, "outer"))
	mkdir(t, filepath.Join(outer, "d"))
	inner := subvol(t, filepath.Join(outer, "d", "inner"))
	p := newProvider(t, Config{}, 1<<20)
	s := take(t, p, inner)[0]
	q := queryByID(t, newProvider(t, Config{}, 0), s.ID)
	if q == nil || q.Handle != s.Handle || q.OriginalVolume != inner || q.SetID != s.SetID {
		t.Fatalf("Query after restart: %+v", q)
	}
	if err := p.DeleteSnapshot(bg(t), *q); err != nil {
		t.Fatal(err)
	}
	if queryByID(t, p, s.ID) != nil {
		t.Fatal("deleted snapshot listed")
	}
}
