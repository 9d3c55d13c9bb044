// Package cluster is the protocol of cluster snapshot sets: one
// application-consistent snapshot set across hosts, each host's part made
// by its own lvssd, the hosts held together at barriers kept in etcd
// (docs/cluster.md).
//
// It holds what both sides share: the layout of the keys under the
// prefix, the records stored at them, the connection to etcd, and the
// barrier wait built from etcd's leases, transactions and watches (no
// clock is compared across hosts). The host side, which runs a host's part
// in lvssd's coordinator, is package cluster/agent; the requester side
// (lvss cluster backup) is in this package, so that the CLI links no
// coordinator.
package cluster
