package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/lvss/lvss/internal/cluster"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/vss"
)

// Options configure a host's agent.
type Options struct {
	Conn    cluster.Conn
	Keys    cluster.Keys
	Host    string // this host's name in the cluster
	Version string // lvss's, published with the registration
	// LeaseTTL is the host's lease: its registration and its arrivals
	// vanish this long after it last reached etcd.
	LeaseTTL time.Duration
	Coord    *coordinator.Coordinator
	Logger   *slog.Logger
	// Retry is how long the agent waits before reconnecting to etcd.
	Retry time.Duration
}

// Agent runs a host's side of cluster snapshot sets inside lvssd.
type Agent struct {
	opt     Options
	log     *slog.Logger
	started time.Time

	mu    sync.Mutex
	parts map[uuid.UUID]context.CancelFunc // the parts running
	wg    sync.WaitGroup                   // the parts' goroutines
	// ended are the sets whose part this process ran and ended, oldest
	// first: a job of one of them found again (after etcd was lost and
	// came back) cannot be joined again, and is aborted.
	ended []uuid.UUID
}

// maxEnded bounds what the agent remembers of ended parts: far more sets
// than can be in progress at once.
const maxEnded = 1024

// New checks the options.
func New(opt Options) (*Agent, error) {
	if err := cluster.CheckHost(opt.Host); err != nil {
		return nil, err
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = 10 * time.Second
	}
	if opt.Retry <= 0 {
		opt.Retry = 2 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Agent{opt: opt, log: opt.Logger.With("cluster_host", opt.Host), started: time.Now().UTC(),
		parts: map[uuid.UUID]context.CancelFunc{}}, nil
}

// Run keeps the host registered and takes the jobs addressed to it until
// ctx ends. Losing etcd ends every part running (each aborts under its own
// bounds) and the agent reconnects; local backups never depend on it. It
// returns once every part has ended.
func (a *Agent) Run(ctx context.Context) {
	defer a.wg.Wait()
	for ctx.Err() == nil {
		err := a.session(ctx)
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("cluster: lost etcd; reconnecting", "error", err, "retry", a.opt.Retry)
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.opt.Retry):
		}
	}
}

// session is one connection to etcd, under one lease: it ends when the
// lease is lost or ctx ends.
func (a *Agent) session(ctx context.Context) error {
	cli, err := cluster.Connect(ctx, a.opt.Conn)
	if err != nil {
		return err
	}
	defer cli.Close()
	ttl := max(int(a.opt.LeaseTTL/time.Second), 1)
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return err
	}
	// Close revokes the lease: the host's keys go at once on a clean
	// stop, not a TTL later.
	defer sess.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// First of all (defers run last first): the parts end, recording
	// their aborts while the client and the lease still work.
	defer func() { a.stopParts(); a.wg.Wait() }()
	if err := a.register(sctx, cli, sess.Lease()); err != nil {
		return err
	}
	a.log.Info("cluster: registered", "endpoints", a.opt.Conn.Endpoints, "lease_ttl", a.opt.LeaseTTL)
	go a.keepRegistered(sctx, cli, sess.Lease())

	gctx, gcancel := cluster.Op(sctx)
	resp, err := cli.Get(gctx, a.opt.Keys.SetsPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	gcancel()
	if err != nil {
		return err
	}
	for _, kv := range resp.Kvs {
		a.seen(sctx, cli, sess, string(kv.Key), nil, true)
	}
	// WithRequireLeader: a host cut off from the majority learns it in
	// seconds instead of watching in silence.
	w := cli.Watch(clientv3.WithRequireLeader(sctx), a.opt.Keys.SetsPrefix(), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for {
		select {
		case <-sess.Done():
			return errors.New("the host's etcd lease ended")
		case wr, ok := <-w:
			if !ok {
				return errors.New("the watch of cluster jobs ended")
			}
			if err := wr.Err(); err != nil {
				return err
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut && ev.IsCreate() {
					a.seen(sctx, cli, sess, string(ev.Kv.Key), ev.Kv.Value, false)
				}
			}
		}
	}
}

// seen looks at a key of a set that appeared: a job naming this host is
// started, unless this process already ran a part of it that ended (it
// lost etcd meanwhile): that set is aborted, since a part cannot be
// resumed. An abort makes sure this host keeps nothing of the set; a
// deletion deletes its part.
func (a *Agent) seen(ctx context.Context, cli *clientv3.Client, sess *concurrency.Session, key string, value []byte, atStart bool) {
	id, rest, err := a.opt.Keys.ParseSetKey(key)
	if err != nil {
		return
	}
	switch rest {
	case "job":
		// A watch event carries the job; the scan at connection reads
		// keys only (arrivals may carry archives), so it reads the job.
		var job *cluster.Job
		if value != nil {
			job = new(cluster.Job)
			if err := cluster.Decode(key, value, job); err != nil || job.ID != id {
				return
			}
		} else if j, err := cluster.ReadJob(ctx, cli, a.opt.Keys, id); err != nil || j == nil {
			return
		} else {
			job = j
		}
		if _, ok := job.Hosts[a.opt.Host]; !ok {
			return
		}
		set := cluster.SetOf(cli, a.opt.Keys, job, sess.Lease(), sess.Done())
		set.Who = "host " + a.opt.Host
		if atStart && a.hasEnded(id) {
			a.log.Warn("cluster: a set whose part ended here when etcd was lost is still in progress; aborting it", "set", id)
			_ = set.Abort(ctx, cluster.NewAbort(job, a.opt.Host, cluster.Accepted, errRejoined))
			return
		}
		a.start(ctx, set)
	case "abort":
		a.discard(ctx, id)
	case "delete":
		a.deletePart(ctx, cli, id)
	}
}

// deletePart deletes this host's part of a kept or aborted set that
// lvss cluster delete asked to remove, reports it, and, as the last host
// to report, removes the set's keys.
func (a *Agent) deletePart(ctx context.Context, cli *clientv3.Client, id uuid.UUID) {
	k := a.opt.Keys
	ctx, cancel := context.WithTimeout(ctx, 4*cluster.OpTimeout+a.opt.Coord.Options().Timeouts.ProviderCall)
	defer cancel()
	octx, ocancel := cluster.Op(ctx)
	resp, err := cli.Get(octx, k.Delete(id))
	ocancel()
	if err != nil || len(resp.Kvs) == 0 {
		return
	}
	var d cluster.Deletion
	if err := cluster.Decode(k.Delete(id), resp.Kvs[0].Value, &d); err != nil || !slices.Contains(d.Hosts, a.opt.Host) {
		return
	}
	n, err := a.deleteSet(ctx, id)
	if err != nil && !isNotFound(err) {
		a.log.Error("cluster: could not delete this host's part of a set", "set", id, "error", err)
		return
	}
	a.log.Info("cluster: deleted this host's part of a set", "set", id, "snapshots", n)
	octx, ocancel = cluster.Op(ctx)
	defer ocancel()
	if _, err := cli.Put(octx, k.Deleted(id, a.opt.Host), time.Now().UTC().Format(time.RFC3339)); err != nil {
		return
	}
	done, err := cli.Get(octx, k.DeletedPrefix(id), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil || len(done.Kvs) < len(d.Hosts) {
		return
	}
	if _, err := cli.Delete(octx, k.Set(id), clientv3.WithPrefix()); err == nil {
		a.log.Info("cluster: every host deleted its part; the set's keys are gone", "set", id)
	}
}

var errRejoined = errors.New("the host's part ended when it lost etcd, and a part cannot be resumed")

func (a *Agent) hasEnded(id uuid.UUID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Contains(a.ended, id)
}

func (a *Agent) running(id uuid.UUID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.parts[id]
	return ok
}

// start runs the host's part of a set, once.
func (a *Agent) start(ctx context.Context, set *cluster.Set) {
	a.mu.Lock()
	if _, ok := a.parts[set.Job.ID]; ok {
		a.mu.Unlock()
		return
	}
	pctx, cancel := context.WithCancel(ctx)
	a.parts[set.Job.ID] = cancel
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		defer func() {
			a.mu.Lock()
			delete(a.parts, set.Job.ID)
			if a.ended = append(a.ended, set.Job.ID); len(a.ended) > maxEnded {
				a.ended = a.ended[1:]
			}
			a.mu.Unlock()
			cancel()
		}()
		p := &part{a: a, set: set, log: a.log.With("set", set.Job.ID)}
		p.run(pctx)
	}()
}

func (a *Agent) stopParts() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, cancel := range a.parts {
		cancel()
	}
}

