// Package provider defines what lvss asks of a snapshot provider and how the
// coordinator picks one for a volume.
//
// A provider takes, lists and deletes point-in-time snapshots of volumes. On
// Linux a "volume" is a path: a mount point, a btrfs subvolume, a directory a
// provider knows how to capture. Only the coordinator calls providers, always
// in the order of vss-reference §7.3 for one snapshot set:
//
//	BeginPrepareSnapshot ×N   (AddToSnapshotSet, any time before DoSnapshotSet)
//	EndPrepareSnapshots       (DoSnapshotSet, after writers' PrepareForSnapshot)
//	PreCommitSnapshots        (writers frozen)
//	CommitSnapshots           (inside the hold window: must be fast, must not
//	                           log or write to any volume of the set)
//	PostCommitSnapshots       (writers still frozen; returns the snapshots)
//	PreFinalCommitSnapshots   (writers thawed)
//	PostFinalCommitSnapshots  (after writers' PostSnapshot)
//
// AbortSnapshots may come at any point after BeginPrepareSnapshot and must be
// idempotent; so must DeleteSnapshot. A provider must tolerate a new set
// starting at any time, since a requester that gives up before DoSnapshotSet
// may produce no Abort at all. The Provider interface's comment has the
// rules: out-of-order calls, what Abort undoes, cancellation, restarts.
//
// Optional abilities are small interfaces found by type assertion: Exposer
// today; Reverter later. Every provider, ours or a third party's, runs the
// conformance suite in package providertest.
package provider
