package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// scrapeTimeout bounds one scrape of lvssd's /metrics. It is generous: a
// scrape must answer while writers are frozen, and the test checks that
// it answers at all, not how fast.
const scrapeTimeout = 30 * time.Second

// metricsEndpoint scrapes lvssd's /metrics over a Unix socket or TCP.
type metricsEndpoint struct {
	url    string
	client *http.Client
}

func unixMetrics(path string) *metricsEndpoint {
	return &metricsEndpoint{url: "http://lvssd/metrics", client: &http.Client{Timeout: scrapeTimeout,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}}
}

// scrape is one parsed exposition (the text format, read with
// Prometheus's own parser).
type scrape map[string]*dto.MetricFamily

func (e *metricsEndpoint) scrape(t *testing.T) scrape {
	t.Helper()
	resp, err := e.client.Get(e.url)
	if err != nil {
		t.Fatalf("scrape %s: %v", e.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", e.url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the exposition of %s: %v", e.url, err)
	}
	return fams
}

// find returns the series of name whose labels are exactly labels (nil if
// there is none).
func (s scrape) find(name string, labels map[string]string) *dto.Metric {
next:
	for _, m := range s[name].GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a counter's or gauge's value; a series that is absent is 0,
// as Prometheus reads a counter that has not been incremented yet.
func (s scrape) value(name string, labels map[string]string) float64 {
	m := s.find(name, labels)
	switch {
	case m == nil:
		return 0
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return m.GetGauge().GetValue()
}

// hist is a histogram's sample count and sum (zero if absent).
func (s scrape) hist(name string, labels map[string]string) (uint64, float64) {
	h := s.find(name, labels).GetHistogram()
	return h.GetSampleCount(), h.GetSampleSum()
}

func writerLabel(w string) map[string]string { return map[string]string{"writer": w} }

// lvssRun is an lvss command running in the background.
type lvssRun struct {
	cmd       *exec.Cmd
	out, errb bytes.Buffer
	done      chan struct{}
}

// startLvss starts the lvss binary against the daemon; cleanup kills it
// if the test left it running.
func startLvss(t *testing.T, d *daemon, args ...string) *lvssRun {
	t.Helper()
	r := &lvssRun{done: make(chan struct{})}
	r.cmd = exec.Command(lvssdtest.Bin(t, "lvss"), append([]string{"--socket", d.socket}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.errb
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.done
		}
	})
	return r
}

// wait waits (bounded) for the command to end and returns its exit status.
func (r *lvssRun) wait(t *testing.T) lvssdtest.Result {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(time.Minute):
		t.Fatalf("lvss %v did not end within a minute\n%s", r.cmd.Args, r.errb.String())
	}
	return lvssdtest.Result{Code: r.cmd.ProcessState.ExitCode(), Stdout: r.out.String(), Stderr: r.errb.String()}
}

