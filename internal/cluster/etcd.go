package cluster

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/lvss/lvss/vsserr"
)

// Conn says how to reach etcd: lvssd's [cluster] section, or the
// requester's flags.
type Conn struct {
	Endpoints []string
	// CACert, Cert and Key are PEM files: the CA that signed etcd's
	// certificates, and this client's certificate and key (for etcd's
	// --client-cert-auth). With none set the connection is plain.
	CACert, Cert, Key string
	DialTimeout       time.Duration
}

// Unreachable is etcd not answering: the tools report it as lvssd
// unreachable is (exit 69), with a hint.
type Unreachable struct{ err error }

func (u *Unreachable) Error() string { return u.err.Error() }
func (u *Unreachable) Unwrap() error { return u.err }

// Hint says what to check.
func (u *Unreachable) Hint() string {
	return "check --etcd (or [cluster] endpoints) and the TLS files, and that a majority of etcd's members runs: etcdctl endpoint health"
}

// EtcdError is a failed etcd call, doing what.
func EtcdError(err error, what string) error {
	return &Unreachable{vsserr.Wrap(vsserr.Unexpected, err, "etcd: %s", what)}
}

// Connect opens a client and checks that the cluster answers (a
// linearizable read, which needs a leader).
func Connect(ctx context.Context, c Conn) (*clientv3.Client, error) {
	if len(c.Endpoints) == 0 {
		return nil, vsserr.New(vsserr.InvalidArg, "no etcd endpoint given")
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	cfg := clientv3.Config{Endpoints: c.Endpoints, DialTimeout: c.DialTimeout, Logger: zap.NewNop(), Context: ctx}
	if c.CACert != "" || c.Cert != "" || c.Key != "" {
		if (c.Cert == "") != (c.Key == "") {
			return nil, vsserr.New(vsserr.InvalidArg, "a client certificate needs its key, and a key its certificate")
		}
		info := transport.TLSInfo{TrustedCAFile: c.CACert, CertFile: c.Cert, KeyFile: c.Key}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, vsserr.Wrap(vsserr.InvalidArg, err, "etcd TLS files")
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, &Unreachable{vsserr.Wrap(vsserr.Unexpected, err, "etcd %v", c.Endpoints)}
	}
	cctx, cancel := context.WithTimeout(ctx, c.DialTimeout)
	defer cancel()
	if _, err := cli.Get(cctx, "/lvss-probe"); err != nil {
		cli.Close()
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &Unreachable{vsserr.Wrap(vsserr.Unexpected, err, "etcd %v does not answer", c.Endpoints)}
	}
	return cli, nil
}
