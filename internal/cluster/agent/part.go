package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/cluster"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/failpoint"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// part is this host's part of one cluster set: a local session of its
// own, held at the set's barriers.
type part struct {
	a     *Agent
	set   *cluster.Set
	log   *slog.Logger
	s     *coordinator.Session
	snaps []uuid.UUID
	// point is the point this host is at or going to: where it was
	// when it fails.
	point cluster.Point
	// failed: the part's failure is recorded (the barrier records it at
	// once; the creation's end reports the same failure again).
	failed bool
	// levels are the freeze levels of every host's writers, learnt at
	// Prepared from the hosts' arrivals; nil: not known (every level
	// barrier is kept).
	levels []vss.AppLevel

	// What the host's backup archive records (archive.go).
	sctx    vss.Context
	bt      vss.BackupType
	logMark uint64 // the event log's end before DoSnapshotSet
	marked  bool
	props   []coordinator.Snapshot
	// published is the part as published at Snapshotted.
	published *cluster.Part
	// made: DoSnapshotSet succeeded, the part's snapshots exist.
	made bool
	// recorded is closed once the part's failure is recorded in etcd (or
	// that gave up); nil while the part has not failed.
	recorded chan struct{}
}

// asyncWait bounds a local asynchronous call of the part: the calls are
// bounded by lvssd's own timeouts; this only ends a wait that the job's
// end made pointless.
const asyncWait = 24 * time.Hour

func (p *part) run(ctx context.Context) {
	a := p.a
	job := p.set.Job
	// Last of all, once the session is released: the failure's record
	// (fail), which may wait for etcd.
	defer func() {
		if p.recorded != nil {
			<-p.recorded
		}
	}()
	p.s = a.opt.Coord.NewSession(coordinator.Peer{PID: int32(os.Getpid())})
	defer func() { p.s.Release(context.WithoutCancel(ctx)) }()
	p.log.Info("cluster: taking part in a set", "hosts", job.HostNames(), "paths", job.Hosts[a.opt.Host].Paths)
	err := p.create(ctx)
	if err != nil {
		p.fail(ctx, err)
		if p.made {
			// The snapshots exist (the part failed at snapshotted, or
			// could not arrive there): an aborted set keeps none of
			// them. Its session's release deletes only auto-release
			// ones, and the abort key, seen while the part ran, was
			// left to the part.
			p.deleteSet(ctx)
		}
		return
	}
	if err := p.complete(ctx); err != nil {
		p.fail(ctx, err)
		// The snapshots exist: an aborted set keeps none of them.
		p.deleteSet(ctx)
		return
	}
	p.log.Info("cluster: part done", "snapshots", len(p.snaps))
}

// fail records this host's failure as the set's abort (unless another
// cause was recorded first), so that every host stops. The record is
// written while this host aborts its own part, not before: a host cut
// off from etcd would otherwise hold its writers frozen for the whole of
// a write that cannot get through. The part ends once it is written or
// gave up (run).
func (p *part) fail(ctx context.Context, err error) {
	if p.failed {
		return
	}
	p.failed = true
	p.log.Warn("cluster: part failed", "point", p.point, "error", err)
	if errors.Is(err, context.Canceled) {
		err = vsserr.New(vsserr.Unexpected, "lvssd on %s stopped or lost etcd", p.a.opt.Host)
	}
	abort := cluster.NewAbort(p.set.Job, p.a.opt.Host, p.point, err)
	p.recorded = make(chan struct{})
	go func() {
		defer close(p.recorded)
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if aerr := p.set.Abort(actx, abort); aerr != nil {
			p.log.Warn("cluster: could not record the abort", "error", aerr)
		}
	}()
}

func (p *part) arrive(ctx context.Context, pt cluster.Point, pr *cluster.Part) error {
	return p.arriveAs(ctx, pt, cluster.Arrival{Host: p.a.opt.Host, Part: pr})
}

func (p *part) arriveAs(ctx context.Context, pt cluster.Point, a cluster.Arrival) error {
	p.point = pt
	// Test builds stop, fail or kill lvssd here (cluster.arrive.POINT),
	// so that the fault tests act on a host standing at a barrier.
	if err := failpoint.HitCtx(ctx, "cluster.arrive."+string(pt)); err != nil {
		return err
	}
	return p.set.ArriveAs(ctx, pt, a)
}

