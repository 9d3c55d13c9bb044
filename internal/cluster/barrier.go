package cluster

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lvss/lvss/vsserr"
)

// ErrJobGone is the job's key vanishing: the requester ended or died (its
// lease expired), and the set is aborted.
var ErrJobGone = errors.New("the cluster requester is gone (its job's lease ended)")

// Set is one cluster set as a participant (a host or the requester) sees
// it in etcd.
type Set struct {
	Cli  *clientv3.Client
	Keys Keys
	Job  *Job
	// Lease holds this participant's keys (a host's arrivals); 0: none.
	Lease clientv3.LeaseID
	// Lost is closed when the participant's own lease is lost (it cannot
	// reach etcd any more): every wait ends at once.
	Lost <-chan struct{}
	// Who names the participant in its errors ("host db1", "the cluster
	// requester").
	Who string
}

// Arrive puts host's arrival at p, unless the set is aborted or its job
// gone, in which case it returns why.
func (s *Set) Arrive(ctx context.Context, host string, p Point, part *Part) error {
	return s.ArriveAs(ctx, p, Arrival{Host: host, Part: part})
}

// ArriveAs is Arrive with the whole arrival given (its time is set here).
func (s *Set) ArriveAs(ctx context.Context, p Point, a Arrival) error {
	id := s.Job.ID
	host := a.Host
	a.Time = time.Now().UTC()
	val := Encode(a)
	var opts []clientv3.OpOption
	if s.Lease != 0 {
		opts = append(opts, clientv3.WithLease(s.Lease))
	}
	// An arrival under a lease that is lost is no arrival: the wait for
	// etcd ends with the lease, so that a host cut off from etcd aborts
	// its part at once, not at the call's deadline.
	lctx, lcancel := s.withLost(ctx)
	defer lcancel()
	octx, cancel := Op(lctx)
	defer cancel()
	resp, err := commitAgain(octx, func(c context.Context) clientv3.Txn {
		return s.Cli.Txn(c).
			If(clientv3.Compare(clientv3.CreateRevision(s.Keys.Job(id)), ">", 0),
				clientv3.Compare(clientv3.CreateRevision(s.Keys.Abort(id)), "=", 0)).
			Then(clientv3.OpPut(s.Keys.At(id, p, host), val, opts...)).
			Else(clientv3.OpGet(s.Keys.Abort(id)))
	})
	if err != nil {
		// The lease gone on etcd's side before the client noticed (its
		// keepalives went to a member that is cut off) is the lease lost.
		if s.lost() || errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return s.lostErr(p)
		}
		return s.etcdErr(ctx, err, "report arrival at %s", p)
	}
	if resp.Succeeded {
		return nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		var a Abort
		if err := Decode(string(kvs[0].Key), kvs[0].Value, &a); err != nil {
			return err
		}
		return a.Err()
	}
	return vsserr.Wrap(vsserr.Unexpected, ErrJobGone, "cluster set %s", id)
}

// Abort records why the set is aborted, unless it already is: the first
// abort wins, so every host reports the same cause.
func (s *Set) Abort(ctx context.Context, a Abort) error {
	octx, cancel := Op(ctx)
	defer cancel()
	_, err := commitAgain(octx, func(c context.Context) clientv3.Txn {
		return s.Cli.Txn(c).
			If(clientv3.Compare(clientv3.CreateRevision(s.Keys.Abort(s.Job.ID)), "=", 0)).
			Then(clientv3.OpPut(s.Keys.Abort(s.Job.ID), Encode(a)))
	})
	if err != nil {
		return s.etcdErr(ctx, err, "record the abort")
	}
	return nil
}

// withLost is ctx, ended also when the participant's lease is lost.
func (s *Set) withLost(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(ctx)
	if s.Lost != nil {
		go func() {
			select {
			case <-s.Lost:
				cancel()
			case <-c.Done():
			}
		}()
	}
	return c, cancel
}

// lost reports whether the participant's lease is lost.
func (s *Set) lost() bool {
	select {
	case <-s.Lost:
		return true
	default:
		return false
	}
}

// lostErr is the participant's own lease lost at p.
func (s *Set) lostErr(p Point) error {
	who := s.Who
	if who == "" {
		who = "this participant"
	}
	return vsserr.New(vsserr.Unexpected, "%s lost its etcd lease (it could not reach etcd within the lease's TTL) while waiting at %s", who, p)
}

