package filecopy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/vsserr"
)

// The tree is walked with file descriptors (openat, fstatat with
// O_NOFOLLOW) rather than path strings: a user who swaps a directory for a
// symlink in the middle of a copy must not make root copy, or clone,
// something outside the volume into the snapshot.

// result is what one volume's copy produced.
type result struct {
	files, dirs, symlinks int64
	bytes                 int64 // apparent bytes of regular files, each inode once
	cloned, plain         int64 // regular files reflinked / copied
	inconsistent          string
	warnings              []string
	took                  time.Duration
}

// stamp is what identifies a version of an entry: any change in it while
// the copy runs means the copy may hold a mix of old and new.
type stamp struct {
	ino          uint64
	mode         uint32
	uid, gid     uint32
	size         int64
	mtime, ctime unix.Timespec
}

func stampOf(st *unix.Stat_t) stamp {
	return stamp{ino: st.Ino, mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

// same compares two stamps of one entry. For a directory, size and times
// move whenever an entry is created or removed, even a temporary file that
// is gone again; what matters there is its list of names, which is
// compared on its own, so only identity and attributes count.
func (a stamp) same(b stamp) bool {
	if a.ino != b.ino || a.mode != b.mode || a.uid != b.uid || a.gid != b.gid {
		return false
	}
	if a.mode&unix.S_IFMT == unix.S_IFDIR {
		return true
	}
	return a.size == b.size && a.mtime == b.mtime && a.ctime == b.ctime
}

// node is one entry as it was when copied, kept to check it again once
// the whole tree is copied.
type node struct {
	name  string
	st    stamp
	mount bool     // a mount point: left empty, not descended
	names []string // directories: the names listed when copied
	kids  []*node  // directories: the entries copied
}

// measurement is what EndPrepareSnapshots learns about a volume.
type measurement struct {
	bytes   int64  // apparent size of its regular files, each inode once
	files   int64  // regular files
	entries int64  // everything the copy will create
	sample  string // a non-empty regular file, for the reflink probe
}

// mountsInside lists the mount points strictly inside vol: the copy does
// not cross them (another filesystem, or a bind mount that could loop).
func mountsInside(vol string) (map[string]bool, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, m := range ms {
		if m.MountPoint != vol && within(m.MountPoint, vol) {
			out[m.MountPoint] = true
		}
	}
	return out, nil
}

// skipName reports whether an entry is left out of the copy: the snapshot
// directory, when the operator put it inside the volume.
func skipName(abs, skip string) bool { return abs == skip }

// readNames lists a directory open at fd, sorted, without "." and "..".
func readNames(fd int) ([]string, error) {
	buf := make([]byte, 64<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	sort.Strings(names)
	return names, nil
}

// openAt opens name below dirfd without following a symlink there.
// O_NOATIME keeps the copy from writing access times to the volume.
func openAt(dirfd int, name string, flags int) (int, error) {
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_NOATIME, 0)
		if err == unix.EPERM {
			// O_NOATIME needs ownership or CAP_FOWNER.
			fd, err = unix.Openat(dirfd, name, flags, 0)
		}
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// measure totals a volume the way the copy will walk it.
func measure(ctx context.Context, vol, skip string, before func()) (measurement, error) {
	var m measurement
	mounts, err := mountsInside(vol)
	if err != nil {
		return m, vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: mounts of %s", vol)
	}
	root, err := openAt(unix.AT_FDCWD, vol, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return m, vsserr.Wrap(vsserr.ObjectNotFound, err, "copy provider: open %s", vol)
	}
	defer unix.Close(root)
	seen := map[[2]uint64]bool{}
	var walk func(fd int, dir string) error
	walk = func(fd int, dir string) error {
		names, err := readNames(fd)
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, name := range names {
			if before != nil {
				before()
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			abs := filepath.Join(dir, name)
			if skipName(abs, skip) {
				continue
			}
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if err == unix.ENOENT {
					continue
				}
				return fmt.Errorf("stat %s: %w", abs, err)
			}
			m.entries++
			switch {
			case mounts[abs]:
			case st.Mode&unix.S_IFMT == unix.S_IFREG:
				m.files++
				key := [2]uint64{st.Dev, st.Ino}
				if st.Nlink > 1 {
					if seen[key] {
						continue
					}
					seen[key] = true
				}
				m.bytes += st.Size
				if m.sample == "" && st.Size > 0 {
					m.sample = abs
				}
			case st.Mode&unix.S_IFMT == unix.S_IFDIR:
				sub, err := openAt(fd, name, unix.O_RDONLY|unix.O_DIRECTORY)
				if err != nil {
					if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
						continue // changed under us; the copy will notice
					}
					return fmt.Errorf("open %s: %w", abs, err)
				}
				err = walk(sub, abs)
				unix.Close(sub)
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(root, vol); err != nil {
		return m, vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: measuring %s", vol)
	}
	return m, nil
}

// errChanged and errVanished say an entry was replaced or removed between
// its stat and its copy; that is recorded as a change, not a failure.
var (
	errChanged  = errors.New("entry changed during the copy")
	errVanished = errors.New("entry vanished during the copy")
)

// copier copies one volume.
type copier struct {
	ctx     context.Context
	vol     string // the volume, symlink-free
	dst     string // the copy's root
	skip    string // the snapshot directory, left out
	mounts  map[string]bool
	max     int64
	found   int64 // bytes EndPrepareSnapshots measured, for the message when the volume grew
	minFree int64
	reflink bool // try FICLONE; cleared at the first "not here" answer
	after   func(rel string)

	res      result
	avail    int64 // free bytes at the destination: last statfs minus plain copies since
	sinceFS  int   // entries since that statfs
	links    map[[2]uint64]string
	changes  map[string]string // path relative to the volume → how it changed
	special  []string
	mountPts []string
	attrErrs []string
	cloneErr error
	rootNode *node
}

// copyVolume copies sn's volume into its destination and checks the tree
// once more afterwards.
func (p *Provider) copyVolume(ctx context.Context, sn *snap) (result, error) {
	start := time.Now()
	mounts, err := mountsInside(sn.real)
	if err != nil {
		return result{}, vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: mounts of %s", sn.volume)
	}
	c := &copier{ctx: ctx, vol: sn.real, dst: filepath.Join(p.dir, sn.id.String()), skip: p.realDir(), mounts: mounts,
		max: p.maxBytes, found: sn.expected, minFree: p.minFree, reflink: sn.reflink, after: p.afterEntry,
		links: map[[2]uint64]string{}, changes: map[string]string{}}
	if err := c.statfs(); err != nil {
		return c.res, err
	}
	if err := c.copyRoot(); err != nil {
		return c.res, c.classify(err)
	}
	if err := c.verifyRoot(); err != nil {
		return c.res, c.classify(err)
	}
	c.res.took = time.Since(start)
	c.res.inconsistent = c.inconsistency()
	c.res.warnings = c.warnings()
	return c.res, nil
}

// classify gives an error its HRESULT: storage exhaustion is
// VSS_E_INSUFFICIENT_STORAGE, the context's end stays recognisable, and
// anything else is a veto naming what failed.
func (c *copier) classify(err error) error {
	var ve *vsserr.Error
	switch {
	case errors.As(err, &ve):
		return err
	case errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT):
		return vsserr.Wrap(vsserr.InsufficientStorage, err, "copy of %s: the destination %s is full", c.vol, c.dst)
	case c.ctx.Err() != nil:
		// Whatever failed, the copy ended because its time was up; the
		// coordinator needs to see that (VSS_E_HOLD_WRITES_TIMEOUT).
		if errors.Is(err, c.ctx.Err()) {
			return err
		}
		return fmt.Errorf("%w: %v", c.ctx.Err(), err)
	}
	return vsserr.Wrap(vsserr.ProviderVeto, err, "copy of %s", c.vol)
}

func (c *copier) statfs() error {
	var st unix.Statfs_t
	if err := unix.Statfs(c.dst, &st); err != nil {
		return vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: free space of %s", c.dst)
	}
	c.avail, c.sinceFS = int64(st.Bavail)*st.Bsize, 0
	return nil
}

// room makes sure n more bytes of plain copy keep limits.min_free free.
func (c *copier) room(n int64) error {
	if c.avail-n >= c.minFree && c.sinceFS < 1024 {
		return nil
	}
	if err := c.statfs(); err != nil {
		return err
	}
	if c.avail-n < c.minFree {
		return vsserr.New(vsserr.InsufficientStorage,
			"copy of %s: %s free at %s, and copying %s more would go below limits.min_free (%s)",
			c.vol, human(c.avail), c.dst, human(n), human(c.minFree))
	}
	return nil
}

// charge counts n apparent bytes against max_bytes.
func (c *copier) charge(n int64, rel string) error {
	if c.res.bytes+n > c.max {
		return vsserr.New(vsserr.InsufficientStorage,
			"copy of %s grew past providers.copy.max_bytes (%s) while it was copied: %s measured before, %s copied, %s more in %s",
			c.vol, human(c.max), human(c.found), human(c.res.bytes), human(n), filepath.Join(c.vol, rel))
	}
	c.res.bytes += n
	return nil
}

func (c *copier) change(rel, how string) {
	if _, ok := c.changes[rel]; !ok {
		c.changes[rel] = how
	}
}

func (c *copier) copyRoot() error {
	src, err := openAt(unix.AT_FDCWD, c.vol, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open %s: %w", c.vol, err)
	}
	defer unix.Close(src)
	dst, err := openAt(unix.AT_FDCWD, c.dst, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open %s: %w", c.dst, err)
	}
	defer unix.Close(dst)
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return err
	}
	root := &node{st: stampOf(&st)}
	if err := c.copyDir(src, dst, "", root); err != nil {
		return err
	}
	c.rootNode = root
	c.attrs(src, dst, "", &st)
	return unix.UtimesNanoAt(unix.AT_FDCWD, c.dst, []unix.Timespec{st.Atim, st.Mtim}, 0)
}

// copyDir copies the entries of the directory open at src into dst.
func (c *copier) copyDir(src, dst int, rel string, n *node) error {
	names, err := readNames(src)
	if err != nil {
		return fmt.Errorf("list %s: %w", filepath.Join(c.vol, rel), err)
	}
	for _, name := range names {
		if skipName(filepath.Join(c.vol, rel, name), c.skip) {
			continue
		}
		n.names = append(n.names, name)
	}
	for _, name := range n.names {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		kid, err := c.copyEntry(src, dst, rel, name)
		if err != nil {
			return err
		}
		if kid != nil {
			n.kids = append(n.kids, kid)
		}
		if c.after != nil {
			c.after(path.Join(rel, name))
		}
	}
	return nil
}

// copyEntry copies one entry and stats it again afterwards; it returns nil
// for an entry that is not part of the copy (gone, or a special file).
func (c *copier) copyEntry(src, dst int, dir, name string) (*node, error) {
	rel := path.Join(dir, name)
	abs := filepath.Join(c.vol, rel)
	var st unix.Stat_t
	if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			c.change(rel, "vanished")
			return nil, nil
		}
		return nil, fmt.Errorf("stat %s: %w", abs, err)
	}
	c.sinceFS++
	n := &node{name: name, st: stampOf(&st)}
	var err error
	switch typ := st.Mode & unix.S_IFMT; {
	case c.mounts[abs]:
		// What is mounted here belongs to another volume; an empty
		// directory keeps the tree's shape, as btrfs shows a nested
		// subvolume.
		n.mount = true
		c.mountPts = append(c.mountPts, abs)
		if typ != unix.S_IFDIR {
			return nil, nil
		}
		if err := unix.Mkdirat(dst, name, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", filepath.Join(c.dst, rel), err)
		}
		dfd, err := openAt(dst, name, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", filepath.Join(c.dst, rel), err)
		}
		c.attrs(-1, dfd, rel, &st)
		unix.Close(dfd)
		c.res.dirs++
		return n, c.times(dst, name, &st)
	case typ == unix.S_IFDIR:
		err = c.copySubdir(src, dst, rel, name, &st, n)
	case typ == unix.S_IFREG:
		err = c.copyFile(src, dst, rel, name, &st)
	case typ == unix.S_IFLNK:
		err = c.copySymlink(src, dst, rel, name, &st)
	default:
		c.special = append(c.special, abs)
		return nil, nil
	}
	if errors.Is(err, errVanished) {
		c.change(rel, "vanished")
		return nil, nil
	}
	if errors.Is(err, errChanged) {
		c.change(rel, "changed")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var after unix.Stat_t
	if err := unix.Fstatat(src, name, &after, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			c.change(rel, "vanished")
			return n, nil
		}
		return nil, fmt.Errorf("stat %s: %w", abs, err)
	}
	if !n.st.same(stampOf(&after)) {
		c.change(rel, "changed")
	}
	return n, nil
}

func (c *copier) copySubdir(src, dst int, rel, name string, st *unix.Stat_t, n *node) error {
	sfd, err := openAt(src, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		if err == unix.ENOENT {
			return errVanished
		}
		if err == unix.ENOTDIR || err == unix.ELOOP {
			return errChanged
		}
		return fmt.Errorf("open %s: %w", filepath.Join(c.vol, rel), err)
	}
	defer unix.Close(sfd)
	if err := sameInode(sfd, st); err != nil {
		return err
	}
	if err := unix.Mkdirat(dst, name, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(c.dst, rel), err)
	}
	dfd, err := openAt(dst, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Join(c.dst, rel), err)
	}
	defer unix.Close(dfd)
	c.res.dirs++
	if err := c.copyDir(sfd, dfd, rel, n); err != nil {
		return err
	}
	// Owner, mode and times last: a read-only directory must still take
	// its entries, and creating them moves its mtime.
	c.attrs(sfd, dfd, rel, st)
	return c.times(dst, name, st)
}

