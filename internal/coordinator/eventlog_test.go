package coordinator

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// TestEventLogNeverBlocksItsCallers is the stall FuzzSessionCalls found:
// with the catalog's writes held up (here by the pause a hold takes, the
// longest a write can be held up on purpose), sessions and log entries
// keep coming. Nobody who logs may wait for the catalog: the entries that
// do not fit are dropped, infos first, and the log says how many once it
// is written again, as does the metric (L60).
func TestEventLogNeverBlocksItsCallers(t *testing.T) {
	obs := &recObserver{}
	e := newEnv(t, func(o *Options) { o.Observer = obs })
	ctx := context.Background()
	e.c.FlushEvents()
	resume := e.c.pauseLog()
	defer resume()

	const infos = 3 * evQueueEntries
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range infos {
			e.c.Logf(ctx, LevelInfo, 0, "flood", "i", strconv.Itoa(i))
			if i%1000 == 0 {
				e.c.Logf(ctx, LevelWarn, vsserr.WriterNotResponding, "a warning", "i", strconv.Itoa(i))
				e.c.Logf(ctx, LevelError, vsserr.ProviderVeto, "an error", "i", strconv.Itoa(i))
			}
		}
		// The original symptom: a requester opening sessions in a loop.
		for range 1000 {
			e.c.NewSession(Peer{}).Release(ctx)
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute): // only ends a broken test
		t.Fatal("a caller blocked on the event log while its writes were held up")
	}
	if obs.count("EventDropped info") == 0 {
		t.Fatal("the queue never filled: the test proves nothing")
	}

	resume()
	e.c.FlushEvents()
	evs, err := e.c.Events(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var flood, warns, errs int
	var dropped [3]int
	for _, ev := range evs {
		switch ev.Message {
		case "flood":
			flood++
		case "a warning":
			warns++
		case "an error":
			errs++
		}
		if strings.HasSuffix(ev.Message, "events dropped: the event log could not keep up") {
			if ev.Level != LevelWarn {
				t.Errorf("the drop is reported as %s, want warn", ev.Level)
			}
			for i, k := range []string{"dropped_info", "dropped_warn", "dropped_error"} {
				n, _ := strconv.Atoi(ev.Fields[k])
				dropped[i] += n
			}
		}
	}
	want := (infos + 999) / 1000
	if warns != want || errs != want {
		t.Errorf("log has %d warnings and %d errors of %d each: they must not be dropped while infos can be", warns, errs, want)
	}
	if dropped[1] != 0 || dropped[2] != 0 {
		t.Errorf("dropped %d warnings and %d errors", dropped[1], dropped[2])
	}
	if dropped[0] == 0 || dropped[0] != obs.count("EventDropped info") {
		t.Errorf("the log reports %d infos dropped, the metric %d", dropped[0], obs.count("EventDropped info"))
	}
	// Infos from the sessions were dropped too; the flood's are all
	// accounted for, written or dropped.
	if flood >= infos || flood+dropped[0] < infos {
		t.Errorf("%d flood entries written and %d infos dropped, of %d", flood, dropped[0], infos)
	}
	if flood < evQueueEntries/2 {
		t.Errorf("only %d flood entries written: the queue holds %d", flood, evQueueEntries)
	}
}

// The order of dropping: infos first, then warnings, errors last; within a
// level the newcomer when nothing less important is queued. What is kept
// is written in the order it came, followed by the report of the drops.
func TestEventQueueDropsLeastImportantFirst(t *testing.T) {
	var drops []Level
	q := newEventQueue(4, 1<<20, func(l Level) { drops = append(drops, l) })
	put := func(level, msg string) { q.put(catalog.Event{Level: level, Message: msg}) }
	put(catalog.LevelInfo, "i1")
	put(catalog.LevelWarn, "w1")
	put(catalog.LevelInfo, "i2")
	put(catalog.LevelError, "e1") // full now
	put(catalog.LevelError, "e2") // evicts i1
	put(catalog.LevelWarn, "w2")  // evicts i2
	put(catalog.LevelInfo, "i3")  // nothing less important: dropped itself
	put(catalog.LevelError, "e3") // evicts w1
	put(catalog.LevelWarn, "w3")  // only warnings and errors: dropped itself
	batch, flushes, closed := q.take()
	if len(flushes) != 0 || closed {
		t.Fatalf("flushes %d, closed %v", len(flushes), closed)
	}
	var got []string
	for _, e := range batch {
		got = append(got, e.Message)
	}
	if want := "e1 e2 w2 e3 5 events dropped: the event log could not keep up"; strings.Join(got, " ") != want {
		t.Fatalf("written: %q\nwant     %q", strings.Join(got, " "), want)
	}
	if f := batch[len(batch)-1].Fields; f["dropped_info"] != "3" || f["dropped_warn"] != "2" || f["dropped_error"] != "0" {
		t.Errorf("report fields %v", f)
	}
	if fmt.Sprint(drops) != "[info info info warn warn]" {
		t.Errorf("observer told %v", drops)
	}
	// Reported once: the next batch has no report.
	put(catalog.LevelInfo, "i4")
	if batch, _, _ := q.take(); len(batch) != 1 || batch[0].Message != "i4" {
		t.Errorf("next batch %+v", batch)
	}
}

