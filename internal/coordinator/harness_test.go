package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/fake"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// timeline is one ordered log shared by fake writers and the provider, so
// tests can assert cross-party order (Freeze before Commit before Thaw).
type timeline struct {
	mu  sync.Mutex
	log []string
}

func (tl *timeline) add(s string)  { tl.mu.Lock(); tl.log = append(tl.log, s); tl.mu.Unlock() }
func (tl *timeline) all() []string { tl.mu.Lock(); defer tl.mu.Unlock(); return slices.Clone(tl.log) }

func (tl *timeline) index(entry string) int { return slices.Index(tl.all(), entry) }
func (tl *timeline) reset()                 { tl.mu.Lock(); tl.log = nil; tl.mu.Unlock() }

// recProvider wraps the fake provider to log its calls on the timeline.
type recProvider struct {
	*fake.Provider
	tl *timeline
}

func (p recProvider) CommitSnapshots(ctx context.Context, id uuid.UUID) error {
	p.tl.add("provider:CommitSnapshots")
	return p.Provider.CommitSnapshots(ctx, id)
}

func (p recProvider) BeginPrepareSnapshot(ctx context.Context, set, snap uuid.UUID, volume string, sctx vss.Context) error {
	if provider.NoWritersFrozen(ctx) {
		p.tl.add("provider:BeginPrepareSnapshot(no writers)")
	} else {
		p.tl.add("provider:BeginPrepareSnapshot")
	}
	return p.Provider.BeginPrepareSnapshot(ctx, set, snap, volume, sctx)
}

func (p recProvider) EndPrepareSnapshots(ctx context.Context, id uuid.UUID) error {
	if provider.NoWritersFrozen(ctx) {
		p.tl.add("provider:EndPrepareSnapshots(no writers)")
	} else {
		p.tl.add("provider:EndPrepareSnapshots")
	}
	return p.Provider.EndPrepareSnapshots(ctx, id)
}

func (p recProvider) AbortSnapshots(ctx context.Context, id uuid.UUID) error {
	p.tl.add("provider:AbortSnapshots")
	return p.Provider.AbortSnapshots(ctx, id)
}

// fakeWriter answers events in order, from one goroutine, as a writer
// process would. It can fail or ignore any event type.
type fakeWriter struct {
	name  string
	tl    *timeline
	h     *WriterHandle
	files []string // component file paths (one FILE_GROUP component each)
	in    chan *Event
	stop  chan struct{}

	mu       sync.Mutex
	endCause error
	holds    map[EventType]*hold
	fail     map[EventType]vsserr.HRESULT
	silent   map[EventType]bool
	edit     map[EventType]func(*document.BackupComponents, uuid.UUID)
	delay    map[EventType]time.Duration
	seen     []EventType
	got      map[EventType]*Event // the last event of each type
	// rm and schema, when set, replace the WMD's restore method
	// (RESTORE_IF_CAN_REPLACE, VSS_WRE_NEVER) and backup schema (0).
	rm     *document.RestoreMethod
	schema uint32
}

func (f *fakeWriter) failAt(t EventType, code vsserr.HRESULT) {
	f.mu.Lock()
	f.fail[t] = code
	f.mu.Unlock()
}
func (f *fakeWriter) silentAt(t EventType) { f.mu.Lock(); f.silent[t] = true; f.mu.Unlock() }

// holdAt makes the writer hold its answer to the next event of type t
// until release is called; held reports when that event arrived.
func (f *fakeWriter) holdAt(t EventType) (held <-chan struct{}, release func()) {
	h := &hold{arrived: make(chan struct{}), release: make(chan struct{})}
	f.mu.Lock()
	f.holds[t] = h
	f.mu.Unlock()
	var once sync.Once
	return h.arrived, func() { once.Do(func() { close(h.release) }) }
}

type hold struct{ arrived, release chan struct{} }