// sameInode checks that what was opened is what was stat'ed.
func sameInode(fd int, st *unix.Stat_t) error {
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		return err
	}
	if now.Ino != st.Ino || now.Dev != st.Dev || now.Mode&unix.S_IFMT != st.Mode&unix.S_IFMT {
		return errChanged
	}
	return nil
}

func (c *copier) copyFile(src, dst int, rel, name string, st *unix.Stat_t) error {
	abs := filepath.Join(c.vol, rel)
	key := [2]uint64{st.Dev, st.Ino}
	if st.Nlink > 1 {
		if first, ok := c.links[key]; ok {
			// Another name of a file already copied: link the copies
			// too, so the snapshot has one file, as the volume does.
			if err := unix.Linkat(unix.AT_FDCWD, filepath.Join(c.dst, first), dst, name, 0); err != nil {
				return fmt.Errorf("link %s: %w", filepath.Join(c.dst, rel), err)
			}
			c.res.files++
			return nil
		}
	}
	// O_NONBLOCK: if the file was swapped for a FIFO since the stat,
	// opening it must not wait for a writer.
	in, err := openAt(src, name, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		if err == unix.ENOENT {
			return errVanished
		}
		if err == unix.ELOOP || err == unix.ENXIO {
			return errChanged
		}
		return fmt.Errorf("open %s: %w", abs, err)
	}
	defer unix.Close(in)
	if err := sameInode(in, st); err != nil {
		return err
	}
	var now unix.Stat_t
	if err := unix.Fstat(in, &now); err != nil {
		return err
	}
	size := now.Size
	out, err := unix.Openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(c.dst, rel), err)
	}
	defer unix.Close(out)
	if err := c.charge(size, rel); err != nil {
		return err
	}
	cloned := false
	if c.reflink && size > 0 {
		err := unix.IoctlFileClone(out, in)
		switch {
		case err == nil:
			cloned = true
		case err == unix.EXDEV || err == unix.EOPNOTSUPP || err == unix.ENOTTY || err == unix.ENOSYS:
			// Not on this pair of filesystems at all: stop asking.
			c.reflink, c.cloneErr = false, err
		case err == unix.EINVAL || err == unix.ETXTBSY || err == unix.EPERM:
			// This file only (e.g. a swap file, a DAX file).
		default:
			return fmt.Errorf("reflink %s: %w", abs, err)
		}
	}
	if cloned {
		var got unix.Stat_t
		if err := unix.Fstat(out, &got); err != nil {
			return err
		}
		// The clone took the file as it is now, which may be more than
		// was charged if it grew since the stat.
		if got.Size > size {
			if err := c.charge(got.Size-size, rel); err != nil {
				return err
			}
		}
		c.res.cloned++
	} else {
		if err := c.room(size); err != nil {
			return err
		}
		if err := unix.Ftruncate(out, 0); err != nil {
			return err
		}
		if err := copyData(c.ctx, out, in, size); err != nil {
			return fmt.Errorf("copy %s: %w", abs, err)
		}
		c.avail -= size
		c.res.plain++
	}
	c.attrs(in, out, rel, st)
	if err := c.times(dst, name, st); err != nil {
		return err
	}
	if st.Nlink > 1 {
		c.links[key] = rel
	}
	c.res.files++
	return nil
}

