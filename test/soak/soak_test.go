//go:build soak

package soak

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == hostArg {
		os.Exit(writerHostMain(os.Args[2:]))
	}
	lvssdtest.Main(m)
}

// config is what the soak runs, from the environment (make soak sets
// LVSS_SOAK_DURATION from DURATION).
type config struct {
	duration time.Duration // LVSS_SOAK_DURATION: how long the load runs (required)
	interval time.Duration // LVSS_SOAK_INTERVAL: how often a row is printed (10s)
	warmup   time.Duration // a quarter of duration, at least one interval
	procs    int           // LVSS_SOAK_WRITERS=PROCSxCOUNT (5x20): writer host processes...
	perProc  int           // ...and SDK writers in each
	sessions int           // LVSS_SOAK_SESSIONS (50): requester sessions at once
	keep     int           // LVSS_SOAK_KEEP (16): persistent snapshots kept; older ones are deleted
	report   string        // LVSS_SOAK_REPORT: also write the table (Markdown) to this file
	keepDB   string        // LVSS_SOAK_KEEP_CATALOG: copy lvssd's catalog.db here at the end, to look into it
}

func loadConfig(t *testing.T) config {
	t.Helper()
	c := config{interval: 10 * time.Second, procs: 5, perProc: 20, sessions: 50, keep: 16,
		report: os.Getenv("LVSS_SOAK_REPORT"), keepDB: os.Getenv("LVSS_SOAK_KEEP_CATALOG")}
	var err error
	d := os.Getenv("LVSS_SOAK_DURATION")
	if d == "" {
		t.Fatal("LVSS_SOAK_DURATION is not set: run make soak DURATION=10m (docs/testing.md)")
	}
	if c.duration, err = time.ParseDuration(d); err != nil || c.duration <= 0 {
		t.Fatalf("LVSS_SOAK_DURATION=%q: want a positive Go duration such as 10m or 90s", d)
	}
	if v := os.Getenv("LVSS_SOAK_INTERVAL"); v != "" {
		if c.interval, err = time.ParseDuration(v); err != nil || c.interval <= 0 {
			t.Fatalf("LVSS_SOAK_INTERVAL=%q: want a positive Go duration such as 10s", v)
		}
	}
	if v := os.Getenv("LVSS_SOAK_WRITERS"); v != "" {
		p, n, ok := strings.Cut(v, "x")
		c.procs, err = strconv.Atoi(p)
		if ok && err == nil {
			c.perProc, err = strconv.Atoi(n)
		}
		if !ok || err != nil || c.procs < 1 || c.perProc < 1 {
			t.Fatalf("LVSS_SOAK_WRITERS=%q: want PROCESSESxWRITERS such as 5x20", v)
		}
	}
	for _, e := range []struct {
		name string
		to   *int
	}{{"LVSS_SOAK_SESSIONS", &c.sessions}, {"LVSS_SOAK_KEEP", &c.keep}} {
		if v := os.Getenv(e.name); v != "" {
			if *e.to, err = strconv.Atoi(v); err != nil || *e.to < 1 {
				t.Fatalf("%s=%q: want a positive number", e.name, v)
			}
		}
	}
	c.warmup = max(c.duration/4, c.interval)
	if c.warmup >= c.duration {
		t.Fatalf("LVSS_SOAK_DURATION=%s leaves no steady state after a warm-up of %s: give at least twice LVSS_SOAK_INTERVAL", c.duration, c.warmup)
	}
	return c
}

// soak is one run: the loop filesystem, lvssd, the writer hosts, what the
// load did and what the checks found.
type soak struct {
	t     *testing.T
	cfg   config
	start time.Time

	vols      []string // btrfs subvolumes the sessions snapshot and the writers live on
	exposeDir string   // where persistent snapshots are exposed (on the loop filesystem)
	dir       string   // lvssd's directory: socket, state, run, config, outputs
	socket    string
	lvssBin   string
	daemon    *lvssdtest.Proc
	metrics   *metricsEndpoint
	admin     *client.Conn

	hostsMu sync.Mutex
	hosts   []*host

	track  *tracker
	stats  stats
	errs   errorLog
	sample sampler

	// hard ends everything: an interrupt (Ctrl-C, SIGTERM) or too many
	// errors. The test then fails, and the cleanups run.
	hard     context.Context
	hardStop context.CancelCauseFunc
}

