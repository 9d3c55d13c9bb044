package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/version"
	"github.com/lvss/lvss/vsserr"
)

// Bucket bounds, in seconds. A healthy freeze window or hold is a few
// milliseconds to a second; the top buckets reach the 60 s Freeze→Thaw
// limit (timeouts.freeze), where a writer is aborted.
var (
	windowBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60}
	// DoSnapshotSet includes PrepareForSnapshot (up to 120 s by default)
	// and PostSnapshot.
	creationBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// A wait for the creation lock lasts as long as another backup's
	// creation: up to its lease (timeouts.creation_lease, 10 min).
	lockWaitBuckets = []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}
)

// Options configure Metrics.
type Options struct {
	// SnapshotCounts returns how many snapshots each original volume has
	// (catalog.DB.CountByVolume). It is called on every scrape and must
	// be cheap; nil leaves lvss_snapshots out.
	SnapshotCounts func() (map[string]int, error)
	// Version is reported as lvss_build_info.
	Version version.Info
	// Logger gets errors met while serving a scrape.
	Logger *slog.Logger
}

// Metrics holds lvssd's metrics. Its Observer methods are safe for
// concurrent use and never block.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	sessions       prometheus.Gauge
	setsCreated    prometheus.Counter
	setsFailed     *prometheus.CounterVec
	creation       *prometheus.HistogramVec
	freezeWindow   *prometheus.HistogramVec
	hold           prometheus.Histogram
	writerFailures *prometheus.CounterVec
	writers        *prometheus.GaugeVec
	lockRefusals   prometheus.Counter
	lockWaits      prometheus.Counter
	lockWait       *prometheus.HistogramVec
	eventsDropped  *prometheus.CounterVec

	writerNames labelSet
}

var _ coordinator.Observer = (*Metrics)(nil)

// New builds the metrics and registers them, with Go's runtime and the
// process's own (go_*, process_*), on a registry of their own.
func New(opt Options) *Metrics {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: opt.Logger,
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lvss_sessions_in_progress",
			Help: "Requester sessions (IVssBackupComponents) open now."}),
		setsCreated: prometheus.NewCounter(prometheus.CounterOpts{Name: "lvss_snapshot_sets_created_total",
			Help: "Snapshot sets DoSnapshotSet created."}),
		setsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lvss_snapshot_sets_failed_total",
			Help: "DoSnapshotSet calls that ended without a snapshot set, by the VSS error they ended with (VSS_S_ASYNC_CANCELLED: cancelled or released by the requester)."},
			[]string{"reason"}),
		creation: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lvss_do_snapshot_set_duration_seconds",
			Help:    "How long DoSnapshotSet ran, from PrepareForSnapshot to PostSnapshot or the end of its failure; outcome is created or failed.",
			Buckets: creationBuckets}, []string{"outcome"}),
		freezeWindow: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lvss_writer_freeze_window_seconds",
			Help:    "Each writer's Freeze→Thaw window in a snapshot set it froze and thawed in time: from Freeze sent to Thaw answered.",
			Buckets: windowBuckets}, []string{"writer"}),
		hold: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lvss_filesystem_hold_seconds",
			Help:    "How long the freeze guard held filesystems frozen (FIFREEZE to FITHAW) for providers that copy from outside.",
			Buckets: windowBuckets}),
		writerFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lvss_writer_failures_total",
			Help: "Writer failures, by writer, by the event it failed (phase) and by the VSS error recorded for it; at most one per writer and session."},
			[]string{"writer", "phase", "error"}),
		writers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lvss_writers_subscribed",
			Help: "Writer processes subscribed now, by writer name."}, []string{"writer"}),
		lockRefusals: prometheus.NewCounter(prometheus.CounterOpts{Name: "lvss_creation_lock_refusals_total",
			Help: "StartSnapshotSet calls refused with VSS_E_SNAPSHOT_SET_IN_PROGRESS because another session was creating a snapshot set."}),
		lockWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "lvss_creation_lock_waits_total",
			Help: "Sessions that found the creation lock held by another session (counted at their first refusal)."}),
		lockWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lvss_creation_lock_wait_seconds",
			Help:    "How long a session waited for the creation lock, from its first refusal until it got the lock (outcome acquired) or ended without it (abandoned).",
			Buckets: lockWaitBuckets}, []string{"outcome"}),
		eventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lvss_event_log_dropped_total",
			Help: "Event-log entries dropped because the log's queue was full (L60), by level: info first, errors last."},
			[]string{"level"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "lvss_build_info",
		Help:        "Always 1; the labels say which lvssd this is.",
		ConstLabels: prometheus.Labels{"version": opt.Version.Version, "commit": opt.Version.Commit}})
	build.Set(1)
	m.reg.MustRegister(m.sessions, m.setsCreated, m.setsFailed, m.creation, m.freezeWindow, m.hold,
		m.writerFailures, m.writers, m.lockRefusals, m.lockWaits, m.lockWait, m.eventsDropped, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opt.SnapshotCounts != nil {
		m.reg.MustRegister(&snapshotCollector{count: opt.SnapshotCounts})
	}
	// Series that exist from the start, so that a rate over the first
	// set created or failed is not lost to a series appearing at 1.
	m.creation.WithLabelValues("created")
	m.creation.WithLabelValues("failed")
	m.lockWait.WithLabelValues("acquired")
	m.lockWait.WithLabelValues("abandoned")
	for _, l := range []string{"info", "warn", "error"} {
		m.eventsDropped.WithLabelValues(l)
	}
	return m
}