func (c *copier) copySymlink(src, dst int, rel, name string, st *unix.Stat_t) error {
	buf := make([]byte, max(st.Size+1, 256))
	for {
		n, err := unix.Readlinkat(src, name, buf)
		if err == unix.ENOENT {
			return errVanished
		}
		if err == unix.EINVAL {
			return errChanged // no longer a symlink
		}
		if err != nil {
			return fmt.Errorf("readlink %s: %w", filepath.Join(c.vol, rel), err)
		}
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	if err := unix.Symlinkat(string(buf), dst, name); err != nil {
		return fmt.Errorf("symlink %s: %w", filepath.Join(c.dst, rel), err)
	}
	if err := unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		c.attrErr(rel, "owner", err)
	}
	c.res.symlinks++
	return c.times(dst, name, st)
}

// attrs gives a copied file or directory its owner, extended attributes
// (ACLs, capabilities, labels; none when in < 0) and mode, in that order:
// chown clears setuid bits and file capabilities, so they are set after
// it. A failure is a warning, not a failed snapshot: the data is there.
func (c *copier) attrs(in, out int, rel string, st *unix.Stat_t) {
	if err := unix.Fchown(out, int(st.Uid), int(st.Gid)); err != nil {
		c.attrErr(rel, "owner", err)
	}
	if in >= 0 {
		if err := copyXattrs(in, out); err != nil {
			c.attrErr(rel, "extended attributes", err)
		}
	}
	if err := unix.Fchmod(out, st.Mode&0o7777); err != nil {
		c.attrErr(rel, "mode", err)
	}
}

