//go:build perf

package perf_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/benchreport"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// Samples of BenchmarkScaleWriters: backup rounds at each writer count,
// and readings of lvssd's memory at each (their median is the figure).
const (
	scaleRounds      = 20 // at up to 100 writers
	scaleRoundsLarge = 10 // at 1000 writers, where a round takes longer
	scaleMemSamples  = 5
	scaleMemEvery    = 250 * time.Millisecond
)

// scaleSizes are the writer counts of the curve (the issue's).
var scaleSizes = []int{1, 10, 100, 1000}

// scalePhases are the session's steps timed in each round, in order.
var scalePhases = []string{"GatherWriterMetadata", "PrepareForBackup", "DoSnapshotSet", "BackupComplete", "release"}

// scaleTargets are the targets: time (ms) by phase and writer
// count, lvssd's resident memory (MB) by writer count.
var (
	scaleTimeTargets = map[string]map[int]float64{
		"DoSnapshotSet":        {100: 10, 1000: 60},
		"GatherWriterMetadata": {1000: 25},
	}
	scaleMemTargets = map[int]float64{0: 12, 100: 20, 1000: 40}
)

// BenchmarkScaleWriters measures how lvssd's costs grow with subscribed
// writers: the real lvssd binary on a loop btrfs, and 1, 10, 100 and 1000
// SDK writers (writer.Run, one stream each over the one connection the
// writers of a process share (L62), all in this process, so that
// lvssd's memory is lvssd's alone), each with its own identity and one
// file-group component in its own directory of the snapshotted subvolume.
// At each count a Go requester runs whole backups of the subvolume, every
// writer taking part, timing each step; lvssd's memory is read idle
// before any writer, and with the writers subscribed and idle before and
// after the backups.
func BenchmarkScaleWriters(b *testing.B) {
	maxN := slices.Max(scaleSizes)
	raiseNoFile(b, uint64(2*maxN+256))
	fs := testenv.LoopFS(b, "btrfs", 1<<30)
	vol := filepath.Join(fs.Mount, "vol")
	if out, err := exec.Command("btrfs", "subvolume", "create", vol).CombinedOutput(); err != nil {
		b.Fatalf("btrfs subvolume create: %v %s", err, out)
	}
	for i := range maxN {
		dir := filepath.Join(vol, scaleWriterName(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "data"), []byte("some data\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	sockDir := b.TempDir()
	metricsSock := filepath.Join(sockDir, "metrics.sock")
	config := fmt.Sprintf("[metrics]\nlisten = %q\n", "unix:"+metricsSock)
	prof := os.Getenv("LVSS_BENCH_PROFILE") != ""
	debugSock := filepath.Join(sockDir, "debug.sock")
	if prof {
		config += fmt.Sprintf("[debug]\nlisten = %q\n", "unix:"+debugSock)
	}
	d := lvssdtest.StartDaemon(b, lvssdtest.DaemonOptions{Config: config})
	mem := &lvssdMemory{pid: d.Proc.Cmd.Process.Pid, metrics: unixHTTP(metricsSock)}
	ctx := context.Background()
	conn, err := client.Dial(ctx, d.Socket)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })

	var memRows, timeRows []benchreport.Row
	var notes []string
	// addMem adds the rows of one reading: RSS, its anonymous part and the
	// Go heap; after the backups, RSS and heap only.
	addMem := func(series string, n int, r memFigures) {
		row := func(what string, v []float64) benchreport.Row {
			return benchreport.Row{Name: fmt.Sprintf("lvssd %s, %s, %s", what, series, writersN(n)), Series: what + ", " + series,
				X: float64(n), Unit: "MB", Stats: benchreport.Summarize(v)}
		}
		rss := row("RSS", r.rss)
		if series != "idle" {
			memRows = append(memRows, rss, row("Go heap in use", r.heap))
			return
		}
		rss.Target = scaleMemTargets[n]
		memRows = append(memRows, rss, row("anonymous RSS", r.anon), row("Go heap in use", r.heap))
	}
	idle := mem.read(b)
	addMem("idle", 0, idle)
	goroutines := []string{fmt.Sprintf("0 writers: %.0f", benchreport.Summarize(idle.goroutines).Median)}

	host := &scaleHost{socket: d.Socket, vol: vol}
	b.Cleanup(host.stop)
	medians := map[string]map[int]float64{}
	for _, n := range scaleSizes {
		started := time.Now()
		host.grow(b, n)
		waitListed(b, conn, n)
		notes = append(notes, fmt.Sprintf("%d → %d subscribed and identified in %s", host.prev, n, time.Since(started).Round(time.Millisecond)))

		sub := mem.read(b)
		addMem("idle", n, sub)
		if prof && n == maxN {
			if err := saveProfile(unixHTTP(debugSock), "heap?gc=1", fmt.Sprintf("writers-%d-heap-subscribed.pprof", n)); err != nil {
				b.Fatal(err)
			}
		}
		goroutines = append(goroutines, fmt.Sprintf("%s: %.0f", writersN(n), benchreport.Summarize(sub.goroutines).Median))

		rounds := scaleRounds
		if n > 100 {
			rounds = scaleRoundsLarge
		}
		times := make([][]time.Duration, len(scalePhases))
		for range rounds {
			for i, d := range host.round(b, conn, n) {
				times[i] = append(times[i], d)
			}
		}
		for i, p := range scalePhases {
			st := benchreport.Summarize(benchreport.Millis(times[i]))
			timeRows = append(timeRows, benchreport.Row{Name: fmt.Sprintf("%s, %s", p, writersN(n)), Series: p, X: float64(n),
				Unit: "ms", Stats: st, Target: scaleTimeTargets[p][n]})
			if medians[p] == nil {
				medians[p] = map[int]float64{}
			}
			medians[p][n] = st.Median
		}
		addMem("after the backups", n, mem.read(b))
		if prof && n == maxN {
			profileCPU(b, unixHTTP(debugSock), n, func() { host.round(b, conn, n) })
		}
	}

	// Per-writer figures: the growth from 1 writer (time) or from none
	// (memory) to 1000, over the writers added.
	rssAt := func(n int) float64 { return memMedian(memRows, "RSS, idle", n) }
	heapAt := func(n int) float64 { return memMedian(memRows, "Go heap in use, idle", n) }
	dssPer := (medians["DoSnapshotSet"][maxN] - medians["DoSnapshotSet"][1]) * 1000 / float64(maxN-1)
	gatherPer := (medians["GatherWriterMetadata"][maxN] - medians["GatherWriterMetadata"][1]) * 1000 / float64(maxN-1)
	rssPer := (rssAt(maxN) - rssAt(0)) * 1000 / float64(maxN)
	anonAt := func(n int) float64 { return memMedian(memRows, "anonymous RSS, idle", n) }
	heapPer := (heapAt(maxN) - heapAt(0)) * 1000 / float64(maxN)
	b.ReportMetric(medians["DoSnapshotSet"][maxN], "dss-ms@1000")
	b.ReportMetric(medians["GatherWriterMetadata"][maxN], "gather-ms@1000")
	b.ReportMetric(rssAt(maxN), "rss-MB@1000")
	b.ReportMetric(dssPer, "dss-µs/writer")
	b.ReportMetric(gatherPer, "gather-µs/writer")
	b.ReportMetric(rssPer, "rss-KB/writer")
	b.ReportMetric(heapPer, "heap-KB/writer")

	rep := benchreport.Report{Suite: "writers", Order: 40, Tables: []benchreport.Table{
		{
			ID:    "writers-time",
			Title: "Session steps against subscribed writers",
			Notes: []string{
				fmt.Sprintf("The real lvssd (its defaults, the btrfs provider) on a 1 GiB loop btrfs; N SDK writers (writer.Run, one stream each, sharing one connection: L62) "+
					"hosted in the benchmark's process, each with one file-group component in its own directory of the snapshotted subvolume; "+
					"a Go requester (package client) runs whole backups of the subvolume in VSS_CTX_BACKUP without selecting components, so "+
					"every writer takes part (%d rounds at each count, %d at 1000).", scaleRounds, scaleRoundsLarge),
				"Each step is timed from the call to the end of its Wait (for release: `Release`, which sends BackupShutdown to every " +
					"writer and deletes the auto-release snapshot, until it returns). The round checks that every writer froze, thawed " +
					"and got BackupShutdown. Between rounds the volume is synced, outside the measure.",
				fmt.Sprintf("Per writer, from 1 to %d writers (median over median): DoSnapshotSet %.0f µs, GatherWriterMetadata %.0f µs.",
					maxN, dssPer, gatherPer),
			},
			Rows: timeRows,
			Plot: &benchreport.Plot{File: "writers-time", XLabel: "subscribed writers", YLabel: "ms (median, p10–p90)", LogX: true, LogY: true},
		},
		{
			ID:    "writers-memory",
			Title: "lvssd's memory against subscribed writers",
			Notes: []string{
				fmt.Sprintf("lvssd's resident set (VmRSS of /proc/PID/status), its anonymous part (RssAnon: heap and stacks; the rest is "+
					"file pages: lvssd's binary and the catalog's memory map) and the Go heap in use (go_memstats_heap_inuse_bytes from its "+
					"Prometheus endpoint, garbage not yet collected included), in MB of 10⁶ bytes: the median of %d readings %s apart, "+
					"idle before any writer, with the writers subscribed and idle before the backups, and idle again after them "+
					"(lvssd's own GC, not forced). The issue's targets are on the idle RSS.",
					scaleMemSamples, scaleMemEvery),
				fmt.Sprintf("Per idle writer, from none to %d: RSS %.1f KB, of which anonymous %.1f KB; Go heap %.1f KB. "+
					"lvssd's goroutines, idle: %s. Writers %s.",
					maxN, rssPer, (anonAt(maxN)-anonAt(0))*1000/float64(maxN), heapPer, strings.Join(goroutines, ", "), strings.Join(notes, "; ")),
			},
			Rows: memRows,
			Plot: &benchreport.Plot{File: "writers-memory", XLabel: "subscribed writers", YLabel: "MB (median)"},
		},
	}}
	if err := rep.Write(); err != nil {
		b.Fatal(err)
	}
}

// raiseNoFile makes sure this process may open need descriptors: one per
// writer's connection, and the rest. lvssd needs one per writer too; it
// inherits the hard limit from here, and as a Go program raises its soft
// limit to it (so does this process, at its start: most machines need
// nothing more). Under systemd, lvssd.service sets LimitNOFILE=65536.
func raiseNoFile(b *testing.B, need uint64) {
	b.Helper()
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		b.Fatal(err)
	}
	if rl.Cur >= need {
		return
	}
	rl.Cur, rl.Max = need, max(rl.Max, need)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		b.Fatalf("raise RLIMIT_NOFILE to %d for the writers' connections: %v", need, err)
	}
}

