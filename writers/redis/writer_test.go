package redis

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// startServer starts a throwaway server with the AOF on or off.
func startServer(t *testing.T, aof bool, args ...string) *testenv.Redis {
	t.Helper()
	return testenv.StartRedis(t, testenv.RedisOptions{AOF: aof, Args: args})
}

// client is the test's own client of r (the "application").
func client(t *testing.T, r *testenv.Redis) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Network: "unix", Addr: r.Socket, Protocol: 2, DisableIdentity: true,
		ReadTimeout: 30 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// canWrite reports whether a write on a fresh connection completes within
// d. A write that does not stays queued in the server and runs when the
// pause ends, which is harmless here.
func canWrite(t *testing.T, r *testenv.Redis, d time.Duration) bool {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Network: "unix", Addr: r.Socket, Protocol: 2, DisableIdentity: true,
		MaxRetries: -1, ContextTimeoutEnabled: true})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := c.Set(ctx, "probe", time.Now().UnixNano(), 0).Err()
	var ne net.Error
	if err != nil && ctx.Err() == nil && !(errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("probe write: %v", err)
	}
	return err == nil
}

func mustBePaused(t *testing.T, r *testenv.Redis) {
	t.Helper()
	if canWrite(t, r, 300*time.Millisecond) {
		t.Fatal("a write went through while the writer held the server paused")
	}
}

func mustBeWritable(t *testing.T, r *testenv.Redis) {
	t.Helper()
	if !canWrite(t, r, 3*time.Second) {
		t.Fatal("the server's writes are still paused")
	}
}

// recorder keeps the writer's log records, for assertions, and shows them
// in the test log.
type recorder struct {
	slog.Handler
	mu   *sync.Mutex
	recs *[]slog.Record
}

func (h recorder) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.recs = append(*h.recs, r.Clone())
	h.mu.Unlock()
	return h.Handler.Handle(ctx, r)
}

func (h recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return recorder{h.Handler.WithAttrs(as), h.mu, h.recs}
}

func (h recorder) WithGroup(n string) slog.Handler {
	return recorder{h.Handler.WithGroup(n), h.mu, h.recs}
}

// records returns the attributes of every record with msg.
func (h recorder) records(msg string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, r := range *h.recs {
		if r.Message != msg {
			continue
		}
		m := map[string]any{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
		out = append(out, m)
	}
	return out
}

func newRecorder(t *testing.T) recorder {
	return recorder{
		Handler: testenv.LogHandler(t),
		mu:      &sync.Mutex{}, recs: &[]slog.Record{},
	}
}

// mustNew builds a writer for r (over its Unix socket unless cfg says
// otherwise) that logs to the test log; its records are returned too.
func mustNew(t *testing.T, r *testenv.Redis, cfg Config) (writer.Identity, *Writer, recorder) {
	t.Helper()
	if cfg.Addr == "" && cfg.SocketPath == "" {
		cfg.SocketPath = r.Socket
	}
	rec := newRecorder(t)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(rec)
	}
	id, w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return id, w, rec
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		aof  bool
	}{{"AOF", true}, {"RDB", false}} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu  sync.Mutex
				srv *testenv.Redis
			)
			current := func() *testenv.Redis { mu.Lock(); defer mu.Unlock(); return srv }
			writertest.Run(t, func(t *testing.T) (writer.Identity, writer.Writer) {
				r := startServer(t, tc.aof)
				if err := client(t, r).Set(context.Background(), "kept", "before the backup", 0).Err(); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				srv = r
				mu.Unlock()
				id, w, _ := mustNew(t, r, Config{})
				return id, w
			}, writertest.Options{
				CheckFrozen: func(t *testing.T) { mustBePaused(t, current()) },
				CheckThawed: func(t *testing.T) { mustBeWritable(t, current()) },
				// The writer's restore procedure: the server is stopped
				// before the restore. The files stay as the backup left
				// them (VSS_RS_ALL, VSS_RS_NONE) or lose their end
				// (VSS_RS_FAILED); after PostRestore a server started on
				// them has the dataset.
				PrepareRestore: func(t *testing.T) { current().Stop() },
				Restore: func(t *testing.T, st vss.FileRestoreStatus) {
					if st == vss.RSFailed {
						truncateDataset(t, current().Dir)
					}
				},
				CheckRestored: func(t *testing.T, st vss.FileRestoreStatus) {
					if st == vss.RSFailed {
						return
					}
					r := testenv.StartRedis(t, testenv.RedisOptions{Dir: current().Dir, AOF: tc.aof})
					if v, err := client(t, r).Get(context.Background(), "kept").Result(); err != nil || v != "before the backup" {
						t.Errorf("after %s: a server started on the files has kept=%q (%v)", st, v, err)
					}
				},
			})
		})
	}
}

func TestNewRefusesBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{SocketPath: "run/redis.sock"}, "not absolute"},
		{Config{Addr: "localhost"}, "missing port"},
		{Config{FreezeTimeout: -time.Second}, "negative"},
		{Config{PersistTimeout: -time.Second}, "negative"},
	} {
		_, _, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error about %q", tc.cfg, err, tc.want)
		}
	}
	id, _, err := New(Config{})
	if err != nil || id.ClassID != ClassID || id.Name != DefaultName || id.InstanceName != DefaultAddr ||
		id.Level != vss.LevelBackEnd || id.FreezeTimeout != writer.DefaultFreezeTimeout {
		t.Errorf("identity %+v, %v", id, err)
	}
	id, _, _ = New(Config{SocketPath: "/run/redis/redis.sock", InstanceName: "cache"})
	if id.InstanceName != "cache" {
		t.Errorf("instance name %q", id.InstanceName)
	}
}

func identify(t *testing.T, w *Writer) (*document.WriterMetadata, error) {
	t.Helper()
	md := &writer.Metadata{}
	err := w.Identify(context.Background(), md)
	return md.Document(), err
}

// TestIdentifyDeclaresWhatARestartLoads: the AOF directory with the AOF
// on (and the RDB file only if there is one), the RDB file with it off.
func TestIdentifyDeclaresWhatARestartLoads(t *testing.T) {
	type fileSet struct{ path, spec string }
	check := func(t *testing.T, md *document.WriterMetadata, want ...fileSet) {
		t.Helper()
		md.Identity.Usage, md.Identity.Source = vss.UsageUserData, vss.SourceTransactedDB
		if err := md.Validate(); err != nil {
			t.Fatalf("invalid metadata: %v", err)
		}
		if len(md.Components) != 1 {
			t.Fatalf("%d components", len(md.Components))
		}
		c := md.Components[0]
		if c.Name != ComponentName || c.LogicalPath != "" || c.Type != vss.ComponentDatabase || !c.Selectable {
			t.Errorf("component %+v", c)
		}
		var got []fileSet
		for _, f := range c.DatabaseFiles {
			got = append(got, fileSet{f.Path, f.Filespec})
		}
		if len(c.DatabaseLogFiles) != 0 || len(c.Files) != 0 {
			t.Errorf("log files %+v, files %+v", c.DatabaseLogFiles, c.Files)
		}
		if len(got) != len(want) {
			t.Fatalf("file sets %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("file set %d: %v, want %v", i, got[i], want[i])
			}
		}
		t.Logf("caption %q", c.Caption)
	}
	t.Run("AOF", func(t *testing.T) {
		r := startServer(t, true)
		_, w, _ := mustNew(t, r, Config{})
		md, err := identify(t, w)
		if err != nil {
			t.Fatal(err)
		}
		check(t, md, fileSet{filepath.Join(r.Dir, "appendonlydir"), "*"})
		if err := client(t, r).Save(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		md, err = identify(t, w)
		if err != nil {
			t.Fatal(err)
		}
		check(t, md, fileSet{r.Dir, "dump.rdb"}, fileSet{filepath.Join(r.Dir, "appendonlydir"), "*"})
	})
	t.Run("RDB", func(t *testing.T) {
		r := startServer(t, false, "--dbfilename", "cache.rdb")
		_, w, _ := mustNew(t, r, Config{Addr: r.Addr}) // over TCP this time
		md, err := identify(t, w)
		if err != nil {
			t.Fatal(err)
		}
		// Not there yet: Freeze's BGSAVE writes it.
		check(t, md, fileSet{r.Dir, "cache.rdb"})
	})
}

// TestIdentifyFailsForAnUnreachableServer: RETRYABLE with the driver's
// message, directly and over the wire.
func TestIdentifyFailsForAnUnreachableServer(t *testing.T) {
	r := startServer(t, true)
	r.Stop()
	id, w, _ := mustNew(t, r, Config{Addr: r.Addr})
	_, err := identify(t, w)
	f := writertest.AsFailure(t, err)
	if f.Code != vsserr.WriterErrorRetryable || f.ApplicationHR != 0 ||
		!strings.Contains(f.Message, r.Addr) || !strings.Contains(f.Message, "connection refused") {
		t.Fatalf("Identify: %v", err)
	}

	co := writertest.Serve(t, id, w)
	res, err := co.Send(context.Background(), 0, &v1.Event{Id: 1, Type: v1.EventType_EVENT_IDENTIFY, TimeoutMs: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorRetryable || !strings.Contains(res.GetApplicationMessage(), "connection refused") {
		t.Fatalf("Identify answered %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
	t.Logf("Identify: %s: %s", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
}

// TestIdentifyFailsWithAWrongPassword: the server's refusal is
// NONRETRYABLE, with its code word as the application HRESULT.
func TestIdentifyFailsWithAWrongPassword(t *testing.T) {
	r := startServer(t, true, "--requirepass", "right")
	for _, tc := range []struct {
		password string
		hr       vsserr.HRESULT
		word     string
	}{{"wrong", 0xA0000004, "WRONGPASS"}, {"", 0xA0000003, "NOAUTH"}} {
		_, w, _ := mustNew(t, r, Config{Password: tc.password})
		_, err := identify(t, w)
		f := writertest.AsFailure(t, err)
		if f.Code != vsserr.WriterErrorNonRetryable || f.ApplicationHR != tc.hr || !strings.Contains(f.Message, tc.word) {
			t.Errorf("password %q: Identify: %v (application %s)", tc.password, err, f.ApplicationHR.Hex())
		}
	}
	_, w, _ := mustNew(t, r, Config{Password: "right"})
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
}

// session drives a writer directly, as the SDK would, with placements that
// put the server's dir in one snapshot.
type session struct {
	t   *testing.T
	w   *Writer
	id  uuid.UUID
	dir string
}

func newSession(t *testing.T, w *Writer, r *testenv.Redis) *session {
	return &session{t: t, w: w, id: uuid.New(), dir: r.Dir}
}

func (s *session) event(typ writer.EventType, d time.Duration) *writer.Event {
	return &writer.Event{
		Type: typ, SessionID: s.id, Context: vss.CtxBackup, Volumes: []string{"/"}, Deadline: time.Now().Add(d),
		Placements: []writer.Placement{{Path: s.dir, SnapshotID: uuid.New(), OriginalVolume: "/", Instant: 1}},
	}
}

func (s *session) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	s.t.Cleanup(cancel)
	return ctx
}

func (s *session) prepare() error {
	s.t.Helper()
	if _, err := identify(s.t, s.w); err != nil {
		s.t.Fatal(err)
	}
	return s.w.PrepareSnapshot(s.ctx(10*time.Second), s.event(writer.EventPrepareSnapshot, 10*time.Second))
}

func (s *session) freeze(d time.Duration) error {
	return s.w.Freeze(s.ctx(d), s.event(writer.EventFreeze, d))
}

func (s *session) thaw() error {
	return s.w.Thaw(s.ctx(5*time.Second), s.event(writer.EventThaw, 5*time.Second))
}

func (s *session) abort() error {
	return s.w.Abort(s.ctx(5*time.Second), s.event(writer.EventAbort, 5*time.Second))
}

// TestFreezeRDBReplacesTheFileWithThePausedDataset: with the AOF off,
// Freeze's BGSAVE writes the paused dataset: a write made before Freeze is
// in the file, and the file is unchanged until the thaw.
func TestFreezeRDBReplacesTheFileWithThePausedDataset(t *testing.T) {
	r := startServer(t, false)
	c := client(t, r)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, w, rec := mustNew(t, r, Config{})
	s := newSession(t, w, r)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := s.freeze(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	rdb := filepath.Join(r.Dir, "dump.rdb")
	b, err := os.ReadFile(rdb)
	if err != nil {
		t.Fatalf("Freeze left no RDB file: %v", err)
	}
	if !strings.Contains(string(b), "before") {
		t.Fatal("the RDB file lacks the write made before Freeze")
	}
	mustBePaused(t, r)
	if err := s.thaw(); err != nil {
		t.Fatal(err)
	}
	mustBeWritable(t, r)
	p := rec.records("files match the paused dataset")
	if len(p) != 1 || p[0]["persistence"] != "RDB" {
		t.Fatalf("persistence records %v", p)
	}
	rel := rec.records("redis released")
	if len(rel) != 1 || rel[0]["by"] != "Thaw" || rel[0]["session"] != s.id.String() {
		t.Fatalf("release records %v", rel)
	}
	for _, k := range []string{"held", "freeze_at", "locked_at", "release_at"} {
		if _, ok := rel[0][k]; !ok {
			t.Errorf("the release record has no %s: %v", k, rel[0])
		}
	}
	t.Logf("BGSAVE took %v, the server was held %v", p[0]["bgsave"], rel[0]["held"])
}

// TestFreezeRDBWaitsOutARunningSave: a save that forked before the pause
// lacks the latest writes; Freeze waits for it, then saves again.
func TestFreezeRDBWaitsOutARunningSave(t *testing.T) {
	r := startServer(t, false)
	c := client(t, r)
	ctx := context.Background()
	fill(t, c, 200)
	_, w, rec := mustNew(t, r, Config{})
	s := newSession(t, w, r)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	// 200 keys at 2 ms each: a save of about 0.4 s.
	if err := c.ConfigSet(ctx, "rdb-key-save-delay", "2000").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.BgSave(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "late", "after the fork", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.freeze(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	p := rec.records("files match the paused dataset")
	if len(p) != 1 || p[0]["waited_running_save"].(time.Duration) < 100*time.Millisecond {
		t.Fatalf("Freeze did not wait for the running save: %v", p)
	}
	b, err := os.ReadFile(filepath.Join(r.Dir, "dump.rdb"))
	if err != nil || !strings.Contains(string(b), "after the fork") {
		t.Fatalf("the RDB file lacks the write made after the earlier save forked (%v)", err)
	}
	if err := s.thaw(); err != nil {
		t.Fatal(err)
	}
	t.Logf("waited %v for the running save, BGSAVE took %v", p[0]["waited_running_save"], p[0]["bgsave"])
}

// fill writes n keys.
func fill(t *testing.T, c *goredis.Client, n int) {
	t.Helper()
	pipe := c.Pipeline()
	for i := range n {
		pipe.Set(context.Background(), "fill:"+strings.Repeat("x", i%7)+uuid.NewString(), i, 0)
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestFreezeRDBTooSlowFailsTimeoutAndUnpauses: a BGSAVE that cannot finish
// within the persist budget vetoes with TIMEOUT, and the writes go on at
// once.
func TestFreezeRDBTooSlowFailsTimeoutAndUnpauses(t *testing.T) {
	r := startServer(t, false)
	c := client(t, r)
	fill(t, c, 100)
	if err := c.ConfigSet(context.Background(), "rdb-key-save-delay", "100000").Err(); err != nil { // 10 s in all
		t.Fatal(err)
	}
	_, w, rec := mustNew(t, r, Config{PersistTimeout: 300 * time.Millisecond})
	s := newSession(t, w, r)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.freeze(20 * time.Second)
	f := writertest.AsFailure(t, err)
	if f.Code != vsserr.WriterErrorTimeout || !strings.Contains(f.Message, "BGSAVE") {
		t.Fatalf("Freeze: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second { // half the 20 s window it would otherwise use
		t.Errorf("Freeze gave up after %s with a 300ms budget", took)
	}
	mustBeWritable(t, r)
	if rel := rec.records("redis released"); len(rel) != 1 || rel[0]["by"] != "failed Freeze" {
		t.Fatalf("release records %v", rel)
	}
	if err := s.abort(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Freeze: %v", err)

	// The running save is now in the way of the next Freeze: RETRYABLE.
	s2 := newSession(t, w, r)
	if err := s2.prepare(); err != nil {
		t.Fatal(err)
	}
	f = writertest.AsFailure(t, s2.freeze(20*time.Second))
	if f.Code != vsserr.WriterErrorRetryable || !strings.Contains(f.Message, "still running") {
		t.Fatalf("second Freeze: %s %s", f.Code, f.Message)
	}
	mustBeWritable(t, r)
	t.Logf("second Freeze: %s", f.Message)
}

// TestFreezeRDBFailsWhenTheSaveFails: the child cannot put the file in
// place (dump.rdb is a directory); Freeze reports it NONRETRYABLE.
func TestFreezeRDBFailsWhenTheSaveFails(t *testing.T) {
	r := startServer(t, false)
	if err := os.MkdirAll(filepath.Join(r.Dir, "dump.rdb", "in-the-way"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, w, _ := mustNew(t, r, Config{})
	s := newSession(t, w, r)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	f := writertest.AsFailure(t, s.freeze(10*time.Second))
	if f.Code != vsserr.WriterErrorNonRetryable || !strings.Contains(f.Message, "rdb_last_bgsave_status:err") {
		t.Fatalf("Freeze: %s %s", f.Code, f.Message)
	}
	mustBeWritable(t, r)
	t.Logf("Freeze: %s", f.Message)
}

// TestFreezeAOFWaitsForTheFirstRewrite: appendonly switched on at run time
// writes to a temporary incr file until its first rewrite ends, and the
// manifest on disk names no complete AOF until then. Freeze waits; with a
// budget too short for it, it fails RETRYABLE.
func TestFreezeAOFWaitsForTheFirstRewrite(t *testing.T) {
	r := startServer(t, false)
	c := client(t, r)
	ctx := context.Background()
	fill(t, c, 300)
	switchOn := func() {
		t.Helper()
		if err := c.ConfigSet(ctx, "rdb-key-save-delay", "2000").Err(); err != nil { // 0.6 s rewrite
			t.Fatal(err)
		}
		if err := c.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
			t.Fatal(err)
		}
	}
	switchOn()
	_, w, _ := mustNew(t, r, Config{PersistTimeout: 100 * time.Millisecond})
	s := newSession(t, w, r)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	f := writertest.AsFailure(t, s.freeze(10*time.Second))
	if f.Code != vsserr.WriterErrorRetryable || !strings.Contains(f.Message, "first AOF rewrite") {
		t.Fatalf("Freeze: %s %s", f.Code, f.Message)
	}
	mustBeWritable(t, r)
	t.Logf("Freeze: %s", f.Message)
	if err := s.abort(); err != nil {
		t.Fatal(err)
	}

	// Again, with time enough.
	if err := c.ConfigSet(ctx, "appendonly", "no").Err(); err != nil {
		t.Fatal(err)
	}
	waitNoRewrite(t, c)
	switchOn()
	_, w2, rec := mustNew(t, r, Config{})
	s = newSession(t, w2, r)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := s.freeze(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	p := rec.records("files match the paused dataset")
	if len(p) != 1 || p[0]["waited_first_rewrite"] == nil {
		t.Fatalf("Freeze did not wait for the first rewrite: %v", p)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "appendonlydir", "temp-appendonly.aof.incr")); !os.IsNotExist(err) {
		t.Fatalf("the temporary incr file is still there after Freeze: %v", err)
	}
	if err := s.thaw(); err != nil {
		t.Fatal(err)
	}
	t.Logf("waited %v for the first rewrite", p[0]["waited_first_rewrite"])
}

func waitNoRewrite(t *testing.T, c *goredis.Client) {
	t.Helper()
	end := time.Now().Add(20 * time.Second)
	for {
		txt, err := c.Info(context.Background(), "persistence").Result()
		if err != nil {
			t.Fatal(err)
		}
		info := parseInfo(txt)
		if info["aof_rewrite_in_progress"] == "0" && info["rdb_bgsave_in_progress"] == "0" {
			return
		}
		if time.Now().After(end) {
			t.Fatal("a rewrite or save is still running after 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestACLRules: the rules docs/writer-redis.md gives are enough for a
// whole session, in both persistence modes; a user without CLIENT PAUSE
// gets NOPERM at Freeze: NONRETRYABLE, 0xA0000005, Redis's message.
func TestACLRules(t *testing.T) {
	for _, aof := range []bool{true, false} {
		r := startServer(t, aof)
		c := client(t, r)
		ctx := context.Background()
		// The rules docs/writer-redis.md gives.
		documented := []any{"acl", "setuser", "lvss", "on", ">secret", "resetkeys", "resetchannels", "-@all",
			"+client|pause", "+client|unpause", "+client|setname", "+config|get", "+info", "+bgsave", "+lastsave"}
		if err := c.Do(ctx, documented...).Err(); err != nil {
			t.Fatal(err)
		}
		_, w, _ := mustNew(t, r, Config{Username: "lvss", Password: "secret"})
		s := newSession(t, w, r)
		if err := s.prepare(); err != nil {
			t.Fatal(err)
		}
		if err := s.freeze(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		mustBePaused(t, r)
		if err := s.thaw(); err != nil {
			t.Fatal(err)
		}
		mustBeWritable(t, r)

		if err := c.Do(ctx, "acl", "setuser", "lvss", "-client|pause").Err(); err != nil {
			t.Fatal(err)
		}
		_, w, _ = mustNew(t, r, Config{Username: "lvss", Password: "secret"})
		s = newSession(t, w, r)
		if err := s.prepare(); err != nil {
			t.Fatal(err)
		}
		f := writertest.AsFailure(t, s.freeze(10*time.Second))
		if f.Code != vsserr.WriterErrorNonRetryable || f.ApplicationHR != 0xA0000005 || !strings.Contains(f.Message, "NOPERM") {
			t.Fatalf("Freeze without +client|pause: %s %s %s", f.Code, f.ApplicationHR.Hex(), f.Message)
		}
		mustBeWritable(t, r)
		t.Logf("Freeze without +client|pause: %s", f.Message)
	}
}

// TestThawAfterThePauseBoundFailsTimeout: the server ended the pause by
// itself (the writer was too slow to thaw); writes resumed at the bound,
// and Thaw says the snapshot may hold later writes.
func TestThawAfterThePauseBoundFailsTimeout(t *testing.T) {
	r := startServer(t, true)
	_, w, rec := mustNew(t, r, Config{})
	s := newSession(t, w, r)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := s.freeze(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	paused := rec.records("writes paused")
	if len(paused) != 1 {
		t.Fatalf("pause records %v", paused)
	}
	bound := paused[0]["bound"].(time.Duration)
	if bound > 300*time.Millisecond+pauseSlack || bound < pauseSlack {
		t.Fatalf("pause bound %s for a Freeze with 300ms left", bound)
	}
	start := time.Now()
	if !canWrite(t, r, 5*time.Second) {
		t.Fatal("writes did not resume at the pause bound")
	}
	resumed := time.Since(start)
	if until := paused[0]["until"].(time.Time); time.Now().After(until.Add(500 * time.Millisecond)) {
		t.Errorf("writes resumed %s after the logged bound", time.Since(until))
	}
	f := writertest.AsFailure(t, s.thaw())
	if f.Code != vsserr.WriterErrorTimeout {
		t.Fatalf("Thaw: %s %s", f.Code, f.Message)
	}
	t.Logf("bound %s; a write waited %s; Thaw: %s", bound, resumed.Round(time.Millisecond), f.Message)
}

// TestReleaseFallsBackToAFreshConnection: the writer's connection was
// killed while frozen; Thaw unpauses over a new one.
func TestReleaseFallsBackToAFreshConnection(t *testing.T) {
	r := startServer(t, true)
	c := client(t, r)
	_, w, rec := mustNew(t, r, Config{})
	s := newSession(t, w, r)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := s.freeze(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	killWriterConn(t, c)
	mustBePaused(t, r)
	if err := s.thaw(); err != nil {
		t.Fatal(err)
	}
	mustBeWritable(t, r)
	if warn := rec.records("CLIENT UNPAUSE failed; the server's writes resume when the pause bound passes"); len(warn) != 0 {
		t.Fatalf("the fallback did not work: %v", warn)
	}
}

// killWriterConn kills the writer's connection from the server's side.
func killWriterConn(t *testing.T, c *goredis.Client) {
	t.Helper()
	list, err := c.Do(context.Background(), "client", "list").Text()
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, l := range strings.Split(list, "\n") {
		if strings.Contains(l, "name=lvss-writer") {
			id = strings.TrimPrefix(strings.Fields(l)[0], "id=")
		}
	}
	if id == "" {
		t.Fatalf("no writer connection in CLIENT LIST:\n%s", list)
	}
	if err := c.Do(context.Background(), "client", "kill", "id", id).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestFreezeReopensAConnectionBrokenWhileIdle: the server dropped the
// writer's connection between PrepareSnapshot and Freeze (a restart, an
// idle timeout); Freeze opens a new one before it pauses.
func TestFreezeReopensAConnectionBrokenWhileIdle(t *testing.T) {
	r := startServer(t, true)
	c := client(t, r)
	_, w, _ := mustNew(t, r, Config{})
	s := newSession(t, w, r)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	killWriterConn(t, c)
	if err := s.freeze(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	mustBePaused(t, r)
	if err := s.thaw(); err != nil {
		t.Fatal(err)
	}
	mustBeWritable(t, r)
}

// TestLayoutChangeAfterIdentifyIsRefused: the AOF was switched on after
// Identify declared the RDB file; the requester's metadata would miss the
// AOF directory.
func TestLayoutChangeAfterIdentifyIsRefused(t *testing.T) {
	r := startServer(t, false)
	_, w, _ := mustNew(t, r, Config{})
	s := newSession(t, w, r)
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	if err := client(t, r).ConfigSet(context.Background(), "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	err := w.PrepareSnapshot(s.ctx(10*time.Second), s.event(writer.EventPrepareSnapshot, 10*time.Second))
	if f := writertest.AsFailure(t, err); f.Code != vsserr.WriterErrorRetryable || !strings.Contains(f.Message, "gather writer metadata again") {
		t.Fatalf("PrepareSnapshot: %v", err)
	}
}

// TestPrepareSnapshotVetoesADirOutsideTheSet: the requester included the
// component but not its volume.
func TestPrepareSnapshotVetoesADirOutsideTheSet(t *testing.T) {
	r := startServer(t, true)
	_, w, _ := mustNew(t, r, Config{})
	s := newSession(t, w, r)
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	ev := s.event(writer.EventPrepareSnapshot, 10*time.Second)
	ev.Placements[0].SnapshotID, ev.Placements[0].Instant = uuid.Nil, 0
	err := w.PrepareSnapshot(s.ctx(10*time.Second), ev)
	if !errors.Is(err, vsserr.WriterErrorInconsistentSnapshot) || !strings.Contains(err.Error(), "appendonlydir") {
		t.Fatalf("PrepareSnapshot: %v", err)
	}
}

// TestAbortCutsAFreezeWaitingForTheSave: over the SDK, an Abort arriving
// while Freeze waits for a slow BGSAVE ends the wait at once, and the
// writes go on.
func TestAbortCutsAFreezeWaitingForTheSave(t *testing.T) {
	r := startServer(t, false)
	c := client(t, r)
	fill(t, c, 100)
	if err := c.ConfigSet(context.Background(), "rdb-key-save-delay", "100000").Err(); err != nil {
		t.Fatal(err)
	}
	id, w, rec := mustNew(t, r, Config{})
	co := writertest.Serve(t, id, w)
	sid := uuid.New().String()
	ev := func(n uint64, typ v1.EventType) *v1.Event {
		return &v1.Event{Id: n, Type: typ, SessionId: sid, Context: int32(vss.CtxBackup), TimeoutMs: 60000,
			Volumes:    []string{"/"},
			Placements: []*v1.PathPlacement{{Path: r.Dir, SnapshotId: uuid.New().String(), OriginalVolume: "/", Instant: 1}}}
	}
	send := func(e *v1.Event) *v1.EventResult {
		t.Helper()
		res, err := co.Send(context.Background(), 0, e)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := send(&v1.Event{Id: 1, Type: v1.EventType_EVENT_IDENTIFY, TimeoutMs: 10000}); res.GetFailure() != 0 {
		t.Fatal(res.GetApplicationMessage())
	}
	if res := send(ev(2, v1.EventType_EVENT_PREPARE_SNAPSHOT)); res.GetFailure() != 0 {
		t.Fatal(res.GetApplicationMessage())
	}
	frozen := make(chan *v1.EventResult, 1)
	go func() { res, _ := co.Send(context.Background(), 0, ev(3, v1.EventType_EVENT_FREEZE)); frozen <- res }()
	// Freeze is now waiting for the BGSAVE it started under the pause.
	testenv.Eventually(t, 30*time.Second, "Freeze to wait for its BGSAVE", func() bool {
		if len(rec.records("writes paused")) == 0 {
			return false
		}
		txt, err := c.Info(context.Background(), "persistence").Result()
		if err != nil {
			t.Fatal(err)
		}
		return parseInfo(txt)["rdb_bgsave_in_progress"] == "1"
	})
	mustBePaused(t, r)
	start := time.Now()
	if res := send(ev(4, v1.EventType_EVENT_ABORT)); res.GetFailure() != 0 {
		t.Fatalf("Abort: %s", res.GetApplicationMessage())
	}
	res := <-frozen
	// The alternative is the BGSAVE's 100 s key delay: well under it means
	// "at once" on any machine.
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("Freeze and Abort took %s after the Abort was sent", took)
	}
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorRetryable || !strings.Contains(res.GetApplicationMessage(), "Abort") {
		t.Errorf("the cut Freeze answered %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
	mustBeWritable(t, r)
}

// TestCloseReleasesAPausedServer: the host's last resort (process end)
// lifts the pause and refuses later events.
func TestCloseReleasesAPausedServer(t *testing.T) {
	r := startServer(t, true)
	_, w, rec := mustNew(t, r, Config{})
	s := newSession(t, w, r)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := s.freeze(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	mustBePaused(t, r)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mustBeWritable(t, r)
	if rel := rec.records("redis released"); len(rel) != 1 || rel[0]["by"] != "Close" {
		t.Fatalf("release records %v", rel)
	}
	if err := s.freeze(time.Second); err == nil {
		t.Fatal("Freeze after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestBackupShutdownClosesTheConnection: after BackupShutdown the writer
// keeps no connection to the server.
func TestBackupShutdownClosesTheConnection(t *testing.T) {
	r := startServer(t, true)
	c := client(t, r)
	_, w, _ := mustNew(t, r, Config{})
	s := newSession(t, w, r)
	writerConns := func() int {
		list, err := c.Do(context.Background(), "client", "list").Text()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(list, "name=lvss-writer")
	}
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	if n := writerConns(); n != 1 {
		t.Fatalf("%d writer connections after PrepareSnapshot, want 1", n)
	}
	if err := s.freeze(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.thaw(); err != nil {
		t.Fatal(err)
	}
	if n := writerConns(); n != 1 {
		t.Fatalf("%d writer connections after Thaw, want the same 1", n)
	}
	if err := w.BackupShutdown(s.ctx(5*time.Second), s.event(writer.EventBackupShutdown, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The server notices a closed connection when it next reads from it.
	for end := time.Now().Add(2 * time.Second); writerConns() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d writer connections 2s after BackupShutdown", writerConns())
		}
	}
}

// TestApplicationHR: the numbering of Redis's code words.
func TestApplicationHR(t *testing.T) {
	for _, tc := range []struct {
		err  error
		hr   vsserr.HRESULT
		code vsserr.HRESULT
	}{
		{errors.New("dial tcp: connection refused"), 0, vsserr.WriterErrorRetryable},
		{replyErr("NOPERM this user has no permissions"), 0xA0000005, vsserr.WriterErrorNonRetryable},
		{replyErr("LOADING Redis is loading the dataset in memory"), 0xA0000006, vsserr.WriterErrorRetryable},
		{replyErr("OOM command not allowed"), 0xA0000009, vsserr.WriterErrorOutOfResources},
		{replyErr("ERR max number of clients reached"), 0xA0000001, vsserr.WriterErrorOutOfResources},
		{replyErr("ERR unknown command 'CLIENT'"), 0xA0000001, vsserr.WriterErrorNonRetryable},
		{replyErr("WEIRD something new"), 0xA000FFFF, vsserr.WriterErrorNonRetryable},
		{errTooOld{"6.2.6"}, 0, vsserr.WriterErrorNonRetryable},
	} {
		if hr, code := applicationHR(tc.err), failureCode(tc.err); hr != tc.hr || code != tc.code {
			t.Errorf("%v: %s %s, want %s %s", tc.err, hr.Hex(), code, tc.hr.Hex(), tc.code)
		}
	}
}

// replyErr is an error as go-redis returns a Redis error reply.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}
