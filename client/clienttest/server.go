package clienttest

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
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
	// WriterStatus is what GetWriterStatus returns.
	WriterStatus []*v1.WriterStatus
	// BCD is what SaveAsXML and GetWriterComponents return.
	BCD string
	// Writers, Providers and Events are what the Admin service lists.
	Writers   []*v1.WriterInfo
	Providers []*v1.ProviderProp
	Events    []*v1.LogEvent
	// ShutdownWriters are reported in Released.
	ShutdownWriters []string

	// Shadows is the snapshot catalog: what ListShadows lists, what
	// DeleteSnapshots deletes from and what ExposeSnapshot marks. A
	// session's snapshots join it when its DoSnapshotSet succeeds, and its
	// auto-release ones leave it when the session ends. A snapshot counts as
	// LiveSession when its own field says so or its session still runs.
	Shadows []*v1.SnapshotProp
	// DeleteFail makes DeleteSnapshots of the snapshot with that ID fail
	// with this status, for "stop at the first failure" paths (and, with
	// VSS_E_VOLUME_IN_USE, for a snapshot exposed after it was listed).
	DeleteFail map[string]vsserr.HRESULT
	// Consistency and ConsistencyReason, when set, are recorded on the
	// snapshots sessions create instead of the default ("application" in a
	// context with writers, "crash" without).
	Consistency       string
	ConsistencyReason string

	calls    []string
	requests []*v1.SessionRequest
	releases []*v1.Released
	deleted  []string
	live     map[string]bool // IDs of the sessions running now
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
	s := &Server{Socket: filepath.Join(dir, "lvssd.sock"), Fail: map[string]vsserr.HRESULT{}, Async: map[string]AsyncPlan{},
		DeleteFail: map[string]vsserr.HRESULT{}, live: map[string]bool{}}
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

// Requests lists the session requests received so far, in the order of
// Calls, so that tests can check the arguments a command sent (a backup
// type, a context), not only which methods it called.
func (s *Server) Requests() []*v1.SessionRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*v1.SessionRequest(nil), s.requests...)
}

// Deleted lists the IDs of the snapshots DeleteSnapshots deleted, in order
// (a whole set counts as its snapshots).
func (s *Server) Deleted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.deleted...)
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

// ShadowBatch is how many snapshots one message of the fake's ListShadows
// stream carries: small, so that tests see a listing arrive in several.
const ShadowBatch = 2

// ListShadows serves the Admin call as lvssd does: the catalog filtered by
// set and original volume, with live sessions marked, set by set (sets by
// their oldest snapshot, a set's snapshots by creation time, volume, ID),
// after AfterSnapshotId and up to Limit, in batches of ShadowBatch.
func (s *Server) ListShadows(r *v1.ListShadowsRequest, stream grpc.ServerStreamingServer[v1.ListShadowsResponse]) error {
	s.mu.Lock()
	var list []*v1.SnapshotProp
	for _, sn := range s.Shadows {
		if r.SnapshotSetId != "" && sn.SnapshotSetId != r.SnapshotSetId {
			continue
		}
		if r.Volume != "" && filepath.Clean(sn.OriginalVolume) != filepath.Clean(r.Volume) {
			continue
		}
		// A copy: the response is marshalled after the lock is gone.
		c := proto.Clone(sn).(*v1.SnapshotProp)
		c.LiveSession = c.LiveSession || s.live[c.SessionId]
		list = append(list, c)
	}
	s.mu.Unlock()
	order := func(a, b *v1.SnapshotProp) int {
		return cmp.Or(cmp.Compare(a.CreatedUnixNano, b.CreatedUnixNano), strings.Compare(a.SnapshotId, b.SnapshotId))
	}
	lead := map[string]*v1.SnapshotProp{}
	for _, sn := range list {
		if l := lead[sn.SnapshotSetId]; l == nil || order(sn, l) < 0 {
			lead[sn.SnapshotSetId] = sn
		}
	}
	slices.SortStableFunc(list, func(a, b *v1.SnapshotProp) int {
		if a.SnapshotSetId != b.SnapshotSetId {
			return order(lead[a.SnapshotSetId], lead[b.SnapshotSetId])
		}
		return cmp.Or(cmp.Compare(a.CreatedUnixNano, b.CreatedUnixNano), strings.Compare(a.OriginalVolume, b.OriginalVolume),
			strings.Compare(a.SnapshotId, b.SnapshotId))
	})
	if r.AfterSnapshotId != "" {
		i := slices.IndexFunc(list, func(sn *v1.SnapshotProp) bool { return sn.SnapshotId == r.AfterSnapshotId })
		if i < 0 {
			return wire.ToGRPC(vsserr.New(vsserr.ObjectNotFound, "snapshot %s is not in the catalog", r.AfterSnapshotId))
		}
		list = list[i+1:]
	}
	if r.Limit > 0 && len(list) > int(r.Limit) {
		list = list[:r.Limit]
	}
	for len(list) > 0 {
		n := min(len(list), ShadowBatch)
		if err := stream.Send(&v1.ListShadowsResponse{Snapshots: list[:n]}); err != nil {
			return err
		}
		list = list[n:]
	}
	return nil
}

