package cluster

import (
	"testing"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// LvssdOptions say how Host.StartLvssd runs a host's lvssd.
type LvssdOptions struct {
	// Daemon are lvssdtest's options (config, flags, failpoints); Netns
	// is set to the host's.
	Daemon lvssdtest.DaemonOptions
	// FSSize is the size of the host's loop btrfs; 0: 256 MiB.
	FSSize int64
}

// Lvssd is a host's lvssd: the built binary running in the host's network
// namespace with its own socket, state and run dirs (lvssdtest.Daemon),
// and a loop btrfs of its own, the host's "disk".
type Lvssd struct {
	*lvssdtest.Daemon
	Host *Host
	// FS is the host's loop btrfs, mounted in the test's (and so lvssd's)
	// mount namespace.
	FS *testenv.FS
}

// StartLvssd makes h a loop btrfs and starts lvssd in h's namespace
// (lvssdtest.StartDaemon with Netns), returning once it answers on its
// socket. The test talks to it over that Unix socket from its own
// namespace (Daemon.Lvss, client.Dial): a path-bound Unix socket is found
// through the filesystem, not the network namespace. Cleanup stops lvssd
// and removes the filesystem.
func (h *Host) StartLvssd(t testing.TB, opts LvssdOptions) *Lvssd {
	t.Helper()
	size := opts.FSSize
	if size == 0 {
		size = 256 << 20
	}
	// Made first, so that its cleanup runs after lvssd's: lvssd stops
	// while its volume is still there.
	fs := testenv.LoopFS(t, "btrfs", size)
	do := opts.Daemon
	do.Netns = h.NetnsPath
	d := lvssdtest.StartDaemon(t, do)
	return &Lvssd{Daemon: d, Host: h, FS: fs}
}
