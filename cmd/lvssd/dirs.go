package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// prepareDir creates dir if it is missing and checks that nobody but
// lvssd's own user (root, as a service) can change what is in it or put
// something else in its place (L51). The state directory holds the
// catalog, the run directory the freeze guards' records (what start-up
// thaws) and, by default, the socket: whoever could write there could
// plant a catalog, make lvssd thaw or delete what they name, or stand in
// for lvssd's socket.
//
// A directory that exists with a mode or owner that allows that is
// refused, not fixed: lvssd cannot know what was put there meanwhile, and
// the operator should look before trusting it. The error names the
// directory and the command that fixes it. A directory lvssd creates is
// made 0755 and owned by it, which passes.
func prepareDir(what, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	return checkDir(what, dir, os.Geteuid())
}

// checkDir checks dir and each of its parents for euid. The directory
// itself must be owned by euid and writable by nobody else; a parent must
// be owned by root or euid and writable by nobody else either, unless it
// has the sticky bit (as /tmp has: others may create entries there but
// not rename or remove ours).
func checkDir(what, dir string, euid int) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	owner := "root"
	if euid != 0 {
		owner = fmt.Sprintf("uid %d (the user lvssd runs as)", euid)
	}
	for p, self := abs, true; ; p, self = filepath.Dir(p), false {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, dir, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s %s: cannot read the owner of %s", what, dir, p)
		}
		role := what + " " + p
		if !self {
			role = "directory " + p + " (a parent of the " + what + " " + abs + ")"
		}
		switch {
		case self && !fi.IsDir():
			return fmt.Errorf("%s %s is not a directory", what, p)
		case self && int(st.Uid) != euid, !self && st.Uid != 0 && int(st.Uid) != euid:
			return fmt.Errorf("%s is owned by uid %d, not %s: that user could replace what lvssd keeps there; fix: chown %d %s (and check its content)",
				role, st.Uid, owner, euid, p)
		case fi.Mode().Perm()&0o022 != 0 && (self || fi.Mode()&fs.ModeSticky == 0):
			return fmt.Errorf("%s is writable by group or others (mode %04o): they could replace what lvssd keeps there; fix: chmod go-w %s (and check its content)",
				role, fi.Mode().Perm(), p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
