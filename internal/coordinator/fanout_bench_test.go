package coordinator_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/fake"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// The benchmarks of the writer fan-out (issue 14: "fan-out cost per writer
// is a few microseconds", "memory per idle writer is a few KB"), so that a
// regression shows in `go test -bench` without root. They use only the
// coordinator's exported API, as lvssd's server does, with in-memory
// writers that answer from a goroutine of their own as a writer's stream
// reader would; `make bench` (test/perf) measures the same against the
// real lvssd over its socket.
//
//	go test -run '^$' -bench 'FanOut|IdleWriterMemory' ./internal/coordinator/

// fanOutSizes are the writer counts of the benchmarks: those of the
// issue's scaling curve.
var fanOutSizes = []int{1, 10, 100, 1000}

// benchWriter is a subscribed in-memory writer that answers every event
// at once: Identify with its Writer Metadata Document (one file-group
// component on the volume), everything else with success and no edits.
type benchWriter struct {
	h   atomic.Pointer[coordinator.WriterHandle]
	wmd []byte
	in  chan *coordinator.Event
	// identified counts the Identify answers, so that a benchmark can wait
	// for the first one without asking the coordinator.
	identified atomic.Int64
}

// Send queues the event for the writer's answering goroutine; the Welcome
// needs no answer.
func (w *benchWriter) Send(m coordinator.Outbound) error {
	if m.Event != nil {
		w.in <- m.Event
	}
	return nil
}

func (w *benchWriter) End(error) {}

func (w *benchWriter) answer(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case ev := <-w.in:
			r := coordinator.Result{EventID: ev.ID}
			if ev.Type == coordinator.EvIdentify {
				r.WMD = w.wmd
			}
			w.h.Load().Deliver(r)
			if ev.Type == coordinator.EvIdentify {
				w.identified.Add(1)
			}
		}
	}
}

// fanOutEnv is a coordinator with the fake provider on a temporary
// "volume" and a catalog, and the writers subscribed to it.
type fanOutEnv struct {
	c       *coordinator.Coordinator
	vol     string
	writers []*benchWriter
	stop    chan struct{}
}

func newFanOutEnv(b *testing.B) *fanOutEnv {
	b.Helper()
	dir := b.TempDir()
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		b.Fatal(err)
	}
	vol, err := filepath.EvalSymlinks(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	c, err := coordinator.New(context.Background(), coordinator.Options{Catalog: cat,
		Providers: provider.NewRegistry(fake.New(vol)), MaxSnapshotsPerVolume: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	e := &fanOutEnv{c: c, vol: vol, stop: make(chan struct{})}
	b.Cleanup(func() {
		c.Close(context.Background())
		close(e.stop)
		cat.Close()
	})
	return e
}

// newBenchWriters makes n writers (not yet subscribed), their documents
// rendered and their answering goroutines started.
func (e *fanOutEnv) newBenchWriters(b *testing.B, n int) []*benchWriter {
	b.Helper()
	ws := make([]*benchWriter, n)
	for i := range ws {
		name := fmt.Sprintf("bench-%04d", len(e.writers)+i)
		md := &document.WriterMetadata{Version: "1.2",
			Identity:      document.Identity{WriterID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(name)), FriendlyName: name, Usage: vss.UsageUserData, Source: vss.SourceOther},
			RestoreMethod: document.RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WRENever},
			Components: []document.Component{{Type: vss.ComponentFileGroup, Name: "data", Selectable: true,
				Files: []document.FileDesc{{Path: filepath.Join(e.vol, name), Filespec: "*", Recursive: true, BackupTypeMask: vss.DefaultFileBackupTypeMask}}}}}
		x, err := md.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		ws[i] = &benchWriter{wmd: x, in: make(chan *coordinator.Event, 4)}
		go ws[i].answer(e.stop)
	}
	return ws
}

// subscribe adds the writers to the coordinator as lvssd's server does
// (AddWriter, then the first Identify) and waits for every first Identify
// to be answered.
func (e *fanOutEnv) subscribe(b *testing.B, ws []*benchWriter) {
	b.Helper()
	ctx := context.Background()
	for i, w := range ws {
		name := fmt.Sprintf("bench-%04d", len(e.writers)+i)
		id := coordinator.Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(name)), Name: name, Level: vss.LevelFrontEnd}
		h, err := e.c.AddWriter(ctx, id, coordinator.Peer{PID: int32(1000 + i)}, w)
		if err != nil {
			b.Fatal(err)
		}
		w.h.Store(h)
		go e.c.IdentifyNew(ctx, h)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		done := 0
		for _, w := range ws {
			if w.identified.Load() > 0 {
				done++
			}
		}
		if done == len(ws) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d writers answered their first Identify within a minute", done, len(ws))
		}
	}
	e.writers = append(e.writers, ws...)
}

