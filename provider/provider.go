package provider

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
)

// Info describes a provider (VSS_PROVIDER_PROP plus what the coordinator
// needs to know to use it safely).
type Info struct {
	ID        uuid.UUID
	Name      string
	Type      vss.ProviderType
	Version   string
	VersionID uuid.UUID
	// Atomic: each snapshot is a point-in-time image of its volume (btrfs,
	// block-level clones). False for providers that copy files one by one
	// (copy): their snapshots are consistent only under writer cover.
	Atomic bool
	// SetAtomic: one CommitSnapshots call captures all of this provider's
	// volumes of the set at one instant. When false, each snapshot is its
	// own instant (btrfs subvolumes are separate transactions).
	SetAtomic bool
	// NeedsFreeze: the coordinator must hold the filesystems of the set's
	// volumes (FIFREEZE) around CommitSnapshots because the provider copies
	// from outside the filesystem.
	NeedsFreeze bool
	// LongCommit: CommitSnapshots copies data and is bounded by the
	// writers' Freeze→Thaw window (timeouts.freeze) instead of the hold
	// window. Only for providers that do not need FIFREEZE (copy).
	LongCommit bool
	// Kinds are the kinds of snapshot it makes, among vss.SnapshotKinds
	// (D19): VSS_VOLSNAP_ATTR_DIFFERENTIAL for copy-on-write snapshots,
	// VSS_VOLSNAP_ATTR_PLEX for full copies. A context that asks for a
	// kind is given only a provider that makes it, and each snapshot is
	// labelled with its provider's kinds, never with one it lacks.
	Kinds vss.Attributes
}

// Snapshot is what a provider reports about a snapshot it made.
type Snapshot struct {
	ID             uuid.UUID
	SetID          uuid.UUID
	OriginalVolume string
	// DevicePath is where the snapshot's content can be read (VSS's
	// snapshot device object): a directory, a block device, a URL.
	DevicePath string
	// Handle is the provider's own reference, stored by the coordinator
	// and given back to DeleteSnapshot and Expose.
	Handle  string
	Created time.Time
	// Inconsistent, when not empty, says why the provider's own capture is
	// not a consistent image (e.g. files changed while they were copied).
	// The coordinator then records consistency "none" with this reason.
	Inconsistent string
	// Warnings are things the requester should know that do not make the
	// snapshot inconsistent (e.g. a nested btrfs subvolume that appears
	// empty inside it). The coordinator appends them to the snapshot's
	// consistency reason and writes them to the event log.
	Warnings []string
}

// Provider takes point-in-time snapshots. See the package comment for the
// call order. Errors should carry one of the permitted HRESULTs of spec §7.2
// (vsserr); anything else is logged and reported as
// VSS_E_UNEXPECTED_PROVIDER_ERROR.
type Provider interface {
	Info() Info

	// IsVolumeSupported reports capability, not current capacity: true
	// even when a per-volume cap is reached. volume is absolute and clean.
	IsVolumeSupported(ctx context.Context, volume string) (bool, error)

	// BeginPrepareSnapshot adds a volume to the set being created. It
	// returns VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER for a volume it cannot
	// snapshot, and VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED at its cap.
	BeginPrepareSnapshot(ctx context.Context, setID, snapshotID uuid.UUID, volume string, c vss.Context) error
	// EndPrepareSnapshots waits for any preparation to finish. Last point
	// at which VSS_E_INSUFFICIENT_STORAGE is expected.
	EndPrepareSnapshots(ctx context.Context, setID uuid.UUID) error
	PreCommitSnapshots(ctx context.Context, setID uuid.UUID) error
	// CommitSnapshots runs inside the flush-and-hold window: it must return
	// well under a second and must not log, write to, or wait on any
	// volume of the set.
	CommitSnapshots(ctx context.Context, setID uuid.UUID) error
	// PostCommitSnapshots runs after the hold is released, writers still
	// frozen, and returns the snapshots made: their device paths must be
	// known before writers get PostSnapshot (spec §3.6).
	PostCommitSnapshots(ctx context.Context, setID uuid.UUID, count int) ([]Snapshot, error)
	PreFinalCommitSnapshots(ctx context.Context, setID uuid.UUID) error
	// PostFinalCommitSnapshots finishes the set (the snapshots become
	// read-only and permanent).
	PostFinalCommitSnapshots(ctx context.Context, setID uuid.UUID) error
	// AbortSnapshots forgets the set and removes anything made for it.
	// Idempotent; unknown sets are not an error.
	AbortSnapshots(ctx context.Context, setID uuid.UUID) error

	// Query lists the snapshots the provider holds.
	Query(ctx context.Context) ([]Snapshot, error)
	// DeleteSnapshot removes one snapshot. Idempotent: deleting a snapshot
	// that is already gone returns nil.
	DeleteSnapshot(ctx context.Context, s Snapshot) error
}

// Exposer is a provider that can make a snapshot visible at a path.
type Exposer interface {
	// Expose makes the snapshot readable at path and returns the name it
	// is exposed under (normally path).
	Expose(ctx context.Context, s Snapshot, path string) (string, error)
	// Unexpose undoes Expose; idempotent.
	Unexpose(ctx context.Context, s Snapshot, exposedName string) error
}
