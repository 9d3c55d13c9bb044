package clienttest

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vsserr"
)

// AsyncPlan says how an async operation started by a method ends.
type AsyncPlan struct {
	// Result is the final status: 0 means VSS_S_ASYNC_FINISHED.
	Result  vsserr.HRESULT
	Message string
	// Hold keeps the operation pending until it is cancelled (or the
	// session ends).
	Hold bool
}

// Server is the fake daemon. Set its fields before the calls they affect;
// they are read under its lock.
type Server struct {
	v1.UnimplementedRequesterServer
	v1.UnimplementedAdminServer

	// Socket is the path clients dial.
	Socket string

	mu sync.Mutex
	// Fail makes the named method's call answer with this status.
	Fail map[string]vsserr.HRESULT
	// Async plans the operation the named async method starts.
	Async map[string]AsyncPlan
	// BreakOn ends the stream with a gRPC error when the named call
	// arrives, as a crashing daemon would.
	BreakOn string
	// WMDs are the Writer Metadata Documents GetWriterMetadata returns.
	WMDs []string
	// Status is what GetWriterStatus returns.
	Status []*v1.WriterStatus
	// BCD is what SaveAsXML and GetWriterComponents return.
	BCD string
	// Writers, Providers and Events are what the Admin service lists.
	Writers   []*v1.WriterInfo
	Providers []*v1.ProviderProp
	Events    []*v1.LogEvent
	// ShutdownWriters are reported in Released.
	ShutdownWriters []string

	calls    []string
	releases []*v1.Released
}

// Start serves a fake daemon until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	// Unix socket paths are limited to about 100 bytes; t.TempDir can be
	// longer than that under deep test names.
	dir, err := os.MkdirTemp("", "lvss-fake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{Socket: filepath.Join(dir, "lvssd.sock"), Fail: map[string]vsserr.HRESULT{}, Async: map[string]AsyncPlan{}}
	l, err := net.Listen("unix", s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(wire.MaxMessageSize), grpc.MaxSendMsgSize(wire.MaxMessageSize))
	v1.RegisterRequesterServer(gs, s)
	v1.RegisterAdminServer(gs, s)
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	return s
}

// Set runs f under the server's lock, for changing its fields while
// sessions run.
func (s *Server) Set(f func(s *Server)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// Calls lists the session calls received so far, by method name, in order.
// Wait, QueryStatus and Cancel are listed under their own names.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// Releases lists the Released messages sent, one per ended session.
func (s *Server) Releases() []*v1.Released {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*v1.Released(nil), s.releases...)
}

// ListWriters serves the Admin call.
func (s *Server) ListWriters(context.Context, *v1.ListWritersRequest) (*v1.ListWritersResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &v1.ListWritersResponse{Writers: s.Writers}, nil
}

// ListProviders serves the Admin call.
func (s *Server) ListProviders(context.Context, *v1.ListProvidersRequest) (*v1.ListProvidersResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &v1.ListProvidersResponse{Providers: s.Providers}, nil
}

// ListEvents serves the Admin call.
func (s *Server) ListEvents(_ context.Context, r *v1.ListEventsRequest) (*v1.ListEventsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*v1.LogEvent
	for _, e := range s.Events {
		if e.Seq > r.AfterSeq && (r.Limit <= 0 || len(out) < int(r.Limit)) {
			out = append(out, e)
		}
	}
	return &v1.ListEventsResponse{Events: out}, nil
}

// op is one async operation of a session.
type op struct {
	method string
	done   chan struct{}
	once   sync.Once
	result vsserr.HRESULT
	msg    string
}

func (o *op) end(h vsserr.HRESULT, msg string) bool {
	ended := false
	o.once.Do(func() { o.result, o.msg, ended = h, msg, true; close(o.done) })
	return ended
}

func (o *op) status() (vsserr.HRESULT, string) {
	select {
	case <-o.done:
		return o.result, o.msg
	default:
		return vsserr.AsyncPending, ""
	}
}

