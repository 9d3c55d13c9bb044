package config

// Limits bound what snapshots may consume.
type Limits struct {
	// MaxSnapshotsPerVolume caps the snapshots of one volume (VSS: 512);
	// over it AddToSnapshotSet fails with VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED.
	MaxSnapshotsPerVolume int `toml:"max_snapshots_per_volume"`
	// MinFree is the free space that must remain where a snapshot is kept;
	// below it the commit is refused with VSS_E_INSUFFICIENT_STORAGE.
	MinFree Size `toml:"min_free"`
}

// Providers configures the snapshot providers lvssd offers.
type Providers struct {
	// Order is the preference when a requester names no provider (spec
	// §7.1): the first that supports the volume takes it. Names are
	// "btrfs", "copy" and the names of the exec providers.
	Order []string     `toml:"order"`
	Btrfs BtrfsConfig  `toml:"btrfs"`
	Exec  []ExecConfig `toml:"exec"`
	Copy  CopyConfig   `toml:"copy"`
}

// BtrfsConfig configures the btrfs provider.
type BtrfsConfig struct {
	Disabled bool `toml:"disabled"`
	// Volumes set a snapshot location per volume; by default a volume's
	// snapshots live in a subvolume named .lvss-snapshots at the root of
	// its own subvolume (same filesystem, excluded from later snapshots).
	Volumes []BtrfsVolume `toml:"volume"`
}

// BtrfsVolume is one [[providers.btrfs.volume]] entry.
type BtrfsVolume struct {
	Path        string `toml:"path"`         // the volume (a subvolume or a path in one)
	SnapshotDir string `toml:"snapshot_dir"` // where its snapshots go; must be on the same btrfs
}

// ExecConfig is one [[providers.exec]] provider: snapshots taken from
// outside the filesystem by commands (hypervisor, SAN, cloud disk API,
// image clones). Commands run with sh -c; docs/provider-exec.md lists
// their environment and output formats.
type ExecConfig struct {
	Name     string   `toml:"name"`     // provider name, unique
	Volumes  []string `toml:"volumes"`  // the volumes (mount points or paths) it snapshots
	Commit   string   `toml:"commit"`   // runs inside the freeze; prints the snapshot's handle
	Delete   string   `toml:"delete"`   // removes one snapshot ($LVSS_SNAPSHOT_HANDLE)
	List     string   `toml:"list"`     // optional: prints the handles it holds, one per line
	Expose   string   `toml:"expose"`   // optional: makes a snapshot readable at $LVSS_EXPOSE_PATH
	Unexpose string   `toml:"unexpose"` // optional: undoes expose
	// Timeout bounds commit; it must fit in timeouts.hold (unset: hold).
	Timeout *Duration `toml:"timeout"`
	// OtherTimeout bounds delete, list, expose and unexpose (unset: 60s).
	OtherTimeout *Duration `toml:"other_timeout"`
}

// CopyConfig configures the copy provider, the fallback for filesystems
// without snapshots. It is never chosen for a volume not listed here.
type CopyConfig struct {
	Volumes     []string `toml:"volumes"`      // opt-in list
	SnapshotDir string   `toml:"snapshot_dir"` // default <state-dir>/copies
	MaxBytes    Size     `toml:"max_bytes"`    // per volume; default 1GiB; over it VSS_E_INSUFFICIENT_STORAGE
}