// Gatherer is the registry, for tests and for serving in other ways.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// scrapeTimeout bounds gathering one scrape; past it the scraper gets 503.
const scrapeTimeout = 10 * time.Second

// Handler serves the metrics in the exposition format a scraper asks for.
// At most a few scrapes run at once (others get 503), and a metric that
// cannot be collected (the catalog unreadable) is left out and logged
// rather than failing the whole scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            errorLog{m.log},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.reg,
		MaxRequestsInFlight: 4,
		Timeout:             scrapeTimeout,
	})
}

// errorLog gives promhttp's error reports to slog.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	l.log.Warn("metrics: scrape error", "error", strings.TrimSpace(fmt.Sprintln(v...)))
}

// SessionOpened implements coordinator.Observer.
func (m *Metrics) SessionOpened() { m.sessions.Inc() }

// SessionClosed implements coordinator.Observer.
func (m *Metrics) SessionClosed() { m.sessions.Dec() }

// CreationLockRefused implements coordinator.Observer.
func (m *Metrics) CreationLockRefused(first bool) {
	m.lockRefusals.Inc()
	if first {
		m.lockWaits.Inc()
	}
}

// CreationLockWaited implements coordinator.Observer.
func (m *Metrics) CreationLockWaited(wait time.Duration, acquired bool) {
	outcome := "abandoned"
	if acquired {
		outcome = "acquired"
	}
	m.lockWait.WithLabelValues(outcome).Observe(wait.Seconds())
}

// SnapshotSetCreated implements coordinator.Observer.
func (m *Metrics) SnapshotSetCreated(took time.Duration) {
	m.setsCreated.Inc()
	m.creation.WithLabelValues("created").Observe(took.Seconds())
}

// SnapshotSetFailed implements coordinator.Observer.
func (m *Metrics) SnapshotSetFailed(took time.Duration, failure vsserr.HRESULT) {
	m.setsFailed.WithLabelValues(failure.Name()).Inc()
	m.creation.WithLabelValues("failed").Observe(took.Seconds())
}

// WriterThawed implements coordinator.Observer.
func (m *Metrics) WriterThawed(writer string, window time.Duration) {
	m.freezeWindow.WithLabelValues(m.writerNames.label(writer)).Observe(window.Seconds())
}

// FilesystemsHeld implements coordinator.Observer.
func (m *Metrics) FilesystemsHeld(held time.Duration) { m.hold.Observe(held.Seconds()) }

// WriterFailed implements coordinator.Observer.
func (m *Metrics) WriterFailed(writer, event string, failure vsserr.HRESULT) {
	m.writerFailures.WithLabelValues(m.writerNames.label(writer), event, failure.Name()).Inc()
}

// WriterSubscribed implements coordinator.Observer. The writer's freeze
// window histogram appears now, empty, so that its first backup is an
// increase a rate sees.
func (m *Metrics) WriterSubscribed(writer string) {
	l := m.writerNames.label(writer)
	m.writers.WithLabelValues(l).Inc()
	m.freezeWindow.WithLabelValues(l)
}

// WriterUnsubscribed implements coordinator.Observer.
func (m *Metrics) WriterUnsubscribed(writer string) {
	m.writers.WithLabelValues(m.writerNames.label(writer)).Dec()
}

// EventDropped implements coordinator.Observer. The level is one of the
// event log's three.
func (m *Metrics) EventDropped(level string) { m.eventsDropped.WithLabelValues(level).Inc() }

// maxWriterLabels bounds the distinct writer labels. Writer names are
// chosen by writer processes; a system has a handful, and a writer that
// makes up a new name on every start must not grow the series without
// end.
const maxWriterLabels = 100

// otherWriters is the label of the writers past maxWriterLabels.
const otherWriters = "other"

// labelSet hands out label values for writer names: each name its own,
// until maxWriterLabels names have one; later names share otherWriters.
// A name keeps the label it got, so that a gauge's Inc and Dec meet.
type labelSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (s *labelSet) label(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[name] {
		return name
	}
	if len(s.seen) >= maxWriterLabels {
		return otherWriters
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[name] = true
	return name
}

// snapshotCollector reads the snapshots per volume from the catalog on
// each scrape: the catalog is the truth (snapshots are also deleted by
// administrators, by auto-release and at start-up), and counting the
// keys of its volume index is one short read transaction.
type snapshotCollector struct {
	count func() (map[string]int, error)
}

var snapshotsDesc = prometheus.NewDesc("lvss_snapshots",
	"Snapshots the catalog holds now, by original volume.", []string{"volume"}, nil)

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) { ch <- snapshotsDesc }

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.count()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(snapshotsDesc, errors.Join(errors.New("read the catalog"), err))
		return
	}
	for vol, n := range counts {
		ch <- prometheus.MustNewConstMetric(snapshotsDesc, prometheus.GaugeValue, float64(n), vol)
	}
}
