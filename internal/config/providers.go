package config

import (
	"github.com/lvss/lvss/provider/btrfs"
	"github.com/lvss/lvss/provider/exec"
	"github.com/lvss/lvss/provider/filecopy"
)

// Limits bound what snapshots may consume.
type Limits struct {
	// MaxSnapshotsPerVolume caps the snapshots of one volume (VSS: 512);
	// over it AddToSnapshotSet fails with VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED.
	MaxSnapshotsPerVolume int `toml:"max_snapshots_per_volume"`
	// MinFree is the free space that must remain where a snapshot is kept;
	// below it the commit is refused with VSS_E_INSUFFICIENT_STORAGE.
	MinFree Size `toml:"min_free"`
	// MaxEvents is how many entries the event log keeps (the newest);
	// older ones are pruned as new ones come.
	MaxEvents int `toml:"max_events"`
}

// Providers configures the snapshot providers lvssd offers. Each provider
// package owns its section's type and the rules about its own values; this
// package adds the rules between sections (names unique across providers
// and known to Order) and places errors in the file.
type Providers struct {
	// Order is the preference when a requester names no provider (vss-reference
	// §7.1): the first that supports the volume takes it. Names are
	// "btrfs", "copy" and the names of the exec providers.
	Order []string        `toml:"order"`
	Btrfs btrfs.Config    `toml:"btrfs"`
	Exec  []exec.Config   `toml:"exec"`
	Copy  filecopy.Config `toml:"copy"`
}
