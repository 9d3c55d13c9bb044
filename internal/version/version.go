package version

import (
	"fmt"
	"runtime/debug"
)

// Set at link time: go build -ldflags "-X github.com/lvss/lvss/internal/version.version=1.2.3 ...".
var (
	version string
	commit  string
	date    string
)

// Info is one binary's identity.
type Info struct {
	Version string // "1.2.3", or "(devel)" for a build from a checkout
	Commit  string // the VCS revision, "unknown" when not recorded
	Date    string // build date (RFC 3339), or the commit's time; "unknown" when neither is known
	Dirty   bool   // built from a tree with uncommitted changes
}

// Get returns this binary's Info.
func Get() Info {
	i := Info{Version: version, Commit: commit, Date: date}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if i.Version == "" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Commit == "" {
					i.Commit = s.Value
				}
			case "vcs.time":
				if i.Date == "" {
					i.Date = s.Value
				}
			case "vcs.modified":
				i.Dirty = s.Value == "true"
			}
		}
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	if i.Date == "" {
		i.Date = "unknown"
	}
	return i
}

// String is the one line --version prints after the program's name:
// "1.2.3 (commit 0441b12…, built 2026-12-06T13:05:00Z)".
func (i Info) String() string {
	c := i.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if i.Dirty {
		c += "+dirty"
	}
	return fmt.Sprintf("%s (commit %s, built %s)", i.Version, c, i.Date)
}
