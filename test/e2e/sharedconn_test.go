package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/writer"
)

// socketFDs counts the sockets a process holds open.
func socketFDs(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// waitConnections waits until lvssd holds its listening socket and want
// connections (every test client's connection closes in a moment; the
// writers' stay), failing with what it holds if that does not happen.
func waitConnections(t *testing.T, pid, want int, what string) {
	t.Helper()
	var got int
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got = socketFDs(t, pid) - 1; got == want {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("lvssd holds %d connections %s, want %d", got, what, want)
		}
	}
}

// TestWritersOfOneProcessShareAConnection: the writers of one process
// reach lvssd over one connection (a stream each), so that lvssd's cost
// of a process hosting many writers is one connection's. After lvssd
// restarts they all subscribe again, still over one connection; a writer
// whose stream lvssd ended (it missed a deadline, L29) subscribes again
// too, and the rest are not disturbed.
func TestWritersOfOneProcessShareAConnection(t *testing.T) {
	const n = 20
	dirs := t.TempDir()
	opts := lvssdtest.DaemonOptions{Config: shortTimeouts, StateDir: filepath.Join(dirs, "state"), RunDir: filepath.Join(dirs, "run"),
		Socket: filepath.Join(dirs, "lvssd.sock")}
	d := lvssdtest.StartDaemon(t, opts)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := writer.Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("shared-%d", i))), Name: fmt.Sprintf("shared-%d", i)}
			_ = writer.Run(ctx, writer.Options{Socket: opts.Socket, Retry: true, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
				id, &dirWriter{dir: dirs})
		}()
	}
	lvssdtest.WaitWriters(t, d.Socket, n)
	waitConnections(t, d.Proc.Cmd.Process.Pid, 1, fmt.Sprintf("with %d writers of one process subscribed (they share one)", n))
	before := instances(t, d.Socket)

	// A writer of the same process misses lvssd's Identify deadline the
	// first time: lvssd ends its stream (L29), it subscribes again over a
	// fresh connection, and the others keep theirs, undisturbed.
	slow := &slowFirstIdentify{dirWriter: dirWriter{dir: dirs}, dropped: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(slow.release) })
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = writer.Run(ctx, writer.Options{Socket: opts.Socket, Retry: true, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
			writer.Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceOID, []byte("shared-slow")), Name: "shared-slow"}, slow)
	}()
	lvssdtest.Eventually(t, 60*time.Second, "lvssd to give up on the slow writer's first Identify", func() bool {
		for _, e := range lvssdtest.Events(t, d.Socket) {
			if e.Message == "writer failed its first Identify" && e.Fields["writer"] == "shared-slow" {
				return true
			}
		}
		return false
	})
	close(slow.dropped)
	lvssdtest.Eventually(t, 60*time.Second, "the slow writer to be dropped and to subscribe again", func() bool {
		return slow.calls.Load() >= 2 && len(instances(t, d.Socket)) == n+1
	})
	lvssdtest.WaitWriters(t, d.Socket, n+1)
	after := instances(t, d.Socket)
	for name, id := range before {
		if after[name] != id {
			t.Errorf("writer %s changed instance %s -> %s when another writer of its process was dropped", name, id, after[name])
		}
	}
	waitConnections(t, d.Proc.Cmd.Process.Pid, 2, "after one writer was dropped and came back (the shared one, and a fresh one for the dropped writer)")

	// lvssd restarts: every writer comes back, over one connection again.
	d.Proc.Stop(t)
	d = lvssdtest.StartDaemon(t, opts)
	lvssdtest.WaitWriters(t, d.Socket, n+1)
	waitConnections(t, d.Proc.Cmd.Process.Pid, 1, "after it restarted and the writers subscribed again")
}

// instances maps each subscribed writer's name to its instance ID.
func instances(t *testing.T, socket string) map[string]uuid.UUID {
	t.Helper()
	conn, err := client.Dial(context.Background(), socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ws, err := conn.ListWriters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uuid.UUID{}
	for _, w := range ws {
		out[w.Name] = w.InstanceID
	}
	return out
}

// slowFirstIdentify does not answer its first Identify until released
// (or its handler's deadline passes).
// slowFirstIdentify holds its first Identify past lvssd's deadline and
// until lvssd has given up on it (dropped): returning at its own
// deadline instead would race lvssd's timer with the SDK's own timeout
// answer, and an answer that wins keeps the writer subscribed.
type slowFirstIdentify struct {
	dirWriter
	calls   atomic.Int32
	dropped chan struct{}
	release chan struct{}
}

func (w *slowFirstIdentify) Identify(ctx context.Context, md *writer.Metadata) error {
	if w.calls.Add(1) == 1 {
		select {
		case <-w.dropped:
		case <-w.release:
		}
		return ctx.Err()
	}
	return w.dirWriter.Identify(ctx, md)
}
