// Package prevver keeps lvssd's previous-versions snapdirs: for each
// [[previous_versions]] path of lvssd's configuration (a directory a Samba
// share serves), a directory of symlinks named by time,
// @GMT-YYYY.MM.DD-HH.MM.SS, each pointing at one snapshot's copy of that
// directory. Samba's vfs_shadow_copy2 module reads such a snapdir
// (shadow:snapdir, shadow:format = @GMT-%Y.%m.%d-%H.%M.%S,
// shadow:localtime = no) and offers every entry to Windows clients as a
// Previous Version of the share's files (docs/previous-versions.md).
//
// The snapdirs are derived state, made to match the catalog by one
// reconcile step (Keeper.Reconcile): the entries a share should have are
// computed from the catalog's snapshots (Plan: which snapshots count,
// where each one's copy of the share is, and the rule for two snapshots
// within one second, docs/decisions.md L55–L56), and the directory is
// then made to hold exactly those (Apply): missing entries added, stale
// ones removed, wrong targets fixed, each entry changed atomically (a
// symlink made under a temporary name, then renamed over it). Being one
// idempotent step, it runs the same way at lvssd's start (which also
// repairs a snapdir edited behind lvssd's back) and after every change to
// the snapshots, whichever path made it: lvssd hands Keeper.Trigger to
// the coordinator as Options.SnapshotsChanged, which the catalog calls for
// every change of a snapshot record and revert for its own.
//
// Trigger never waits: the reconcile runs in the keeper's own goroutine,
// coalescing the changes that come while it runs, so a slow or failing
// reconcile never holds up or fails a backup. A failure is written to the
// event log and tried again at the next change. The snapdirs live in
// lvssd's run directory (a tmpfs: nothing is written to a filesystem a
// freeze could hold), and since the run directory is kept across a
// restart and rebuilt at each start, Samba never sees them stale for
// longer than lvssd takes to start.
package prevver
