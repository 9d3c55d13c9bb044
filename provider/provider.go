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
// call order. Errors should carry one of the permitted HRESULTs of vss-reference §7.2
// (vsserr); anything else is logged and reported as
// VSS_E_UNEXPECTED_PROVIDER_ERROR. Package providertest checks every rule
// below.
//
// # Snapshot sets
//
// A set ID names one snapshot set, once. Its steps come in the order of the
// package comment, each once (BeginPrepareSnapshot once per volume). The set
// is finished when PostFinalCommitSnapshots returns nil, and undone by
// AbortSnapshots. A provider refuses a call that breaks the order, with a
// code that vss-reference §7.2 permits for the call (anything else would reach the
// requester as VSS_E_UNEXPECTED_PROVIDER_ERROR), and a refused call changes
// nothing:
//
//   - EndPrepareSnapshots, PreCommitSnapshots, CommitSnapshots and
//     PostCommitSnapshots for a set the provider does not hold (never
//     begun, aborted, finished), or that is not the set's next step
//     (CommitSnapshots before EndPrepareSnapshots, a second
//     EndPrepareSnapshots...), are VSS_E_OBJECT_NOT_FOUND: there is no set
//     in the state the step needs. (vss-reference §7.2 gives them no VSS_E_BAD_STATE.)
//   - PreFinalCommitSnapshots and PostFinalCommitSnapshots in the same
//     cases are E_INVALIDARG, the only fitting code on their list.
//   - BeginPrepareSnapshot for a set past EndPrepareSnapshots, finished or
//     aborted is E_INVALIDARG: a set ID is never prepared twice. The
//     provider remembers the sets it finished or aborted during its own
//     life (ClosedSets keeps the most recent). A set dropped as abandoned
//     while in preparation (see the package comment) made nothing, and is
//     not closed.
//
// AbortSnapshots is the failure path of vss-reference §7.3, and there is no partial
// commit: until PostFinalCommitSnapshots has returned nil it removes every
// snapshot of the set, also ones committed and reported by
// PostCommitSnapshots. A finished set is permanent: AbortSnapshots of it is
// a no-op that leaves its snapshots, which only DeleteSnapshot removes.
//
// # Contexts and cancellation
//
// The coordinator cancels the context of EndPrepareSnapshots when the
// requester cancels DoSnapshotSet, bounds CommitSnapshots with a deadline
// (the hold or freeze window) and never cancels it otherwise, and runs the
// steps after the commit and AbortSnapshots with contexts that are never
// cancelled, so that a set is always finished or undone. A requester's
// DeleteSnapshots can be cancelled. So for EndPrepareSnapshots,
// CommitSnapshots and DeleteSnapshot:
//
//   - given a context that is already done, the call does nothing and
//     returns an error for which errors.Is(err, ctx.Err()) holds (it may
//     carry an HRESULT as well);
//   - when the context ends while EndPrepareSnapshots or CommitSnapshots
//     works (copies, runs a command, waits for a sync), the call stops
//     that work and returns such an error promptly: in the time it takes
//     to kill a command or finish the file in hand. A single system call
//     that cannot be interrupted (one btrfs snapshot ioctl) may complete
//     first, and the call may then succeed;
//   - after either of them failed so, the next call for the set is
//     AbortSnapshots, which removes whatever the step made: Query never
//     lists a snapshot of the set;
//   - DeleteSnapshot whose context ends while it works either finishes (and
//     returns nil) or stops with such an error, leaving the snapshot
//     listed by Query for a later DeleteSnapshot to remove.
//
// The other calls are short and may ignore their context.
//
// # Restarts
//
// Snapshots outlive the provider value that made them. A new one made over
// the same configuration and state, as lvssd makes at every start, lists
// them with Query, and DeleteSnapshot and Expose work with the Snapshot an
// earlier one reported (the coordinator's catalog keeps it), as does
// reading its DevicePath. Sets in creation do not survive a restart.
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
	// known before writers get PostSnapshot (vss-reference §3.6).
	PostCommitSnapshots(ctx context.Context, setID uuid.UUID, count int) ([]Snapshot, error)
	PreFinalCommitSnapshots(ctx context.Context, setID uuid.UUID) error
	// PostFinalCommitSnapshots finishes the set (the snapshots become
	// read-only and permanent).
	PostFinalCommitSnapshots(ctx context.Context, setID uuid.UUID) error
	// AbortSnapshots forgets the set and removes anything made for it,
	// unless the set is finished (see "Snapshot sets" above). Idempotent;
	// unknown sets are not an error.
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

// Reverter is a provider that can roll a volume back to one of its
// snapshots (RevertToSnapshot, D10). The coordinator has already checked
// what is not the provider's business (the snapshot's context, writers on
// the volume, another revert of the volume in this lvssd) and calls one
// Revert at a time per volume.
type Reverter interface {
	// Revert makes the live volume s.OriginalVolume hold s's content
	// and returns when it does. It is journaled: a process killed in the
	// middle leaves a revert that RecoverReverts finishes or undoes, never
	// half of one. Codes: VSS_E_VOLUME_NOT_SUPPORTED for a volume the
	// provider cannot revert in place (the message says why and what
	// layout would allow it); VSS_E_VOLUME_IN_USE when something uses the
	// volume and force is false; VSS_E_REVERT_IN_PROGRESS when an
	// unfinished revert of the volume is on record; VSS_E_OBJECT_NOT_FOUND
	// for a snapshot or volume that is gone.
	Revert(ctx context.Context, s Snapshot, force bool) error
	// RecoverReverts finishes, or when that is impossible undoes, every
	// revert an earlier process left unfinished. lvssd calls it once at
	// start, before it serves anyone.
	RecoverReverts(ctx context.Context) []RevertOutcome
}

// RevertOutcome is what RecoverReverts did with one interrupted revert.
type RevertOutcome struct {
	SnapshotID uuid.UUID
	Volume     string
	// Completed: the volume now holds the snapshot's content. Otherwise it
	// was left as it was before the revert (Err says why it could not be
	// finished), or, when Err is set and Completed is false and the
	// journal is kept, recovery failed and will be retried at the next
	// start.
	Completed bool
	Err       error
}
