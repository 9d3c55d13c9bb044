package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/testenv/cluster"
)

// TestLvssdPerHost: each host's lvssd runs in the host's network
// namespace and the test's mount namespace, with a loop btrfs of its own;
// the test reaches each over its Unix socket from the machine's namespace
// (the CLI and the Go client) and each snapshots only its own volume.
func TestLvssdPerHost(t *testing.T) {
	nw := cluster.NewNetwork(t, 2)
	ds := []*cluster.Lvssd{nw.Hosts[0].StartLvssd(t, cluster.LvssdOptions{}), nw.Hosts[1].StartLvssd(t, cluster.LvssdOptions{})}
	for i, d := range ds {
		pid := d.Proc.Cmd.Process.Pid
		if !d.Host.Contains(pid) {
			t.Errorf("lvssd of %s (PID %d) is not in its host's network namespace", d.Host.Name, pid)
		}
		if nw.Hosts[1-i].Contains(pid) {
			t.Errorf("lvssd of %s (PID %d) is in the other host's namespace", d.Host.Name, pid)
		}
		if mine, its := nsOf(t, os.Getpid(), "mnt"), nsOf(t, pid, "mnt"); mine != its {
			t.Errorf("lvssd of %s has mount namespace %s, the test %s", d.Host.Name, its, mine)
		}
	}
	ctx := context.Background()
	for _, d := range ds {
		data := filepath.Join(d.FS.Mount, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			t.Fatal(err)
		}
		if r := d.Lvss(t, "", "create", "shadow", "--for", data); r.Code != 0 {
			t.Fatalf("lvss create shadow on %s: exit %d\n%s", d.Host.Name, r.Code, r.Stderr)
		}
	}
	for _, d := range ds {
		conn, err := client.Dial(ctx, d.Socket)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		snaps, err := conn.ListShadows(ctx, uuid.Nil, "")
		if err != nil {
			t.Fatal(err)
		}
		data := filepath.Join(d.FS.Mount, "data")
		if len(snaps) != 1 || snaps[0].OriginalVolume != data {
			t.Errorf("lvssd of %s lists %+v, want one snapshot of %s", d.Host.Name, snaps, data)
		}
	}
}

// nsOf is the namespace of kind (net, mnt) process pid is in.
func nsOf(t *testing.T, pid int, kind string) string {
	t.Helper()
	l, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", kind))
	if err != nil {
		t.Fatal(err)
	}
	return l
}
