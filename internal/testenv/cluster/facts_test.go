package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/cluster"
)

// The facts of etcd that lvss's cluster mode relies on, checked against
// Debian's etcd 3.4 on hosts of this harness, with etcd's default timing
// (heartbeat 100 ms, election timeout 1 s). Each test asserts what must
// hold, waiting on conditions bounded generously; the durations it
// measures are logged ("fact: ..." lines of go test -v), never asserted:
// they depend on the machine's load. The package doc lists what they
// measured.

// bound is the generous bound on every wait of these tests: what a broken
// etcd would exceed, never a pace.
const bound = 30 * time.Second

// readDeadline is the deadline of the reads through a cut-off member:
// they end only with it (the client retries them), so it is short.
const readDeadline = 10 * time.Second

func fact(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("fact: "+format, args...)
}

// outcome is the end of one call: how long after the start of the
// measurement it returned, and its error.
type outcome struct {
	after time.Duration
	err   error
}

// TestFactPartitionedMember: one member of three cut off by a partition.
// The other two keep (or elect) a leader and serve writes; the cut-off
// member's linearizable writes and reads fail within a bounded time, and
// a watch through it that requires a leader is cancelled; after the heal
// it rejoins with what was written meanwhile. Once for a follower, once
// for the leader.
func TestFactPartitionedMember(t *testing.T) {
	for _, which := range []string{"follower", "leader"} {
		t.Run(which, func(t *testing.T) {
			nw := cluster.NewNetwork(t, 3)
			e := cluster.StartEtcd(t, nw.Hosts, cluster.EtcdOptions{})
			leader := e.WaitLeader(t)
			cut := leader
			if which == "follower" {
				cut = e.Others(leader)[0]
			}
			majority := e.Others(cut)
			mc, cc := e.ClientOf(t, majority...), cut.Client(t)
			ctx := context.Background()
			if _, err := mc.Put(ctx, "lvss/fact/before", "1"); err != nil {
				t.Fatal(err)
			}
			// A watch through the cut-off member, requiring a leader.
			wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			defer wcancel()
			wch := cc.Watch(wctx, "lvss/fact/", clientv3.WithPrefix())
			// And one that does not require a leader.
			pctx, pcancel := context.WithCancel(ctx)
			defer pcancel()
			pch := cc.Watch(pctx, "lvss/fact/", clientv3.WithPrefix())
			// The watches are set up once a put through the member shows
			// in them.
			if _, err := cc.Put(ctx, "lvss/fact/watch-ready", "1"); err != nil {
				t.Fatal(err)
			}
			waitEvent(t, wch, "lvss/fact/watch-ready")
			waitEvent(t, pch, "lvss/fact/watch-ready")

			start := time.Now()
			cut.Host.Partition(t)

			// The cut-off member: a write, a linearizable read, the watch.
			var wg sync.WaitGroup
			var put, get, getRL, watch outcome
			wg.Add(4)
			go func() {
				defer wg.Done()
				c, cancel := context.WithTimeout(ctx, bound)
				defer cancel()
				_, err := cc.Put(c, "lvss/fact/cut", "1")
				put = outcome{time.Since(start), err}
			}()
			go func() {
				defer wg.Done()
				c, cancel := context.WithTimeout(ctx, readDeadline)
				defer cancel()
				_, err := cc.Get(c, "lvss/fact/before")
				get = outcome{time.Since(start), err}
			}()
			go func() {
				defer wg.Done()
				c, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), readDeadline)
				defer cancel()
				_, err := cc.Get(c, "lvss/fact/before")
				getRL = outcome{time.Since(start), err}
			}()
			go func() {
				defer wg.Done()
				c, cancel := context.WithTimeout(ctx, bound)
				defer cancel()
				for {
					select {
					case wr, ok := <-wch:
						if !ok || wr.Err() != nil || wr.Canceled {
							err := wr.Err()
							if err == nil {
								err = fmt.Errorf("watch channel closed")
							}
							watch = outcome{time.Since(start), err}
							return
						}
					case <-c.Done():
						watch = outcome{time.Since(start), nil}
						return
					}
				}
			}()

			// The majority: a leader among them, and a write.
			var newLeader *cluster.Member
			testenv.Eventually(t, bound, "a leader among the majority", func() bool {
				newLeader = e.LeaderOf(majority...)
				return newLeader != nil
			})
			leaderAfter := time.Since(start)
			testenv.Eventually(t, bound, "a write through the majority", func() bool {
				c, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, err := mc.Put(c, "lvss/fact/during", "1")
				return err == nil
			})
			writeAfter := time.Since(start)
			wg.Wait()
			fact(t, "%s partitioned: the majority has leader %s %s after (it was %s), writes %s after",
				which, newLeader.Name, leaderAfter.Round(time.Millisecond), leader.Name, writeAfter.Round(time.Millisecond))
			fact(t, "%s partitioned: its put failed %s after: %v", which, put.after.Round(time.Millisecond), put.err)
			fact(t, "%s partitioned: its linearizable get (deadline %s) failed %s after: %v", which, readDeadline, get.after.Round(time.Millisecond), get.err)
			fact(t, "%s partitioned: its linearizable get WithRequireLeader (deadline %s) failed %s after: %v", which, readDeadline, getRL.after.Round(time.Millisecond), getRL.err)
			fact(t, "%s partitioned: its watch (WithRequireLeader) ended %s after: %v", which, watch.after.Round(time.Millisecond), watch.err)
			if put.err == nil || get.err == nil || getRL.err == nil {
				t.Fatalf("the cut-off member served: put %v, get %v, get requiring a leader %v", put.err, get.err, getRL.err)
			}
			if watch.err == nil {
				t.Errorf("the watch through the cut-off member, requiring a leader, did not end within %s", bound)
			}

			// The watch without WithRequireLeader, now that the other has
			// ended and the majority has written: it has neither ended
			// nor seen the write.
			select {
			case wr, ok := <-pch:
				t.Fatalf("the watch without WithRequireLeader through the cut-off member delivered %+v (open %v, err %v)", wr.Events, ok, wr.Err())
			default:
				fact(t, "%s partitioned: its watch without WithRequireLeader neither ended nor saw the majority's write", which)
			}

			_, _, termBefore, err := newLeader.Status()
			if err != nil {
				t.Fatal(err)
			}
			healed := time.Now()
			cut.Host.Heal(t)
			testenv.Eventually(t, bound, "the healed member to serve what the majority wrote", func() bool {
				c, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				r, err := cc.Get(c, "lvss/fact/during")
				return err == nil && len(r.Kvs) == 1
			})
			rejoin := time.Since(healed)
			waitEvent(t, pch, "lvss/fact/during")
			fact(t, "%s healed: the watch without WithRequireLeader had delivered the majority's write by %s after the heal", which, time.Since(healed).Round(time.Millisecond))
			e.WaitHealthy(t)
			_, l, termAfter, err := cut.Status()
			if err != nil || e.Member(l) == nil {
				t.Fatalf("the healed member names leader %x (%v)", l, err)
			}
			fact(t, "%s healed: serves linearizable reads again %s after the heal; leader %s in term %d (before the heal %s in term %d)",
				which, rejoin.Round(time.Millisecond), e.Member(l).Name, termAfter, newLeader.Name, termBefore)
		})
	}
}

