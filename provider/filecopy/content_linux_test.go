package filecopy

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tree is a sample volume with what a copy must keep: nested directories
// (one read-only), modes with setuid, owners, nanosecond mtimes, symlinks
// (relative, absolute, dangling), hard links, an empty and a sparse file,
// an extended attribute, and a FIFO that must be skipped with a warning.
func buildTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(rel string) string { return filepath.Join(root, rel) }
	must(os.MkdirAll(p("a/b/deep/er"), 0o755))
	must(os.WriteFile(p("a/b/c.txt"), []byte("hello"), 0o644))
	must(os.WriteFile(p("a/b/deep/er/leaf"), []byte("leaf"), 0o644))
	must(os.WriteFile(p("a/exec"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(p("hard1"), bytes.Repeat([]byte("h"), 10000), 0o600))
	must(os.Link(p("hard1"), p("hard2")))
	must(os.WriteFile(p("empty"), nil, 0o644))
	must(os.Symlink("b/c.txt", p("a/link")))
	must(os.Symlink("/nonexistent/x", p("dangling")))
	f, err := os.Create(p("sparse"))
	must(err)
	_, err = f.WriteAt(bytes.Repeat([]byte("s"), 4096), 8<<20)
	must(err)
	must(f.Truncate(16 << 20))
	must(f.Close())
	must(unix.Setxattr(p("a/b/c.txt"), "user.lvss", []byte("kept"), 0))
	must(unix.Mkfifo(p("fifo"), 0o644))

	must(os.Chown(p("a/b/c.txt"), 1001, 1002))
	must(os.Chmod(p("a/b/c.txt"), 0o640))
	must(os.Chown(p("a/exec"), 1001, 1001))
	must(unix.Chmod(p("a/exec"), 0o4755)) // os.Chmod would drop the setuid bit
	must(unix.Lchown(p("a/link"), 1003, 1003))
	must(os.Chown(p("a/b"), 1001, 1001))
	stamp := func(rel string, year int) {
		ts := unix.NsecToTimespec(time.Date(year, 1, 2, 3, 4, 5, 123456789, time.UTC).UnixNano())
		must(unix.UtimesNanoAt(unix.AT_FDCWD, p(rel), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	}
	for i, rel := range []string{"a/b/deep/er/leaf", "a/b/deep/er", "a/b/deep", "a/b/c.txt", "a/link", "a/exec", "hard1", "sparse", "dangling", "a/b", "a", "."} {
		stamp(rel, 2001+i)
	}
	must(os.Chmod(p("a/b"), 0o500)) // read-only directory with entries
	must(os.Chmod(p("a"), 0o750))
}

// sameTree compares a volume with its copy entry by entry; skip names
// entries not expected in the copy.
func sameTree(t *testing.T, src, dst string, skip ...string) {
	t.Helper()
	left := listTree(t, src, skip)
	right := listTree(t, dst, nil)
	if strings.Join(left, "\n") != strings.Join(right, "\n") {
		t.Fatalf("entries differ:\nvolume: %v\ncopy:   %v", left, right)
	}
	for _, rel := range left {
		var a, b unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, rel), &a); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lstat(filepath.Join(dst, rel), &b); err != nil {
			t.Fatal(err)
		}
		if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Mtim != b.Mtim {
			t.Errorf("%s: volume mode %o uid %d gid %d mtime %v; copy mode %o uid %d gid %d mtime %v",
				rel, a.Mode, a.Uid, a.Gid, a.Mtim, b.Mode, b.Uid, b.Gid, b.Mtim)
		}
		switch a.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			x, _ := os.ReadFile(filepath.Join(src, rel))
			y, _ := os.ReadFile(filepath.Join(dst, rel))
			if !bytes.Equal(x, y) {
				t.Errorf("%s: content differs", rel)
			}
		case unix.S_IFLNK:
			x, _ := os.Readlink(filepath.Join(src, rel))
			y, _ := os.Readlink(filepath.Join(dst, rel))
			if x != y {
				t.Errorf("%s: link target %q, copy %q", rel, x, y)
			}
		}
	}
}

func listTree(t *testing.T, root string, skip []string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, s := range skip {
			if rel == s {
				return nil
			}
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestContentPreserved(t *testing.T) {
	for _, fstype := range []string{"ext4", "xfs", "btrfs"} {
		t.Run(fstype, func(t *testing.T) {
			e := newEnv(t, fstype)
			buildTree(t, e.vol)
			s := mustSnap(t, e.p, e.vol)[0]
			if s.DevicePath != filepath.Join(e.copies, s.ID.String()) || s.Handle != s.DevicePath {
				t.Fatalf("device path %s, handle %s", s.DevicePath, s.Handle)
			}
			sameTree(t, e.vol, s.DevicePath, "fifo")
			if s.Inconsistent != "" {
				t.Fatalf("a quiet volume was reported inconsistent: %s", s.Inconsistent)
			}
			if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], filepath.Join(e.vol, "fifo")) {
				t.Fatalf("want one warning naming the skipped FIFO, got %q", s.Warnings)
			}
			var h1, h2, sp, ex unix.Stat_t
			_ = unix.Lstat(filepath.Join(s.DevicePath, "a/exec"), &ex)
			if ex.Mode&unix.S_ISUID == 0 {
				t.Errorf("setuid bit lost: mode %o", ex.Mode)
			}
			_ = unix.Lstat(filepath.Join(s.DevicePath, "hard1"), &h1)
			_ = unix.Lstat(filepath.Join(s.DevicePath, "hard2"), &h2)
			if h1.Ino != h2.Ino || h1.Nlink != 2 {
				t.Errorf("hard links not kept: inodes %d %d, links %d", h1.Ino, h2.Ino, h1.Nlink)
			}
			_ = unix.Lstat(filepath.Join(s.DevicePath, "sparse"), &sp)
			if sp.Size != 16<<20 || sp.Blocks*512 > 1<<20 {
				t.Errorf("sparse file: size %d, %d bytes allocated; want 16 MiB with holes", sp.Size, sp.Blocks*512)
			}
			buf := make([]byte, 16)
			if n, err := unix.Lgetxattr(filepath.Join(s.DevicePath, "a/b/c.txt"), "user.lvss", buf); err != nil || string(buf[:n]) != "kept" {
				t.Errorf("extended attribute: %q %v", buf[:n], err)
			}
			var dir unix.Stat_t
			_ = unix.Stat(e.copies, &dir)
			if dir.Mode&0o077 != 0 {
				t.Errorf("snapshot directory mode %o; want it private to root", dir.Mode&0o777)
			}
		})
	}
}