// wait returns a function that waits for an asynchronous operation (as
// an asynchronous method returns it) and fails b unless it finished.
func wait(b *testing.B) func(*coordinator.Async, error) {
	return func(a *coordinator.Async, err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
		if st, msg := a.Wait(context.Background(), time.Minute); st != vsserr.AsyncFinished {
			b.Fatalf("%s: %s %s", a.Method(), st, msg)
		}
	}
}

// gathered opens a session (VSS_CTX_BACKUP, every writer takes part) and
// runs it through GatherWriterMetadata.
func (e *fanOutEnv) gathered(b *testing.B) *coordinator.Session {
	b.Helper()
	s := e.c.NewSession(coordinator.Peer{})
	if err := s.InitializeForBackup(""); err != nil {
		b.Fatal(err)
	}
	if err := s.SetBackupState(false, false, vss.BackupFull, false); err != nil {
		b.Fatal(err)
	}
	wait(b)(s.GatherWriterMetadata())
	return s
}

// BenchmarkFanOut times one event sent to every subscribed writer and
// answered by each: GatherWriterMetadata, which sends Identify to all of
// them and parses each answer's document. ns/writer is the time per op
// over the writer count; at 1000 writers it is the fan-out's cost per
// writer, at 1 mostly the session's fixed cost.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range fanOutSizes {
		b.Run(fmt.Sprintf("writers=%d", n), func(b *testing.B) {
			e := newFanOutEnv(b)
			e.subscribe(b, e.newBenchWriters(b, n))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				s := e.c.NewSession(coordinator.Peer{})
				if err := s.InitializeForBackup(""); err != nil {
					b.Fatal(err)
				}
				if err := s.SetBackupState(false, false, vss.BackupFull, false); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				wait(b)(s.GatherWriterMetadata())
				b.StopTimer()
				s.Release(ctx)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/writer")
		})
	}
}

// BenchmarkSnapshotSetFanOut times DoSnapshotSet with every writer taking
// part: four fan-outs (PrepareForSnapshot, Freeze, Thaw, PostSnapshot)
// around the fake provider's commit, and the catalog transaction that
// records the set with every writer's document. The session up to
// PrepareForBackup and its release (BackupShutdown to every writer, the
// auto-release snapshot deleted) are outside the measure.
func BenchmarkSnapshotSetFanOut(b *testing.B) {
	for _, n := range fanOutSizes {
		b.Run(fmt.Sprintf("writers=%d", n), func(b *testing.B) {
			e := newFanOutEnv(b)
			e.subscribe(b, e.newBenchWriters(b, n))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				s := e.gathered(b)
				if _, err := s.StartSnapshotSet(); err != nil {
					b.Fatal(err)
				}
				if _, err := s.AddToSnapshotSet(ctx, e.vol, uuid.Nil); err != nil {
					b.Fatal(err)
				}
				wait(b)(s.PrepareForBackup())
				b.StartTimer()
				wait(b)(s.DoSnapshotSet())
				b.StopTimer()
				s.Release(ctx)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/writer")
		})
	}
}

// BenchmarkIdleWriterMemory reports what the coordinator holds for each
// subscribed, identified, idle writer: the Go heap and goroutine stacks
// after subscribing n writers, less what they were before, over n (after
// a GC each time). The writers themselves (their documents, channels and
// answering goroutines) exist before the first reading, so they are not
// counted; what is counted is the coordinator's side (its handle, the
// writer's outbound queue, which holds no goroutine while idle, the parsed
// document). The gRPC stream of a
// real writer costs lvssd more on top (test/perf measures lvssd's RSS).
func BenchmarkIdleWriterMemory(b *testing.B) {
	const n = 1000
	for range b.N {
		e := newFanOutEnv(b)
		ws := e.newBenchWriters(b, n)
		before := settledMemory()
		e.subscribe(b, ws)
		after := settledMemory()
		b.ReportMetric(float64(after.heap-before.heap)/n, "heap-B/writer")
		b.ReportMetric(float64(after.stacks-before.stacks)/n, "stack-B/writer")
		b.ReportMetric(float64(after.heap+after.stacks-before.heap-before.stacks)/n, "B/writer")
	}
}

type memReading struct{ heap, stacks uint64 }

// settledMemory reads the heap's live bytes and the goroutine stacks in
// use after a full collection.
func settledMemory() memReading {
	runtime.GC()
	runtime.GC() // the first one's finalizers and sweeps are done by now
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memReading{heap: ms.HeapAlloc, stacks: ms.StackInuse}
}
