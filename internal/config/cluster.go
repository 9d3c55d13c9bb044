package config

import (
	"net/url"
	"time"

	"github.com/lvss/lvss/internal/cluster"
	"github.com/lvss/lvss/vsserr"
)

// Cluster makes this lvssd a host of cluster snapshot sets
// (docs/cluster.md): it registers the host in etcd and takes the jobs
// addressed to it. Off unless Host is set. Losing etcd never affects
// local backups.
type Cluster struct {
	// Host is this host's name in the cluster: 1 to 63 letters, digits,
	// '.', '_' or '-'.
	Host string `toml:"host"`
	// Endpoints are etcd's client URLs ("https://10.0.0.1:2379").
	Endpoints []string `toml:"endpoints"`
	// CACert, Cert and Key are PEM files: the CA of etcd's certificates,
	// and this host's client certificate and key.
	CACert string `toml:"ca_cert"`
	Cert   string `toml:"cert"`
	Key    string `toml:"key"`
	// Prefix is the key prefix lvss uses in etcd.
	Prefix string `toml:"prefix"`
	// LeaseTTL: the host's registration and its arrivals at barriers
	// vanish this long after it last reached etcd.
	LeaseTTL Duration `toml:"lease_ttl"`
}

func defaultCluster() Cluster {
	return Cluster{Endpoints: []string{}, Prefix: "/lvss", LeaseTTL: Duration(10 * time.Second)}
}

func checkCluster(c Cluster, doc *document) error {
	if c.Host == "" {
		return nil
	}
	if err := cluster.CheckHost(c.Host); err != nil {
		return doc.errorAt([]string{"cluster.host"}, "cluster.host: %s", vsserr.Message(err))
	}
	if len(c.Endpoints) == 0 {
		return doc.errorAt([]string{"cluster.endpoints", "cluster.host"}, "cluster.endpoints: a cluster host needs etcd's client URLs")
	}
	for _, e := range c.Endpoints {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return doc.errorAt([]string{"cluster.endpoints"}, "cluster.endpoints: %q is not an http:// or https:// URL", e)
		}
	}
	if (c.Cert == "") != (c.Key == "") {
		return doc.errorAt([]string{"cluster.cert", "cluster.key"}, "cluster.cert and cluster.key go together")
	}
	if _, err := cluster.NewKeys(c.Prefix); err != nil || c.Prefix == "" {
		return doc.errorAt([]string{"cluster.prefix"}, "cluster.prefix %q: want an absolute key path such as \"/lvss\", without a trailing slash", c.Prefix)
	}
	if time.Duration(c.LeaseTTL) < 2*time.Second {
		return doc.errorAt([]string{"cluster.lease_ttl"}, "cluster.lease_ttl %s: at least 2s (etcd's leases count in seconds)", time.Duration(c.LeaseTTL))
	}
	return nil
}
