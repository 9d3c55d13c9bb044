package main

import (
	"context"
	"log/slog"

	"github.com/lvss/lvss/internal/cluster"
	"github.com/lvss/lvss/internal/cluster/agent"
	"github.com/lvss/lvss/internal/config"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/version"
)

// startCluster runs the host's cluster agent when [cluster] names a host
// (docs/cluster.md). It does not wait for etcd: lvssd serves local
// backups at once, and the agent keeps trying to reach etcd. The returned
// stop ends the agent and waits for it.
func startCluster(ctx context.Context, c config.Cluster, coord *coordinator.Coordinator, log *slog.Logger) (stop func(), err error) {
	if c.Host == "" {
		return func() {}, nil
	}
	keys, err := cluster.NewKeys(c.Prefix)
	if err != nil {
		return nil, err
	}
	a, err := agent.New(agent.Options{
		Conn:     cluster.Conn{Endpoints: c.Endpoints, CACert: c.CACert, Cert: c.Cert, Key: c.Key},
		Keys:     keys,
		Host:     c.Host,
		Version:  version.Get().String(),
		LeaseTTL: c.LeaseTTL.D(),
		Coord:    coord,
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.Run(actx) }()
	log.Info("cluster host", "host", c.Host, "endpoints", c.Endpoints, "prefix", c.Prefix)
	return func() { cancel(); <-done }, nil
}