func (c *copier) times(dst int, name string, st *unix.Stat_t) error {
	if err := unix.UtimesNanoAt(dst, name, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", name, err)
	}
	return nil
}

func (c *copier) attrErr(rel, what string, err error) {
	if rel == "" {
		rel = "."
	}
	c.attrErrs = append(c.attrErrs, fmt.Sprintf("%s (%s: %v)", filepath.Join(c.vol, rel), what, err))
}

// verifyRoot walks the volume again after the copy: every entry copied
// must be unchanged and every directory must hold the same names. Together
// with the checks around each file this makes the copy the image of the
// volume at the moment the copy ended, or names what spoils it.
func (c *copier) verifyRoot() error {
	fd, err := openAt(unix.AT_FDCWD, c.vol, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open %s: %w", c.vol, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if !c.rootNode.st.same(stampOf(&st)) {
		c.change(".", "changed")
	}
	return c.verifyDir(fd, "", c.rootNode)
}

func (c *copier) verifyDir(fd int, rel string, n *node) error {
	names, err := readNames(fd)
	if err != nil {
		return fmt.Errorf("list %s: %w", filepath.Join(c.vol, rel), err)
	}
	now := map[string]bool{}
	for _, name := range names {
		if !skipName(filepath.Join(c.vol, rel, name), c.skip) {
			now[name] = true
		}
	}
	for _, name := range n.names {
		if !now[name] {
			c.change(path.Join(rel, name), "vanished")
		}
		delete(now, name)
	}
	for name := range now {
		c.change(path.Join(rel, name), "appeared")
	}
	for _, k := range n.kids {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		krel := path.Join(rel, k.name)
		var st unix.Stat_t
		if err := unix.Fstatat(fd, k.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				c.change(krel, "vanished")
				continue
			}
			return fmt.Errorf("stat %s: %w", filepath.Join(c.vol, krel), err)
		}
		if k.mount {
			continue
		}
		if !k.st.same(stampOf(&st)) {
			c.change(krel, "changed")
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		sub, err := openAt(fd, k.name, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			c.change(krel, "changed")
			continue
		}
		err = c.verifyDir(sub, krel, k)
		unix.Close(sub)
		if err != nil {
			return err
		}
	}
	return nil
}

