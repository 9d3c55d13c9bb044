//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package btrfs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vsserr"
)

// A revert replaces the live subvolume V by a writable snapshot of the
// read-only snapshot S, next to V in V's parent directory:
//
//  1. journal: the record below is written (fsynced) under the state
//     directory before anything is touched;
//  2. snapshot: a writable snapshot of S is made as T (the parent's
//     ".<name>.lvss-revert-<snapshot GUID>"), its subvolume ID journaled;
//  3. carry: the subvolumes nested in V (.lvss-snapshots with S itself, and
//     any other) are renamed into T where S shows their empty stand-ins:
//     they are volumes of their own, not part of V's content;
//  4. exchange: V and T swap names in one renameat2(RENAME_EXCHANGE), so
//     the volume's path never goes missing;
//  5. cleanup: T, now the old live subvolume, is deleted; processes that
//     still have files in it keep them until they close them.
//
// Each step is idempotent and recognisable afterwards (by subvolume IDs
// and inode numbers), so the journal says where to resume. Before the
// exchange a failure in this process undoes what was done; a process
// killed at any point has the revert finished by RecoverReverts at the
// next start (undone only when S is gone before T was made).

// emptySubvolDirIno is the inode number btrfs gives the empty directory
// that stands for a nested subvolume inside a snapshot
// (BTRFS_EMPTY_SUBVOL_DIR_OBJECTID).
const emptySubvolDirIno = 2

// Journal steps: the last step begun.
const (
	stepSnapshot = "snapshot"
	stepCarry    = "carry"
	stepExchange = "exchange"
	stepCleanup  = "cleanup"
)

// revertJournal is one revert in progress, in
// <state dir>/btrfs-revert/<snapshot GUID>.json.
type revertJournal struct {
	Version    int       `json:"version"`
	SnapshotID uuid.UUID `json:"snapshot_id"`
	Snapshot   string    `json:"snapshot"`   // S: the read-only snapshot's path (its handle)
	Volume     string    `json:"volume"`     // V: the live subvolume
	Temp       string    `json:"temp"`       // T: the new subvolume, then the old one
	OldSubvol  uint64    `json:"old_subvol"` // V's subvolume ID before the revert
	NewSubvol  uint64    `json:"new_subvol,omitempty"`
	Nested     []string  `json:"nested,omitempty"` // subvolumes to carry, relative to V
	Step       string    `json:"step"`
}

func (p *Provider) journalDir() string { return filepath.Join(p.stateDir, "btrfs-revert") }

func (p *Provider) journalPath(id uuid.UUID) string {
	return filepath.Join(p.journalDir(), id.String()+".json")
}

// writeJournal replaces the journal atomically and durably.
func (p *Provider) writeJournal(j *revertJournal) error {
	j.Version = 1
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	dir := p.journalDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".journal-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p.journalPath(j.SnapshotID))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func (p *Provider) removeJournal(id uuid.UUID) error {
	if err := os.Remove(p.journalPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(p.journalDir())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// journals reads every revert journal on record.
func (p *Provider) journals() ([]*revertJournal, error) {
	if p.stateDir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(p.journalDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*revertJournal
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || uuid.Validate(id) != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.journalDir(), e.Name()))
		if err != nil {
			return nil, err
		}
		var j revertJournal
		if err := json.Unmarshal(b, &j); err != nil {
			return nil, fmt.Errorf("revert journal %s: %w", e.Name(), err)
		}
		out = append(out, &j)
	}
	return out, nil
}

// SetRevertStepHook sets a function called after each durable step of a
// revert ("journal", "snapshot", "carry" once per nested subvolume,
// "exchange", "cleanup"). It is a fault-injection point: lvssd's kill test
// makes the process die there. Not for other uses.
func (p *Provider) SetRevertStepHook(f func(step string)) { p.revertStep = f }

func (p *Provider) step(name string) {
	if p.revertStep != nil {
		p.revertStep(name)
	}
}

// Revert implements provider.Reverter.
func (p *Provider) Revert(ctx context.Context, s provider.Snapshot, force bool) error {
	p.revertMu.Lock()
	defer p.revertMu.Unlock()
	if p.stateDir == "" {
		return vsserr.New(vsserr.VolumeNotSupported, "btrfs: revert needs a state directory for its journal")
	}
	j, err := p.planRevert(s, force)
	if err != nil {
		return err
	}
	if err := p.writeJournal(j); err != nil {
		return vsserr.Wrap(vsserr.Fail, err, "btrfs: write the revert journal")
	}
	p.step("journal")
	if err := p.runRevert(j); err != nil {
		if j.Step == stepExchange || j.Step == stepCleanup {
			// Past the point of no return: the journal stays, and the
			// next start finishes the revert.
			return vsserr.Wrap(vsserr.Fail, err, "btrfs: revert of %s stopped after the swap; lvssd finishes it at its next start", j.Volume)
		}
		if uerr := p.undo(j); uerr != nil {
			p.log.Error("btrfs: undoing a failed revert failed; the next start retries", "volume", j.Volume, "err", uerr)
			return vsserr.Wrap(vsserr.RevertInProgress, err, "btrfs: revert of %s failed and could not be undone (%v); lvssd retries at its next start", j.Volume, uerr)
		}
		return classify(err, "btrfs: revert %s to snapshot %s", j.Volume, s.ID)
	}
	p.log.Info("btrfs: volume reverted", "volume", j.Volume, "snapshot", s.ID)
	return nil
}

