package exec

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzHookDirNames creates a hook directory holding files with the names
// the input gives (separated by '/', the one byte a name cannot hold) and
// lists its scripts. Exactly the executable files that are neither hidden
// nor leftovers are run, each a path inside the directory, in byte order;
// a name the filesystem refuses is simply not there.
func FuzzHookDirNames(f *testing.F) {
	f.Add("10-db/20-app/.hidden/app.bak/app~/app.dpkg-old/-dash/ spaced /ünï/\xff\xfe")
	f.Add("a/a.rpmnew/a.sample/.a/..a/a..")
	f.Add("x.disabled/X/x.swp/x.tmp/x.old/x.orig")
	f.Fuzz(func(t *testing.T, names string) {
		dir := t.TempDir()
		var want []string
		for _, name := range strings.Split(names, "/") {
			if name == "" || name == "." || name == ".." || len(name) > 255 || strings.ContainsRune(name, 0) || strings.HasPrefix(name, "zz-") {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
				continue
			}
			hidden := strings.HasPrefix(name, ".")
			leftover := slices.ContainsFunc(leftoverSuffixes, func(s string) bool { return strings.HasSuffix(name, s) })
			if !hidden && !leftover && !slices.Contains(want, filepath.Join(dir, name)) {
				want = append(want, filepath.Join(dir, name))
			}
		}
		// A directory and a file that is not executable are never run.
		_ = os.Mkdir(filepath.Join(dir, "zz-dir"), 0o755)
		_ = os.WriteFile(filepath.Join(dir, "zz-noexec"), nil, 0o644)
		got, err := listScripts(dir, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(want)
		want = slices.DeleteFunc(want, func(p string) bool { return p == filepath.Join(dir, "zz-dir") || p == filepath.Join(dir, "zz-noexec") })
		if !slices.Equal(got, want) {
			t.Fatalf("listScripts = %q\nwant          %q", got, want)
		}
		for _, p := range got {
			if filepath.Dir(p) != dir {
				t.Fatalf("%q is outside the hook directory", p)
			}
		}
	})
}
