package prevver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Changes is what Apply did to a snapdir, by entry name.
type Changes struct {
	Added, Fixed, Removed []string
}

// Empty reports whether Apply changed nothing.
func (c Changes) Empty() bool { return len(c.Added)+len(c.Fixed)+len(c.Removed) == 0 }

// tmpPrefix starts the names of links being made. shadow_copy2 ignores
// names that are not of its format, so a reader never takes one for a
// version; one left by a crash is stale and removed by the next Apply.
const tmpPrefix = ".lvss-tmp-"

// Apply makes dir hold exactly want: a symlink per entry, named Name and
// pointing at Target. A missing entry is added and a wrong one (another
// target, or not a symlink) replaced, each by making the link under a
// temporary name and renaming it over the entry, so that a reader sees
// the old link or the new one, never none; anything else in dir is
// removed. dir is made (0755: smbd follows the links as the connected
// user) if it is not there, and replaced if it is not a directory. It
// goes on past a failure with one entry, and returns the first.
func Apply(dir string, want []Entry) (Changes, error) {
	var ch Changes
	if err := ensureDir(dir); err != nil {
		return ch, err
	}
	have := map[string]os.DirEntry{}
	list, err := os.ReadDir(dir)
	if err != nil {
		return ch, err
	}
	for _, e := range list {
		have[e.Name()] = e
	}
	var first error
	fail := func(err error) {
		if first == nil {
			first = err
		}
	}
	wanted := map[string]bool{}
	for _, e := range want {
		wanted[e.Name] = true
		path := filepath.Join(dir, e.Name)
		cur, ok := have[e.Name]
		if ok && cur.Type()&os.ModeSymlink != 0 {
			if t, err := os.Readlink(path); err == nil && t == e.Target {
				continue
			}
		}
		if ok && cur.IsDir() {
			// rename(2) does not replace a directory with a link.
			if err := os.RemoveAll(path); err != nil {
				fail(fmt.Errorf("remove %s, which is in the way of an entry: %w", path, err))
				continue
			}
		}
		if err := link(dir, e.Name, e.Target); err != nil {
			fail(err)
			continue
		}
		if ok {
			ch.Fixed = append(ch.Fixed, e.Name)
		} else {
			ch.Added = append(ch.Added, e.Name)
		}
	}
	for name := range have {
		if wanted[name] {
			continue
		}
		// RemoveAll does not follow links: only what is in dir goes.
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			fail(fmt.Errorf("remove the stale entry %s: %w", filepath.Join(dir, name), err))
			continue
		}
		ch.Removed = append(ch.Removed, name)
	}
	slices.Sort(ch.Removed)
	return ch, first
}

// link makes dir/name a symlink to target, atomically.
func link(dir, name, target string) error {
	var r [8]byte
	_, _ = rand.Read(r[:])
	tmp := filepath.Join(dir, tmpPrefix+hex.EncodeToString(r[:]))
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("make the entry %s: %w", filepath.Join(dir, name), err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("make the entry %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// ensureDir makes dir a directory of mode 0755, replacing what else is
// there (a link or a file left by someone: the directory is lvssd's).
func ensureDir(dir string) error {
	fi, err := os.Lstat(dir)
	switch {
	case err == nil && fi.IsDir():
		if fi.Mode().Perm() != 0o755 {
			return os.Chmod(dir, 0o755)
		}
		return nil
	case err == nil:
		if err := os.Remove(dir); err != nil {
			return fmt.Errorf("%s is not a directory and cannot be removed: %w", dir, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	// Mkdir's mode is cut by the umask.
	return os.Chmod(dir, 0o755)
}
