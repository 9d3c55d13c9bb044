package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/cluster"
	"github.com/lvss/lvss/internal/testenv"
	hosts "github.com/lvss/lvss/internal/testenv/cluster"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// The bounds of the tests' waits: for a broken run, not a pace.
const (
	// settle bounds a wait for what follows a fault (an abort on every
	// host, a restarted lvssd cleaning up, a reconnection).
	settle = 90 * time.Second
	// lvssRun bounds one run of lvss.
	lvssRun = 2 * time.Minute
)

// hostLeaseTTL is every host's [cluster] lease_ttl: etcd's minimum with
// its default election timeout, so that a host's death or cut is seen
// in seconds.
const hostLeaseTTL = "2s"

// lasting is a subtest's t that registers its cleanups with the test that
// owns the world (and logs there): what a subtest starts again after a
// fault (an lvssd, a writer, an etcd member) outlives the subtest and is
// stopped with the world. Fatal and Skip stay the subtest's, called from
// its goroutine.
type lasting struct {
	testing.TB
	owner testing.TB
}

func (l lasting) Cleanup(f func())             { l.owner.Cleanup(f) }
func (l lasting) Log(a ...any)                 { l.owner.Log(a...) }
func (l lasting) Logf(format string, a ...any) { l.owner.Logf(format, a...) }
func (l lasting) Error(a ...any)               { l.owner.Error(a...) }
func (l lasting) Errorf(format string, a ...any) {
	l.owner.Errorf(format, a...)
}
func (l lasting) Failed() bool { return l.owner.Failed() || l.TB.Failed() }

// world is three cluster hosts (h0, h1, h2), each with an etcd member
// and its own lvssd on a loop btrfs, and a fourth host (h3) for the
// requester, which runs lvss cluster there as a backup server beside
// them would.
type world struct {
	t         testing.TB
	nw        *hosts.Network
	etcd      *hosts.Etcd
	hosts     []*host
	req       *hosts.Host
	endpoints string
	// cli is the harness's etcd client, beside every member (no
	// partition cuts it off): how the test looks at etcd.
	cli  *clientv3.Client
	keys cluster.Keys
	lvss string
	// hooks is the log every exec writer's hooks append to:
	// "UNIX_TIME HOST EVENT SET SELF_RAISED" lines.
	hooks string
	// broken names the subtest that left the world broken: the
	// subtests after it fail at once.
	broken string
}

// host is one cluster host: its namespace, its lvssd and its volume.
type host struct {
	*hosts.Host
	w   *world
	d   *lvssdtest.Daemon
	fs  *testenv.FS
	vol string // a btrfs subvolume of the host's filesystem
	cfg string
	// failpoints: lvssd is the lvss_failpoints build.
	failpoints bool
	// started is when the running lvssd was started: its registration
	// is newer.
	started time.Time
	// writer is the host's exec writer (TestClusterFaults), writerArgs
	// how to start it again.
	writer     *lvssdtest.Proc
	writerArgs []string
}

// newWorld builds the hosts, etcd across h0-h2 (with --pre-vote: a healed
// member does not depose the leader, so a heal makes no election of its
// own) and an lvssd on each, and waits until all three are registered.
func newWorld(t *testing.T, failpoints bool) *world {
	t.Helper()
	nw := hosts.NewNetwork(t, 4)
	w := &world{t: t, nw: nw, req: nw.Hosts[3], lvss: lvssdtest.Bin(t, "lvss"), hooks: filepath.Join(nw.Dir, "hooks.log")}
	w.etcd = hosts.StartEtcd(t, nw.Hosts[:3], hosts.EtcdOptions{Args: []string{"--pre-vote"}})
	w.endpoints = strings.Join(w.etcd.Endpoints(), ",")
	w.cli = w.etcd.Client(t)
	w.keys, _ = cluster.NewKeys("")
	quoted := make([]string, 0, 3)
	for _, ep := range w.etcd.Endpoints() {
		quoted = append(quoted, strconv.Quote(ep))
	}
	for _, nh := range nw.Hosts[:3] {
		h := &host{Host: nh, w: w, failpoints: failpoints,
			cfg: fmt.Sprintf("[cluster]\nhost = %q\nendpoints = [%s]\nlease_ttl = %q\n", nh.Name, strings.Join(quoted, ", "), hostLeaseTTL)}
		h.started = time.Now()
		l := nh.StartLvssd(t, hosts.LvssdOptions{Daemon: lvssdtest.DaemonOptions{Config: h.cfg, WithFailpoints: failpoints}})
		h.d, h.fs = l.Daemon, l.FS
		h.vol = filepath.Join(h.fs.Mount, "vol")
		if out, err := exec.Command("btrfs", "subvolume", "create", h.vol).CombinedOutput(); err != nil {
			t.Fatalf("btrfs subvolume create %s: %v\n%s", h.vol, err, out)
		}
		w.hosts = append(w.hosts, h)
	}
	w.waitRegistered(t)
	t.Logf("world: %d hosts with etcd and lvssd, registered", len(w.hosts))
	return w
}