func (f *fakeWriter) events() []EventType {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

func (f *fakeWriter) count(t EventType) int {
	n := 0
	for _, e := range f.events() {
		if e == t {
			n++
		}
	}
	return n
}

func (f *fakeWriter) wmd() []byte {
	md := &document.WriterMetadata{Version: "1.2",
		Identity:      document.Identity{WriterID: f.h.Identity.ClassID, InstanceID: f.h.InstanceID, FriendlyName: f.name, Usage: vss.UsageUserData, Source: vss.SourceOther},
		RestoreMethod: document.RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WRENever}, BackupSchema: f.schema}
	if f.rm != nil {
		md.RestoreMethod = *f.rm
	}
	for i, p := range f.files {
		md.Components = append(md.Components, document.Component{Type: vss.ComponentFileGroup, Name: fmt.Sprintf("c%d", i),
			Selectable: true, Files: []document.FileDesc{{Path: p, Filespec: "*", Recursive: true, BackupTypeMask: vss.DefaultFileBackupTypeMask}}})
	}
	x, err := md.Marshal()
	if err != nil {
		panic(err)
	}
	return x
}

// Send and End make the fake writer its own stream: events go into its
// inbox; Welcome needs no answer.
func (f *fakeWriter) Send(m Outbound) error {
	if m.Event == nil {
		return nil
	}
	cp := *m.Event
	select {
	case f.in <- &cp:
		return nil
	case <-f.stop:
		return errors.New("fake writer stopped")
	}
}

func (f *fakeWriter) End(cause error) {
	f.mu.Lock()
	f.endCause = cause
	f.mu.Unlock()
}

// ended is why lvssd ended the fake writer's stream (nil: it did not).
func (f *fakeWriter) ended() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.endCause
}

func (f *fakeWriter) run() {
	for {
		var ev *Event
		select {
		case ev = <-f.in:
		case <-f.stop:
			return
		}
		f.mu.Lock()
		f.seen = append(f.seen, ev.Type)
		f.got[ev.Type] = ev
		code, silent, edit, delay := f.fail[ev.Type], f.silent[ev.Type], f.edit[ev.Type], f.delay[ev.Type]
		h := f.holds[ev.Type]
		delete(f.holds, ev.Type)
		f.mu.Unlock()
		if h != nil {
			close(h.arrived)
			select {
			case <-h.release:
			case <-f.stop:
				return
			}
		}
		if ev.Type != EvIdentify {
			f.tl.add(f.name + ":" + ev.Type.String())
		}
		if delay > 0 {
			time.Sleep(delay)
		}
		if silent {
			continue
		}
		r := Result{EventID: ev.ID, Failure: code}
		if code != 0 {
			r.ApplicationHRESULT, r.ApplicationMessage = vsserr.Fail, f.name+" says no at "+ev.Type.String()
		}
		if ev.Type == EvIdentify {
			r.WMD = f.wmd()
		}
		if edit != nil && len(ev.BCD) > 0 {
			b, err := document.ParseBackupComponents(ev.BCD)
			if err != nil {
				panic(err)
			}
			edit(b, f.h.InstanceID)
			r.BCD, _ = b.Marshal()
		}
		f.h.Deliver(r)
	}
}

// env is a coordinator with a fake provider on a temp "volume" and a
// catalog in a temp dir.
type env struct {
	t    *testing.T
	c    *Coordinator
	tl   *timeline
	prov *fake.Provider
	vol  string
	cat  *catalog.DB
	// writers is scratch space for tests that need them in closures.
	writers []*fakeWriter
}

func catalogAutoRelease() catalog.Filter { return catalog.Filter{AutoReleaseOnly: true} }

func mkdir(p string) error { return os.MkdirAll(p, 0o755) }

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	dir := t.TempDir()
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	vol, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tl := &timeline{}
	fp := fake.New(vol)
	opt := Options{Catalog: cat, Providers: provider.NewRegistry(recProvider{fp, tl}),
		Timeouts: Timeouts{Identify: 2 * time.Second, PrepareBackup: 2 * time.Second, PrepareSnapshot: 2 * time.Second,
			Freeze: 2 * time.Second, Thaw: 2 * time.Second, PostSnapshot: 2 * time.Second, BackupComplete: 2 * time.Second,
			BackupShutdown: 2 * time.Second, Abort: 2 * time.Second, Hold: 2 * time.Second, CreationLease: time.Minute}}
	if mod != nil {
		mod(&opt)
	}
	c, err := New(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, c: c, tl: tl, prov: fp, vol: vol, cat: cat}
	t.Cleanup(func() { c.Close(context.Background()) })
	return e
}