// sess is one Session stream's bookkeeping.
type sess struct {
	id        uuid.UUID
	sendMu    sync.Mutex
	stream    v1.Requester_SessionServer
	ops       map[uint64]*op
	nextOp    uint64
	setID     uuid.UUID
	snaps     []*v1.SnapshotProp
	started   bool
	created   bool
	abortSent bool
	broken    atomic.Bool // a crash was simulated: answer nothing more
}

func (x *sess) send(r *v1.SessionResponse) error {
	x.sendMu.Lock()
	defer x.sendMu.Unlock()
	return x.stream.Send(r)
}

// Session serves one requester session.
func (s *Server) Session(stream v1.Requester_SessionServer) error {
	x := &sess{id: uuid.New(), stream: stream, ops: map[uint64]*op{}}
	var waits sync.WaitGroup
	defer func() {
		for _, o := range x.ops {
			o.end(vsserr.AsyncCancelled, "session ended")
		}
		waits.Wait()
	}()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			rel := &v1.Released{Aborted: x.started && !x.created && !x.abortSent}
			s.mu.Lock()
			rel.ShutdownWriters = s.ShutdownWriters
			s.mu.Unlock()
			for _, sn := range x.snaps {
				rel.DeletedSnapshots = append(rel.DeletedSnapshots, sn.SnapshotId)
			}
			s.mu.Lock()
			s.releases = append(s.releases, rel)
			s.mu.Unlock()
			return x.send(&v1.SessionResponse{Status: &v1.Status{}, Result: &v1.SessionResponse_Released{Released: rel}})
		}
		if err != nil {
			return err
		}
		method := methodOf(req)
		s.mu.Lock()
		s.calls = append(s.calls, method)
		brk := s.BreakOn == method
		s.mu.Unlock()
		if brk {
			x.broken.Store(true)
			return status.Error(codes.Internal, "fake lvssd broke the stream on "+method)
		}
		if w := req.GetWait(); w != nil {
			// Wait is answered when the operation ends, while other calls
			// go on, as the real daemon does.
			o := x.ops[w.AsyncId]
			waits.Add(1)
			go func() {
				defer waits.Done()
				if r := s.wait(req.Id, o, w.TimeoutMs); !x.broken.Load() {
					x.send(r)
				}
			}()
			continue
		}
		if err := x.send(s.answer(x, method, req)); err != nil {
			return err
		}
	}
}

