// Package agent is a host's side of cluster snapshot sets, inside lvssd
// (docs/cluster.md). With [cluster] configured it registers the host in
// etcd under a lease, republishes its writers when they change, and
// watches for jobs that name it. For each it runs the host's part as a
// local session of the coordinator, under the cluster set's ID, held at
// the set's barriers (coordinator.Barrier): every bound of the host (its
// writers' freeze windows, the hold window, lvssd's timeouts) still holds
// whatever etcd or the network do, because the local session enforces
// them. Any failure is recorded as the set's abort, which every other
// host obeys; a host that comes back after a set was aborted deletes what
// it kept of it.
package agent
