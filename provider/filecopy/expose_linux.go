package filecopy

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vsserr"
)

// Expose implements provider.Exposer: a read-only bind mount of the copy
// at path, an existing directory. nosuid and nodev as well: the copy keeps
// setuid bits, and exposing a snapshot must not hand out a way to run them.
func (p *Provider) Expose(_ context.Context, s provider.Snapshot, path string) (string, error) {
	dir, err := p.locate(s)
	if err != nil {
		return "", err
	}
	if rec, err := readRecord(dir + ".json"); err != nil || rec.State != stateCommitted {
		return "", vsserr.New(vsserr.ObjectNotFound, "copy provider: no snapshot %s", filepath.Base(dir))
	}
	if !filepath.IsAbs(path) {
		return "", vsserr.New(vsserr.InvalidArg, "copy provider: expose path %q is not absolute", path)
	}
	path = filepath.Clean(path)
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		return "", vsserr.New(vsserr.InvalidArg, "copy provider: expose path %s is not an existing directory", path)
	}
	binds, err := bindsOf(dir)
	if err != nil {
		return "", vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: mounts of %s", dir)
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		for _, b := range binds {
			if b == real {
				return path, nil // exposed there already
			}
		}
	}
	if err := unix.Mount(dir, path, "", unix.MS_BIND, ""); err != nil {
		return "", mountErr(err, "bind %s at %s", dir, path)
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	if err := unix.Mount("", path, "", flags, ""); err != nil {
		// A writable exposure of a snapshot must not survive.
		if uerr := unix.Unmount(path, 0); uerr != nil {
			_ = unix.Unmount(path, unix.MNT_DETACH)
		}
		return "", mountErr(err, "make %s read-only", path)
	}
	p.log.Info("snapshot exposed", "snapshot", filepath.Base(dir), "path", path)
	return path, nil
}

// Unexpose implements provider.Exposer. Idempotent: a path where the copy
// is not mounted (any more) is left alone.
func (p *Provider) Unexpose(_ context.Context, s provider.Snapshot, exposedName string) error {
	dir, err := p.locate(s)
	if err != nil {
		return err
	}
	binds, err := bindsOf(dir)
	if err != nil {
		return vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: mounts of %s", dir)
	}
	target := filepath.Clean(exposedName)
	if real, err := filepath.EvalSymlinks(target); err == nil {
		target = real
	}
	for _, b := range binds {
		if b == target {
			if err := unmount(b, p.log); err != nil {
				return err
			}
			p.log.Info("snapshot unexposed", "snapshot", filepath.Base(dir), "path", b)
		}
	}
	return nil
}

func mountErr(err error, format string, args ...any) error {
	if err == unix.EPERM {
		return vsserr.Wrap(vsserr.AccessDenied, err, "copy provider: "+format, args...)
	}
	return vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: "+format, args...)
}

// unmount detaches a mount; if something holds it open it is detached
// lazily: what the caller wants is that the path no longer shows the
// snapshot, and open files keep working until closed.
func unmount(path string, log *slog.Logger) error {
	err := unix.Unmount(path, 0)
	if err == unix.EBUSY {
		log.Warn("exposed snapshot busy; detaching it lazily", "path", path)
		err = unix.Unmount(path, unix.MNT_DETACH)
	}
	if err == nil || err == unix.EINVAL || err == unix.ENOENT {
		return nil
	}
	return mountErr(err, "unmount %s", path)
}

// unmountAll removes every exposure of dir, deepest first.
func unmountAll(dir string, log *slog.Logger) error {
	binds, err := bindsOf(dir)
	if err != nil {
		return err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(binds)))
	for _, b := range binds {
		if err := unmount(b, log); err != nil {
			return err
		}
	}
	return nil
}

// bindsOf lists the mount points that show dir: mounts of its filesystem
// whose root inside that filesystem is dir's path there.
func bindsOf(dir string) ([]string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, err
	}
	home, err := mountinfo.Find(ms, real)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(home.MountPoint, real)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(home.Root, rel)
	var out []string
	for _, m := range ms {
		if m.ID != home.ID && m.Device() == home.Device() && (m.Root == root || m.Root == root+"//deleted") {
			out = append(out, m.MountPoint)
		}
	}
	return out, nil
}
