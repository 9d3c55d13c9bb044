// Package exec is a snapshot provider whose snapshots are taken from
// outside the filesystem by commands an administrator configures: a SAN or
// hypervisor CLI, a cloud disk-snapshot API, a reflink clone of a disk image
// on its host filesystem. Each [[providers.exec]] entry of lvssd's
// configuration is one provider with its own ID and name.
//
// Such a copy is taken below the filesystem, so it is only consistent if
// the filesystem is flushed and held still while it is taken: the provider
// reports NeedsFreeze, and the coordinator freezes (FIFREEZE) the
// filesystems of the set's volumes around CommitSnapshots. One commit
// command receives every volume of the set while they are all frozen, so
// the set shares one instant (SetAtomic).
//
// Commands run as "sh -c", in "/", in their own process group, with TMPDIR
// on the run directory (a tmpfs: a command that writes to a frozen
// filesystem would block until thaw, uninterruptibly). At its deadline the
// whole group is killed. A command that does not die even then — blocked in
// the kernel, typically on a frozen filesystem — is abandoned rather than
// waited for; when it finally exits, whatever handles it printed are
// reconciled with the set (deleted if the set was aborted).
//
// CommitSnapshots neither logs nor touches any disk: its environment and
// TMPDIR are prepared in EndPrepareSnapshots, the child's output is kept in
// memory (capped), and the snapshot index is written in PostCommitSnapshots,
// after the hold.
//
// docs/provider-exec.md describes the configuration, every environment
// variable and output format, and the deadlines.
package exec