// planRevert checks that the volume can be reverted to s now and returns
// the journal of the revert, changing nothing.
func (p *Provider) planRevert(s provider.Snapshot, force bool) (*revertJournal, error) {
	vol := s.OriginalVolume
	if !filepath.IsAbs(vol) || filepath.Clean(vol) != vol {
		return nil, vsserr.New(vsserr.InvalidArg, "btrfs: volume %q is not an absolute clean path", vol)
	}
	if !filepath.IsAbs(s.Handle) || filepath.Base(s.Handle) != s.ID.String() {
		return nil, vsserr.New(vsserr.InvalidArg, "btrfs: handle %q does not name snapshot %s", s.Handle, s.ID)
	}
	if ro, err := isReadOnlySubvolume(s.Handle); err != nil || !ro {
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil, vsserr.New(vsserr.ObjectNotFound, "btrfs: snapshot %s is not at %s", s.ID, s.Handle)
		}
		return nil, classify(err, "btrfs: inspect snapshot %s", s.Handle)
	}
	js, err := p.journals()
	if err != nil {
		return nil, vsserr.Wrap(vsserr.Fail, err, "btrfs: read revert journals")
	}
	for _, j := range js {
		if j.Volume == vol {
			return nil, vsserr.New(vsserr.RevertInProgress, "btrfs: a revert of %s to snapshot %s is unfinished; lvssd finishes it at its next start", vol, j.SnapshotID)
		}
	}
	loc, err := locate(vol)
	if errors.Is(err, errNoBtrfs) {
		return nil, vsserr.New(vsserr.VolumeNotSupported, "btrfs: %s is no longer a directory on btrfs", vol)
	}
	if err != nil {
		return nil, classify(err, "btrfs: inspect %s", vol)
	}
	if loc.Rel != "" {
		return nil, vsserr.New(vsserr.VolumeNotSupported,
			"btrfs: %s is a directory inside a subvolume, and a revert swaps whole subvolumes; make %s a subvolume of its own to revert it", vol, vol)
	}
	if loc.Subvol == topLevelID {
		return nil, vsserr.New(vsserr.VolumeNotSupported,
			"btrfs: %s is the filesystem's top level (subvolid 5), which cannot be swapped; keep the data in a subvolume below it (btrfs subvolume create) and snapshot that", vol)
	}
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, vsserr.Wrap(vsserr.Fail, err, "btrfs: read the mount table")
	}
	for _, m := range ms {
		if m.MountPoint == vol {
			return nil, vsserr.New(vsserr.VolumeNotSupported,
				"btrfs: %s is a mount point (mounted with subvol=%s); a mounted subvolume cannot be swapped in place: mount its parent subvolume instead and use %s as a subvolume inside it", vol, m.Root, vol)
		}
	}
	if p.stateDir != "" {
		var st unix.Stat_t
		if err := unix.Stat(p.stateDir, &st); err == nil && st.Dev == loc.Dev {
			return nil, vsserr.New(vsserr.VolumeNotSupported,
				"btrfs: lvssd's state directory %s is inside %s: reverting it would revert lvssd's own catalog", p.stateDir, vol)
		}
	}
	kids, err := childSubvolumes(vol, loc.Subvol)
	if err != nil {
		return nil, classify(err, "btrfs: list subvolumes nested in %s", vol)
	}
	var rels []string
	for _, k := range kids {
		var st unix.Stat_t
		err := unix.Lstat(filepath.Join(s.Handle, k.Rel), &st)
		if err == nil && st.Ino != emptySubvolDirIno {
			return nil, vsserr.New(vsserr.VolumeNotSupported,
				"btrfs: subvolume %s nested in %s would replace what the snapshot holds at the same place; move it elsewhere first",
				filepath.Join(vol, k.Rel), vol)
		}
		rels = append(rels, k.Rel)
	}
	if !force {
		if users, err := volumeUsers(vol, loc.Dev); err != nil {
			return nil, vsserr.Wrap(vsserr.Fail, err, "btrfs: find what uses %s", vol)
		} else if len(users) > 0 {
			return nil, vsserr.New(vsserr.VolumeInUse,
				"btrfs: %s is in use: %s; stop them, or force the revert (they keep the old content)", vol, strings.Join(users, "; "))
		}
	}
	temp := filepath.Join(filepath.Dir(vol), "."+filepath.Base(vol)+".lvss-revert-"+s.ID.String())
	if _, err := os.Lstat(temp); err == nil {
		// An earlier revert kept the old content there because
		// something pinned it (see the cleanup in runRevert).
		return nil, vsserr.New(vsserr.VolumeInUse,
			"btrfs: %s holds the old content of an earlier revert, which something still used; once it is free, delete it (btrfs subvolume delete %s)", temp, temp)
	}
	return &revertJournal{SnapshotID: s.ID, Snapshot: s.Handle, Volume: vol, Temp: temp,
		OldSubvol: loc.Subvol, Nested: rels, Step: stepSnapshot}, nil
}