// TestFactPreVote: etcd 3.4 runs without raft's pre-vote by default, so
// a member cut off campaigns again and again, raising its term, and when
// it is healed that higher term makes the leader step down: an election
// (TestFactPartitionedMember logs the terms). With --pre-vote (etcd 3.5's
// default) a cut-off member's campaigns fail before they raise its term,
// and the heal leaves the leader and its term as they were.
func TestFactPreVote(t *testing.T) {
	nw := cluster.NewNetwork(t, 3)
	e := cluster.StartEtcd(t, nw.Hosts, cluster.EtcdOptions{Args: []string{"--pre-vote"}})
	leader := e.WaitLeader(t)
	_, _, before, err := leader.Status()
	if err != nil {
		t.Fatal(err)
	}
	cut := e.Others(leader)[0]
	ctx := context.Background()
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	cc := cut.Client(t)
	wch := cc.Watch(wctx, "lvss/fact/", clientv3.WithPrefix())
	if _, err := cc.Put(ctx, "lvss/fact/watch-ready", "1"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, wch, "lvss/fact/watch-ready")
	cut.Host.Partition(t)
	// Until the cut-off member knows it has no leader (its watch that
	// requires one ends): it has campaigned by then.
	testenv.Eventually(t, bound, "the cut-off member to lose its leader", func() bool {
		select {
		case wr, ok := <-wch:
			return !ok || wr.Err() != nil
		default:
			return false
		}
	})
	_, _, cutTerm, err := cut.Status()
	if err != nil {
		t.Fatal(err)
	}
	cut.Host.Heal(t)
	e.WaitHealthy(t)
	after := e.WaitLeader(t)
	_, _, term, err := after.Status()
	if err != nil {
		t.Fatal(err)
	}
	fact(t, "with --pre-vote: leader %s in term %d before a follower's partition, the follower at term %d cut off, leader %s in term %d after its heal",
		leader.Name, before, cutTerm, after.Name, term)
	if after != leader || term != before {
		t.Errorf("with --pre-vote the heal of a follower changed the leader from %s (term %d) to %s (term %d)", leader.Name, before, after.Name, term)
	}
}

