package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
	clusterenv "github.com/lvss/lvss/internal/testenv/cluster"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// TestClusterOverTLS: etcd on a host of its own with TLS and client
// certificates (a throwaway CA), lvssd on two other hosts configured with
// ca_cert, cert and key, and lvss cluster run from a fourth host with
// --cacert, --cert and --key: the hosts register and a cluster backup
// makes its set. Without the client certificate etcd refuses the
// requester: exit 69, etcd unreachable, with the hint.
func TestClusterOverTLS(t *testing.T) {
	testenv.SkipIfShort(t, "starts network namespaces, etcd and two lvssd")
	n := clusterenv.NewNetwork(t, 4)
	reqHost := n.Hosts[3]
	e := clusterenv.StartEtcd(t, n.Hosts[:1], clusterenv.EtcdOptions{TLS: true})
	endpoint := strings.Join(e.Endpoints(), ",")

	var hosts []*clusterenv.Lvssd
	for i, h := range n.Hosts[1:3] {
		cert := e.CA.Issue(t, fmt.Sprintf("lvssd-%d", i))
		cfg := shortTimeouts + fmt.Sprintf("\n[cluster]\nhost = %q\nendpoints = [%q]\nca_cert = %q\ncert = %q\nkey = %q\nlease_ttl = \"2s\"\n",
			h.Name, e.Endpoints()[0], e.CA.File, cert.File, cert.KeyFile)
		l := h.StartLvssd(t, clusterenv.LvssdOptions{Daemon: lvssdtest.DaemonOptions{Config: cfg}})
		if out, err := exec.Command("btrfs", "subvolume", "create", filepath.Join(l.FS.Mount, "vol")).CombinedOutput(); err != nil {
			t.Fatalf("btrfs subvolume create: %v\n%s", err, out)
		}
		hosts = append(hosts, l)
	}
	req := e.CA.Issue(t, "requester")
	lvss := func(args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := reqHost.Command(ctx, lvssdtest.Bin(t, "lvss"), append([]string{"cluster", "--etcd", endpoint}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		return code, string(out)
	}
	tlsFlags := []string{"--cacert", e.CA.File, "--cert", req.File, "--key", req.KeyFile}

	eventually(t, 30*time.Second, "both hosts registered over TLS", func() bool {
		code, out := lvss(append(tlsFlags, "status")...)
		return code == 0 && strings.Contains(out, hosts[0].Host.Name) && strings.Contains(out, hosts[1].Host.Name)
	})
	args := append([]string{}, tlsFlags...)
	args = append(args, "backup")
	for _, l := range hosts {
		args = append(args, "--for", l.Host.Name+":"+filepath.Join(l.FS.Mount, "vol"))
	}
	if code, out := lvss(append(args, "--", "true")...); code != 0 || !strings.Contains(out, "Cluster snapshot set") {
		t.Fatalf("lvss cluster backup over TLS: exit %d\n%s", code, out)
	}

	// Trusting etcd's CA but without a client certificate: refused.
	code, out := lvss("--cacert", e.CA.File, "--dial-timeout", "3s", "status")
	if code != 69 || !strings.Contains(out, "hint:") || !strings.Contains(out, "etcd") {
		t.Fatalf("lvss cluster status without a client certificate: exit %d, want 69 with a hint\n%s", code, out)
	}
}