// create runs the local session up to the set's snapshots, thawed and
// published.
func (p *part) create(ctx context.Context) error {
	a := p.a
	job := p.set.Job
	hj := job.Hosts[a.opt.Host]
	if err := p.arrive(ctx, cluster.Accepted, nil); err != nil {
		return err
	}
	bt := vss.BackupCopy
	if job.Type != "" {
		t, err := vss.ParseBackupType(job.Type)
		if err != nil {
			return err
		}
		bt = t
	}
	sctx := vss.CtxBackup
	if job.Persistent {
		sctx = vss.CtxAppRollback
	}
	p.sctx, p.bt = sctx, bt
	s := p.s
	if err := s.InitializeForBackup(""); err != nil {
		return err
	}
	if sctx != vss.CtxBackup {
		if err := s.SetContext(sctx); err != nil {
			return err
		}
	}
	selected := len(hj.Writers) > 0
	if err := s.SetBackupState(selected, false, bt, false); err != nil {
		return err
	}
	if err := p.wait(ctx, "GatherWriterMetadata", s.GatherWriterMetadata); err != nil {
		return err
	}
	paths := append([]string(nil), hj.Paths...)
	if selected {
		more, err := p.selectWriters(hj.Writers)
		if err != nil {
			return err
		}
		paths = append(paths, more...)
	}
	if err := p.startSet(ctx); err != nil {
		return err
	}
	for _, path := range paths {
		id, err := s.AddToSnapshotSet(ctx, path, uuid.Nil)
		if vsserr.Code(err) == vsserr.ObjectAlreadyExists && !slices.Contains(hj.Paths, path) {
			continue // a writer's component on a volume already in the set
		}
		if err != nil {
			return vsserr.Wrap(vsserr.Code(err), err, "AddToSnapshotSet %s", path)
		}
		p.snaps = append(p.snaps, id)
	}
	if err := p.wait(ctx, "PrepareForBackup", s.PrepareForBackup); err != nil {
		return err
	}
	if job.Archives {
		// Before anything is frozen: a host whose documents cannot go
		// through etcd fails now, not after every host froze.
		if err := p.documentsFit(); err != nil {
			return err
		}
		p.markLog()
	}
	if err := s.SetBarrier(barrier{p}); err != nil {
		return err
	}
	if err := p.wait(ctx, "DoSnapshotSet", s.DoSnapshotSet); err != nil {
		return err
	}
	p.made = true
	p.point = cluster.Snapshotted
	pr, err := p.publish(ctx)
	if err != nil {
		return err
	}
	// A writer that failed after the commit (its Thaw: its freeze did
	// not hold, or it is gone) leaves this host's snapshots of its data
	// only crash-consistent, with no barrier left to veto at: the host
	// refuses to publish them, which aborts the set. A cluster set is
	// application-consistent wherever writers hold data, or it is not
	// made. (A host with no writer on its volumes has crash-consistent
	// snapshots by nature: nothing failed there.)
	if err := p.wait(ctx, "GatherWriterStatus", p.s.GatherWriterStatus); err != nil {
		return err
	}
	st, err := p.s.GetWriterStatus()
	if err != nil {
		return err
	}
	var failed []string
	for _, w := range st {
		if w.State.Failed() {
			failed = append(failed, fmt.Sprintf("%s (%s, %s)", w.Name, w.State, w.Failure))
		}
	}
	if len(failed) > 0 {
		return vsserr.New(vsserr.WriterErrorRetryable, "writer(s) %s failed on host %s after the snapshot: its snapshots are %s-consistent only, and a cluster set is made only if every writer of every host takes part",
			strings.Join(failed, ", "), a.opt.Host, pr.Consistency)
	}
	return p.arrive(ctx, cluster.Snapshotted, pr)
}

