//go:build soak

package soak

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// hostArg, as the test binary's first argument, makes it a writer host
// instead of running tests (TestMain).
const hostArg = "soak-writers"

// writerName is the name of writer i of host process proc: stable across
// the host's restarts, so that a writer that comes back is the same one
// (same class ID), as a restarted application would be.
func writerName(proc, i int) string { return fmt.Sprintf("soak-p%d-w%02d", proc, i) }

// soakWriter is an SDK writer with one file-group component on a
// directory of a loop volume. Thaw writes a file there, so that each
// snapshot of the volume differs from the last.
type soakWriter struct {
	dir    string
	thawed int
	mu     sync.Mutex
}

func (w *soakWriter) Identify(_ context.Context, md *writer.Metadata) error {
	if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, Name: "data", Selectable: true}); err != nil {
		return err
	}
	return md.AddFiles("", "data", w.dir, "*", true, "", 0)
}

func (w *soakWriter) Freeze(context.Context, *writer.Event) error { return nil }

func (w *soakWriter) Thaw(context.Context, *writer.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.thawed++
	return os.WriteFile(filepath.Join(w.dir, "thawed"), []byte(strconv.Itoa(w.thawed)+"\n"), 0o644)
}

func (w *soakWriter) Abort(context.Context, *writer.Event) error { return nil }

// writerHostMain hosts count SDK writers (writer.Run, one stream each, as
// one application process hosting many writers would) and obeys lines on
// standard input: "leave I" ends writer I's subscription, "join I" starts
// it again. Standard input's end, SIGTERM or SIGINT end every writer and
// the process (status 0); the parent kills it with SIGKILL to test a
// crash. It returns the process's exit status.
func writerHostMain(args []string) int {
	fs := flag.NewFlagSet(hostArg, flag.ContinueOnError)
	socket := fs.String("socket", "", "lvssd's socket")
	proc := fs.Int("proc", 0, "this host's number (names its writers)")
	count := fs.Int("count", 20, "writers to host")
	vols := fs.String("vols", "", "comma-separated volume directories for the writers' components")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	volumes := strings.Split(*vols, ",")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var wg sync.WaitGroup
	cancels := make([]context.CancelFunc, *count)
	join := func(i int) {
		if cancels[i] != nil {
			return
		}
		name := writerName(*proc, i)
		dir := filepath.Join(volumes[i%len(volumes)], name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Error("writer data directory", "err", err)
			return
		}
		wctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		id := writer.Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceURL, []byte("lvss-soak/"+name)), Name: name}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Retry: a stream lvssd ends (a missed deadline, L29) is
			// subscribed again, as the shipped writers do.
			err := writer.Run(wctx, writer.Options{Socket: *socket, Retry: true, Logger: log}, id, &soakWriter{dir: dir})
			if err != nil && wctx.Err() == nil {
				log.Error("writer.Run ended", "writer", name, "err", err)
			}
		}()
	}
	leave := func(i int) {
		if cancels[i] != nil {
			cancels[i]()
			cancels[i] = nil
		}
	}
	for i := range *count {
		join(i)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case l, ok := <-lines:
			if !ok {
				break loop
			}
			verb, arg, _ := strings.Cut(l, " ")
			i, err := strconv.Atoi(arg)
			if err != nil || i < 0 || i >= *count {
				log.Error("bad command", "line", l)
				continue
			}
			switch verb {
			case "leave":
				leave(i)
			case "join":
				join(i)
			default:
				log.Error("bad command", "line", l)
			}
		}
	}
	for i := range cancels {
		leave(i)
	}
	stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return 0
	case <-time.After(30 * time.Second):
		log.Error("writers did not end within 30s of the host's stop")
		return 1
	}
}
