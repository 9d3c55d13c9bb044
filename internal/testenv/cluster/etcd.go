package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// Each member listens on its host's address at etcd's usual ports: a host
// is a namespace of its own, so the ports are free there and never clash
// with another test's or the machine's.
const (
	etcdClientPort = 2379
	etcdPeerPort   = 2380
)

// etcdReadyTimeout bounds the wait for a cluster (or a restarted member)
// to be ready: a bound for a broken run, not a pace.
const etcdReadyTimeout = 45 * time.Second

// etcdCallTimeout bounds each call the harness makes to a member while it
// waits or looks: a member that does not answer within it is "not
// answering" now, and the wait goes on.
const etcdCallTimeout = 2 * time.Second

// EtcdOptions say how StartEtcd runs the members. The zero value runs
// them with etcd's defaults, without TLS.
type EtcdOptions struct {
	// TLS makes every URL https with client certificate authentication,
	// for clients and between peers, with certificates of a throwaway CA
	// (Etcd.CA).
	TLS bool
	// HeartbeatInterval and ElectionTimeout are etcd's
	// --heartbeat-interval and --election-timeout; zero: etcd's defaults
	// (100 ms and 1 s).
	HeartbeatInterval, ElectionTimeout time.Duration
	// Args are more flags for every member.
	Args []string
}

// Etcd is a real etcd cluster (Debian's etcd-server), one member per host.
type Etcd struct {
	Members []*Member
	// Token is the cluster's --initial-cluster-token, fresh for each
	// cluster.
	Token string
	// CA is the throwaway CA of a TLS cluster (nil without TLS): issue
	// more certificates with it (a config of lvssd's needs files).
	CA *CA
	// ClientCert is a client certificate of CA's, for what needs files
	// (etcdctl, lvssd's config); nil without TLS.
	ClientCert *Cert

	net  *Network
	opts EtcdOptions
	dir  string
	tls  *tls.Config // the harness's own clients'
}

// Member is one etcd member: the etcd process on its host.
type Member struct {
	// Name is its --name (m0, m1, ...: its index in Etcd.Members).
	Name string
	Host *Host
	// ID is its member ID, as etcd reports it.
	ID uint64
	// ClientURL and PeerURL are on its host's address.
	ClientURL, PeerURL string
	DataDir            string
	// Proc is the running etcd (the latest, after a Restart).
	Proc *lvssdtest.Proc

	e     *Etcd
	args  []string
	probe *clientv3.Client // the harness's client of this member alone
}

// StartEtcd starts one member on each of hosts (each host at most once),
// waits until the cluster is healthy (every member answers, all agree on
// a leader, and a linearizable read through each succeeds) and returns
// it. Cleanup kills the members (SIGKILL), closes every
// client the harness made and removes their data with the network's dir;
// a member's output is shown when the test fails. A missing etcd is
// testenv.Missing.
func StartEtcd(t testing.TB, hosts []*Host, opts EtcdOptions) *Etcd {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		testenv.Missing(t, "etcd (apt-get install etcd-server etcd-client)")
	}
	if len(hosts) == 0 {
		t.Fatal("cluster.StartEtcd: no hosts")
	}
	nw := hosts[0].net
	dir, err := os.MkdirTemp(nw.Dir, "etcd-")
	if err != nil {
		t.Fatal(err)
	}
	e := &Etcd{net: nw, opts: opts, dir: dir, Token: "lvss-test-" + randomHex(t, 8)}
	scheme := "http"
	if opts.TLS {
		scheme = "https"
		e.CA = NewCA(t, dir)
		c := e.CA.Issue(t, "client")
		e.ClientCert = &c
		e.tls = e.CA.ClientTLS(t, "harness")
	}
	var initial []string
	seen := map[*Host]bool{}
	for i, h := range hosts {
		if h.net != nw {
			t.Fatalf("cluster.StartEtcd: %s is of another network", h.Name)
		}
		if seen[h] {
			t.Fatalf("cluster.StartEtcd: two members on %s", h.Name)
		}
		seen[h] = true
		m := &Member{Name: "m" + strconv.Itoa(i), Host: h, e: e,
			ClientURL: fmt.Sprintf("%s://%s:%d", scheme, h.Addr, etcdClientPort),
			PeerURL:   fmt.Sprintf("%s://%s:%d", scheme, h.Addr, etcdPeerPort)}
		m.DataDir = filepath.Join(dir, m.Name)
		e.Members = append(e.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	for _, m := range e.Members {
		m.args = []string{
			"--name", m.Name,
			"--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", e.Token,
			"--logger", "zap", "--log-outputs", "stderr",
		}
		if opts.HeartbeatInterval > 0 {
			m.args = append(m.args, "--heartbeat-interval", strconv.FormatInt(opts.HeartbeatInterval.Milliseconds(), 10))
		}
		if opts.ElectionTimeout > 0 {
			m.args = append(m.args, "--election-timeout", strconv.FormatInt(opts.ElectionTimeout.Milliseconds(), 10))
		}
		if opts.TLS {
			c := e.CA.Issue(t, m.Name, m.Host.Addr)
			m.args = append(m.args,
				"--cert-file", c.File, "--key-file", c.KeyFile, "--trusted-ca-file", e.CA.File, "--client-cert-auth",
				"--peer-cert-file", c.File, "--peer-key-file", c.KeyFile, "--peer-trusted-ca-file", e.CA.File, "--peer-client-cert-auth")
		}
		m.args = append(m.args, opts.Args...)
	}
	start := time.Now()
	for _, m := range e.Members {
		m.start(t)
	}
	for _, m := range e.Members {
		m.probe = e.newClient(t, []string{m.ClientURL}, m.Host.DialContext)
	}
	e.WaitHealthy(t)
	for _, m := range e.Members {
		ctx, cancel := context.WithTimeout(context.Background(), etcdCallTimeout)
		st, err := m.probe.Status(ctx, m.ClientURL)
		cancel()
		if err != nil {
			t.Fatalf("etcd %s: status: %v", m.Name, err)
		}
		m.ID = st.Header.MemberId
	}
	t.Logf("cluster: etcd of %d members (%s) healthy %s after start", len(e.Members), scheme, time.Since(start).Round(time.Millisecond))
	return e
}

// start runs the member's etcd on its host, with an environment without
// ETCD_* variables (etcd reads its flags from them too).
func (m *Member) start(t testing.TB) {
	t.Helper()
	cmd := m.Host.Command(context.Background(), "etcd", m.args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	p := lvssdtest.Start(t, m.Host.Dir, "etcd-"+m.Name, cmd)
	m.Proc = p
	// SIGKILL at the end, before lvssdtest's SIGTERM (cleanups run last
	// first): the data is thrown away, and a member told to stop tries to
	// hand over its leadership first, which takes seconds while its peers
	// stop too.
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.Cmd.Process.Kill()
			<-p.Done()
		}
	})
}

