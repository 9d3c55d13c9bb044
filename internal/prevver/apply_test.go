package prevver

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func readLinks(t *testing.T, dir string) map[string]string {
	t.Helper()
	list, err := os.ReadDir(dir)
	out := map[string]string{}
	if errors.Is(err, os.ErrNotExist) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			target = "(not a link)"
		}
		out[e.Name()] = target
	}
	return out
}

// Apply makes the directory hold exactly the entries: missing ones
// added, wrong targets fixed, stray entries (links, files, directories,
// temporary links left by a crash) removed; right ones are left as they
// are.
func TestApply(t *testing.T) {
	top := dirs(t, "a", "b", "c")
	dir := filepath.Join(top, "run", "previous-versions", "srv-share")
	want := []Entry{{Name: "@GMT-2026.03.02-07.00.00", Target: filepath.Join(top, "a")},
		{Name: "@GMT-2026.03.02-12.00.00", Target: filepath.Join(top, "b")}}
	ch, err := Apply(dir, want)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Added, []string{want[0].Name, want[1].Name}) || len(ch.Fixed)+len(ch.Removed) != 0 {
		t.Errorf("first Apply: %+v", ch)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("the snapdir: %v, %v (want mode 0755: smbd reads it as the connected user)", fi, err)
	}
	keep, _ := os.Lstat(filepath.Join(dir, want[0].Name))

	// Edited behind lvssd's back: one entry re-pointed, one replaced by a
	// directory, strays added, one entry deleted.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Remove(filepath.Join(dir, want[1].Name)))
	must(os.Mkdir(filepath.Join(dir, want[1].Name), 0o755))
	must(os.WriteFile(filepath.Join(dir, want[1].Name, "x"), nil, 0o644))
	must(os.Symlink(filepath.Join(top, "c"), filepath.Join(dir, "@GMT-2001.01.01-00.00.00")))
	must(os.Symlink(filepath.Join(top, "c"), filepath.Join(dir, tmpPrefix+"0011223344556677")))
	must(os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644))
	want = append(want, Entry{Name: "@GMT-2026.03.03-07.00.00", Target: filepath.Join(top, "c")})
	ch, err = Apply(dir, want)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Added, []string{want[2].Name}) || !slices.Equal(ch.Fixed, []string{want[1].Name}) ||
		!slices.Equal(ch.Removed, []string{".lvss-tmp-0011223344556677", "@GMT-2001.01.01-00.00.00", "notes.txt"}) {
		t.Errorf("second Apply: %+v", ch)
	}
	got := readLinks(t, dir)
	if len(got) != 3 || got[want[0].Name] != want[0].Target || got[want[1].Name] != want[1].Target || got[want[2].Name] != want[2].Target {
		t.Errorf("the snapdir holds %v", got)
	}
	if now, _ := os.Lstat(filepath.Join(dir, want[0].Name)); !os.SameFile(keep, now) {
		t.Error("a right entry was made again")
	}
	if _, err := os.Stat(filepath.Join(top, "c")); err != nil {
		t.Errorf("removing a stray link removed its target: %v", err)
	}
	// Nothing to do: nothing done.
	if ch, err := Apply(dir, want); err != nil || !ch.Empty() {
		t.Errorf("third Apply: %+v, %v", ch, err)
	}
	// The snapdir replaced by a file: made again.
	must(os.RemoveAll(dir))
	must(os.WriteFile(dir, nil, 0o644))
	if ch, err := Apply(dir, want[:1]); err != nil || len(ch.Added) != 1 {
		t.Errorf("over a file: %+v, %v", ch, err)
	}
}

// Each entry changes atomically: a reader looking at an entry while Apply
// re-points it again and again always finds it (the old link or the new).
func TestApplyFixesAtomically(t *testing.T) {
	top := dirs(t, "a", "b")
	dir := filepath.Join(top, "snapdir")
	name := "@GMT-2026.03.02-07.00.00"
	if _, err := Apply(dir, []Entry{{Name: name, Target: filepath.Join(top, "a")}}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var missing atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, os.ErrNotExist) {
				missing.Add(1)
			}
		}
	}()
	for i := range 500 {
		target := filepath.Join(top, "a")
		if i%2 == 0 {
			target = filepath.Join(top, "b")
		}
		if ch, err := Apply(dir, []Entry{{Name: name, Target: target}}); err != nil || len(ch.Fixed) != 1 {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("Apply %d: %+v, %v", i, ch, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := missing.Load(); n > 0 {
		t.Errorf("a reader found the entry missing %d times while it was re-pointed", n)
	}
}