// commitAgain commits a transaction that may be committed twice to the
// same effect (an arrival put again, a create-if-absent), again while
// etcd answers Unavailable or does not answer within attemptTimeout, until
// ctx ends. A member cut off from the others fails a request sent to it
// with Unavailable, and the client keeps sending some requests its way
// until its keepalive gives up on the connection (seconds: etcd refuses
// pings more often than every 5 s); a request proposed while etcd elects a
// leader waits for the server's request timeout (7 s with the default
// election timeout), though the new leader is there within seconds.
// Without this, a host whose request met either would abort the set over
// a loss etcd itself survives. The next attempt goes to another member, or
// to the new leader. clientv3 retries only reads so.
func commitAgain(ctx context.Context, txn func(context.Context) clientv3.Txn) (*clientv3.TxnResponse, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		resp, err := txn(actx).Commit()
		timedOut := actx.Err() != nil
		cancel()
		if err == nil || ctx.Err() != nil || !(timedOut || unavailable(err)) {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// attemptTimeout bounds one attempt of commitAgain: etcd commits a
// transaction in milliseconds when it has a leader.
const attemptTimeout = time.Second

// unavailable reports an error of etcd that says the request did not
// get through (or may not have: "request timed out"), as opposed to a
// refusal.
func unavailable(err error) bool {
	// The client's own errors of the server (rpctypes.EtcdError: "no
	// leader", "request timed out") carry their code so; transport
	// errors are gRPC statuses.
	var coded interface{ Code() codes.Code }
	if errors.As(err, &coded) {
		return coded.Code() == codes.Unavailable
	}
	return status.Code(err) == codes.Unavailable
}

// WaitAll waits until every host of the job has arrived at p. It returns
// the hosts' arrivals, or why the set cannot go on: aborted (the abort's
// own error), the job gone (the requester ended), a host that arrived
// earlier gone (its lease ended: it lost etcd, or died), this
// participant's own lease lost, or the job's deadline for p passed.
func (s *Set) WaitAll(ctx context.Context, p Point) (map[string]*Arrival, error) {
	return s.waitAll(ctx, p, s.Job.Wait(p))
}

// WaitAllFor is WaitAll with a deadline of the caller's (the requester
// waits for the whole creation, not one barrier).
func (s *Set) WaitAllFor(ctx context.Context, p Point, d time.Duration) (map[string]*Arrival, error) {
	return s.waitAll(ctx, p, d)
}

func (s *Set) waitAll(ctx context.Context, p Point, d time.Duration) (map[string]*Arrival, error) {
	st, err := s.watchUntil(ctx, p, d, (*setState).settledAt)
	if err != nil {
		return nil, err
	}
	return st.arrived, nil
}

// WaitComplete waits for the requester's word that COMMAND ran. It has no
// deadline of its own (COMMAND may run for hours): the requester's lease
// bounds it, since the job goes with the requester.
func (s *Set) WaitComplete(ctx context.Context) (*Complete, error) {
	st, err := s.watchUntil(ctx, Completed, 0, (*setState).settledComplete)
	if err != nil {
		return nil, err
	}
	return st.complete, nil
}

// watchUntil reads the set's keys, then watches them, until settled says
// the wait is over, the participant's lease is lost, or d (if not 0)
// passes.
func (s *Set) watchUntil(ctx context.Context, p Point, d time.Duration, settled func(*setState) (bool, error)) (*setState, error) {
	id := s.Job.ID
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if d > 0 {
		wctx, cancel = context.WithTimeout(ctx, d)
	}
	defer cancel()
	gctx, gcancel := Op(wctx)
	resp, err := s.Cli.Get(gctx, s.Keys.Set(id), clientv3.WithPrefix())
	gcancel()
	if err != nil {
		return nil, s.waitErr(ctx, wctx, p, d, err, nil)
	}
	st := newSetState(s, p)
	for _, kv := range resp.Kvs {
		if err := st.put(string(kv.Key), kv.Value); err != nil {
			return nil, err
		}
	}
	if done, err := settled(st); done {
		return st, err
	}
	w := s.Cli.Watch(clientv3.WithRequireLeader(wctx), s.Keys.Set(id), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for {
		select {
		case <-s.Lost:
			return nil, s.lostErr(p)
		case wr, ok := <-w:
			if !ok {
				return nil, s.waitErr(ctx, wctx, p, d, wctx.Err(), st.missing())
			}
			if err := wr.Err(); err != nil {
				return nil, s.waitErr(ctx, wctx, p, d, err, st.missing())
			}
			for _, ev := range wr.Events {
				var err error
				if ev.Type == clientv3.EventTypeDelete {
					err = st.del(string(ev.Kv.Key))
				} else {
					err = st.put(string(ev.Kv.Key), ev.Kv.Value)
				}
				if err != nil {
					return nil, err
				}
			}
			if done, err := settled(st); done {
				return st, err
			}
		}
	}
}

// waitErr names a wait that ended without its hosts: the deadline (and
// the hosts missing, when known), the caller's cancellation, or etcd.
func (s *Set) waitErr(ctx, wctx context.Context, p Point, d time.Duration, err error, missing []string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(wctx.Err(), context.DeadlineExceeded) {
		code := vsserr.FlushWritesTimeout
		if p == Committed {
			code = vsserr.HoldWritesTimeout
		}
		if len(missing) > 0 {
			return vsserr.New(code, "not every host of cluster set %s reached %s within %s: %s did not", s.Job.ID, p, d, strings.Join(missing, ", "))
		}
		return vsserr.New(code, "not every host of cluster set %s reached %s within %s", s.Job.ID, p, d)
	}
	return s.etcdErr(ctx, err, "wait at %s", p)
}

func (s *Set) etcdErr(ctx context.Context, err error, format string, a ...any) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &Unreachable{vsserr.Wrap(vsserr.Unexpected, err, "etcd: "+format, a...)}
}

// setState is what a wait has seen of the set's keys.
type setState struct {
	s        *Set
	p        Point
	arrived  map[string]*Arrival
	abort    *Abort
	complete *Complete
	jobGone  bool
	gone     string
}

func newSetState(s *Set, p Point) *setState {
	return &setState{s: s, p: p, arrived: map[string]*Arrival{}, jobGone: true}
}

func (st *setState) put(key string, val []byte) error {
	_, rest, err := st.s.Keys.ParseSetKey(key)
	if err != nil {
		return nil // not ours to judge
	}
	switch {
	case rest == "job":
		st.jobGone = false
	case rest == "abort":
		var a Abort
		if err := Decode(key, val, &a); err != nil {
			return err
		}
		st.abort = &a
	case rest == "complete":
		var c Complete
		if err := Decode(key, val, &c); err != nil {
			return err
		}
		st.complete = &c
	case strings.HasPrefix(rest, "at/"):
		point, host, ok := strings.Cut(strings.TrimPrefix(rest, "at/"), "/")
		if !ok {
			return nil
		}
		if Point(point) == st.p {
			var a Arrival
			if err := Decode(key, val, &a); err != nil {
				return err
			}
			st.arrived[host] = &a
		}
	}
	return nil
}

func (st *setState) del(key string) error {
	_, rest, err := st.s.Keys.ParseSetKey(key)
	if err != nil {
		return nil
	}
	switch {
	case rest == "job":
		st.jobGone = true
	case strings.HasPrefix(rest, "at/"):
		_, host, ok := strings.Cut(strings.TrimPrefix(rest, "at/"), "/")
		if _, ours := st.s.Job.Hosts[host]; ok && ours {
			// An arrival is only ever deleted with its host's lease, or
			// by the requester's clean-up once the set is over.
			st.gone = host
		}
	}
	return nil
}

// missing are the job's hosts that have not arrived at the state's
// point, by name.
func (st *setState) missing() []string {
	var out []string
	for _, h := range st.s.Job.HostNames() {
		if st.arrived[h] == nil {
			out = append(out, h)
		}
	}
	return out
}

// settledAt reports whether a wait at the state's point is over, and
// how.
func (st *setState) settledAt() (bool, error) {
	if done, err := st.ended(); done {
		return true, err
	}
	if st.gone != "" {
		return true, vsserr.New(vsserr.Unexpected, "host %s of cluster set %s is gone: its etcd lease ended (it lost etcd, or lvssd stopped)", st.gone, st.s.Job.ID)
	}
	for h := range st.s.Job.Hosts {
		if st.arrived[h] == nil {
			return false, nil
		}
	}
	return true, nil
}

// settledComplete reports whether the wait for the requester's word is
// over.
func (st *setState) settledComplete() (bool, error) {
	if done, err := st.ended(); done {
		return true, err
	}
	return st.complete != nil, nil
}

// ended reports an aborted set or a vanished job.
func (st *setState) ended() (bool, error) {
	switch {
	case st.abort != nil:
		return true, st.abort.Err()
	case st.jobGone:
		return true, vsserr.Wrap(vsserr.Unexpected, ErrJobGone, "cluster set %s", st.s.Job.ID)
	}
	return false, nil
}

// SetOf builds the participant's view of the set whose job is at key.
func SetOf(cli *clientv3.Client, k Keys, job *Job, lease clientv3.LeaseID, lost <-chan struct{}) *Set {
	return &Set{Cli: cli, Keys: k, Job: job, Lease: lease, Lost: lost}
}

// ReadJob reads a set's job; nil when there is none.
func ReadJob(ctx context.Context, cli *clientv3.Client, k Keys, id uuid.UUID) (*Job, error) {
	octx, cancel := Op(ctx)
	defer cancel()
	resp, err := cli.Get(octx, k.Job(id))
	if err != nil {
		return nil, &Unreachable{vsserr.Wrap(vsserr.Unexpected, err, "etcd: read job %s", id)}
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var j Job
	if err := Decode(k.Job(id), resp.Kvs[0].Value, &j); err != nil {
		return nil, err
	}
	if j.ID != id {
		return nil, vsserr.New(vsserr.Unexpected, "etcd key %s holds the job of set %s", k.Job(id), j.ID)
	}
	return &j, nil
}
