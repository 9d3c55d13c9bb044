package exec

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lvss/lvss/writer"
)

// leftoverSuffixes mark files that sit in a hook directory without being
// hooks: editor backups and package managers' saved or proposed versions.
// Running an old copy next to the new one would freeze twice.
var leftoverSuffixes = []string{
	"~", ".bak", ".old", ".orig", ".swp", ".tmp", ".disabled", ".sample",
	".rpmnew", ".rpmorig", ".rpmsave",
	".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-bak", ".dpkg-tmp",
	".ucf-old", ".ucf-new", ".ucf-dist",
}

// listScripts returns the hook scripts of dir in lexical (byte) order:
// executable regular files, symbolic links followed, hidden files and
// leftovers skipped. The directory is read at every Freeze, so a script
// added or removed takes effect at the next backup without a restart.
func listScripts(dir string, log *slog.Logger) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("hook directory: %w", err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || slices.ContainsFunc(leftoverSuffixes, func(s string) bool { return strings.HasSuffix(name, s) }) {
			continue
		}
		path := filepath.Join(dir, name)
		st, err := os.Stat(path)
		if err != nil {
			log.Warn("hook script skipped", "script", path, "err", err)
			continue
		}
		if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			log.Debug("not an executable file; skipped", "script", path)
			continue
		}
		out = append(out, path)
	}
	slices.Sort(out) // ReadDir sorts already; the order is the contract
	return out, nil
}

// script builds the invocation of one hook-dir script. It is started by
// sh, as qemu-guest-agent's dispatcher starts them, so that a script
// without a "#!" line is still run as a shell script.
func (w *Writer) script(event, path, action string, ev *writer.Event, s *session, timeout time.Duration, release bool) (hook, error) {
	dir, err := w.tmpdirOf(s)
	if err != nil {
		return hook{}, err
	}
	return hook{
		event: event, what: "hook script " + path + " " + action,
		args: []string{"-c", `"$0" "$@"`, path, action},
		env:  w.env(event, ev, s), tmpdir: dir, timeout: timeout, release: release,
		selfRaised: ev.SelfRaised, outCap: otherOutCap,
	}, nil
}
