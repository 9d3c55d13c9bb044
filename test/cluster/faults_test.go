package cluster

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/cluster"
	"github.com/lvss/lvss/internal/testenv"
	hosts "github.com/lvss/lvss/internal/testenv/cluster"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// The job's deadlines in the fault tests: short, so that a fault no lease
// reveals (a host that never arrived anywhere) ends the set soon, and
// long enough for a loaded machine to prepare three hosts.
const (
	prepareTimeout = "8s"
	barrierTimeout = "6s"
	// requesterLease is the requester's --lease-ttl: its death is seen
	// this long after its last renewal.
	requesterLease = "2s"
)

// faultPoints are where h1 stands when a fault strikes.
var faultPoints = []cluster.Point{cluster.Accepted, cluster.Prepared, cluster.FrozenFrontEnd, cluster.Frozen, cluster.Committed, cluster.Snapshotted}

// outcome is what the protocol promises of a set struck by a fault.
type outcome string

const (
	aborts    outcome = "aborts"    // on every host
	completes outcome = "completes" // on every host
	// either: all or nothing, as the timing decides (an etcd election
	// that outlasts a participant's lease aborts the set).
	either outcome = "either"
)

// fault is one way a cluster set is struck while h1 stands at a point.
type fault struct {
	name string
	// action is the failpoint's at the point: pause (h1 waits there
	// until the fault has struck), or kill (h1's lvssd dies there).
	action string
	// before prepares the world for the fault, before the set starts.
	before func(c *cell)
	// strike acts while h1 stands at the point (its lvssd just died
	// there, for kill) and lets it go on.
	strike func(c *cell)
	// heal undoes the fault once the set ended.
	heal func(c *cell)
	// outcome is what the protocol promises at a point.
	outcome func(p cluster.Point) outcome
	// cause is what lvss cluster backup's error line must say when the
	// set aborts (the requester itself killed: the abort's record).
	cause *regexp.Regexp
}

// faults are the five of the issue; docs/cluster.md "Failures, one by
// one" says why each outcome is what the protocol promises.
var faults = []fault{
	{
		name: "partition", action: "pause",
		// A follower's host: a partitioned leader's host also costs an
		// election, which the leader fault measures.
		before: func(c *cell) { c.w.leaderOff(c.t, c.h) },
		strike: func(c *cell) { c.h.Partition(c.t); c.release() },
		heal:   func(c *cell) { c.h.Heal(c.t) },
		// Cut off, h1 arrives nowhere: the others see its arrivals
		// vanish with its lease, or reach a deadline. h1's etcd member
		// is cut off too, and a participant whose lease keepalives went
		// through it (a host, or the requester) loses its lease as well
		// when the TTL (2s here) is shorter than the client takes to
		// give up the connection (its gRPC keepalive, 5s + 2s): the
		// first cause recorded may be that.
		outcome: func(cluster.Point) outcome { return aborts },
		cause:   regexp.MustCompile(`\bh1\b|lost (its )?etcd|is gone`),
	},
	{
		name: "leader-killed", action: "pause",
		strike: func(c *cell) {
			c.member = c.w.etcd.WaitLeader(c.t)
			c.member.Kill(c.t)
			c.release()
		},
		heal: func(c *cell) {
			c.member.Restart(lasting{c.t, c.w.t})
			c.w.etcd.WaitHealthy(c.t)
		},
		outcome: func(cluster.Point) outcome { return either },
		cause:   regexp.MustCompile(`etcd|lease`),
	},
	{
		name: "lvssd-killed", action: "kill",
		strike: func(*cell) {},
		heal: func(c *cell) {
			restarted := time.Now()
			c.h.restartLvssd(c.t)
			// Its part is cleaned up: journal recovery undoes a cut
			// creation, the abort key found at reconnection deletes
			// snapshots of a creation that had finished.
			c.w.waitEnded(c.t, []*host{c.h}, c.mark, false)
			c.cleanedUp = time.Since(restarted)
		},
		// A host that arrived somewhere vanishes with its lease; one that
		// never arrived is missed at the prepare deadline.
		outcome: func(cluster.Point) outcome { return aborts },
		cause:   regexp.MustCompile(`\bh1\b`),
	},
	{
		name: "writer-killed", action: "pause",
		strike: func(c *cell) {
			c.h.killWriter(c.t)
			c.release()
		},
		heal: func(c *cell) { c.h.startWriter(lasting{c.t, c.w.t}) },
		// Before the commit, the writer is missed at the next barrier;
		// killed while frozen it fails its Thaw, and a part that is not
		// application-consistent aborts the set at snapshotted. Once
		// snapshotted, the set is made: only BackupComplete misses it.
		outcome: func(p cluster.Point) outcome {
			if p == cluster.Snapshotted {
				return completes
			}
			return aborts
		},
		cause: regexp.MustCompile(`app-h1`),
	},
	{
		name: "requester-killed", action: "pause",
		strike: func(c *cell) {
			c.killedRequester = true
			_ = c.req.cmd.Process.Kill()
			<-c.req.done
			// h1 stands at the point until the job went with the
			// requester's lease and a host aborted the set.
			c.w.waitAborted(c.t)
			c.release()
		},
		heal:    func(*cell) {},
		outcome: func(cluster.Point) outcome { return aborts },
		cause:   regexp.MustCompile(`requester`),
	},
}

