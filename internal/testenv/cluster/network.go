package cluster

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// namePrefix starts the name of every namespace and temp dir the harness
// makes; the pid after it says which test process made it, so that a
// later run removes what a crashed one left (sweepStale).
const namePrefix = "lvssnet-"

// netnsDir is where iproute2 keeps named network namespaces (a bind mount
// of each namespace's nsfs file, which keeps it alive without a process).
const netnsDir = "/run/netns"

// Interface names. They live inside the harness's own namespaces, never
// in the machine's, so every network uses the same short names (well
// under IFNAMSIZ) without clashing with another test's.
const (
	bridgeName = "br0"  // the bridge, in the bridge namespace
	hostIf     = "eth0" // a host's end of its veth pair
)

// Network is a set of hosts, each a network namespace of its own, joined
// by veth pairs to one bridge that lives in a namespace of its own too.
// Nothing of it is in the machine's own network namespace: its addresses
// exist only inside these namespaces.
type Network struct {
	// Name is the network's prefix: its namespaces are Name+"-br" and
	// Name+"-h0", Name+"-h1", ...
	Name string
	// Subnet is the hosts' subnet (a /24 of 10.0.0.0/8).
	Subnet netip.Prefix
	// Dir is a temp dir of the network's, removed at cleanup, for the
	// files of what runs on its hosts (etcd's data, logs).
	Dir   string
	Hosts []*Host

	bridge string // the bridge namespace's name
}

// Host is one network namespace of a Network.
type Host struct {
	// Name is the host's short name (h0, h1, ...), unique in its network.
	Name string
	// Netns is the namespace's name under /run/netns, NetnsPath its path
	// (what nsenter --net= and setns take).
	Netns, NetnsPath string
	// Addr is the host's address on the bridge (its only one besides
	// loopback).
	Addr netip.Addr
	// Dir is a temp dir of the host's inside the network's Dir.
	Dir string

	net *Network
	// partitioned is whether Partition's rules are in place.
	partitioned atomic.Bool
}

// seq numbers the networks of this test process, so that tests running
// in parallel in one process get distinct names.
var seq atomic.Int64

var sweepOnce sync.Once

// NewNetwork makes a network of n hosts (1 to 250) with a random /24 of
// 10.0.0.0/8, host i at .i+1. Each host has its loopback up and one veth
// to the bridge; the bridge namespace has no address. Cleanup kills every
// process still running in its namespaces and deletes them (which removes
// their links), also when the test fails. What it needs (root, ip,
// nsenter, nft) is checked with testenv.Missing.
func NewNetwork(t testing.TB, n int) *Network {
	t.Helper()
	testenv.RequireRoot(t)
	requireTools(t)
	if n < 1 || n > 250 {
		t.Fatalf("cluster.NewNetwork: %d hosts (1 to 250)", n)
	}
	sweepOnce.Do(func() { sweepStale(t) })
	name := fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), seq.Add(1))
	dir, err := os.MkdirTemp("", name+"-")
	if err != nil {
		t.Fatal(err)
	}
	// Random, though the namespaces of two networks never reach each
	// other: distinct subnets keep logs and captures of parallel tests
	// apart at a glance.
	subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + rand.IntN(150)), byte(rand.IntN(256)), 0}), 24)
	nw := &Network{Name: name, Subnet: subnet, Dir: dir, bridge: name + "-br"}
	t.Cleanup(func() {
		nw.destroy(t)
		os.RemoveAll(dir)
	})
	start := time.Now()
	mustIP(t, "netns", "add", nw.bridge)
	mustIP(t, "-n", nw.bridge, "link", "set", "lo", "up")
	mustIP(t, "-n", nw.bridge, "link", "add", bridgeName, "type", "bridge")
	mustIP(t, "-n", nw.bridge, "link", "set", bridgeName, "up")
	addr := subnet.Addr().As4()
	for i := range n {
		addr[3] = byte(i + 1)
		h := &Host{Name: "h" + strconv.Itoa(i), Netns: name + "-h" + strconv.Itoa(i), Addr: netip.AddrFrom4(addr), net: nw}
		h.NetnsPath = filepath.Join(netnsDir, h.Netns)
		h.Dir = filepath.Join(dir, h.Name)
		if err := os.Mkdir(h.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		nw.Hosts = append(nw.Hosts, h)
		mustIP(t, "netns", "add", h.Netns)
		mustIP(t, "-n", h.Netns, "link", "set", "lo", "up")
		// Made in the bridge namespace with its peer made straight in the
		// host's: neither end ever exists in the machine's namespace.
		mustIP(t, "-n", nw.bridge, "link", "add", h.Name, "type", "veth", "peer", "name", hostIf, "netns", h.Netns)
		mustIP(t, "-n", nw.bridge, "link", "set", h.Name, "master", bridgeName, "up")
		mustIP(t, "-n", h.Netns, "addr", "add", netip.PrefixFrom(h.Addr, subnet.Bits()).String(), "dev", hostIf)
		mustIP(t, "-n", h.Netns, "link", "set", hostIf, "up")
	}
	t.Logf("cluster: network %s: %d hosts on %s, made in %s", name, n, subnet, time.Since(start).Round(time.Millisecond))
	return nw
}