// findShadow returns the snapshot with that ID from the session's own
// snapshots or the catalog, nil if there is none.
func (s *Server) findShadow(x *sess, id string) *v1.SnapshotProp {
	for _, l := range [][]*v1.SnapshotProp{x.snaps, s.Shadows} {
		for _, sn := range l {
			if sn.SnapshotId == id {
				return sn
			}
		}
	}
	return nil
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
	context   vss.Context
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
	s.mu.Lock()
	s.live[x.id.String()] = true
	s.mu.Unlock()
	var waits sync.WaitGroup
	defer func() {
		s.mu.Lock()
		delete(s.live, x.id.String())
		// However the stream ended, the session is over and its
		// auto-release snapshots go with it (D11).
		s.Shadows = slices.DeleteFunc(s.Shadows, func(c *v1.SnapshotProp) bool {
			return c.AutoRelease && c.SessionId == x.id.String()
		})
		s.mu.Unlock()
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
			s.mu.Lock()
			// Ending a session deletes its auto-release snapshots (D11),
			// and only those.
			for _, sn := range x.snaps {
				if sn.AutoRelease {
					rel.DeletedSnapshots = append(rel.DeletedSnapshots, sn.SnapshotId)
					s.Shadows = slices.DeleteFunc(s.Shadows, func(c *v1.SnapshotProp) bool { return c.SnapshotId == sn.SnapshotId })
				}
			}
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
		s.requests = append(s.requests, proto.Clone(req).(*v1.SessionRequest))
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
				s.Shadows = append(s.Shadows, x.snaps...)
			}
		}
		r.Result = &v1.SessionResponse_Async{Async: &v1.AsyncStarted{AsyncId: x.nextOp}}
		return r
	}
	switch c := req.Call.(type) {
	case *v1.SessionRequest_SetContext:
		x.context = vss.Context(c.SetContext.Context)
	case *v1.SessionRequest_StartSnapshotSet:
		x.setID, x.started = uuid.New(), true
		r.Result = &v1.SessionResponse_SnapshotSetId{SnapshotSetId: &v1.SnapshotSetId{Id: x.setID.String()}}
	case *v1.SessionRequest_AddToSnapshotSet:
		sn := &v1.SnapshotProp{SnapshotId: uuid.NewString(), SnapshotSetId: x.setID.String(),
			OriginalVolume: c.AddToSnapshotSet.Volume, ProviderId: c.AddToSnapshotSet.ProviderId,
			DevicePath: "/run/lvss/snap/" + c.AddToSnapshotSet.Volume, Status: 12, Consistency: "crash",
			ConsistencyReason: "no application was frozen", SessionId: x.id.String(),
			AutoRelease: x.context.AutoRelease(), CreatedUnixNano: time.Now().UnixNano(),
			Context: int32(x.context), Attributes: uint32(x.context) | uint32(vss.AttrNotSurfaced)}
		if x.context.Writers() {
			sn.Consistency, sn.ConsistencyReason = "application", ""
		}
		if s.Consistency != "" {
			sn.Consistency, sn.ConsistencyReason = s.Consistency, s.ConsistencyReason
		}
		for _, p := range s.Providers {
			if sn.ProviderId == "" || sn.ProviderId == uuid.Nil.String() || p.ProviderId == sn.ProviderId {
				sn.ProviderId, sn.ProviderName = p.ProviderId, p.Name
				break
			}
		}
		x.snaps = append(x.snaps, sn)
		for _, sn := range x.snaps {
			sn.SnapshotsCount = int32(len(x.snaps))
		}
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
		r.Result = &v1.SessionResponse_WriterStatus{WriterStatus: &v1.WriterStatusList{Writers: s.WriterStatus}}
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
				// A copy: Expose in another session may change sn while
				// this answer is marshalled.
				l.Objects = append(l.Objects, &v1.ObjectProp{Object: &v1.ObjectProp_Snapshot{Snapshot: proto.Clone(sn).(*v1.SnapshotProp)}})
			}
		}
		r.Result = &v1.SessionResponse_Objects{Objects: l}
	case *v1.SessionRequest_GetSnapshotProperties:
		if sn := s.findShadow(x, c.GetSnapshotProperties.SnapshotId); sn != nil {
			r.Result = &v1.SessionResponse_Snapshot{Snapshot: proto.Clone(sn).(*v1.SnapshotProp)}
			return r
		}
		r.Status = &v1.Status{Hresult: uint32(vsserr.ObjectNotFound), Message: "no snapshot " + c.GetSnapshotProperties.SnapshotId}
	case *v1.SessionRequest_DeleteSnapshots:
		return s.deleteSnapshots(x, r, c.DeleteSnapshots)
	case *v1.SessionRequest_IsVolumeSupported:
		r.Result = &v1.SessionResponse_Supported{Supported: &v1.Bool{Value: true}}
	case *v1.SessionRequest_ExposeSnapshot:
		sn := s.findShadow(x, c.ExposeSnapshot.SnapshotId)
		if sn == nil {
			r.Status = &v1.Status{Hresult: uint32(vsserr.ObjectNotFound), Message: "no snapshot " + c.ExposeSnapshot.SnapshotId}
			return r
		}
		name := c.ExposeSnapshot.Expose
		if name == "" {
			name = "/run/lvss/exposed/" + c.ExposeSnapshot.SnapshotId
		}
		sn.ExposedName = name
		sn.Attributes = (sn.Attributes | uint32(vss.AttrExposedLocally)) &^ uint32(vss.AttrNotSurfaced)
		r.Result = &v1.SessionResponse_Exposed{Exposed: &v1.ExposeResult{ExposedName: name}}
	case *v1.SessionRequest_UnexposeSnapshot:
		sn := s.findShadow(x, c.UnexposeSnapshot.SnapshotId)
		if sn == nil || sn.ExposedName == "" {
			r.Status = &v1.Status{Hresult: uint32(vsserr.ObjectNotFound), Message: "snapshot " + c.UnexposeSnapshot.SnapshotId + " is not exposed"}
			return r
		}
		sn.ExposedName = ""
		sn.Attributes = (sn.Attributes &^ uint32(vss.AttrExposedLocally)) | uint32(vss.AttrNotSurfaced)
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