// startSet starts the local set under the cluster set's ID. While another
// set is being created on this host (a local backup, or a cluster set's
// part ending), it retries, within the job's preparation deadline: the
// set is not lost to a backup that happened to run at the same moment.
func (p *part) startSet(ctx context.Context) error {
	deadline := time.Now().Add(p.set.Job.Wait(cluster.Prepared))
	for {
		_, err := p.s.StartSnapshotSetID(p.set.Job.ID)
		if vsserr.Code(err) != vsserr.SnapshotSetInProgress || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// selectWriters adds every component of the named writers (component
// mode) and returns their components' paths, which the set must hold too.
// A named writer that is not subscribed fails the part before anything
// is frozen.
func (p *part) selectWriters(names []string) ([]string, error) {
	mds, err := p.s.GetWriterMetadata()
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, name := range names {
		found := false
		for _, m := range mds {
			md, err := document.ParseWriterMetadata(m.XML)
			if err != nil {
				return nil, err
			}
			id := md.Identity
			if id.FriendlyName != name && id.InstanceName != name && id.WriterID.String() != strings.ToLower(name) {
				continue
			}
			found = true
			for _, c := range md.Components {
				if err := p.s.AddComponent(m.InstanceID, id.WriterID, c.Type, c.LogicalPath, c.Name); err != nil {
					return nil, err
				}
				for _, files := range [][]document.FileDesc{c.Files, c.DatabaseFiles, c.DatabaseLogFiles} {
					for _, f := range files {
						paths = append(paths, f.Path)
					}
				}
			}
		}
		if !found {
			return nil, vsserr.New(vsserr.ObjectNotFound, "writer %q is not subscribed on host %s", name, p.a.opt.Host)
		}
	}
	return paths, nil
}

// publish reads what the host made: its snapshots, their consistency and,
// when the job asks for it, its backup archive.
func (p *part) publish(ctx context.Context) (*cluster.Part, error) {
	pr := &cluster.Part{}
	var levels []string
	for _, id := range p.snaps {
		sn, err := p.s.GetSnapshotProperties(id)
		if err != nil {
			return nil, err
		}
		p.props = append(p.props, sn)
		pr.Snapshots = append(pr.Snapshots, cluster.Snapshot{ID: sn.ID, Original: sn.OriginalVolume, Path: sn.DevicePath,
			Provider: sn.ProviderName, Created: sn.Created.UTC(), Consistency: string(sn.Consistency), Reason: sn.ConsistencyReason})
		levels = append(levels, string(sn.Consistency))
	}
	pr.Consistency = backupdoc.WeakestConsistency(levels...)
	if p.set.Job.Archives {
		arch, err := p.archive(ctx, backupdoc.StageSnapshot, nil)
		if err != nil {
			return nil, err
		}
		pr.Archive = arch
		if err := p.fits(pr); err != nil {
			return nil, err
		}
	}
	p.published = pr
	return pr, nil
}

// complete waits for the requester's word that COMMAND ran, then tells
// the writers (SetBackupSucceeded, BackupComplete).
func (p *part) complete(ctx context.Context) error {
	c, err := p.set.WaitComplete(ctx)
	if err != nil {
		return err
	}
	ok := c.Succeeded[p.a.opt.Host]
	bcd, err := p.s.SaveAsXML()
	if err != nil {
		return err
	}
	doc, err := document.ParseBackupComponents([]byte(bcd))
	if err != nil {
		return err
	}
	for _, w := range doc.Writers {
		for _, comp := range w.Components {
			if err := p.s.SetBackupSucceeded(w.InstanceID, w.WriterID, comp.Type, comp.LogicalPath, comp.Name, ok); err != nil {
				return err
			}
		}
	}
	if err := p.wait(ctx, "BackupComplete", p.s.BackupComplete); err != nil {
		return err
	}
	if !p.set.Job.Archives {
		return p.arrive(ctx, cluster.Completed, nil)
	}
	// The archive again, as lvss backup writes it after BackupComplete:
	// the writers' final state, COMMAND's exit status for this host. The
	// set is made by now; an archive that cannot be built or carried
	// costs the cluster archive its last write (the requester keeps the
	// one of the snapshots, and says so), not the set, as a failed
	// archive write is a warning in lvss backup.
	var status *int
	if st, ok := c.ExitStatus[p.a.opt.Host]; ok {
		status = &st
	}
	pr := *p.published
	pr.Archive, err = p.archive(ctx, backupdoc.StageBackupComplete, status)
	if err == nil {
		err = p.fits(&pr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.log.Warn("cluster: no backup archive after BackupComplete", "error", err)
		pr.Archive, pr.ArchiveError = nil, vsserr.Message(err)
	}
	return p.arrive(ctx, cluster.Completed, &pr)
}

// deleteSet deletes the part's snapshots after the set was aborted past
// their creation.
func (p *part) deleteSet(ctx context.Context) {
	dctx := context.WithoutCancel(ctx)
	if _, _, err := p.s.DeleteSnapshots(dctx, p.set.Job.ID, vss.ObjectSnapshotSet, true); err != nil && !isNotFound(err) {
		p.log.Error("cluster: could not delete the snapshots of the aborted set", "error", err)
	}
}

// wait runs one asynchronous call of the local session to its end.
func (p *part) wait(ctx context.Context, what string, call func() (*coordinator.Async, error)) error {
	as, err := call()
	if err != nil {
		return vsserr.Wrap(vsserr.Code(err), err, "%s", what)
	}
	done := make(chan struct{})
	var st vsserr.HRESULT
	var msg string
	go func() {
		st, msg = as.Wait(context.WithoutCancel(ctx), asyncWait)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		as.Cancel(context.WithoutCancel(ctx))
		<-done
	}
	if st == vsserr.AsyncFinished {
		return nil
	}
	if st == vsserr.AsyncCancelled && ctx.Err() != nil {
		return ctx.Err()
	}
	return vsserr.New(st, "%s: %s", what, msg)
}

// barrier holds the local creation at the set's points.
type barrier struct{ p *part }

func (b barrier) Reach(ctx context.Context, point coordinator.BarrierPoint, info coordinator.BarrierInfo) error {
	p := b.p
	pt := cluster.Point(point)
	if !p.needed(point) {
		// Every host knows the same levels (all arrived at Prepared
		// with theirs): every host passes this point alike.
		return nil
	}
	err := b.reach(ctx, pt, info)
	if err != nil {
		// At once, not when the local abort is over: the other hosts
		// stop waiting now.
		p.fail(ctx, err)
	}
	return err
}

func (b barrier) reach(ctx context.Context, pt cluster.Point, info coordinator.BarrierInfo) error {
	p := b.p
	p.point = pt
	if len(info.Failed) > 0 {
		return vsserr.New(vsserr.WriterErrorRetryable, "writer(s) %s failed on host %s: a cluster set is made only if every writer of every host takes part",
			strings.Join(info.Failed, ", "), p.a.opt.Host)
	}
	a := cluster.Arrival{Host: p.a.opt.Host}
	if pt == cluster.Prepared {
		a.Levels = []string{}
		for _, l := range info.Levels {
			a.Levels = append(a.Levels, l.String())
		}
	}
	if err := p.arriveAs(ctx, pt, a); err != nil {
		return err
	}
	arrivals, err := p.set.WaitAll(ctx, pt)
	if err == nil && pt == cluster.Prepared {
		p.levels = levelsOf(arrivals)
	}
	return err
}

// levelsOf is every host's freeze levels, from their Prepared arrivals;
// nil if a host did not say.
func levelsOf(arrivals map[string]*cluster.Arrival) []vss.AppLevel {
	var out []vss.AppLevel
	for _, a := range arrivals {
		if a.Levels == nil {
			return nil
		}
		for _, name := range a.Levels {
			l, err := vss.ParseAppLevel(name)
			if err != nil {
				return nil
			}
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	if out == nil {
		out = []vss.AppLevel{}
	}
	return out
}

// needed reports whether a point must be waited at: every point but a
// freeze level's, and a freeze level's only when some host has a writer
// at that level and some host one at a later level (the barrier orders
// the two; without both it orders nothing).
func (p *part) needed(point coordinator.BarrierPoint) bool {
	if p.levels == nil {
		return true
	}
	for i, l := range vss.FreezeOrder {
		if coordinator.BarrierFrozenLevel(l) != point || point == coordinator.BarrierFrozen {
			continue
		}
		if !slices.Contains(p.levels, l) {
			return false
		}
		for _, later := range vss.FreezeOrder[i+1:] {
			if slices.Contains(p.levels, later) {
				return true
			}
		}
		return false
	}
	return true
}

func isNotFound(err error) bool { return vsserr.Code(err) == vsserr.ObjectNotFound }
