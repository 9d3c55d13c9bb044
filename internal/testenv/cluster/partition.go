package cluster

import (
	"context"
	"strings"
	"testing"
	"time"
)

// partitionTable is the nftables table Partition adds to a host's
// namespace (and Heal deletes): the namespace's own ruleset, which no
// other namespace, the machine's included, sees.
const partitionTable = "lvss_partition"

// partitionRules drop every packet a host sends or receives other than
// over its loopback: the host's only other link is its veth to the
// bridge, so it is cut off from every other host in both directions,
// IPv4 and IPv6, while its own processes still reach each other (its own
// address is routed over loopback). Dropped, not rejected: a peer sees
// what a pulled cable or a dead switch gives, connects and writes that
// time out, not an error at once.
const partitionRules = `table inet ` + partitionTable + ` {
	chain input {
		type filter hook input priority filter; policy accept;
		iif "lo" accept
		drop
	}
	chain output {
		type filter hook output priority filter; policy accept;
		oif "lo" accept
		drop
	}
}
`

// Partition cuts h off from every other host of its network until Heal.
// Connections already open stall (their packets are dropped), new ones
// time out, in both directions. Cleanup heals it if the test did not.
func (h *Host) Partition(t testing.TB) {
	t.Helper()
	if h.partitioned.Load() {
		t.Fatalf("cluster: %s is partitioned already", h.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := h.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(partitionRules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cluster: partitioning %s: nft: %v\n%s", h.Name, err, out)
	}
	h.partitioned.Store(true)
	t.Cleanup(func() {
		if h.partitioned.Load() {
			h.Heal(t)
		}
	})
}

// Heal removes Partition's rules from h: it reaches the other hosts again.
// Connections that outlived the partition resume (TCP retransmits what
// was dropped).
func (h *Host) Heal(t testing.TB) {
	t.Helper()
	if !h.partitioned.Load() {
		t.Fatalf("cluster: %s is not partitioned", h.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.Run(ctx, "nft", "delete", "table", "inet", partitionTable); err != nil {
		t.Fatalf("cluster: healing %s: %v", h.Name, err)
	}
	h.partitioned.Store(false)
}

// Partitioned reports whether h is partitioned now.
func (h *Host) Partitioned() bool { return h.partitioned.Load() }
