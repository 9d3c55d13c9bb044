//go:build perf

package perf_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/benchreport"
	lvcluster "github.com/lvss/lvss/internal/cluster"
	clusterenv "github.com/lvss/lvss/internal/testenv/cluster"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// clusterRounds is how many times BenchmarkCluster measures each row.
const clusterRounds = 20

// clusterSizes are the hosts of the cluster sets measured.
var clusterSizes = []int{1, 3, 5}

// clusterBarriers are the points at which a host waits for every other
// host of the set (internal/cluster/agent: the coordinator's barrier
// points); at the others (accepted, snapshotted, completed) a host only
// reports its arrival, and the requester waits for the last two.
var clusterBarriers = []lvcluster.Point{lvcluster.Prepared, lvcluster.FrozenFrontEnd, lvcluster.FrozenBackEnd,
	lvcluster.FrozenSystem, lvcluster.Frozen, lvcluster.Committed}

// BenchmarkCluster measures what a cluster snapshot set costs over a
// local backup (issue 16): five hosts as network namespaces, each with
// the real lvssd (its own socket, state, loop btrfs, and a [cluster]
// section), a 3-member etcd (Debian's etcd-server) on three of them, one
// `lvss-writer exec` without hooks subscribed on every host, and a sixth
// namespace for the requester, as a backup server that runs neither. Each
// round times `lvss backup -- true` on the first host (no etcd involved)
// and `lvss cluster backup -- true` over 1, 3 and 5 hosts, in an order
// rotated from round to round. For each it reads how long the writers
// were held frozen (each host's lvssd event "writers held frozen"), when
// each host arrived at each point of the protocol (the arrivals' own
// timestamps, read by a watch of the benchmark's; every host shares this
// machine's clock), and what the set cost etcd (its members' own
// Prometheus counters, before and after).
func BenchmarkCluster(b *testing.B) {
	began := time.Now()
	nw := clusterenv.NewNetwork(b, 6)
	hosts, reqHost := nw.Hosts[:5], nw.Hosts[5]
	etcd := clusterenv.StartEtcd(b, hosts[:3], clusterenv.EtcdOptions{})
	var quoted []string
	for _, ep := range etcd.Endpoints() {
		quoted = append(quoted, strconv.Quote(ep))
	}
	keys, err := lvcluster.NewKeys(lvcluster.DefaultPrefix)
	if err != nil {
		b.Fatal(err)
	}
	watch := newSetWatch(b, etcd.Client(b), keys)
	lvssBin, writerBin := lvssdtest.Bin(b, "lvss"), lvssdtest.Bin(b, "lvss-writer")

	chs := make([]*clusterBenchHost, len(hosts))
	for i, h := range hosts {
		cfg := fmt.Sprintf("[limits]\nmax_snapshots_per_volume = %d\n\n[cluster]\nhost = %q\nendpoints = [%s]\n",
			liftedCap, h.Name, strings.Join(quoted, ", "))
		d := h.StartLvssd(b, clusterenv.LvssdOptions{Daemon: lvssdtest.DaemonOptions{Config: cfg}})
		vol := filepath.Join(d.FS.Mount, "vol")
		if out, err := exec.Command("btrfs", "subvolume", "create", vol).CombinedOutput(); err != nil {
			b.Fatalf("btrfs subvolume create on %s: %v %s", h.Name, err, out)
		}
		data := filepath.Join(vol, "data")
		if err := os.Mkdir(data, 0o755); err != nil {
			b.Fatal(err)
		}
		for j := range 100 {
			if err := os.WriteFile(filepath.Join(data, "f"+strconv.Itoa(j)), []byte("some data\n"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		// No hooks: the writer answers every event at once, so the
		// figures are lvss's and etcd's, not a hook's.
		h.Start(b, "lvss-writer", writerBin, "--socket", d.Socket, "exec", "--name", "bench-"+h.Name,
			"--component", "data="+data, "--tmpdir", "/dev/shm")
		conn, err := client.Dial(context.Background(), d.Socket)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		chs[i] = &clusterBenchHost{h: h, d: d, vol: vol, conn: conn}
	}
	for _, c := range chs {
		c.d.WaitWriters(b, 1)
		c.log = newEventLog(b, c.d.Socket)
	}
	waitHostsRegistered(b, etcd.Client(b), keys, chs)
	metrics := &etcdMetrics{members: etcd.Members,
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: nw.DialContext}}}
	b.Logf("5 hosts, etcd and writers ready in %s", time.Since(began).Round(time.Millisecond))

	times, frozen := newSamples(), newSamples()
	segs := map[int]*samples{}
	counts := map[string][]float64{}
	warmup := true
	// idle waits until no host keeps a snapshot: the previous set's parts
	// have ended and deleted theirs (outside any measure), so that no
	// measure waits for another set's creation or deletion.
	idle := func() {
		for _, c := range chs {
			lvssdtest.Eventually(b, 30*time.Second, c.h.Name+" to keep no snapshot", func() bool {
				snaps, err := c.conn.ListShadows(context.Background(), uuid.Nil, "")
				return err == nil && len(snaps) == 0
			})
			settle(b, c.vol)
		}
	}
	count := func(row string, v float64) {
		if !warmup {
			counts[row] = append(counts[row], v)
		}
	}
	steps := []func(){
		func() {
			idle()
			c := chs[0]
			before := metrics.read(b)
			took, out := timeHostCmd(b, c.h, lvssBin, "--socket", c.d.Socket, "backup", "--for", c.vol, "--json", "--", "true")
			after := metrics.read(b)
			set := setIDOf(b, out)
			held := c.log.writersHeld(b, set)
			if warmup {
				return
			}
			times.add(rowClusterLocal, took)
			frozen.add(rowClusterLocal, held)
			count(countRow(0, "requests"), after.sub(before).requests)
		},
	}
	for _, n := range clusterSizes {
		steps = append(steps, func() {
			idle()
			args := []string{"cluster", "--etcd", strings.Join(etcd.Endpoints(), ","), "backup", "--json"}
			for _, c := range chs[:n] {
				args = append(args, "--for", c.h.Name+":"+c.vol)
			}
			before := metrics.read(b)
			took, out := timeHostCmd(b, reqHost, lvssBin, append(args, "--", "true")...)
			set := setIDOf(b, out)
			st := watch.ended(b, set)
			after := metrics.read(b)
			var held time.Duration
			for _, c := range chs[:n] {
				held = max(held, c.log.writersHeld(b, set))
			}
			if warmup {
				return
			}
			times.add(rowClusterSet(n), took)
			frozen.add(rowClusterSet(n), held)
			if segs[n] == nil {
				segs[n] = newSamples()
			}
			for _, sg := range st.segments(b, n, took) {
				segs[n].add(sg.name, sg.d)
			}
			d := after.sub(before)
			count(countRow(n, "requests"), d.requests)
			count(countRow(n, "writes"), d.writes)
			// The benchmark's own watch saw every event of the set once:
			// those are not the protocol's.
			count(countRow(n, "events"), d.events-float64(st.events))
		})
	}
	for _, step := range steps {
		step()
	}
	warmup = false
	measured := time.Now()
	for round := range clusterRounds {
		for i := range steps {
			steps[(round+i)%len(steps)]()
		}
	}
	b.Logf("%d rounds in %s; the whole benchmark %s", clusterRounds, time.Since(measured).Round(time.Millisecond),
		time.Since(began).Round(time.Millisecond))
	if err := clusterReport(b, times, frozen, segs, counts).Write(); err != nil {
		b.Fatal(err)
	}
}

// clusterBenchHost is one host of BenchmarkCluster: its lvssd, the
// subvolume it snapshots, a connection and its event log.
type clusterBenchHost struct {
	h    *clusterenv.Host
	d    *clusterenv.Lvssd
	vol  string
	conn *client.Conn
	log  *eventLog
}

const rowClusterLocal = "`lvss backup -- true`, local (no etcd)"

func rowClusterSet(n int) string {
	return fmt.Sprintf("`lvss cluster backup -- true`, %d %s", n, plural(n, "host"))
}

// countRow names a row of the etcd table: what of a set of n hosts (0: the
// local backup).
func countRow(n int, what string) string {
	if n == 0 {
		return "local `lvss backup`: " + what
	}
	return fmt.Sprintf("%d %s: %s", n, plural(n, "host"), what)
}

// timeHostCmd runs a command on host h (in its network namespace) and
// returns how long it took, from just before its process starts to just
// after it exits, and its standard output. It fails b if the command
// fails.
func timeHostCmd(b *testing.B, h *clusterenv.Host, name string, args ...string) (time.Duration, string) {
	b.Helper()
	cmd := h.Command(context.Background(), name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s on %s: %v\n%s%s", name, strings.Join(args, " "), h.Name, err, out.String(), errb.String())
	}
	return took, out.String()
}

// writersHeld returns how long lvssd held the set's writers frozen (its
// event "writers held frozen": from the first Freeze it sent to the last
// Thaw a writer answered).
func (e *eventLog) writersHeld(b *testing.B, set uuid.UUID) time.Duration {
	b.Helper()
	return e.heldFor(b, set, "writers held frozen")
}

// waitHostsRegistered waits until every host is registered in etcd with
// its writer.
func waitHostsRegistered(b *testing.B, cli *clientv3.Client, k lvcluster.Keys, chs []*clusterBenchHost) {
	b.Helper()
	lvssdtest.Eventually(b, 30*time.Second, "every host registered with its writer", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, k.HostsPrefix(), clientv3.WithPrefix())
		if err != nil {
			return false
		}
		with := 0
		for _, kv := range resp.Kvs {
			var info lvcluster.HostInfo
			if lvcluster.Decode(string(kv.Key), kv.Value, &info) == nil && len(info.Writers) == 1 {
				with++
			}
		}
		return with == len(chs)
	})
}