// discard deletes what this host keeps of an aborted set (a host that
// was down or cut off while the set was aborted finds it at its next
// connection). A part still running deletes its own.
func (a *Agent) discard(ctx context.Context, id uuid.UUID) {
	if a.running(id) {
		return
	}
	n, err := a.deleteSet(ctx, id)
	switch {
	case err != nil && !isNotFound(err):
		a.log.Error("cluster: could not delete the snapshots of an aborted set", "set", id, "error", err)
	case n > 0:
		a.log.Info("cluster: deleted the snapshots of an aborted set", "set", id, "snapshots", n)
	}
}

// deleteSet deletes this host's snapshots of a set, in an administrative
// session of its own (VSS_CTX_ALL, as lvss delete shadows).
func (a *Agent) deleteSet(ctx context.Context, id uuid.UUID) (int, error) {
	s := a.opt.Coord.NewSession(coordinator.Peer{PID: int32(os.Getpid())})
	defer s.Release(context.WithoutCancel(ctx))
	if err := s.InitializeForBackup(""); err != nil {
		return 0, err
	}
	if err := s.SetContext(vss.CtxAll); err != nil {
		return 0, err
	}
	n, _, err := s.DeleteSnapshots(ctx, id, vss.ObjectSnapshotSet, true)
	return n, err
}

// register publishes the host's registration under its lease.
func (a *Agent) register(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID) error {
	octx, cancel := cluster.Op(ctx)
	defer cancel()
	_, err := cli.Put(octx, a.opt.Keys.Host(a.opt.Host), a.hostInfo(), clientv3.WithLease(lease))
	return err
}

// keepRegistered republishes the registration when the host's writers
// change.
func (a *Agent) keepRegistered(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID) {
	last := a.hostInfo()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if now := a.hostInfo(); now != last {
			octx, cancel := cluster.Op(ctx)
			if _, err := cli.Put(octx, a.opt.Keys.Host(a.opt.Host), now, clientv3.WithLease(lease)); err == nil {
				last = now
			}
			cancel()
		}
	}
}

func (a *Agent) hostInfo() string {
	info := cluster.HostInfo{Host: a.opt.Host, Version: a.opt.Version, Started: a.started}
	for _, w := range a.opt.Coord.ListWriters() {
		info.Writers = append(info.Writers, cluster.HostWriter{Name: w.Identity.Name, Instance: w.Identity.InstanceName,
			ClassID: w.Identity.ClassID, InstanceID: w.InstanceID})
	}
	slices.SortFunc(info.Writers, func(x, y cluster.HostWriter) int {
		if x.Name != y.Name {
			return compare(x.Name, y.Name)
		}
		return compare(x.Instance, y.Instance)
	})
	return cluster.Encode(info)
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
