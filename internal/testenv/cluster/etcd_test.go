package cluster_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/cluster"
)

// TestEtcdClientAgainstDebianEtcd: the Go client lvss uses
// (go.etcd.io/etcd/client/v3, go.mod's version) does everything the
// cluster protocol needs against Debian's etcd 3.4 server, across hosts:
// KV, Txn, Lease with KeepAlive, Watch.
func TestEtcdClientAgainstDebianEtcd(t *testing.T) {
	nw := cluster.NewNetwork(t, 3)
	e := cluster.StartEtcd(t, nw.Hosts, cluster.EtcdOptions{})
	checkClient(t, e, e.ClientOn(t, nw.Hosts[0]))
}

// TestEtcdTLS: a cluster whose clients and peers speak TLS with client
// certificates of a throwaway CA: the harness's client works, one without
// a certificate is refused.
func TestEtcdTLS(t *testing.T) {
	nw := cluster.NewNetwork(t, 3)
	e := cluster.StartEtcd(t, nw.Hosts, cluster.EtcdOptions{TLS: true})
	for _, ep := range e.Endpoints() {
		if !strings.HasPrefix(ep, "https://") {
			t.Fatalf("endpoint %s of a TLS cluster", ep)
		}
	}
	checkClient(t, e, e.ClientOn(t, nw.Hosts[0]))

	// The same CA trusted, no certificate of the client's: the member
	// ends the handshake with TLS's "certificate required" (1.3) or "bad
	// certificate" (1.2).
	for _, m := range e.Members {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := m.Host.DialContext(ctx, "tcp", strings.TrimPrefix(m.ClientURL, "https://"))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(e.CA.Cert)
		tc := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: m.Host.Addr.String(), NextProtos: []string{"h2"}})
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Read(make([]byte, 1))
		}
		tc.Close()
		t.Logf("%s, to a client without a certificate: %v", m.Name, err)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s, to a client without a certificate: %v, want a TLS alert about its certificate", m.Name, err)
		}
	}
	// The files etcdctl (or lvssd's config) would use work too.
	if _, err := exec.LookPath("etcdctl"); err != nil {
		testenv.Missing(t, "etcdctl (apt-get install etcd-client)")
	}
	out, err := nw.Hosts[2].Run(context.Background(), "etcdctl", "--endpoints", strings.Join(e.Endpoints(), ","),
		"--cacert", e.CA.File, "--cert", e.ClientCert.File, "--key", e.ClientCert.KeyFile, "get", "lvss/check/kv")
	if err != nil || !strings.Contains(out, "lvss/check/kv") {
		t.Fatalf("etcdctl with the client certificate's files: %v\n%s", err, out)
	}
}

// checkClient runs every kind of call the cluster mode relies on.
func checkClient(t *testing.T, e *cluster.Etcd, c *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Status(ctx, e.Members[0].ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.Version, "3.4.") {
		t.Logf("etcd server version %s (Debian bookworm's is 3.4)", st.Version)
	}
	t.Logf("etcd server %s, cluster %x", st.Version, st.Header.ClusterId)

	// KV.
	if _, err := c.Put(ctx, "lvss/check/kv", "1"); err != nil {
		t.Fatalf("put: %v", err)
	}
	if _, err := c.Put(ctx, "lvss/check/kv2", "2"); err != nil {
		t.Fatalf("put: %v", err)
	}
	g, err := c.Get(ctx, "lvss/check/", clientv3.WithPrefix())
	if err != nil || len(g.Kvs) != 2 || string(g.Kvs[0].Value) != "1" {
		t.Fatalf("get prefix: %v %v", g, err)
	}
	if d, err := c.Delete(ctx, "lvss/check/kv2"); err != nil || d.Deleted != 1 {
		t.Fatalf("delete: %v %v", d, err)
	}

	// Txn: create-if-absent, then the same again fails and reads.
	absent := clientv3.Compare(clientv3.CreateRevision("lvss/check/txn"), "=", 0)
	r, err := c.Txn(ctx).If(absent).Then(clientv3.OpPut("lvss/check/txn", "first")).Else(clientv3.OpGet("lvss/check/txn")).Commit()
	if err != nil || !r.Succeeded {
		t.Fatalf("txn on an absent key: %v %v", r, err)
	}
	r, err = c.Txn(ctx).If(absent).Then(clientv3.OpPut("lvss/check/txn", "second")).Else(clientv3.OpGet("lvss/check/txn")).Commit()
	if err != nil || r.Succeeded || string(r.Responses[0].GetResponseRange().Kvs[0].Value) != "first" {
		t.Fatalf("txn on a present key: %v %v", r, err)
	}

	// Watch from now: a put and a delete.
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	wch := c.Watch(wctx, "lvss/check/w/", clientv3.WithPrefix(), clientv3.WithRev(g.Header.Revision+1))

	// Lease with KeepAlive: the key lives on with the lease, goes with
	// its revocation.
	lease, err := c.Grant(ctx, 5)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if _, err := c.Put(ctx, "lvss/check/w/leased", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatalf("put with lease: %v", err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	ka, err := c.KeepAlive(kctx, lease.ID)
	if err != nil {
		t.Fatalf("keepalive: %v", err)
	}
	for i := 0; i < 2; i++ {
		select {
		case resp, ok := <-ka:
			if !ok || resp.TTL <= 0 {
				t.Fatalf("keepalive response %d: %v (open %v)", i, resp, ok)
			}
		case <-ctx.Done():
			t.Fatal("no keepalive responses")
		}
	}
	kcancel()
	ttl, err := c.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil || len(ttl.Keys) != 1 || ttl.TTL <= 0 {
		t.Fatalf("time to live: %v %v", ttl, err)
	}
	if _, err := c.Revoke(ctx, lease.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	var events []string
	for len(events) < 2 {
		select {
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				t.Fatalf("watch ended: %v", wr.Err())
			}
			for _, ev := range wr.Events {
				events = append(events, ev.Type.String()+" "+string(ev.Kv.Key))
			}
		case <-ctx.Done():
			t.Fatalf("watch saw %v, want the put and the delete", events)
		}
	}
	if events[0] != "PUT lvss/check/w/leased" || events[1] != "DELETE lvss/check/w/leased" {
		t.Fatalf("watch saw %v", events)
	}
}
