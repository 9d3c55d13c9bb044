package version

import (
	"strings"
	"testing"
)

// Link-time values win over what the toolchain recorded; the line names
// all three.
func TestLinkTimeValues(t *testing.T) {
	saved := [3]string{version, commit, date}
	t.Cleanup(func() { version, commit, date = saved[0], saved[1], saved[2] })
	version, commit, date = "1.2.3", "0123456789abcdef0123", "2026-12-06T13:05:00Z"
	i := Get()
	if i.Version != "1.2.3" || i.Commit != "0123456789abcdef0123" || i.Date != "2026-12-06T13:05:00Z" {
		t.Fatalf("Get() = %+v", i)
	}
	s := Info{Version: "1.2.3", Commit: "0123456789abcdef0123", Date: "2026-12-06T13:05:00Z"}.String()
	if s != "1.2.3 (commit 0123456789ab, built 2026-12-06T13:05:00Z)" {
		t.Fatalf("String() = %q", s)
	}
	if s := (Info{Version: "1", Commit: "abc", Date: "d", Dirty: true}).String(); !strings.Contains(s, "commit abc+dirty") {
		t.Fatalf("dirty: %q", s)
	}
}

// Without link-time values nothing is empty: a test binary has no VCS
// stamp, so the fallbacks show.
func TestFallbacks(t *testing.T) {
	saved := [3]string{version, commit, date}
	t.Cleanup(func() { version, commit, date = saved[0], saved[1], saved[2] })
	version, commit, date = "", "", ""
	i := Get()
	if i.Version == "" || i.Commit == "" || i.Date == "" {
		t.Fatalf("Get() = %+v", i)
	}
}
