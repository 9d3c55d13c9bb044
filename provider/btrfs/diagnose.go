package btrfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/confval"
)

// Diagnose implements provider.Diagnoser: what BeginPrepareSnapshot and
// EndPrepareSnapshots would find, without creating anything. The snapshot
// directory is checked where it would be (the configured snapshot_dir, or
// .lvss-snapshots at the root of the volume's subvolume): on the volume's
// btrfs, writable, with limits.min_free left; and the subvolumes nested
// under the volume are named, since its snapshots show them as empty
// directories.
func (p *Provider) Diagnose(_ context.Context, volume string) provider.Diagnosis {
	loc, err := locate(volume)
	if errors.Is(err, errNoBtrfs) {
		return provider.Diagnosis{Reason: "not a directory on btrfs"}
	}
	if err != nil {
		return provider.Diagnosis{Reason: "cannot inspect it: " + err.Error()}
	}
	d := provider.Diagnosis{Supported: true, Reason: fmt.Sprintf("a directory on btrfs, in subvolume %d", loc.Subvol)}
	fail := func(check, fix, format string, args ...any) {
		d.Problems = append(d.Problems, provider.Problem{Check: check, Severity: provider.Error, Message: fmt.Sprintf(format, args...), Fix: fix})
	}
	var (
		dir    string
		dirLoc location
		exists bool
	)
	if c := p.configFor(volume, loc); c != nil && c.SnapshotDir != "" {
		dir = filepath.Clean(c.SnapshotDir)
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			dir = r
		}
		fix := "set snapshot_dir of " + volume + " in [[providers.btrfs.volume]] to a directory on the same btrfs filesystem"
		probe := dir
		dirLoc, err = locate(dir)
		if errors.Is(err, fs.ErrNotExist) {
			probe = filepath.Dir(dir) // made as a subvolume there at the first snapshot
			dirLoc, err = locate(probe)
			if errors.Is(err, fs.ErrNotExist) {
				fail("btrfs.snapshot_dir", "create "+probe+" on the volume's btrfs filesystem, or "+fix,
					"snapshot_dir %s does not exist, nor does its parent", c.SnapshotDir)
				return d
			}
		} else {
			exists = err == nil
		}
		switch {
		case errors.Is(err, errNoBtrfs):
			fail("btrfs.snapshot_dir", fix, "snapshot_dir %s is not on btrfs: a btrfs snapshot can only be kept on the filesystem of its subvolume", c.SnapshotDir)
			return d
		case err != nil:
			fail("btrfs.snapshot_dir", fix, "snapshot_dir %s: %v", c.SnapshotDir, err)
			return d
		case dirLoc.FSID != loc.FSID:
			fail("btrfs.snapshot_dir", fix, "snapshot_dir %s is on another btrfs filesystem: a btrfs snapshot can only be kept on the filesystem of its subvolume", c.SnapshotDir)
			return d
		}
		d.SnapshotDir = dir
		p.checkSpace(&d, probe)
	} else {
		if loc.Root == "" {
			fail("btrfs.subvolume_root", "set snapshot_dir for "+volume+" in [[providers.btrfs.volume]]",
				"the root of the subvolume holding %s is not reachable in lvssd's mount namespace (a subdirectory is mounted there), so %s cannot be made there",
				volume, defaultDirName)
			return d
		}
		dir = filepath.Join(loc.Root, defaultDirName)
		d.SnapshotDir = dir
		probe := loc.Root
		dirLoc, err = locate(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Made at the first snapshot.
		case err == nil && (dirLoc.FSID != loc.FSID || dirLoc.Rel != "" || dirLoc.Subvol == loc.Subvol):
			fail("btrfs.snapshot_dir", "move "+dir+" away, or set snapshot_dir for "+volume+" in [[providers.btrfs.volume]]",
				"%s exists but is not the subvolume lvss keeps snapshots in", dir)
			return d
		case err != nil:
			fail("btrfs.snapshot_dir", "", "%s: %v", dir, err)
			return d
		default:
			exists, probe = true, dir
		}
		p.checkSpace(&d, probe)
	}
	nested, err := nestedPaths(volume, loc, dirLoc, exists)
	switch {
	case err != nil:
		d.Problems = append(d.Problems, provider.Problem{Check: "btrfs.nested_subvolumes", Severity: provider.Warning,
			Message: fmt.Sprintf("could not list the subvolumes nested in %s (%v); any of them would appear as an empty directory in its snapshots", volume, err)})
	case len(nested) > 0:
		d.Problems = append(d.Problems, provider.Problem{Check: "btrfs.nested_subvolumes", Severity: provider.Warning,
			Message: nestedMessage(nested),
			Fix:     "snapshot each of them too (lvss backup --for PATH for each), or make them plain directories"})
	}
	return d
}

