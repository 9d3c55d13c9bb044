package filecopy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/confval"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// manyFiles writes n small files named f000, f001, ... into dir.
func manyFiles(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%03d", i)), []byte(fmt.Sprintf("file %d\n", i)))
	}
}

// pattern is incompressible-enough data that differs block by block.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(i)*0x9E3779B97F4A7C15)
	}
	return b
}

func avail(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_ = unix.Syncfs(int(f.Fd()))
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// extents reports how many of a file's extents FIEMAP marks shared
// (FIEMAP_EXTENT_SHARED), out of how many.
func extents(t *testing.T, path string) (shared, total int) {
	t.Helper()
	const (
		fsIocFiemap     = 0xC020660B
		fiemapFlagSync  = 0x1
		extentShared    = 0x2000
		headerSize      = 32
		extentSize      = 56
		maxExtentsAsked = 256
	)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]uint64, (headerSize+extentSize*maxExtentsAsked)/8)
	b := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(buf)*8)
	binary.NativeEndian.PutUint64(b[8:], ^uint64(0))
	binary.NativeEndian.PutUint32(b[16:], fiemapFlagSync)
	binary.NativeEndian.PutUint32(b[24:], maxExtentsAsked)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
		t.Fatalf("FIEMAP %s: %v", path, errno)
	}
	total = int(binary.NativeEndian.Uint32(b[20:]))
	for i := range total {
		if binary.NativeEndian.Uint32(b[headerSize+extentSize*i+40:])&extentShared != 0 {
			shared++
		}
	}
	return shared, total
}

// TestReflinkOrPlain checks how the data got into the copy: shared
// extents on XFS and btrfs (and almost no space used), full copies on ext4.
func TestReflinkOrPlain(t *testing.T) {
	for _, fstype := range []string{"xfs", "btrfs", "ext4"} {
		t.Run(fstype, func(t *testing.T) {
			e := newEnv(t, fstype)
			const size = 32 << 20
			writeFile(t, filepath.Join(e.vol, "big"), pattern(size))
			before := avail(t, e.fs.Mount)
			s := mustSnap(t, e.p, e.vol)[0]
			used := before - avail(t, e.fs.Mount)
			shared, total := extents(t, filepath.Join(s.DevicePath, "big"))
			rec, err := readRecord(s.DevicePath + ".json")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d of %d extents shared, %s of free space used, %d reflinked, %d copied", fstype, shared, total, human(used), rec.Reflinked, rec.Copied)
			if fstype == "ext4" {
				if shared != 0 || used < size || rec.Copied != 1 {
					t.Fatalf("ext4 cannot reflink: want a full copy, got %d shared extents and %s used", shared, human(used))
				}
				return
			}
			if total == 0 || shared != total || rec.Reflinked != 1 {
				t.Fatalf("want a reflinked copy: %d of %d extents shared, %d files reflinked", shared, total, rec.Reflinked)
			}
			if fstype == "xfs" && used > size/8 {
				t.Fatalf("reflinked copy of %s used %s of free space", human(size), human(used))
			}
		})
	}
}

