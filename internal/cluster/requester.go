package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/vsserr"
)

// BackupOptions are a cluster backup's: lvss cluster backup's flags.
type BackupOptions struct {
	Hosts      map[string]HostJob
	Type       string
	Persistent bool
	Requester  string
	// LeaseTTL is the requester's lease: if it dies, the hosts abort this
	// long after its last renewal.
	LeaseTTL time.Duration
	// Prepare and Barrier are the job's deadlines (Job.PrepareMS,
	// BarrierMS); Timeout bounds the whole creation, up to every host's
	// snapshots; CompleteTimeout the hosts' BackupComplete.
	Prepare, Barrier, Timeout, CompleteTimeout time.Duration
	// Progress, if set, is told of each arrival as it happens.
	Progress func(host string, p Point)
	// Command is COMMAND's argument list, recorded in the hosts'
	// archives; the command function given to Backup runs it.
	Command []string
	// Archives asks every host for its backup archive (Part.Archive),
	// for a cluster archive (--bcd). Archived, if set, is called with
	// every host's archive at stage: once every host has its snapshots
	// (before COMMAND), and once every host has had BackupComplete.
	Archives bool
	Archived func(stage backupdoc.Stage, res *Result)
}

// CommandFunc runs COMMAND for one host's part. It returns COMMAND's exit
// status (nil when it did not run) and its failure.
type CommandFunc func(ctx context.Context, id uuid.UUID, host string, part *Part) (*int, error)

// Result is a cluster backup's outcome.
type Result struct {
	Record
	// Aborted: the set was aborted (Err says why) and no host keeps
	// anything of it.
	Aborted bool
	// CommandErrs are COMMAND's failures, by host.
	CommandErrs map[string]error
	// Warnings are what went wrong without failing the set: a host that
	// could not send its archive after BackupComplete.
	Warnings []string
}

// Hinted is an error with advice of its own for the tools (clierr uses
// Hint over the HRESULT's).
type Hinted struct {
	Err  error
	Text string
}

func (h *Hinted) Error() string { return h.Err.Error() }
func (h *Hinted) Unwrap() error { return h.Err }

// Hint is the advice.
func (h *Hinted) Hint() string { return h.Text }

