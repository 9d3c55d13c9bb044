package catalog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/lvss/lvss/vsserr"
)

// Snapshot is one committed snapshot as the coordinator records it.
type Snapshot struct {
	ID, SetID          uuid.UUID
	SnapshotsCount     int    // volumes in the set at creation
	OriginalVolume     string // path the requester named, cleaned
	DevicePath         string // where the snapshot's content is readable (VSS "snapshot device object")
	ExposedName        string // "" when not exposed
	ExposedPath        string
	ProviderID         uuid.UUID
	ProviderName       string
	ProviderHandle     string    // opaque, the provider's own reference for delete/expose
	Attributes         uint32    // VSS_VOLUME_SNAPSHOT_ATTRIBUTES bits incl. the context bits
	Context            int32     // VSS_SNAPSHOT_CONTEXT the set was created in
	Created            time.Time // UTC
	OriginatingMachine string
	ServiceMachine     string
	Consistency        string // "application", "crash" or "none"
	ConsistencyReason  string
	SessionID          uuid.UUID // session that created it
	AutoRelease        bool      // deleted when that session ends
}

// snapshotRecord is the stored form. It is separate from Snapshot so that
// renaming a Go field can never change what is on disk, and its JSON names
// are the file format.
type snapshotRecord struct {
	ID                 uuid.UUID `json:"id"`
	SetID              uuid.UUID `json:"set_id"`
	SnapshotsCount     int       `json:"snapshots_count,omitempty"`
	OriginalVolume     string    `json:"original_volume,omitempty"`
	DevicePath         string    `json:"device_path,omitempty"`
	ExposedName        string    `json:"exposed_name,omitempty"`
	ExposedPath        string    `json:"exposed_path,omitempty"`
	ProviderID         uuid.UUID `json:"provider_id"`
	ProviderName       string    `json:"provider_name,omitempty"`
	ProviderHandle     string    `json:"provider_handle,omitempty"`
	Attributes         uint32    `json:"attributes,omitempty"`
	Context            int32     `json:"context,omitempty"`
	Created            time.Time `json:"created"`
	OriginatingMachine string    `json:"originating_machine,omitempty"`
	ServiceMachine     string    `json:"service_machine,omitempty"`
	Consistency        string    `json:"consistency,omitempty"`
	ConsistencyReason  string    `json:"consistency_reason,omitempty"`
	SessionID          uuid.UUID `json:"session_id"`
	AutoRelease        bool      `json:"auto_release,omitempty"`
}

// These conversions stop compiling if the two structs drift apart.
func (s Snapshot) record() snapshotRecord   { return snapshotRecord(s) }
func (r snapshotRecord) snapshot() Snapshot { return Snapshot(r) }

// Filter selects snapshots for ListSnapshots. Zero fields do not filter;
// set fields must all match.
type Filter struct {
	SetID           uuid.UUID
	Volume          string // compared after filepath.Clean, like OriginalVolume
	SessionID       uuid.UUID
	AutoReleaseOnly bool
}

func (f Filter) matches(s *Snapshot) bool {
	return (f.SetID == uuid.Nil || s.SetID == f.SetID) &&
		(f.Volume == "" || s.OriginalVolume == f.Volume) &&
		(f.SessionID == uuid.Nil || s.SessionID == f.SessionID) &&
		(!f.AutoReleaseOnly || s.AutoRelease)
}

// PutSnapshots inserts or replaces snapshots in one transaction, so a set is
// either recorded whole or not at all.
func (db *DB) PutSnapshots(snaps ...Snapshot) error {
	for i := range snaps {
		if snaps[i].ID == uuid.Nil {
			return vsserr.New(vsserr.InvalidArg, "catalog: snapshot %d of %d has no ID", i+1, len(snaps))
		}
	}
	return db.bolt.Update(func(tx *bolt.Tx) error { return putSnapshots(tx, snaps) })
}

// RecordSet stores a snapshot set's snapshots and its documents in one
// transaction: one fsync for what DoSnapshotSet produces, and a set is
// never recorded without its documents or the other way round. The set's
// JournalCreate entry is removed in the same transaction.
func (db *DB) RecordSet(setID uuid.UUID, snaps []Snapshot, docs map[string][]byte) error {
	for i := range snaps {
		if snaps[i].ID == uuid.Nil {
			return vsserr.New(vsserr.InvalidArg, "catalog: snapshot %d of %d has no ID", i+1, len(snaps))
		}
	}
	if len(docs) > 0 && setID == uuid.Nil {
		return vsserr.New(vsserr.InvalidArg, "catalog: documents need a snapshot set ID")
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if err := putSnapshots(tx, snaps); err != nil {
			return err
		}
		// The set is recorded: its creation is no longer unfinished.
		if setID != uuid.Nil {
			if err := tx.Bucket(bucketJournal).Delete(journalKey(JournalCreate, setID)); err != nil {
				return err
			}
		}
		// Documents saved again after BackupComplete (no snapshots given)
		// for a set whose snapshots were all deleted meanwhile would
		// outlive it: DeleteSnapshot, which drops a set's documents with
		// its last snapshot, has already run.
		if len(snaps) == 0 && !setHasSnapshots(tx, setID) {
			return nil
		}
		for name, data := range docs {
			if err := putDocument(tx, setID, name, data); err != nil {
				return err
			}
		}
		return nil
	})
}

func putSnapshots(tx *bolt.Tx, snaps []Snapshot) error {
	b := tx.Bucket(bucketSnapshots)
	for _, s := range snaps {
		s = normalize(s)
		old, found, err := getSnapshot(tx, s.ID)
		if err != nil {
			return err
		}
		if found {
			if err := unindex(tx, &old); err != nil {
				return err
			}
		}
		data, err := json.Marshal(s.record())
		if err != nil {
			return vsserr.Wrap(vsserr.Unexpected, err, "catalog: encoding snapshot %s", s.ID)
		}
		if err := b.Put(s.ID[:], data); err != nil {
			return err
		}
		if err := index(tx, &s); err != nil {
			return err
		}
	}
	return nil
}

// normalize makes the stored form canonical so that index keys computed at
// write time and filters computed at read time agree.
func normalize(s Snapshot) Snapshot {
	s.Created = s.Created.UTC()
	if s.OriginalVolume != "" {
		s.OriginalVolume = filepath.Clean(s.OriginalVolume)
	}
	return s
}

// GetSnapshot returns the snapshot with the given ID, or an error that
// matches vsserr.ObjectNotFound.
func (db *DB) GetSnapshot(id uuid.UUID) (Snapshot, error) {
	var s Snapshot
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var found bool
		var err error
		s, found, err = getSnapshot(tx, id)
		if err == nil && !found {
			err = notFound(id)
		}
		return err
	})
	return s, err
}

// DeleteSnapshot removes a snapshot record and its index entries, and,
// when it was the last snapshot of its set, the set's documents: they
// describe the set and nothing reads them once it is gone, and without
// this every deleted persistent set left its BCD and writers' WMDs in the
// catalog for good (found by the soak test, test/soak). It returns an
// error matching vsserr.ObjectNotFound if there is no such snapshot.
func (db *DB) DeleteSnapshot(id uuid.UUID) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		old, found, err := getSnapshot(tx, id)
		if err != nil {
			return err
		}
		if !found {
			return notFound(id)
		}
		if err := unindex(tx, &old); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSnapshots).Delete(id[:]); err != nil {
			return err
		}
		if old.SetID == uuid.Nil || setHasSnapshots(tx, old.SetID) {
			return nil
		}
		return deleteDocuments(tx, old.SetID)
	})
}

// setHasSnapshots reports whether the catalog holds a snapshot of the set
// (one seek in the set index).
func setHasSnapshots(tx *bolt.Tx, setID uuid.UUID) bool {
	k, _ := tx.Bucket(bucketBySet).Cursor().Seek(setID[:])
	return k != nil && bytes.HasPrefix(k, setID[:])
}

// ListSnapshots returns the snapshots that match f, ordered by creation
// time and then ID.
func (db *DB) ListSnapshots(f Filter) ([]Snapshot, error) {
	if f.Volume != "" {
		f.Volume = filepath.Clean(f.Volume)
	}
	// Any one index narrows the walk to the candidates; the remaining
	// conditions are checked on the records. Sets and sessions hold a handful
	// of snapshots, a volume may hold many, so they are preferred in that
	// order.
	var bucket, prefix []byte
	switch {
	case f.SetID != uuid.Nil:
		bucket, prefix = bucketBySet, f.SetID[:]
	case f.SessionID != uuid.Nil:
		bucket, prefix = bucketBySession, f.SessionID[:]
	case f.Volume != "":
		bucket, prefix = bucketByVolume, volumePrefix(f.Volume)
	default:
		bucket = bucketByTime
	}
	var out []Snapshot
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) < len(prefix)+suffixLen {
				return vsserr.New(vsserr.Unexpected, "catalog: malformed key in index %s", bucket)
			}
			id, _ := uuid.FromBytes(k[len(k)-16:])
			s, found, err := getSnapshot(tx, id)
			if err != nil {
				return err
			}
			if !found {
				return vsserr.New(vsserr.Unexpected, "catalog: index %s names snapshot %s, which has no record", bucket, id)
			}
			if f.matches(&s) {
				out = append(out, s)
			}
		}
		return nil
	})
	return out, err
}