// stats are the load's counters, printed every interval and at the end.
type stats struct {
	sessionsAuto, sessionsPersistent atomic.Int64 // whole backups, released
	abandoned                        atomic.Int64 // sessions that stopped waiting for the lock at a phase's end
	retries                          atomic.Int64 // StartSnapshotSet answered VSS_E_SNAPSHOT_SET_IN_PROGRESS
	writerFailures                   sync.Map     // failure name -> *atomic.Int64, from GatherWriterStatus
	leaves, joins                    atomic.Int64 // single writers unsubscribed and subscribed again
	restartsTerm, restartsKill       atomic.Int64 // whole writer host processes restarted
	exposes, unexposes               atomic.Int64
	deletesAPI, deletesCLI           atomic.Int64
	lists                            atomic.Int64 // lvss list shadows runs
	// The longest wait for the creation lock, and the longest rest of a
	// session after it (AddToSnapshotSet to release): reported, not
	// judged, since they depend on the machine.
	longestWait, longestRest maxDuration
}

// maxDuration keeps the largest duration it was given.
type maxDuration struct{ v atomic.Int64 }

func (m *maxDuration) note(d time.Duration) {
	for {
		old := m.v.Load()
		if int64(d) <= old || m.v.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

func (m *maxDuration) get() time.Duration { return time.Duration(m.v.Load()) }

func (st *stats) sessions() int64 { return st.sessionsAuto.Load() + st.sessionsPersistent.Load() }

func (st *stats) writerFailure(name string) {
	v, _ := st.writerFailures.LoadOrStore(name, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// errorLog keeps the unexpected errors: the first ones in full, then a
// count. Too many end the run early (hard), since the soak has found
// what it is for.
type errorLog struct {
	mu    sync.Mutex
	first []string
	n     int
}

const (
	errorsShown = 20
	errorsStop  = 100
)

func (s *soak) errorf(format string, args ...any) {
	if s.hard.Err() != nil {
		// Once stopped (Ctrl-C, or too many errors), calls fail because
		// of the stop; the errors before it are the ones that tell.
		return
	}
	msg := fmt.Sprintf("%s: ", time.Since(s.start).Round(time.Second)) + fmt.Sprintf(format, args...)
	s.errs.mu.Lock()
	s.errs.n++
	n := s.errs.n
	if n <= errorsShown {
		s.errs.first = append(s.errs.first, msg)
	}
	s.errs.mu.Unlock()
	if n <= errorsShown {
		s.t.Log("ERROR " + msg)
	}
	if n == errorsStop {
		s.hardStop(fmt.Errorf("%d unexpected errors", n))
	}
}

func (s *soak) errorCount() int {
	s.errs.mu.Lock()
	defer s.errs.mu.Unlock()
	return s.errs.n
}

// TestSoak runs lvss under load for LVSS_SOAK_DURATION (see the package
// doc): a warm-up, a quiet point where the figures are taken, the steady
// state, a second quiet point, and the comparison; the invariants are
// checked every interval and at the end.
func TestSoak(t *testing.T) {
	cfg := loadConfig(t)
	s := &soak{t: t, cfg: cfg, track: newTracker()}
	hard, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s.hard, s.hardStop = context.WithCancelCause(hard)
	defer s.hardStop(nil)

	s.setup()
	s.start = time.Now()
	t.Logf("soak: %s (warm-up %s), %d writers in %d processes, %d sessions at once, %d persistent snapshots kept, a row every %s",
		cfg.duration, cfg.warmup, cfg.procs*cfg.perProc, cfg.procs, cfg.sessions, cfg.keep, cfg.interval)

	samplerDone := make(chan struct{})
	samplerStop := make(chan struct{})
	go func() {
		defer close(samplerDone)
		s.runSampler(samplerStop)
	}()

	// A stop (Ctrl-C, too many errors) ends the test at once: the
	// cleanups remove everything; readings and checks after it would
	// only report the stop.
	stopped := func() {
		if cause := context.Cause(s.hard); cause != nil {
			close(samplerStop)
			<-samplerDone
			s.summary()
			if n := s.errorCount(); n > 0 {
				t.Errorf("%d unexpected errors before the stop; the first %d:\n  %s", n, len(s.errs.first), strings.Join(s.errs.first, "\n  "))
			}
			t.Fatalf("the soak was stopped early: %v", cause)
		}
	}
	s.runLoad(s.start.Add(cfg.warmup))
	q1 := s.quiesce("after warm-up")
	stopped()
	sessionsAtQ1 := s.stats.sessions()
	s.runLoad(s.start.Add(cfg.duration))
	q2 := s.quiesce("at the end")
	stopped()
	close(samplerStop)
	<-samplerDone

	s.summary()
	s.judgeLeaks(q1, q2, s.stats.sessions()-sessionsAtQ1)
	s.finalCleanup()
	s.writeReport(q1, q2)
	if n := s.errorCount(); n > 0 {
		t.Errorf("%d unexpected errors; the first %d:\n  %s", n, len(s.errs.first), strings.Join(s.errs.first, "\n  "))
	}
	// lvssd must stop cleanly (status 0, within StopTimeout) after all
	// that, and must have logged no error (it runs with --log-level
	// error, so anything in its output is one).
	s.daemon.Stop(t)
	if out := strings.TrimSpace(s.daemon.Output()); out != "" {
		t.Errorf("lvssd logged errors:\n%s", out)
	}
	s.checkCatalog()
	if cfg.keepDB != "" {
		if b, err := os.ReadFile(filepath.Join(s.dir, "state", "catalog.db")); err != nil {
			t.Errorf("keep the catalog: %v", err)
		} else if err := os.WriteFile(cfg.keepDB, b, 0o600); err != nil {
			t.Errorf("keep the catalog: %v", err)
		}
	}
}

// setup makes the loop btrfs with its volumes, starts lvssd and the
// writer hosts, and waits for every writer. Each piece registers its own
// cleanup, so a failure anywhere (or Ctrl-C) leaves nothing behind.
func (s *soak) setup() {
	t := s.t
	fs := testenv.LoopFS(t, "btrfs", 4<<30)
	for _, name := range []string{"vol-a", "vol-b"} {
		v := filepath.Join(fs.Mount, name)
		if out, err := exec.Command("btrfs", "subvolume", "create", v).CombinedOutput(); err != nil {
			t.Fatalf("btrfs subvolume create %s: %v\n%s", v, err, out)
		}
		// What a check of an exposed snapshot looks for.
		if err := os.WriteFile(filepath.Join(v, markerFile), []byte(name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s.vols = append(s.vols, v)
	}
	s.exposeDir = filepath.Join(fs.Mount, "expose")
	if err := os.Mkdir(s.exposeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Runs before LoopFS's cleanup and after lvssd's: exposures a failed
	// run left must not keep the filesystem busy.
	t.Cleanup(func() { unmountUnder(t, s.exposeDir) })

	s.lvssBin = lvssdtest.Bin(t, "lvss")
	dir, err := os.MkdirTemp("", "lvss-soak-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s.dir = dir
	s.socket = filepath.Join(dir, "lvssd.sock")
	metricsSock := filepath.Join(dir, "metrics.sock")
	cfgFile := filepath.Join(dir, "lvssd.toml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(daemonConfig, "unix:"+metricsSock)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(lvssdtest.Bin(t, "lvssd"), "--socket", s.socket, "--config", cfgFile,
		"--state-dir", filepath.Join(dir, "state"), "--run-dir", filepath.Join(dir, "run"),
		// Errors only: writers leaving mid-session are warnings, by the
		// thousand; an error is a finding (checked at the end).
		"--log-level", "error")
	// If the test process dies without its cleanups (a panic, SIGKILL),
	// lvssd goes with it instead of holding the loop filesystem.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	s.daemon = lvssdtest.Start(t, dir, "lvssd", cmd)
	s.metrics = unixMetrics(metricsSock)
	lvssdtest.Eventually(t, 30*time.Second, "lvssd to answer on "+s.socket, func() bool {
		if s.daemon.Exited() {
			t.Fatalf("lvssd exited: %v\n%s", s.daemon.Wait(), s.daemon.Output())
		}
		c, err := client.Dial(context.Background(), s.socket)
		if err != nil {
			return false
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = c.ListProviders(ctx)
		return err == nil
	})
	if s.admin, err = client.Dial(context.Background(), s.socket); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.admin.Close() })

	t.Cleanup(s.stopHosts)
	for i := range s.cfg.procs {
		h, err := s.startHost(i)
		if err != nil {
			t.Fatal(err)
		}
		s.hosts = append(s.hosts, h)
	}
	lvssdtest.WaitWriters(t, s.socket, s.cfg.procs*s.cfg.perProc)
}

// markerFile is at the root of each volume, so in each snapshot.
const markerFile = "soak-marker"

// daemonConfig is lvssd's config: the btrfs provider with its defaults,
// metrics on a Unix socket (%s), and writer deadlines shorter than the
// defaults so that a stall shows as an error well inside a session's
// deadline (callTimeout).
const daemonConfig = `
[timeouts]
identify = "30s"
prepare_backup = "30s"
prepare_snapshot = "30s"
freeze = "30s"
thaw = "30s"
post_snapshot = "30s"
backup_complete = "30s"
backup_shutdown = "30s"
abort = "30s"
creation_lease = "5m"

[metrics]
listen = %q
`