// TestFactLeaderKilled: SIGKILL of the leader, three times: the others
// elect a new one and serve writes; the time to each is measured. Leases
// outlive the change: the new leader gives each its whole TTL again.
func TestFactLeaderKilled(t *testing.T) {
	nw := cluster.NewNetwork(t, 3)
	e := cluster.StartEtcd(t, nw.Hosts, cluster.EtcdOptions{})
	ctx := context.Background()
	all := e.Client(t)
	for round := range 3 {
		leader := e.WaitLeader(t)
		others := e.Others(leader)
		oc := e.ClientOf(t, others...)
		// A lease with no keepalives, half its TTL gone by the kill.
		lease, err := all.Grant(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, bound, "the lease to be half spent", func() bool {
			r, err := all.TimeToLive(ctx, lease.ID)
			return err == nil && r.TTL <= 5
		})
		start := time.Now()
		leader.Kill(t)
		newLeader := e.WaitLeader(t, leader)
		elected := time.Since(start)
		testenv.Eventually(t, bound, "a write after the leader's death", func() bool {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := oc.Put(c, "lvss/fact/after-kill", fmt.Sprint(round))
			return err == nil
		})
		wrote := time.Since(start)
		r, err := oc.TimeToLive(ctx, lease.ID)
		if err != nil {
			t.Fatal(err)
		}
		fact(t, "leader %s killed: %s elected %s after, first write %s after; a 10 s lease with 5 s left has %d s after the election",
			leader.Name, newLeader.Name, elected.Round(time.Millisecond), wrote.Round(time.Millisecond), r.TTL)
		if r.TTL <= 5 {
			t.Errorf("the lease's TTL after the leader change is %d s, want it refreshed above what was left (5 s)", r.TTL)
		}
		leader.Restart(t)
		e.WaitHealthy(t)
	}
}

