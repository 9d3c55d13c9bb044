package coordinator

import (
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lvss/lvss/internal/catalog"
)

// The event log's queue (L60). Entries are written to the catalog by one
// goroutine in batches, one transaction each, so that logging never puts
// an fsync on a session's path. The queue is bounded and never blocks
// whoever logs: a requester that opens sessions in a tight loop, or a
// long hold during which the log is paused, must not stall every other
// session's path behind the event log. When it is full the least
// important entries go first (info, then warnings, then errors, the
// newest of a level before older ones), they are counted, and an entry
// saying how many were dropped is written with the next batch.
const (
	// evQueueEntries and evQueueBytes bound what waits to be written.
	// The writer holds at most as much again while it writes a batch.
	evQueueEntries = 4096
	evQueueBytes   = 4 << 20
	// evBatch bounds one catalog transaction.
	evBatch = 512
	// evLinger is how long the writer lets entries gather before it
	// writes them (L68): the few entries of one session (its set started,
	// each snapshot made, its release) then share one transaction, written
	// once the session is over instead of beside its snapshot.
	evLinger = 50 * time.Millisecond
	// evHoldMax bounds how long entries wait while a snapshot set is being
	// created: lvssd writes no event while the providers take snapshots
	// and the writers are frozen, unless a creation lasts longer than this.
	evHoldMax = 2 * time.Second
	// maxEventText bounds an entry's message and each field's value:
	// fields may carry what a requester or writer sent (a volume path, a
	// writer's name), and a 1 MB name must cost the log no more than any
	// other.
	maxEventText = 4096
)

// evRank orders levels by what is dropped first.
var evRank = map[string]int{catalog.LevelInfo: 0, catalog.LevelWarn: 1, catalog.LevelError: 2}

var evLevels = [...]Level{LevelInfo, LevelWarn, LevelError}

type queuedEvent struct {
	seq  uint64 // order of arrival, across levels
	size int
	e    catalog.Event
}

// eventQueue is the event log's bounded queue: one FIFO per level, so that
// dropping the least important entry costs nothing.
type eventQueue struct {
	maxEntries, maxBytes int
	dropped              func(Level) // told of each dropped entry, outside mu

	mu      sync.Mutex
	byLevel [3][]queuedEvent
	n, size int
	seq     uint64
	flushes []chan struct{}
	lost    [3]uint64 // dropped since the last report, by rank
	closed  bool
	wake    chan struct{} // one pending wake-up for the writer
	// oldest is when the oldest entry queued arrived; zero when none is.
	oldest time.Time
	// linger and holdMax are evLinger and evHoldMax (tests change them).
	linger, holdMax time.Duration
	// onHeld, set by tests, is called each time the writer holds entries
	// back for a creation.
	onHeld func()
}

func newEventQueue(maxEntries, maxBytes int, dropped func(Level)) *eventQueue {
	return &eventQueue{maxEntries: maxEntries, maxBytes: maxBytes, dropped: dropped, wake: make(chan struct{}, 1),
		linger: evLinger, holdMax: evHoldMax}
}

func eventSize(e *catalog.Event) int {
	n := len(e.Message) + 64
	for k, v := range e.Fields {
		n += len(k) + len(v) + 16
	}
	return n
}

// put queues e and returns at once. When the queue is full it makes room
// by dropping the oldest entry of a level below e's, or drops e itself
// when every entry queued matters as much or more.
func (q *eventQueue) put(e catalog.Event) {
	r := evRank[e.Level]
	it := queuedEvent{e: e, size: eventSize(&e)}
	var lost []Level
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	for q.n > 0 && (q.n+1 > q.maxEntries || q.size+it.size > q.maxBytes) {
		low := -1
		for l := 0; l < r; l++ {
			if len(q.byLevel[l]) > 0 {
				low = l
				break
			}
		}
		if low < 0 {
			break
		}
		old := q.byLevel[low][0]
		q.byLevel[low][0] = queuedEvent{}
		q.byLevel[low] = q.byLevel[low][1:]
		q.n--
		q.size -= old.size
		q.lost[low]++
		lost = append(lost, evLevels[low])
	}
	if q.n+1 > q.maxEntries || q.size+it.size > q.maxBytes {
		q.lost[r]++
		lost = append(lost, evLevels[r])
	} else {
		if q.n == 0 {
			q.oldest = time.Now()
		}
		q.seq++
		it.seq = q.seq
		q.byLevel[r] = append(q.byLevel[r], it)
		q.n++
		q.size += it.size
	}
	q.mu.Unlock()
	q.signal()
	for _, l := range lost {
		q.dropped(l)
	}
}