// CountByVolume returns how many snapshots each original volume has. It
// reads only the keys of the volume index, no record, in one short read
// transaction: lvssd's metrics call it on every scrape.
func (db *DB) CountByVolume() (map[string]int, error) {
	out := map[string]int{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketByVolume).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			// volume, NUL, then the fixed-length suffix (volumePrefix).
			n := len(k) - suffixLen - 1
			if n < 1 || k[n] != 0 {
				return vsserr.New(vsserr.Unexpected, "catalog: malformed key in index %s", bucketByVolume)
			}
			out[string(k[:n])]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func notFound(id uuid.UUID) error {
	return vsserr.New(vsserr.ObjectNotFound, "snapshot %s is not in the catalog", id)
}

func getSnapshot(tx *bolt.Tx, id uuid.UUID) (Snapshot, bool, error) {
	data := tx.Bucket(bucketSnapshots).Get(id[:])
	if data == nil {
		return Snapshot{}, false, nil
	}
	var r snapshotRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return Snapshot{}, false, vsserr.Wrap(vsserr.Unexpected, err, "catalog: record of snapshot %s is corrupt", id)
	}
	return r.snapshot(), true, nil
}

// suffixLen is the length of the creation-time-and-ID tail of every index
// key: 8 bytes of seconds, 4 of nanoseconds, 16 of snapshot ID.
const suffixLen = 8 + 4 + 16

// orderSuffix makes byte order equal (Created, ID) order. The sign bit of the
// seconds is flipped so times before 1970, including the zero time.Time,
// still sort first.
func orderSuffix(s *Snapshot) []byte {
	k := make([]byte, 0, suffixLen)
	k = binary.BigEndian.AppendUint64(k, uint64(s.Created.Unix())^(1<<63))
	k = binary.BigEndian.AppendUint32(k, uint32(s.Created.Nanosecond()))
	return append(k, s.ID[:]...)
}

// volumePrefix ends the path with a NUL, which no path contains, so that
// "/data" does not match the entries of "/data2".
func volumePrefix(volume string) []byte {
	return append([]byte(volume), 0)
}

type indexEntry struct {
	bucket []byte
	key    []byte
}

func indexEntries(s *Snapshot) []indexEntry {
	suffix := orderSuffix(s)
	cat := func(prefix []byte) []byte {
		return append(append(make([]byte, 0, len(prefix)+len(suffix)), prefix...), suffix...)
	}
	e := []indexEntry{{bucketByTime, suffix}}
	if s.SetID != uuid.Nil {
		e = append(e, indexEntry{bucketBySet, cat(s.SetID[:])})
	}
	if s.SessionID != uuid.Nil {
		e = append(e, indexEntry{bucketBySession, cat(s.SessionID[:])})
	}
	if s.OriginalVolume != "" {
		e = append(e, indexEntry{bucketByVolume, cat(volumePrefix(s.OriginalVolume))})
	}
	return e
}

func index(tx *bolt.Tx, s *Snapshot) error {
	for _, e := range indexEntries(s) {
		if err := tx.Bucket(e.bucket).Put(e.key, []byte{}); err != nil {
			return err
		}
	}
	return nil
}

// unindex removes the entries computed from the record as it was stored,
// which is why updates read the old record first: an entry keyed by a stale
// volume or time would otherwise survive the update.
func unindex(tx *bolt.Tx, s *Snapshot) error {
	for _, e := range indexEntries(s) {
		if err := tx.Bucket(e.bucket).Delete(e.key); err != nil {
			return err
		}
	}
	return nil
}

// VolumeCount is how many snapshots one original volume has, and which
// provider made the newest.
type VolumeCount struct {
	Volume    string
	Snapshots int
	// Newest is the volume's most recently created snapshot.
	Newest Snapshot
}

// VolumeCounts counts the snapshots of every volume, by volume path. It
// walks the volume index's keys and reads one record per volume (its
// newest), so its cost grows with the number of snapshots only by a key
// comparison each.
func (db *DB) VolumeCounts() ([]VolumeCount, error) {
	var out []VolumeCount
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketByVolume).Cursor()
		var cur *VolumeCount
		var newestKey []byte
		finish := func() error {
			if cur == nil {
				return nil
			}
			id, _ := uuid.FromBytes(newestKey[len(newestKey)-16:])
			s, found, err := getSnapshot(tx, id)
			if err != nil {
				return err
			}
			if !found {
				return vsserr.New(vsserr.Unexpected, "catalog: index %s names snapshot %s, which has no record", bucketByVolume, id)
			}
			cur.Newest = s
			out = append(out, *cur)
			return nil
		}
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) < suffixLen+1 || k[len(k)-suffixLen-1] != 0 {
				return vsserr.New(vsserr.Unexpected, "catalog: malformed key in index %s", bucketByVolume)
			}
			vol := string(k[:len(k)-suffixLen-1])
			if cur == nil || cur.Volume != vol {
				if err := finish(); err != nil {
					return err
				}
				cur = &VolumeCount{Volume: vol}
			}
			cur.Snapshots++
			// Keys of one volume sort by creation time: the last is the newest.
			newestKey = append(newestKey[:0], k...)
		}
		return finish()
	})
	return out, err
}
