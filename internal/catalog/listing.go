package catalog

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/lvss/lvss/vsserr"
)

// Listing reads the snapshots a Filter selects in pages (Next), each page
// in a read transaction of its own, so that whoever lists 10,000 snapshots
// holds one page decoded at a time and never keeps the catalog's writers
// waiting behind a long read. Snapshots come ordered by creation time and
// then ID; with Grouped, set by set.
//
// A listing read in pages is not one point in time: a snapshot added or
// deleted between two pages may or may not appear. Each page is consistent
// in itself, and no snapshot that exists throughout appears twice or is
// missed.
type Listing struct {
	tx     func(func(*bolt.Tx) error) error
	f      Filter
	bucket []byte
	prefix []byte
	// grouped: on the time index, each set is emitted whole when the walk
	// reaches its oldest snapshot (its lead); on the set index, the set is
	// one group. A group is read at once (a set has at most 64
	// snapshots) and sorted (groupOrder) into pending.
	grouped bool
	// pos is the last key taken from bucket (grouped: the lead of the
	// group being emitted or last emitted); nil before the first.
	pos     []byte
	pending []Snapshot
	// groupBuf is reused for each group: pending is copied out before the
	// next group is read, and most sets hold one snapshot, which would
	// otherwise cost an allocation each.
	groupBuf []Snapshot
	// spanning holds the sets emitted whose newest snapshot is past pos,
	// with the time key of that snapshot: if such a set's lead is deleted
	// between two pages, the walk meets a new lead of it further on, which
	// must not emit the set again. Sets are made one at a time, so it
	// rarely holds more than one.
	spanning map[uuid.UUID][]byte
	done     bool
}

// List starts a listing of the snapshots f selects. An index narrows the
// walk: the set's, the session's, the volume's, the context's, else the
// time index; the remaining conditions are checked on the records.
func (db *DB) List(f Filter) *Listing {
	if f.Volume != "" {
		f.Volume = filepath.Clean(f.Volume)
	}
	l := &Listing{tx: db.bolt.View, f: f}
	// Sets and sessions hold a handful of snapshots, a volume or a context
	// may hold many, so they are preferred in that order.
	switch {
	case f.SetID != uuid.Nil:
		l.bucket, l.prefix = bucketBySet, f.SetID[:]
	case f.SessionID != uuid.Nil:
		l.bucket, l.prefix = bucketBySession, f.SessionID[:]
	case f.Volume != "":
		l.bucket, l.prefix = bucketByVolume, volumePrefix(f.Volume)
	case f.ByContext:
		l.bucket, l.prefix = bucketByContext, contextPrefix(f.Context)
	default:
		l.bucket = bucketByTime
	}
	return l
}

// Grouped makes the listing come set by set, as `lvss list shadows` shows
// it: sets ordered by their oldest snapshot, each whole, its snapshots by
// creation time, then original volume, then ID. It applies to a listing of
// every snapshot or of one set; the others (a volume's, a session's, a
// context's) hold at most one snapshot of a set, or one set, and keep
// their order.
func (l *Listing) Grouped() *Listing {
	l.grouped = bytes.Equal(l.bucket, bucketByTime) || bytes.Equal(l.bucket, bucketBySet)
	return l
}

// groupOrder orders a set's snapshots.
func groupOrder(a, b Snapshot) int {
	if c := a.Created.Compare(b.Created); c != 0 {
		return c
	}
	if c := strings.Compare(a.OriginalVolume, b.OriginalVolume); c != 0 {
		return c
	}
	return bytes.Compare(a.ID[:], b.ID[:])
}

