package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writers/redis"
)

// The Redis tests run the application in the test process (goroutines
// with their own connections: the pause is the server's, so the writer's
// process does not matter) and the writer (lvss-writer redis) as a process
// of its own, so that it can be killed.

// redisCounter is the key of the committed counter; the accounts are
// redisAccount(0..bankAccounts-1).
const redisCounter = "counter"

func redisAccount(i int) string { return "acct:" + strconv.Itoa(i) }

// redisApp is the bank application under load.
type redisApp struct {
	c    *goredis.Client
	acks string // the acknowledgement log
	f    *os.File
	log  *ackLog
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error // the first failed transfer
}

// redisClient connects to srv over its Unix socket. Its reads wait up to
// 30 s: a paused server answers writes only when the pause ends.
func redisClient(srv *testenv.Redis, poolSize int) *goredis.Client {
	return goredis.NewClient(&goredis.Options{Network: "unix", Addr: srv.Socket, Protocol: 2,
		DisableIdentity: true, PoolSize: poolSize, MaxRetries: -1, ReadTimeout: 30 * time.Second})
}

// startRedisApp opens the accounts and starts appWorkers goroutines, each
// moving a random amount between two random accounts and counting the
// transfer, in one MULTI/EXEC; the counter value EXEC returned is logged
// as acknowledged. The total of the balances never changes.
func startRedisApp(t *testing.T, work string, srv *testenv.Redis) *redisApp {
	t.Helper()
	a := &redisApp{c: redisClient(srv, appWorkers+1), acks: filepath.Join(work, "acks"), stop: make(chan struct{})}
	ctx := context.Background()
	var pairs []any
	for i := range bankAccounts {
		pairs = append(pairs, redisAccount(i), bankOpening)
	}
	if err := a.c.MSet(ctx, append(pairs, redisCounter, 0)...).Err(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(a.acks)
	if err != nil {
		t.Fatal(err)
	}
	a.f, a.log = f, &ackLog{w: f}
	for range appWorkers {
		a.wg.Add(1)
		go a.work()
	}
	t.Cleanup(func() { a.halt() })
	eventually(t, 20*time.Second, "the application's first commits", func() bool { return len(a.read(t)) >= 200 })
	return a
}

func (a *redisApp) work() {
	defer a.wg.Done()
	ctx := context.Background()
	for {
		select {
		case <-a.stop:
			return
		default:
		}
		from, to := rand.IntN(bankAccounts), rand.IntN(bankAccounts)
		amount := 1 + rand.IntN(50)
		var n *goredis.IntCmd
		_, err := a.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.DecrBy(ctx, redisAccount(from), int64(amount))
			p.IncrBy(ctx, redisAccount(to), int64(amount))
			n = p.Incr(ctx, redisCounter)
			return nil
		})
		if err == nil {
			err = a.log.record(int(n.Val()))
		}
		if err != nil {
			a.mu.Lock()
			if a.err == nil {
				a.err = err
			}
			a.mu.Unlock()
			return
		}
		// A moderate load (a few hundred transfers a second in all) on a
		// machine the other tests share.
		time.Sleep(time.Millisecond)
	}
}

// halt stops the workers and reports the first failed transfer.
func (a *redisApp) halt() error {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	a.wg.Wait()
	a.c.Close()
	a.f.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *redisApp) read(t *testing.T) []ack { return readAcks(t, a.acks) }

// startRedisWriter runs lvss-writer redis with JSON logs; its output file
// is its log.
func startRedisWriter(t *testing.T, work, socket string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "lvss-writer"),
		append([]string{"redis", "--socket", socket, "--log-format", "json", "--log-level", "debug"}, args...)...)
	return startCmd(t, work, "writer", cmd)
}

// redisPauseRecord is the writer's "writes paused" record.
type redisPauseRecord struct {
	Msg      string        `json:"msg"`
	Session  string        `json:"session"`
	FreezeAt time.Time     `json:"freeze_at"`
	LockedAt time.Time     `json:"locked_at"`
	Bound    time.Duration `json:"bound"`
	Until    time.Time     `json:"until"`
}

func redisPauses(t *testing.T, log string) []redisPauseRecord {
	t.Helper()
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []redisPauseRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r redisPauseRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Msg == "writes paused" {
			out = append(out, r)
		}
	}
	return out
}

// redisPersistRecord is the writer's "files match the paused dataset"
// record, for the figures it carries.
type redisPersistRecord struct {
	Msg       string        `json:"msg"`
	Session   string        `json:"session"`
	Took      time.Duration `json:"took"`
	Polls     int           `json:"polls"`
	AOFBuffer int64         `json:"aof_buffer_at_pause"`
	BGSave    time.Duration `json:"bgsave"`
}

func redisPersists(t *testing.T, log string) map[string]redisPersistRecord {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]redisPersistRecord{}
	for _, l := range strings.Split(string(b), "\n") {
		var r redisPersistRecord
		if json.Unmarshal([]byte(l), &r) == nil && r.Msg == "files match the paused dataset" {
			out[r.Session] = r
		}
	}
	return out
}