// Backup makes one cluster snapshot set: it writes the job, waits for
// every host's snapshots, runs command once per host (sorted by name), tells
// the hosts how it went, and records the set if it is persistent. Any
// failure before the snapshots exist everywhere aborts the set on every
// host.
func Backup(ctx context.Context, cli *clientv3.Client, k Keys, o BackupOptions, command CommandFunc) (*Result, error) {
	if err := checkRegistered(ctx, cli, k, o.Hosts); err != nil {
		return nil, err
	}
	ttl := max(int64(o.LeaseTTL/time.Second), 1)
	gctx, gcancel := Op(ctx)
	grant, err := cli.Grant(gctx, ttl)
	gcancel()
	if err != nil {
		return nil, &Unreachable{vsserr.Wrap(vsserr.Unexpected, err, "etcd: take a lease")}
	}
	// Revoking the lease deletes the job: the hosts take that as the
	// requester's end, which is right once the set is recorded or
	// aborted.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = cli.Revoke(rctx, grant.ID)
	}()
	kctx, stopKeep := context.WithCancel(ctx)
	defer stopKeep()
	keep, err := cli.KeepAlive(kctx, grant.ID)
	if err != nil {
		return nil, &Unreachable{vsserr.Wrap(vsserr.Unexpected, err, "etcd: keep the lease alive")}
	}
	lost := make(chan struct{})
	go func() {
		for range keep {
		}
		close(lost)
	}()

	job := &Job{ID: uuid.New(), Requester: o.Requester, Created: time.Now().UTC(), Type: o.Type, Persistent: o.Persistent,
		Hosts: o.Hosts, PrepareMS: o.Prepare.Milliseconds(), BarrierMS: o.Barrier.Milliseconds(),
		Archives: o.Archives, Command: o.Command}
	set := SetOf(cli, k, job, grant.ID, lost)
	set.Who = "the cluster requester"
	if err := put(ctx, cli, k.Job(job.ID), Encode(job), clientv3.WithLease(grant.ID)); err != nil {
		return nil, &Unreachable{vsserr.Wrap(vsserr.Unexpected, err, "etcd: write the job")}
	}
	if o.Progress != nil {
		go follow(kctx, cli, k, job.ID, o.Progress)
	}
	res := &Result{Record: Record{ID: job.ID, Created: job.Created, Type: job.Type, Requester: job.Requester, Hosts: map[string]*Part{}},
		CommandErrs: map[string]error{}}

	arrived, err := set.WaitAllFor(ctx, Snapshotted, o.Timeout)
	if err != nil {
		return set.aborted(ctx, res, Accepted, err)
	}
	if _, err := o.takeParts(res, arrived, Snapshotted); err != nil {
		return set.aborted(ctx, res, Snapshotted, err)
	}
	if o.Archived != nil {
		o.Archived(backupdoc.StageSnapshot, res)
	}
	done := Complete{Succeeded: map[string]bool{}, ExitStatus: map[string]int{}}
	for _, h := range job.HostNames() {
		if command != nil {
			status, err := command(ctx, job.ID, h, res.Hosts[h])
			if err != nil {
				res.CommandErrs[h] = err
			}
			if status != nil {
				done.ExitStatus[h] = *status
			}
		}
		done.Succeeded[h] = res.CommandErrs[h] == nil
		if ctx.Err() != nil {
			return set.aborted(ctx, res, Snapshotted, ctx.Err())
		}
	}
	if err := put(ctx, cli, k.Complete(job.ID), Encode(done), clientv3.WithLease(grant.ID)); err != nil {
		return set.aborted(ctx, res, Snapshotted, &Unreachable{vsserr.Wrap(vsserr.Unexpected, err, "etcd: write complete")})
	}
	completed, err := set.WaitAllFor(ctx, Completed, o.CompleteTimeout)
	if err != nil {
		return set.aborted(ctx, res, Snapshotted, err)
	}
	final, err := o.takeParts(res, completed, Completed)
	if err != nil {
		return set.aborted(ctx, res, Completed, err)
	}
	if o.Archived != nil && final {
		o.Archived(backupdoc.StageBackupComplete, res)
	}
	ops := []clientv3.Op{clientv3.OpDelete(k.Set(job.ID)+"at/", clientv3.WithPrefix()), clientv3.OpDelete(k.Complete(job.ID))}
	if o.Persistent {
		ops = append(ops, clientv3.OpPut(k.Record(job.ID), Encode(res.Record.Stored())))
	}
	tctx, tcancel := Op(ctx)
	defer tcancel()
	if _, err := cli.Txn(tctx).Then(ops...).Commit(); err != nil {
		return res, &Unreachable{vsserr.Wrap(vsserr.Unexpected, err, "etcd: record the set")}
	}
	return res, nil
}

// takeParts puts the hosts' parts published at p into the result: at
// Snapshotted every host must publish one (its snapshots), and its
// archive when the job asks for archives; at Completed a host publishes
// its part again only to bring its final archive. A host that could not
// (ArchiveError) keeps its part of Snapshotted, with a warning, and all
// reports false: the cluster archive cannot be written at Completed.
func (o *BackupOptions) takeParts(res *Result, arrived map[string]*Arrival, p Point) (all bool, err error) {
	all = true
	for _, h := range slices.Sorted(maps.Keys(arrived)) {
		part := arrived[h].Part
		switch {
		case part == nil && p == Completed && !o.Archives:
			continue
		case part == nil:
			return false, vsserr.New(vsserr.Unexpected, "host %s published no part at %s", h, p)
		case o.Archives && len(part.Archive) == 0 && p == Completed && part.ArchiveError != "":
			res.Warnings = append(res.Warnings, fmt.Sprintf(
				"host %s sent no backup archive after BackupComplete (%s): the cluster archive keeps the one written after the snapshots (stage snapshot)",
				h, part.ArchiveError))
			all = false
			continue
		case o.Archives && len(part.Archive) == 0:
			return false, vsserr.New(vsserr.Unexpected, "host %s published no backup archive at %s (is its lvssd older than this lvss?)", h, p)
		}
		res.Hosts[h] = part
	}
	return all, nil
}

