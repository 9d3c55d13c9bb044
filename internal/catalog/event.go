package catalog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/lvss/lvss/vsserr"
)

// Event levels.
const (
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// Event is one entry of the event log.
type Event struct {
	Seq       uint64 // assigned by AppendEvent, increasing
	Time      time.Time
	Level     string         // LevelInfo, LevelWarn or LevelError
	Code      vsserr.HRESULT // 0 when not an error
	SessionID uuid.UUID      // zero when not tied to a session
	Message   string
	Fields    map[string]string
}

// eventRecord is the stored form; Seq is the key and is not repeated.
type eventRecord struct {
	Time      time.Time         `json:"time"`
	Level     string            `json:"level"`
	Code      vsserr.HRESULT    `json:"code,omitempty"`
	SessionID uuid.UUID         `json:"session_id"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields,omitempty"`
}

// AppendEvent records e and returns the sequence number it was given. A zero
// Time means now and an empty Level means info; e.Seq is ignored.
func (db *DB) AppendEvent(e Event) (uint64, error) {
	seqs, err := db.appendEvents([]Event{e})
	if err != nil {
		return 0, err
	}
	return seqs[0], nil
}

// AppendEvents records several events in one transaction (one fsync), in
// order.
func (db *DB) AppendEvents(evs ...Event) error {
	_, err := db.appendEvents(evs)
	return err
}

func (db *DB) appendEvents(evs []Event) ([]uint64, error) {
	datas := make([][]byte, len(evs))
	for i, e := range evs {
		switch e.Level {
		case "":
			e.Level = LevelInfo
		case LevelInfo, LevelWarn, LevelError:
		default:
			return nil, vsserr.New(vsserr.InvalidArg, "catalog: event level %q is not info, warn or error", e.Level)
		}
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		data, err := json.Marshal(eventRecord{
			Time:      e.Time.UTC(),
			Level:     e.Level,
			Code:      e.Code,
			SessionID: e.SessionID,
			Message:   e.Message,
			Fields:    e.Fields,
		})
		if err != nil {
			return nil, vsserr.Wrap(vsserr.Unexpected, err, "catalog: encoding event")
		}
		datas[i] = data
	}
	seqs := make([]uint64, len(evs))
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		// Keys only ever grow, so a page that splits is never written
		// again: filling it whole (bbolt's default is half) halves the
		// log's pages (docs/decisions.md L49).
		b.FillPercent = 1.0
		for i, data := range datas {
			// NextSequence survives pruning, so sequence numbers are never
			// reused and a reader's "after" cursor stays meaningful.
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(seq), data); err != nil {
				return err
			}
			seqs[i] = seq
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return seqs, nil
}

// Events returns up to limit events with Seq greater than afterSeq, oldest
// first. A limit of zero or less means no limit. Callers page through the
// log by passing the last Seq they saw.
func (db *DB) Events(afterSeq uint64, limit int) ([]Event, error) {
	var out []Event
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(seqKey(afterSeq + 1)); k != nil; k, v = c.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			seq := binary.BigEndian.Uint64(k)
			if seq <= afterSeq {
				// afterSeq+1 wrapped around: nothing can follow.
				break
			}
			var r eventRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return vsserr.Wrap(vsserr.Unexpected, err, "catalog: event %d is corrupt", seq)
			}
			out = append(out, Event{
				Seq:       seq,
				Time:      r.Time,
				Level:     r.Level,
				Code:      r.Code,
				SessionID: r.SessionID,
				Message:   r.Message,
				Fields:    r.Fields,
			})
		}
		return nil
	})
	return out, err
}

// EventQuery selects events for QueryEvents. Zero fields do not select.
type EventQuery struct {
	AfterSeq uint64 // only events with a larger Seq
	Limit    int    // at most this many (<= 0: no limit)
	// Newest: with a Limit, the newest Limit matching events rather than
	// the first ones after AfterSeq. Either way they are returned oldest
	// first.
	Newest bool
	// Match, when set, is called for each event after AfterSeq; only events
	// it accepts are returned and count against Limit.
	Match func(Event) bool
}

// QueryEvents returns the events q selects, oldest first, and the sequence
// number of the log's newest event as the same read saw it (0 when the log
// is empty): a follower that got fewer than Limit events continues after
// it, without reading again what did not match. With Newest it walks the
// log from its end and stops at the Limit-th match, so the latest few
// errors cost a few reads however long the log is.
func (db *DB) QueryEvents(q EventQuery) ([]Event, uint64, error) {
	var out []Event
	var last uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		if k, _ := c.Last(); k != nil {
			last = binary.BigEndian.Uint64(k)
		}
		take := func(k, v []byte) (bool, error) {
			seq := binary.BigEndian.Uint64(k)
			if seq <= q.AfterSeq {
				return false, nil
			}
			var r eventRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return false, vsserr.Wrap(vsserr.Unexpected, err, "catalog: event %d is corrupt", seq)
			}
			e := Event{Seq: seq, Time: r.Time, Level: r.Level, Code: r.Code, SessionID: r.SessionID, Message: r.Message, Fields: r.Fields}
			if q.Match == nil || q.Match(e) {
				out = append(out, e)
			}
			return true, nil
		}
		full := func() bool { return q.Limit > 0 && len(out) >= q.Limit }
		if q.Newest && q.Limit > 0 {
			for k, v := c.Last(); k != nil && !full(); k, v = c.Prev() {
				more, err := take(k, v)
				if err != nil {
					return err
				}
				if !more {
					break // at or before AfterSeq: nothing older can match
				}
			}
			for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
				out[i], out[j] = out[j], out[i]
			}
			return nil
		}
		for k, v := c.Seek(seqKey(q.AfterSeq + 1)); k != nil && !full(); k, v = c.Next() {
			more, err := take(k, v)
			if err != nil {
				return err
			}
			if !more {
				break // AfterSeq+1 wrapped around: nothing can follow
			}
		}
		return nil
	})
	return out, last, err
}

// PruneEvents deletes all but the newest keep events.
func (db *DB) PruneEvents(keep int) error {
	if keep < 0 {
		return vsserr.New(vsserr.InvalidArg, "catalog: cannot keep %d events", keep)
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		// The oldest event to keep is keep before the newest: sequence
		// numbers are handed out one by one in the transactions that
		// append (a rolled-back one takes its numbers back) and events go
		// only from the oldest, so the log's keys have no gaps. Walking
		// back keep entries to find it cost 4 ms of the catalog's write
		// lock at the default 100,000, every 1,024 events, which a set's
		// record then waited for (BenchmarkPruneEvents).
		var keepFrom []byte // nil: delete everything
		if keep > 0 {
			k, _ := c.Last()
			if k == nil {
				return nil
			}
			last := binary.BigEndian.Uint64(k)
			if last < uint64(keep) {
				return nil // no more than keep events
			}
			keepFrom = seqKey(last - uint64(keep) + 1)
		}
		// Deleting at the cursor and then calling Next can skip entries in
		// bbolt, so restart from First after every delete.
		for k, _ := c.First(); k != nil && (keepFrom == nil || bytes.Compare(k, keepFrom) < 0); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }
