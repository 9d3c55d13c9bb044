package filecopy

import (
	"strings"

	"github.com/lvss/lvss/provider/confval"
)

// Config is the [providers.copy] section of lvssd's configuration. The
// copy provider is the fallback for filesystems without snapshots, and it
// is never chosen for a volume not listed here.
type Config struct {
	Volumes     []string     `toml:"volumes"`      // opt-in list
	SnapshotDir string       `toml:"snapshot_dir"` // default <state-dir>/copies
	MaxBytes    confval.Size `toml:"max_bytes"`    // per volume; default 1GiB; over it VSS_E_INSUFFICIENT_STORAGE
}

// Validate checks the paths: all absolute, and no volume inside the
// snapshot directory. key is where the section is in the file
// ("providers.copy"); a problem is a *confval.KeyError naming keys under it.
func (c Config) Validate(key string) error {
	for i, v := range c.Volumes {
		if err := confval.AbsPath(confval.Elem(key+".volumes", i), v); err != nil {
			return err
		}
	}
	if c.SnapshotDir == "" {
		return nil
	}
	if err := confval.AbsPath(key+".snapshot_dir", c.SnapshotDir); err != nil {
		return err
	}
	// A volume inside the copies' own directory would copy copies.
	dir := strings.TrimSuffix(c.SnapshotDir, "/")
	for i, v := range c.Volumes {
		if v == dir || strings.HasPrefix(v, dir+"/") {
			k := confval.Elem(key+".volumes", i)
			return confval.Errorf([]string{k}, "%s: %q is inside %s.snapshot_dir", k, v, key)
		}
	}
	return nil
}
