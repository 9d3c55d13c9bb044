package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"90m":                         now.Add(-90 * time.Minute),
		"2h30m":                       now.Add(-150 * time.Minute),
		"3d":                          now.Add(-72 * time.Hour),
		"0.5d":                        now.Add(-12 * time.Hour),
		"2026-11-25T01:10:03Z":        time.Date(2026, 11, 25, 1, 10, 3, 0, time.UTC),
		"2026-11-25T01:10:03.5+02:00": time.Date(2026, 11, 24, 23, 10, 3, 5e8, time.UTC),
		"2026-11-25 01:10":            time.Date(2026, 11, 25, 1, 10, 0, 0, time.Local),
		"2026-11-25":                  time.Date(2026, 11, 25, 0, 0, 0, 0, time.Local),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-1h", "2026-13-01", "5x"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) accepted", bad)
		}
	}
}

// TestEventsUsage: every malformed filter is a usage error (exit 2), before
// lvssd is asked anything.
func TestEventsUsage(t *testing.T) {
	sock := t.TempDir() + "/nothing.sock"
	for _, argv := range [][]string{
		{"events", "--since", "yesterday"}, {"events", "--level", "debug"}, {"events", "--hresult", "VSS_E_NO_SUCH"},
		{"events", "--session", "not-a-guid"}, {"events", "--limit", "-1"}, {"list", "events", "--level", "loud"}, {"events", "extra"},
	} {
		code, out, errOut := runLvss(t, sock, "", argv...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, "hint: run 'lvss ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", argv, code, out, errOut)
		}
	}
}

func eventsJSON(t *testing.T, socket string, argv ...string) []map[string]any {
	t.Helper()
	code, out, errOut := runLvss(t, socket, "", append(argv, "--json")...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", argv, code, errOut)
	}
	var evs []map[string]any
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
	return evs
}

func seqs(evs []map[string]any) []int {
	var out []int
	for _, e := range evs {
		out = append(out, int(e["seq"].(float64)))
	}
	return out
}