func (s *Server) wait(id uint64, o *op, timeoutMs int64) *v1.SessionResponse {
	if o == nil {
		return &v1.SessionResponse{Id: id, Status: &v1.Status{Hresult: uint32(vsserr.InvalidArg), Message: "no such async operation"}}
	}
	var timeout <-chan time.Time
	if timeoutMs >= 0 {
		t := time.NewTimer(time.Duration(timeoutMs) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-o.done:
	case <-timeout:
	}
	h, msg := o.status()
	return &v1.SessionResponse{Id: id, Status: &v1.Status{},
		Result: &v1.SessionResponse_AsyncStatus{AsyncStatus: &v1.AsyncStatus{Hresult: uint32(h), Message: msg}}}
}

var asyncMethods = map[string]bool{
	"GatherWriterMetadata": true, "PrepareForBackup": true, "DoSnapshotSet": true,
	"GatherWriterStatus": true, "BackupComplete": true,
}

func (s *Server) answer(x *sess, method string, req *v1.SessionRequest) *v1.SessionResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &v1.SessionResponse{Id: req.Id, Status: &v1.Status{}}
	if h, ok := s.Fail[method]; ok {
		r.Status = &v1.Status{Hresult: uint32(h), Message: "fake lvssd fails " + method}
		return r
	}
	if asyncMethods[method] {
		x.nextOp++
		o := &op{method: method, done: make(chan struct{})}
		x.ops[x.nextOp] = o
		plan := s.Async[method]
		if !plan.Hold {
			h := plan.Result
			if h == 0 {
				h = vsserr.AsyncFinished
			}
			o.end(h, plan.Message)
			if method == "DoSnapshotSet" && h == vsserr.AsyncFinished {
				x.created = true
			}
		}
		r.Result = &v1.SessionResponse_Async{Async: &v1.AsyncStarted{AsyncId: x.nextOp}}
		return r
	}
	switch c := req.Call.(type) {
	case *v1.SessionRequest_StartSnapshotSet:
		x.setID, x.started = uuid.New(), true
		r.Result = &v1.SessionResponse_SnapshotSetId{SnapshotSetId: &v1.SnapshotSetId{Id: x.setID.String()}}
	case *v1.SessionRequest_AddToSnapshotSet:
		sn := &v1.SnapshotProp{SnapshotId: uuid.NewString(), SnapshotSetId: x.setID.String(),
			OriginalVolume: c.AddToSnapshotSet.Volume, ProviderId: c.AddToSnapshotSet.ProviderId,
			DevicePath: "/run/lvss/snap/" + c.AddToSnapshotSet.Volume, Status: 12, Consistency: "crash",
			SessionId: x.id.String(), AutoRelease: true, CreatedUnixNano: time.Now().UnixNano()}
		x.snaps = append(x.snaps, sn)
		r.Result = &v1.SessionResponse_SnapshotId{SnapshotId: &v1.SnapshotId{Id: sn.SnapshotId}}
	case *v1.SessionRequest_AbortBackup:
		x.abortSent = true
	case *v1.SessionRequest_GetWriterMetadata:
		l := &v1.WriterMetadataList{}
		for i, w := range s.WMDs {
			id := uuid.NewSHA1(uuid.Nil, []byte{byte(i)}).String()
			l.Writers = append(l.Writers, &v1.WriterMetadataEntry{InstanceId: id, WmdXml: w})
		}
		r.Result = &v1.SessionResponse_WriterMetadata{WriterMetadata: l}
	case *v1.SessionRequest_GetWriterStatus:
		r.Result = &v1.SessionResponse_WriterStatus{WriterStatus: &v1.WriterStatusList{Writers: s.Status}}
	case *v1.SessionRequest_SaveAsXml, *v1.SessionRequest_GetWriterComponents:
		r.Result = &v1.SessionResponse_Xml{Xml: &v1.Xml{Xml: s.BCD}}
	case *v1.SessionRequest_Query:
		l := &v1.ObjectList{}
		if c.Query.ReturnedObjectType == 4 {
			for _, p := range s.Providers {
				l.Objects = append(l.Objects, &v1.ObjectProp{Object: &v1.ObjectProp_Provider{Provider: p}})
			}
		} else if x.created {
			for _, sn := range x.snaps {
				l.Objects = append(l.Objects, &v1.ObjectProp{Object: &v1.ObjectProp_Snapshot{Snapshot: sn}})
			}
		}
		r.Result = &v1.SessionResponse_Objects{Objects: l}
	case *v1.SessionRequest_GetSnapshotProperties:
		for _, sn := range x.snaps {
			if sn.SnapshotId == c.GetSnapshotProperties.SnapshotId {
				r.Result = &v1.SessionResponse_Snapshot{Snapshot: sn}
				return r
			}
		}
		r.Status = &v1.Status{Hresult: uint32(vsserr.ObjectNotFound), Message: "no snapshot " + c.GetSnapshotProperties.SnapshotId}
	case *v1.SessionRequest_DeleteSnapshots:
		r.Result = &v1.SessionResponse_Deleted{Deleted: &v1.DeleteResult{Deleted: 1, NonDeletedSnapshotId: uuid.Nil.String()}}
	case *v1.SessionRequest_IsVolumeSupported:
		r.Result = &v1.SessionResponse_Supported{Supported: &v1.Bool{Value: true}}
	case *v1.SessionRequest_ExposeSnapshot:
		name := c.ExposeSnapshot.Expose
		if name == "" {
			name = "/run/lvss/exposed/" + c.ExposeSnapshot.SnapshotId
		}
		r.Result = &v1.SessionResponse_Exposed{Exposed: &v1.ExposeResult{ExposedName: name}}
	case *v1.SessionRequest_GetSessionId:
		r.Result = &v1.SessionResponse_SessionId{SessionId: &v1.SessionId{Id: x.id.String()}}
	case *v1.SessionRequest_QueryStatus:
		o := x.ops[c.QueryStatus.AsyncId]
		if o == nil {
			r.Status = &v1.Status{Hresult: uint32(vsserr.InvalidArg), Message: "no such async operation"}
			return r
		}
		h, msg := o.status()
		r.Result = &v1.SessionResponse_AsyncStatus{AsyncStatus: &v1.AsyncStatus{Hresult: uint32(h), Message: msg}}
	case *v1.SessionRequest_Cancel:
		o := x.ops[c.Cancel.AsyncId]
		if o == nil {
			r.Status = &v1.Status{Hresult: uint32(vsserr.InvalidArg), Message: "no such async operation"}
			return r
		}
		h := vsserr.OK
		if !o.end(vsserr.AsyncCancelled, o.method+" cancelled") {
			h, _ = o.status()
			if h != vsserr.AsyncCancelled {
				h = vsserr.AsyncFinished
			}
		}
		r.Result = &v1.SessionResponse_AsyncStatus{AsyncStatus: &v1.AsyncStatus{Hresult: uint32(h)}}
	}
	return r
}

