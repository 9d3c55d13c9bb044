package prevver

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/vss"
)

// Format is shadow_copy2's shadow:format for the entries' names: strftime
// of the snapshot's creation time in UTC (shadow:localtime = no).
const Format = "@GMT-%Y.%m.%d-%H.%M.%S"

// tokenLayout is Format in Go's notation.
const tokenLayout = "@GMT-2006.01.02-15.04.05"

// Token is the entry name of a time: its second in UTC, as a Windows
// client's @GMT token names a previous version.
func Token(t time.Time) string { return t.UTC().Format(tokenLayout) }

// ParseToken reads an entry name back; ok is false for any other name.
func ParseToken(name string) (t time.Time, ok bool) {
	t, err := time.Parse(tokenLayout, name)
	return t, err == nil
}

// Share is one [[previous_versions]] path as lvssd keeps it.
type Share struct {
	// Path is the share's directory, absolute, symlinks resolved: what
	// Samba's share path and shadow:mountpoint must be.
	Path string
	// AllPersistent also shows persistent snapshots that are not
	// client-accessible.
	AllPersistent bool
	// Dir is its snapdir (shadow:snapdir).
	Dir string
}

// Entry is one @GMT- entry of a snapdir.
type Entry struct {
	Name     string // @GMT-YYYY.MM.DD-HH.MM.SS
	Snapshot uuid.UUID
	// Created is the snapshot's creation time as the catalog holds it;
	// Name is its second, or a later one by the same-second rule (L56).
	Created time.Time
	// Target is where the link points: the snapshot's copy of the share's
	// directory.
	Target string
}

// Skip is a snapshot that would be shown but cannot be, and why.
type Skip struct {
	Snapshot uuid.UUID
	Reason   string
}

// Shows says whether a snapshot is of a kind the share shows (L55):
// persistent snapshots made client-accessible (VSS_CTX_CLIENT_ACCESSIBLE,
// VSS_CTX_CLIENT_ACCESSIBLE_WRITERS: what D13 means for "previous
// versions"), and with allPersistent every other persistent one too.
// Auto-release snapshots never: they vanish with their session, under a
// client that may be reading them.
func Shows(sn catalog.Snapshot, allPersistent bool) bool {
	c := vss.Context(sn.Context)
	if sn.AutoRelease || !c.Persistent() {
		return false
	}
	if allPersistent {
		return true
	}
	b := c.Base()
	return b == vss.CtxClientAccessible || b == vss.CtxClientAccessibleWriters ||
		vss.Attributes(sn.Attributes)&vss.AttrClientAccessible != 0
}

// Volumes are the volumes whose snapshots may hold the share's directory:
// the path itself and each directory above it, nearest first. The
// catalog keeps snapshots by the volume the requester named, so these are
// the ones to list.
func Volumes(path string) []string {
	out := []string{path}
	for p := path; p != "/"; {
		p = filepath.Dir(p)
		out = append(out, p)
	}
	return out
}

// statFunc is os.Stat; tests put another in its place.
type statFunc func(string) (os.FileInfo, error)

