package writer_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

const wait = 5 * time.Second

// scripted is a writer whose handlers the test sets; unset ones succeed.
// It logs every call, with "(self)" for events the SDK raised.
type scripted struct {
	identify        func(context.Context, *writer.Metadata) error
	prepareBackup   func(context.Context, *writer.Event, *writer.Components) error
	prepareSnapshot func(context.Context, *writer.Event) error
	freeze          func(context.Context, *writer.Event) error

	mu  sync.Mutex
	log []string
}

func (s *scripted) note(ev *writer.Event, what string) {
	if ev != nil && ev.SelfRaised {
		what += "(self)"
	}
	s.mu.Lock()
	s.log = append(s.log, what)
	s.mu.Unlock()
}

func (s *scripted) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

func (s *scripted) Identify(ctx context.Context, md *writer.Metadata) error {
	s.note(nil, "Identify")
	if s.identify != nil {
		return s.identify(ctx, md)
	}
	if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, Name: "c"}); err != nil {
		return err
	}
	return md.AddFiles("", "c", "/data", "*", true, "", 0)
}

func (s *scripted) PrepareBackup(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	s.note(ev, "PrepareBackup")
	if s.prepareBackup != nil {
		return s.prepareBackup(ctx, ev, c)
	}
	return nil
}

func (s *scripted) PrepareSnapshot(ctx context.Context, ev *writer.Event) error {
	s.note(ev, "PrepareSnapshot")
	if s.prepareSnapshot != nil {
		return s.prepareSnapshot(ctx, ev)
	}
	return nil
}

func (s *scripted) Freeze(ctx context.Context, ev *writer.Event) error {
	var err error
	if s.freeze != nil {
		err = s.freeze(ctx, ev)
	}
	s.note(ev, "Freeze") // after: the order with Abort is what some tests check
	return err
}

func (s *scripted) Thaw(_ context.Context, ev *writer.Event) error {
	s.note(ev, "Thaw")
	return nil
}

func (s *scripted) Abort(_ context.Context, ev *writer.Event) error {
	s.note(ev, "Abort")
	return nil
}

func (s *scripted) BackupShutdown(_ context.Context, ev *writer.Event) error {
	s.note(ev, "BackupShutdown")
	return nil
}

var testID = writer.Identity{ClassID: uuid.MustParse("0f1e2d3c-4b5a-4697-8877-665544332211"), Name: "scripted"}

// start runs w against a fresh coordinator and returns it once subscribed.
func start(t *testing.T, w writer.Writer) *writertest.Coordinator {
	t.Helper()
	co := writertest.NewCoordinator(t)
	runWriter(t, co.Socket(), w, writer.Options{})
	co.WaitWriters(1)
	return co
}

// runWriter runs writer.Run until the test ends.
func runWriter(t *testing.T, socket string, w writer.Writer, opts writer.Options) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts.Socket = socket
	if opts.Logger == nil {
		opts.Logger = testenv.Logger(t)
	}
	go func() { done <- writer.Run(ctx, opts, testID, w) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(wait):
			t.Error("writer.Run did not return")
		}
	})
	return done
}

func event(typ v1.EventType, session uuid.UUID) *v1.Event {
	return &v1.Event{Type: typ, SessionId: session.String(), TimeoutMs: wait.Milliseconds()}
}

func send(t *testing.T, co *writertest.Coordinator, ev *v1.Event) *v1.EventResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	res, err := co.Send(ctx, 0, ev)
	if err != nil {
		t.Fatalf("%s: %v", ev.Type, err)
	}
	return res
}

func wantCode(t *testing.T, res *v1.EventResult, code vsserr.HRESULT, msg string) {
	t.Helper()
	if got := vsserr.HRESULT(res.GetFailure()); got != code || !strings.Contains(res.GetApplicationMessage(), msg) {
		t.Errorf("answer %s %q, want %s with %q", got, res.GetApplicationMessage(), code, msg)
	}
}

