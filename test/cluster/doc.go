// Package cluster tests cluster snapshot sets (docs/cluster.md) across
// real hosts: network namespaces of one machine (internal/testenv/cluster),
// a 3-member etcd cluster across them (Debian's etcd-server, with
// --pre-vote), each host's own lvssd on a loop btrfs of its own, real
// writers (lvss-writer sqlite and exec), and the lvss CLI as the cluster
// requester, run in a fourth host's namespace.
//
// TestClusterInvariant: an application whose invariant spans hosts. Host
// h0 and host h1 each hold a SQLite database; a driver on host h2 moves
// money, debiting an account in h0's database and then crediting one in
// h1's, each transfer numbered in a ledger of each. The driver's own exec
// writer (front-end) finishes the transfer in flight and pauses it at
// Freeze; the SQLite writers are back-end, so they lock their databases
// only once every front-end writer of every host froze. Every kept
// cluster set, read back from the snapshots, has exactly the same
// transfers debited in h0 as credited in h1, and the money adds up. The
// same check on snapshots taken host by host (lvss backup on h0, then on
// h1) finds the invariant broken: the check can fail.
//
// TestClusterFaults: each of five faults at each of the barriers
// accepted, prepared, frozen-front-end, frozen, committed and
// snapshotted, with host h1 held exactly there by a failpoint of an lvssd
// built with lvss_failpoints: h1 partitioned (nft), etcd's leader
// SIGKILLed, h1's lvssd SIGKILLed, h1's writer SIGKILLed, the requester
// SIGKILLed. After each it checks what the protocol promises (the table
// "Failures, one by one" of docs/cluster.md): the requester's exit and
// cause, every writer released (Thaw or Abort) and nothing frozen on any
// host, no snapshot of the set anywhere (a restarted lvssd cleans up its
// part), no session or creation lock left, and that the next cluster
// backup succeeds once the fault is healed. It logs, for each cell, how
// long after the fault every host had aborted ("measure:" lines of go
// test -v).
//
// The checks are among them: TestClusterInvariant (one set with a
// snapshot on each of three hosts, application-consistent everywhere, the
// invariant holds), TestClusterFaults/partition/frozen-front-end and
// /frozen (one host partitioned at the freeze barrier: every host aborts,
// nothing stays frozen, no snapshot remains, the next backup after the heal
// succeeds), TestClusterFaults/lvssd-killed/... (the others abort within
// their deadlines, the killed host's restart cleans up its part).
//
// The tests need root, ip, nsenter, nft, etcd, losetup and btrfs: what is
// missing is testenv.Missing, a failure on CI.
package cluster