// After moves the listing to just after the snapshot id, where it is (or
// would be, if it does not match the filter) in the listing's order, so
// that a caller can continue a listing it read part of. The snapshot must
// still be in the catalog: an error matching vsserr.ObjectNotFound says it
// is not.
func (l *Listing) After(id uuid.UUID) error {
	return l.tx(func(tx *bolt.Tx) error {
		s, found, err := getSnapshot(tx, id)
		if err != nil {
			return err
		}
		if !found {
			return vsserr.New(vsserr.ObjectNotFound, "snapshot %s is not in the catalog (deleted since it was listed?); "+
				"list from the start, or after another snapshot", id)
		}
		s = normalize(s)
		l.done, l.pending, l.spanning = false, nil, nil
		if !l.grouped || s.SetID == uuid.Nil && bytes.Equal(l.bucket, bucketByTime) {
			l.pos = append(append([]byte{}, l.prefix...), orderSuffix(&s)...)
			return nil
		}
		// The rest of its group (on the set index, the one set listed),
		// then on after the group's lead.
		set := s.SetID
		if bytes.Equal(l.bucket, bucketBySet) {
			set = l.f.SetID
		}
		group, lead, err := l.group(tx, set)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(group, func(g Snapshot) bool { return groupOrder(g, s) > 0 })
		if i < 0 {
			i = len(group)
		}
		l.pending = group[i:]
		switch {
		case bytes.Equal(l.bucket, bucketBySet):
			l.pos = lead
			l.done = len(l.pending) == 0
		case lead == nil: // not in the set index: where it is in time
			l.pos = orderSuffix(&s)
		default:
			l.pos = lead
		}
		return nil
	})
}

// group reads the snapshots of a set that match the filter, in
// groupOrder, and the key of its lead in the walked index (nil when the
// set has none).
func (l *Listing) group(tx *bolt.Tx, set uuid.UUID) ([]Snapshot, []byte, error) {
	c := tx.Bucket(bucketBySet).Cursor()
	first, _ := c.Seek(set[:])
	if first == nil || !bytes.HasPrefix(first, set[:]) {
		return nil, nil, nil
	}
	lead := append([]byte{}, first...) // the set index's own key
	if !bytes.Equal(l.bucket, bucketBySet) {
		lead = lead[len(set):] // the time index's key is the suffix
	}
	g, err := l.groupAt(tx.Bucket(bucketSnapshots).Cursor(), c, first, set, nil)
	return g, lead, err
}

// groupAt is group with the set index's cursor c at the set's first key
// (first), a cursor of the records, and the record of the lead when the
// caller has it already: a listing of 10,000 spends its time in B-tree
// searches, so none is made twice.
func (l *Listing) groupAt(recs, c *bolt.Cursor, first []byte, set uuid.UUID, leadData []byte) ([]Snapshot, error) {
	out := l.groupBuf[:0]
	var last []byte
	for k := first; k != nil && bytes.HasPrefix(k, set[:]); k, _ = c.Next() {
		last = k
		if len(k) != len(set)+suffixLen {
			return nil, vsserr.New(vsserr.Unexpected, "catalog: malformed key in index %s", bucketBySet)
		}
		id, _ := uuid.FromBytes(k[len(k)-16:])
		data := leadData
		if leadData == nil || !bytes.Equal(k, first) {
			data = get(recs, id)
		}
		if data == nil {
			return nil, vsserr.New(vsserr.Unexpected, "catalog: index %s names snapshot %s, which has no record", bucketBySet, id)
		}
		s, err := decodeRecord(data)
		if err != nil {
			return nil, vsserr.Wrap(vsserr.Unexpected, err, "catalog: record of snapshot %s is corrupt", id)
		}
		if l.f.matches(&s) {
			out = append(out, s)
		}
	}
	if len(out) > 1 {
		slices.SortFunc(out, groupOrder)
	}
	if last != nil && !bytes.Equal(last, first) && bytes.Equal(l.bucket, bucketByTime) {
		if l.spanning == nil {
			l.spanning = map[uuid.UUID][]byte{}
		}
		l.spanning[set] = append([]byte{}, last[len(set):]...)
	}
	l.groupBuf = out
	return out, nil
}

// Done reports whether the listing is over: Next has nothing more.
func (l *Listing) Done() bool { return l.done }