// Plan computes the entries a share's snapdir should hold, from the
// catalog's snapshots of each of Volumes(share.Path) (byVolume). A
// snapshot counts when Shows says so and its volume holds the share's
// directory on the same filesystem (a snapshot of / does not hold a
// directory of a btrfs mounted at /srv, nor a btrfs snapshot a nested
// subvolume). Its entry points at the snapshot's device path plus the
// share's path below the volume, which must be a directory: a snapshot
// of a provider that gives no directory (an exec provider's image or
// URL), or whose copy is not reachable now, is skipped with the reason.
// Names follow the same-second rule (nameEntries).
func Plan(share Share, byVolume map[string][]catalog.Snapshot, stat statFunc) ([]Entry, []Skip) {
	if stat == nil {
		stat = os.Stat
	}
	var entries []Entry
	var skips []Skip
	shareInfo, shareErr := stat(share.Path)
	for _, vol := range Volumes(share.Path) {
		snaps := byVolume[vol]
		var shown []catalog.Snapshot
		for _, sn := range snaps {
			if Shows(sn, share.AllPersistent) {
				shown = append(shown, sn)
			}
		}
		if len(shown) == 0 {
			continue
		}
		rel, _ := filepath.Rel(vol, share.Path)
		why := ""
		if vol != share.Path {
			switch vi, err := stat(vol); {
			case shareErr != nil:
				why = fmt.Sprintf("the share's directory %s cannot be looked at: %v", share.Path, shareErr)
			case err != nil:
				why = fmt.Sprintf("its volume %s cannot be looked at: %v", vol, err)
			case !sameFilesystem(vi, shareInfo):
				// Not the volume holding the path: say nothing, as for any
				// other volume's snapshots.
				continue
			}
		}
		for _, sn := range shown {
			if why != "" {
				skips = append(skips, Skip{sn.ID, why})
				continue
			}
			target := sn.DevicePath
			if rel != "." {
				target = filepath.Join(target, rel)
			}
			if !filepath.IsAbs(sn.DevicePath) {
				skips = append(skips, Skip{sn.ID, fmt.Sprintf("its device path %q (provider %s) is not a directory lvssd can link to: "+
					"an image, a device or a URL is shown to Samba only once it is mounted somewhere", sn.DevicePath, sn.ProviderName)})
				continue
			}
			switch fi, err := stat(target); {
			case err != nil:
				skips = append(skips, Skip{sn.ID, fmt.Sprintf("its copy of %s, %s, cannot be reached: %v", share.Path, target, err)})
				continue
			case !fi.IsDir():
				skips = append(skips, Skip{sn.ID, fmt.Sprintf("its copy of %s, %s (provider %s), is not a directory: "+
					"an image or a device is shown to Samba only once it is mounted somewhere", share.Path, target, sn.ProviderName)})
				continue
			}
			entries = append(entries, Entry{Snapshot: sn.ID, Created: sn.Created, Target: target})
		}
	}
	return nameEntries(entries), skips
}

// nameEntries names the entries by the same-second rule (L56): in order
// of creation (then snapshot ID, so that the order never changes between
// two reconciles), each takes its creation time's second, or, when that
// second is taken by the one before, the next free second after it. Every
// snapshot is shown, and its name is at most as many seconds late as
// there were snapshots before it in that second. A name can change only
// when a snapshot of the same or an earlier second comes or goes.
func nameEntries(es []Entry) []Entry {
	slices.SortFunc(es, func(a, b Entry) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Snapshot.String(), b.Snapshot.String())
	})
	var last time.Time
	for i := range es {
		t := es[i].Created.UTC().Truncate(time.Second)
		if i > 0 && !t.After(last) {
			t = last.Add(time.Second)
		}
		es[i].Name, last = Token(t), t
	}
	return es
}

// Shut finds the first directory on the way to the entries' targets that
// other users may not search (no o+x) when they may search the way to the
// share itself: smbd opens a version as the connected user, so such a
// directory (the btrfs provider's .lvss-snapshots, mode 0700) keeps every
// user but root from the versions, though Samba lists them. A share whose
// own way is shut to others is reached through its owner or group, by the
// admin's design, and is not second-guessed. lvssd does not open the
// directory itself: lvss never widens access on its own (L53); lvss
// doctor says what to run. dir is "" when nothing stands in the way.
func Shut(share Share, entries []Entry, stat statFunc) (dir string, mode os.FileMode) {
	if stat == nil {
		stat = os.Stat
	}
	live := map[string]bool{}
	for _, v := range Volumes(share.Path) {
		live[v] = true
		if fi, err := stat(v); err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "", 0
		}
	}
	seen := map[string]bool{}
	for _, e := range entries {
		var chain []string
		for p := filepath.Dir(e.Target); !live[p] && !seen[p]; p = filepath.Dir(p) {
			chain = append(chain, p)
			seen[p] = true
			if p == "/" {
				break
			}
		}
		// From the top down: the first shut one is the one to open.
		for i := len(chain) - 1; i >= 0; i-- {
			if fi, err := stat(chain[i]); err == nil && fi.IsDir() && fi.Mode().Perm()&0o001 == 0 {
				return chain[i], fi.Mode().Perm()
			}
		}
	}
	return "", 0
}