// topLevelID is BTRFS_FS_TREE_OBJECTID, the top-level subvolume.
const topLevelID = 5

// volumeUsers names what would lose the volume under it: mounts below it,
// and processes with their working or root directory, an open file or a
// mapping in its subvolume (dev is the subvolume's st_dev, one per
// subvolume, so a use through another path or a bind mount counts too).
// At most five are named.
func volumeUsers(vol string, dev uint64) ([]string, error) {
	var out []string
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if strings.HasPrefix(m.MountPoint, vol+"/") {
			out = append(out, "a mount at "+m.MountPoint)
		}
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := strconv.Itoa(os.Getpid())
	devText := fmt.Sprintf("%02x:%02x", unix.Major(dev), unix.Minor(dev))
	for _, e := range procs {
		if len(out) >= 5 {
			break
		}
		pid := e.Name()
		if pid == self || pid[0] < '0' || pid[0] > '9' {
			continue
		}
		if how := procUses("/proc/"+pid, dev, devText); how != "" {
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			out = append(out, fmt.Sprintf("pid %s (%s) has %s there", pid, strings.TrimSpace(string(comm)), how))
		}
	}
	return out, nil
}

// procUses says how the process at dir uses the subvolume dev, "" if not.
func procUses(dir string, dev uint64, devText string) string {
	var st unix.Stat_t
	for _, l := range []string{"cwd", "root"} {
		if unix.Stat(dir+"/"+l, &st) == nil && st.Dev == dev {
			return "its " + map[string]string{"cwd": "working", "root": "root"}[l] + " directory"
		}
	}
	fds, _ := os.ReadDir(dir + "/fd")
	for _, fd := range fds {
		if unix.Stat(dir+"/fd/"+fd.Name(), &st) == nil && st.Dev == dev {
			return "an open file"
		}
	}
	if maps, err := os.ReadFile(dir + "/maps"); err == nil {
		for _, line := range strings.Split(string(maps), "\n") {
			if f := strings.Fields(line); len(f) >= 6 && f[3] == devText {
				return "a mapped file"
			}
		}
	}
	return ""
}

// subvolID is the ID of the subvolume whose root is path; 0 when path is
// missing or not a subvolume root.
func subvolID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, nil
		}
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != firstFreeObjectID {
		return 0, nil
	}
	fd, err := openDir(path)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	id, _, err := inoLookup(fd, 0, firstFreeObjectID)
	return id, err
}

// destroyOwn deletes the subvolume at path if it is the one with the given
// ID (writable ones included: only revert's own subvolumes come here).
func destroyOwn(path string, id uint64) error {
	got, err := subvolID(path)
	if err != nil || got == 0 {
		return err
	}
	if got != id {
		return fmt.Errorf("%s is subvolume %d, not %d; refusing to delete it", path, got, id)
	}
	fd, err := openDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := snapDestroy(fd, filepath.Base(path)); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("BTRFS_IOC_SNAP_DESTROY %s: %w", path, err)
	}
	return nil
}