// names are the cluster hosts' names.
func (w *world) names() []string {
	var out []string
	for _, h := range w.hosts {
		out = append(out, h.Name)
	}
	return out
}

// restartLvssd starts the host's lvssd again over its state, run dir and
// socket (after it was killed): its start-up recovery runs, its writers
// reconnect to the same socket.
func (h *host) restartLvssd(t testing.TB) {
	t.Helper()
	if !h.d.Proc.Exited() {
		t.Fatalf("lvssd of %s still runs", h.Name)
	}
	h.started = time.Now()
	h.d = lvssdtest.StartDaemon(lasting{t, h.w.t}, lvssdtest.DaemonOptions{Config: h.cfg, StateDir: h.d.StateDir, RunDir: h.d.RunDir,
		Socket: h.d.Socket, Netns: h.NetnsPath, WithFailpoints: h.failpoints})
}

// lvssCmd is lvss (the requester's CLI) in the requester host's namespace:
// `lvss cluster` reaches etcd over the hosts' network, as from another
// machine. Its --socket is never used by lvss cluster.
func (w *world) lvssCmd(args ...string) *exec.Cmd {
	return w.req.Command(context.Background(), w.lvss, append([]string{"--socket", "/nonexistent/lvssd.sock"}, args...)...)
}

// clusterArgs puts lvss cluster's etcd flag before a verb's arguments.
func (w *world) clusterArgs(verb string, args ...string) []string {
	return append([]string{"cluster", "--etcd", w.endpoints, verb}, args...)
}

// run is one lvss process of the requester host.
type run struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	err            error
}