// deleteSnapshots deletes one snapshot or a set from the catalog (or the
// session's own snapshots), one by one, stopping at the first one
// DeleteFail names, or with refuse_in_use at the first one exposed or of
// another running session, as the real daemon does.
func (s *Server) deleteSnapshots(x *sess, r *v1.SessionResponse, d *v1.DeleteSnapshots) *v1.SessionResponse {
	var ids []string
	switch vss.ObjectType(d.SourceObjectType) {
	case vss.ObjectSnapshot:
		if s.findShadow(x, d.SourceObjectId) != nil {
			ids = []string{d.SourceObjectId}
		}
	case vss.ObjectSnapshotSet:
		for _, sn := range s.Shadows {
			if sn.SnapshotSetId == d.SourceObjectId {
				ids = append(ids, sn.SnapshotId)
			}
		}
	default:
		r.Status = &v1.Status{Hresult: uint32(vsserr.InvalidArg), Message: "bad object type"}
		return r
	}
	res := &v1.DeleteResult{NonDeletedSnapshotId: uuid.Nil.String()}
	r.Result = &v1.SessionResponse_Deleted{Deleted: res}
	if len(ids) == 0 {
		r.Status = &v1.Status{Hresult: uint32(vsserr.ObjectNotFound), Message: "no snapshot or set " + d.SourceObjectId}
		return r
	}
	for _, id := range ids {
		if h, ok := s.DeleteFail[id]; ok {
			res.NonDeletedSnapshotId = id
			r.Status = &v1.Status{Hresult: uint32(h), Message: "fake lvssd fails to delete " + id}
			return r
		}
		if sn := s.findShadow(x, id); d.RefuseInUse && sn != nil &&
			(sn.ExposedName != "" || (sn.SessionId != x.id.String() && (sn.LiveSession || s.live[sn.SessionId]))) {
			res.NonDeletedSnapshotId = id
			r.Status = &v1.Status{Hresult: uint32(vsserr.VolumeInUse), Message: "fake lvssd: snapshot " + id + " is in use"}
			return r
		}
		s.Shadows = slices.DeleteFunc(s.Shadows, func(c *v1.SnapshotProp) bool { return c.SnapshotId == id })
		s.deleted = append(s.deleted, id)
		res.Deleted++
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
	case *v1.SessionRequest_RevertToSnapshot:
		return "RevertToSnapshot"
	case *v1.SessionRequest_QueryRevertStatus:
		return "QueryRevertStatus"
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
