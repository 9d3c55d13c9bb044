package server

import (
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

type writerService struct {
	v1.UnimplementedWriterServer
	s *Server
}

// writerStream is the coordinator's view of one writer's gRPC stream. Send
// is called only by the writer's own sender goroutine (package outbox);
// End makes the handler return, which is the one way to make a Send the
// writer does not drain give up.
type writerStream struct {
	stream v1.Writer_SubscribeServer
	once   sync.Once
	ended  chan struct{}
	cause  error
	// ids spells the session and set IDs the writer was sent last: every
	// event of a session carries the same two, and formatting them for
	// each event to each of a thousand writers was a tenth of lvssd's
	// garbage in a backup. Only Send (one goroutine) uses it.
	ids idText
}

// idText remembers the text of the GUIDs it formatted last.
type idText struct {
	session, set         uuid.UUID
	sessionText, setText string
}

func (t *idText) of(session, set uuid.UUID) (string, string) {
	if session != t.session || t.sessionText == "" {
		t.session, t.sessionText = session, session.String()
	}
	if set != t.set || t.setText == "" {
		t.set, t.setText = set, set.String()
	}
	return t.sessionText, t.setText
}

func (ws *writerStream) Send(m coordinator.Outbound) error {
	if m.Welcome != nil {
		return ws.stream.Send(&v1.CoordinatorMessage{Msg: &v1.CoordinatorMessage_Welcome{Welcome: &v1.Welcome{
			InstanceId: m.Welcome.InstanceID.String(), FreezeTimeoutMs: uint32(m.Welcome.Window / time.Millisecond)}}})
	}
	return ws.stream.Send(&v1.CoordinatorMessage{Msg: &v1.CoordinatorMessage_Event{Event: eventToWire(m.Event, &ws.ids)}})
}

func (ws *writerStream) End(cause error) {
	ws.once.Do(func() {
		ws.cause = cause
		close(ws.ended)
	})
}

// Subscribe carries one writer for the life of its stream (D6). The
// handler only waits: reading runs in a goroutine of its own and writing
// in the writer's sender, so the handler can return as soon as lvssd ends
// the stream, whatever the writer does.
func (h *writerService) Subscribe(stream v1.Writer_SubscribeServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return nil
	}
	if err := h.s.codec.takeBad(first); err != nil {
		return wire.ToGRPC(err)
	}
	hello := first.GetHello()
	if hello == nil {
		return wire.ToGRPC(vsserr.New(vsserr.InvalidArg, "the first message of a writer stream must be Hello"))
	}
	class, err := wire.ParseGUID(hello.WriterId)
	if err != nil {
		return wire.ToGRPC(err)
	}
	// The class is known only now: a bound class is its binding's
	// accounts' alone, so nobody else can pose as, say, the PostgreSQL
	// writer (L50).
	p := peerOf(ctx)
	if ok, why := h.s.access.MayRegister(p, class, hello.Name); !ok {
		return wire.ToGRPC(h.s.deny(ctx, p, fmt.Sprintf("Writer.Subscribe (writer %q, class %s)", hello.Name, class), why))
	}
	id := coordinator.Identity{ClassID: class, Name: hello.Name, InstanceName: hello.InstanceName,
		Usage: vss.UsageType(hello.Usage), Source: vss.SourceType(hello.Source), Level: vss.AppLevel(hello.Level),
		FreezeTimeout: time.Duration(hello.FreezeTimeoutMs) * time.Millisecond, Major: hello.MajorVersion, Minor: hello.MinorVersion}
	ws := &writerStream{stream: stream, ended: make(chan struct{})}
	w, err := h.s.c.AddWriter(ctx, id, toPeer(p), ws)
	if err != nil {
		return wire.ToGRPC(err)
	}
	defer h.s.c.RemoveWriter(ctx, w)
	closed := make(chan struct{})
	bad := make(chan error, 1) // a message that was refused, put before the stream is ended
	go func() {
		defer close(closed)
		for {
			msg, err := stream.Recv()
			if err != nil {
				return
			}
			if err := h.s.codec.takeBad(msg); err != nil {
				// A writer that sends what lvssd cannot read is broken:
				// its stream ends as a writer's that misses a deadline
				// does (L29), and the event it was answering fails at
				// once, naming why.
				bad <- err
				w.End(err)
				return
			}
			if r := msg.GetResult(); r != nil {
				w.Deliver(coordinator.Result{EventID: r.Id, Failure: vsserr.HRESULT(r.Failure),
					ApplicationHRESULT: vsserr.HRESULT(r.ApplicationHresult), ApplicationMessage: r.ApplicationMessage,
					WMD: []byte(r.WmdXml), BCD: []byte(r.BcdXml)})
			}
		}
	}()
	go h.s.c.IdentifyNew(ctx, w)
	select {
	case <-closed:
	case <-ws.ended:
	}
	select {
	case err := <-bad:
		return wire.ToGRPC(err)
	default:
	}
	select {
	case <-closed:
		return nil
	case <-ws.ended:
		// Not an InvalidArg: the SDK treats this as a lost connection and
		// subscribes again.
		return wire.ToGRPC(vsserr.Wrap(vsserr.WriterNotResponding, ws.cause, "lvssd ended the stream of writer %q", hello.Name))
	}
}

func eventToWire(ev *coordinator.Event, ids *idText) *v1.Event {
	session, set := ids.of(ev.SessionID, ev.SnapshotSetID)
	out := &v1.Event{Id: ev.ID, Type: v1.EventType(ev.Type), SessionId: session,
		SnapshotSetId: set, Context: int32(ev.Context), BackupType: int32(ev.BackupType),
		RestoreType:      int32(ev.RestoreType),
		SelectComponents: ev.SelectComponents, BootableSystemState: ev.BootableSystemState,
		PartialFileSupport: ev.PartialFileSupport, BcdXml: string(ev.BCD), Volumes: ev.Volumes,
		TimeoutMs: ev.Timeout.Milliseconds()}
	for _, p := range ev.Placements {
		out.Placements = append(out.Placements, &v1.PathPlacement{Path: p.Path, SnapshotId: guidOrEmpty(p.SnapshotID),
			OriginalVolume: p.OriginalVolume, Instant: p.Instant, FileByFile: p.FileByFile, DevicePath: p.DevicePath})
	}
	return out
}