// The byte bound holds whatever the entries' sizes; a value a peer sent is
// clipped before it is queued, so a 1 MB name costs the log 4 KiB.
func TestEventQueueBytesAndClipping(t *testing.T) {
	q := newEventQueue(1000, 10_000, func(Level) {})
	for range 100 {
		q.put(catalog.Event{Level: catalog.LevelInfo, Message: strings.Repeat("x", 1000)})
	}
	q.mu.Lock()
	n, size := q.n, q.size
	q.mu.Unlock()
	if size > 10_000 || n == 0 || n >= 100 {
		t.Errorf("%d entries, %d bytes queued under a 10000-byte bound", n, size)
	}

	e := newEnv(t, nil)
	huge := "/" + strings.Repeat("ä", 512<<10) // 1 MiB, two bytes a rune
	e.c.Logf(context.Background(), LevelWarn, vsserr.InvalidArg, huge, "volume", huge)
	evs, err := e.c.Events(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	for what, s := range map[string]string{"message": last.Message, "field": last.Fields["volume"]} {
		if len(s) > maxEventText+64 || !strings.HasSuffix(s, " more bytes)") || !strings.HasPrefix(s, "/ää") {
			t.Errorf("%s not clipped: %d bytes, ends %q", what, len(s), s[max(0, len(s)-30):])
		}
		if !strings.Contains(s, "ä… (") {
			t.Errorf("%s cut inside a character: %q", what, s[maxEventText-8:maxEventText+8])
		}
	}
}

// The event log's writer lets a session's entries gather and holds them
// back while a snapshot set is created (L68); a flush, closing, or a queue
// half full write at once.
func TestEventQueueDue(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	entry := catalog.Event{Level: catalog.LevelInfo, Message: "m"}
	for _, tc := range []struct {
		name     string
		entries  int
		after    time.Duration
		creating bool
		flush    bool
		close    bool
		ok, held bool
		wait     time.Duration
	}{
		{name: "nothing queued", ok: true},
		{name: "one entry, young", entries: 1, after: 10 * time.Millisecond, wait: evLinger - 10*time.Millisecond},
		{name: "one entry, lingered", entries: 1, after: evLinger, ok: true},
		{name: "young, during a creation", entries: 1, after: 10 * time.Millisecond, creating: true, wait: evLinger - 10*time.Millisecond},
		{name: "lingered, during a creation", entries: 1, after: evLinger, creating: true, held: true, wait: evHoldMax - evLinger},
		{name: "held as long as allowed", entries: 1, after: evHoldMax, creating: true, ok: true},
		{name: "a flush", entries: 1, after: time.Millisecond, creating: true, flush: true, ok: true},
		{name: "closing", entries: 1, after: time.Millisecond, creating: true, close: true, ok: true},
		{name: "half full", entries: 8, after: time.Millisecond, creating: true, ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newEventQueue(16, 1<<20, func(Level) {})
			for range tc.entries {
				q.put(entry)
			}
			q.oldest = t0 // as if the first had come at t0
			if tc.flush {
				q.flush()
			}
			if tc.close {
				q.close()
			}
			ok, wait, held := q.due(t0.Add(tc.after), tc.creating)
			if ok != tc.ok || wait != tc.wait || held != tc.held {
				t.Fatalf("due after %s (creating %v) = %v, %s, held %v; want %v, %s, held %v",
					tc.after, tc.creating, ok, wait, held, tc.ok, tc.wait, tc.held)
			}
		})
	}
}

// Nothing is written to the event log while DoSnapshotSet runs (L68): the
// entries of a creation and of whatever else happens meanwhile go to the
// catalog once it ends, without anyone flushing.
func TestEventLogHoldsBackDuringACreation(t *testing.T) {
	e := newEnv(t, nil)
	heldBack := make(chan struct{}, 1)
	e.c.evq.mu.Lock()
	e.c.evq.holdMax = time.Hour // only the creation's end may let them go
	e.c.evq.onHeld = func() {
		select {
		case heldBack <- struct{}{}:
		default:
		}
	}
	e.c.evq.mu.Unlock()
	w := e.writer("held", vss.LevelFrontEnd, 5*time.Second)
	frozen, thaw := w.holdAt(EvFreeze)
	defer thaw()

	s := e.toMeta(vss.CtxBackup, true)
	e.addAll(s)
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	a, err := s.DoSnapshotSet()
	must(t, err)
	<-frozen
	e.c.Logf(context.Background(), LevelInfo, 0, "logged during the freeze")
	select {
	case <-heldBack: // the writer has lingered, and holds them for the creation alone
	case <-time.After(20 * time.Second): // only ends a broken test
		t.Fatal("the event log's writer never held entries back for the creation")
	}

	inCatalog := func() bool {
		evs, err := e.cat.Events(0, 0) // the catalog itself: no flush
		must(t, err)
		for _, ev := range evs {
			if ev.Message == "logged during the freeze" {
				return true
			}
		}
		return false
	}
	if inCatalog() {
		t.Fatal("an entry logged during DoSnapshotSet was written before it ended")
	}
	thaw()
	must(t, e.wait(a, nil))
	e.until("the held entries written once DoSnapshotSet ended", inCatalog)
}