// listLimit is how many paths a reason or warning names before "and N more".
const listLimit = 10

func (c *copier) inconsistency() string {
	if len(c.changes) == 0 {
		return ""
	}
	rels := make([]string, 0, len(c.changes))
	for rel := range c.changes {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	items := make([]string, len(rels))
	for i, rel := range rels {
		items[i] = filepath.Join(c.vol, rel)
		if how := c.changes[rel]; how != "changed" {
			items[i] += " (" + how + ")"
		}
	}
	return "files changed while they were copied: " + list(items)
}

func (c *copier) warnings() []string {
	var w []string
	if len(c.special) > 0 {
		w = append(w, fmt.Sprintf("%d sockets, devices or FIFOs not copied: %s", len(c.special), list(c.special)))
	}
	if len(c.mountPts) > 0 {
		w = append(w, fmt.Sprintf("mount points inside the volume are empty in the copy: %s", list(c.mountPts)))
	}
	if len(c.attrErrs) > 0 {
		w = append(w, fmt.Sprintf("attributes not copied for %d entries: %s", len(c.attrErrs), list(c.attrErrs)))
	}
	if c.cloneErr != nil && c.res.cloned > 0 {
		w = append(w, fmt.Sprintf("reflinks stopped working during the copy (%v); the rest was copied in full", c.cloneErr))
	}
	return w
}

func list(items []string) string {
	if len(items) <= listLimit {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s (and %d more)", strings.Join(items[:listLimit], ", "), len(items)-listLimit)
}

// probeReflink clones sample into a scratch file in dir: whether the copy
// can reflink is a property of the pair of filesystems, and asking is the
// only reliable test (XFS without reflink=1, btrfs subvolumes on other
// mounts, overlayfs...).
func probeReflink(sample, dir string) bool {
	in, err := openAt(unix.AT_FDCWD, sample, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return false
	}
	defer unix.Close(in)
	out, err := os.CreateTemp(dir, probePrefix)
	if err != nil {
		return false
	}
	defer os.Remove(out.Name())
	defer out.Close()
	return unix.IoctlFileClone(int(out.Fd()), in) == nil
}
