package testenv

import (
	"os"
	"testing"
	"time"
)

// pollInterval is how often Eventually looks at its condition: short
// enough not to slow tests down, long enough not to load the machine.
const pollInterval = 10 * time.Millisecond

// Eventually waits until cond holds, failing t with what it waited for if
// it does not within d. d is a bound for a broken run, not a pace: pick it
// generously (a loaded CI machine is slow), since a passing run returns as
// soon as cond holds. Tests wait this way for what they need to have
// happened, never by sleeping "long enough".
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(pollInterval)
	}
}

// OnCI reports whether the tests run on CI.
func OnCI() bool { return os.Getenv("CI") == "true" }

// Missing stops the test because what is named is missing: t.Fatal on CI,
// t.Skip elsewhere.
func Missing(t testing.TB, what string) {
	t.Helper()
	if OnCI() {
		t.Fatalf("required on CI but missing: %s", what)
	}
	t.Skipf("skipped: %s (required, and enforced, on CI)", what)
}

// RequireRoot stops the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root privileges")
	}
}

// SkipIfShort skips a slow test under -short, naming what is slow. On CI
// it fails instead: CI runs the whole suite, and a -short slipped into its
// command would otherwise skip tests silently.
func SkipIfShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		if OnCI() {
			t.Fatalf("-short on CI would skip: %s", why)
		}
		t.Skipf("skipped with -short: %s", why)
	}
}