// Endpoints are the members' client URLs.
func (e *Etcd) Endpoints() []string {
	var eps []string
	for _, m := range e.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Member returns the member whose ID is id, nil if none is.
func (e *Etcd) Member(id uint64) *Member {
	for _, m := range e.Members {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// Client is a client of every member, each reached from inside its own
// host (Network.DialContext): a client beside every member at once,
// which no partition cuts off. Tests use it to act on and look at the
// cluster as a whole. Cleanup closes it.
func (e *Etcd) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return e.newClient(t, e.Endpoints(), e.net.DialContext)
}

// ClientOn is a client of every member as a process on h has: reached
// from inside h, so that a partition of h leaves it only h's own member
// (if h has one). Cleanup closes it.
func (e *Etcd) ClientOn(t testing.TB, h *Host) *clientv3.Client {
	t.Helper()
	return e.newClient(t, e.Endpoints(), h.DialContext)
}

// ClientOf is a client of the given members only, each reached from
// inside its own host: the view of a client that knows those members (a
// majority, say) and no others. Cleanup closes it.
func (e *Etcd) ClientOf(t testing.TB, members ...*Member) *clientv3.Client {
	t.Helper()
	var eps []string
	for _, m := range members {
		eps = append(eps, m.ClientURL)
	}
	return e.newClient(t, eps, e.net.DialContext)
}

// Others are the members other than not.
func (e *Etcd) Others(not ...*Member) []*Member {
	var others []*Member
	for _, m := range e.Members {
		if !slices.Contains(not, m) {
			others = append(others, m)
		}
	}
	return others
}

// Client is a client of this member alone, from inside its host (so
// still reaching it when its host is partitioned). Cleanup closes it.
func (m *Member) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return m.e.newClient(t, []string{m.ClientURL}, m.Host.DialContext)
}

// Config is the client config of the harness's clients of endpoints,
// dialling through dial (Host.DialContext or Network.DialContext): the
// way to make a client with options of one's own. The caller closes what
// it makes.
func (e *Etcd) Config(endpoints []string, dial func(context.Context, string, string) (net.Conn, error)) clientv3.Config {
	return clientv3.Config{
		Endpoints: endpoints,
		TLS:       e.tls,
		// The client's gRPC connections are dialled inside the hosts'
		// namespaces (dial.go); clientv3 puts DialOptions last, so this
		// dialer is the one gRPC uses.
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		})},
		// etcd's client logs reconnection attempts at warn level, which a
		// test that kills members makes many of.
		Logger: zap.NewNop(),
	}
}

