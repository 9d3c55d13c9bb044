//go:build soak

package soak

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// snapState is what the soak knows of one snapshot it asked for.
type snapState int

const (
	// creating: AddToSnapshotSet named it; its session runs. It may or
	// may not exist yet: the check leaves it alone.
	creating snapState = iota
	// kept: a persistent snapshot whose session ended: lvssd's catalog
	// must list it and its subvolume must be on disk until it is deleted.
	kept
	// gone: an auto-release snapshot whose session ended, a deleted one,
	// or one of a set that was not created: it must be in neither.
	gone
)

func (st snapState) String() string { return [...]string{"creating", "kept", "gone"}[st] }

type snap struct {
	id, set    uuid.UUID
	vol        string
	persistent bool
	state      snapState
	// busy: an admin operation (expose, unexpose, delete) is running on
	// it; the check leaves it alone.
	busy    bool
	exposed string // where it is exposed, "" if not
	changed uint64 // tracker seq of its last change
	created time.Time
}

// tracker is the soak's own record of every snapshot, against which the
// catalog and the disk are checked. Each change bumps seq, so that a
// check can leave alone what changed while it read (see check).
type tracker struct {
	mu    sync.Mutex
	seq   uint64
	snaps map[uuid.UUID]*snap
}

func newTracker() *tracker { return &tracker{snaps: map[uuid.UUID]*snap{}} }

func (tr *tracker) add(id, set uuid.UUID, vol string, persistent bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.seq++
	tr.snaps[id] = &snap{id: id, set: set, vol: vol, persistent: persistent, state: creating, changed: tr.seq, created: time.Now()}
}

func (tr *tracker) update(id uuid.UUID, f func(*snap)) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if sn := tr.snaps[id]; sn != nil {
		tr.seq++
		f(sn)
		sn.changed = tr.seq
	}
}

func (tr *tracker) set(id uuid.UUID, st snapState) { tr.update(id, func(sn *snap) { sn.state = st }) }

func (tr *tracker) now() uint64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.seq
}

// copyAll returns a copy of every record, and the seq it is as of.
func (tr *tracker) copyAll() (map[uuid.UUID]snap, uint64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	m := make(map[uuid.UUID]snap, len(tr.snaps))
	for id, sn := range tr.snaps {
		m[id] = *sn
	}
	return m, tr.seq
}

// keptSnaps returns the kept snapshots no admin operation holds, oldest
// first.
func (tr *tracker) keptSnaps() []snap {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []snap
	for _, sn := range tr.snaps {
		if sn.state == kept && !sn.busy {
			out = append(out, *sn)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].created.Before(out[j].created) })
	return out
}

// inFlight counts the snapshots a session or an admin operation holds.
func (tr *tracker) inFlight() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, sn := range tr.snaps {
		if sn.state == creating || sn.busy {
			n++
		}
	}
	return n
}

// shadow is one snapshot of `lvss list shadows --json` (docs/cli.md),
// the fields the check reads.
type shadow struct {
	SnapshotID     uuid.UUID `json:"snapshot_id"`
	SnapshotSetID  uuid.UUID `json:"snapshot_set_id"`
	OriginalVolume string    `json:"original_volume"`
	SnapshotPath   string    `json:"snapshot_path"`
	AutoRelease    bool      `json:"auto_release"`
	LiveSession    bool      `json:"live_session"`
	ExposedPath    string    `json:"exposed_path"`
}

// listShadows runs the real `lvss list shadows --json`.
func (s *soak) listShadows() ([]shadow, error) {
	s.stats.lists.Add(1)
	out, err := s.lvss("list", "shadows", "--json")
	if err != nil {
		return nil, err
	}
	var list []shadow
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("lvss list shadows --json: %v\n%s", err, out)
	}
	return list, nil
}

// snapshotDir is where the btrfs provider keeps a volume's snapshots by
// default (docs/provider-btrfs.md): a subvolume per snapshot named by its
// GUID, and beside it GUID.json, its record.
func snapshotDir(vol string) string { return filepath.Join(vol, ".lvss-snapshots") }

// onDisk is what the snapshot directories of the volumes hold.
type onDisk struct {
	subvols map[uuid.UUID]string // GUID -> volume
	records map[uuid.UUID]string
	other   []string // anything else: a leftover the provider did not clean up
	// temps are the provider's record files being written (.record-*,
	// renamed to GUID.json once complete): between states while it
	// works, a leftover once nothing runs.
	temps []string
}