// scaleProfileSeconds is how long profileCPU takes lvssd's CPU profile.
const scaleProfileSeconds = 10

// When LVSS_BENCH_PROFILE is set, BenchmarkScaleWriters has lvssd serve
// its debug endpoint (docs/operations.md, "Profiling lvssd") and writes
// lvssd's profiles at the largest writer count into the run's directory
// (benchreport.Dir): the heap with the writers subscribed and idle, and after the
// backups; CPU while backups run again and again (after the measured ones,
// so that profiling slows none of them); every goroutine's stack. Read
// them with `go tool pprof -top DIR/writers-1000-cpu.pprof`.

// saveProfile fetches one profile from lvssd's debug endpoint into the
// run's directory.
func saveProfile(debug *http.Client, path, file string) error {
	c := *debug
	c.Timeout = 2 * scaleProfileSeconds * time.Second
	resp, err := c.Get("http://lvssd/debug/pprof/" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("lvssd's debug endpoint, %s: %s", path, resp.Status)
	}
	if err := os.MkdirAll(benchreport.Dir(), 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(benchreport.Dir(), file))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// profileCPU takes lvssd's CPU profile while round runs backups, one
// after another until the profile is done, then its heap (after a GC) and
// goroutines.
func profileCPU(b *testing.B, debug *http.Client, n int, round func()) {
	b.Helper()
	done := make(chan error, 1)
	go func() {
		done <- saveProfile(debug, fmt.Sprintf("profile?seconds=%d", scaleProfileSeconds), fmt.Sprintf("writers-%d-cpu.pprof", n))
	}()
	for {
		round()
		select {
		case err := <-done:
			if err != nil {
				b.Fatal(err)
			}
			for path, file := range map[string]string{"heap?gc=1": "heap-after-backups.pprof", "goroutine?debug=1": "goroutines.txt"} {
				if err := saveProfile(debug, path, fmt.Sprintf("writers-%d-%s", n, file)); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("lvssd's profiles at %d writers are in %s", n, benchreport.Dir())
			return
		default:
		}
	}
}

func scaleWriterName(i int) string { return fmt.Sprintf("perf-w%04d", i) }

// writersN says "1 writer", "10 writers".
func writersN(n int) string {
	if n == 1 {
		return "1 writer"
	}
	return fmt.Sprintf("%d writers", n)
}

// memMedian is the median of the row of series at n writers.
func memMedian(rows []benchreport.Row, series string, n int) float64 {
	for _, r := range rows {
		if r.Series == series && r.X == float64(n) {
			return r.Median
		}
	}
	return 0
}

// scaleHost runs the SDK writers of BenchmarkScaleWriters and counts what
// they were told to do.
type scaleHost struct {
	socket, vol string
	prev        int // writers before the last grow
	cancels     []context.CancelFunc
	wg          sync.WaitGroup
	frozen      atomic.Int64
	thawed      atomic.Int64
	shutdown    atomic.Int64
}

// grow starts writers until n run.
func (h *scaleHost) grow(b *testing.B, n int) {
	h.prev = len(h.cancels)
	for i := len(h.cancels); i < n; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		h.cancels = append(h.cancels, cancel)
		name := scaleWriterName(i)
		id := writer.Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceURL, []byte("lvss-perf/"+name)), Name: name}
		w := &scaleWriter{host: h, dir: filepath.Join(h.vol, name)}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			if err := writer.Run(ctx, writer.Options{Socket: h.socket}, id, w); err != nil && ctx.Err() == nil {
				b.Errorf("writer %s: %v", name, err)
			}
		}()
	}
}