// checkSpace adds the problems EndPrepareSnapshots would refuse a snapshot
// for: a read-only place, or less than limits.min_free left there.
func (p *Provider) checkSpace(d *provider.Diagnosis, dir string) {
	if err := accessW(dir); err != nil {
		msg := fmt.Sprintf("%s is not writable: %v", dir, err)
		if errors.Is(err, syscall.EROFS) {
			msg = dir + " is on a read-only mount or subvolume"
		}
		d.Problems = append(d.Problems, provider.Problem{Check: "btrfs.writable", Severity: provider.Error, Message: msg,
			Fix: "mount it read-write, or set a writable snapshot_dir on the same filesystem in [[providers.btrfs.volume]]"})
		return
	}
	free, err := freeBytes(dir)
	if err == nil && free < uint64(p.minFree) {
		d.Problems = append(d.Problems, provider.Problem{Check: "btrfs.free_space", Severity: provider.Error,
			Message: fmt.Sprintf("%s has %s free, less than limits.min_free (%s): a snapshot would be refused with VSS_E_INSUFFICIENT_STORAGE", dir, confval.Size(free), p.minFree),
			Fix:     "free space on the filesystem (lvss delete shadows --for PATH --oldest), or lower limits.min_free"})
	}
}

// nestedMessage says which nested subvolumes a snapshot would miss.
func nestedMessage(paths []string) string {
	if len(paths) == 1 {
		return "nested subvolume " + paths[0] + " is not in its snapshots (a btrfs snapshot stops at subvolume boundaries): it appears there as an empty directory"
	}
	return "nested subvolumes " + strings.Join(paths, ", ") + " are not in its snapshots (a btrfs snapshot stops at subvolume boundaries): they appear there as empty directories"
}

// nestedPaths lists the subvolumes nested under volume, by path. The
// provider's own snapshot directory (dirLoc, when it exists) and the
// snapshots in it are not data of the volume and are left out.
func nestedPaths(volume string, loc, dirLoc location, dirExists bool) ([]string, error) {
	kids, err := childSubvolumes(volume, loc.Subvol)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range kids {
		if dirExists && (k.ID == dirLoc.Subvol && dirLoc.Rel == "" || dirLoc.Subvol == loc.Subvol && k.DirIno == dirLoc.Ino) {
			continue
		}
		if loc.Rel != "" && !strings.HasPrefix(k.Rel, loc.Rel+"/") {
			continue // elsewhere in the subvolume, not under this volume
		}
		out = append(out, filepath.Join(volume, strings.TrimPrefix(k.Rel, loc.Rel)))
	}
	slices.Sort(out)
	return out, nil
}

// ConfiguredVolumes implements provider.Configured: the paths of
// [[providers.btrfs.volume]].
func (p *Provider) ConfiguredVolumes() []string {
	var out []string
	for _, v := range p.cfg.Volumes {
		out = append(out, filepath.Clean(v.Path))
	}
	return out
}

var (
	_ provider.Diagnoser  = (*Provider)(nil)
	_ provider.Configured = (*Provider)(nil)
)