// TestCrossFilesystemCopy keeps copies on another filesystem than the
// volume: reflinks cannot work there, so the data is copied in full.
func TestCrossFilesystemCopy(t *testing.T) {
	e := newEnv(t, "xfs")
	other := testenv.LoopFS(t, "ext4", 256<<20)
	e.cfg.SnapshotDir = filepath.Join(other.Mount, "copies")
	p := e.provider(t)
	buildTree(t, e.vol)
	s := mustSnap(t, p, e.vol)[0]
	sameTree(t, e.vol, s.DevicePath, "fifo")
	rec, err := readRecord(s.DevicePath + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Reflinked != 0 || rec.Copied == 0 {
		t.Fatalf("across filesystems: %d reflinked, %d copied", rec.Reflinked, rec.Copied)
	}
}

func TestChangeDetection(t *testing.T) {
	t.Run("quiet", func(t *testing.T) {
		e := newEnv(t, "ext4")
		manyFiles(t, e.vol, 200)
		if s := mustSnap(t, e.p, e.vol)[0]; s.Inconsistent != "" {
			t.Fatalf("quiet volume reported inconsistent: %s", s.Inconsistent)
		}
	})

	t.Run("changes at known points", func(t *testing.T) {
		e := newEnv(t, "ext4")
		manyFiles(t, e.vol, 100)
		e.p.afterEntry = func(rel string) {
			if rel != "f050" {
				return
			}
			appendFile(t, filepath.Join(e.vol, "f010"), "late\n")    // copied already
			_ = os.Remove(filepath.Join(e.vol, "f020"))              // copied already
			writeFile(t, filepath.Join(e.vol, "f030-new"), nil)      // in a listed directory
			appendFile(t, filepath.Join(e.vol, "f080"), "earlier\n") // not copied yet: the copy has it
		}
		s := mustSnap(t, e.p, e.vol)[0]
		want := fmt.Sprintf("files changed while they were copied: %s, %s (vanished), %s (appeared)",
			filepath.Join(e.vol, "f010"), filepath.Join(e.vol, "f020"), filepath.Join(e.vol, "f030-new"))
		if s.Inconsistent != want {
			t.Fatalf("Inconsistent:\n got %q\nwant %q", s.Inconsistent, want)
		}
		if b, _ := os.ReadFile(filepath.Join(s.DevicePath, "f080")); !bytes.HasSuffix(b, []byte("earlier\n")) {
			t.Fatalf("f080 in the copy: %q", b)
		}
	})

	t.Run("concurrent writer", func(t *testing.T) {
		e := newEnv(t, "xfs")
		manyFiles(t, e.vol, 200)
		writeFile(t, filepath.Join(e.vol, "hot"), []byte("start\n"))
		var writes atomic.Int64 // completed appends
		stop := make(chan struct{})
		finished := make(chan struct{})
		writer := func() {
			defer close(finished)
			f, err := os.OpenFile(filepath.Join(e.vol, "hot"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return
			}
			defer f.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := f.WriteString("more\n"); err != nil {
					return
				}
				writes.Add(1)
			}
		}
		e.p.afterEntry = func(rel string) {
			switch rel {
			case "f000":
				go writer()
			case "hot":
				// The copy of hot is done; make sure the writer changes it
				// again before the copy ends, as a busy application would.
				// The append in flight now may have begun before the copy
				// ended; the one after it began later.
				n := writes.Load()
				for deadline := time.Now().Add(30 * time.Second); writes.Load() < n+2; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Error("the concurrent writer stopped appending")
						return
					}
				}
			}
		}
		s := mustSnap(t, e.p, e.vol)[0]
		close(stop)
		<-finished
		want := "files changed while they were copied: " + filepath.Join(e.vol, "hot")
		if s.Inconsistent != want {
			t.Fatalf("Inconsistent:\n got %q\nwant %q", s.Inconsistent, want)
		}
	})

	t.Run("many changes are summarised", func(t *testing.T) {
		e := newEnv(t, "ext4")
		manyFiles(t, e.vol, 30)
		e.p.afterEntry = func(rel string) {
			if rel == "f029" {
				for i := range 25 {
					appendFile(t, filepath.Join(e.vol, fmt.Sprintf("f%03d", i)), "x")
				}
			}
		}
		s := mustSnap(t, e.p, e.vol)[0]
		if !strings.HasSuffix(s.Inconsistent, "(and 15 more)") || strings.Count(s.Inconsistent, e.vol) != 10 {
			t.Fatalf("Inconsistent: %q", s.Inconsistent)
		}
	})
}

