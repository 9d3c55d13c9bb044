package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// hostileWriter is a writer speaking the wire protocol by hand, so that it can
// say what the writer SDK never would.
type hostileWriter struct {
	t  *testing.T
	st v1.Writer_SubscribeClient
}

// subscribe sends hello (a raw message when raw is set) and returns the
// stream with the first message lvssd answered, or the error it ended
// the stream with.
func subscribeRaw(t *testing.T, cc *grpc.ClientConn, hello any) (*hostileWriter, *v1.CoordinatorMessage, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := v1.NewWriterClient(cc).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := hello.(*v1.Hello); ok {
		hello = &v1.WriterMessage{Msg: &v1.WriterMessage_Hello{Hello: h}}
	}
	if err := st.SendMsg(hello); err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	return &hostileWriter{t: t, st: st}, m, wire.FromGRPC(err)
}

// event reads the next event.
func (w *hostileWriter) event() *v1.Event {
	w.t.Helper()
	m, err := w.st.Recv()
	if err != nil {
		w.t.Fatalf("reading an event: %v", err)
	}
	if m.GetEvent() == nil {
		w.t.Fatalf("got %v, want an event", m)
	}
	return m.GetEvent()
}

func (w *hostileWriter) answer(r *v1.EventResult) {
	w.t.Helper()
	if err := w.st.Send(&v1.WriterMessage{Msg: &v1.WriterMessage_Result{Result: r}}); err != nil {
		w.t.Fatal(err)
	}
}

// wmd is a Writer Metadata Document with n file-group components.
func wmd(t testing.TB, name string, n int) string {
	md := &document.WriterMetadata{Version: "1.2",
		Identity:      document.Identity{WriterID: uuid.New(), InstanceID: uuid.New(), FriendlyName: name, Usage: vss.UsageUserData, Source: vss.SourceOther},
		RestoreMethod: document.RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WRENever}}
	for i := range n {
		md.Components = append(md.Components, document.Component{Type: vss.ComponentFileGroup, Name: fmt.Sprintf("component-%05d", i),
			LogicalPath: "data", Selectable: true,
			Files: []document.FileDesc{{Path: fmt.Sprintf("/srv/data/%05d", i), Filespec: "*", Recursive: true, BackupTypeMask: vss.DefaultFileBackupTypeMask}}})
	}
	x, err := md.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(x)
}

func hello(name string) *v1.Hello {
	return &v1.Hello{WriterId: uuid.NewSHA1(uuid.NameSpaceOID, []byte(name)).String(), Name: name}
}

// TestHostileHellos: a writer's first message is checked as a request's
// would be; each refusal ends the stream with its HRESULT, and nothing is
// left subscribed.
func TestHostileHellos(t *testing.T) {
	d := startDaemon(t, NewAccess(Rules{}, slog.New(slog.DiscardHandler)))
	cc := dialRaw(t, d.socket)
	long := strings.Repeat("w", 1<<20)
	good, _, err := subscribeRaw(t, cc, hello("good"))
	if err != nil {
		t.Fatal(err)
	}
	good.event() // its first Identify: it stays subscribed, unanswered, through the test
	for _, c := range []struct {
		name  string
		hello any
		want  vsserr.HRESULT
	}{
		{"class ID that does not parse", &v1.Hello{WriterId: "not-a-guid", Name: "w"}, vsserr.InvalidArg},
		{"GUID_NULL class", &v1.Hello{WriterId: "", Name: "w"}, vsserr.InvalidArg},
		{"no name", &v1.Hello{WriterId: uuid.NewString()}, vsserr.InvalidArg},
		{"1 MiB name", &v1.Hello{WriterId: uuid.NewString(), Name: long}, vsserr.InvalidArg},
		{"1 MiB instance name", &v1.Hello{WriterId: uuid.NewString(), Name: "w", InstanceName: long}, vsserr.InvalidArg},
		{"name not UTF-8", withBadUTF8(t, &v1.WriterMessage{Msg: &v1.WriterMessage_Hello{Hello: &v1.Hello{WriterId: uuid.NewString(), Name: badUTF8Mark}}}), vsserr.InvalidArg},
		{"a result first", &v1.WriterMessage{Msg: &v1.WriterMessage_Result{Result: &v1.EventResult{Id: 1}}}, vsserr.InvalidArg},
		{"an empty message first", &v1.WriterMessage{}, vsserr.InvalidArg},
		{"the subscribed writer again", hello("good"), vsserr.WriterAlreadySubscribed},
	} {
		_, m, err := subscribeRaw(t, cc, c.hello)
		if got := vsserr.Code(err); got != c.want {
			t.Errorf("%s: got %v (%v), want %s", c.name, m, err, c.want)
		}
	}
	if ws := d.c.ListWriters(); len(ws) != 1 || ws[0].Identity.Name != "good" {
		t.Errorf("writers left subscribed: %+v", ws)
	}
}

