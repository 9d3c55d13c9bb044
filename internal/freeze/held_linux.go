package freeze

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Held lists the filesystems frozen by guards right now, from their records
// in runDir (written just before each FIFREEZE, removed after its FITHAW),
// oldest first. GuardRunning is false for a record whose guard is gone:
// that filesystem stays frozen until Recover (lvssd's start, or the Guard
// that reaps its guard) thaws it.
//
// It only reads: lvss status calls it while filesystems are frozen, and the
// run dir is on a filesystem that is never frozen. Unreadable records are
// skipped (Recover reports them).
func Held(runDir string) ([]HeldFS, error) {
	dir := recordDir(runDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []HeldFS
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".tmp-") || !strings.HasSuffix(n, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			continue // removed meanwhile: thawed
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil || r.Dev == "" {
			continue
		}
		out = append(out, HeldFS{Device: r.Dev, MountPoint: r.Mnt, Type: r.Type, Paths: r.Paths, Since: r.At,
			GuardPid: r.Pid, GuardRunning: guardAlive(r.Pid)})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return out[i].MountPoint < out[j].MountPoint
	})
	return out, nil
}