// aborted records the requester's cause as the set's abort (unless a
// host's came first) and returns the set's abort.
func (s *Set) aborted(ctx context.Context, res *Result, p Point, cause error) (*Result, error) {
	res.Aborted = true
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	why := cause
	if errors.Is(cause, context.Canceled) {
		why = vsserr.New(vsserr.Unexpected, "the cluster requester was interrupted")
	}
	_ = s.Abort(actx, NewAbort(s.Job, "requester", p, why))
	if a, err := ReadAbort(actx, s.Cli, s.Keys, s.Job.ID); err == nil && a != nil {
		return res, a.Err()
	}
	return res, cause
}

// ReadAbort reads a set's abort; nil when it is not aborted.
func ReadAbort(ctx context.Context, cli *clientv3.Client, k Keys, id uuid.UUID) (*Abort, error) {
	octx, cancel := Op(ctx)
	defer cancel()
	resp, err := cli.Get(octx, k.Abort(id))
	if err != nil {
		return nil, &Unreachable{vsserr.Wrap(vsserr.Unexpected, err, "etcd: read the abort of %s", id)}
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var a Abort
	if err := Decode(k.Abort(id), resp.Kvs[0].Value, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// checkRegistered refuses hosts no lvssd registered, before anything is
// written.
func checkRegistered(ctx context.Context, cli *clientv3.Client, k Keys, hosts map[string]HostJob) error {
	if len(hosts) == 0 {
		return vsserr.New(vsserr.InvalidArg, "a cluster set needs at least one host")
	}
	octx, cancel := Op(ctx)
	defer cancel()
	resp, err := cli.Get(octx, k.HostsPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return &Unreachable{vsserr.Wrap(vsserr.Unexpected, err, "etcd: read the hosts")}
	}
	have := map[string]bool{}
	for _, kv := range resp.Kvs {
		have[strings.TrimPrefix(string(kv.Key), k.HostsPrefix())] = true
	}
	var missing []string
	for h := range hosts {
		if !have[h] {
			missing = append(missing, h)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return &Hinted{Err: vsserr.New(vsserr.ObjectNotFound, "no lvssd is registered in etcd as host %s", strings.Join(missing, ", ")),
			Text: "lvss cluster status lists the registered hosts; each needs lvssd running with [cluster] host = NAME and the same endpoints and prefix"}
	}
	return nil
}

// put is one bounded Put.
func put(ctx context.Context, cli *clientv3.Client, key, val string, opts ...clientv3.OpOption) error {
	octx, cancel := Op(ctx)
	defer cancel()
	_, err := cli.Put(octx, key, val, opts...)
	return err
}

// follow reports arrivals as they happen, until ctx ends.
func follow(ctx context.Context, cli *clientv3.Client, k Keys, id uuid.UUID, progress func(string, Point)) {
	for wr := range cli.Watch(ctx, k.Set(id)+"at/", clientv3.WithPrefix()) {
		for _, ev := range wr.Events {
			if ev.Type != clientv3.EventTypePut || !ev.IsCreate() {
				continue
			}
			point, host, ok := strings.Cut(strings.TrimPrefix(string(ev.Kv.Key), k.Set(id)+"at/"), "/")
			if ok {
				progress(host, Point(point))
			}
		}
	}
}