// TestHostileWriterAnswers: answers to events a writer was never sent
// (unknown IDs, another writer's, a second answer) are dropped without
// effect on anyone; an answer lvssd cannot read ends that writer's stream
// with E_INVALIDARG and fails its event at once; an answer after the
// deadline finds the stream ended (L29).
func TestHostileWriterAnswers(t *testing.T) {
	d := startDaemonWith(t, NewAccess(Rules{}, slog.New(slog.DiscardHandler)), func(o *coordinator.Options) {
		o.Timeouts.Identify = 3 * time.Second
	})
	cc := dialRaw(t, d.socket)
	x, _, err := subscribeRaw(t, cc, hello("x"))
	if err != nil {
		t.Fatal(err)
	}
	y, _, err := subscribeRaw(t, cc, hello("y"))
	if err != nil {
		t.Fatal(err)
	}
	// Unknown IDs before anything: dropped.
	x.answer(&v1.EventResult{Id: 1 << 40, Failure: uint32(vsserr.WriterErrorNonRetryable)})
	ex, ey := x.event(), y.event()
	x.answer(&v1.EventResult{Id: ex.Id, WmdXml: wmd(t, "x", 1)})
	// A second answer to the same event, and one for an ID only y has
	// pending: x has nothing waiting under either.
	x.answer(&v1.EventResult{Id: ex.Id, Failure: uint32(vsserr.WriterErrorNonRetryable)})
	x.answer(&v1.EventResult{Id: ey.Id + 1, Failure: uint32(vsserr.WriterErrorNonRetryable)})
	y.answer(&v1.EventResult{Id: ey.Id, WmdXml: wmd(t, "y", 1)})
	d.c.FlushEvents()
	waitFor(t, "both writers identified", func() bool {
		n := 0
		for _, w := range d.c.ListWriters() {
			if len(w.WMD) > 0 {
				n++
			}
		}
		return n == 2
	})

	// A requester's GatherWriterMetadata: x answers y's event ID with a
	// failure before y answers; y's status is its own.
	r := openSession(t, dial(t, d.socket))
	r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_InitializeForBackup{InitializeForBackup: &v1.InitializeForBackup{}}})
	gather := r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_GatherWriterMetadata{GatherWriterMetadata: &v1.GatherWriterMetadata{}}})
	ex, ey = x.event(), y.event()
	x.answer(&v1.EventResult{Id: ex.Id, WmdXml: wmd(t, "x", 1)})
	x.answer(&v1.EventResult{Id: ey.Id + 7, Failure: uint32(vsserr.WriterErrorNonRetryable)})
	y.answer(&v1.EventResult{Id: ey.Id, WmdXml: wmd(t, "y", 1)})
	r.waitOK(gather)
	md := r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_GetWriterMetadata{GetWriterMetadata: &v1.GetWriterMetadata{}}}).GetWriterMetadata()
	if len(md.Writers) != 2 {
		t.Fatalf("gathered %d writers, want 2", len(md.Writers))
	}

	// An answer that does not decode ends x's stream with E_INVALIDARG.
	gather2 := openSession(t, dial(t, d.socket))
	gather2.ok(&v1.SessionRequest{Call: &v1.SessionRequest_InitializeForBackup{InitializeForBackup: &v1.InitializeForBackup{}}})
	g := gather2.ok(&v1.SessionRequest{Call: &v1.SessionRequest_GatherWriterMetadata{GatherWriterMetadata: &v1.GatherWriterMetadata{}}})
	ex, ey = x.event(), y.event()
	bad := withBadUTF8(t, &v1.WriterMessage{Msg: &v1.WriterMessage_Result{Result: &v1.EventResult{Id: ex.Id, ApplicationMessage: badUTF8Mark}}})
	if err := x.st.SendMsg(bad); err != nil {
		t.Fatal(err)
	}
	if _, err := x.st.Recv(); vsserr.Code(wire.FromGRPC(err)) != vsserr.InvalidArg {
		t.Errorf("x's stream after an answer that does not decode: %v, want E_INVALIDARG", err)
	}
	// y does not answer at all: its deadline passes, its stream is
	// ended, and its late answer reaches nobody.
	if _, err := y.st.Recv(); vsserr.Code(wire.FromGRPC(err)) != vsserr.WriterNotResponding {
		t.Errorf("y's stream after its deadline: %v, want VSS_E_WRITER_NOT_RESPONDING", err)
	}
	_ = y.st.Send(&v1.WriterMessage{Msg: &v1.WriterMessage_Result{Result: &v1.EventResult{Id: ey.Id, WmdXml: wmd(t, "y", 1)}}})
	gather2.waitOK(g)
	gather2.ok(&v1.SessionRequest{Call: &v1.SessionRequest_GatherWriterStatus{GatherWriterStatus: &v1.GatherWriterStatus{}}})
	st := gather2.ok(&v1.SessionRequest{Call: &v1.SessionRequest_GetWriterStatus{GetWriterStatus: &v1.GetWriterStatus{}}}).GetWriterStatus()
	got := map[string]string{}
	for _, w := range st.Writers {
		got[w.Name] = fmt.Sprintf("%s %s", vss.WriterState(w.State), vsserr.HRESULT(w.Failure).Name())
	}
	want := map[string]string{"x": "VSS_WS_FAILED_AT_IDENTIFY VSS_E_WRITER_NOT_RESPONDING", "y": "VSS_WS_FAILED_AT_IDENTIFY VSS_E_WRITER_NOT_RESPONDING"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("writer status %v, want %v", got, want)
	}
	// The event log says why x's stream was ended.
	evs, err := d.c.Events(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	said := false
	for _, e := range evs {
		if e.Fields["writer"] == "x" && strings.Contains(e.Fields["reason"], "does not decode") {
			said = true
		}
	}
	if !said {
		t.Errorf("the event log does not say why x's stream was ended")
	}
	if len(d.c.ListWriters()) != 0 {
		t.Errorf("writers still subscribed: %+v", d.c.ListWriters())
	}
}

