package catalog

import (
	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/lvss/lvss/vsserr"
)

// Documents of a set live in a bucket of their own inside "documents", so
// that dropping a set's documents is one bucket delete and listing them
// touches nothing else.

// PutDocument stores or replaces a document saved with a snapshot set, such
// as "bcd" for the Backup Components Document or "wmd/<instance-id>" for a
// writer's metadata.
func (db *DB) PutDocument(setID uuid.UUID, name string, data []byte) error {
	if setID == uuid.Nil || name == "" {
		return vsserr.New(vsserr.InvalidArg, "catalog: a document needs a snapshot set ID and a name")
	}
	return db.bolt.Update(func(tx *bolt.Tx) error { return putDocument(tx, setID, name, data) })
}

func putDocument(tx *bolt.Tx, setID uuid.UUID, name string, data []byte) error {
	if name == "" {
		return vsserr.New(vsserr.InvalidArg, "catalog: a document needs a name")
	}
	b, err := tx.Bucket(bucketDocuments).CreateBucketIfNotExists(setID[:])
	if err != nil {
		return err
	}
	// bbolt keeps a reference to the value until commit; copying
	// protects the store from a caller reusing its buffer.
	return b.Put([]byte(name), append([]byte{}, data...))
}

// GetDocument returns a saved document, or an error matching
// vsserr.ObjectNotFound.
func (db *DB) GetDocument(setID uuid.UUID, name string) ([]byte, error) {
	var out []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var v []byte
		if b := tx.Bucket(bucketDocuments).Bucket(setID[:]); b != nil {
			v = b.Get([]byte(name))
		}
		if v == nil {
			return vsserr.New(vsserr.ObjectNotFound, "document %q of snapshot set %s is not in the catalog", name, setID)
		}
		// The slice points into the memory map and dies with the
		// transaction.
		out = append([]byte{}, v...)
		return nil
	})
	return out, err
}

// ListDocuments returns the names of the documents saved with a set, in byte
// order. A set without documents yields an empty list, not an error, since
// sets created without writers legitimately have none.
func (db *DB) ListDocuments(setID uuid.UUID) ([]string, error) {
	var names []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDocuments).Bucket(setID[:])
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	return names, err
}

// DeleteDocuments removes every document of a set. Deleting the documents of
// a set that has none succeeds, so cleanup after a partly failed creation
// can simply always call it.
func (db *DB) DeleteDocuments(setID uuid.UUID) error {
	return db.bolt.Update(func(tx *bolt.Tx) error { return deleteDocuments(tx, setID) })
}

func deleteDocuments(tx *bolt.Tx, setID uuid.UUID) error {
	docs := tx.Bucket(bucketDocuments)
	if docs.Bucket(setID[:]) == nil {
		return nil
	}
	return docs.DeleteBucket(setID[:])
}