// shadowsByVolume counts the snapshots `lvss list shadows` shows, by
// original volume.
func shadowsByVolume(t *testing.T, d *daemon) map[string]int {
	t.Helper()
	r := lvssdtest.Lvss(t, d.socket, "", "list", "shadows", "--json")
	var list []struct {
		OriginalVolume string `json:"original_volume"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &list) != nil {
		t.Fatalf("lvss list shadows: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	out := map[string]int{}
	for _, s := range list {
		out[s.OriginalVolume]++
	}
	return out
}

// snapshotsMatch fails t unless lvss_snapshots shows exactly the
// snapshots lvss list shadows lists.
func snapshotsMatch(t *testing.T, s scrape, shadows map[string]int) {
	t.Helper()
	gauge := map[string]int{}
	for _, m := range s["lvss_snapshots"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "volume" {
				gauge[l.GetValue()] = int(m.GetGauge().GetValue())
			}
		}
	}
	if fmt.Sprint(gauge) != fmt.Sprint(shadows) {
		t.Errorf("lvss_snapshots shows %v; lvss list shadows lists %v", gauge, shadows)
	}
}

// TestMetricsDuringBackups: lvssd with [metrics] on a Unix socket, real
// writers (logwriter) and real backups (lvss backup) on btrfs and, through
// an exec provider and the freeze guard, ext4. The endpoint shows each
// backup's freeze window in the writer's histogram (within the span lvss
// backup reports), the sets created, the snapshots per volume as lvss
// list shadows lists them, the filesystem hold, a vetoing writer's
// failure with its phase, and a backup that waited for the creation lock;
// and it answers while a writer is held frozen.
func TestMetricsDuringBackups(t *testing.T) {
	testenv.RequireRoot(t)
	bfs := testenv.LoopFS(t, "btrfs", 256<<20)
	efs := testenv.LoopFS(t, "ext4", 256<<20)
	runDir := t.TempDir()
	sock := filepath.Join(runDir, "metrics.sock")
	// The exec provider snapshots from outside, so the freeze guard
	// holds its filesystem; its "snapshot" here is only a name.
	outside := filepath.Join(efs.Mount, "outside")
	cfg := frozenTimeouts(t) + fmt.Sprintf(`
[[providers.exec]]
name = "outside"
volumes = [%q]
commit = 'printf "%%s\n" "$LVSS_SNAPSHOT_ID_1"'
delete = "true"

[metrics]
listen = %q
`, outside, "unix:"+sock)
	d := startDaemonWith(t, lvssdtest.DaemonOptions{RunDir: runDir, Config: cfg})
	m := unixMetrics(sock)

	dir := func(fs *testenv.FS, name string) string {
		p := filepath.Join(fs.Mount, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	app := dir(bfs, "app")
	d.startWriter(t, "app", "front-end", "--path", app)
	slow := d.startWriter(t, "slow", "front-end", "--sleep-at", "Freeze=1h", "--path", dir(bfs, "slow"))
	d.startWriter(t, "veto", "front-end", "--fail-at", "Freeze", "--path", dir(bfs, "veto"))
	d.startWriter(t, "held", "front-end", "--path", dir(efs, "outside"))
	d.waitWriters(t, 4)

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("metrics socket %s: mode %v, want a socket with 0660", sock, fi.Mode())
	}
	before := m.scrape(t)
	if len(before["lvss_build_info"].GetMetric()) != 1 {
		t.Errorf("lvss_build_info: %v", before["lvss_build_info"])
	}
	for _, w := range []string{"app", "slow", "veto", "held"} {
		if got := before.value("lvss_writers_subscribed", writerLabel(w)); got != 1 {
			t.Errorf("lvss_writers_subscribed{writer=%q} = %v, want 1", w, got)
		}
	}

	// A backup, scraped while its COMMAND runs on the snapshot.
	started, proceed := filepath.Join(d.dir, "started"), filepath.Join(d.dir, "proceed")
	b := startLvss(t, d, "backup", "--writer", "app", "--json", "--", "sh", "-c",
		fmt.Sprintf("touch %s; while [ ! -e %s ]; do sleep 0.1; done", started, proceed))
	eventually(t, liveness, "lvss backup to run its COMMAND", func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
	during := m.scrape(t)
	shadows := shadowsByVolume(t, d)
	if shadows[app] != 1 {
		t.Fatalf("lvss list shadows during the backup: %v, want one snapshot of %s", shadows, app)
	}
	snapshotsMatch(t, during, shadows)
	if got := during.value("lvss_sessions_in_progress", nil); got != 1 {
		t.Errorf("lvss_sessions_in_progress = %v during the backup, want 1", got)
	}
	if err := os.WriteFile(proceed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := b.wait(t)
	var sum backupSummary
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &sum) != nil || sum.WritersFrozenMS == nil {
		t.Fatalf("lvss backup --writer app: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	after := m.scrape(t)
	n0, s0 := before.hist("lvss_writer_freeze_window_seconds", writerLabel("app"))
	n1, s1 := after.hist("lvss_writer_freeze_window_seconds", writerLabel("app"))
	window := s1 - s0
	if n1 != n0+1 || window <= 0 {
		t.Fatalf("app's freeze window histogram: count %d → %d, sum %v → %v; want one more window", n0, n1, s0, s1)
	}
	// The writer's own window lies inside the span lvss backup reports
	// (first Freeze sent to last Thaw answered).
	if window*1000 > *sum.WritersFrozenMS+1e-6 {
		t.Errorf("app's window %v ms is longer than the %v ms lvss backup says the writers were frozen", window*1000, *sum.WritersFrozenMS)
	}
	t.Logf("app frozen %.3f ms (lvss backup: writers frozen %.3f ms)", window*1000, *sum.WritersFrozenMS)
	if got := after.value("lvss_snapshot_sets_created_total", nil) - before.value("lvss_snapshot_sets_created_total", nil); got != 1 {
		t.Errorf("lvss_snapshot_sets_created_total went up by %v, want 1", got)
	}
	if n, _ := after.hist("lvss_do_snapshot_set_duration_seconds", map[string]string{"outcome": "created"}); n != 1 {
		t.Errorf("lvss_do_snapshot_set_duration_seconds{outcome=created} count %d, want 1", n)
	}
	// The backup's auto-release snapshot is gone, from both.
	snapshotsMatch(t, after, shadowsByVolume(t, d))

	// A scrape while a writer is held in Freeze answers, and another
	// session that tries to create a set meanwhile is refused the
	// creation lock, and waits for it. (It is writerless: a writer
	// context would send Identify to the frozen writer, which answers no
	// event until its Freeze handler returns.)
	b1 := startLvss(t, d, "backup", "--writer", "slow", "--", "true")
	slow.lw.WaitEntered(t, "Freeze", 1)
	frozen := m.scrape(t)
	if got := frozen.value("lvss_sessions_in_progress", nil); got != 1 {
		t.Errorf("lvss_sessions_in_progress = %v while slow is frozen, want 1", got)
	}
	if n, _ := frozen.hist("lvss_writer_freeze_window_seconds", writerLabel("slow")); n != 0 {
		t.Errorf("slow's window counted before its Thaw: %d", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = client.Run(ctx, d.socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if err := bc.SetContext(ctx, vss.CtxFileShareBackup); err != nil {
			return err
		}
		if _, err := bc.StartSnapshotSet(ctx); !errors.Is(err, vsserr.SnapshotSetInProgress) {
			return fmt.Errorf("StartSnapshotSet while slow's backup creates its set: %v, want VSS_E_SNAPSHOT_SET_IN_PROGRESS", err)
		}
		waiting := m.scrape(t)
		if got := waiting.value("lvss_creation_lock_waits_total", nil); got != 1 {
			t.Errorf("lvss_creation_lock_waits_total = %v, want 1", got)
		}
		if got := waiting.value("lvss_sessions_in_progress", nil); got != 2 {
			t.Errorf("lvss_sessions_in_progress = %v with two sessions, want 2", got)
		}
		slow.wake(t)
		if r := b1.wait(t); r.Code != 0 {
			t.Fatalf("lvss backup --writer slow: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
		}
		if _, err := bc.StartSnapshotSet(ctx); err != nil {
			return fmt.Errorf("StartSnapshotSet once slow's backup is over: %w", err)
		}
		return bc.AbortBackup(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	after = m.scrape(t)
	if n, _ := after.hist("lvss_writer_freeze_window_seconds", writerLabel("slow")); n != 1 {
		t.Errorf("slow's windows: %d, want 1", n)
	}
	if n, _ := after.hist("lvss_creation_lock_wait_seconds", map[string]string{"outcome": "acquired"}); n != 1 {
		t.Errorf("lock waits that ended with the lock: %d, want 1", n)
	}
	if got := after.value("lvss_creation_lock_refusals_total", nil); got != 1 {
		t.Errorf("lvss_creation_lock_refusals_total = %v, want 1", got)
	}

	// The exec provider needs the filesystem held: the hold is observed.
	if r := lvssdtest.Lvss(t, d.socket, "", "backup", "--writer", "held", "--", "true"); r.Code != 0 {
		t.Fatalf("lvss backup --writer held: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	after = m.scrape(t)
	if n, held := after.hist("lvss_filesystem_hold_seconds", nil); n != 1 || held <= 0 {
		t.Errorf("lvss_filesystem_hold_seconds: count %d, sum %v; want one hold", n, held)
	}
	if n, _ := after.hist("lvss_writer_freeze_window_seconds", writerLabel("held")); n != 1 {
		t.Errorf("held's windows: %d, want 1", n)
	}

	// A writer that vetoes Freeze: a failure with its phase, no window.
	if r := lvssdtest.Lvss(t, d.socket, "", "backup", "--writer", "veto", "--", "true"); r.Code != 3 {
		t.Fatalf("lvss backup --writer veto: exit %d, want 3\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	after = m.scrape(t)
	failure := map[string]string{"writer": "veto", "phase": "Freeze", "error": "VSS_E_WRITERERROR_RETRYABLE"}
	if got := after.value("lvss_writer_failures_total", failure); got != 1 {
		t.Errorf("lvss_writer_failures_total%v = %v, want 1\n%v", failure, got, after["lvss_writer_failures_total"])
	}
	if n, _ := after.hist("lvss_writer_freeze_window_seconds", writerLabel("veto")); n != 0 {
		t.Errorf("a window counted for the writer that vetoed Freeze: %d", n)
	}
	eventually(t, liveness, "every session to end", func() bool {
		return m.scrape(t).value("lvss_sessions_in_progress", nil) == 0
	})
	snapshotsMatch(t, m.scrape(t), shadowsByVolume(t, d))
}

// TestMetricsOnTCP: listen = "127.0.0.1:0" serves on a port the kernel
// picks, which lvssd logs; an address that is taken stops lvssd at
// start-up with the reason, and a malformed one with its place in the
// file.
func TestMetricsOnTCP(t *testing.T) {
	d := startDaemon(t, "[metrics]\nlisten = \"127.0.0.1:0\"\n")
	var addr string
	re := regexp.MustCompile(`msg="metrics listening" network=tcp address=(\S+)`)
	eventually(t, liveness, "lvssd to log its metrics address", func() bool {
		if m := re.FindStringSubmatch(d.proc.Output()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	e := &metricsEndpoint{url: "http://" + addr + "/metrics", client: &http.Client{Timeout: scrapeTimeout}}
	s := e.scrape(t)
	if len(s["lvss_build_info"].GetMetric()) != 1 || s["lvss_sessions_in_progress"] == nil {
		t.Fatalf("scrape of %s lacks lvssd's metrics: %v", addr, s)
	}

	lvssd := lvssdtest.Bin(t, "lvssd")
	run := func(config string) (int, string) {
		t.Helper()
		dir := t.TempDir()
		cfg := filepath.Join(dir, "lvssd.toml")
		if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, lvssd, "--socket", filepath.Join(dir, "s"), "--state-dir", filepath.Join(dir, "state"),
			"--run-dir", filepath.Join(dir, "run"), "--config", cfg)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), errb.String()
	}
	code, out := run(fmt.Sprintf("[metrics]\nlisten = %q\n", addr))
	if want := "lvssd: metrics: listen tcp " + addr + ": bind: address already in use"; code != 1 || !strings.Contains(out, want) {
		t.Errorf("lvssd with a metrics address in use: exit %d, want 1 and %q\n%s", code, want, out)
	}
	code, out = run("[metrics]\nlisten = \"9177\"\n")
	if want := `lvssd.toml:2:10: metrics.listen: "9177" is neither host:port`; code != 1 || !strings.Contains(out, want) {
		t.Errorf("lvssd with a malformed metrics address: exit %d, want 1 and %q\n%s", code, want, out)
	}
}
