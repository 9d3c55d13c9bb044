package server

import (
	"sync"
	"time"

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

// Subscribe carries one writer for the life of its stream (§12 D6).
func (h *writerService) Subscribe(stream v1.Writer_SubscribeServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return nil
	}
	hello := first.GetHello()
	if hello == nil {
		return wire.ToGRPC(vsserr.New(vsserr.InvalidArg, "the first message of a writer stream must be Hello"))
	}
	class, err := wire.ParseGUID(hello.WriterId)
	if err != nil {
		return wire.ToGRPC(err)
	}
	id := coordinator.Identity{ClassID: class, Name: hello.Name, InstanceName: hello.InstanceName,
		Usage: vss.UsageType(hello.Usage), Source: vss.SourceType(hello.Source), Level: vss.AppLevel(hello.Level),
		FreezeTimeout: time.Duration(hello.FreezeTimeoutMs) * time.Millisecond, Major: hello.MajorVersion, Minor: hello.MinorVersion}
	var mu sync.Mutex
	send := func(ev *coordinator.Event) error {
		mu.Lock()
		defer mu.Unlock()
		return stream.Send(&v1.CoordinatorMessage{Msg: &v1.CoordinatorMessage_Event{Event: eventToWire(ev)}})
	}
	w, err := h.s.c.AddWriter(ctx, id, toPeer(peerOf(ctx)), send)
	if err != nil {
		return wire.ToGRPC(err)
	}
	defer h.s.c.RemoveWriter(ctx, w)
	mu.Lock()
	err = stream.Send(&v1.CoordinatorMessage{Msg: &v1.CoordinatorMessage_Welcome{Welcome: &v1.Welcome{
		InstanceId: w.InstanceID.String(), FreezeTimeoutMs: uint32(w.Window / time.Millisecond)}}})
	mu.Unlock()
	if err != nil {
		return nil
	}
	go h.s.c.IdentifyNew(ctx, w)
	for {
		msg, err := stream.Recv()
		if err != nil {
			return nil
		}
		if r := msg.GetResult(); r != nil {
			w.Deliver(coordinator.Result{EventID: r.Id, Failure: vsserr.HRESULT(r.Failure),
				ApplicationHRESULT: vsserr.HRESULT(r.ApplicationHresult), ApplicationMessage: r.ApplicationMessage,
				WMD: []byte(r.WmdXml), BCD: []byte(r.BcdXml)})
		}
	}
}

func eventToWire(ev *coordinator.Event) *v1.Event {
	out := &v1.Event{Id: ev.ID, Type: v1.EventType(ev.Type), SessionId: ev.SessionID.String(),
		SnapshotSetId: ev.SnapshotSetID.String(), Context: int32(ev.Context), BackupType: int32(ev.BackupType),
		SelectComponents: ev.SelectComponents, BootableSystemState: ev.BootableSystemState,
		PartialFileSupport: ev.PartialFileSupport, BcdXml: string(ev.BCD), Volumes: ev.Volumes,
		TimeoutMs: ev.Timeout.Milliseconds()}
	for _, p := range ev.Placements {
		out.Placements = append(out.Placements, &v1.PathPlacement{Path: p.Path, SnapshotId: guidOrEmpty(p.SnapshotID),
			OriginalVolume: p.OriginalVolume, Instant: p.Instant, FileByFile: p.FileByFile, DevicePath: p.DevicePath})
	}
	return out
}