// checkRedisCopy starts a second server on the writable copy of the
// snapshot's dir, with the same persistence, and returns its counter after
// checking that it loaded everything and the balances add up.
func checkRedisCopy(t *testing.T, dir string, aof bool) int {
	t.Helper()
	srv := testenv.StartRedis(t, testenv.RedisOptions{Dir: dir, AOF: aof})
	defer srv.Stop()
	c := redisClient(srv, 1)
	defer c.Close()
	ctx := context.Background()
	info, err := c.Info(ctx, "persistence").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "loading:0") {
		t.Fatalf("the copy's server is still loading:\n%s", info)
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != bankAccounts+1 {
		t.Fatalf("the copy's server holds %d keys (%v), want %d accounts and the counter", n, err, bankAccounts)
	}
	keys := make([]string, bankAccounts)
	for i := range keys {
		keys[i] = redisAccount(i)
	}
	vals, err := c.MGet(ctx, keys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, v := range vals {
		s, ok := v.(string)
		n, err := strconv.Atoi(s)
		if !ok || err != nil {
			t.Fatalf("account %d in the copy is %v", i, v)
		}
		total += n
	}
	if total != bankAccounts*bankOpening {
		t.Fatalf("the copy's %d accounts hold %d, want %d", bankAccounts, total, bankAccounts*bankOpening)
	}
	n, err := c.Get(ctx, redisCounter).Int()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRedisWriterOnBtrfsUnderLoad is the integration test, with
// the AOF on (appendfsync everysec) and off (RDB only): the real lvssd, a
// btrfs loop volume holding the server's dir, an application writing
// under load, the redis writer as its own process, and backups through the
// Go client. A second server started on each snapshot's copy must load,
// keep the invariant, and hold exactly the transfers executed before the
// pause: every one acknowledged before CLIENT PAUSE returned, and the next
// acknowledged only after the writer's release (L28).
func TestRedisWriterOnBtrfsUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		aof  bool
	}{{"AOF", true}, {"RDB", false}} {
		t.Run(tc.name, func(t *testing.T) {
			fs := testenv.LoopFS(t, "btrfs", 256<<20)
			dir := filepath.Join(fs.Mount, "redis")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			srv := testenv.StartRedis(t, testenv.RedisOptions{Dir: dir, AOF: tc.aof})
			d := startDaemon(t, shortTimeouts)
			work := t.TempDir() // not on the snapshotted volume
			app := startRedisApp(t, work, srv)
			w := startRedisWriter(t, work, d.socket, "--socket-path", srv.Socket)
			d.waitWriters(t, 1)
			listWritersShows(t, d.socket, "Writer name: 'redis'", "Writer Id: "+redis.ClassID.String(),
				"dataset (VSS_CT_DATABASE)", dir)

			const rounds = 3
			type result struct {
				session string
				copy    string
			}
			var results []result
			for i := range rounds {
				cp := filepath.Join(work, fmt.Sprintf("copy%d", i), "redis")
				r, err := componentBackup(t, d.socket, componentBackupSpec{
					classID: redis.ClassID,
					volumes: []string{fs.Mount},
					copyOut: func(devices map[string]string, _ []*document.Component) error {
						return copyTree(devices[fs.Mount], fs.Mount, dir, cp)
					},
				})
				if err != nil {
					t.Fatalf("backup %d: %v", i, err)
				}
				results = append(results, result{r.session.String(), cp})
				moreCommits(t, app.read, 20) // the application runs between backups
			}
			if err := app.halt(); err != nil {
				t.Fatalf("a transfer failed: %v", err)
			}
			acks := app.read(t)
			released := logRecords(t, w.Out, "redis released")
			persists := redisPersists(t, w.Out)
			for i, res := range results {
				rec := sessionRecord(t, released, res.session)
				if rec.By != "Thaw" {
					t.Fatalf("backup %d: the writer released the server by %s, not Thaw", i, rec.By)
				}
				c := checkRedisCopy(t, res.copy, tc.aof)
				// CLIENT PAUSE WRITE holds every write from LockedAt to
				// ReleaseAt: the snapshot is the dataset at LockedAt.
				checkCounter(t, fmt.Sprintf("%s backup %d", tc.name, i), c, acks, rec, true)
				p := persists[res.session]
				how := fmt.Sprintf("AOF buffer %d bytes at the pause", p.AOFBuffer)
				if !tc.aof {
					how = fmt.Sprintf("BGSAVE %s", p.BGSave.Round(time.Microsecond))
				}
				t.Logf("%s backup %d: paused %s after Freeze arrived; files matched after %s (%s, %d INFO polls); writes held %s in all",
					tc.name, i, rec.LockedAt.Sub(rec.FreezeAt).Round(time.Microsecond), p.Took.Round(time.Microsecond),
					how, p.Polls, rec.Held.Round(time.Microsecond))
			}
			span := acks[len(acks)-1].at.Sub(acks[0].at)
			t.Logf("%s: the application made %d transfers in %s (%.0f a second)", tc.name, len(acks),
				span.Round(time.Millisecond), float64(len(acks))/span.Seconds())
		})
	}
}

