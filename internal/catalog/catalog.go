package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// schemaVersion changes whenever the bucket layout or the meaning of a key
// changes; index layout changes would otherwise go unnoticed by an older
// daemon and silently corrupt listings.
const schemaVersion = 1

// lockTimeout bounds the wait for the file lock: long enough to ride out a
// restart where the old process is still closing, short enough that a
// duplicate daemon reports the conflict instead of hanging.
const lockTimeout = time.Second

var (
	bucketMeta      = []byte("meta")
	bucketSnapshots = []byte("snapshots")
	bucketBySet     = []byte("idx_set")
	bucketByVolume  = []byte("idx_volume")
	bucketBySession = []byte("idx_session")
	bucketByTime    = []byte("idx_created")
	bucketDocuments = []byte("documents")
	bucketEvents    = []byte("events")

	keySchema = []byte("schema")
)

var allBuckets = [][]byte{
	bucketMeta, bucketSnapshots, bucketBySet, bucketByVolume,
	bucketBySession, bucketByTime, bucketDocuments, bucketEvents,
}

// DB is an open catalog. It is safe for concurrent use.
type DB struct {
	path string
	bolt *bolt.DB

	closeOnce sync.Once
	closeErr  error
}

// Open opens the catalog at path, creating the file and its directory if
// they do not exist yet.
func Open(path string) (*DB, error) {
	return open(path, nil)
}

// open takes extra options so tests and benchmarks can skip fsync.
func open(path string, opts *bolt.Options) (*DB, error) {
	if opts == nil {
		opts = &bolt.Options{}
	}
	opts.Timeout = lockTimeout
	// The catalog holds provider handles and writer metadata; other users
	// have no business reading them, hence 0700/0600.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	b, err := bolt.Open(path, 0o600, opts)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("catalog %s is locked by another lvssd: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	db := &DB{path: path, bolt: b}
	if err := db.init(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) init() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("catalog %s: %w", db.path, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("catalog %s: corrupt schema version", db.path)
			}
			// Refuse rather than guess: an older daemon would maintain
			// indexes it does not understand and break the newer one's
			// listings.
			if got := binary.BigEndian.Uint64(v); got > schemaVersion {
				return fmt.Errorf("catalog %s has schema version %d, this lvssd understands up to %d", db.path, got, schemaVersion)
			}
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, schemaVersion))
	})
}

// Path is the file the catalog was opened from.
func (db *DB) Path() string { return db.path }

// Close releases the file and its lock. Calling it again returns the result
// of the first call.
func (db *DB) Close() error {
	db.closeOnce.Do(func() { db.closeErr = db.bolt.Close() })
	return db.closeErr
}