func (s *soak) readDisk() (onDisk, error) {
	d := onDisk{subvols: map[uuid.UUID]string{}, records: map[uuid.UUID]string{}}
	for _, v := range s.vols {
		ents, err := os.ReadDir(snapshotDir(v))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return d, err
		}
		for _, e := range ents {
			name := e.Name()
			base, isRecord := strings.CutSuffix(name, ".json")
			id, err := uuid.Parse(base)
			switch {
			case strings.HasPrefix(name, ".record-") && !e.IsDir():
				d.temps = append(d.temps, filepath.Join(snapshotDir(v), name))
			case err != nil || id.String() != base:
				d.other = append(d.other, filepath.Join(snapshotDir(v), name))
			case isRecord && !e.IsDir():
				d.records[id] = v
			case !isRecord && e.IsDir():
				d.subvols[id] = v
			default:
				d.other = append(d.other, filepath.Join(snapshotDir(v), name))
			}
		}
	}
	return d, nil
}

// check compares lvssd's catalog (through the lvss CLI), the disk and
// the soak's record, and returns what disagrees. Snapshots that a
// session or an admin operation holds, or whose record changed while the
// check read, are left for the next check: they are legitimately between
// states. With strict (nothing runs), nothing is left.
func (s *soak) check(strict bool) (catalogN, diskN int, problems []string) {
	before := s.track.now()
	list, err := s.listShadows()
	if err != nil {
		return 0, 0, []string{err.Error()}
	}
	disk, err := s.readDisk()
	if err != nil {
		return len(list), 0, []string{err.Error()}
	}
	recs, _ := s.track.copyAll()
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	listed := map[uuid.UUID]shadow{}
	for _, sh := range list {
		if _, dup := listed[sh.SnapshotID]; dup {
			bad("snapshot %s is listed twice by lvss list shadows", sh.SnapshotID)
		}
		listed[sh.SnapshotID] = sh
	}
	ids := map[uuid.UUID]bool{}
	for id := range listed {
		ids[id] = true
	}
	for id := range disk.subvols {
		ids[id] = true
	}
	for id := range disk.records {
		ids[id] = true
	}
	for id, r := range recs {
		if r.state != gone {
			ids[id] = true
		}
	}
	for id := range ids {
		r, known := recs[id]
		sh, inCat := listed[id]
		_, inDisk := disk.subvols[id]
		_, hasRecord := disk.records[id]
		if !known {
			bad("snapshot %s (catalog %v, disk %v, record file %v) was never asked for", id, inCat, inDisk, hasRecord)
			continue
		}
		if !strict && (r.state == creating || r.busy || r.changed > before) {
			continue
		}
		switch r.state {
		case creating:
			bad("snapshot %s: its session never ended (still creating with nothing running)", id)
		case kept:
			if !inCat || !inDisk || !hasRecord {
				bad("persistent snapshot %s of %s is lost: catalog %v, subvolume on disk %v, record file %v", id, r.vol, inCat, inDisk, hasRecord)
				continue
			}
			if sh.AutoRelease {
				bad("persistent snapshot %s is listed as auto-release", id)
			}
			if sh.ExposedPath != r.exposed {
				bad("snapshot %s: lvss list shadows says exposed at %q, the soak exposed it at %q", id, sh.ExposedPath, r.exposed)
			}
			if want := filepath.Join(snapshotDir(r.vol), id.String()); sh.SnapshotPath != want {
				bad("snapshot %s: snapshot_path %q, want %q", id, sh.SnapshotPath, want)
			}
		case gone:
			if inCat || inDisk || hasRecord {
				what := "auto-release"
				if r.persistent {
					what = "deleted"
				}
				bad("%s snapshot %s of %s is still there: catalog %v, subvolume on disk %v, record file %v", what, id, r.vol, inCat, inDisk, hasRecord)
			}
		}
	}
	if strict {
		disk.other = append(disk.other, disk.temps...)
	}
	if len(disk.other) > 0 {
		slices.Sort(disk.other)
		bad("unexpected entries in the snapshot directories: %v", disk.other)
	}
	return len(list), len(disk.subvols), problems
}