func TestAbortCancelsRunningHandler(t *testing.T) {
	started := make(chan struct{})
	w := &scripted{freeze: func(ctx context.Context, _ *writer.Event) error {
		close(started)
		<-ctx.Done() // blocked on the application, as a Freeze waiting for a lock
		return ctx.Err()
	}}
	co := start(t, w)
	sid := uuid.New()
	send(t, co, event(v1.EventType_EVENT_PREPARE_SNAPSHOT, sid))

	freeze := make(chan *v1.EventResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
		defer cancel()
		res, err := co.Send(ctx, 0, event(v1.EventType_EVENT_FREEZE, sid))
		if err != nil {
			t.Errorf("Freeze: %v", err)
		}
		freeze <- res
	}()
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("Freeze was not called")
	}
	wantCode(t, send(t, co, event(v1.EventType_EVENT_ABORT, sid)), vsserr.OK, "")
	select {
	case res := <-freeze:
		if res != nil {
			wantCode(t, res, vsserr.WriterErrorRetryable, "Abort arrived")
		}
	case <-time.After(wait):
		t.Fatal("no answer to the cancelled Freeze")
	}
	if got, want := w.calls(), []string{"PrepareSnapshot", "Freeze", "Abort"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v (Abort only after the cancelled Freeze returned)", got, want)
	}
}