func TestMaxBytes(t *testing.T) {
	t.Run("at EndPrepare", func(t *testing.T) {
		e := newEnv(t, "ext4")
		e.cfg.MaxBytes = 1 << 20
		p := e.provider(t)
		writeFile(t, filepath.Join(e.vol, "two-mib"), pattern(2<<20))
		set, _, step, err := steps(t, t.Context(), p, e.vol)
		if step != "EndPrepareSnapshots" || !errors.Is(err, vsserr.InsufficientStorage) ||
			!strings.Contains(err.Error(), "2.0 MiB") || !strings.Contains(err.Error(), "max_bytes (1.0 MiB)") {
			t.Fatalf("%s: %v", step, err)
		}
		if err := p.AbortSnapshots(t.Context(), set); err != nil {
			t.Fatal(err)
		}
		assertEmpty(t, e.copies)
	})

	t.Run("growth during the commit", func(t *testing.T) {
		e := newEnv(t, "ext4")
		e.cfg.MaxBytes = 1 << 20
		p := e.provider(t)
		writeFile(t, filepath.Join(e.vol, "a"), pattern(512<<10))
		if err := os.Mkdir(filepath.Join(e.vol, "z"), 0o755); err != nil {
			t.Fatal(err)
		}
		p.afterEntry = func(rel string) {
			// Into a directory not listed yet, so the copy meets it.
			if rel == "a" {
				writeFile(t, filepath.Join(e.vol, "z", "big"), pattern(1<<20))
			}
		}
		set, _, step, err := steps(t, t.Context(), p, e.vol)
		if step != "CommitSnapshots" || !errors.Is(err, vsserr.InsufficientStorage) || !strings.Contains(err.Error(), "grew past") {
			t.Fatalf("%s: %v", step, err)
		}
		if err := p.AbortSnapshots(t.Context(), set); err != nil {
			t.Fatal(err)
		}
		assertEmpty(t, e.copies)
	})
}

// assertEmpty checks that a snapshot directory holds nothing.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("%s still holds %v", dir, names)
	}
}

// TestMinFree: a plain copy must leave limits.min_free free; a reflinked
// one needs little, so the same limit lets it through.
func TestMinFree(t *testing.T) {
	for _, tc := range []struct {
		fstype string
		ok     bool
	}{{"ext4", false}, {"xfs", true}} {
		t.Run(tc.fstype, func(t *testing.T) {
			e := newEnv(t, tc.fstype)
			writeFile(t, filepath.Join(e.vol, "data"), pattern(48<<20))
			e.minFree = confval.Size(avail(t, e.fs.Mount) - 24<<20)
			p := e.provider(t)
			set, _, step, err := steps(t, t.Context(), p, e.vol)
			if tc.ok {
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				return
			}
			if step != "EndPrepareSnapshots" || !errors.Is(err, vsserr.InsufficientStorage) || !strings.Contains(err.Error(), "min_free") {
				t.Fatalf("%s: %v", step, err)
			}
			_ = p.AbortSnapshots(t.Context(), set)
			assertEmpty(t, e.copies)
		})
	}
}

