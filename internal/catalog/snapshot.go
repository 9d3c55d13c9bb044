package catalog

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/lvss/lvss/vss"
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
	// ShareExposure is set while a snapshot whose provider gives no
	// directory is exposed remotely: lvssd first exposed it through the
	// provider at a private directory of its own, and this is the name
	// that Expose returned, which Unexpose takes back (L58).
	ShareExposure string
}

// snapshotRecord is the stored form of schema 1, JSON, still read
// (record.go). It is separate from Snapshot so that renaming a Go field can
// never change how such a record is read.
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
	ShareExposure      string    `json:"share_exposure,omitempty"` // never written: schema 1 had no remote exposure
}

// This conversion stops compiling if the two structs drift apart.
func (r snapshotRecord) snapshot() Snapshot { return Snapshot(r) }

// Filter selects snapshots for ListSnapshots and List. Zero fields do not
// filter; set fields must all match.
type Filter struct {
	SetID           uuid.UUID
	Volume          string // compared after filepath.Clean, like OriginalVolume
	SessionID       uuid.UUID
	AutoReleaseOnly bool
	// ByContext selects the snapshots whose base context (vss.Context.Base:
	// without the requester-settable bits) is Context's: what Query in a
	// session's context returns (docs/decisions.md L12).
	ByContext bool
	Context   int32
}

func (f Filter) matches(s *Snapshot) bool {
	return (f.SetID == uuid.Nil || s.SetID == f.SetID) &&
		(f.Volume == "" || s.OriginalVolume == f.Volume) &&
		(f.SessionID == uuid.Nil || s.SessionID == f.SessionID) &&
		(!f.AutoReleaseOnly || s.AutoRelease) &&
		(!f.ByContext || baseContext(s.Context) == baseContext(f.Context))
}

// baseContext is the context index's key: contexts that differ only in
// requester-settable bits are one context to Query.
func baseContext(c int32) uint32 { return uint32(vss.Context(c).Base()) }

// PutSnapshots inserts or replaces snapshots in one transaction, so a set is
// either recorded whole or not at all.
func (db *DB) PutSnapshots(snaps ...Snapshot) error {
	for i := range snaps {
		if snaps[i].ID == uuid.Nil {
			return vsserr.New(vsserr.InvalidArg, "catalog: snapshot %d of %d has no ID", i+1, len(snaps))
		}
	}
	return db.bolt.Update(func(tx *bolt.Tx) error { return db.putSnapshots(tx, snaps) })
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
		if err := db.putSnapshots(tx, snaps); err != nil {
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

func (db *DB) putSnapshots(tx *bolt.Tx, snaps []Snapshot) error {
	if len(snaps) > 0 {
		db.snapshotsChanged(tx)
	}
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
		if err := b.Put(s.ID[:], encodeRecord(nil, &s)); err != nil {
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
		db.snapshotsChanged(tx)
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
// time and then ID, read in one transaction. Listings that may be long
// are read in pages with List instead.
func (db *DB) ListSnapshots(f Filter) ([]Snapshot, error) {
	l := db.List(f)
	var out []Snapshot
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		out, err = l.next(tx, 0, out)
		return err
	})
	return out, err
}

// VolumeSnapshotCount returns how many snapshots of volume the catalog
// holds: one read of the count the catalog keeps per volume, updated in
// the transactions that add and delete snapshots, so the per-volume cap
// costs the same at 10,000 snapshots as at none.
func (db *DB) VolumeSnapshotCount(volume string) (int, error) {
	n := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = volumeCount(tx, filepath.Clean(volume))
		return err
	})
	return n, err
}

func volumeCount(tx *bolt.Tx, volume string) (int, error) {
	v := tx.Bucket(bucketVolumeCount).Get([]byte(volume))
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, vsserr.New(vsserr.Unexpected, "catalog: malformed count of volume %s", volume)
	}
	return int(binary.BigEndian.Uint64(v)), nil
}

// addVolumeCount adds d to the count of volume, dropping it at zero.
func addVolumeCount(tx *bolt.Tx, volume string, d int) error {
	n, err := volumeCount(tx, volume)
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketVolumeCount)
	if n += d; n <= 0 {
		return b.Delete([]byte(volume))
	}
	return b.Put([]byte(volume), binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// CountByVolume returns how many snapshots each original volume has. It
// reads the per-volume counts, one key per volume: lvssd's metrics call it
// on every scrape.
func (db *DB) CountByVolume() (map[string]int, error) {
	out := map[string]int{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVolumeCount).ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return vsserr.New(vsserr.Unexpected, "catalog: malformed count of volume %s", k)
			}
			out[string(k)] = int(binary.BigEndian.Uint64(v))
			return nil
		})
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
	s, err := decodeRecord(data)
	if err != nil {
		return Snapshot{}, false, vsserr.Wrap(vsserr.Unexpected, err, "catalog: record of snapshot %s is corrupt", id)
	}
	return s, true, nil
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
	return append(e, indexEntry{bucketByContext, cat(contextPrefix(s.Context))})
}

// contextPrefix is the base context, big-endian.
func contextPrefix(c int32) []byte { return binary.BigEndian.AppendUint32(nil, baseContext(c)) }

// index writes a record's index entries, and counts it for its volume
// when its volume entry is new: the count is exactly the number of the
// volume's index entries, whatever order updates come in.
func index(tx *bolt.Tx, s *Snapshot) error {
	for _, e := range indexEntries(s) {
		b := tx.Bucket(e.bucket)
		if bytes.Equal(e.bucket, bucketByVolume) && b.Get(e.key) == nil {
			if err := addVolumeCount(tx, s.OriginalVolume, 1); err != nil {
				return err
			}
		}
		if err := b.Put(e.key, []byte{}); err != nil {
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
		b := tx.Bucket(e.bucket)
		if bytes.Equal(e.bucket, bucketByVolume) && b.Get(e.key) != nil {
			if err := addVolumeCount(tx, s.OriginalVolume, -1); err != nil {
				return err
			}
		}
		if err := b.Delete(e.key); err != nil {
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
// reads the per-volume counts and one record per volume (its newest, the
// last of the volume's index entries), so its cost does not grow with the
// number of snapshots.
func (db *DB) VolumeCounts() ([]VolumeCount, error) {
	var out []VolumeCount
	err := db.bolt.View(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketByVolume).Cursor()
		return tx.Bucket(bucketVolumeCount).ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return vsserr.New(vsserr.Unexpected, "catalog: malformed count of volume %s", k)
			}
			vc := VolumeCount{Volume: string(k), Snapshots: int(binary.BigEndian.Uint64(v))}
			// The volume's keys are "volume NUL suffix": the first key
			// past them starts "volume \x01", and the one before it is the
			// newest.
			prefix := volumePrefix(vc.Volume)
			key, _ := idx.Seek(append([]byte(vc.Volume), 1))
			if key == nil {
				key, _ = idx.Last()
			} else {
				key, _ = idx.Prev()
			}
			if key == nil || !bytes.HasPrefix(key, prefix) || len(key) != len(prefix)+suffixLen {
				return vsserr.New(vsserr.Unexpected, "catalog: volume %s is counted but has no index entry", vc.Volume)
			}
			id, _ := uuid.FromBytes(key[len(key)-16:])
			s, found, err := getSnapshot(tx, id)
			if err != nil {
				return err
			}
			if !found {
				return vsserr.New(vsserr.Unexpected, "catalog: index %s names snapshot %s, which has no record", bucketByVolume, id)
			}
			vc.Newest = s
			out = append(out, vc)
			return nil
		})
	})
	return out, err
}
