package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"golang.org/x/sys/unix"
)

// The test process stays in the machine's network namespace, where the
// hosts' addresses do not exist. It reaches them the way the kernel
// allows a process in one namespace to hold sockets of another: a socket
// belongs to the namespace its creating thread was in at socket(2), for
// its whole life, whatever thread later uses it. So a dial runs on an OS
// thread locked to its goroutine that enters the host's namespace with
// setns(2) for the socket and connect calls only, then goes back; the
// connection it returns is used from any goroutine, by gRPC's own ones
// too. No route, link or address is added to the machine's namespace.

// inNetns runs f on an OS thread inside the network namespace at path,
// and puts the thread back into the namespace it came from before it
// serves other goroutines. If it cannot go back, the thread stays locked
// to its goroutine, which ends: the Go runtime then ends the thread
// instead of reusing it, so no other goroutine ever runs in the host's
// namespace by mistake.
func inNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open this thread's network namespace: %w", err)
			return
		}
		defer unix.Close(back)
		ns, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open %s: %w", path, err)
			return
		}
		defer unix.Close(ns)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		ferr := f()
		if err := unix.Setns(back, unix.CLONE_NEWNET); err != nil {
			// Locked for good (see above).
			errc <- fmt.Errorf("setns back from %s: %w", path, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// DialContext connects to address (network "tcp", "tcp4" or "udp") from
// inside h's namespace, as a process on h would; the connection can be
// used from any goroutine. A partitioned host reaches only itself.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(h.NetnsPath, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Listen listens on address (e.g. h.Addr.String()+":0") inside h's
// namespace; Accept works from any goroutine.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := inNetns(h.NetnsPath, func() error {
		var err error
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// DialContext connects to address from the namespace of the network's
// host that has its address: each host is reached from inside itself,
// over its loopback, so a partition never stands in the way. It is the
// view of a client beside every host at once (Etcd.Client), which tests
// use to look at the cluster whatever its partitions do. An address of
// no host is an error.
func (nw *Network) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s is not an address of network %s: %w", address, nw.Name, err)
	}
	h := nw.hostOf(ap.Addr())
	if h == nil {
		return nil, fmt.Errorf("cluster: %s is no host's address in network %s (%s)", address, nw.Name, nw.Subnet)
	}
	return h.DialContext(ctx, network, address)
}
