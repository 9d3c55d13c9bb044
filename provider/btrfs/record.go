package btrfs

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/uuid"
)

// record is what the provider keeps beside each snapshot, in
// <snapshot dir>/<id>.json: what the subvolume itself cannot say (its set,
// the volume it was taken for, where that volume is inside it, the
// warnings). It is written before the commit, so a snapshot made just
// before a crash is still found and described by Query.
type record struct {
	Version  int       `json:"version"`
	ID       uuid.UUID `json:"id"`
	SetID    uuid.UUID `json:"set_id"`
	Volume   string    `json:"volume"`
	Rel      string    `json:"path_in_snapshot"` // the volume relative to the snapshot root
	Warnings []string  `json:"warnings,omitempty"`
}

func recordPath(dir string, id uuid.UUID) string { return filepath.Join(dir, id.String()+".json") }

// writeRecord replaces the record atomically; durably when asked (the
// first write, before the commit, is the one a crash must not lose).
func writeRecord(dir string, r record, durable bool) error {
	r.Version = 1
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".record-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, recordPath(dir, r.ID))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func readRecord(dir string, id uuid.UUID) (record, error) {
	var r record
	b, err := os.ReadFile(recordPath(dir, id))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, err
	}
	if r.ID != id {
		return record{}, errors.New("record names another snapshot")
	}
	return r, nil
}

func removeRecord(dir string, id uuid.UUID) error {
	if err := os.Remove(recordPath(dir, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
