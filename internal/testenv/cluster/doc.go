// Package cluster is the test ground of lvss's cluster mode: hosts as
// network namespaces on one machine, partitions between them, a real etcd
// cluster across them and an lvssd per host.
package cluster
