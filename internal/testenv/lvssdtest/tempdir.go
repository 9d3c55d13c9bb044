package lvssdtest

import (
	"os"
	"path/filepath"
	"testing"
)

// shortTempDir makes a temporary directory with a short path, removed at
// cleanup. Daemons put their socket in it: Unix socket paths are limited
// to about 100 bytes (sun_path), and t.TempDir's paths grow with the
// test's name. The path has its symlinks resolved, so that it is what
// lvssd calls it (the coordinator resolves volume paths).
func shortTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return dir
}
