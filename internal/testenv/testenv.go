package testenv

import (
	"os"
	"testing"
)

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