// requireTools checks the programs the harness runs.
func requireTools(t testing.TB) {
	t.Helper()
	for _, tool := range []struct{ bin, pkg string }{{"ip", "iproute2"}, {"nsenter", "util-linux"}, {"nft", "nftables"}} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			testenv.Missing(t, tool.bin+" (apt-get install "+tool.pkg+")")
		}
	}
}

// Host returns the host named name (h0, h1, ...), failing t if there is
// none.
func (nw *Network) Host(t testing.TB, name string) *Host {
	t.Helper()
	for _, h := range nw.Hosts {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("cluster: no host %q in network %s", name, nw.Name)
	return nil
}

// hostOf returns the host whose address is a, nil if none is.
func (nw *Network) hostOf(a netip.Addr) *Host {
	for _, h := range nw.Hosts {
		if h.Addr == a {
			return h
		}
	}
	return nil
}

// namespaces are the network's namespace names, bridge last.
func (nw *Network) namespaces() []string {
	var names []string
	for _, h := range nw.Hosts {
		names = append(names, h.Netns)
	}
	return append(names, nw.bridge)
}

// destroy removes the network's namespaces: what still runs in them is
// killed first, since a namespace (and so its links) lives on as long as
// a process is in it.
func (nw *Network) destroy(t testing.TB) {
	for _, ns := range nw.namespaces() {
		if err := removeNetns(ns); err != nil {
			t.Errorf("cluster: %v", err)
		}
	}
}

// removeNetns kills every process in the named namespace, waits until
// they are gone and deletes the namespace. A namespace that does not
// exist (never made, or removed already) is no error.
func removeNetns(name string) error {
	path := filepath.Join(netnsDir, name)
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil
	}
	end := time.Now().Add(30 * time.Second)
	for {
		pids := netnsPids(path)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(end) {
			return fmt.Errorf("processes %v in namespace %s survived SIGKILL for 30 s", pids, name)
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns delete %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}

// netnsPids lists the processes (not zombies) whose network namespace is
// the one bound at path, as `ip netns pids` does. The test process itself
// is never listed: one of its threads may be inside the namespace for a
// moment (Host.DialContext), but the process is not the namespace's.
func netnsPids(path string) []int {
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		return nil
	}
	procs, _ := os.ReadDir("/proc")
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", p.Name(), "ns", "net"), &st) != nil {
			continue
		}
		if st.Dev != want.Dev || st.Ino != want.Ino || zombie(pid) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// zombie reports whether pid has exited and waits for its parent.
func zombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && strings.HasPrefix(s[i+1:], " Z")
}

// sweepStale removes the namespaces and temp dirs of test processes that
// are gone (a test binary killed by go test's -timeout or a signal runs no
// cleanup), and any of this process's pid, which can only be an earlier
// process's that had the same pid: this one has made none yet. Those of
// live test processes (packages tested in parallel) are left alone.
func sweepStale(t testing.TB) {
	stale := func(name string) bool {
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(name, namePrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 {
			return false
		}
		return pid == os.Getpid() || unix.Kill(pid, 0) == unix.ESRCH
	}
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), namePrefix) && stale(e.Name()) {
			if err := removeNetns(e.Name()); err != nil {
				t.Logf("cluster: removing a stale namespace: %v", err)
			} else {
				t.Logf("cluster: removed the stale namespace %s", e.Name())
			}
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), namePrefix+"*"))
	for _, d := range dirs {
		if stale(filepath.Base(d)) {
			_ = os.RemoveAll(d)
		}
	}
}

func mustIP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Command returns a command that runs name with args in h's network
// namespace (through nsenter --net, which execs it: the command's process
// is the program itself, so signals reach it). Only the network namespace
// changes: the program sees the test's filesystems and mounts. ctx kills
// it as exec.CommandContext does.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + h.NetnsPath, "--", name}, args...)...)
}

// Run runs name with args in h's namespace to its end and returns what it
// printed (standard output and error together).
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s %s on %s: %w: %s", name, strings.Join(args, " "), h.Name, err, bytes.TrimSpace(out))
	}
	return string(out), err
}

// Start starts name with args in h's namespace as a process of the test
// (lvssdtest.Start: its own process group, output in h.Dir/label.out
// shown when the test fails, stopped at cleanup).
func (h *Host) Start(t testing.TB, label, name string, args ...string) *lvssdtest.Proc {
	t.Helper()
	cmd := h.Command(context.Background(), name, args...)
	return lvssdtest.Start(t, h.Dir, label, cmd)
}

// inode is the identity of h's namespace (the device and inode of its
// nsfs file), as /proc/PID/ns/net of a process inside it shows.
func (h *Host) inode() (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Stat(h.NetnsPath, &st)
	return st, err
}

// Contains reports whether the process pid runs in h's namespace.
func (h *Host) Contains(pid int) bool {
	want, err := h.inode()
	if err != nil {
		return false
	}
	var st unix.Stat_t
	if unix.Stat(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"), &st) != nil {
		return false
	}
	return st.Dev == want.Dev && st.Ino == want.Ino
}