// cell is one fault at one point.
type cell struct {
	t  *testing.T
	w  *world
	f  fault
	p  cluster.Point
	h  *host // the host standing at the point: h1
	fp string
	// mark is where the hooks' log was when the set started.
	mark            int64
	req             *run
	killedRequester bool
	member          *hosts.Member // the etcd member killed
	// struck is when the fault struck; ended when each host's writer
	// had its last event of the set (its Abort, or Thaw and what
	// follows): its part ended; cleanedUp how long a restarted lvssd took
	// to clean up.
	struck    time.Time
	ended     map[string]time.Duration
	cleanedUp time.Duration
	// exited is how long after the fault the requester exited.
	exited    time.Duration
	completed bool
	abort     *cluster.Abort
}

// release lets h1 go on from the point.
func (c *cell) release() { c.h.d.ReleaseFailpoint(c.t, c.fp) }

// TestClusterFaults strikes a cluster set of three hosts with each fault
// at each point (the package doc), and checks after each that every host
// aborted (or, where the protocol allows, every host completed), that
// nothing is frozen, locked or kept anywhere, and that the next cluster
// backup succeeds once the fault is healed. Each fault has a world of its
// own, and go test runs them side by side (-parallel, GOMAXPROCS by
// default): most of a cell is waiting for a lease to end.
func TestClusterFaults(t *testing.T) {
	testenv.SkipIfShort(t, "thirty cluster sets across three hosts, each struck by a fault")
	t.Parallel()
	var mu sync.Mutex
	measured := map[string][]*cell{}
	// After every fault's subtests, parallel ones included.
	t.Cleanup(func() {
		for _, f := range faults {
			for _, c := range measured[f.name] {
				t.Logf("measure: %s", c.summary())
			}
		}
	})
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, true)
			for _, h := range w.hosts {
				h.startWriter(t)
			}
			for _, p := range faultPoints {
				t.Run(string(p), func(t *testing.T) {
					if w.broken != "" {
						t.Fatalf("the world was left broken by %s", w.broken)
					}
					c := w.cell(t, f, p)
					mu.Lock()
					measured[f.name] = append(measured[f.name], c)
					mu.Unlock()
				})
			}
		})
	}
}

// summary is a cell's line of measurements.
func (c *cell) summary() string {
	var per []string
	var last time.Duration
	for _, h := range slices.Sorted(maps.Keys(c.ended)) {
		per = append(per, fmt.Sprintf("%s %s", h, c.ended[h].Round(10*time.Millisecond)))
		last = max(last, c.ended[h])
	}
	what := "aborted"
	if c.completed {
		what = "completed"
	}
	s := fmt.Sprintf("%-16s %-16s %s; every host's part ended %s after the fault (%s)", c.f.name, c.p, what,
		last.Round(10*time.Millisecond), strings.Join(per, ", "))
	if c.exited > 0 {
		s += fmt.Sprintf("; the requester exited after %s", c.exited.Round(10*time.Millisecond))
	}
	if c.abort != nil {
		s += fmt.Sprintf("; aborted by %s at %s: %s", c.abort.By, c.abort.Point, c.abort.Message)
	}
	if c.cleanedUp > 0 {
		s += fmt.Sprintf("; the restarted lvssd cleaned up in %s", c.cleanedUp.Round(10*time.Millisecond))
	}
	return s
}