// methodOf names a request by its IVssBackupComponents method.
func methodOf(req *v1.SessionRequest) string {
	switch req.Call.(type) {
	case *v1.SessionRequest_InitializeForBackup:
		return "InitializeForBackup"
	case *v1.SessionRequest_InitializeForRestore:
		return "InitializeForRestore"
	case *v1.SessionRequest_SetContext:
		return "SetContext"
	case *v1.SessionRequest_SetBackupState:
		return "SetBackupState"
	case *v1.SessionRequest_GatherWriterMetadata:
		return "GatherWriterMetadata"
	case *v1.SessionRequest_GetWriterMetadata:
		return "GetWriterMetadata"
	case *v1.SessionRequest_FreeWriterMetadata:
		return "FreeWriterMetadata"
	case *v1.SessionRequest_EnableWriterClasses:
		return "EnableWriterClasses"
	case *v1.SessionRequest_DisableWriterClasses:
		return "DisableWriterClasses"
	case *v1.SessionRequest_DisableWriterInstances:
		return "DisableWriterInstances"
	case *v1.SessionRequest_AddComponent:
		return "AddComponent"
	case *v1.SessionRequest_SetBackupOptions:
		return "SetBackupOptions"
	case *v1.SessionRequest_SetPreviousBackupStamp:
		return "SetPreviousBackupStamp"
	case *v1.SessionRequest_StartSnapshotSet:
		return "StartSnapshotSet"
	case *v1.SessionRequest_AddToSnapshotSet:
		return "AddToSnapshotSet"
	case *v1.SessionRequest_PrepareForBackup:
		return "PrepareForBackup"
	case *v1.SessionRequest_DoSnapshotSet:
		return "DoSnapshotSet"
	case *v1.SessionRequest_GatherWriterStatus:
		return "GatherWriterStatus"
	case *v1.SessionRequest_GetWriterStatus:
		return "GetWriterStatus"
	case *v1.SessionRequest_FreeWriterStatus:
		return "FreeWriterStatus"
	case *v1.SessionRequest_SetBackupSucceeded:
		return "SetBackupSucceeded"
	case *v1.SessionRequest_BackupComplete:
		return "BackupComplete"
	case *v1.SessionRequest_AbortBackup:
		return "AbortBackup"
	case *v1.SessionRequest_SaveAsXml:
		return "SaveAsXML"
	case *v1.SessionRequest_GetWriterComponents:
		return "GetWriterComponents"
	case *v1.SessionRequest_Query:
		return "Query"
	case *v1.SessionRequest_GetSnapshotProperties:
		return "GetSnapshotProperties"
	case *v1.SessionRequest_DeleteSnapshots:
		return "DeleteSnapshots"
	case *v1.SessionRequest_IsVolumeSupported:
		return "IsVolumeSupported"
	case *v1.SessionRequest_ExposeSnapshot:
		return "ExposeSnapshot"
	case *v1.SessionRequest_UnexposeSnapshot:
		return "UnexposeSnapshot"
	case *v1.SessionRequest_Wait:
		return "Wait"
	case *v1.SessionRequest_QueryStatus:
		return "QueryStatus"
	case *v1.SessionRequest_Cancel:
		return "Cancel"
	case *v1.SessionRequest_GetSessionId:
		return "GetSessionId"
	}
	return "unknown"
}
