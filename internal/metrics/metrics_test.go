package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lvss/lvss/internal/version"
	"github.com/lvss/lvss/vsserr"
)

// scrape GETs /metrics from h and parses the text exposition format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", rec.Code, rec.Body)
	}
	return parse(t, rec.Body)
}

func parse(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	return fams
}

// series finds the metric of family name whose labels include want
// (nil if there is none).
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a counter's or gauge's value, failing t if the series is missing.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m := series(fams, name, labels)
	if m == nil {
		t.Fatalf("no series %s%v", name, labels)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, labels)
	return 0
}

func histogram(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Histogram {
	t.Helper()
	m := series(fams, name, labels)
	if m == nil || m.Histogram == nil {
		t.Fatalf("no histogram %s%v", name, labels)
	}
	return m.Histogram
}

// Every Observer call shows in the exposition as the metric docs/metrics.md
// names, with its labels and in the right bucket.
func TestObservationsAreExposed(t *testing.T) {
	counts := map[string]int{"/srv/data": 3, "/home": 1}
	m := New(Options{SnapshotCounts: func() (map[string]int, error) { return counts, nil },
		Version: version.Info{Version: "1.2.3", Commit: "abc123"}})

	m.SessionOpened()
	m.SessionOpened()
	m.SessionClosed()
	m.WriterSubscribed("postgres")
	m.WriterSubscribed("logwriter")
	m.WriterUnsubscribed("logwriter")
	m.CreationLockRefused(true)
	m.CreationLockRefused(false)
	m.CreationLockWaited(3*time.Second, true)
	m.CreationLockRefused(true)
	m.CreationLockWaited(time.Minute, false)
	m.SnapshotSetCreated(1500 * time.Millisecond)
	m.SnapshotSetFailed(200*time.Millisecond, vsserr.ProviderVeto)
	m.SnapshotSetFailed(time.Second, vsserr.AsyncCancelled)
	m.WriterThawed("postgres", 4*time.Millisecond)
	m.WriterThawed("postgres", 40*time.Millisecond)
	m.FilesystemsHeld(7 * time.Millisecond)
	m.WriterFailed("postgres", "Freeze", vsserr.WriterErrorRetryable)
	m.WriterFailed("postgres", "Freeze", vsserr.WriterErrorRetryable)
	m.WriterFailed("redis", "Thaw", vsserr.WriterNotResponding)
	m.EventDropped("info")
	m.EventDropped("info")
	m.EventDropped("warn")

	f := scrape(t, m.Handler())
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"lvss_sessions_in_progress", nil, 1},
		{"lvss_writers_subscribed", map[string]string{"writer": "postgres"}, 1},
		{"lvss_writers_subscribed", map[string]string{"writer": "logwriter"}, 0},
		{"lvss_creation_lock_refusals_total", nil, 3},
		{"lvss_creation_lock_waits_total", nil, 2},
		{"lvss_snapshot_sets_created_total", nil, 1},
		{"lvss_snapshot_sets_failed_total", map[string]string{"reason": "VSS_E_PROVIDER_VETO"}, 1},
		{"lvss_snapshot_sets_failed_total", map[string]string{"reason": "VSS_S_ASYNC_CANCELLED"}, 1},
		{"lvss_writer_failures_total", map[string]string{"writer": "postgres", "phase": "Freeze", "error": "VSS_E_WRITERERROR_RETRYABLE"}, 2},
		{"lvss_writer_failures_total", map[string]string{"writer": "redis", "phase": "Thaw", "error": "VSS_E_WRITER_NOT_RESPONDING"}, 1},
		{"lvss_snapshots", map[string]string{"volume": "/srv/data"}, 3},
		{"lvss_snapshots", map[string]string{"volume": "/home"}, 1},
		{"lvss_build_info", map[string]string{"version": "1.2.3", "commit": "abc123"}, 1},
		{"lvss_event_log_dropped_total", map[string]string{"level": "info"}, 2},
		{"lvss_event_log_dropped_total", map[string]string{"level": "warn"}, 1},
		{"lvss_event_log_dropped_total", map[string]string{"level": "error"}, 0},
	} {
		if got := value(t, f, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	w := histogram(t, f, "lvss_writer_freeze_window_seconds", map[string]string{"writer": "postgres"})
	if w.GetSampleCount() != 2 || w.GetSampleSum() != 0.044 {
		t.Errorf("postgres freeze windows: count %d, sum %v; want 2, 0.044", w.GetSampleCount(), w.GetSampleSum())
	}
	// Cumulative buckets: 4 ms is in le=0.005, 40 ms only from le=0.05 on.
	for _, b := range w.GetBucket() {
		want := uint64(0)
		switch {
		case b.GetUpperBound() >= 0.05:
			want = 2
		case b.GetUpperBound() >= 0.005:
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("freeze window bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	// The parser lists +Inf as a bucket of its own; the one before it is
	// the last bound chosen.
	if top := w.GetBucket()[len(w.GetBucket())-2].GetUpperBound(); top != 60 {
		t.Errorf("the freeze window buckets end at %v s, want 60 (timeouts.freeze)", top)
	}
	// A subscribed writer that never froze has an empty histogram.
	if h := histogram(t, f, "lvss_writer_freeze_window_seconds", map[string]string{"writer": "logwriter"}); h.GetSampleCount() != 0 {
		t.Errorf("logwriter froze %d times", h.GetSampleCount())
	}
	if h := histogram(t, f, "lvss_filesystem_hold_seconds", nil); h.GetSampleCount() != 1 || h.GetSampleSum() != 0.007 {
		t.Errorf("hold: %v", h)
	}
	if h := histogram(t, f, "lvss_do_snapshot_set_duration_seconds", map[string]string{"outcome": "created"}); h.GetSampleCount() != 1 || h.GetSampleSum() != 1.5 {
		t.Errorf("created sets' duration: %v", h)
	}
	if h := histogram(t, f, "lvss_do_snapshot_set_duration_seconds", map[string]string{"outcome": "failed"}); h.GetSampleCount() != 2 {
		t.Errorf("failed sets' duration: %v", h)
	}
	if h := histogram(t, f, "lvss_creation_lock_wait_seconds", map[string]string{"outcome": "acquired"}); h.GetSampleCount() != 1 || h.GetSampleSum() != 3 {
		t.Errorf("lock waits acquired: %v", h)
	}
	if h := histogram(t, f, "lvss_creation_lock_wait_seconds", map[string]string{"outcome": "abandoned"}); h.GetSampleCount() != 1 || h.GetSampleSum() != 60 {
		t.Errorf("lock waits abandoned: %v", h)
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if f[name] == nil {
			t.Errorf("%s is missing: Go's and the process's own metrics belong to every exporter", name)
		}
	}
}

// Counts follow the catalog at each scrape: a volume whose snapshots are
// all gone has no series any more.
func TestSnapshotCountsFollowTheCatalog(t *testing.T) {
	counts := map[string]int{"/a": 2}
	m := New(Options{SnapshotCounts: func() (map[string]int, error) { return counts, nil }})
	if got := value(t, scrape(t, m.Handler()), "lvss_snapshots", map[string]string{"volume": "/a"}); got != 2 {
		t.Fatalf("lvss_snapshots{/a} = %v", got)
	}
	counts = map[string]int{"/b": 1}
	f := scrape(t, m.Handler())
	if series(f, "lvss_snapshots", map[string]string{"volume": "/a"}) != nil {
		t.Error("/a has no snapshots any more and is still listed")
	}
	if got := value(t, f, "lvss_snapshots", map[string]string{"volume": "/b"}); got != 1 {
		t.Errorf("lvss_snapshots{/b} = %v", got)
	}
}

// A catalog that cannot be read costs the per-volume counts, not the
// scrape: everything else is served, and the error is counted.
func TestUnreadableCatalogLeavesTheRest(t *testing.T) {
	m := New(Options{SnapshotCounts: func() (map[string]int, error) { return nil, errors.New("database not open") }})
	m.SnapshotSetCreated(time.Second)
	f := scrape(t, m.Handler())
	if f["lvss_snapshots"] != nil {
		t.Error("lvss_snapshots served although the catalog could not be read")
	}
	if got := value(t, f, "lvss_snapshot_sets_created_total", nil); got != 1 {
		t.Errorf("sets created = %v", got)
	}
	// The error is counted once that scrape has gathered: the next one
	// shows it.
	f = scrape(t, m.Handler())
	if got := value(t, f, "promhttp_metric_handler_errors_total", map[string]string{"cause": "gathering"}); got != 1 {
		t.Errorf("gathering errors = %v, want 1", got)
	}
}

// Writer names are bounded: past maxWriterLabels, new names share
// "other", and a name keeps its label so its gauge returns to 0.
func TestWriterLabelsAreBounded(t *testing.T) {
	m := New(Options{})
	for i := range maxWriterLabels + 50 {
		m.WriterSubscribed(fmt.Sprintf("w%d", i))
	}
	f := scrape(t, m.Handler())
	if n := len(f["lvss_writers_subscribed"].GetMetric()); n != maxWriterLabels+1 {
		t.Errorf("%d writer series, want %d (and one %q)", n, maxWriterLabels+1, otherWriters)
	}
	if got := value(t, f, "lvss_writers_subscribed", map[string]string{"writer": otherWriters}); got != 50 {
		t.Errorf("other = %v, want 50", got)
	}
	for i := range maxWriterLabels + 50 {
		m.WriterUnsubscribed(fmt.Sprintf("w%d", i))
	}
	for _, s := range scrape(t, m.Handler())["lvss_writers_subscribed"].GetMetric() {
		if s.GetGauge().GetValue() != 0 {
			t.Errorf("%v after every writer left", s)
		}
	}
}

// A scrape that is stuck (here: in the catalog read) holds up nothing the
// coordinator reports: each Observer call returns while it hangs.
func TestStuckScrapeDoesNotBlockObservations(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	m := New(Options{SnapshotCounts: func() (map[string]int, error) {
		entered <- struct{}{}
		<-release
		return nil, nil
	}})
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	}()
	defer func() { close(release); <-scraped }()
	<-entered
	observed := make(chan struct{})
	go func() {
		defer close(observed)
		m.SessionOpened()
		m.CreationLockRefused(true)
		m.CreationLockWaited(time.Second, true)
		m.SnapshotSetCreated(time.Second)
		m.SnapshotSetFailed(time.Second, vsserr.ProviderVeto)
		m.WriterSubscribed("w")
		m.WriterThawed("w", time.Millisecond)
		m.FilesystemsHeld(time.Millisecond)
		m.WriterFailed("w", "Freeze", vsserr.WriterErrorRetryable)
		m.WriterUnsubscribed("w")
		m.SessionClosed()
	}()
	select {
	case <-observed:
	case <-time.After(time.Minute):
		t.Fatal("Observer calls blocked behind a stuck scrape")
	}
}

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
}

func get(t *testing.T, c *http.Client, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return parse(t, resp.Body)
}

// serve runs m.Serve on l until the test ends; it returns a function that
// stops it and reports Serve's result.
func serve(t *testing.T, m *Metrics, l net.Listener) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, l) }()
	var result error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { stop() })
	return stop
}

