// Package filecopy is the "copy" snapshot provider: the fallback for
// filesystems that cannot snapshot (ext4, XFS without LVM underneath, any
// directory tree). A snapshot is a copy of the volume's tree in a directory
// of its own, made with reflinks (FICLONE) where the source and the copy
// share a filesystem that supports them (XFS with reflink, btrfs) and with
// plain data copies everywhere else.
//
// Such a copy is weaker than a real snapshot, and the provider says so:
//
//   - It is not atomic. Files are copied one after another while the
//     filesystem stays live; only the writers are frozen (the coordinator
//     commits it inside the writers' Freeze→Thaw window, Info.LongCommit).
//     FIFREEZE is never used: a reflink on a frozen XFS blocks until thaw,
//     uninterruptibly.
//   - It costs time and space in proportion to the tree (files × extents
//     for reflinks, bytes for plain copies), so it is bounded by
//     providers.copy.max_bytes and limits.min_free.
//   - It is opt-in: only volumes listed in providers.copy.volumes, and
//     paths inside them on the same filesystem, are ever supported.
//
// Every file is stat'ed before and after it is copied, and the whole tree
// once more when the copy is done. If anything changed, vanished or appeared
// meanwhile, the copy is not the image of one instant and the snapshot's
// Inconsistent names the files; the coordinator then records consistency
// "none" whatever the writers did.
//
// Layout under snapshot_dir (default <state-dir>/copies, mode 0700):
//
//	<snapshot-id>/       the copy; a file of the volume is <snapshot-id>/<path relative to the volume>
//	<snapshot-id>.json   what Query needs after a restart, and the copy's state
//
// A copy is "creating" until PostFinalCommitSnapshots and only then a
// snapshot that Query lists. One still "creating" or "deleting" when a
// Provider is made was cut short by a crash or restart (the coordinator's
// catalog never recorded it, or was deleting it); New removes it. One
// Provider owns a snapshot_dir.
//
// docs/provider-copy.md is the operator's view.
package filecopy