// stop ends every writer's subscription and waits for them.
func (h *scaleHost) stop() {
	for _, c := range h.cancels {
		c()
	}
	h.wg.Wait()
}

// round runs one backup with every writer taking part and returns the
// time of each of scalePhases.
func (h *scaleHost) round(b *testing.B, conn *client.Conn, n int) []time.Duration {
	b.Helper()
	ctx := context.Background()
	frozen, thawed, shut := h.frozen.Load(), h.thawed.Load(), h.shutdown.Load()
	bc, err := conn.NewBackupComponents(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer bc.Release(ctx)
	must := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	timed := func(call func(context.Context) (*client.Async, error)) time.Duration {
		b.Helper()
		start := time.Now()
		a, err := call(ctx)
		if err == nil {
			err = a.Wait(ctx)
		}
		took := time.Since(start)
		must(err)
		return took
	}
	must(bc.InitializeForBackup(ctx, ""))
	must(bc.SetBackupState(ctx, false, false, vss.BackupFull, false))
	out := make([]time.Duration, 0, len(scalePhases))
	out = append(out, timed(bc.GatherWriterMetadata))
	_, err = bc.StartSnapshotSet(ctx)
	must(err)
	_, err = bc.AddToSnapshotSet(ctx, h.vol, uuid.Nil)
	must(err)
	out = append(out, timed(bc.PrepareForBackup))
	out = append(out, timed(bc.DoSnapshotSet))
	out = append(out, timed(bc.BackupComplete))
	start := time.Now()
	rel, err := bc.Release(ctx)
	out = append(out, time.Since(start))
	must(err)
	if len(rel.DeletedSnapshots) != 1 || len(rel.ShutdownWriters) != n {
		b.Fatalf("release: %d snapshots deleted, %d writers sent BackupShutdown; want 1 and %d", len(rel.DeletedSnapshots), len(rel.ShutdownWriters), n)
	}
	// The writers' own counts: every one froze, thawed and was released.
	// BackupShutdown is answered after Release returns only if a writer
	// was late, which would be a failure lvssd reported, so the counts
	// are checked after a bounded wait for the last answers.
	lvssdtest.Eventually(b, 30*time.Second, fmt.Sprintf("%d writers to freeze, thaw and shut down", n), func() bool {
		return h.frozen.Load()-frozen == int64(n) && h.thawed.Load()-thawed == int64(n) && h.shutdown.Load()-shut == int64(n)
	})
	settle(b, h.vol)
	return out
}

// scaleWriter is one writer of the host: a component in its directory,
// nothing to do at Freeze and Thaw but count.
type scaleWriter struct {
	host *scaleHost
	dir  string
}

func (w *scaleWriter) Identify(_ context.Context, md *writer.Metadata) error {
	if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, Name: "data", Selectable: true}); err != nil {
		return err
	}
	return md.AddFiles("", "data", w.dir, "*", true, "", 0)
}