func (q *eventQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// flush returns a channel closed once everything queued before the call
// is written (or dropped); nil when the queue is closed.
func (q *eventQueue) flush() chan struct{} {
	ch := make(chan struct{})
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.flushes = append(q.flushes, ch)
	q.mu.Unlock()
	q.signal()
	return ch
}

// close stops accepting entries; the writer writes what is queued and
// ends.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// due says whether what is queued should be written now and, if not, how
// long the writer may wait before it must (L68). A flush, closing, and a
// queue half full are written at once; otherwise entries wait until the
// oldest has waited evLinger, and while a snapshot set is being created
// (creating) until it ends or the oldest has waited evHoldMax. held says
// that the creation alone holds them back.
func (q *eventQueue) due(now time.Time, creating bool) (ok bool, wait time.Duration, held bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.flushes) > 0 || q.n == 0 || 2*q.n >= q.maxEntries || 2*q.size >= q.maxBytes {
		return true, 0, false
	}
	age := now.Sub(q.oldest)
	if age < q.linger {
		return false, q.linger - age, false
	}
	if creating && age < q.holdMax {
		return false, q.holdMax - age, true
	}
	return true, 0, false
}

// take removes everything queued: the entries in order of arrival, with
// an entry reporting what was dropped since the last take, and the flushes
// waiting for them. closed says no more will come.
func (q *eventQueue) take() (batch []catalog.Event, flushes []chan struct{}, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	lists := q.byLevel
	q.byLevel = [3][]queuedEvent{}
	q.n, q.size = 0, 0
	q.oldest = time.Time{}
	flushes, q.flushes = q.flushes, nil
	batch = make([]catalog.Event, 0, len(lists[0])+len(lists[1])+len(lists[2])+1)
	for {
		pick := -1
		for l := range lists {
			if len(lists[l]) > 0 && (pick < 0 || lists[l][0].seq < lists[pick][0].seq) {
				pick = l
			}
		}
		if pick < 0 {
			break
		}
		batch = append(batch, lists[pick][0].e)
		lists[pick] = lists[pick][1:]
	}
	if total := q.lost[0] + q.lost[1] + q.lost[2]; total > 0 {
		batch = append(batch, catalog.Event{Time: time.Now().UTC(), Level: catalog.LevelWarn,
			Message: fmt.Sprintf("%d events dropped: the event log could not keep up", total),
			Fields: map[string]string{"dropped_info": fmt.Sprint(q.lost[0]), "dropped_warn": fmt.Sprint(q.lost[1]),
				"dropped_error": fmt.Sprint(q.lost[2])}})
		q.lost = [3]uint64{}
	}
	return batch, flushes, q.closed
}

// eventLoop writes queued events in batches, one transaction each, until
// the queue is closed and empty. Whoever puts or flushes leaves a wake-up
// behind, so the loop sleeps only when nothing new came while it wrote.
func (c *Coordinator) eventLoop() {
	defer close(c.evDone)
	sincePrune := 0
	for {
		c.awaitEventsDue()
		batch, flushes, closed := c.evq.take()
		if closed && len(batch) == 0 && len(flushes) == 0 {
			return
		}
		for len(batch) > 0 {
			n := min(len(batch), evBatch)
			if c.opt.Catalog != nil {
				c.gate.RLock()
				err := c.opt.Catalog.AppendEvents(batch[:n]...)
				c.gate.RUnlock()
				if err != nil {
					c.log.Error("event log write failed", "events", n, "error", err)
				}
				// The log keeps the newest MaxEvents entries (DefaultMaxEvents).
				if sincePrune += n; sincePrune >= eventPruneStep(c.opt.MaxEvents) {
					sincePrune = 0
					// Under the gate too: it writes to the catalog.
					c.gate.RLock()
					err := c.opt.Catalog.PruneEvents(c.opt.MaxEvents)
					c.gate.RUnlock()
					if err != nil {
						c.log.Error("event log pruning failed", "keep", c.opt.MaxEvents, "error", err)
					}
				}
			}
			batch = batch[n:]
		}
		for _, f := range flushes {
			close(f)
		}
		if !closed {
			<-c.evq.wake
		}
	}
}

// awaitEventsDue waits until the queue says its entries are due: a put,
// a flush, closing and the end of a creation each wake it to ask again.
func (c *Coordinator) awaitEventsDue() {
	var timer *time.Timer
	for {
		ok, wait, held := c.evq.due(time.Now(), c.creatingSets.Load() > 0)
		if held {
			c.evq.mu.Lock()
			hook := c.evq.onHeld
			c.evq.mu.Unlock()
			if hook != nil {
				hook()
			}
		}
		if ok {
			if timer != nil {
				timer.Stop()
			}
			return
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-c.evq.wake:
		case <-timer.C:
		}
	}
}

// clip bounds a message or field value to maxEventText bytes, cut at a
// character boundary, saying how much was cut.
func clip(s string) string {
	if len(s) <= maxEventText {
		return s
	}
	cut := maxEventText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d more bytes)", s[:cut], len(s)-cut)
}
