// Package cluster is the test ground of lvss's cluster mode (issue 16):
// hosts as network namespaces on one machine, partitions between them, a
// real etcd cluster across them and a real lvssd per host. Everything a
// test makes is removed by t.Cleanup, also when it fails, and nothing
// touches the machine's own network: no link, address, route or rule is
// added to its namespace.
//
// # Hosts
//
// NewNetwork(t, n) makes a namespace holding a bridge and n host
// namespaces, each with loopback up and one veth to the bridge, on a
// random 10.x.y.0/24 (host i at .i+1). The veth pairs are made inside the
// bridge's namespace with their peer made straight in the host's, so
// they never exist in the machine's; inside the namespaces every network
// uses the same short link names (br0, eth0, h0...), which cannot clash.
// Namespace names are lvssnet-PID-SEQ-br and lvssnet-PID-SEQ-hI: unique
// within a test process (SEQ) and across the processes of one go test
// run (PID). The first NewNetwork of a process removes the namespaces and
// temp dirs of test processes that are gone (a crash or go test's
// -timeout runs no cleanup), killing what still runs in them.
//
// A process runs on a host through Host.Command/Run/Start, which wrap it
// in nsenter --net: only the network namespace changes, so the process
// sees the test's filesystems and mounts (not ip netns exec, which also
// makes a mount namespace of its own and would hide the loop filesystems
// a test mounts). Host.StartLvssd runs the built lvssd that way
// (lvssdtest.DaemonOptions.Netns) with its own socket, state and run dirs
// and a loop btrfs of its own; the test reaches it over its Unix socket
// from its own namespace, since a path-bound Unix socket is found through
// the filesystem, not the network namespace (TestLvssdPerHost).
//
// # The test's own connections
//
// The test process stays in the machine's namespace, where the hosts'
// addresses do not exist (and must not be dialled: the packets would
// leave through the machine's own links). Its Go code reaches a host
// with Host.DialContext and Host.Listen: the socket is made on an OS
// thread locked to its goroutine that enters the host's namespace with
// setns(2) for the socket and connect calls only and then goes back. A
// socket stays in the namespace it was made in, so the connection works
// from any goroutine afterwards, gRPC's included: the etcd clients of
// Etcd.Client, ClientOn and Member.Client get this dialer through
// grpc.WithContextDialer (clientv3 puts Config.DialOptions last, so it
// wins). Network.DialContext dials each address from the host that has
// it, over that host's loopback, which no partition cuts: the view of a
// client beside every member.
//
// # Partitions
//
// Host.Partition adds an nftables table to the host's namespace that
// drops every packet not over loopback, in and out; Host.Heal deletes it.
// Dropped, not rejected: peers see timeouts, as with a pulled cable
// (TestPartitionAndHeal). tc netem is not in this machine's kernel, so
// there are no delays or losses short of a partition.
//
// # etcd
//
// StartEtcd(t, hosts, opts) runs Debian's etcd-server (3.4.23 in
// bookworm) as one member per host, listening on the host's address at
// 2379 (clients) and 2380 (peers) — free in a namespace of its own —
// with its data in the network's temp dir and a fresh cluster token, and
// returns once every member answers, all name one leader and a
// linearizable read through each succeeds. A 3-member cluster is healthy
// 0.25 to 3.1 s after its start, mostly about 2.4 s: the first election
// waits a randomized election timeout (1 to 2 s by default); the rest is
// milliseconds. EtcdOptions.TLS runs clients and peers on TLS with client
// certificates from a throwaway CA made with crypto/x509 (Etcd.CA,
// Etcd.ClientCert for what needs files); a client without a certificate
// is refused in the handshake ("tls: bad certificate").
// Member.Kill (SIGKILL) and Member.Restart, Etcd.Leader/LeaderOf and
// WaitLeader, WaitHealthy act on it.
//
// The Go client is go.etcd.io/etcd/client/v3 v3.7.3: against the 3.4.23
// server it does KV, Txn, Lease with KeepAlive and TimeToLive, and Watch
// (TestEtcdClientAgainstDebianEtcd, TestEtcdTLS).
//
// # Facts measured (etcd 3.4.23, default heartbeat 100 ms and election
// timeout 1 s, on this 2-core machine; the "fact:" lines of go test -v)
//
// One member of three partitioned (TestFactPartitionedMember):
//   - the other two keep their leader (a follower cut off: writes go on
//     within 20 ms) or elect one (the leader cut off: 0.97 to 2.2 s), and
//     serve writes from then on;
//   - a Put through the cut-off member fails after 7.0 s with
//     "etcdserver: request timed out": the server's request timeout, 5 s
//     plus two election timeouts. The client does not retry a Put;
//   - a linearizable Get through it never fails by itself: the client
//     retries the server's Unavailable answers until the caller's
//     deadline (10 s in the test), with or without WithRequireLeader.
//     Every call of the cluster mode needs a deadline of its own;
//   - a Watch through it made WithRequireLeader is cancelled with
//     "etcdserver: no leader" 3.3 to 4.0 s after the partition (the server
//     checks for a leader once per election timeout and gives up after
//     three misses); without it, the watch neither ends nor sees the
//     majority's writes while the partition lasts, and delivers them
//     after the heal;
//   - after the heal it serves linearizable reads again, with what the
//     majority wrote meanwhile, 1.7 to 5.5 s later. Its campaigns while
//     cut off raised its term (2 to 11 in one run), and etcd 3.4 runs
//     without raft's pre-vote by default: the heal makes the leader step
//     down and the cluster hold an election, a leader change caused by
//     the heal itself. With --pre-vote (etcd 3.5's default) the heal
//     leaves the leader and its term as they were (TestFactPreVote).
//
// A client on a healthy host that knows every member keeps its
// connection to a partitioned member open (nothing tells TCP it is dead)
// and round-robins requests onto it: without gRPC keepalives one put in
// three times out (4 of 12) for as long as the partition lasts; with
// DialKeepAliveTime and DialKeepAliveTimeout of 1 s each it drops that
// connection and all puts succeed from 1.4 to 1.6 s after the partition
// (TestFactClientKeepalive).
//
// The leader SIGKILLed (TestFactLeaderKilled): a new leader 0.93 to 3.4 s
// later, its first write within 15 ms of that. A lease survives the
// change with its whole TTL again: a 10 s lease with 5 s left has 10 s
// after the election (the new leader refreshes every lease), so a
// holder's death during a leader change is seen up to a TTL plus an
// election later.
//
// A lease of TTL 3 s whose keepalives stop (TestFactLeaseExpiry): a
// watcher on another host sees its key's delete 3.10 to 3.55 s after the
// last keepalive answer: the TTL plus about the 0.5 s the server takes
// between its expiry checks.
//
// A Txn comparing a key's create revision with 0 and putting it
// (create-if-absent) is the barrier primitive: of two clients on two
// hosts racing for one key, exactly one wins, every one of 20 rounds,
// and both then read the winner's value (TestFactCreateIfAbsentRace).
//
// The minimum TTL (TestFactMinimumTTL): the server raises any TTL below
// ceil(1.5 × election timeout) seconds to it and refuses none (-1, 0 and
// 1 give 2 s with the default 1 s election timeout, 5 s with 3 s).
//
// The tests need root, ip, nsenter, nft and etcd (apt-get install
// iproute2 util-linux nftables etcd-server etcd-client); what is missing
// is testenv.Missing, a failure on CI.
package cluster
