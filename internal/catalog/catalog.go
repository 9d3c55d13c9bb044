package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// schemaVersion changes whenever the bucket layout or the meaning of a key
// changes; index layout changes would otherwise go unnoticed by an older
// daemon and silently corrupt listings.
//
// 2 (issue 14): snapshot records in the protobuf wire format (record.go),
// a count of snapshots per volume, and an index by base context. Open
// migrates a schema-1 catalog in one transaction.
const schemaVersion = 2

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
	bucketByContext = []byte("idx_context")
	// bucketVolumeCount holds, per original volume, how many snapshots
	// it has (8 bytes, big-endian): the per-volume cap's check reads one
	// key instead of counting the volume's index entries.
	bucketVolumeCount = []byte("volume_count")
	bucketDocuments   = []byte("documents")
	bucketEvents      = []byte("events")
	bucketJournal     = []byte("journal")

	keySchema = []byte("schema")
)

var allBuckets = [][]byte{
	bucketMeta, bucketSnapshots, bucketBySet, bucketByVolume,
	bucketBySession, bucketByTime, bucketByContext, bucketVolumeCount, bucketDocuments, bucketEvents, bucketJournal,
}

// DB is an open catalog. It is safe for concurrent use.
type DB struct {
	path string
	bolt *bolt.DB
	// Created is true when Open made a new file (there was none).
	Created bool

	closeOnce sync.Once
	closeErr  error

	// changed is told after every committed transaction that added,
	// replaced or removed a snapshot record (OnSnapshotsChanged).
	changed atomic.Pointer[func()]
}

// OnSnapshotsChanged registers fn to be called after every transaction
// that added, replaced or removed a snapshot record commits, whichever
// call made it: a recorded set, a deletion, an exposure, recovery's
// repairs. It replaces an earlier fn; nil removes it. Every change of a
// snapshot record passes through this package, so this is the one place
// where someone who keeps something derived from the snapshots (lvssd's
// previous-versions snapdirs) cannot miss a path that changes them.
//
// fn runs on the committing caller's goroutine, after bbolt released its
// locks but before the call returns: it must return at once (signal a
// channel, never wait), and it may read the catalog.
func (db *DB) OnSnapshotsChanged(fn func()) {
	if fn == nil {
		db.changed.Store(nil)
		return
	}
	db.changed.Store(&fn)
}

// snapshotsChanged asks tx to tell OnSnapshotsChanged's fn once it has
// committed (never after a rollback).
func (db *DB) snapshotsChanged(tx *bolt.Tx) {
	if fn := db.changed.Load(); fn != nil {
		tx.OnCommit(*fn)
	}
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
	_, statErr := os.Stat(path)
	b, err := openBolt(path, opts)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("catalog %s is locked by another lvssd: %w", path, err)
	}
	if err != nil && unwritable(err) {
		return nil, &UnwritableError{Path: path, Err: err}
	}
	if err != nil {
		return nil, &CorruptError{Path: path, Err: err}
	}
	db := &DB{path: path, bolt: b, Created: errors.Is(statErr, os.ErrNotExist)}
	if err := db.verify(); err != nil {
		b.Close()
		return nil, &CorruptError{Path: path, Err: err}
	}
	if err := db.init(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// openBolt is bolt.Open that turns a panic on a damaged file into an
// error: a catalog lvssd cannot read must stop it with a message, not a
// stack trace.
func openBolt(path string, opts *bolt.Options) (b *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("damaged file: %v", r)
		}
	}()
	return bolt.Open(path, 0o600, opts)
}

// verify reads every record once, so that a damaged page is found at start,
// where lvssd can refuse to run with a message, rather than in the middle
// of a snapshot set. bbolt panics on some damage; that is caught here.
func (db *DB) verify() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("damaged page: %v", r)
		}
	}()
	return db.bolt.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			n := 0
			return b.ForEach(func(k, v []byte) error {
				n += len(k) + len(v) // touch both, so their pages are read
				return nil
			})
		})
	})
}

