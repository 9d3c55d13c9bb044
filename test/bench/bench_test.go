package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/freeze"
	"github.com/lvss/lvss/internal/server"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/btrfs"
	"github.com/lvss/lvss/provider/confval"
	execprov "github.com/lvss/lvss/provider/exec"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// The freeze guard is this test binary run again.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == freeze.GuardArg {
		os.Exit(freeze.GuardMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// daemon is lvssd in-process: coordinator, server, catalog, real socket.
type daemon struct {
	socket string
	c      *coordinator.Coordinator
}

func startDaemon(b *testing.B, provs ...provider.Provider) *daemon {
	b.Helper()
	dir := b.TempDir()
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	c, err := coordinator.New(context.Background(), coordinator.Options{
		Catalog: cat, Providers: provider.NewRegistry(provs...), Logger: log,
		MaxSnapshotsPerVolume: 1 << 30,
		Freezer:               freezer{runDir: filepath.Join(dir, "run")},
	})
	if err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "lvssd.sock")
	l, err := server.Listen(sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := server.New(c, server.NewAccess(server.Rules{}, log), log)
	go srv.Serve(l)
	b.Cleanup(func() { srv.Stop(); c.Close(context.Background()); cat.Close() })
	return &daemon{socket: sock, c: c}
}

type freezer struct{ runDir string }

func (f freezer) Start(ctx context.Context, hold time.Duration) (coordinator.Hold, error) {
	if err := os.MkdirAll(f.runDir, 0o755); err != nil {
		return nil, err
	}
	return freeze.Start(ctx, freeze.Options{RunDir: f.runDir, Hold: hold})
}

// timedWriter records how long it was held frozen (Freeze to Thaw).
type timedWriter struct {
	path   string
	mu     sync.Mutex
	since  time.Time
	frozen []time.Duration
}

func (w *timedWriter) Identify(_ context.Context, md *writer.Metadata) error {
	if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, Name: "data", Selectable: true}); err != nil {
		return err
	}
	return md.AddFiles("", "data", w.path, "*", true, "", 0)
}

func (w *timedWriter) Freeze(context.Context, *writer.Event) error {
	w.mu.Lock()
	w.since = time.Now()
	w.mu.Unlock()
	return nil
}

func (w *timedWriter) Thaw(context.Context, *writer.Event) error {
	w.mu.Lock()
	w.frozen = append(w.frozen, time.Since(w.since))
	w.mu.Unlock()
	return nil
}

func (w *timedWriter) Abort(context.Context, *writer.Event) error { return nil }

func startWriters(b *testing.B, d *daemon, n int, path string) []*timedWriter {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ws := make([]*timedWriter, n)
	for i := range n {
		ws[i] = &timedWriter{path: path}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := writer.Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("bench-%d", i))), Name: fmt.Sprintf("bench-%d", i)}
			_ = writer.Run(ctx, writer.Options{Socket: d.socket}, id, ws[i])
		}()
	}
	b.Cleanup(func() { cancel(); wg.Wait() })
	conn, err := client.Dial(context.Background(), d.socket)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		list, err := conn.ListWriters(context.Background())
		if err == nil && len(list) == n {
			break
		}
		if time.Now().After(end) {
			b.Fatalf("%d writers did not subscribe", n)
		}
	}
	return ws
}

