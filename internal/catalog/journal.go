package catalog

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/lvss/lvss/vsserr"
)

// Journal kinds: what an entry promises to finish or undo.
const (
	// JournalCreate is a snapshot set being created. The set is either
	// recorded (RecordSet removes the entry in the same transaction) or
	// aborted; an entry found at start names a set that was cut, whose
	// snapshots are deleted.
	JournalCreate = "create"
	// JournalExpose is an ExposeSnapshot in progress; one found at start
	// names an exposure nobody recorded, which is undone.
	JournalExpose = "expose"
	// JournalRestore is a restore session whose writers had PreRestore;
	// one found at start names writers that get Abort when they
	// reconnect.
	JournalRestore = "restore"
	// JournalShare is a remote exposure in progress (ExposeSnapshot with
	// VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY): the share name, and the private
	// directory the snapshot is first exposed at when its provider gives
	// no directory (Path). One found at start names a share, and an
	// exposure, nobody recorded; both are undone (L58).
	JournalShare = "share"
)

// JournalEntry is one step lvssd took and has not finished. It is written
// before the step and removed in the transaction that records the step's
// result, so that after a crash the journal names exactly what is
// unfinished.
type JournalEntry struct {
	Kind      string
	ID        uuid.UUID // set ID (create), snapshot ID (expose, share), session ID (restore)
	SessionID uuid.UUID
	SetID     uuid.UUID
	Context   int32
	Snapshots []JournalSnapshot // create: the set's snapshots
	Writers   []JournalWriter   // create, restore: the writers taking part
	Path      string            // expose: where it was being exposed; share: the private directory, if any
	Share     string            // share: the share's name
	Step      string            // the last step recorded in the catalog
	Started   time.Time
}

// JournalSnapshot is one snapshot of a set in creation.
type JournalSnapshot struct {
	ID         uuid.UUID `json:"id"`
	Volume     string    `json:"volume"`
	ProviderID uuid.UUID `json:"provider_id"`
}

// JournalWriter names a writer taking part, so that it can be told (Abort)
// when it reconnects to a restarted lvssd. Instance IDs are assigned per
// subscription, so a reconnected writer is matched by class and instance
// name.
type JournalWriter struct {
	ClassID      uuid.UUID `json:"class_id"`
	Name         string    `json:"name,omitempty"`
	InstanceName string    `json:"instance_name,omitempty"`
}

// journalRecord is the stored form (the JSON names are the file format).
type journalRecord struct {
	Kind      string            `json:"kind"`
	ID        uuid.UUID         `json:"id"`
	SessionID uuid.UUID         `json:"session_id"`
	SetID     uuid.UUID         `json:"set_id"`
	Context   int32             `json:"context,omitempty"`
	Snapshots []JournalSnapshot `json:"snapshots,omitempty"`
	Writers   []JournalWriter   `json:"writers,omitempty"`
	Path      string            `json:"path,omitempty"`
	Share     string            `json:"share,omitempty"`
	Step      string            `json:"step,omitempty"`
	Started   time.Time         `json:"started"`
}

func (e JournalEntry) record() journalRecord      { return journalRecord(e) }
func (r journalRecord) entry() JournalEntry       { return JournalEntry(r) }
func journalKey(kind string, id uuid.UUID) []byte { return append([]byte(kind+"/"), id[:]...) }

// PutJournal writes (or replaces) a journal entry, durably: it returns
// after the fsync.
func (db *DB) PutJournal(e JournalEntry) error {
	if e.Kind == "" || e.ID == uuid.Nil {
		return vsserr.New(vsserr.InvalidArg, "catalog: a journal entry needs a kind and an ID")
	}
	return db.bolt.Update(func(tx *bolt.Tx) error { return putJournal(tx, e) })
}

func putJournal(tx *bolt.Tx, e JournalEntry) error {
	data, err := json.Marshal(e.record())
	if err != nil {
		return vsserr.Wrap(vsserr.Unexpected, err, "catalog: encoding journal entry %s %s", e.Kind, e.ID)
	}
	return tx.Bucket(bucketJournal).Put(journalKey(e.Kind, e.ID), data)
}

// DeleteJournal removes an entry; removing one that is not there is not an
// error.
func (db *DB) DeleteJournal(kind string, id uuid.UUID) error {
	return db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketJournal).Delete(journalKey(kind, id)) })
}

// Journal lists every entry, by kind and then ID.
func (db *DB) Journal() ([]JournalEntry, error) {
	var out []JournalEntry
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJournal).ForEach(func(k, v []byte) error {
			var r journalRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return vsserr.Wrap(vsserr.Unexpected, err, "catalog %s: journal entry %q is corrupt", db.path, k)
			}
			out = append(out, r.entry())
			return nil
		})
	})
	return out, err
}

// PutSnapshotsClosing replaces snapshot records and removes the journal
// entry of the step that changed them, in one transaction: the step is
// recorded and finished at once (ExposeSnapshot).
func (db *DB) PutSnapshotsClosing(kind string, id uuid.UUID, snaps ...Snapshot) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if err := db.putSnapshots(tx, snaps); err != nil {
			return err
		}
		return tx.Bucket(bucketJournal).Delete(journalKey(kind, id))
	})
}