func TestOptIn(t *testing.T) {
	e := newEnv(t, "ext4")
	ctx := t.Context()
	sub := filepath.Join(e.vol, "sub")
	mnt := filepath.Join(e.vol, "mnt")
	link := filepath.Join(e.fs.Mount, "link-to-vol")
	writeFile(t, filepath.Join(sub, "f"), []byte("x"))
	writeFile(t, filepath.Join(e.vol, "file"), []byte("x"))
	if err := os.Symlink(e.vol, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	writeFile(t, filepath.Join(mnt, "elsewhere"), []byte("not ours"))

	cases := map[string]bool{
		e.vol: true, e.vol2: true, sub: true, link: true,
		e.other: false, mnt: false, filepath.Join(e.vol, "file"): false, e.fs.Mount: false,
		e.copies: false, "relative": false, filepath.Join(e.vol, "missing"): false,
	}
	for path, want := range cases {
		if got, err := e.p.IsVolumeSupported(ctx, path); got != want || err != nil {
			t.Errorf("IsVolumeSupported(%s) = %v, %v; want %v", path, got, err, want)
		}
		// lvss doctor hears the same, with a reason.
		if d := e.p.Diagnose(ctx, path); d.Supported != want || d.Reason == "" || want && d.SnapshotDir != e.copies {
			t.Errorf("Diagnose(%s) = %+v; want supported %v", path, d, want)
		}
	}
	for path, reason := range map[string]string{
		e.other: "not listed in providers.copy.volumes", mnt: "on another mount", "relative": "not an absolute path",
		filepath.Join(e.vol, "missing"): "does not exist", filepath.Join(e.vol, "file"): "not a directory",
	} {
		if d := e.p.Diagnose(ctx, path); !strings.Contains(d.Reason, reason) {
			t.Errorf("Diagnose(%s) says %q, want %q", path, d.Reason, reason)
		}
	}
	if got := e.p.ConfiguredVolumes(); len(got) != len(e.cfg.Volumes) {
		t.Errorf("ConfiguredVolumes = %q, want %q", got, e.cfg.Volumes)
	}
	err := e.p.BeginPrepareSnapshot(ctx, uuid.New(), uuid.New(), e.other, vss.CtxBackup)
	if !errors.Is(err, vsserr.VolumeNotSupportedByProvider) {
		t.Fatalf("BeginPrepareSnapshot on an unlisted volume: %v", err)
	}

	// The copy of the volume stops at the mount point.
	s := mustSnap(t, e.p, e.vol)[0]
	if ents, err := os.ReadDir(filepath.Join(s.DevicePath, "mnt")); err != nil || len(ents) != 0 {
		t.Fatalf("mount point in the copy: %v %v", ents, err)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], mnt) {
		t.Fatalf("warnings: %q", s.Warnings)
	}

	// A snapshot directory inside the volume is left out of its copies.
	e.cfg.SnapshotDir = filepath.Join(e.vol, ".copies")
	inner := e.provider(t)
	if ok, _ := inner.IsVolumeSupported(ctx, e.cfg.SnapshotDir); ok {
		t.Fatal("the snapshot directory itself is supported")
	}
	s1 := mustSnap(t, inner, e.vol)[0]
	s2 := mustSnap(t, inner, e.vol)[0]
	for _, s := range []provider.Snapshot{s1, s2} {
		if _, err := os.Lstat(filepath.Join(s.DevicePath, ".copies")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the copy holds the snapshot directory: %v", err)
		}
		if s.Inconsistent != "" {
			t.Fatalf("the provider's own writes made the copy inconsistent: %s", s.Inconsistent)
		}
	}

	for _, bad := range []Config{
		{Volumes: []string{filepath.Join(e.copies, "x")}, SnapshotDir: e.copies},
		{Volumes: []string{e.copies}, SnapshotDir: e.copies},
		{Volumes: []string{e.vol}, SnapshotDir: "relative"},
		{Volumes: []string{"relative"}, SnapshotDir: e.copies},
		{Volumes: []string{e.vol}},
	} {
		if _, err := New(bad, e.minFree, "", nil); err == nil {
			t.Errorf("New accepted %+v", bad)
		}
	}
	if p, err := New(Config{}, e.minFree, "/var/lib/lvss", nil); err != nil || p.SnapshotDir() != "/var/lib/lvss/copies" || p.maxBytes != DefaultMaxBytes {
		t.Errorf("defaults: %v %+v", err, p)
	}
}