// oneSet runs a whole writer-context backup of vol and returns how long
// DoSnapshotSet took, from the call to the end of its Wait; the rest of the
// session (and the auto-release delete at its end) is outside the measure.
func oneSet(b *testing.B, socket, vol string) time.Duration {
	var took time.Duration
	err := client.Run(context.Background(), socket, func(ctx context.Context, bc *client.BackupComponents) error {
		for _, f := range []func() error{
			func() error { return bc.InitializeForBackup(ctx, "") },
			func() error { return bc.SetBackupState(ctx, false, false, vss.BackupCopy, false) },
		} {
			if err := f(); err != nil {
				return err
			}
		}
		a, err := bc.GatherWriterMetadata(ctx)
		if err == nil {
			err = a.Wait(ctx)
		}
		if err != nil {
			return err
		}
		if _, err := bc.StartSnapshotSet(ctx); err != nil {
			return err
		}
		if _, err := bc.AddToSnapshotSet(ctx, vol, uuid.Nil); err != nil {
			return err
		}
		if a, err = bc.PrepareForBackup(ctx); err == nil {
			err = a.Wait(ctx)
		}
		if err != nil {
			return err
		}
		start := time.Now()
		if a, err = bc.DoSnapshotSet(ctx); err == nil {
			err = a.Wait(ctx)
		}
		took = time.Since(start)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	// The release deleted the auto-release snapshot; let the filesystem
	// settle (outside the measure) so the next iteration does not run
	// against the deletion of this one.
	settle(b, vol)
	return took
}

// settle writes everything out (outside any measure), so that an
// iteration does not pay for the previous one's writes. btrfs deletes
// snapshots lazily in the background; pairing each DoSnapshotSet with a
// raw ioctl taken in the same state keeps that from favouring either.
func settle(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		b.Fatal(err)
	}
}

// rawOnce times one raw snapshot ioctl of vol (then deletes it, untimed).
func rawOnce(b *testing.B, mnt, vol string, i int) time.Duration {
	dst := filepath.Join(mnt, "raw-"+strconv.Itoa(i))
	start := time.Now()
	if err := btrfs.RawSnapshot(vol, dst); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	if err := btrfs.RawDelete(dst); err != nil {
		b.Fatal(err)
	}
	settle(b, vol)
	return took
}

func btrfsVolume(b *testing.B) (mnt, vol string) {
	b.Helper()
	fs := testenv.LoopFS(b, "btrfs", 2<<30)
	vol = filepath.Join(fs.Mount, "vol")
	if out, err := exec.Command("btrfs", "subvolume", "create", vol).CombinedOutput(); err != nil {
		testenv.Missing(b, fmt.Sprintf("btrfs subvolume create: %v %s", err, out))
	}
	for i := range 1000 {
		if err := os.WriteFile(filepath.Join(vol, "f"+strconv.Itoa(i)), []byte("some data"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return fs.Mount, vol
}

// BenchmarkSnapshot measures, on one loop btrfs in one run, the raw
// snapshot ioctl and DoSnapshotSet with 0, 1 and 10 writers. Each
// iteration times one raw ioctl and one DoSnapshotSet on the same
// filesystem state, so background work (btrfs deleting earlier snapshots)
// cannot favour one over the other. Metrics are medians over the
// iterations: raw-ms (the ioctl), median-ms (DoSnapshotSet, from the call
// to the end of its Wait, catalog writes included), overhead-ms (the
// median of DoSnapshotSet minus the raw ioctl of the same iteration), and
// frozen-ms (how long each writer was held frozen, Freeze to Thaw as the
// writer saw it).
func BenchmarkSnapshot(b *testing.B) {
	mnt, vol := btrfsVolume(b)
	bp, err := btrfs.New(btrfs.Config{}, 1<<20, "", slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	d := startDaemon(b, bp)
	started := 0
	var ws []*timedWriter
	for _, n := range []int{0, 1, 10} {
		if n > started {
			ws = append(ws, startWriters(b, d, n-started, vol)...)
			started = n
		}
		b.Run(fmt.Sprintf("writers=%d", n), func(b *testing.B) {
			for _, w := range ws {
				w.mu.Lock()
				w.frozen = nil
				w.mu.Unlock()
			}
			var raws, sets, over []time.Duration
			b.ResetTimer()
			b.StopTimer() // the two measures are taken by hand below
			for i := 0; i < b.N; i++ {
				r := rawOnce(b, mnt, vol, i)
				d := oneSet(b, d.socket, vol)
				raws, sets, over = append(raws, r), append(sets, d), append(over, d-r)
			}
			b.ReportMetric(ms(median(raws)), "raw-ms")
			b.ReportMetric(ms(median(sets)), "median-ms")
			b.ReportMetric(ms(median(over)), "overhead-ms")
			var frozen []time.Duration
			for _, w := range ws {
				w.mu.Lock()
				frozen = append(frozen, w.frozen...)
				w.mu.Unlock()
			}
			if len(frozen) > 0 {
				b.ReportMetric(ms(median(frozen)), "frozen-ms")
			}
		})
	}
}

// BenchmarkExecHold measures how long the exec provider's filesystem is
// held frozen (syncfs done before, FIFREEZE to FITHAW as the guard reports
// it) when its commit is a trivial command, on an ext4 loop filesystem.
func BenchmarkExecHold(b *testing.B) {
	fs := testenv.LoopFS(b, "ext4", 256<<20)
	dir := b.TempDir()
	timeout := confval.Duration(5 * time.Second)
	ep, err := execprov.New(execprov.Config{Name: "bench", Volumes: []string{fs.Mount},
		Commit: `echo "h-$LVSS_SNAPSHOT_ID_1"`, Delete: "true", Timeout: &timeout},
		10*time.Second, filepath.Join(dir, "run"), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	d := startDaemon(b, ep)
	b.ResetTimer()
	var ds []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ds = append(ds, oneSet(b, d.socket, fs.Mount))
		b.StartTimer()
	}
	evs, err := d.c.Events(0, 0)
	if err != nil {
		b.Fatal(err)
	}
	var held []time.Duration
	for _, e := range evs {
		if e.Message == "filesystems held frozen" {
			if h, err := time.ParseDuration(e.Fields["held"]); err == nil {
				held = append(held, h)
			}
		}
	}
	b.ReportMetric(ms(median(ds)), "median-ms")
	b.ReportMetric(ms(median(held)), "held-ms")
}
