package providertest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Entries lists what dir holds, as paths, for a Setup's Residue: a
// provider's snapshot store or temporary directory. A missing dir holds
// nothing.
func Entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("residue: %v", err)
	}
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}

// Mounts lists the mount points at or under dir, innermost last, for a
// Setup's Residue: exposures left behind under its ExposeDir. It finds
// none where the system has no mount table to read (only Linux's is read).
func Mounts(t *testing.T, dir string) []string {
	t.Helper()
	ms, err := mountsUnder(dir)
	if err != nil {
		t.Fatalf("residue: %v", err)
	}
	return ms
}