func (e *Etcd) newClient(t testing.TB, endpoints []string, dial func(context.Context, string, string) (net.Conn, error)) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(e.Config(endpoints, dial))
	if err != nil {
		t.Fatalf("etcd client of %v: %v", endpoints, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Kill ends the member's etcd with SIGKILL (no goodbye to its peers) and
// waits until it has exited.
func (m *Member) Kill(t testing.TB) {
	t.Helper()
	if m.Proc.Exited() {
		t.Fatalf("etcd %s has exited already: %v", m.Name, m.Proc.Wait())
	}
	if err := m.Proc.Cmd.Process.Kill(); err != nil {
		t.Fatalf("killing etcd %s: %v", m.Name, err)
	}
	<-m.Proc.Done()
}

// Restart starts the member's etcd again over its data dir (after Kill,
// or after it exited) and waits until it answers a status request; it
// does not wait for a leader (a member restarted without a quorum has
// none): WaitHealthy does.
func (m *Member) Restart(t testing.TB) {
	t.Helper()
	if !m.Proc.Exited() {
		t.Fatalf("etcd %s still runs: Kill it first", m.Name)
	}
	m.start(t)
	testenv.Eventually(t, etcdReadyTimeout, "etcd "+m.Name+" to answer after its restart", func() bool {
		if m.Proc.Exited() {
			t.Fatalf("etcd %s exited after its restart: %v\n%s", m.Name, m.Proc.Wait(), m.Proc.Output())
		}
		_, err := m.status()
		return err == nil
	})
}

// Running reports whether the member's etcd runs.
func (m *Member) Running() bool { return !m.Proc.Exited() }

// status asks the member for its status, bounded by etcdCallTimeout.
func (m *Member) status() (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), etcdCallTimeout)
	defer cancel()
	return m.probe.Status(ctx, m.ClientURL)
}

// Status is the member's own view: its ID, the leader it knows (0: none)
// and its raft term. An error means it did not answer within
// etcdCallTimeout.
func (m *Member) Status() (id, leader, term uint64, err error) {
	st, err := m.status()
	if err != nil {
		return 0, 0, 0, err
	}
	return st.Header.MemberId, st.Leader, st.RaftTerm, nil
}

// Leader is the member that leads now, nil if none does (LeaderOf all
// members).
func (e *Etcd) Leader() *Member { return e.LeaderOf(e.Members...) }

// LeaderOf is the member of members that leads now, nil if none does: of
// those running that answer, the one that reports itself the leader, the
// one of the highest term if more than one does (a leader cut off from
// the others believes it leads until its check of the quorum fails).
func (e *Etcd) LeaderOf(members ...*Member) *Member {
	var leader *Member
	var best uint64
	for _, m := range members {
		if !m.Running() {
			continue
		}
		id, l, term, err := m.Status()
		if err != nil || l == 0 || l != id {
			continue
		}
		if leader == nil || term > best {
			leader, best = m, term
		}
	}
	return leader
}

// WaitLeader waits until a member leads that is none of not (the old
// leaders), and returns it.
func (e *Etcd) WaitLeader(t testing.TB, not ...*Member) *Member {
	t.Helper()
	var leader *Member
	testenv.Eventually(t, etcdReadyTimeout, "an etcd leader", func() bool {
		leader = e.Leader()
		for _, n := range not {
			if leader == n {
				return false
			}
		}
		return leader != nil
	})
	return leader
}

// WaitHealthy waits until every running member answers, all of them name
// the same leader, and a linearizable read through each succeeds (it
// needs the quorum). Members not running when it is called (killed) are
// left out; one that exits during the wait fails t with its output.
func (e *Etcd) WaitHealthy(t testing.TB) {
	t.Helper()
	var running []*Member
	for _, m := range e.Members {
		if m.Running() {
			running = append(running, m)
		}
	}
	var why string
	end := time.Now().Add(etcdReadyTimeout)
	for {
		why = e.unhealthy(t, running)
		if why == "" {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("etcd not healthy within %s: %s", etcdReadyTimeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unhealthy says why members are not healthy yet, "" when they are.
func (e *Etcd) unhealthy(t testing.TB, members []*Member) string {
	t.Helper()
	var leader uint64
	for _, m := range members {
		if m.Proc.Exited() {
			t.Fatalf("etcd %s exited: %v\n%s", m.Name, m.Proc.Wait(), m.Proc.Output())
		}
		st, err := m.status()
		if err != nil {
			return fmt.Sprintf("%s: status: %v", m.Name, err)
		}
		switch {
		case st.Leader == 0:
			return m.Name + " knows no leader"
		case leader != 0 && st.Leader != leader:
			return fmt.Sprintf("%s names leader %x, another member %x", m.Name, st.Leader, leader)
		}
		leader = st.Leader
		ctx, cancel := context.WithTimeout(context.Background(), etcdCallTimeout)
		_, err = m.probe.Get(ctx, "lvss-test-health")
		cancel()
		if err != nil {
			return fmt.Sprintf("%s: linearizable read: %v", m.Name, err)
		}
	}
	return ""
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