// TestFactClientKeepalive: a member's host partitioned, a client on
// another host that knows every member sends some requests to the cut-off
// member's connection, which stays open (no packet says it is dead) and
// times them out, for as long as the partition lasts; with gRPC
// keepalives (DialKeepAliveTime/Timeout) the client drops that
// connection within about their sum and its requests all succeed.
func TestFactClientKeepalive(t *testing.T) {
	nw := cluster.NewNetwork(t, 3)
	e := cluster.StartEtcd(t, nw.Hosts, cluster.EtcdOptions{})
	// The member cut off is a follower, so that the majority's leader
	// stays and every failure is the client's connection, not an
	// election; the clients run on another host.
	leader := e.WaitLeader(t)
	cut := e.Others(leader)[0]
	on := e.Others(cut)[0].Host
	plain := e.ClientOn(t, on)
	cfg := e.Config(e.Endpoints(), on.DialContext)
	cfg.DialKeepAliveTime, cfg.DialKeepAliveTimeout = time.Second, time.Second
	kept, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	ctx := context.Background()
	// Both have a connection to every member before the partition.
	for _, c := range []*clientv3.Client{plain, kept} {
		for i := range 6 {
			if _, err := c.Put(ctx, "lvss/fact/ka", fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cut.Host.Partition(t)
	start := time.Now()
	const n = 12
	// Both from the partition on, at once.
	var plainFailed int
	var plainTook time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			c, cancel := context.WithTimeout(ctx, time.Second)
			if _, err := plain.Put(c, "lvss/fact/ka", fmt.Sprint(i)); err != nil {
				plainFailed++
			}
			cancel()
		}
		plainTook = time.Since(start)
	}()
	run, failed := 0, 0
	testenv.Eventually(t, bound, fmt.Sprintf("%d puts in a row through the client with keepalives", n), func() bool {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := kept.Put(c, "lvss/fact/ka", "kept"); err != nil {
			run = 0
			failed++
			return false
		}
		run++
		return run == n
	})
	keptTook := time.Since(start)
	<-done
	fact(t, "a follower partitioned: a client on another host without keepalives, knowing every member, failed %d of %d puts (1 s deadline each) over %s",
		plainFailed, n, plainTook.Round(time.Millisecond))
	fact(t, "a follower partitioned: the client with 1 s + 1 s keepalives failed %d puts, then %d in a row succeeded, %s after the partition",
		failed, n, keptTook.Round(time.Millisecond))
	if plainFailed == 0 {
		t.Logf("the client without keepalives sent no put to the cut-off member's connection")
	}
}

// TestFactLeaseExpiry: a lease of TTL 3 s whose keepalives stop: its key
// is deleted and a watcher (on another host) sees the delete, about TTL
// after the last keepalive the server acknowledged.
func TestFactLeaseExpiry(t *testing.T) {
	nw := cluster.NewNetwork(t, 3)
	e := cluster.StartEtcd(t, nw.Hosts, cluster.EtcdOptions{})
	ctx := context.Background()
	holder, watcher := e.ClientOn(t, nw.Hosts[0]), e.ClientOn(t, nw.Hosts[1])
	const ttl = 3
	lease, err := holder.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	put, err := holder.Put(ctx, "lvss/fact/host", "h0", clientv3.WithLease(lease.ID))
	if err != nil {
		t.Fatal(err)
	}
	wch := watcher.Watch(clientv3.WithRequireLeader(ctx), "lvss/fact/host", clientv3.WithRev(put.Header.Revision+1))
	kctx, stop := context.WithCancel(ctx)
	ka, err := holder.KeepAlive(kctx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Keep it alive past its TTL, then stop.
	var last time.Time
	for begun := time.Now(); time.Since(begun) < 2*ttl*time.Second; {
		select {
		case r, ok := <-ka:
			if !ok {
				t.Fatal("keepalive channel closed")
			}
			if r.TTL != ttl {
				t.Fatalf("keepalive answered TTL %d", r.TTL)
			}
			last = time.Now()
		case <-time.After(bound):
			t.Fatal("no keepalive answer")
		}
	}
	stop()
	select {
	case wr := <-wch:
		gone := time.Since(last)
		if wr.Err() != nil || len(wr.Events) != 1 || wr.Events[0].Type != clientv3.EventTypeDelete {
			t.Fatalf("the watcher saw %+v (%v), want the key's delete", wr.Events, wr.Err())
		}
		fact(t, "a %d s lease whose keepalives stopped: its key's delete seen by a watcher %s after the last keepalive answer",
			ttl, gone.Round(time.Millisecond))
		if gone < ttl*time.Second-time.Second {
			t.Errorf("the key went %s after the last keepalive, well before the lease's %d s", gone, ttl)
		}
	case <-time.After(bound):
		t.Fatalf("the key of an expired lease was not deleted within %s", bound)
	}
	r, err := watcher.Get(ctx, "lvss/fact/host")
	if err != nil || len(r.Kvs) != 0 {
		t.Fatalf("after the lease expired: %v %v", r, err)
	}
}

// TestFactCreateIfAbsentRace: a transaction comparing a key's create
// revision with 0 (absent) and putting it is a barrier: of two clients on
// two hosts racing for the same key, exactly one wins, and both read the
// winner's value after.
func TestFactCreateIfAbsentRace(t *testing.T) {
	nw := cluster.NewNetwork(t, 3)
	e := cluster.StartEtcd(t, nw.Hosts, cluster.EtcdOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	clients := []*clientv3.Client{e.ClientOn(t, nw.Hosts[0]), e.ClientOn(t, nw.Hosts[1])}
	const rounds = 20
	wins := make([]int, len(clients))
	for round := range rounds {
		key := fmt.Sprintf("lvss/fact/barrier/%d", round)
		go1 := make(chan struct{})
		var wg sync.WaitGroup
		won := make([]bool, len(clients))
		errs := make([]error, len(clients))
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-go1
				r, err := c.Txn(ctx).
					If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
					Then(clientv3.OpPut(key, fmt.Sprint(i))).
					Else(clientv3.OpGet(key)).Commit()
				if err == nil {
					won[i] = r.Succeeded
				}
				errs[i] = err
			}()
		}
		close(go1)
		wg.Wait()
		var winner = -1
		for i := range clients {
			if errs[i] != nil {
				t.Fatalf("round %d: client %d: %v", round, i, errs[i])
			}
			if won[i] {
				if winner >= 0 {
					t.Fatalf("round %d: clients %d and %d both created %s", round, winner, i, key)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: neither client created %s", round, key)
		}
		wins[winner]++
		for i, c := range clients {
			r, err := c.Get(ctx, key)
			if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != fmt.Sprint(winner) {
				t.Fatalf("round %d: client %d reads %v (%v), want the winner's %d", round, i, r, err, winner)
			}
		}
	}
	fact(t, "create-if-absent raced %d times by clients on h0 and h1: exactly one won each time (h0 %d, h1 %d)", rounds, wins[0], wins[1])
}

// TestFactMinimumTTL: the server raises a lease's TTL to its minimum,
// ceil(1.5 x election timeout) seconds: 2 s with the default 1 s election
// timeout, 5 s with 3 s. It refuses none below it.
func TestFactMinimumTTL(t *testing.T) {
	for _, c := range []struct {
		election time.Duration
		min      int64
	}{{0, 2}, {3 * time.Second, 5}} {
		t.Run(fmt.Sprintf("election-%s", c.election), func(t *testing.T) {
			nw := cluster.NewNetwork(t, 1)
			e := cluster.StartEtcd(t, nw.Hosts, cluster.EtcdOptions{ElectionTimeout: c.election})
			cl := e.Client(t)
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			for _, asked := range []int64{-1, 0, 1, c.min, c.min + 1} {
				r, err := cl.Grant(ctx, asked)
				if err != nil {
					fact(t, "election timeout %s: Grant(%d) refused: %v", c.election, asked, err)
					continue
				}
				want := max(asked, c.min)
				fact(t, "election timeout %s: Grant(%d) gives TTL %d", c.election, asked, r.TTL)
				if r.TTL != want {
					t.Errorf("Grant(%d) gives TTL %d, want %d", asked, r.TTL, want)
				}
			}
		})
	}
}

// waitEvent waits for a put of key on wch.
func waitEvent(t *testing.T, wch clientv3.WatchChan, key string) {
	t.Helper()
	timeout := time.After(bound)
	for {
		select {
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				t.Fatalf("watch ended waiting for %s: %v", key, wr.Err())
			}
			for _, ev := range wr.Events {
				if string(ev.Kv.Key) == key {
					return
				}
			}
		case <-timeout:
			t.Fatalf("no event of %s within %s", key, bound)
		}
	}
}
