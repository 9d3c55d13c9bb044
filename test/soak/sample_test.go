//go:build soak

package soak

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeTimeout bounds one scrape of lvssd's /metrics: a stalled endpoint
// fails the sample instead of the sampler.
const scrapeTimeout = 30 * time.Second

type metricsEndpoint struct{ client *http.Client }

func unixMetrics(path string) *metricsEndpoint {
	return &metricsEndpoint{client: &http.Client{Timeout: scrapeTimeout,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}}
}

// figures are one reading of lvssd: from its Prometheus endpoint (Go's
// and the process's own metrics, and lvss_*) and from the soak.
type figures struct {
	at         time.Duration // since the load began
	phase      string
	goroutines int
	fds        int
	rss        float64 // bytes
	rssAnon    float64 // of which anonymous memory (heap, stacks), bytes
	rssFile    float64 // of which file pages (the catalog's memory map, the binary), bytes
	heap       float64 // go_memstats_heap_inuse_bytes
	sessions   int     // lvss_sessions_in_progress
	writers    int     // sum of lvss_writers_subscribed
	catalog    int     // snapshots lvss list shadows lists
	disk       int     // snapshot subvolumes on disk
	catalogDB  int64   // bytes of lvssd's catalog file
	done       int64   // sessions completed
	retries    int64
	errors     int
}

func (e *metricsEndpoint) scrape() (map[string]*dto.MetricFamily, error) {
	resp, err := e.client.Get("http://lvssd/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape lvssd's metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// sum adds a gauge's or counter's series.
func sum(fams map[string]*dto.MetricFamily, name string) float64 {
	var v float64
	for _, m := range fams[name].GetMetric() {
		if m.Gauge != nil {
			v += m.Gauge.GetValue()
		} else {
			v += m.GetCounter().GetValue()
		}
	}
	return v
}

// read takes one reading of lvssd. It does not check invariants (check
// does, with the catalog and disk counts).
func (s *soak) read(phase string) (figures, error) {
	f := figures{at: time.Since(s.start).Round(time.Second), phase: phase,
		done: s.stats.sessions(), retries: s.stats.retries.Load(), errors: s.errorCount()}
	fams, err := s.metrics.scrape()
	if err != nil {
		return f, err
	}
	f.goroutines = int(sum(fams, "go_goroutines"))
	f.fds = int(sum(fams, "process_open_fds"))
	f.rss = sum(fams, "process_resident_memory_bytes")
	f.heap = sum(fams, "go_memstats_heap_inuse_bytes")
	f.sessions = int(sum(fams, "lvss_sessions_in_progress"))
	f.writers = int(sum(fams, "lvss_writers_subscribed"))
	// The split of RSS tells the heap from bbolt's memory map of the
	// catalog file, whose resident pages count too.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.daemon.Cmd.Process.Pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			var kb float64
			if _, err := fmt.Sscanf(l, "RssAnon: %f kB", &kb); err == nil {
				f.rssAnon = kb * 1024
			} else if _, err := fmt.Sscanf(l, "RssFile: %f kB", &kb); err == nil {
				f.rssFile = kb * 1024
			}
		}
	}
	if fi, err := os.Stat(filepath.Join(s.dir, "state", "catalog.db")); err == nil {
		f.catalogDB = fi.Size()
	}
	return f, nil
}

const rowHeader = "   time  phase   goroutines  fds   RSS MiB (anon + file)  heap MiB  catalog.db MiB  sessions open  writers  snapshots catalog/disk  sessions done  retries  errors"

func (f figures) row() string {
	return fmt.Sprintf("%7s  %-6s  %10d  %3d  %7.1f (%5.1f + %5.1f)  %8.1f  %14.1f  %13d  %7d  %10d / %-10d  %13d  %7d  %6d",
		f.at, f.phase, f.goroutines, f.fds, f.rss/(1<<20), f.rssAnon/(1<<20), f.rssFile/(1<<20), f.heap/(1<<20), float64(f.catalogDB)/(1<<20),
		f.sessions, f.writers, f.catalog, f.disk, f.done, f.retries, f.errors)
}

// sampler keeps the rows and the current phase.
type sampler struct {
	mu    sync.Mutex
	rows  []figures
	phase string
}

func (s *soak) setPhase(p string) {
	s.sample.mu.Lock()
	s.sample.phase = p
	s.sample.mu.Unlock()
}

// takeRow reads lvssd, checks the invariants, prints the row and keeps
// it. A problem the check finds is an error of the soak.
func (s *soak) takeRow() {
	s.sample.mu.Lock()
	phase := s.sample.phase
	s.sample.mu.Unlock()
	f, err := s.read(phase)
	if err != nil {
		s.errorf("read lvssd's metrics: %v", err)
		return
	}
	var problems []string
	f.catalog, f.disk, problems = s.check(false)
	for _, p := range problems {
		s.errorf("check: %s", p)
	}
	f.errors = s.errorCount()
	s.sample.mu.Lock()
	first := len(s.sample.rows) == 0
	s.sample.rows = append(s.sample.rows, f)
	s.sample.mu.Unlock()
	if first {
		s.t.Log(rowHeader)
	}
	s.t.Log(f.row())
}

// runSampler takes a row every interval until stop is closed.
func (s *soak) runSampler(stop <-chan struct{}) {
	tick := time.NewTicker(s.cfg.interval)
	defer tick.Stop()
	s.takeRow()
	for {
		select {
		case <-stop:
			return
		case <-s.hard.Done():
			return
		case <-tick.C:
			s.takeRow()
		}
	}
}

// markdownTable renders rows for docs/reliability.md.
func markdownTable(rows []figures) string {
	var b strings.Builder
	b.WriteString("| time | phase | goroutines | open fds | RSS MiB (anon + file) | heap MiB | catalog.db MiB | snapshots catalog / disk | sessions done |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %.1f (%.1f + %.1f) | %.1f | %.1f | %d / %d | %d |\n", f.at, f.phase, f.goroutines, f.fds,
			f.rss/(1<<20), f.rssAnon/(1<<20), f.rssFile/(1<<20), f.heap/(1<<20), float64(f.catalogDB)/(1<<20), f.catalog, f.disk, f.done)
	}
	return b.String()
}