// CorruptError is a catalog file lvssd cannot open or read. lvssd never
// replaces such a file by itself: it holds the only record of which
// snapshots are whose and of their documents.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("catalog %s cannot be read: %v", e.Path, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Hint says how to recover (docs/reliability.md).
func (e *CorruptError) Hint() string {
	return fmt.Sprintf("lvssd does not replace a catalog it cannot read. Stop lvssd, move the file aside for analysis "+
		"(mv %s %s.damaged), and start lvssd once with --adopt-snapshots: it begins a new catalog and adopts the snapshots "+
		"its providers hold (their writer documents are lost). See docs/reliability.md, \"A damaged catalog\".", e.Path, e.Path)
}

// UnwritableError is a catalog lvssd cannot open for writing because its
// filesystem will not let it: read-only, full, or not lvssd's to write.
// The file is not damaged, and the advice for a damaged one (move it aside)
// would lose every snapshot's documents for nothing.
type UnwritableError struct {
	Path string
	Err  error
}

func (e *UnwritableError) Error() string {
	return fmt.Sprintf("catalog %s cannot be opened for writing: %v", e.Path, e.Err)
}

func (e *UnwritableError) Unwrap() error { return e.Err }

// Hint says what to do: nothing to the catalog.
func (e *UnwritableError) Hint() string {
	return fmt.Sprintf("the catalog is not damaged: the filesystem of %s does not let lvssd write (read-only, full, or "+
		"permissions). Make it writable (for example mount -o remount,rw on its filesystem, or free space) and start lvssd "+
		"again; do not move the catalog aside.", filepath.Dir(e.Path))
}

// unwritable reports whether opening the catalog failed because its
// filesystem refuses writes, not because of what the file holds.
func unwritable(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EROFS, syscall.EACCES, syscall.EPERM, syscall.ENOSPC, syscall.EDQUOT} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
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
			got := binary.BigEndian.Uint64(v)
			if got > schemaVersion {
				return fmt.Errorf("catalog %s has schema version %d, this lvssd understands up to %d", db.path, got, schemaVersion)
			}
			if got < 2 {
				if err := migrate2(tx); err != nil {
					// A record it cannot read is damage, with damage's way out.
					return &CorruptError{Path: db.path, Err: fmt.Errorf("migrating to schema version 2: %w", err)}
				}
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

// migrate2 brings a schema-1 catalog to schema 2, inside Open's
// transaction: every record is rewritten in the new encoding (unchanged
// records never are otherwise, and JSON costs most of a long listing),
// and the context index and the per-volume counts, which a schema-1
// lvssd did not keep, are built. A crash in the middle leaves schema 1,
// migrated again at the next start.
func migrate2(tx *bolt.Tx) error {
	recs := tx.Bucket(bucketSnapshots)
	type rewrite struct {
		key  []byte
		snap Snapshot
	}
	var all []rewrite
	err := recs.ForEach(func(k, v []byte) error {
		s, err := decodeRecord(v)
		if err != nil {
			return fmt.Errorf("record of snapshot %x: %w", k, err)
		}
		all = append(all, rewrite{append([]byte{}, k...), s})
		return nil
	})
	if err != nil {
		return err
	}
	// Built afresh, in case an interrupted migration left some behind.
	for _, name := range [][]byte{bucketByContext, bucketVolumeCount} {
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	ctxIdx := tx.Bucket(bucketByContext)
	for _, r := range all {
		if err := recs.Put(r.key, encodeRecord(nil, &r.snap)); err != nil {
			return err
		}
		if err := ctxIdx.Put(append(contextPrefix(r.snap.Context), orderSuffix(&r.snap)...), []byte{}); err != nil {
			return err
		}
	}
	// The counts are the volume index's entries, as index() keeps them.
	counts := map[string]int{}
	c := tx.Bucket(bucketByVolume).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n := len(k) - suffixLen - 1
		if n < 1 || k[n] != 0 {
			return fmt.Errorf("malformed key in index %s", bucketByVolume)
		}
		counts[string(k[:n])]++
	}
	for vol, n := range counts {
		if err := tx.Bucket(bucketVolumeCount).Put([]byte(vol), binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
			return err
		}
	}
	return nil
}