func TestAbortOfAnotherSessionDoesNotCancel(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	w := &scripted{prepareSnapshot: func(ctx context.Context, _ *writer.Event) error {
		close(started)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	co := writertest.NewCoordinator(t)
	logs := make(chan string, 64)
	runWriter(t, co.Socket(), w, writer.Options{Logger: slog.New(signalHandler{logs})})
	co.WaitWriters(1)
	mine, other := uuid.New(), uuid.New()
	res := make(chan *v1.EventResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
		defer cancel()
		r, _ := co.Send(ctx, 0, event(v1.EventType_EVENT_PREPARE_SNAPSHOT, mine))
		res <- r
	}()
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("PrepareSnapshot was not called")
	}
	abort := make(chan *v1.EventResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
		defer cancel()
		r, _ := co.Send(ctx, 0, event(v1.EventType_EVENT_ABORT, other))
		abort <- r
	}()
	// Once the Abort of the other session has reached the SDK while the
	// handler runs, let the handler finish: it must not have been cancelled.
	waitLog(t, logs, "event received", 2)
	close(release)
	for _, ch := range []chan *v1.EventResult{res, abort} {
		select {
		case r := <-ch:
			if r == nil {
				t.Fatal("no answer")
			}
			wantCode(t, r, vsserr.OK, "")
		case <-time.After(2 * wait):
			t.Fatal("no answer")
		}
	}
}

func TestHandlerOverrunIsTimeout(t *testing.T) {
	w := &scripted{prepareSnapshot: func(ctx context.Context, _ *writer.Event) error {
		<-ctx.Done()
		return nil // finished, but too late
	}}
	co := start(t, w)
	ev := event(v1.EventType_EVENT_PREPARE_SNAPSHOT, uuid.New())
	ev.TimeoutMs = 50
	wantCode(t, send(t, co, ev), vsserr.WriterErrorTimeout, "deadline")
}

func TestBackupShutdownWhileFrozenAbortsFirst(t *testing.T) {
	w := &scripted{}
	co := start(t, w)
	sid := uuid.New()
	for _, typ := range []v1.EventType{v1.EventType_EVENT_PREPARE_SNAPSHOT, v1.EventType_EVENT_FREEZE, v1.EventType_EVENT_BACKUP_SHUTDOWN} {
		wantCode(t, send(t, co, event(typ, sid)), vsserr.OK, "")
	}
	if got, want := w.calls(), []string{"PrepareSnapshot", "Freeze", "Abort(self)", "BackupShutdown"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}

func TestPlacementsCarriedForward(t *testing.T) {
	got := make(chan []writer.Placement, 1)
	w := &scripted{freeze: func(_ context.Context, ev *writer.Event) error {
		got <- ev.Placements
		return nil
	}}
	co := start(t, w)
	sid := uuid.New()
	ps := event(v1.EventType_EVENT_PREPARE_SNAPSHOT, sid)
	ps.Placements = []*v1.PathPlacement{{Path: "/data", SnapshotId: uuid.NewString(), OriginalVolume: "/", Instant: 1}}
	send(t, co, ps)
	send(t, co, event(v1.EventType_EVENT_FREEZE, sid))
	if p := <-got; len(p) != 1 || p[0].Path != "/data" || p[0].Instant != 1 {
		t.Errorf("Freeze saw placements %+v, want those of PrepareSnapshot", p)
	}
	send(t, co, event(v1.EventType_EVENT_ABORT, sid))
}

// bcdFor builds a BCD holding one component of the subscribed writer and
// one of another writer instance.
func bcdFor(t *testing.T, co *writertest.Coordinator) string {
	t.Helper()
	b := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull}
	if err := b.AddComponent(co.Writer(0).InstanceID, testID.ClassID, "", 0, vss.ComponentFileGroup, "", "c"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddComponent(uuid.New(), uuid.New(), "", 0, vss.ComponentFileGroup, "", "theirs"); err != nil {
		t.Fatal(err)
	}
	x, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(x)
}

func TestBCDEdits(t *testing.T) {
	t.Run("own fields are sent back", func(t *testing.T) {
		w := &scripted{prepareBackup: func(_ context.Context, _ *writer.Event, c *writer.Components) error {
			if n := len(c.List()); n != 1 {
				t.Errorf("the writer sees %d components, want only its own one", n)
			}
			c.Get("", "c").BackupStamp = "s1"
			return nil
		}}
		co := start(t, w)
		ev := event(v1.EventType_EVENT_PREPARE_BACKUP, uuid.New())
		ev.BcdXml = bcdFor(t, co)
		res := send(t, co, ev)
		wantCode(t, res, vsserr.OK, "")
		got, err := document.ParseBackupComponents([]byte(res.GetBcdXml()))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Writers) != 1 || got.Writers[0].InstanceID != co.Writer(0).InstanceID || got.Writers[0].Components[0].BackupStamp != "s1" {
			t.Errorf("returned BCD %s: want only the writer's own component, with its stamp", res.GetBcdXml())
		}
	})
	t.Run("requester fields are refused", func(t *testing.T) {
		w := &scripted{prepareBackup: func(_ context.Context, _ *writer.Event, c *writer.Components) error {
			c.Get("", "c").BackupOptions = "mine now"
			return nil
		}}
		co := start(t, w)
		ev := event(v1.EventType_EVENT_PREPARE_BACKUP, uuid.New())
		ev.BcdXml = bcdFor(t, co)
		res := send(t, co, ev)
		wantCode(t, res, vsserr.WriterErrorNonRetryable, "backupOptions")
		if res.GetBcdXml() != "" {
			t.Error("a refused edit was sent back")
		}
	})
}

func TestIdentifyFailures(t *testing.T) {
	for name, tc := range map[string]struct {
		identify func(context.Context, *writer.Metadata) error
		msg      string
	}{
		"error": {func(context.Context, *writer.Metadata) error { return errors.New("config unreadable") }, "config unreadable"},
		"invalid document": {func(_ context.Context, md *writer.Metadata) error {
			return md.AddComponent(document.Component{Type: vss.ComponentFileGroup, Name: `a\b`})
		}, "invalid Writer Metadata Document"},
		"files for a missing component": {func(_ context.Context, md *writer.Metadata) error {
			return md.AddFiles("", "none", "/x", "*", false, "", 0)
		}, "add it first"},
		"panic": {func(context.Context, *writer.Metadata) error { panic("bug") }, "panicked"},
	} {
		t.Run(name, func(t *testing.T) {
			co := start(t, &scripted{identify: tc.identify})
			res := send(t, co, event(v1.EventType_EVENT_IDENTIFY, uuid.Nil))
			wantCode(t, res, vsserr.WriterErrorNonRetryable, tc.msg)
			if res.GetWmdXml() != "" {
				t.Error("a failed Identify sent a document")
			}
		})
	}
}

func TestUseXML(t *testing.T) {
	src := &document.WriterMetadata{
		Identity:      document.Identity{WriterID: uuid.New(), FriendlyName: "from file", Usage: vss.UsageOther, Source: vss.SourceOther},
		RestoreMethod: document.RestoreMethod{Method: vss.RMERestoreIfNotThere, WriterRestore: vss.WREAlways},
		Components:    []document.Component{{Type: vss.ComponentDatabase, Name: "db", DatabaseFiles: []document.FileDesc{{Path: "/db", Filespec: "*.dat"}}}},
	}
	x, err := src.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	co := start(t, &scripted{identify: func(_ context.Context, md *writer.Metadata) error { return md.UseXML(x) }})
	res := send(t, co, event(v1.EventType_EVENT_IDENTIFY, uuid.Nil))
	wantCode(t, res, vsserr.OK, "")
	got, err := document.ParseWriterMetadata([]byte(res.GetWmdXml()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Identity.WriterID != testID.ClassID || got.Identity.FriendlyName != testID.Name || got.Identity.InstanceID != co.Writer(0).InstanceID {
		t.Errorf("identity %+v was not overwritten by the SDK", got.Identity)
	}
	if got.RestoreMethod.Method != vss.RMERestoreIfNotThere || got.Component("", "db") == nil {
		t.Errorf("the document's own content was lost: %s", res.GetWmdXml())
	}
}

func TestRunRejectsBadIdentity(t *testing.T) {
	err := writer.Run(context.Background(), writer.Options{Socket: "/nonexistent"}, writer.Identity{Name: "x"}, &scripted{})
	if !errors.Is(err, vsserr.InvalidArg) {
		t.Errorf("Run with a GUID_NULL class = %v, want E_INVALIDARG", err)
	}
}

func TestRunWithoutRetryReturnsWhenSocketMissing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := writer.Run(ctx, writer.Options{Socket: filepath.Join(t.TempDir(), "none.sock")}, testID, &scripted{})
	if err == nil || ctx.Err() != nil {
		t.Errorf("Run = %v (ctx %v), want an error before the context ends", err, ctx.Err())
	}
}

// signalHandler passes each log message to a channel, so a test can wait
// for the SDK to have done something without sleeping.
type signalHandler struct{ ch chan string }

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.ch <- r.Message:
	default:
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

func waitLog(t *testing.T, ch <-chan string, msg string, n int) {
	t.Helper()
	deadline := time.After(wait)
	for n > 0 {
		select {
		case m := <-ch:
			if m == msg {
				n--
			}
		case <-deadline:
			t.Fatalf("the SDK did not log %q in time", msg)
		}
	}
}

func TestReconnectWithBackoff(t *testing.T) {
	dir, err := os.MkdirTemp("", "lvss-rc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "lvssd.sock")
	logs := make(chan string, 64)
	w := &scripted{}
	runWriter(t, sock, w, writer.Options{
		Retry: true, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Logger: slog.New(signalHandler{logs}),
	})

	// The socket is missing: the SDK keeps trying.
	waitLog(t, logs, "lvssd unavailable", 3)
	co := writertest.NewCoordinatorAt(t, sock)
	co.WaitWriters(1)
	first := co.Writer(0).InstanceID

	// lvssd drops the writer (restart): it subscribes again, as a new instance.
	sid := uuid.New()
	send(t, co, event(v1.EventType_EVENT_PREPARE_SNAPSHOT, sid))
	send(t, co, event(v1.EventType_EVENT_FREEZE, sid))
	co.DropWriter(0)
	co.WaitWriters(2)
	if co.Writer(1).InstanceID == first {
		t.Error("the reconnected writer kept its instance ID; lvssd assigns a new one")
	}
	if got, want := w.calls(), []string{"PrepareSnapshot", "Freeze", "Abort(self)", "BackupShutdown(self)"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v: the frozen session must be released before reconnecting", got, want)
	}

	// lvssd is killed and comes back at the same socket.
	co.Close()
	waitLog(t, logs, "lvssd unavailable", 1)
	again := writertest.NewCoordinatorAt(t, sock)
	again.WaitWriters(1)
}

func TestWindowExpiryPreemptsOtherSession(t *testing.T) {
	started := make(chan struct{})
	w := &scripted{prepareSnapshot: func(ctx context.Context, ev *writer.Event) error {
		if ev.Placements == nil { // only the second session's handler blocks
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}}
	co := writertest.NewCoordinator(t)
	co.SetFreezeTimeout(100 * time.Millisecond)
	runWriter(t, co.Socket(), w, writer.Options{})
	co.WaitWriters(1)

	frozen, other := uuid.New(), uuid.New()
	ps := event(v1.EventType_EVENT_PREPARE_SNAPSHOT, frozen)
	ps.Placements = []*v1.PathPlacement{{Path: "/data", SnapshotId: uuid.NewString(), Instant: 1}}
	send(t, co, ps)
	send(t, co, event(v1.EventType_EVENT_FREEZE, frozen))
	// A handler of another session is running when the window expires: it
	// is cancelled so that the frozen application is released in time.
	res := send(t, co, event(v1.EventType_EVENT_PREPARE_SNAPSHOT, other))
	<-started
	wantCode(t, res, vsserr.WriterErrorRetryable, "window")
	// The SDK's Abort runs right after the cancelled handler, before the
	// late Thaw is answered.
	wantCode(t, send(t, co, event(v1.EventType_EVENT_THAW, frozen)), vsserr.WriterErrorTimeout, "window")
	if got, want := w.calls(), []string{"PrepareSnapshot", "Freeze", "PrepareSnapshot", "Abort(self)"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}
