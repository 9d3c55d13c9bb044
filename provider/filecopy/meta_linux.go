package filecopy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vsserr"
)

// States of a copy on disk. Only committed copies are snapshots; the others
// are work a crash interrupted, which New removes.
const (
	stateCreating  = "creating"
	stateCommitted = "committed"
	stateDeleting  = "deleting"
)

// Name prefixes of temporary files in the snapshot directory.
const (
	tempPrefix  = ".tmp-"
	probePrefix = ".reflink-probe-"
)

// record is <snapshot_dir>/<id>.json. It sits beside the copy, not in it,
// so the copy holds exactly the volume's tree.
type record struct {
	ID           uuid.UUID `json:"id"`
	SetID        uuid.UUID `json:"set_id"`
	Volume       string    `json:"volume"`
	Dir          string    `json:"dir"`
	State        string    `json:"state"`
	Created      time.Time `json:"created"`
	Inconsistent string    `json:"inconsistent,omitempty"`
	Warnings     []string  `json:"warnings,omitempty"`
	Files        int64     `json:"files"`
	Bytes        int64     `json:"bytes"`
	Reflinked    int64     `json:"reflinked_files"`
	Copied       int64     `json:"copied_files"`
}

func (p *Provider) record(setID uuid.UUID, sn *snap, state string) record {
	r := sn.res
	return record{ID: sn.id, SetID: setID, Volume: sn.volume, Dir: filepath.Join(p.dir, sn.id.String()), State: state,
		Created: sn.created, Inconsistent: r.inconsistent, Warnings: r.warnings, Files: r.files, Bytes: r.bytes,
		Reflinked: r.cloned, Copied: r.plain}
}

func (r record) snapshot() provider.Snapshot {
	return provider.Snapshot{ID: r.ID, SetID: r.SetID, OriginalVolume: r.Volume, DevicePath: r.Dir, Handle: r.Dir,
		Created: r.Created, Inconsistent: r.Inconsistent, Warnings: append([]string(nil), r.Warnings...)}
}

func (p *Provider) writeRecord(r record) error {
	if err := writeRecordAt(filepath.Join(p.dir, r.ID.String()+".json"), r); err != nil {
		return vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: metadata of snapshot %s", r.ID)
	}
	return nil
}

// writeRecordAt replaces the file whole (temporary file, fsync, rename,
// fsync of the directory) so a crash leaves the old or the new record,
// never half of one.
func writeRecordAt(path string, r record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func readRecord(path string) (record, error) {
	var r record
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	if r.ID.String()+".json" != filepath.Base(path) {
		return r, fmt.Errorf("%s: names snapshot %s", path, r.ID)
	}
	return r, nil
}

// readRecords reads every metadata file of the snapshot directory; a
// damaged one is logged and skipped so that one bad file does not hide
// every other snapshot.
func (p *Provider) readRecords() ([]record, error) {
	ents, err := os.ReadDir(p.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, vsserr.Wrap(vsserr.ProviderVeto, err, "copy provider: read %s", p.dir)
	}
	var out []record
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || uuid.Validate(id) != nil || !e.Type().IsRegular() {
			continue
		}
		r, err := readRecord(filepath.Join(p.dir, e.Name()))
		if err != nil {
			p.log.Warn("unreadable copy metadata", "file", e.Name(), "error", err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}