func TestCancelMidCopy(t *testing.T) {
	t.Run("context", func(t *testing.T) {
		e := newEnv(t, "ext4")
		manyFiles(t, e.vol, 300)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e.p.afterEntry = func(rel string) {
			if rel == "f100" {
				cancel()
			}
		}
		set, _, step, err := steps(t, ctx, e.p, e.vol)
		if step != "CommitSnapshots" || !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: %v", step, err)
		}
		if code := vsserr.Code(err); code != vsserr.ProviderVeto {
			t.Fatalf("code %v", code)
		}
		// A partial copy is there until the coordinator aborts.
		if _, err := os.Stat(filepath.Join(e.copies)); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := e.p.AbortSnapshots(t.Context(), set); err != nil {
				t.Fatal(err)
			}
		}
		assertEmpty(t, e.copies)
		if all, _ := e.p.Query(t.Context()); len(all) != 0 {
			t.Fatalf("Query after abort: %v", all)
		}
	})

	t.Run("abort while copying", func(t *testing.T) {
		e := newEnv(t, "xfs")
		manyFiles(t, e.vol, 300)
		inside, release := make(chan struct{}), make(chan struct{})
		e.p.afterEntry = func(rel string) {
			if rel == "f100" {
				close(inside)
				<-release
			}
		}
		ctx := t.Context()
		set, snapID := uuid.New(), uuid.New()
		for _, err := range []error{
			e.p.BeginPrepareSnapshot(ctx, set, snapID, e.vol, vss.CtxBackup),
			e.p.EndPrepareSnapshots(ctx, set),
			e.p.PreCommitSnapshots(ctx, set),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		committed := make(chan error, 1)
		go func() { committed <- e.p.CommitSnapshots(ctx, set) }()
		<-inside
		aborted := make(chan error, 1)
		go func() { aborted <- e.p.AbortSnapshots(ctx, set) }()
		// Abort forgets the set and cancels the copy in one step; let the
		// copy go on only then, so that it finds its context ended.
		deadline := time.Now().Add(10 * time.Second)
		for {
			e.p.mu.Lock()
			_, live := e.p.sets[set]
			e.p.mu.Unlock()
			if !live {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("AbortSnapshots did not take the set")
			}
			time.Sleep(time.Millisecond)
		}
		close(release)
		if err := <-committed; !errors.Is(err, context.Canceled) {
			t.Fatalf("commit: %v", err)
		}
		if err := <-aborted; err != nil {
			t.Fatalf("abort: %v", err)
		}
		assertEmpty(t, e.copies)
	})
}

