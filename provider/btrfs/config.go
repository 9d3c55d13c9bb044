package btrfs

import "github.com/lvss/lvss/provider/confval"

// Config is the [providers.btrfs] section of lvssd's configuration.
type Config struct {
	Disabled bool `toml:"disabled"`
	// Volumes set a snapshot location per volume; by default a volume's
	// snapshots live in a subvolume named .lvss-snapshots at the root of
	// its own subvolume (same filesystem, excluded from later snapshots).
	Volumes []VolumeConfig `toml:"volume"`
}

// VolumeConfig is one [[providers.btrfs.volume]] entry.
type VolumeConfig struct {
	Path        string `toml:"path"`         // the volume (a subvolume or a path in one)
	SnapshotDir string `toml:"snapshot_dir"` // where its snapshots go; must be on the same btrfs
}

// Validate checks what can be checked without looking at the filesystems
// (they may not be mounted yet when lvssd starts): every path absolute.
// key is where the section is in the file ("providers.btrfs"); a problem is
// a *confval.KeyError naming keys under it.
func (c Config) Validate(key string) error {
	for i, v := range c.Volumes {
		k := confval.Elem(key+".volume", i)
		if err := confval.AbsPath(k+".path", v.Path); err != nil {
			return err
		}
		if v.SnapshotDir != "" {
			if err := confval.AbsPath(k+".snapshot_dir", v.SnapshotDir); err != nil {
				return err
			}
		}
	}
	return nil
}
