package cluster

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lvss/lvss/vsserr"
)

// SetState is what etcd says of a cluster set.
type SetState string

const (
	SetRunning  SetState = "running"  // its job is there: the requester is at work
	SetKept     SetState = "kept"     // made, persistent: its record is there
	SetAborted  SetState = "aborted"  // aborted; hosts that were away delete their parts when they come back
	SetDeleting SetState = "deleting" // lvss cluster delete asked the hosts to delete it
)

// SetSummary is one cluster set as lvss cluster list shows it.
type SetSummary struct {
	ID       uuid.UUID `json:"id"`
	State    SetState  `json:"state"`
	Job      *Job      `json:"job,omitempty"`
	Record   *Record   `json:"record,omitempty"`
	Abort    *Abort    `json:"abort,omitempty"`
	Deletion *Deletion `json:"deletion,omitempty"`
	Deleted  []string  `json:"deleted,omitempty"` // hosts that deleted their part
}

// Hosts are the set's hosts, from whichever record names them.
func (s *SetSummary) Hosts() []string {
	switch {
	case s.Deletion != nil:
		return s.Deletion.Hosts
	case s.Record != nil:
		return slices.Sorted(mapKeys(s.Record.Hosts))
	case s.Job != nil:
		return s.Job.HostNames()
	case s.Abort != nil:
		return s.Abort.Hosts
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ListSets reads every cluster set etcd holds, in ID order.
func ListSets(ctx context.Context, cli *clientv3.Client, k Keys) ([]SetSummary, error) {
	resp, err := cli.Get(ctx, k.SetsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, EtcdError(err, "read the cluster sets")
	}
	byID := map[uuid.UUID]*SetSummary{}
	for _, kv := range resp.Kvs {
		id, rest, err := k.ParseSetKey(string(kv.Key))
		if err != nil {
			continue
		}
		s := byID[id]
		if s == nil {
			s = &SetSummary{ID: id}
			byID[id] = s
		}
		key := string(kv.Key)
		switch {
		case rest == "job":
			s.Job = new(Job)
			err = Decode(key, kv.Value, s.Job)
		case rest == "record":
			s.Record = new(Record)
			err = Decode(key, kv.Value, s.Record)
		case rest == "abort":
			s.Abort = new(Abort)
			err = Decode(key, kv.Value, s.Abort)
		case rest == "delete":
			s.Deletion = new(Deletion)
			err = Decode(key, kv.Value, s.Deletion)
		case strings.HasPrefix(rest, "deleted/"):
			s.Deleted = append(s.Deleted, strings.TrimPrefix(rest, "deleted/"))
		}
		if err != nil {
			return nil, err
		}
	}
	var out []SetSummary
	for _, s := range byID {
		switch {
		case s.Deletion != nil:
			s.State = SetDeleting
		case s.Abort != nil:
			s.State = SetAborted
		case s.Job != nil:
			s.State = SetRunning
		case s.Record != nil:
			s.State = SetKept
		default:
			continue // a set's leftovers being removed
		}
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b SetSummary) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return out, nil
}

// RequestDelete asks every host of a kept or aborted set to delete its
// part. A set still being made is refused (interrupt its lvss cluster
// backup instead: that aborts it everywhere).
func RequestDelete(ctx context.Context, cli *clientv3.Client, k Keys, id uuid.UUID, by string) (*Deletion, error) {
	sets, err := ListSets(ctx, cli, k)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(sets, func(s SetSummary) bool { return s.ID == id })
	if i < 0 {
		return nil, vsserr.New(vsserr.ObjectNotFound, "etcd holds no cluster set %s", id)
	}
	s := sets[i]
	if s.State == SetRunning {
		return nil, &Hinted{Err: vsserr.New(vsserr.BadState, "cluster set %s is being made", id),
			Text: "interrupt its lvss cluster backup (that aborts it on every host), or wait for it to end"}
	}
	if s.Deletion != nil {
		return s.Deletion, nil
	}
	d := &Deletion{Hosts: s.Hosts(), By: by, Time: time.Now().UTC().Format(time.RFC3339)}
	if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k.Delete(id)), "=", 0)).
		Then(clientv3.OpPut(k.Delete(id), Encode(d))).Commit(); err != nil {
		return nil, EtcdError(err, "ask the hosts to delete the set")
	}
	return d, nil
}

// WaitDeleted waits until every host of d has deleted its part (the
// set's keys are gone), or d passes; it returns the hosts that have not.
func WaitDeleted(ctx context.Context, cli *clientv3.Client, k Keys, id uuid.UUID, d *Deletion, within time.Duration) ([]string, error) {
	wctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	missing := func() ([]string, int64, error) {
		resp, err := cli.Get(wctx, k.Set(id), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return nil, 0, err
		}
		if len(resp.Kvs) == 0 {
			return nil, resp.Header.Revision, nil
		}
		have := map[string]bool{}
		for _, kv := range resp.Kvs {
			if h, ok := strings.CutPrefix(string(kv.Key), k.DeletedPrefix(id)); ok {
				have[h] = true
			}
		}
		var out []string
		for _, h := range d.Hosts {
			if !have[h] {
				out = append(out, h)
			}
		}
		return out, resp.Header.Revision, nil
	}
	left, rev, err := missing()
	if err != nil {
		return d.Hosts, EtcdError(err, "read the set's deletion")
	}
	if len(left) == 0 {
		return nil, nil
	}
	for wr := range cli.Watch(wctx, k.Set(id), clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if wr.Err() != nil {
			break
		}
		now, _, err := missing()
		if err != nil {
			break // the deadline, or etcd: left is the last reading
		}
		if left = now; len(left) == 0 {
			break
		}
	}
	if ctx.Err() != nil {
		return left, ctx.Err()
	}
	return left, nil
}
