package btrfs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/uuid"

	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vsserr"
)

// The snapshots the provider holds, once their set is made: finding them
// again after a restart (Query), deleting them, and exposing them. The
// creation of a set is in provider.go.

// Query implements provider.Provider. It finds snapshots where they can be
// after a restart: every .lvss-snapshots subvolume reachable from the
// btrfs mounts of lvssd's mount namespace, every configured snapshot_dir,
// and every directory this process used. A snapshot is a read-only
// subvolume named by its GUID; in a configured snapshot_dir, which may
// hold other things, it must also have its record.
func (p *Provider) Query(ctx context.Context) ([]provider.Snapshot, error) {
	dirs, err := defaultDirs()
	if err != nil {
		return nil, vsserr.Wrap(vsserr.ProviderVeto, err, "btrfs: find snapshot directories")
	}
	p.mu.Lock()
	for d := range p.dirs {
		dirs = append(dirs, d)
	}
	p.mu.Unlock()
	for _, v := range p.cfg.Volumes {
		if v.SnapshotDir != "" {
			dirs = append(dirs, v.SnapshotDir)
		}
	}
	seen := map[string]bool{}
	var out []provider.Snapshot
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if r, err := filepath.EvalSymlinks(d); err == nil {
			d = r
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		snaps, err := p.scan(d)
		if err != nil {
			return nil, classify(err, "btrfs: list %s", d)
		}
		out = append(out, snaps...)
	}
	return out, nil
}

func (p *Provider) scan(dir string) ([]provider.Snapshot, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	owned := filepath.Base(dir) == defaultDirName
	var out []provider.Snapshot
	for _, e := range entries {
		id, err := uuid.Parse(e.Name())
		if err != nil || id.String() != e.Name() || !e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		ro, created, err := readOnlySnapshotInfo(path)
		if err != nil || !ro {
			continue
		}
		rec, err := readRecord(dir, id)
		if err != nil && !owned {
			continue
		}
		out = append(out, provider.Snapshot{ID: id, SetID: rec.SetID, OriginalVolume: rec.Volume,
			DevicePath: filepath.Join(path, rec.Rel), Handle: path, Warnings: rec.Warnings, Created: created})
	}
	return out, nil
}

// handle checks that a snapshot's handle names a snapshot of ours: an
// absolute path whose last element is the snapshot's GUID.
func handle(s provider.Snapshot) (string, error) {
	h := s.Handle
	if !filepath.IsAbs(h) || filepath.Clean(h) != h || filepath.Base(h) != s.ID.String() {
		return "", vsserr.New(vsserr.InvalidArg, "btrfs: %q is not the handle of snapshot %s", h, s.ID)
	}
	return h, nil
}

// DeleteSnapshot implements provider.Provider. Exposures of the snapshot
// are unmounted first: the kernel deletes a subvolume even under a bind
// mount of it, which would leave the mount showing a deleted snapshot. A
// snapshot already gone is not an error. Given a context already done, it
// does nothing (the contract: a cancelled delete leaves the snapshot whole).
func (p *Provider) DeleteSnapshot(ctx context.Context, s provider.Snapshot) error {
	h, err := handle(s)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.unexposeAll(s.ID); err != nil {
		return p.veto(err)
	}
	if err := destroySubvolume(h); err != nil {
		if errors.Is(err, errNotSnapshot) {
			return vsserr.Wrap(vsserr.InvalidArg, err, "btrfs: handle of snapshot %s", s.ID)
		}
		return p.veto(classify(err, "btrfs: delete snapshot %s", s.ID))
	}
	if err := removeRecord(filepath.Dir(h), s.ID); err != nil {
		p.log.Warn("could not remove the snapshot record", "snapshot", s.ID, "err", err)
	}
	p.log.Info("snapshot deleted", "snapshot", s.ID, "path", h)
	return nil
}

func (p *Provider) unexposeAll(id uuid.UUID) error {
	points, err := snapshotMounts(id.String())
	if err != nil {
		return vsserr.Wrap(vsserr.ProviderVeto, err, "btrfs: read the mount table")
	}
	for _, m := range points {
		if err := unmount(m); err != nil {
			return unmountError(m, id, err)
		}
		p.log.Info("snapshot unexposed", "snapshot", id, "path", m)
	}
	return nil
}

func unmountError(path string, id uuid.UUID, err error) error {
	if errors.Is(err, syscall.EBUSY) {
		return vsserr.Wrap(vsserr.ProviderVeto, err, "btrfs: snapshot %s is exposed at %s and in use; close the files and leave the directories under it, then retry", id, path)
	}
	return classify(err, "btrfs: unmount %s", path)
}

// Expose implements provider.Exposer: a read-only (and nosuid, nodev) bind
// mount of the snapshot's DevicePath at path, an existing directory. It
// returns the path with symlinks resolved. Exposing again at the same
// place is a no-op.
func (p *Provider) Expose(ctx context.Context, s provider.Snapshot, path string) (string, error) {
	h, err := handle(s)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(path) {
		return "", vsserr.New(vsserr.InvalidArg, "btrfs: expose path %q is not absolute", path)
	}
	if s.DevicePath != h && !strings.HasPrefix(s.DevicePath, h+"/") {
		return "", vsserr.New(vsserr.InvalidArg, "btrfs: device path %s is not inside snapshot %s", s.DevicePath, h)
	}
	if ro, err := isReadOnlySubvolume(h); err != nil || !ro {
		if err == nil {
			err = fs.ErrNotExist
		}
		return "", classify(err, "btrfs: snapshot %s", s.ID)
	}
	if _, err := os.Stat(s.DevicePath); err != nil {
		return "", classify(err, "btrfs: snapshot %s", s.ID)
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", classify(err, "btrfs: expose path %s", path)
	}
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		return "", vsserr.New(vsserr.InvalidArg, "btrfs: expose path %s is not a directory", path)
	}
	if ok, err := exposedAt(target, s.ID.String()); err == nil && ok {
		return target, nil
	}
	if err := bindReadOnly(s.DevicePath, target); err != nil {
		return "", p.veto(classify(err, "btrfs: expose snapshot %s", s.ID))
	}
	p.log.Info("snapshot exposed", "snapshot", s.ID, "path", target)
	return target, nil
}

// Unexpose implements provider.Exposer. It unmounts only a mount of this
// snapshot; nothing of it mounted there is not an error.
func (p *Provider) Unexpose(ctx context.Context, s provider.Snapshot, exposedName string) error {
	target, err := filepath.EvalSymlinks(exposedName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return classify(err, "btrfs: exposed path %s", exposedName)
	}
	// Bounded: each round removes one mount of ours from the top.
	for range 16 {
		ok, err := exposedAt(target, s.ID.String())
		if err != nil {
			return vsserr.Wrap(vsserr.ProviderVeto, err, "btrfs: read the mount table")
		}
		if !ok {
			return nil
		}
		if err := unmount(target); err != nil {
			return p.veto(unmountError(target, s.ID, err))
		}
		p.log.Info("snapshot unexposed", "snapshot", s.ID, "path", target)
	}
	return nil
}