// setWatch follows every cluster set in etcd, as the benchmark's own
// watcher: when each host arrived at each point (the arrival's own time,
// stamped by the host just before its transaction), when the requester
// wrote the job, and when the job went (the requester's lease revoked:
// its last act).
type setWatch struct {
	keys lvcluster.Keys
	mu   sync.Mutex
	sets map[uuid.UUID]*clusterSetSeen
	err  error
}

// clusterSetSeen is what the watch saw of one set.
type clusterSetSeen struct {
	created time.Time // the job's, on the requester's clock
	at      map[lvcluster.Point]map[string]time.Time
	events  int           // the set's events the watch received
	gone    chan struct{} // closed when the job is deleted
}

func newSetWatch(b *testing.B, cli *clientv3.Client, k lvcluster.Keys) *setWatch {
	w := &setWatch{keys: k, sets: map[uuid.UUID]*clusterSetSeen{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.Cleanup(func() { cancel(); <-done })
	wc := cli.Watch(ctx, k.SetsPrefix(), clientv3.WithPrefix())
	go func() {
		defer close(done)
		for wr := range wc {
			if err := wr.Err(); err != nil && ctx.Err() == nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
			for _, ev := range wr.Events {
				w.event(ev)
			}
		}
	}()
	return w
}

// set returns the set's record, making it; w.mu is held.
func (w *setWatch) set(id uuid.UUID) *clusterSetSeen {
	st := w.sets[id]
	if st == nil {
		st = &clusterSetSeen{at: map[lvcluster.Point]map[string]time.Time{}, gone: make(chan struct{})}
		w.sets[id] = st
	}
	return st
}

func (w *setWatch) event(ev *clientv3.Event) {
	key := string(ev.Kv.Key)
	id, rest, err := w.keys.ParseSetKey(key)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.set(id)
	st.events++
	put := ev.Type == clientv3.EventTypePut
	switch {
	case rest == "job" && put:
		var j lvcluster.Job
		if lvcluster.Decode(key, ev.Kv.Value, &j) == nil {
			st.created = j.Created
		}
	case rest == "job":
		close(st.gone)
	case strings.HasPrefix(rest, "at/") && put:
		point, host, ok := strings.Cut(strings.TrimPrefix(rest, "at/"), "/")
		var a lvcluster.Arrival
		if ok && lvcluster.Decode(key, ev.Kv.Value, &a) == nil {
			p := lvcluster.Point(point)
			if st.at[p] == nil {
				st.at[p] = map[string]time.Time{}
			}
			st.at[p][host] = a.Time
		}
	}
}

// ended waits until the set's job is gone (the requester's lease revoked,
// after its last write) and returns what the watch saw of it.
func (w *setWatch) ended(b *testing.B, id uuid.UUID) *clusterSetSeen {
	b.Helper()
	w.mu.Lock()
	st, err := w.set(id), w.err
	w.mu.Unlock()
	if err != nil {
		b.Fatalf("the benchmark's watch of the cluster sets ended: %v", err)
	}
	select {
	case <-st.gone:
	case <-time.After(30 * time.Second):
		b.Fatalf("cluster set %s: its job is still in etcd 30 s after lvss cluster backup exited", id)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return st
}

// segment is one span of a set's timeline.
type segment struct {
	name string
	d    time.Duration
}

// clusterSegments name the spans between one point and the next, from the
// requester's job to the last host's arrival at completed, and what each
// holds; then the rest of the command's time.
var clusterSegments = []struct {
	to   lvcluster.Point
	name string
}{
	{lvcluster.Accepted, "job written → all accepted"},
	{lvcluster.Prepared, "→ all prepared"},
	{lvcluster.FrozenFrontEnd, "→ all frozen-front-end"},
	{lvcluster.FrozenBackEnd, "→ all frozen-back-end"},
	{lvcluster.FrozenSystem, "→ all frozen-system"},
	{lvcluster.Frozen, "→ all frozen"},
	{lvcluster.Committed, "→ all committed"},
	{lvcluster.Snapshotted, "→ all snapshotted"},
	{lvcluster.Completed, "→ all completed"},
}

const segmentRest = "the rest of the command (process, connection, lease, checks, clean-up)"

// skippable are the points a host passes without arriving when they
// order nothing: the freeze levels' (L63). Here every writer is
// front-end, so all three are passed.
var skippable = map[lvcluster.Point]bool{lvcluster.FrozenFrontEnd: true, lvcluster.FrozenBackEnd: true, lvcluster.FrozenSystem: true}

// waitedPoints are the points every host arrives at here: all but the
// skippable ones.
var waitedPoints = len(lvcluster.Points) - len(skippable)

// segments splits a set of n hosts into its spans: from the job's
// creation to the last host's arrival at the first point, from there to
// the last host's arrival at the next, and so on; the last is the
// command's time outside them.
func (st *clusterSetSeen) segments(b *testing.B, n int, took time.Duration) []segment {
	b.Helper()
	if len(clusterSegments) != len(lvcluster.Points) {
		b.Fatalf("the protocol has %d points, the benchmark names %d spans: update clusterSegments", len(lvcluster.Points), len(clusterSegments))
	}
	prev := st.created
	var out []segment
	for _, sg := range clusterSegments {
		hosts := st.at[sg.to]
		if len(hosts) == 0 && !prev.IsZero() && skippable[sg.to] {
			// A freeze level's point that orders nothing (L63) is
			// passed without an arrival: its span is nothing.
			out = append(out, segment{sg.name, 0})
			continue
		}
		if len(hosts) != n || prev.IsZero() {
			b.Fatalf("the watch saw %d arrivals at %s (want %d) and job time %v", len(hosts), sg.to, n, prev)
		}
		var last time.Time
		for _, t := range hosts {
			if t.After(last) {
				last = t
			}
		}
		out = append(out, segment{sg.name, last.Sub(prev)})
		prev = last
	}
	return append(out, segment{segmentRest, took - prev.Sub(st.created)})
}

// etcdMetrics reads the members' own counters (/metrics on their client
// URLs, reached from inside their hosts).
type etcdMetrics struct {
	members []*clusterenv.Member
	http    *http.Client
}

// etcdCounts are, per member, what a set cost etcd.
type etcdCounts struct {
	// requests are the KV, lease and watch requests the member received
	// (Range, Txn, Put, DeleteRange, LeaseGrant, LeaseRevoke, and watch
	// creations and cancellations); lease keepalives are left out: they
	// run on their own period whether a set runs or not.
	requests float64
	// writes are the raft entries the member committed: every write is
	// one, agreed on by a majority and synced to its log.
	writes float64
	// events are the watch events the member sent.
	events float64
}

// etcdRequestMethods are the gRPC methods counted as requests.
var etcdRequestMethods = []string{"Range", "Txn", "Put", "DeleteRange", "LeaseGrant", "LeaseRevoke", "Watch"}

// etcdReading is every member's counters at one moment.
type etcdReading []etcdCounts

func (m *etcdMetrics) read(b *testing.B) etcdReading {
	b.Helper()
	out := make(etcdReading, len(m.members))
	for i, mb := range m.members {
		c, err := m.member(mb)
		if err != nil {
			b.Fatalf("etcd %s's metrics: %v", mb.Name, err)
		}
		out[i] = c
	}
	return out
}

func (m *etcdMetrics) member(mb *clusterenv.Member) (etcdCounts, error) {
	var c etcdCounts
	resp, err := m.http.Get(mb.ClientURL + "/metrics")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("%s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		name, labels, _ := strings.Cut(series, "{")
		switch name {
		case "grpc_server_msg_received_total":
			for _, meth := range etcdRequestMethods {
				if strings.Contains(labels, `grpc_method="`+meth+`"`) {
					c.requests += v
				}
			}
		case "etcd_server_proposals_committed_total":
			c.writes = v
		case "etcd_debugging_mvcc_events_total":
			c.events = v
		}
	}
	return c, sc.Err()
}

// sub is what happened between two readings: requests and events summed
// over the members, writes as one member counts them (every member
// commits every entry; the most advanced one's count).
func (r etcdReading) sub(before etcdReading) etcdCounts {
	var d etcdCounts
	for i := range r {
		d.requests += r[i].requests - before[i].requests
		d.events += r[i].events - before[i].events
		d.writes = max(d.writes, r[i].writes-before[i].writes)
	}
	return d
}

// clusterReport turns the samples into the suite's tables.
func clusterReport(b *testing.B, times, frozen *samples, segs map[int]*samples, counts map[string][]float64) *benchreport.Report {
	// Plotted rows are one series each (gnuplot's titles take no
	// backquotes: they run commands there).
	msRow := func(s *samples, name, label, series string, n int, peer bool) benchreport.Row {
		return benchreport.Row{Name: label, Series: series, X: float64(n), Peer: peer, Unit: "ms",
			Stats: benchreport.Summarize(benchreport.Millis(s.by[name]))}
	}
	maxN := slices.Max(clusterSizes)
	med := func(s *samples, name string) float64 { return ms(medianOf(s.by[name])) }

	whole := benchreport.Table{
		ID:    "cluster",
		Title: "Cluster snapshot sets: lvss cluster backup over 1, 3 and 5 hosts against a local lvss backup",
		Plot:  &benchreport.Plot{File: "cluster", XLabel: "hosts in the set (0: a local lvss backup, no etcd)", YLabel: "ms (median, p10–p90)"},
	}
	held := benchreport.Table{
		ID:    "cluster-frozen",
		Title: "How long a cluster set holds the writers frozen",
		Plot:  &benchreport.Plot{File: "cluster-frozen", XLabel: "hosts in the set (0: a local lvss backup, no etcd)", YLabel: "ms (median, p10–p90)"},
	}
	const timeSeries, heldSeries = "the command, start to exit", "writers held frozen, the longest host"
	whole.Rows = append(whole.Rows, msRow(times, rowClusterLocal, rowClusterLocal, timeSeries, 0, true))
	held.Rows = append(held.Rows, msRow(frozen, rowClusterLocal, "local `lvss backup`", heldSeries, 0, true))
	for _, n := range clusterSizes {
		whole.Rows = append(whole.Rows, msRow(times, rowClusterSet(n), rowClusterSet(n), timeSeries, n, false))
		held.Rows = append(held.Rows, msRow(frozen, rowClusterSet(n), fmt.Sprintf("cluster set of %d %s: the longest on any host", n, plural(n, "host")),
			heldSeries, n, false))
	}

	// Where the time of the largest set goes, span by span, with the
	// smaller sets' medians beside.
	spans := benchreport.Table{
		ID:    "cluster-spans",
		Title: fmt.Sprintf("Where a cluster set's time goes: %d hosts, span by span", maxN),
	}
	for _, name := range segs[maxN].order {
		r := msRow(segs[maxN], name, name, "", 0, false)
		var others []string
		for _, n := range clusterSizes {
			if n != maxN {
				others = append(others, fmt.Sprintf("%d %s: %.2f", n, plural(n, "host"), med(segs[n], name)))
			}
		}
		r.Note = strings.Join(others, ", ")
		spans.Rows = append(spans.Rows, r)
	}

	// A barrier with nothing to do between its points: the spans to
	// frozen-back-end, frozen-system and frozen (levels without writers
	// here), pooled.
	empty := func(n int) float64 {
		var all []time.Duration
		for _, sg := range clusterSegments[3:6] {
			all = append(all, segs[n].by[sg.name]...)
		}
		return ms(medianOf(all))
	}

	cnt := benchreport.Table{
		ID:    "cluster-etcd",
		Title: "What a cluster set costs etcd (3 members), per set",
	}
	units := map[string]string{"requests": "requests", "writes": "writes", "events": "events"}
	cnt.Rows = append(cnt.Rows, benchreport.Row{Name: countRow(0, "requests"), Unit: "requests", Stats: benchreport.Summarize(counts[countRow(0, "requests")])})
	for _, n := range clusterSizes {
		for _, what := range []string{"requests", "writes", "events"} {
			cnt.Rows = append(cnt.Rows, benchreport.Row{Name: countRow(n, what), X: float64(n), Unit: units[what],
				Stats: benchreport.Summarize(counts[countRow(n, what)])})
		}
	}
	cmed := func(n int, what string) float64 { return benchreport.Summarize(counts[countRow(n, what)]).Median }
	perHost := func(what string) float64 {
		return (cmed(maxN, what) - cmed(clusterSizes[0], what)) / float64(maxN-clusterSizes[0])
	}

	local := med(times, rowClusterLocal)
	whole.Notes = []string{
		fmt.Sprintf("Six network namespaces on this one machine (veth pairs to a bridge in a namespace of its own): five hosts, each "+
			"running the real lvssd (its defaults with a `[cluster]` section, the btrfs provider on a 256 MiB loop btrfs of its own) and one "+
			"`lvss-writer exec` without hooks (a front-end writer that answers every event at once, with one component on the snapshotted "+
			"subvolume); Debian's etcd-server as a 3-member cluster on the first three hosts (its defaults: 100 ms heartbeat, data on the "+
			"machine's disk, so every write waits for a majority's fsync); the requester in the sixth namespace, a machine running "+
			"neither lvssd nor etcd. %d rounds, each measuring every row once in an order rotated from round to round; before each "+
			"measure every host's volume is synced and every host has ended its part of the previous set (outside the measure).",
			clusterRounds),
		"Timed from just before the command's process starts (`nsenter --net` into its namespace, then lvss) to just after it exits. " +
			"The local row is `lvss backup --for VOL -- true` on the first host, against its lvssd over the Unix socket: no etcd is " +
			"involved (its etcd requests, counted below, are 0). A cluster row is `lvss cluster backup --for HOST:VOL... -- true`: " +
			"the requester connects to etcd, checks the hosts are registered, takes a lease, writes the job; each host's lvssd runs " +
			"its part as a local backup session held at the set's barriers; then COMMAND (`true`) runs once per host on the requester's " +
			"machine, each host calls BackupComplete, and the requester deletes the set's keys and revokes its lease. Without " +
			"`--persistent`, as the local row, each host deletes its snapshot when its part ends.",
		fmt.Sprintf("In this run a cluster set of 1 host takes %.2f× the local backup, of %d hosts %.2f×. Of the protocol's %d "+
			"points (internal/cluster: Points) a host waits for every other at %d here, the barriers: prepared, frozen and "+
			"committed; the three freeze levels' points order nothing (every writer here is front-end) and are passed without "+
			"waiting (L63). Each barrier is a transaction (the host's arrival, put only if the job is there and the set not "+
			"aborted), a read of the set's keys, then a watch until the last host arrives. A freeze level's point costs %.1f ms "+
			"at 1 host and %.1f ms at %d (the spans table below: nothing when passed). Each host's writer stays frozen across the "+
			"frozen and committed barriers and the slowest host's snapshot: that is what a cluster set adds to the freeze window.",
			med(times, rowClusterSet(1))/local, maxN, med(times, rowClusterSet(maxN))/local, len(lvcluster.Points), len(clusterBarriers)-len(skippable),
			empty(1), empty(maxN), maxN),
	}
	held.Notes = []string{
		"From lvssd's event log on each host (\"writers held frozen\": from the first Freeze lvssd sent to the last Thaw a writer " +
			"answered, timed by lvssd), same sets as above; for a cluster set the longest of its hosts. A host's writer stays " +
			"frozen until every host has committed: its window holds the barriers from its own level's freeze to committed, the " +
			"snapshot of the slowest host, and the committed barrier's release.",
	}
	spans.Notes = []string{
		fmt.Sprintf("The same sets as above. Each host stamps its arrival at a point (its own clock, just before the transaction "+
			"that records it: every host here shares this machine's clock) and the requester stamps the job; the benchmark watches "+
			"the set's keys and reads the stamps. A span is from the last host's arrival at one point to the last host's arrival at "+
			"the next (the first from the job's stamp), so the spans add up to the set's whole timeline; the last row is the rest "+
			"of the command's time: its process start, etcd connection, registration check, lease grant, and after the last host "+
			"completed, the record transaction, the lease's revocation and the exit. The note gives the medians (ms) for the "+
			"smaller sets. What each span holds: to accepted, the job's watch reaching the hosts, reading the job, a session "+
			"opened; to prepared, GatherWriterMetadata, PrepareForBackup, PrepareForSnapshot and the providers' preparation; "+
			"to frozen-front-end, the prepared barrier and the writers' Freeze; to frozen-back-end, frozen-system and frozen, a "+
			"barrier each and nothing else (no writers of those levels); to committed, the btrfs snapshot (PreCommit, commit, "+
			"PostCommit); to snapshotted, the committed barrier, Thaw, PostSnapshot, the catalog's record and the part published "+
			"(its documents in the arrival); to completed, the requester's wait for the last snapshotted, COMMAND once per host, "+
			"its word to the hosts, their BackupComplete. Median of the %d rounds per span: the medians do not add up to the "+
			"median of the whole.", clusterRounds),
	}
	// By design every host writes one arrival per point, and the
	// requester five entries: its lease's grant, the job, its word that
	// COMMAND ran, the closing transaction (arrivals deleted) and its
	// lease's revocation (the job with it).
	designWrites := func(n int) float64 { return float64(5 + waitedPoints*n) }
	var writes []string
	for _, n := range clusterSizes {
		w := fmt.Sprintf("%d %s: %.0f", n, plural(n, "host"), designWrites(n))
		if got := cmed(n, "writes"); got != designWrites(n) {
			w += fmt.Sprintf(" (measured %.0f)", got)
		}
		writes = append(writes, w)
	}
	cnt.Notes = []string{
		fmt.Sprintf("Read from the members' own Prometheus counters (`/metrics` on their client URLs) before each measure and after "+
			"the set's job is gone, summed over the three members: requests are the KV, lease and watch requests they received "+
			"(Range, Txn, Put, DeleteRange, LeaseGrant, LeaseRevoke, and each watch's creation and cancellation; the leases' "+
			"keepalives are left out), writes the raft entries committed (each one a majority's agreement and fsync), events "+
			"the watch events the members sent, the benchmark's own watch's taken out. Per host added, from 1 to %d hosts: "+
			"%.1f requests (its %d arrival transactions, the read of the job, and a read and a watch for each of its %d barriers "+
			"and for its wait for the requester's word), %.1f writes, %.1f events.",
			maxN, perHost("requests"), waitedPoints, len(clusterBarriers), perHost("writes"), perHost("events")),
		fmt.Sprintf("Writes by design: one arrival per host at each of the %d points it waits at (the three freeze levels' points order nothing here, every writer being front-end, and are passed without one, L63), and 5 of the requester's (its lease's grant, the "+
			"job, its word that COMMAND ran, the closing transaction, its lease's revocation): %s. Every registered host's lvssd "+
			"watches all of `sets/` for jobs, so every key of every set is sent to every registered host (five here), whether the "+
			"set names it or not; each host waiting at a barrier also watches the set's keys.",
			waitedPoints, strings.Join(writes, ", ")),
	}

	b.ReportMetric(local, "local-ms")
	for _, n := range clusterSizes {
		b.ReportMetric(med(times, rowClusterSet(n)), fmt.Sprintf("cluster%d-ms", n))
		b.ReportMetric(med(frozen, rowClusterSet(n)), fmt.Sprintf("frozen%d-ms", n))
		b.ReportMetric(cmed(n, "requests"), fmt.Sprintf("etcd-requests%d", n))
	}
	b.ReportMetric(med(frozen, rowClusterLocal), "frozen-local-ms")
	b.ReportMetric(empty(maxN), fmt.Sprintf("empty-barrier%d-ms", maxN))
	return &benchreport.Report{Suite: "cluster", Order: 70, Tables: []benchreport.Table{whole, held, spans, cnt}}
}