func (w *scaleWriter) Freeze(context.Context, *writer.Event) error { w.host.frozen.Add(1); return nil }
func (w *scaleWriter) Thaw(context.Context, *writer.Event) error   { w.host.thawed.Add(1); return nil }
func (w *scaleWriter) Abort(context.Context, *writer.Event) error  { return nil }

func (w *scaleWriter) BackupShutdown(context.Context, *writer.Event) error {
	w.host.shutdown.Add(1)
	return nil
}

// waitListed waits until lvssd lists n writers, each with the metadata of
// its first Identify.
func waitListed(b *testing.B, conn *client.Conn, n int) {
	b.Helper()
	lvssdtest.Eventually(b, 2*time.Minute, fmt.Sprintf("lvssd to list %d identified writers", n), func() bool {
		ws, err := conn.ListWriters(context.Background())
		if err != nil || len(ws) != n {
			return false
		}
		for _, w := range ws {
			if w.WMD == "" {
				return false
			}
		}
		return true
	})
}

// lvssdMemory reads a running lvssd's memory.
type lvssdMemory struct {
	pid     int
	metrics *http.Client
}

// memFigures are readings of lvssd, in MB (10⁶ bytes): its resident set,
// the anonymous part of it (heap, stacks: not the binary's pages or the
// catalog's map), the Go heap in use; and its goroutines.
type memFigures struct{ rss, anon, heap, goroutines []float64 }

