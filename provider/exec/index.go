package exec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/provider"
)

// The index is the provider's own record of the snapshots it made, so that
// Query answers after a restart without a list command, and a list
// command's bare handles can be matched to snapshot IDs. It is a small JSON
// file rewritten whole (write, fsync, rename): snapshots number in the
// hundreds, and a torn write must never lose the record of one.
//
// It is written only outside the hold (PostCommitSnapshots, Abort,
// DeleteSnapshot), never by CommitSnapshots.

const indexVersion = 1

type indexFile struct {
	Version   int          `json:"version"`
	Provider  string       `json:"provider"`
	Snapshots []indexEntry `json:"snapshots"`
}

type indexEntry struct {
	ID             uuid.UUID `json:"id"`
	SetID          uuid.UUID `json:"set_id"`
	OriginalVolume string    `json:"original_volume"`
	Handle         string    `json:"handle"`
	DevicePath     string    `json:"device_path"`
	Created        time.Time `json:"created"`
}

func loadIndex(path string) (map[uuid.UUID]provider.Snapshot, error) {
	out := map[uuid.UUID]provider.Snapshot{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	var f indexFile
	if err := json.Unmarshal(b, &f); err != nil {
		// Refuse rather than start empty: forgetting the index would
		// leave its snapshots behind unseen.
		return nil, fmt.Errorf("snapshot index %s is corrupt (%v); repair or remove it", path, err)
	}
	if f.Version != indexVersion {
		return nil, fmt.Errorf("snapshot index %s has version %d, this lvss reads %d", path, f.Version, indexVersion)
	}
	for _, e := range f.Snapshots {
		out[e.ID] = provider.Snapshot{ID: e.ID, SetID: e.SetID, OriginalVolume: e.OriginalVolume,
			Handle: e.Handle, DevicePath: e.DevicePath, Created: e.Created}
	}
	return out, nil
}

// persist writes the current index. p.idxMu orders the writers so that an
// older copy never replaces a newer one; p.mu is held only to copy the map,
// never across the disk write, so that a slow disk (or a frozen /var) can
// never stall CommitSnapshots, which takes p.mu.
func (p *Provider) persist() error {
	p.idxMu.Lock()
	defer p.idxMu.Unlock()
	p.mu.Lock()
	f := indexFile{Version: indexVersion, Provider: p.info.Name, Snapshots: make([]indexEntry, 0, len(p.index))}
	for _, s := range p.index {
		f.Snapshots = append(f.Snapshots, indexEntry{ID: s.ID, SetID: s.SetID, OriginalVolume: s.OriginalVolume,
			Handle: s.Handle, DevicePath: s.DevicePath, Created: s.Created})
	}
	p.mu.Unlock()
	slices.SortFunc(f.Snapshots, func(a, b indexEntry) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(p.indexPath, append(b, '\n'))
}

func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// The rename is durable only once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
