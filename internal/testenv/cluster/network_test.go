package cluster_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv/cluster"
)

// TestNetwork: every host has its address and loopback in a namespace of
// its own, hosts reach each other over the bridge (from the test's Go
// code through Host.DialContext/Listen, and from a process started on a
// host), and the machine's own namespace gains no link.
func TestNetwork(t *testing.T) {
	before := interfaceNames(t)
	nw := cluster.NewNetwork(t, 3)
	if got := interfaceNames(t); strings.Join(got, " ") != strings.Join(before, " ") {
		t.Errorf("the machine's namespace has links %v, had %v before the network", got, before)
	}
	ctx := context.Background()
	for _, h := range nw.Hosts {
		if !nw.Subnet.Contains(h.Addr) {
			t.Errorf("%s's address %s is outside the subnet %s", h.Name, h.Addr, nw.Subnet)
		}
		out, err := h.Run(ctx, "ip", "-br", "addr", "show")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, h.Addr.String()+"/24") || !strings.Contains(out, "127.0.0.1/8") {
			t.Errorf("%s's addresses:\n%s\nwant %s and loopback", h.Name, out, h.Addr)
		}
	}
	// Go code of the test, in two namespaces.
	l := echoServer(t, nw.Hosts[1])
	if err := echo(ctx, nw.Hosts[0], l.Addr().String()); err != nil {
		t.Fatalf("h0 to h1: %v", err)
	}
	// A process on h2 (socat's absence is no reason to skip: bash's
	// /dev/tcp is enough) reaches the same listener.
	out, err := nw.Hosts[2].Run(ctx, "bash", "-c", `exec 3<>/dev/tcp/${0%:*}/${0##*:}; echo ping >&3; head -n1 <&3`, l.Addr().String())
	if err != nil || strings.TrimSpace(out) != "ping" {
		t.Fatalf("a process on h2 to h1: %q, %v", out, err)
	}
	// The test process's own namespace has no address of the subnet
	// (it is not dialled to show it: with no such address, the machine
	// would route the packets out of its own links).
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && nw.Subnet.Overlaps(p) {
			t.Errorf("the machine's namespace has %s, in the network's subnet %s", a, nw.Subnet)
		}
	}
}

// TestNetworkRemovedAtEnd: what a network made is gone once its test
// ends (its cleanup, which runs as well when a test fails), with the
// processes still running on its hosts.
func TestNetworkRemovedAtEnd(t *testing.T) {
	var nw *cluster.Network
	var proc interface{ Exited() bool }
	t.Run("network", func(t *testing.T) {
		nw = cluster.NewNetwork(t, 2)
		proc = nw.Hosts[0].Start(t, "sleeper", "sleep", "1000")
		// A process the test started itself, outside the harness's
		// tracking, is killed with the namespace too.
		cmd := nw.Hosts[1].Command(context.Background(), "sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go cmd.Wait() //nolint:errcheck // reaped only
	})
	for _, ns := range []string{nw.Hosts[0].NetnsPath, nw.Hosts[1].NetnsPath, "/run/netns/" + nw.Name + "-br"} {
		if _, err := os.Stat(ns); !os.IsNotExist(err) {
			t.Errorf("%s is left after its test (stat: %v)", ns, err)
		}
	}
	if _, err := os.Stat(nw.Dir); !os.IsNotExist(err) {
		t.Errorf("the network's dir %s is left (stat: %v)", nw.Dir, err)
	}
	if !proc.Exited() {
		t.Errorf("the process started on h0 still runs")
	}
	left, _ := filepath.Glob("/run/netns/" + nw.Name + "-*")
	if len(left) > 0 {
		t.Errorf("namespaces left: %v", left)
	}
}

// TestPartitionAndHeal: TCP between two hosts works, times out in both
// directions once one is partitioned (while the others still reach each
// other and the partitioned host reaches itself), and works again after
// Heal.
func TestPartitionAndHeal(t *testing.T) {
	nw := cluster.NewNetwork(t, 3)
	h0, h1, h2 := nw.Hosts[0], nw.Hosts[1], nw.Hosts[2]
	l0, l1 := echoServer(t, h0), echoServer(t, h1)
	ctx := context.Background()
	if err := echo(ctx, h0, l1.Addr().String()); err != nil {
		t.Fatalf("before the partition, h0 to h1: %v", err)
	}
	h0.Partition(t)
	for _, c := range []struct {
		from *cluster.Host
		to   net.Listener
	}{{h0, l1}, {h1, l0}} {
		err := echo(ctx, c.from, c.to.Addr().String())
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("partitioned, %s to %s: %v, want a connect timeout", c.from.Name, c.to.Addr(), err)
		}
	}
	if err := echo(ctx, h2, l1.Addr().String()); err != nil {
		t.Errorf("h2 to h1 while h0 is partitioned: %v", err)
	}
	if err := echo(ctx, h0, l0.Addr().String()); err != nil {
		t.Errorf("h0 to itself while partitioned: %v", err)
	}
	h0.Heal(t)
	for _, c := range []struct {
		from *cluster.Host
		to   net.Listener
	}{{h0, l1}, {h1, l0}} {
		if err := echo(ctx, c.from, c.to.Addr().String()); err != nil {
			t.Errorf("healed, %s to %s: %v", c.from.Name, c.to.Addr(), err)
		}
	}
}

// TestDialLeavesNoThreadInAHost: the test's dials from inside hosts, many
// at once, leave every thread of the test process in the process's own
// network namespace: a goroutine scheduled later on a thread a dial used
// is not in a host by mistake.
func TestDialLeavesNoThreadInAHost(t *testing.T) {
	nw := cluster.NewNetwork(t, 2)
	l := echoServer(t, nw.Hosts[1])
	own := nsOf(t, os.Getpid(), "net")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echo(context.Background(), nw.Hosts[i%2], l.Addr().String())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		ns, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns", "net"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		if ns != own {
			t.Errorf("thread %s of the test process is in %s, the process in %s", task.Name(), ns, own)
		}
	}
}

// echoServer listens on h's address and echoes each connection's line.
func echoServer(t *testing.T, h *cluster.Host) net.Listener {
	t.Helper()
	l, err := h.Listen("tcp", h.Addr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l
}

// echo connects from h to addr (with a one-second connect timeout) and
// checks that a line comes back.
func echo(ctx context.Context, h *cluster.Host, addr string) error {
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := h.DialContext(dctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "ping\n" {
		return errors.New("echo returned " + string(buf))
	}
	return nil
}

// interfaceNames lists the links of the test process's own namespace.
func interfaceNames(t *testing.T) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return names
}