func TestQueryAfterRestart(t *testing.T) {
	e := newEnv(t, "xfs")
	manyFiles(t, e.vol, 20)
	if err := unix.Mkfifo(filepath.Join(e.vol, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.p.afterEntry = func(rel string) {
		if rel == "f019" {
			appendFile(t, filepath.Join(e.vol, "f001"), "x")
		}
	}
	made := mustSnap(t, e.p, e.vol)[0]
	if made.Inconsistent == "" || len(made.Warnings) != 1 {
		t.Fatalf("want an inconsistent snapshot with a warning: %+v", made)
	}

	// A creation cut short by a crash: its metadata says "creating".
	set := uuid.New()
	cut := uuid.New()
	if err := e.p.BeginPrepareSnapshot(t.Context(), set, cut, e.vol2, vss.CtxBackup); err != nil {
		t.Fatal(err)
	}
	if err := e.p.EndPrepareSnapshots(t.Context(), set); err != nil {
		t.Fatal(err)
	}

	restarted := e.provider(t)
	if _, err := os.Lstat(filepath.Join(e.copies, cut.String())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an interrupted copy survived the restart: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(e.copies, cut.String()+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("metadata of an interrupted copy survived the restart: %v", err)
	}
	all, err := restarted.Query(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("Query after restart: %+v", all)
	}
	got := all[0]
	if got.ID != made.ID || got.SetID != made.SetID || got.OriginalVolume != made.OriginalVolume || got.DevicePath != made.DevicePath ||
		got.Handle != made.Handle || !got.Created.Equal(made.Created) || got.Inconsistent != made.Inconsistent ||
		strings.Join(got.Warnings, "|") != strings.Join(made.Warnings, "|") {
		t.Fatalf("after restart:\n got %+v\nmade %+v", got, made)
	}
	for range 2 {
		if err := restarted.DeleteSnapshot(t.Context(), got); err != nil {
			t.Fatal(err)
		}
	}
	assertEmpty(t, e.copies)

	// A handle that is not one of ours is refused, not removed.
	victim := filepath.Join(e.fs.Mount, "other", uuid.NewString())
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	err = restarted.DeleteSnapshot(t.Context(), provider.Snapshot{Handle: victim})
	if !errors.Is(err, vsserr.InvalidArg) {
		t.Fatalf("delete of a foreign directory: %v", err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Fatal("a foreign directory was removed")
	}
}

func TestDeleteAfterExpose(t *testing.T) {
	e := newEnv(t, "ext4")
	writeFile(t, filepath.Join(e.vol, "f"), []byte("snap"))
	s := mustSnap(t, e.p, e.vol)[0]
	at := filepath.Join(e.expose, "x")
	if err := os.Mkdir(at, 0o755); err != nil {
		t.Fatal(err)
	}
	name, err := e.p.Expose(t.Context(), s, at)
	if err != nil || name != at {
		t.Fatalf("Expose: %q %v", name, err)
	}
	if again, err := e.p.Expose(t.Context(), s, at); err != nil || again != at {
		t.Fatalf("second Expose: %q %v", again, err)
	}
	if n := mountsAt(t, at); n != 1 {
		t.Fatalf("%d mounts at %s after exposing twice", n, at)
	}
	if b, err := os.ReadFile(filepath.Join(at, "f")); err != nil || string(b) != "snap" {
		t.Fatalf("exposed content: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(at, "f"), []byte("changed"), 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("write through the exposure: %v", err)
	}
	m, err := mountinfo.ForPath(at)
	if err != nil || !m.ReadOnly() || !strings.Contains(m.Options, "nosuid") || !strings.Contains(m.Options, "nodev") {
		t.Fatalf("exposure mount %+v %v", m, err)
	}
	if err := e.p.DeleteSnapshot(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if n := mountsAt(t, at); n != 0 {
		t.Fatalf("delete left %d mounts at %s", n, at)
	}
	if err := e.p.Unexpose(t.Context(), s, at); err != nil {
		t.Fatalf("Unexpose after delete: %v", err)
	}
	assertEmpty(t, e.copies)
	if _, err := e.p.Expose(t.Context(), s, at); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("Expose of a deleted snapshot: %v", err)
	}
}

func mountsAt(t *testing.T, path string) int {
	t.Helper()
	ms, err := mountinfo.Read()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		if m.MountPoint == path {
			n++
		}
	}
	return n
}

// TestTimings copies one sample tree with reflinks and with plain copies
// and logs how long each took (go test -v -run Timings shows them).
func TestTimings(t *testing.T) {
	if testing.Short() {
		testenv.SkipIfShort(t, "timings are informative")
	}
	build := func(t *testing.T, vol string) {
		for i := range 2000 {
			writeFile(t, filepath.Join(vol, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%04d", i)), pattern(16<<10))
		}
		writeFile(t, filepath.Join(vol, "big"), pattern(64<<20))
	}
	for _, tc := range []struct{ name, fstype, dest string }{
		{"xfs reflink", "xfs", ""}, {"btrfs reflink", "btrfs", ""}, {"ext4 plain", "ext4", ""}, {"xfs to ext4 plain", "xfs", "ext4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.fstype)
			if tc.dest != "" {
				e.cfg.SnapshotDir = filepath.Join(testenv.LoopFS(t, tc.dest, 512<<20).Mount, "copies")
			}
			p := e.provider(t)
			build(t, e.vol)
			avail(t, e.fs.Mount) // syncfs: time the copy, not the writeback of the sample
			ctx, set := t.Context(), uuid.New()
			if err := p.BeginPrepareSnapshot(ctx, set, uuid.New(), e.vol, vss.CtxBackup); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			if err := p.EndPrepareSnapshots(ctx, set); err != nil {
				t.Fatal(err)
			}
			if err := p.PreCommitSnapshots(ctx, set); err != nil {
				t.Fatal(err)
			}
			t1 := time.Now()
			if err := p.CommitSnapshots(ctx, set); err != nil {
				t.Fatal(err)
			}
			t2 := time.Now()
			snaps, err := p.PostCommitSnapshots(ctx, set, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer p.DeleteSnapshot(context.Background(), snaps[0])
			rec, _ := readRecord(snaps[0].DevicePath + ".json")
			t.Logf("%s: %d files, %s: EndPrepare %v, Commit %v (%d reflinked, %d copied)", tc.name, rec.Files, human(rec.Bytes),
				t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), rec.Reflinked, rec.Copied)
			if err := p.AbortSnapshots(ctx, set); err != nil {
				t.Fatal(err)
			}
		})
	}
}