// cell runs one fault at one point.
func (w *world) cell(t *testing.T, f fault, p cluster.Point) *cell {
	c := &cell{t: t, w: w, f: f, p: p, h: w.hosts[1], fp: "cluster.arrive." + string(p)}
	w.ready(t)
	t.Cleanup(c.repair)
	if f.before != nil {
		f.before(c)
	}
	c.h.d.SetFailpoints(t, c.fp+"="+f.action)
	c.mark = w.hookMark()
	c.req = w.start(t, "backup", w.backupArgs(true)...)
	if f.action == "kill" {
		testenv.Eventually(t, settle, "h1's lvssd to die at "+c.fp, func() bool {
			if c.req.exited() {
				t.Fatalf("lvss cluster backup ended before h1 reached %s: %v\n%s", c.fp, c.req.err, c.req.stderr.String())
			}
			return c.h.d.Proc.Exited()
		})
	} else {
		c.h.d.AwaitFailpoint(t, c.fp, settle)
	}
	c.struck = time.Now()
	clean := w.watchClean(c.struck)
	t.Cleanup(func() { clean() }) // a cell that fails midway
	f.strike(c)

	want := f.outcome(p)
	if !c.killedRequester {
		code := c.req.wait(t)
		c.exited = time.Since(c.struck)
		c.completed = code == 0
		switch {
		case c.completed && want == aborts:
			t.Fatalf("the set completed; the protocol aborts it\n%s", c.req.stderr.String())
		case !c.completed && want == completes:
			t.Fatalf("lvss cluster backup: exit %d; the protocol completes the set\n%s", code, c.req.stderr.String())
		case !c.completed && (code != 1 || !f.cause.MatchString(c.req.errorLine())):
			t.Fatalf("lvss cluster backup: exit %d, error %q: want 1 and a cause matching %q\n%s", code, c.req.errorLine(), f.cause, c.req.stderr.String())
		}
	}
	// Every host whose lvssd runs ends its part within bounded time:
	// every writer had Thaw or Abort, nothing is frozen, no session or
	// lock is left, and no snapshot of an aborted set is kept.
	var live []*host
	for _, h := range w.hosts {
		if !h.d.Proc.Exited() {
			live = append(live, h)
		}
	}
	w.waitEnded(t, live, c.mark, c.completed)
	// A host's part ended when its writer was released and it was seen
	// with no session, lock or snapshot: at snapshotted the writers
	// had their Thaw before the fault, and what ends is the snapshots.
	c.ended = released(w.hookLines(t, c.mark), c.struck)
	for h, d := range clean() {
		if !c.completed {
			c.ended[h] = max(c.ended[h], d)
		}
	}

	f.heal(c)
	w.waitRegistered(t)
	for _, h := range w.hosts {
		h.d.WaitWriters(t, 1) // an lvssd restarted: its writer subscribes again
	}
	sets := w.sets(t)
	if len(sets) != 1 {
		t.Fatalf("etcd holds %d cluster sets, want the one struck: %+v", len(sets), sets)
	}
	s := sets[0]
	switch {
	case c.completed && s.State != cluster.SetKept:
		t.Fatalf("the completed set is %s in etcd, want kept", s.State)
	case !c.completed && (s.State != cluster.SetAborted || s.Abort == nil):
		t.Fatalf("the struck set is %s in etcd, want aborted", s.State)
	case !c.completed:
		c.abort = s.Abort
		if c.killedRequester && !f.cause.MatchString(s.Abort.Message) {
			t.Fatalf("the set was aborted by %s at %s: %q: want a cause matching %q", s.Abort.By, s.Abort.Point, s.Abort.Message, f.cause)
		}
	default:
		// A completed set: every host keeps its part, under the set's ID.
		for _, h := range w.hosts {
			part := s.Record.Hosts[h.Name]
			st, err := h.state(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if part == nil || len(part.Snapshots) == 0 || part.Consistency != "application" {
				t.Fatalf("the kept set's record of %s: %+v", h.Name, part)
			}
			for _, sn := range part.Snapshots {
				if st.snapshots[sn.ID] != s.ID {
					t.Fatalf("%s keeps %v, not snapshot %s of the kept set %s", h.Name, st.snapshots, sn.ID, s.ID)
				}
			}
		}
	}
	if code, out, errOut := w.cluster(t, "delete", s.ID.String()); code != 0 {
		t.Fatalf("lvss cluster delete %s: exit %d\n%s\n%s", s.ID, code, out, errOut)
	}
	for _, h := range w.hosts {
		h.quiet(t)
	}
	c.h.d.SetFailpoints(t, "")

	// The next cluster backup, the fault healed, succeeds.
	mark := w.hookMark()
	code, out, errOut := w.cluster(t, "backup", append([]string{"--json"}, w.backupArgs(false)...)...)
	if code != 0 {
		t.Fatalf("the next cluster backup: exit %d\n%s\n%s", code, out, errOut)
	}
	if res := parseBackup(t, out); res.Consistency != "application" || len(res.Hosts) != 3 {
		t.Fatalf("the next cluster backup: %s over %d hosts\n%s", res.Consistency, len(res.Hosts), out)
	}
	w.waitEnded(t, w.hosts, mark, false)
	t.Logf("measure: %s", c.summary())
	return c
}

// backupArgs are lvss cluster backup's: every host's writer, which must
// take part, and the fault tests' deadlines.
func (w *world) backupArgs(persistent bool) []string {
	args := []string{"--lease-ttl", requesterLease, "--prepare-timeout", prepareTimeout, "--barrier-timeout", barrierTimeout, "--timeout", "2m"}
	if persistent {
		args = append(args, "--persistent")
	}
	// The writers' components name what to snapshot (a --for of the
	// same volume would be a second snapshot, of the whole volume,
	// holding no component: crash-consistent).
	for _, h := range w.hosts {
		args = append(args, "--writer", h.Name+":"+h.writerName())
	}
	return args
}

// waitEnded waits until each of hs has ended its part of the set that
// started at mark (the hooks' log): no session, no creation lock, nothing
// frozen, its writer (if it runs) neither prepared nor frozen, and no
// snapshot kept unless the set completed persistent (keep).
func (w *world) waitEnded(t testing.TB, hs []*host, mark int64, keep bool) {
	t.Helper()
	ended := map[string]bool{}
	deadline := time.Now().Add(settle)
	for {
		lines := w.hookLines(t, mark)
		var waiting []string
		for _, h := range hs {
			if ended[h.Name] {
				continue
			}
			why := ""
			asked := time.Now()
			st, err := h.state(context.Background())
			if took := time.Since(asked); took > time.Second {
				t.Logf("%s's lvssd took %s to answer lvss status and list shadows", h.Name, took.Round(time.Millisecond))
			}
			switch {
			case err != nil:
				why = err.Error()
			case !st.idle():
				why = fmt.Sprintf("%d session(s), creation lock %v, %d frozen", st.sessions, st.lock, st.frozen)
			case !keep && len(st.snapshots) > 0:
				why = fmt.Sprintf("snapshots %v", st.snapshots)
			}
			if why == "" && h.writer != nil && !h.writer.Exited() {
				if held, last := holding(lines, h.Name); held {
					why = "its writer's last event is " + last
				}
			}
			if why != "" {
				waiting = append(waiting, h.Name+": "+why)
				continue
			}
			ended[h.Name] = true
		}
		if len(waiting) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %s of the fault, hosts did not end their part: %s\nhooks:\n%s", settle, strings.Join(waiting, "; "), formatHooks(lines))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// watchClean polls the hosts from now on, until the returned function is
// first called, and that returns how long after since each was first seen
// clean: no session, no creation lock, nothing frozen, no snapshot. Hosts
// whose lvssd does not answer are left out. A host that is busy when the
// fault strikes (the tests' case, as far as no lease ended meanwhile) is
// seen clean once it ended its part.
func (w *world) watchClean(since time.Time) func() map[string]time.Duration {
	stop := make(chan struct{})
	done := make(chan struct{})
	out := map[string]time.Duration{}
	go func() {
		defer close(done)
		for {
			for _, h := range w.hosts {
				if _, ok := out[h.Name]; ok {
					continue
				}
				if st, err := h.state(context.Background()); err == nil && st.idle() && len(st.snapshots) == 0 {
					out[h.Name] = time.Since(since)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	return func() map[string]time.Duration {
		once.Do(func() { close(stop) })
		<-done
		return out
	}
}

// released is, for each host whose writer had an event of the set after
// the fault, how long after the fault its last one came: when the host
// released it (Abort, or Thaw and the events after it), on the hooks' own
// clock (date, read as each ran).
func released(lines []hookLine, struck time.Time) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, l := range lines {
		if d := l.at.Sub(struck); d > 0 {
			out[l.host] = max(out[l.host], d)
		}
	}
	return out
}

func formatHooks(lines []hookLine) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "  %s %s %s %s self=%v\n", l.at.Format("15:04:05.000"), l.host, l.event, l.set, l.selfRaised)
	}
	return b.String()
}

// waitAborted waits until etcd holds the set's abort: after the
// requester's death, its job went with its lease and a host saw it.
func (w *world) waitAborted(t testing.TB) {
	t.Helper()
	testenv.Eventually(t, settle, "a host to abort the set its requester left", func() bool {
		sets := w.sets(t)
		return len(sets) == 1 && sets[0].State == cluster.SetAborted
	})
}

// ready waits until the world can take a set: every etcd member runs and
// agrees on a leader, every lvssd runs and is registered, every writer
// is subscribed, and no host has a session, a lock or a snapshot.
func (w *world) ready(t testing.TB) {
	t.Helper()
	for _, h := range w.hosts {
		if h.Partitioned() {
			t.Fatalf("%s is partitioned", h.Name)
		}
		if h.d.Proc.Exited() {
			t.Fatalf("lvssd of %s is not running", h.Name)
		}
	}
	for _, m := range w.etcd.Members {
		if !m.Running() {
			t.Fatalf("etcd member %s is not running", m.Name)
		}
	}
	w.etcd.WaitHealthy(t)
	w.waitRegistered(t)
	for _, h := range w.hosts {
		if h.writer != nil {
			h.d.WaitWriters(t, 1)
		}
	}
	w.waitEnded(t, w.hosts, w.hookMark(), false)
	if sets := w.sets(t); len(sets) != 0 {
		t.Fatalf("etcd holds cluster sets: %+v", sets)
	}
}

// leaderOff moves etcd's leadership off h's member, if it has it.
func (w *world) leaderOff(t testing.TB, h *host) {
	t.Helper()
	leader := w.etcd.WaitLeader(t)
	if leader.Host != h.Host {
		return
	}
	to := w.etcd.Others(leader)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := leader.Client(t).MoveLeader(ctx, to.ID); err != nil {
		t.Fatalf("moving etcd's leadership from %s to %s: %v", leader.Name, to.Name, err)
	}
	w.etcd.WaitLeader(t, leader)
	w.etcd.WaitHealthy(t)
}

// repair makes the world whole again after a cell that failed midway, so
// that the next cells run: the requester killed, h1 let go, the fault
// undone, every process started again, every set deleted. What cannot
// be repaired marks the world broken.
func (c *cell) repair() {
	if !c.t.Failed() {
		return
	}
	w := c.w
	if c.req != nil && !c.req.exited() {
		_ = c.req.cmd.Process.Kill()
		<-c.req.done
	}
	if !c.h.d.Proc.Exited() && c.h.d.FailpointReached(c.fp) {
		_ = os.WriteFile(filepath.Join(c.h.d.FailpointDir, c.fp+".go"), nil, 0o644)
	}
	r := &repairer{owner: w.t}
	if c.h.Partitioned() {
		r.do("heal h1", func(t testing.TB) { c.h.Heal(t) })
	}
	for _, m := range w.etcd.Members {
		if !m.Running() {
			r.do("restart etcd "+m.Name, func(t testing.TB) { m.Restart(t) })
		}
	}
	for _, h := range w.hosts {
		if h.d.Proc.Exited() {
			r.do("restart lvssd of "+h.Name, func(t testing.TB) { h.restartLvssd(t) })
		}
		if h.writer != nil && h.writer.Exited() {
			r.do("restart the writer of "+h.Name, func(t testing.TB) { h.startWriter(t) })
		}
	}
	r.do("clear h1's failpoints", func(t testing.TB) { c.h.d.SetFailpoints(t, "") })
	r.do("delete the sets", func(t testing.TB) {
		w.waitRegistered(t)
		// A set whose requester was killed above runs until its lease
		// ends and a host aborts it.
		testenv.Eventually(t, settle, "no cluster set to be running", func() bool {
			return !slices.ContainsFunc(w.sets(t), func(s cluster.SetSummary) bool { return s.State == cluster.SetRunning })
		})
		for _, s := range w.sets(t) {
			if code, _, errOut := w.cluster(t, "delete", s.ID.String()); code != 0 {
				t.Fatalf("lvss cluster delete %s: exit %d\n%s", s.ID, code, errOut)
			}
		}
	})
	if r.failed != "" {
		w.broken = fmt.Sprintf("%s (its repair failed: %s)", c.t.Name(), r.failed)
	}
}

// repairer runs repair steps, each in a goroutine of its own with a
// testing.TB whose Fatal ends only that step.
type repairer struct {
	owner  testing.TB
	failed string
}

func (r *repairer) do(what string, step func(testing.TB)) {
	if r.failed != "" {
		return
	}
	st := &stepT{TB: r.owner}
	done := make(chan struct{})
	go func() {
		defer close(done)
		step(st)
	}()
	<-done
	if st.failed {
		r.failed = what + ": " + st.msg
	}
}

// stepT is a repair step's testing.TB: Fatal records the failure and ends
// the step's goroutine; cleanups go to the world's test.
type stepT struct {
	testing.TB
	failed bool
	msg    string
}

func (s *stepT) Fatal(a ...any) { s.fail(fmt.Sprint(a...)) }
func (s *stepT) Fatalf(format string, a ...any) {
	s.fail(fmt.Sprintf(format, a...))
}
func (s *stepT) FailNow()     { s.fail("FailNow") }
func (s *stepT) Failed() bool { return s.failed || s.TB.Failed() }
func (s *stepT) fail(msg string) {
	s.failed, s.msg = true, msg
	s.TB.Log("repair: " + msg)
	runtime.Goexit()
}

// writerName is the host's exec writer's name.
func (h *host) writerName() string { return "app-" + h.Name }

// startWriter starts the host's exec writer, its hooks writing to the
// world's log, and waits until lvssd lists it.
func (h *host) startWriter(t testing.TB) {
	t.Helper()
	if h.writerArgs == nil {
		data := filepath.Join(h.vol, "app")
		if err := os.MkdirAll(data, 0o755); err != nil {
			t.Fatal(err)
		}
		hook := hookCommand(h.w.hooks, h.Name)
		h.writerArgs = []string{"--socket", h.d.Socket, "exec", "--name", h.writerName(), "--component", "data=" + data, "--tmpdir", "/dev/shm"}
		for _, ev := range []string{"prepare-snapshot", "freeze", "thaw", "abort", "post-snapshot", "backup-complete"} {
			h.writerArgs = append(h.writerArgs, "--on-"+ev, hook)
		}
		// h0's writer is back-end, the others front-end: with two levels
		// in use, frozen-front-end orders something and every host waits
		// there (a level point that orders nothing is passed, L63), so
		// the faults strike there too.
		if h.Name == "h0" {
			h.writerArgs = append(h.writerArgs, "--level", "back-end")
		}
	}
	h.writer = h.Start(t, "writer", lvssdtest.Bin(t, "lvss-writer"), h.writerArgs...)
	h.d.WaitWriters(t, 1)
}

// killWriter SIGKILLs the host's writer (and a hook it runs) and waits
// until lvssd no longer lists it.
func (h *host) killWriter(t testing.TB) {
	t.Helper()
	_ = syscall.Kill(-h.writer.Cmd.Process.Pid, syscall.SIGKILL)
	<-h.writer.Done()
	h.d.WaitWriters(t, 0)
}