// TestRedisWriterKilledWhileFrozen: SIGKILL of the writer while the
// server's writes are paused. Nothing can unpause them any more, but the
// pause carries its bound: the writes resume by themselves when it passes,
// not later. A system-level writer that stays in Freeze until the test
// wakes it keeps the redis writer (back-end, frozen before it) frozen long
// enough to kill it; the writer's window is 10 s, so the bound is about
// 11 s.
func TestRedisWriterKilledWhileFrozen(t *testing.T) {
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	dir := filepath.Join(fs.Mount, "redis")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := testenv.StartRedis(t, testenv.RedisOptions{Dir: dir, AOF: true})
	d := startDaemon(t, frozenTimeouts(t))
	work := t.TempDir()
	app := startRedisApp(t, work, srv)
	w := startRedisWriter(t, work, d.socket, "--socket-path", srv.Socket, "--freeze-timeout", "10s")
	slow := d.startDawdler(t, "system")
	d.waitWriters(t, 2)

	done := make(chan error, 1)
	go func() {
		// The set's outcome is not the point: the writer dies in it.
		_, err := snapshotSetWithWriters(t, d.socket, fs.Mount)
		done <- err
	}()
	slow.lw.WaitEntered(t, "Freeze", 1) // the redis writer's Freeze has answered
	ps := redisPauses(t, w.Out)
	if len(ps) == 0 {
		t.Fatal("the redis writer answered Freeze without pausing the server")
	}
	pause := ps[0]
	// No transfer runs while the server is paused: the counter stays, and
	// no acknowledgement is of a later value (replies to transfers executed
	// just before the pause may still arrive after CLIENT PAUSE returned).
	c := redisClient(srv, 1)
	defer c.Close()
	counter := func() int {
		n, err := c.Get(context.Background(), redisCounter).Int()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	held := counter()
	time.Sleep(300 * time.Millisecond) // the window of the check, not a wait for anything
	if n := counter(); n != held {
		t.Fatalf("%d transfers ran while the server was paused", n-held)
	}
	if acks := app.read(t); len(acks) > 0 && acks[len(acks)-1].n > held {
		t.Fatalf("transfer %d was acknowledged while the server was paused at %d", acks[len(acks)-1].n, held)
	}
	killed := time.Now()
	if !killed.Before(pause.Until) {
		t.Fatalf("too late to test: the pause (bound %s) ended before the kill", pause.Bound)
	}
	if err := w.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = w.Wait()
	var resumed time.Time
	eventually(t, pause.Bound+15*time.Second, "the application's next transfer", func() bool {
		for _, a := range app.read(t) {
			if a.n > held && (resumed.IsZero() || a.at.Before(resumed)) {
				resumed = a.at
			}
		}
		return !resumed.IsZero()
	})
	t.Logf("the writer paused the server at %s with a bound of %s and was killed %s later; writes resumed %s after the kill, %s after the pause began (%s after its bound)",
		pause.LockedAt.Format(time.RFC3339Nano), pause.Bound, killed.Sub(pause.LockedAt).Round(time.Millisecond),
		resumed.Sub(killed).Round(time.Millisecond), resumed.Sub(pause.LockedAt).Round(time.Millisecond),
		resumed.Sub(pause.Until).Round(time.Millisecond))
	if late := resumed.Sub(pause.Until); late > time.Second {
		t.Errorf("writes resumed %s after the pause's bound", late)
	}
	// The server ran CLIENT PAUSE after Freeze began, so its pause ends
	// after FreezeAt+Bound (Redis counts whole milliseconds).
	if earliest := pause.FreezeAt.Add(pause.Bound - time.Millisecond); resumed.Before(earliest) {
		t.Errorf("writes resumed %s before the pause's bound, with nobody left to unpause", earliest.Sub(resumed))
	}
	slow.wake(t)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the snapshot set did not end after the writer died")
	}
	if err := app.halt(); err != nil {
		t.Fatalf("a transfer failed: %v", err)
	}
}

// TestRedisWriterUnreachableServerFailsIdentify: a server that does not
// answer fails Identify with the driver's message and
// VSS_E_WRITERERROR_RETRYABLE; lvssd leaves the writer out of the metadata
// gathering and logs why.
func TestRedisWriterUnreachableServerFailsIdentify(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	srv.Stop() // its port is now closed
	d := startDaemon(t, shortTimeouts)
	work := t.TempDir()
	startRedisWriter(t, work, d.socket, "--addr", srv.Addr)
	if hr := identifyLeftOut(t, d.socket, "dial tcp "+srv.Addr+": connect: connection refused"); hr != vsserr.WriterErrorRetryable {
		t.Errorf("Identify failed with %s, want VSS_E_WRITERERROR_RETRYABLE", hr)
	}
}