// writer subscribes a fake writer whose one component lives in a
// subdirectory of the volume.
func (e *env) writer(name string, level vss.AppLevel, window time.Duration) *fakeWriter {
	e.t.Helper()
	return e.writerWith(name, level, window, nil)
}

// lastEvent is the last event of type t the writer got, or nil.
func (f *fakeWriter) lastEvent(t EventType) *Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[t]
}

// writerWith is writer with setup run on the fake before it subscribes.
func (e *env) writerWith(name string, level vss.AppLevel, window time.Duration, setup func(*fakeWriter)) *fakeWriter {
	e.t.Helper()
	f := &fakeWriter{name: name, tl: e.tl, in: make(chan *Event, 64), stop: make(chan struct{}), fail: map[EventType]vsserr.HRESULT{}, got: map[EventType]*Event{},
		silent: map[EventType]bool{}, edit: map[EventType]func(*document.BackupComponents, uuid.UUID){},
		delay: map[EventType]time.Duration{}, holds: map[EventType]*hold{}, files: []string{filepath.Join(e.vol, name)}}
	if setup != nil {
		setup(f)
	}
	id := Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(name)), Name: name, Level: level, FreezeTimeout: window}
	h, err := e.c.AddWriter(context.Background(), id, Peer{PID: 1}, f)
	if err != nil {
		e.t.Fatal(err)
	}
	f.h = h
	go f.run()
	e.t.Cleanup(func() { e.c.RemoveWriter(context.Background(), h); close(f.stop) })
	e.c.IdentifyNew(context.Background(), h)
	return f
}

// until waits for cond, polling; the bound only ends a broken test.
func (e *env) until(what string, cond func() bool) {
	e.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			e.t.Fatalf("gave up waiting for %s", what)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) wait(a *Async, err error) error {
	t := e.t
	t.Helper()
	if err != nil {
		return err
	}
	st, msg := a.Wait(context.Background(), 20*time.Second)
	if st == vsserr.AsyncPending {
		t.Fatalf("%s still pending after 20s", a.Method())
	}
	if st == vsserr.AsyncFinished {
		return nil
	}
	return vsserr.New(st, "%s", msg)
}

// toMeta runs a session up to GatherWriterMetadata.
func (e *env) toMeta(ctx vss.Context, selectComponents bool) *Session {
	e.t.Helper()
	s := e.c.NewSession(Peer{})
	must(e.t, s.InitializeForBackup(""))
	if ctx != vss.CtxBackup {
		must(e.t, s.SetContext(ctx))
	}
	must(e.t, s.SetBackupState(selectComponents, false, vss.BackupFull, false))
	must(e.t, e.wait(s.GatherWriterMetadata()))
	return s
}

// addAll adds every component of every gathered writer (component mode).
func (e *env) addAll(s *Session) {
	e.t.Helper()
	mds, err := s.GetWriterMetadata()
	must(e.t, err)
	for _, m := range mds {
		md, err := document.ParseWriterMetadata(m.XML)
		must(e.t, err)
		for _, c := range md.Components {
			must(e.t, s.AddComponent(m.InstanceID, md.Identity.WriterID, c.Type, c.LogicalPath, c.Name))
		}
	}
}

// toSet starts the set and adds the volume.
func (e *env) toSet(s *Session) uuid.UUID {
	e.t.Helper()
	_, err := s.StartSnapshotSet()
	must(e.t, err)
	id, err := s.AddToSnapshotSet(context.Background(), e.vol, uuid.Nil)
	must(e.t, err)
	return id
}

// toSnapped runs a whole writer-context creation.
func (e *env) toSnapped() (*Session, uuid.UUID) {
	e.t.Helper()
	s := e.toMeta(vss.CtxBackup, true)
	e.addAll(s)
	snap := e.toSet(s)
	must(e.t, e.wait(s.PrepareForBackup()))
	must(e.t, e.wait(s.DoSnapshotSet()))
	return s, snap
}

func (e *env) status(s *Session, name string) WriterStatus {
	t := e.t
	t.Helper()
	must(t, e.wait(s.GatherWriterStatus()))
	st, err := s.GetWriterStatus()
	must(t, err)
	for _, w := range st {
		if w.Name == name {
			return w
		}
	}
	t.Fatalf("no status for writer %s in %+v", name, st)
	return WriterStatus{}
}