// A Unix socket: mode 0660 with the configured group, served until the
// context ends, and removed then.
func TestServeOnUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "metrics.sock") // its directory is made
	gid := os.Getegid()
	if os.Geteuid() == 0 {
		gid = 4242 // root may give the socket any group: show that it does
	}
	l, err := Listen("unix", path, strconv.Itoa(gid))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Gid) != gid {
		t.Errorf("socket group %d, want %d", st.Gid, gid)
	}
	m := New(Options{})
	m.SnapshotSetCreated(time.Second)
	stop := serve(t, m, l)
	c := unixClient(path)
	if got := value(t, get(t, c, "http://lvssd/metrics"), "lvss_snapshot_sets_created_total", nil); got != 1 {
		t.Errorf("sets created = %v", got)
	}
	resp, err := c.Get("http://lvssd/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing: %s", resp.Status)
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve after its context ended: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

// What is at the socket's path decides: a dead lvssd's socket is
// replaced, a live one or another file is an error (and left alone).
func TestListenUnixSocketConflicts(t *testing.T) {
	dir := t.TempDir()

	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nobody answers: a dead daemon's
	if l, err = Listen("unix", stale, ""); err != nil {
		t.Fatalf("a stale socket is not replaced: %v", err)
	}
	// Now something answers there.
	if _, err := Listen("unix", stale, ""); !contains(err, "something is listening on "+stale) {
		t.Errorf("a live socket: %v", err)
	}
	l.Close()

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix", file, ""); !contains(err, file+" exists and is not a socket") {
		t.Errorf("a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("the file in the way was changed")
	}

	if _, err := Listen("unix", filepath.Join(dir, "g.sock"), "no-such-group-lvss"); !contains(err, `socket_group: group "no-such-group-lvss"`) {
		t.Errorf("an unknown group: %v", err)
	}
}

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// TCP, on a port the kernel picks.
func TestServeOnTCP(t *testing.T) {
	l, err := Listen("tcp", "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	m := New(Options{})
	m.SessionOpened()
	serve(t, m, l)
	c := &http.Client{Timeout: time.Minute}
	if got := value(t, get(t, c, "http://"+l.Addr().String()+"/metrics"), "lvss_sessions_in_progress", nil); got != 1 {
		t.Errorf("sessions = %v", got)
	}
	// Something else on that port is a clear error.
	if _, err := Listen("tcp", l.Addr().String(), ""); !contains(err, "metrics: listen tcp "+l.Addr().String()+": bind: address already in use") {
		t.Errorf("a port in use: %v", err)
	}
}
