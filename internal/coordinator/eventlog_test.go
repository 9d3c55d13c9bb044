package coordinator

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/catalog"
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
