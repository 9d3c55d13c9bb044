package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The database integration tests share one way of proving what a snapshot
// holds: the application records the acknowledgement time of every commit
// (counter value and the instant COMMIT returned) in an acknowledgement
// log, the writer logs JSON records with the instants it froze and
// released its application, and checkCounter compares the snapshot's
// counter with both (docs/decisions.md L28).

// Bank-style invariant shared by the applications under load.
const (
	bankAccounts = 100
	bankOpening  = 1000 // each account's opening balance
	appWorkers   = 3
)

// ack is one acknowledged commit: the counter value it wrote and when
// COMMIT returned.
type ack struct {
	n  int
	at time.Time
}

// ackLog is the application side: safe for concurrent use by its workers.
type ackLog struct {
	mu sync.Mutex
	w  io.Writer
}

// record notes that commit n was acknowledged now.
func (l *ackLog) record(n int) error {
	at := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := fmt.Fprintf(l.w, "%d %d\n", n, at.UnixNano())
	return err
}

// readAcks returns the acknowledgements logged so far, in counter order.
func readAcks(t *testing.T, path string) []ack {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	var out []ack
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue // the line being written
		}
		n, err1 := strconv.Atoi(f[0])
		ns, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("acknowledgement log line %q", l)
		}
		out = append(out, ack{n, time.Unix(0, ns)})
	}
	slices.SortFunc(out, func(x, y ack) int { return x.n - y.n })
	return out
}

// moreCommits waits until the application (whose acknowledgements read
// returns) has committed n more times, so that consecutive backups catch
// it at work: a count of commits rather than a pause, which a loaded
// machine would fill with fewer.
func moreCommits(t *testing.T, read func(*testing.T) []ack, n int) {
	t.Helper()
	have := len(read(t))
	eventually(t, 20*time.Second, fmt.Sprintf("%d more commits of the application", n), func() bool {
		return len(read(t)) >= have+n
	})
}

// holdRecord is a writer's JSON log record about one hold of its
// application: the shipped database writers log one when they release it,
// with these fields.
type holdRecord struct {
	Msg       string        `json:"msg"`
	Session   string        `json:"session"`
	By        string        `json:"by"`         // the event that released it: Thaw, Abort, BackupShutdown, ...
	Held      time.Duration `json:"held"`       // from locked_at to release_at
	FreezeAt  time.Time     `json:"freeze_at"`  // when Freeze reached the writer
	LockedAt  time.Time     `json:"locked_at"`  // when the application was held (commits blocked)
	ReleaseAt time.Time     `json:"release_at"` // when the writer began releasing it
}

// logRecords returns the records of a JSON log file with the given message.
func logRecords(t *testing.T, path, msg string) []holdRecord {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []holdRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r holdRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Msg == msg {
			out = append(out, r)
		}
	}
	return out
}

// sessionRecord returns the record of one session, failing t without one.
func sessionRecord(t *testing.T, recs []holdRecord, session string) holdRecord {
	t.Helper()
	for _, r := range recs {
		if r.Session == session {
			return r
		}
	}
	t.Fatalf("the writer logged no release for session %s: %+v", session, recs)
	return holdRecord{}
}

// lastAckedBefore is the highest counter acknowledged before at.
func lastAckedBefore(acks []ack, at time.Time) int {
	n := 0
	for _, a := range acks {
		if a.at.Before(at) {
			n = max(n, a.n)
		}
	}
	return n
}

// firstAckedAfter is the lowest counter acknowledged after at, or -1.
func firstAckedAfter(acks []ack, at time.Time) int {
	n := -1
	for _, a := range acks {
		if a.at.After(at) && (n < 0 || a.n < n) {
			n = a.n
		}
	}
	return n
}

// checkCounter checks the counter c found in a snapshot against the
// acknowledgement log and the writer's hold record, and logs the figures.
//
// Every writer: c is at least the last commit acknowledged before Freeze
// reached the writer (nothing acknowledged is missing) and at most the
// first acknowledged after the release.
//
// blocksCommits (the writer holds its application's commits from
// LockedAt to ReleaseAt): the snapshot is exactly the database at
// LockedAt. Every commit acknowledged before LockedAt is in it, and the
// next commit, c+1, was acknowledged only after ReleaseAt. Transactions
// already committing when Freeze arrived may finish before LockedAt; the
// count of them is logged, not bounded (L28).
func checkCounter(t *testing.T, label string, c int, acks []ack, rec holdRecord, blocksCommits bool) {
	t.Helper()
	beforeFreeze := lastAckedBefore(acks, rec.FreezeAt)
	if c < beforeFreeze {
		t.Errorf("%s: the snapshot's counter is %d, but %d was acknowledged before Freeze reached the writer", label, c, beforeFreeze)
	}
	afterRelease := firstAckedAfter(acks, rec.ReleaseAt)
	if afterRelease < 0 {
		t.Fatalf("%s: the application acknowledged no commit after the release at %s", label, rec.ReleaseAt.Format(time.RFC3339Nano))
	}
	if c > afterRelease {
		t.Errorf("%s: the snapshot's counter is %d, beyond %d, the first commit acknowledged after the release", label, c, afterRelease)
	}
	msg := fmt.Sprintf("%s: counter %d; %d acknowledged before Freeze reached the writer, %d first after the release",
		label, c, beforeFreeze, afterRelease)
	if blocksCommits {
		if held := lastAckedBefore(acks, rec.LockedAt); c < held {
			t.Errorf("%s: the snapshot's counter is %d, but %d was acknowledged before the writer held the application", label, c, held)
		}
		i := slices.IndexFunc(acks, func(a ack) bool { return a.n == c+1 })
		if i < 0 {
			t.Fatalf("%s: the application never acknowledged commit %d", label, c+1)
		}
		if next := acks[i]; !next.at.After(rec.ReleaseAt) {
			t.Errorf("%s: commit %d, not in the snapshot (counter %d), was acknowledged at %s, before the writer released the application at %s",
				label, next.n, c, next.at.Format(time.RFC3339Nano), rec.ReleaseAt.Format(time.RFC3339Nano))
		}
		msg += fmt.Sprintf("; %d committed while the writer waited %s for its hold; commit %d acknowledged %s after the release",
			c-beforeFreeze, rec.LockedAt.Sub(rec.FreezeAt).Round(time.Microsecond), c+1, acks[i].at.Sub(rec.ReleaseAt).Round(time.Microsecond))
	}
	if blocksCommits {
		t.Logf("%s; application held for %s", msg, rec.Held.Round(time.Microsecond))
	} else {
		t.Logf("%s; Freeze→Thaw window %s, nothing held", msg, rec.Held.Round(time.Microsecond))
	}
}