// TestTenThousandComponents: a writer's metadata and a BCD of 10,000
// components each go through, and what lvssd holds for them stays within
// a bound measured here (L61).
func TestTenThousandComponents(t *testing.T) {
	d := startDaemon(t, NewAccess(Rules{}, slog.New(slog.DiscardHandler)))
	cc := dialRaw(t, d.socket)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	big := wmd(t, "big", 10_000)
	w, _, err := subscribeRaw(t, cc, hello("big"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			m, err := w.st.Recv()
			if err != nil {
				return
			}
			if ev := m.GetEvent(); ev != nil {
				_ = w.st.Send(&v1.WriterMessage{Msg: &v1.WriterMessage_Result{Result: &v1.EventResult{Id: ev.Id, WmdXml: big, BcdXml: ev.BcdXml}}})
			}
		}
	}()
	r := openSession(t, dial(t, d.socket))
	r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_InitializeForBackup{InitializeForBackup: &v1.InitializeForBackup{}}})
	r.waitOK(r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_GatherWriterMetadata{GatherWriterMetadata: &v1.GatherWriterMetadata{}}}))
	md := r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_GetWriterMetadata{GetWriterMetadata: &v1.GetWriterMetadata{}}}).GetWriterMetadata()
	if len(md.Writers) != 1 {
		t.Fatalf("%d writers gathered", len(md.Writers))
	}
	parsed, err := document.ParseWriterMetadata([]byte(md.Writers[0].WmdXml))
	if err != nil || len(parsed.Components) != 10_000 {
		t.Fatalf("gathered metadata: %v, %d components", err, len(parsed.Components))
	}
	// Every component added: a BCD of 10,000 components, saved and loaded
	// again in a restore session.
	r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_SetBackupState{SetBackupState: &v1.SetBackupState{SelectComponents: true, BackupType: int32(vss.BackupFull)}}})
	inst := md.Writers[0].InstanceId
	class := hello("big").WriterId
	for i := range 10_000 {
		r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_AddComponent{AddComponent: &v1.AddComponent{InstanceId: inst,
			Component: &v1.ComponentRef{WriterId: class, ComponentType: int32(vss.ComponentFileGroup), LogicalPath: "data", Name: fmt.Sprintf("component-%05d", i)}}}})
	}
	bcd := r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_SaveAsXml{SaveAsXml: &v1.SaveAsXML{}}}).GetXml().Xml
	rs := openSession(t, dial(t, d.socket))
	rs.ok(&v1.SessionRequest{Call: &v1.SessionRequest_InitializeForRestore{InitializeForRestore: &v1.InitializeForRestore{BcdXml: bcd}}})
	after := heap()
	grown := int64(after) - int64(before)
	t.Logf("WMD %d bytes, BCD %d bytes; heap grew by %d KiB with both sessions open", len(big), len(bcd), grown/1024)
	if grown > 256<<20 {
		t.Errorf("10,000 components cost lvssd %d MiB", grown>>20)
	}
}

// waitFor polls cond; the bound only ends a broken test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}
