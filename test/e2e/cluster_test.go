package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// localEtcd is one etcd member on loopback ports: the cluster protocol
// over a real etcd, without namespaces (the many-host tests run members in
// namespaces of their own).
type localEtcd struct {
	t        *testing.T
	endpoint string
	bin      string
	args     []string
	log      string
	cmd      *exec.Cmd
	exited   chan struct{}
}

func startLocalEtcd(t *testing.T) *localEtcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		testenv.Missing(t, "etcd (apt-get install etcd-server)")
	}
	dir := t.TempDir()
	free := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", free()), fmt.Sprintf("http://127.0.0.1:%d", free())
	e := &localEtcd{t: t, endpoint: client, bin: bin, log: filepath.Join(dir, "etcd.log"),
		args: []string{"--name", "m1", "--data-dir", filepath.Join(dir, "data"),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", "m1=" + peer, "--initial-cluster-token", filepath.Base(dir), "--initial-cluster-state", "new"}}
	t.Cleanup(func() {
		e.kill()
		if t.Failed() {
			b, _ := os.ReadFile(e.log)
			t.Logf("--- etcd log:\n%s", b)
		}
	})
	e.start()
	return e
}

// start runs the member (again, on the same data and ports) and waits
// until it answers.
func (e *localEtcd) start() {
	t := e.t
	t.Helper()
	log, err := os.OpenFile(e.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	e.cmd = exec.Command(e.bin, e.args...)
	e.cmd.Stdout, e.cmd.Stderr = log, log
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(e.cmd, e.exited)
	eventually(t, 30*time.Second, "etcd to answer", func() bool {
		out, err := exec.Command("etcdctl", "--endpoints", e.endpoint, "endpoint", "health").CombinedOutput()
		return err == nil && strings.Contains(string(out), "is healthy")
	})
}

// kill ends the member at once (SIGKILL); it is idempotent.
func (e *localEtcd) kill() {
	if e.cmd == nil {
		return
	}
	_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	<-e.exited
	e.cmd = nil
}

// clusterHost is one host's lvssd with [cluster], on a btrfs volume of its
// own.
type clusterHost struct {
	name string
	d    *daemon
	vol  string
}

func startClusterHost(t *testing.T, name, endpoint string) *clusterHost {
	t.Helper()
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	vol := filepath.Join(fs.Mount, "vol")
	if out, err := exec.Command("btrfs", "subvolume", "create", vol).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v\n%s", err, out)
	}
	cfg := shortTimeouts + fmt.Sprintf("\n[cluster]\nhost = %q\nendpoints = [%q]\nlease_ttl = \"2s\"\n", name, endpoint)
	return &clusterHost{name: name, d: startDaemon(t, cfg), vol: vol}
}

// lvssCluster runs lvss cluster VERB with --etcd.
func lvssCluster(t *testing.T, h *clusterHost, endpoint string, args ...string) lvssdtest.Result {
	t.Helper()
	return lvssdtest.Lvss(t, h.d.socket, "", append([]string{"cluster", "--etcd", endpoint}, args...)...)
}

// waitRegistered waits until lvss cluster status lists the hosts.
func waitRegistered(t *testing.T, h *clusterHost, endpoint string, names ...string) {
	t.Helper()
	eventually(t, 20*time.Second, "hosts "+strings.Join(names, ", ")+" registered", func() bool {
		r := lvssCluster(t, h, endpoint, "status", "--json")
		var st struct {
			Hosts []struct {
				Host string `json:"host"`
			} `json:"hosts"`
		}
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &st) != nil {
			return false
		}
		var got []string
		for _, h := range st.Hosts {
			got = append(got, h.Host)
		}
		for _, n := range names {
			if !slices.Contains(got, n) {
				return false
			}
		}
		return true
	})
}

// hookWriter starts an exec writer on a host whose hooks append
// "HOST EVENT" to log; extra are more lvss-writer flags.
func hookWriter(t *testing.T, h *clusterHost, name, log string, extra ...string) {
	t.Helper()
	data := filepath.Join(h.vol, name)
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--socket", h.d.socket, "exec", "--name", name, "--component", "data=" + data, "--tmpdir", "/dev/shm"}
	for _, ev := range []string{"prepare-snapshot", "freeze", "thaw", "abort", "backup-complete"} {
		args = append(args, "--on-"+ev, "echo "+h.name+" "+ev+" >> "+log)
	}
	start(t, h.d.dir, "lvss-writer "+h.name+" "+name, append(args, extra...)...)
}