// runRevert takes the revert from its journaled step to the end.
func (p *Provider) runRevert(j *revertJournal) error {
	if j.Step == stepSnapshot {
		// A T made before a crash, without its ID journaled, is remade.
		if id, err := subvolID(j.Temp); err != nil {
			return err
		} else if id != 0 {
			if err := destroyOwn(j.Temp, id); err != nil {
				return err
			}
		}
		src, err := openDir(j.Snapshot)
		if err != nil {
			return fmt.Errorf("open snapshot %s: %w", j.Snapshot, err)
		}
		dst, err := openDir(filepath.Dir(j.Temp))
		if err != nil {
			unix.Close(src)
			return err
		}
		err = snapCreateWritable(dst, src, filepath.Base(j.Temp))
		unix.Close(src)
		unix.Close(dst)
		if err != nil {
			return fmt.Errorf("BTRFS_IOC_SNAP_CREATE_V2 %s: %w", j.Temp, err)
		}
		if j.NewSubvol, err = subvolID(j.Temp); err != nil {
			return err
		}
		j.Step = stepCarry
		if err := p.writeJournal(j); err != nil {
			return err
		}
		p.step("snapshot")
	}
	if j.Step == stepCarry {
		for _, rel := range j.Nested {
			src, dst := filepath.Join(j.Volume, rel), filepath.Join(j.Temp, rel)
			if id, err := subvolID(src); err != nil {
				return err
			} else if id == 0 {
				continue // carried already, or gone
			}
			var st unix.Stat_t
			switch err := unix.Lstat(dst, &st); {
			case err == nil && st.Ino == emptySubvolDirIno:
				if err := unix.Rmdir(dst); err != nil {
					return fmt.Errorf("remove the stand-in of %s: %w", dst, err)
				}
			case err == nil:
				return fmt.Errorf("%s exists in the new volume; cannot carry the nested subvolume there", dst)
			case errors.Is(err, unix.ENOENT):
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return err
				}
			default:
				return err
			}
			if err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE); err != nil {
				return fmt.Errorf("carry %s into the new volume: %w", src, err)
			}
			p.step("carry")
		}
		if err := syncFS(j.Volume); err != nil {
			return err
		}
		j.Step = stepExchange
		if err := p.writeJournal(j); err != nil {
			return err
		}
	}
	if j.Step == stepExchange {
		cur, err := subvolID(j.Volume)
		if err != nil {
			return err
		}
		if cur != j.NewSubvol {
			if err := unix.Renameat2(unix.AT_FDCWD, j.Temp, unix.AT_FDCWD, j.Volume, unix.RENAME_EXCHANGE); err != nil {
				return fmt.Errorf("swap %s and %s: %w", j.Temp, j.Volume, err)
			}
			if err := syncFS(j.Volume); err != nil {
				return err
			}
		}
		p.step("exchange")
		j.Step = stepCleanup
		if err := p.writeJournal(j); err != nil {
			return err
		}
	}
	// cleanup: T holds the old live subvolume.
	if err := destroyOwn(j.Temp, j.OldSubvol); err != nil {
		// Something still pins it (an active swap file, a send in
		// progress; mounts inside it the kernel detaches with it): it
		// stays aside, named, and the revert is done all the same.
		p.log.Warn("btrfs: the volume's old content could not be deleted; it is kept", "volume", j.Volume, "kept_at", j.Temp, "err", err)
	}
	p.step("cleanup")
	return p.removeJournal(j.SnapshotID)
}

// undo returns a revert that has not reached the exchange to where it
// started: nested subvolumes carried back, T deleted, journal removed.
func (p *Provider) undo(j *revertJournal) error {
	if j.NewSubvol != 0 {
		for _, rel := range j.Nested {
			src, dst := filepath.Join(j.Temp, rel), filepath.Join(j.Volume, rel)
			if id, err := subvolID(src); err != nil {
				return err
			} else if id == 0 {
				continue
			}
			if err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE); err != nil {
				return fmt.Errorf("carry %s back: %w", src, err)
			}
		}
		if err := destroyOwn(j.Temp, j.NewSubvol); err != nil {
			return err
		}
	} else if id, err := subvolID(j.Temp); err != nil {
		return err
	} else if id != 0 && id != j.OldSubvol {
		if err := destroyOwn(j.Temp, id); err != nil {
			return err
		}
	}
	return p.removeJournal(j.SnapshotID)
}

// RecoverReverts implements provider.Reverter: every journaled revert is
// finished; one whose snapshot is gone before its copy was made is
// undone.
func (p *Provider) RecoverReverts(ctx context.Context) []provider.RevertOutcome {
	p.revertMu.Lock()
	defer p.revertMu.Unlock()
	js, err := p.journals()
	if err != nil {
		p.log.Error("btrfs: read revert journals", "err", err)
		return []provider.RevertOutcome{{Err: err}}
	}
	var out []provider.RevertOutcome
	for _, j := range js {
		o := provider.RevertOutcome{SnapshotID: j.SnapshotID, Volume: j.Volume}
		if j.Step == stepSnapshot {
			if _, err := os.Stat(j.Snapshot); err != nil {
				o.Err = fmt.Errorf("snapshot %s is gone (%w); the revert was undone", j.Snapshot, err)
				if uerr := p.undo(j); uerr != nil {
					o.Err = fmt.Errorf("%v; undoing it failed: %w", o.Err, uerr)
				}
				out = append(out, o)
				continue
			}
		}
		if err := p.runRevert(j); err != nil {
			o.Err = err
		} else {
			o.Completed = true
		}
		out = append(out, o)
	}
	return out
}