// start starts lvss cluster VERB ARGS on the requester host. Cleanup
// kills it if it still runs.
func (w *world) start(t testing.TB, verb string, args ...string) *run {
	t.Helper()
	r := &run{cmd: w.lvssCmd(w.clusterArgs(verb, args...)...), done: make(chan struct{})}
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		if !r.exited() {
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

func (r *run) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// wait waits for lvss to end and returns its exit status (-1: killed).
func (r *run) wait(t testing.TB) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(lvssRun):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("lvss %v did not end within %s\n%s", r.cmd.Args, lvssRun, r.stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case r.err == nil:
		return 0
	case errors.As(r.err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("lvss %v: %v", r.cmd.Args, r.err)
	return 0
}

// errorLine is lvss's error line ("lvss: NAME (0x...): message"), the
// last one: its standard error also has the progress lines.
func (r *run) errorLine() string {
	var last string
	for _, l := range strings.Split(r.stderr.String(), "\n") {
		if strings.HasPrefix(l, "lvss: ") {
			last = l
		}
	}
	return last
}

// cluster runs lvss cluster VERB ARGS on the requester host to its end.
func (w *world) cluster(t testing.TB, verb string, args ...string) (int, string, string) {
	t.Helper()
	r := w.start(t, verb, args...)
	code := r.wait(t)
	return code, r.stdout.String(), r.stderr.String()
}

// waitRegistered waits until every host is registered in etcd (what lvss
// cluster status lists), each by the lvssd running now, not by an earlier,
// killed one whose registration lasts until its lease ends.
func (w *world) waitRegistered(t testing.TB) {
	t.Helper()
	testenv.Eventually(t, settle, "hosts "+strings.Join(w.names(), ", ")+" registered", func() bool {
		ctx, cancel := cluster.Op(context.Background())
		defer cancel()
		resp, err := w.cli.Get(ctx, w.keys.HostsPrefix(), clientv3.WithPrefix())
		if err != nil {
			return false
		}
		started := map[string]time.Time{}
		for _, kv := range resp.Kvs {
			var hi cluster.HostInfo
			if cluster.Decode(string(kv.Key), kv.Value, &hi) == nil {
				started[hi.Host] = hi.Started
			}
		}
		for _, h := range w.hosts {
			if at, ok := started[h.Name]; !ok || at.Before(h.started) {
				return false
			}
		}
		return true
	})
}

// sets is what etcd holds of cluster sets (what lvss cluster list shows).
func (w *world) sets(t testing.TB) []cluster.SetSummary {
	t.Helper()
	var out []cluster.SetSummary
	testenv.Eventually(t, settle, "etcd to list the cluster sets", func() bool {
		var err error
		out, err = cluster.ListSets(context.Background(), w.cli, w.keys)
		return err == nil
	})
	return out
}

// hookLine is one line of the hooks' log.
type hookLine struct {
	at               time.Time
	host, event, set string
	selfRaised       bool
}

// hookCommand is the exec writer's hook for every event: a line in the
// log.
func hookCommand(log, hostName string) string {
	return `echo "$(date +%s.%N) ` + hostName + ` $LVSS_EVENT $LVSS_SNAPSHOT_SET_ID $LVSS_SELF_RAISED" >> ` + log
}

// hookMark is where the hooks' log ends now.
func (w *world) hookMark() int64 {
	st, err := os.Stat(w.hooks)
	if err != nil {
		return 0
	}
	return st.Size()
}

// hookLines reads the hooks' log from a mark on.
func (w *world) hookLines(t testing.TB, from int64) []hookLine {
	t.Helper()
	f, err := os.Open(w.hooks)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(from, 0); err != nil {
		t.Fatal(err)
	}
	var out []hookLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 {
			continue // a line being written
		}
		sec, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			continue
		}
		l := hookLine{at: time.Unix(0, int64(sec*1e9)), host: fs[1], event: fs[2], set: fs[3]}
		l.selfRaised = len(fs) > 4 && fs[4] == "1"
		out = append(out, l)
	}
	return out
}

// holding says whether a host's writer is still held by a set in lines:
// the last of its prepare-snapshot, freeze, thaw and abort is not a thaw
// or an abort. A writer that took part in nothing holds nothing.
func holding(lines []hookLine, hostName string) (bool, string) {
	last := ""
	for _, l := range lines {
		if l.host != hostName {
			continue
		}
		switch l.event {
		case "prepare-snapshot", "freeze", "thaw", "abort":
			last = l.event
		}
	}
	return last == "prepare-snapshot" || last == "freeze", last
}

// hostState is what a host's lvssd shows of its sessions and snapshots.
type hostState struct {
	sessions  int
	lock      bool
	frozen    int
	snapshots map[uuid.UUID]uuid.UUID // snapshot → set
}

func (s hostState) idle() bool { return s.sessions == 0 && !s.lock && s.frozen == 0 }

// state asks the host's lvssd (its Go client over the socket, lvss
// status's and lvss list shadows' calls).
func (h *host) state(ctx context.Context) (hostState, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, h.d.Socket)
	if err != nil {
		return hostState{}, err
	}
	defer conn.Close()
	st, err := conn.Status(ctx, -1)
	if err != nil {
		return hostState{}, err
	}
	snaps, err := conn.ListShadows(ctx, uuid.Nil, "")
	if err != nil {
		return hostState{}, err
	}
	hs := hostState{sessions: len(st.Sessions), lock: st.CreationLock != nil, frozen: len(st.Frozen), snapshots: map[uuid.UUID]uuid.UUID{}}
	for _, s := range snaps {
		hs.snapshots[s.SnapshotID] = s.SnapshotSetID
	}
	return hs, nil
}

// statusJSON is lvss status --json on the host: what an operator would
// look at.
func (h *host) statusJSON(t testing.TB) (sessions int, lock bool, frozen int) {
	t.Helper()
	r := h.d.Lvss(t, "", "status", "--json", "--errors", "0")
	if r.Code != 0 {
		t.Fatalf("lvss status on %s: exit %d\n%s", h.Name, r.Code, r.Stderr)
	}
	var st struct {
		Sessions     []json.RawMessage `json:"sessions"`
		CreationLock json.RawMessage   `json:"creation_lock"`
		Frozen       []json.RawMessage `json:"frozen"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("lvss status --json on %s: %v\n%s", h.Name, err, r.Stdout)
	}
	return len(st.Sessions), len(st.CreationLock) > 0 && string(st.CreationLock) != "null", len(st.Frozen)
}

// quiet checks that nothing of a set is left on the host, as an operator
// would see it: no session or creation lock (lvss status), no filesystem
// frozen (lvss status and the kernel), no snapshot.
func (h *host) quiet(t testing.TB) {
	t.Helper()
	if sessions, lock, frozen := h.statusJSON(t); sessions != 0 || lock || frozen != 0 {
		t.Fatalf("%s: lvss status shows %d session(s), creation lock %v, %d frozen filesystem(s)", h.Name, sessions, lock, frozen)
	}
	if frozen, err := h.fs.Frozen(); err != nil || frozen {
		t.Fatalf("%s: its filesystem is frozen (%v)", h.Name, err)
	}
	st, err := h.state(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.snapshots) != 0 {
		t.Fatalf("%s keeps snapshots %v", h.Name, st.snapshots)
	}
}