// TestEventsFilters: each filter selects what it says, --limit keeps the
// newest (or with --after the first), and lvss list events is the same
// command.
func TestEventsFilters(t *testing.T) {
	srv := startLvssd(t)
	runTestWriter(t, srv.Socket, "Files", "main", vss.LevelFrontEnd, newTestWriter(srv.Volume(t, "files")))
	lvssdtest.WaitWriters(t, srv.Socket, 1)
	vol := srv.Volume(t, "data")
	if code, _, _ := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol); code != 0 {
		t.Fatal("create shadow failed")
	}
	srv.Fake.FailAt("CommitSnapshots", vsserr.New(vsserr.ProviderVeto, "the array is busy"))
	if code, _, _ := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol); code != exitFailed {
		t.Fatal("create shadow with a vetoing provider did not fail")
	}

	all := eventsJSON(t, srv.Socket, "events")
	if len(all) < 6 {
		t.Fatalf("too few events: %v", all)
	}
	var failed map[string]any
	for _, e := range all {
		if e["message"] == "DoSnapshotSet failed; creation aborted" {
			failed = e
		}
	}
	if failed == nil || failed["name"] != "VSS_E_PROVIDER_VETO" || failed["session_id"] == "" {
		t.Fatalf("no failed creation in %v", all)
	}
	check := func(name string, evs []map[string]any, ok func(map[string]any) bool) {
		t.Helper()
		if len(evs) == 0 {
			t.Errorf("%s: nothing", name)
		}
		for _, e := range evs {
			if !ok(e) {
				t.Errorf("%s: %v", name, e)
			}
		}
	}
	check("--level error", eventsJSON(t, srv.Socket, "events", "--level", "error"), func(e map[string]any) bool { return e["level"] == "error" })
	check("--level warning", eventsJSON(t, srv.Socket, "events", "--level", "WARNING"), func(e map[string]any) bool { return e["level"] != "info" })
	for _, code := range []string{"VSS_E_PROVIDER_VETO", "0x80042306"} {
		check("--hresult "+code, eventsJSON(t, srv.Socket, "events", "--hresult", code), func(e map[string]any) bool { return e["hresult"] == "0x80042306" })
	}
	sess := failed["session_id"].(string)
	bySession := eventsJSON(t, srv.Socket, "events", "--session", sess)
	check("--session", bySession, func(e map[string]any) bool { return e["session_id"] == sess })
	if len(bySession) < 3 { // started, failed, released
		t.Errorf("--session: %v", bySession)
	}
	check("--writer", eventsJSON(t, srv.Socket, "events", "--writer", "files"), func(e map[string]any) bool {
		return strings.EqualFold(e["fields"].(map[string]any)["writer"].(string), "files")
	})
	if evs := eventsJSON(t, srv.Socket, "events", "--since", "1h"); len(evs) != len(all) {
		t.Errorf("--since 1h: %d of %d", len(evs), len(all))
	}
	if evs := eventsJSON(t, srv.Socket, "events", "--since", time.Now().Add(time.Hour).Format(time.RFC3339)); len(evs) != 0 {
		t.Errorf("--since in an hour: %v", evs)
	}
	n := len(all)
	if got, want := seqs(eventsJSON(t, srv.Socket, "events", "--limit", "2")), seqs(all[n-2:]); !equalInts(got, want) {
		t.Errorf("--limit 2 = %v, want the newest %v", got, want)
	}
	if got, want := seqs(eventsJSON(t, srv.Socket, "events", "--after", "1", "--limit", "2")), seqs(all[1:3]); !equalInts(got, want) {
		t.Errorf("--after 1 --limit 2 = %v, want %v", got, want)
	}
	if got := eventsJSON(t, srv.Socket, "events", "--level", "error", "--limit", "1"); len(got) != 1 || got[0]["seq"] != failed["seq"] {
		t.Errorf("--level error --limit 1 = %v", got)
	}
	_, a, _ := runLvss(t, srv.Socket, "", "events", "--level", "warn")
	_, b, _ := runLvss(t, srv.Socket, "", "list", "events", "--level", "warn")
	if a != b || !strings.Contains(a, "session="+sess) || !strings.Contains(a, "[VSS_E_PROVIDER_VETO (0x80042306)]") {
		t.Errorf("lvss events and lvss list events differ:\n%s\n%s", a, b)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// syncBuffer is a bytes.Buffer safe to read while another goroutine writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestEventsFollow: --follow starts with the last 10 matching entries,
// prints each new one once as lvssd logs it (one JSON object per line),
// and ends with status 0 when interrupted.
func TestEventsFollow(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "data")
	for range 6 { // 18 entries: more than the tail
		if code, _, _ := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol); code != 0 {
			t.Fatal("create shadow failed")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--socket", srv.Socket, "events", "--follow", "--json", "--level", "info"}, strings.NewReader(""), &out, &errb)
	}()
	lines := func() []map[string]any {
		var evs []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if l == "" {
				continue
			}
			var e map[string]any
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("not one JSON object per line: %q", l)
			}
			evs = append(evs, e)
		}
		return evs
	}
	testenv.Eventually(t, 10*time.Second, "the first 10 entries", func() bool { return len(lines()) == 10 })
	first := lines()
	if last := first[9]["message"]; last != "session released" {
		t.Fatalf("the tail does not end with the log: %v", first)
	}
	srv.Fake.FailAt("CommitSnapshots", vsserr.New(vsserr.ProviderVeto, "the array is busy"))
	if code, _, _ := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol); code != exitFailed {
		t.Fatal("create shadow with a vetoing provider did not fail")
	}
	testenv.Eventually(t, 15*time.Second, "the new entries", func() bool {
		for _, e := range lines() {
			if e["message"] == "DoSnapshotSet failed; creation aborted" {
				return true
			}
		}
		return false
	})
	testenv.Eventually(t, 15*time.Second, "the release after it", func() bool {
		evs := lines()
		return evs[len(evs)-1]["message"] == "session released" && len(evs) == 13
	})
	evs := lines()
	for i := 1; i < len(evs); i++ {
		if evs[i]["seq"].(float64) != evs[i-1]["seq"].(float64)+1 {
			t.Fatalf("entries repeated or missed: %v", seqs(evs))
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 || errb.String() != "" {
			t.Fatalf("interrupted follower: exit %d, stderr %q", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follower did not end when interrupted")
	}
}