// twoClusterHosts starts a local etcd and two hosts' lvssd (host-a,
// host-b), and waits until both are registered.
func twoClusterHosts(t *testing.T) (*localEtcd, *clusterHost, *clusterHost) {
	t.Helper()
	e := startLocalEtcd(t)
	a, b := startClusterHost(t, "host-a", e.endpoint), startClusterHost(t, "host-b", e.endpoint)
	waitRegistered(t, a, e.endpoint, "host-a", "host-b")
	return e, a, b
}

// hookWriters starts hookWriter wa on a and wb on b (with bExtra, more
// flags for b's), logging to hooks, and waits until both are subscribed.
func hookWriters(t *testing.T, a, b *clusterHost, hooks string, bExtra ...string) {
	t.Helper()
	hookWriter(t, a, "wa", hooks)
	hookWriter(t, b, "wb", hooks, bExtra...)
	a.d.waitWriters(t, 1)
	b.d.waitWriters(t, 1)
}

func readLines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// shadowsOf lists a host's snapshots: set ID per snapshot ID.
func shadowsOf(t *testing.T, h *clusterHost) map[string]string {
	t.Helper()
	r := lvssdtest.Lvss(t, h.d.socket, "", "list", "shadows", "--json")
	if r.Code != 0 {
		t.Fatalf("lvss list shadows on %s: exit %d\n%s", h.name, r.Code, r.Stderr)
	}
	var out []struct {
		ID    string `json:"snapshot_id"`
		SetID string `json:"snapshot_set_id"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("lvss list shadows --json on %s: %v\n%s", h.name, err, r.Stdout)
	}
	m := map[string]string{}
	for _, s := range out {
		m[s.ID] = s.SetID
	}
	return m
}

// TestClusterBackupTwoHosts: two hosts' lvssd (each on its own btrfs) and
// a real etcd; lvss cluster backup makes one set with a snapshot on each
// host under the cluster set's ID, every writer of every host froze
// before any thawed, COMMAND ran once per host with that host's
// snapshots, and the set is application-consistent.
func TestClusterBackupTwoHosts(t *testing.T) {
	testenv.SkipIfShort(t, "starts etcd and two lvssd")
	e, a, b := twoClusterHosts(t)
	hooks := filepath.Join(t.TempDir(), "hooks.log")
	hookWriters(t, a, b, hooks)

	ran := filepath.Join(t.TempDir(), "ran.log")
	r := lvssCluster(t, a, e.endpoint, "backup", "--json", "--persistent", "--for", "host-a:"+a.vol, "--for", "host-b:"+b.vol,
		"--", "sh", "-c", `echo "$LVSS_HOST $LVSS_SNAPSHOT_SET_ID $LVSS_SNAPSHOT_COUNT $LVSS_SNAPSHOT_1_ORIGINAL $LVSS_SNAPSHOT_1_PATH" >> `+ran)
	if r.Code != 0 {
		t.Fatalf("lvss cluster backup: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	var res struct {
		SetID       string `json:"snapshot_set_id"`
		Consistency string `json:"consistency"`
		Hosts       map[string]struct {
			Consistency string `json:"consistency"`
			Snapshots   []struct {
				ID, Original, Path string
			} `json:"snapshots"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("output: %v\n%s", err, r.Stdout)
	}
	if res.Consistency != "application" || len(res.Hosts) != 2 {
		t.Fatalf("set %+v, want application-consistent over two hosts", res)
	}
	for _, h := range []*clusterHost{a, b} {
		part := res.Hosts[h.name]
		if len(part.Snapshots) != 1 || part.Snapshots[0].Original != h.vol || part.Consistency != "application" {
			t.Fatalf("%s's part: %+v", h.name, part)
		}
		if got := shadowsOf(t, h); got[part.Snapshots[0].ID] != res.SetID {
			t.Fatalf("%s keeps %v, want snapshot %s in set %s", h.name, got, part.Snapshots[0].ID, res.SetID)
		}
	}

	// Every Freeze before any Thaw, across hosts.
	lines := readLines(hooks)
	lastFreeze, firstThaw := -1, len(lines)
	for i, l := range lines {
		if strings.HasSuffix(l, " freeze") {
			lastFreeze = i
		}
		if strings.HasSuffix(l, " thaw") && i < firstThaw {
			firstThaw = i
		}
	}
	if lastFreeze < 0 || lastFreeze > firstThaw || !slices.Contains(lines, "host-a freeze") || !slices.Contains(lines, "host-b freeze") {
		t.Fatalf("hooks ran %v: want both hosts' freeze before any thaw", lines)
	}
	if !slices.Contains(lines, "host-a backup-complete") || !slices.Contains(lines, "host-b backup-complete") {
		t.Fatalf("hooks ran %v: want BackupComplete on both hosts", lines)
	}
	got := readLines(ran)
	want := []string{
		fmt.Sprintf("host-a %s 1 %s %s", res.SetID, a.vol, res.Hosts["host-a"].Snapshots[0].Path),
		fmt.Sprintf("host-b %s 1 %s %s", res.SetID, b.vol, res.Hosts["host-b"].Snapshots[0].Path),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("COMMAND ran with\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The kept set is listed with both hosts' parts, and deleting it
	// deletes them on both hosts.
	sets := clusterSets(t, a, e.endpoint)
	if len(sets) != 1 || sets[0].ID != res.SetID || sets[0].State != "kept" || sets[0].Consistency != "application" ||
		len(sets[0].Hosts["host-a"].Snapshots) != 1 || len(sets[0].Hosts["host-b"].Snapshots) != 1 {
		t.Fatalf("lvss cluster list: %+v", sets)
	}
	if r := lvssCluster(t, a, e.endpoint, "delete", res.SetID); r.Code != 0 || !strings.Contains(r.Stdout, "host-a, host-b") {
		t.Fatalf("lvss cluster delete: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, h := range []*clusterHost{a, b} {
		if got := shadowsOf(t, h); len(got) != 0 {
			t.Fatalf("%s keeps %v after lvss cluster delete", h.name, got)
		}
	}
	if sets := clusterSets(t, a, e.endpoint); len(sets) != 0 {
		t.Fatalf("lvss cluster list after delete: %+v", sets)
	}
}

type clusterSet struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	Consistency string `json:"consistency"`
	Hosts       map[string]struct {
		Snapshots []struct {
			ID string `json:"id"`
		} `json:"snapshots"`
	} `json:"hosts"`
	Abort *struct {
		By    string `json:"by"`
		Point string `json:"point"`
	} `json:"abort"`
}

// clusterSets is lvss cluster list --json.
func clusterSets(t *testing.T, h *clusterHost, endpoint string) []clusterSet {
	t.Helper()
	r := lvssCluster(t, h, endpoint, "list", "--json")
	var out struct {
		Sets []clusterSet `json:"sets"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil {
		t.Fatalf("lvss cluster list --json: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	return out.Sets
}

// TestClusterBackupAbortsEverywhere: a writer of one host vetoing its
// Freeze aborts the set on every host: the command fails naming the host
// and the writer, the other host's writer gets Abort (nothing stays
// frozen), and no host keeps a snapshot. A host that is not registered is
// refused before anything is written.
func TestClusterBackupAbortsEverywhere(t *testing.T) {
	testenv.SkipIfShort(t, "starts etcd and two lvssd")
	e, a, b := twoClusterHosts(t)
	hooks := filepath.Join(t.TempDir(), "hooks.log")
	hookWriters(t, a, b, hooks, "--on-freeze", "exit 1")

	r := lvssCluster(t, a, e.endpoint, "backup", "--for", "host-a:"+a.vol, "--for", "host-b:"+b.vol, "--", "true")
	if r.Code != 1 || !strings.Contains(r.Stderr, "host-b") || !strings.Contains(r.Stderr, "wb") {
		t.Fatalf("a vetoed cluster set: exit %d, want 1 naming host-b and wb\n%s", r.Code, r.Stderr)
	}
	eventually(t, 20*time.Second, "host-a's writer to get Abort", func() bool { return slices.Contains(readLines(hooks), "host-a abort") })
	for _, h := range []*clusterHost{a, b} {
		eventually(t, 20*time.Second, h.name+" to keep no snapshot", func() bool { return len(shadowsOf(t, h)) == 0 })
	}
	if slices.Contains(readLines(hooks), "host-a thaw") {
		// No host thaws before every host has committed: host-b never
		// froze, so host-a's writer ends with Abort, not Thaw.
		t.Fatalf("host-a's writer was thawed in a set host-b vetoed: %v", readLines(hooks))
	}

	// The aborted set is listed with its cause, and deleting it removes it.
	sets := clusterSets(t, a, e.endpoint)
	if len(sets) != 1 || sets[0].State != "aborted" || sets[0].Abort == nil || sets[0].Abort.By != "host-b" || sets[0].Abort.Point != "frozen" {
		t.Fatalf("lvss cluster list after the abort: %+v", sets)
	}
	if r := lvssCluster(t, a, e.endpoint, "delete", sets[0].ID); r.Code != 0 {
		t.Fatalf("lvss cluster delete of the aborted set: exit %d\n%s", r.Code, r.Stderr)
	}
	if sets := clusterSets(t, a, e.endpoint); len(sets) != 0 {
		t.Fatalf("lvss cluster list after delete: %+v", sets)
	}

	r = lvssCluster(t, a, e.endpoint, "backup", "--for", "host-a:"+a.vol, "--for", "nowhere:/srv")
	if r.Code != 1 || !strings.Contains(r.Stderr, "VSS_E_OBJECT_NOT_FOUND") || !strings.Contains(r.Stderr, "nowhere") ||
		!strings.Contains(r.Stderr, "hint:") {
		t.Fatalf("an unregistered host: exit %d\n%s", r.Code, r.Stderr)
	}
}

// TestClusterRequesterDeath: the requester SIGKILLed while one host's
// writer is still preparing: its lease ends, the job vanishes, and both
// hosts abort (writers get Abort, nothing is kept); the next cluster
// backup works.
func TestClusterRequesterDeath(t *testing.T) {
	testenv.SkipIfShort(t, "starts etcd and two lvssd")
	e, a, b := twoClusterHosts(t)
	hooks := filepath.Join(t.TempDir(), "hooks.log")
	slow := filepath.Join(t.TempDir(), "slow")
	// host-b's writer prepares slowly the first time only.
	hookWriters(t, a, b, hooks, "--on-prepare-snapshot", "echo host-b prepare-snapshot >> "+hooks+"; if [ ! -e "+slow+" ]; then touch "+slow+"; sleep 3; fi")

	cmd := exec.Command(lvssdtest.Bin(t, "lvss"), "--socket", a.d.socket, "cluster", "--etcd", e.endpoint, "backup", "--lease-ttl", "2s",
		"--for", "host-a:"+a.vol, "--for", "host-b:"+b.vol, "--", "true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "host-b's writer to start preparing", func() bool { _, err := os.Stat(slow); return err == nil })
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	for _, h := range []string{"host-a", "host-b"} {
		eventually(t, 30*time.Second, h+"'s writer to get Abort", func() bool { return slices.Contains(readLines(hooks), h+" abort") })
	}
	for _, h := range []*clusterHost{a, b} {
		if got := shadowsOf(t, h); len(got) != 0 {
			t.Fatalf("%s keeps %v after its requester died", h.name, got)
		}
	}
	if lines := readLines(hooks); slices.Contains(lines, "host-a thaw") || slices.Contains(lines, "host-b thaw") {
		t.Fatalf("a writer was thawed in a set whose requester died before any froze: %v", lines)
	}
	if r := lvssCluster(t, a, e.endpoint, "backup", "--for", "host-a:"+a.vol, "--for", "host-b:"+b.vol, "--", "true"); r.Code != 0 {
		t.Fatalf("the next cluster backup: exit %d\n%s", r.Code, r.Stderr)
	}
}

// TestClusterEtcdLost: etcd killed while one host waits at a barrier for
// another whose writer is slow to freeze: neither host can go on, both
// abort under their own bounds (Abort to every writer, no Thaw, nothing
// kept), and once etcd is back the hosts register again and the next
// cluster backup works.
func TestClusterEtcdLost(t *testing.T) {
	testenv.SkipIfShort(t, "starts etcd and two lvssd")
	e, a, b := twoClusterHosts(t)
	hooks := filepath.Join(t.TempDir(), "hooks.log")
	slow := filepath.Join(t.TempDir(), "slow")
	hookWriters(t, a, b, hooks, "--on-freeze", "echo host-b freeze >> "+hooks+"; if [ ! -e "+slow+" ]; then touch "+slow+"; sleep 2; fi")

	cmd := exec.Command(lvssdtest.Bin(t, "lvss"), "--socket", a.d.socket, "cluster", "--etcd", e.endpoint, "backup",
		"--barrier-timeout", "4s", "--for", "host-a:"+a.vol, "--for", "host-b:"+b.vol, "--", "true")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "host-b's writer to start freezing", func() bool { _, err := os.Stat(slow); return err == nil })
	e.kill()
	err := cmd.Wait()
	if err == nil {
		t.Fatalf("lvss cluster backup succeeded with etcd killed mid-set:\n%s", out.String())
	}
	for _, h := range []string{"host-a", "host-b"} {
		eventually(t, 30*time.Second, h+"'s writer to get Abort", func() bool { return slices.Contains(readLines(hooks), h+" abort") })
	}
	if lines := readLines(hooks); slices.Contains(lines, "host-a thaw") || slices.Contains(lines, "host-b thaw") {
		t.Fatalf("a writer was thawed in a set cut off from etcd before every host froze: %v", lines)
	}
	for _, h := range []*clusterHost{a, b} {
		if got := shadowsOf(t, h); len(got) != 0 {
			t.Fatalf("%s keeps %v after losing etcd mid-set", h.name, got)
		}
	}

	e.start()
	waitRegistered(t, a, e.endpoint, "host-a", "host-b")
	if r := lvssCluster(t, a, e.endpoint, "backup", "--for", "host-a:"+a.vol, "--for", "host-b:"+b.vol, "--", "true"); r.Code != 0 {
		t.Fatalf("the cluster backup after etcd came back: exit %d\n%s", r.Code, r.Stderr)
	}
}