// read takes scaleMemSamples readings, scaleMemEvery apart.
func (m *lvssdMemory) read(b *testing.B) memFigures {
	b.Helper()
	var f memFigures
	for i := range scaleMemSamples {
		if i > 0 {
			time.Sleep(scaleMemEvery) // the spacing of the readings, not a wait for anything
		}
		rss, anon, err := residentSet(m.pid)
		if err != nil {
			b.Fatal(err)
		}
		vals, err := scrape(m.metrics, "go_memstats_heap_inuse_bytes", "go_goroutines")
		if err != nil {
			b.Fatal(err)
		}
		f.rss, f.anon = append(f.rss, rss/1e6), append(f.anon, anon/1e6)
		f.heap = append(f.heap, vals[0]/1e6)
		f.goroutines = append(f.goroutines, vals[1])
	}
	return f
}

// residentSet is a process's resident set and its anonymous part
// (VmRSS and RssAnon of /proc/PID/status), in bytes.
func residentSet(pid int) (rss, anon float64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	var haveRSS, haveAnon bool
	for _, l := range strings.Split(string(data), "\n") {
		var kb float64
		if _, err := fmt.Sscanf(l, "VmRSS: %f kB", &kb); err == nil {
			rss, haveRSS = kb*1024, true
		} else if _, err := fmt.Sscanf(l, "RssAnon: %f kB", &kb); err == nil {
			anon, haveAnon = kb*1024, true
		}
	}
	if !haveRSS || !haveAnon {
		return 0, 0, fmt.Errorf("no VmRSS or RssAnon in /proc/%d/status", pid)
	}
	return rss, anon, nil
}

// unixHTTP is an HTTP client of the Prometheus endpoint on a Unix socket.
func unixHTTP(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
}

// scrape reads the named metrics from lvssd's /metrics (the text format:
// "NAME VALUE" or "NAME{LABELS} VALUE" lines), each the sum of its series.
func scrape(c *http.Client, names ...string) ([]float64, error) {
	resp, err := c.Get("http://lvssd/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("lvssd's metrics: %s", resp.Status)
	}
	out := make([]float64, len(names))
	found := make([]bool, len(names))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if n, labels, has := strings.Cut(name, "{"); has {
			// The labels may hold spaces: the value follows the closing brace.
			_, after, closed := strings.Cut(labels+" "+rest, "} ")
			name, rest, ok = n, after, closed
		}
		i := slices.Index(names, name)
		fields := strings.Fields(rest)
		if !ok || i < 0 || len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("lvssd's metric %s: %w", name, err)
		}
		out[i] += v
		found[i] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for i, ok := range found {
		if !ok {
			return nil, fmt.Errorf("lvssd's metrics have no %s", names[i])
		}
	}
	return out, nil
}