// Next returns up to max more snapshots (max <= 0: all that are left),
// read in one transaction; none once the listing is over.
func (l *Listing) Next(max int) ([]Snapshot, error) {
	if l.done {
		return nil, nil
	}
	var out []Snapshot
	if max > 0 {
		out = make([]Snapshot, 0, max)
	}
	err := l.tx(func(tx *bolt.Tx) error {
		var err error
		out, err = l.next(tx, max, out)
		return err
	})
	return out, err
}

// next appends to out up to max snapshots (max <= 0: no limit) and
// remembers where it stopped.
func (l *Listing) next(tx *bolt.Tx, max int, out []Snapshot) ([]Snapshot, error) {
	full := func() bool { return max > 0 && len(out) >= max }
	if l.grouped && bytes.Equal(l.bucket, bucketBySet) && l.pos == nil {
		// One set: one group.
		group, lead, err := l.group(tx, l.f.SetID)
		if err != nil {
			return out, err
		}
		l.pending, l.pos = group, lead
		if lead == nil {
			l.done = true
		}
	}
	// Cursors are made once and reused: bbolt's Get makes a cursor for
	// each call, which allocates, and a listing looks up every record.
	c := tx.Bucket(l.bucket).Cursor()
	recs, sets := tx.Bucket(bucketSnapshots).Cursor(), tx.Bucket(bucketBySet).Cursor()
	for !full() {
		if len(l.pending) > 0 {
			n := len(l.pending)
			if max > 0 {
				n = min(n, max-len(out))
			}
			out = append(out, l.pending[:n]...)
			l.pending = l.pending[n:]
			continue
		}
		l.pending = nil
		if l.grouped && bytes.Equal(l.bucket, bucketBySet) {
			l.done = true // the one group is over
			return out, nil
		}
		var k []byte
		if l.pos == nil {
			k, _ = c.Seek(l.prefix)
		} else if k, _ = c.Seek(l.pos); k != nil && bytes.Equal(k, l.pos) {
			k, _ = c.Next()
		}
		if k == nil || !bytes.HasPrefix(k, l.prefix) {
			l.done = true
			return out, nil
		}
		l.pos = append(l.pos[:0], k...)
		// Every key under the prefix is the prefix and the suffix: no
		// volume path holds a NUL, and the other prefixes have one length.
		if len(k) != len(l.prefix)+suffixLen {
			return out, vsserr.New(vsserr.Unexpected, "catalog: malformed key in index %s", l.bucket)
		}
		id, _ := uuid.FromBytes(k[len(k)-16:])
		data := get(recs, id)
		if data == nil {
			return out, vsserr.New(vsserr.Unexpected, "catalog: index %s names snapshot %s, which has no record", l.bucket, id)
		}
		if l.grouped {
			set, err := recordSetID(data)
			if err != nil {
				return out, vsserr.Wrap(vsserr.Unexpected, err, "catalog: record of snapshot %s is corrupt", id)
			}
			for sp, end := range l.spanning {
				if bytes.Compare(end, k) < 0 {
					delete(l.spanning, sp) // passed its newest snapshot
				}
			}
			if _, emitted := l.spanning[set]; emitted {
				continue
			}
			if set != uuid.Nil {
				// The set is emitted whole at its lead; its other
				// snapshots were or will be emitted with it.
				if first, _ := sets.Seek(set[:]); first != nil && bytes.HasPrefix(first, set[:]) && bytes.Equal(first[len(set):], k) {
					if l.pending, err = l.groupAt(recs, sets, first, set, data); err != nil {
						return out, err
					}
				}
				continue
			}
		}
		s, err := decodeRecord(data)
		if err != nil {
			return out, vsserr.Wrap(vsserr.Unexpected, err, "catalog: record of snapshot %s is corrupt", id)
		}
		if l.f.matches(&s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// get is Bucket.Get on a cursor of the bucket that the caller reuses.
func get(c *bolt.Cursor, id uuid.UUID) []byte {
	k, v := c.Seek(id[:])
	if !bytes.Equal(k, id[:]) {
		return nil
	}
	return v
}
