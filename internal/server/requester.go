package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/outbox"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

type requester struct {
	v1.UnimplementedRequesterServer
	s *Server
}

// responseQueue bounds the responses queued for one requester. A requester
// has few calls in flight (its calls run one at a time, plus its Waits); a
// queue this long means it stopped reading.
const responseQueue = 256

// Session serves one IVssBackupComponents object for the life of the stream.
// Calls run in arrival order; only Wait runs beside them, so that Cancel
// and QueryStatus can reach an operation someone is waiting on.
//
// Responses go through a bounded queue with its own sender (package
// outbox): a requester that stops reading its responses never blocks a
// call, and once a response has waited timeouts.requester_send for it,
// its stream is ended and its session released (D11), so it cannot
// hold the creation lock or a frozen writer.
func (h *requester) Session(stream v1.Requester_SessionServer) error {
	ctx := stream.Context()
	// The peer's credentials are the connection's: its roles are decided
	// once for the stream and applied to each call.
	p := peerOf(ctx)
	roles := h.s.access.Roles(p)
	sess := h.s.c.NewSession(toPeer(p))
	sendTimeout := h.s.c.Options().Timeouts.RequesterSend
	ended := make(chan struct{})
	box := outbox.New(responseQueue, stream.Send, func(error) { close(ended) })
	send := func(r *v1.SessionResponse) *outbox.Ticket {
		return box.Put(r, time.Now().Add(sendTimeout), fmt.Sprintf("the response to call %d", r.Id))
	}
	var (
		waitMu  sync.Mutex
		closing bool
		waits   sync.WaitGroup
	)
	startWait := func() bool {
		waitMu.Lock()
		defer waitMu.Unlock()
		if closing {
			return false
		}
		waits.Add(1)
		return true
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for {
			req, err := stream.Recv()
			if err != nil {
				return
			}
			if err := h.s.codec.takeBad(req); err != nil {
				send(&v1.SessionResponse{Id: req.Id, Status: wire.StatusOf(err)})
				continue
			}
			if w := req.GetWait(); w != nil {
				if startWait() {
					go func() {
						defer waits.Done()
						send(h.wait(ctx, sess, req.Id, w))
					}()
				}
				continue
			}
			if err := h.s.authorizeCall(ctx, p, roles, req); err != nil {
				send(&v1.SessionResponse{Id: req.Id, Status: wire.StatusOf(err)})
				continue
			}
			send(h.dispatch(ctx, sess, req))
		}
	}()
	select {
	case <-closed:
	case <-ended:
	}
	// The stream ended (half-close, exit, kill) or the requester stopped
	// reading: release as VSS does when the last reference to
	// IVssBackupComponents goes (D11).
	rel := sess.Release(context.Background())
	waitMu.Lock()
	closing = true
	waitMu.Unlock()
	waits.Wait()
	if cause := box.Cause(); cause != nil {
		h.s.c.Logf(ctx, coordinator.LevelWarn, vsserr.Unexpected, "requester stream ended by lvssd; its session was released",
			"session", sess.ID().String(), "pid", fmt.Sprint(peerOf(ctx).PID), "reason", cause.Error())
		return wire.ToGRPC(vsserr.Wrap(vsserr.Unexpected, cause, "lvssd ended the session stream"))
	}
	r := &v1.Released{Aborted: rel.Aborted, ShutdownWriters: wire.GUIDs(rel.ShutdownWriters), DeletedSnapshots: wire.GUIDs(rel.DeletedSnapshots)}
	tk := send(&v1.SessionResponse{Id: 0, Status: wire.StatusOf(nil), Result: &v1.SessionResponse_Released{Released: r}})
	// The handler must not return before the last response is written:
	// returning ends the stream.
	select {
	case <-tk.Written():
	case <-ended:
	}
	box.End(errSessionOver)
	return nil
}

// authorizeCall lets a requester make every call and an admin (read-only)
// only those that change nothing outside its own session (L50).
func (s *Server) authorizeCall(ctx context.Context, p PeerInfo, roles Role, req *v1.SessionRequest) error {
	if roles.Has(RoleRequester) || readOnlyCall(req) {
		return nil
	}
	return s.deny(ctx, p, "Requester.Session "+callName(req),
		"it needs the requester role ("+RoleRequester.keys()+"); the admin role only reads")
}

// readOnlyCall reports whether a session call only reads: what lvssd
// knows (snapshots, providers, a revert's progress) or the caller's own
// session. Every other call creates, changes or deletes something, or
// sends writers an event (GatherWriterMetadata's Identify).
func readOnlyCall(req *v1.SessionRequest) bool {
	switch req.Call.(type) {
	case *v1.SessionRequest_InitializeForBackup, // session-local: Query is allowed only after it
		*v1.SessionRequest_SetContext, // session-local: VSS_CTX_ALL lets Query see every context
		*v1.SessionRequest_Query,
		*v1.SessionRequest_GetSnapshotProperties,
		*v1.SessionRequest_IsVolumeSupported,
		*v1.SessionRequest_QueryRevertStatus,
		*v1.SessionRequest_QueryStatus,
		*v1.SessionRequest_Wait, // on the session's own asyncs: QueryRevertStatus's
		*v1.SessionRequest_GetSessionId,
		*v1.SessionRequest_SaveAsXml,
		*v1.SessionRequest_GetWriterComponents:
		return true
	}
	return false
}

// callName is the VSS method of a session call ("DoSnapshotSet").
func callName(req *v1.SessionRequest) string {
	if req.Call == nil {
		return "(empty call)"
	}
	// The oneof's field is the call's name in snake case (two calls share
	// a message type, EnableWriterClasses and DisableWriterClasses).
	fd := req.ProtoReflect().WhichOneof(req.ProtoReflect().Descriptor().Oneofs().ByName("call"))
	if fd == nil {
		return "(empty call)"
	}
	var b strings.Builder
	for _, w := range strings.Split(string(fd.Name()), "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// errSessionOver stops a session's sender once everything was written.
var errSessionOver = errors.New("session over")

func (h *requester) wait(ctx context.Context, sess *coordinator.Session, id uint64, w *v1.Wait) *v1.SessionResponse {
	a, err := sess.Async(w.AsyncId)
	if err != nil {
		return &v1.SessionResponse{Id: id, Status: wire.StatusOf(err)}
	}
	d := time.Duration(-1)
	if w.TimeoutMs >= 0 {
		d = time.Duration(w.TimeoutMs) * time.Millisecond
	}
	st, msg := a.Wait(ctx, d)
	return &v1.SessionResponse{Id: id, Status: wire.StatusOf(nil),
		Result: &v1.SessionResponse_AsyncStatus{AsyncStatus: &v1.AsyncStatus{Hresult: uint32(st), Message: msg}}}
}

func asyncResult(a *coordinator.Async, err error) (*v1.SessionResponse, error) {
	if err != nil {
		return nil, err
	}
	return &v1.SessionResponse{Result: &v1.SessionResponse_Async{Async: &v1.AsyncStarted{AsyncId: a.ID()}}}, nil
}

func compRef(c *v1.ComponentRef) (uuid.UUID, vss.ComponentType, string, string, error) {
	if c == nil {
		return uuid.Nil, 0, "", "", vsserr.New(vsserr.InvalidArg, "component is missing")
	}
	id, err := wire.ParseGUID(c.WriterId)
	return id, vss.ComponentType(c.ComponentType), c.LogicalPath, c.Name, err
}

// dispatch runs one call. Errors that carry no HRESULT are internal ones:
// they are logged with their code and returned as VSS_E_UNEXPECTED.
func (h *requester) dispatch(ctx context.Context, sess *coordinator.Session, req *v1.SessionRequest) *v1.SessionResponse {
	resp, err := h.call(ctx, sess, req)
	if resp == nil {
		resp = &v1.SessionResponse{}
	}
	resp.Id = req.Id
	if err != nil && vsserr.Code(err) == vsserr.Unexpected {
		h.s.c.Logf(ctx, coordinator.LevelError, vsserr.Unexpected, "unexpected error in a session call", "session", sess.ID().String(), "error", err.Error())
	}
	if err != nil || resp.Status == nil {
		resp.Status = wire.StatusOf(err)
	}
	if err != nil {
		resp.Result = nil
	}
	return resp
}

func (h *requester) call(ctx context.Context, s *coordinator.Session, req *v1.SessionRequest) (*v1.SessionResponse, error) {
	switch c := req.Call.(type) {
	case *v1.SessionRequest_InitializeForBackup:
		return nil, s.InitializeForBackup(c.InitializeForBackup.BcdXml)
	case *v1.SessionRequest_InitializeForRestore:
		return nil, s.InitializeForRestore(c.InitializeForRestore.BcdXml)
	case *v1.SessionRequest_SetContext:
		return nil, s.SetContext(vss.Context(c.SetContext.Context))
	case *v1.SessionRequest_SetBackupState:
		b := c.SetBackupState
		return nil, s.SetBackupState(b.SelectComponents, b.BootableSystemState, vss.BackupType(b.BackupType), b.PartialFileSupport)
	case *v1.SessionRequest_GatherWriterMetadata:
		return asyncResult(s.GatherWriterMetadata())
	case *v1.SessionRequest_GetWriterMetadata:
		mds, err := s.GetWriterMetadata()
		if err != nil {
			return nil, err
		}
		l := &v1.WriterMetadataList{}
		for _, m := range mds {
			l.Writers = append(l.Writers, &v1.WriterMetadataEntry{InstanceId: m.InstanceID.String(), WmdXml: string(m.XML)})
		}
		return &v1.SessionResponse{Result: &v1.SessionResponse_WriterMetadata{WriterMetadata: l}}, nil
	case *v1.SessionRequest_FreeWriterMetadata:
		return nil, s.FreeWriterMetadata()
	case *v1.SessionRequest_EnableWriterClasses:
		ids, err := wire.ParseGUIDs(c.EnableWriterClasses.WriterIds)
		if err != nil {
			return nil, err
		}
		return nil, s.EnableWriterClasses(ids)
	case *v1.SessionRequest_DisableWriterClasses:
		ids, err := wire.ParseGUIDs(c.DisableWriterClasses.WriterIds)
		if err != nil {
			return nil, err
		}
		return nil, s.DisableWriterClasses(ids)
	case *v1.SessionRequest_DisableWriterInstances:
		ids, err := wire.ParseGUIDs(c.DisableWriterInstances.InstanceIds)
		if err != nil {
			return nil, err
		}
		return nil, s.DisableWriterInstances(ids)
	case *v1.SessionRequest_AddComponent:
		inst, err := wire.ParseGUID(c.AddComponent.InstanceId)
		if err != nil {
			return nil, err
		}
		w, ct, lp, name, err := compRef(c.AddComponent.Component)
		if err != nil {
			return nil, err
		}
		return nil, s.AddComponent(inst, w, ct, lp, name)
	case *v1.SessionRequest_SetBackupOptions:
		w, ct, lp, name, err := compRef(c.SetBackupOptions.Component)
		if err != nil {
			return nil, err
		}
		return nil, s.SetBackupOptions(w, ct, lp, name, c.SetBackupOptions.Options)
	case *v1.SessionRequest_SetPreviousBackupStamp:
		w, ct, lp, name, err := compRef(c.SetPreviousBackupStamp.Component)
		if err != nil {
			return nil, err
		}
		return nil, s.SetPreviousBackupStamp(w, ct, lp, name, c.SetPreviousBackupStamp.Stamp)
	case *v1.SessionRequest_StartSnapshotSet:
		id, err := s.StartSnapshotSet()
		if err != nil {
			return nil, err
		}
		return &v1.SessionResponse{Result: &v1.SessionResponse_SnapshotSetId{SnapshotSetId: &v1.SnapshotSetId{Id: id.String()}}}, nil
	case *v1.SessionRequest_AddToSnapshotSet:
		prov, err := wire.ParseGUID(c.AddToSnapshotSet.ProviderId)
		if err != nil {
			return nil, err
		}
		id, err := s.AddToSnapshotSet(ctx, c.AddToSnapshotSet.Volume, prov)
		if err != nil {
			return nil, err
		}
		return &v1.SessionResponse{Result: &v1.SessionResponse_SnapshotId{SnapshotId: &v1.SnapshotId{Id: id.String()}}}, nil
	case *v1.SessionRequest_PrepareForBackup:
		return asyncResult(s.PrepareForBackup())
	case *v1.SessionRequest_DoSnapshotSet:
		return asyncResult(s.DoSnapshotSet())
	case *v1.SessionRequest_GatherWriterStatus:
		return asyncResult(s.GatherWriterStatus())
	case *v1.SessionRequest_GetWriterStatus:
		st, err := s.GetWriterStatus()
		if err != nil {
			return nil, err
		}
		l := &v1.WriterStatusList{}
		for _, w := range st {
			l.Writers = append(l.Writers, &v1.WriterStatus{InstanceId: w.InstanceID.String(), WriterId: w.ClassID.String(),
				Name: w.Name, InstanceName: w.InstanceName, State: int32(w.State), Failure: uint32(w.Failure),
				ApplicationHresult: uint32(w.AppHRESULT), ApplicationMessage: w.AppMessage})
		}
		return &v1.SessionResponse{Result: &v1.SessionResponse_WriterStatus{WriterStatus: l}}, nil
	case *v1.SessionRequest_FreeWriterStatus:
		return nil, s.FreeWriterStatus()
	case *v1.SessionRequest_SetBackupSucceeded:
		inst, err := wire.ParseGUID(c.SetBackupSucceeded.InstanceId)
		if err != nil {
			return nil, err
		}
		w, ct, lp, name, err := compRef(c.SetBackupSucceeded.Component)
		if err != nil {
			return nil, err
		}
		return nil, s.SetBackupSucceeded(inst, w, ct, lp, name, c.SetBackupSucceeded.Succeeded)
	case *v1.SessionRequest_BackupComplete:
		return asyncResult(s.BackupComplete())
	case *v1.SessionRequest_AbortBackup:
		return nil, s.AbortBackup(ctx)
	case *v1.SessionRequest_SaveAsXml:
		x, err := s.SaveAsXML()
		return &v1.SessionResponse{Result: &v1.SessionResponse_Xml{Xml: &v1.Xml{Xml: x}}}, err
	case *v1.SessionRequest_GetWriterComponents:
		x, err := s.GetWriterComponents()
		return &v1.SessionResponse{Result: &v1.SessionResponse_Xml{Xml: &v1.Xml{Xml: x}}}, err
	case *v1.SessionRequest_Query:
		q := c.Query
		id, err := wire.ParseGUID(q.QueriedObjectId)
		if err != nil {
			return nil, err
		}
		objs, code, err := s.Query(id, vss.ObjectType(q.QueriedObjectType), vss.ObjectType(q.ReturnedObjectType))
		if err != nil {
			return nil, err
		}
		l := &v1.ObjectList{}
		for _, o := range objs {
			if o.Snapshot != nil {
				l.Objects = append(l.Objects, &v1.ObjectProp{Object: &v1.ObjectProp_Snapshot{Snapshot: SnapshotProp(*o.Snapshot)}})
			} else {
				l.Objects = append(l.Objects, &v1.ObjectProp{Object: &v1.ObjectProp_Provider{Provider: providerProp(*o.Provider)}})
			}
		}
		// S_FALSE when nothing matched (D20), with the empty list.
		return &v1.SessionResponse{Status: &v1.Status{Hresult: uint32(code)}, Result: &v1.SessionResponse_Objects{Objects: l}}, nil
	case *v1.SessionRequest_GetSnapshotProperties:
		id, err := wire.ParseGUID(c.GetSnapshotProperties.SnapshotId)
		if err != nil {
			return nil, err
		}
		sn, err := s.GetSnapshotProperties(id)
		if err != nil {
			return nil, err
		}
		return &v1.SessionResponse{Result: &v1.SessionResponse_Snapshot{Snapshot: SnapshotProp(sn)}}, nil
	case *v1.SessionRequest_DeleteSnapshots:
		d := c.DeleteSnapshots
		id, err := wire.ParseGUID(d.SourceObjectId)
		if err != nil {
			return nil, err
		}
		del := s.DeleteSnapshots
		if d.RefuseInUse {
			del = s.DeleteSnapshotsIfUnused
		}
		n, failed, err := del(ctx, id, vss.ObjectType(d.SourceObjectType), d.ForceDelete)
		resp := &v1.SessionResponse{Result: &v1.SessionResponse_Deleted{Deleted: &v1.DeleteResult{Deleted: int32(n), NonDeletedSnapshotId: guidOrEmpty(failed)}}}
		return resp, err
	case *v1.SessionRequest_IsVolumeSupported:
		prov, err := wire.ParseGUID(c.IsVolumeSupported.ProviderId)
		if err != nil {
			return nil, err
		}
		ok, err := s.IsVolumeSupported(ctx, prov, c.IsVolumeSupported.Volume)
		return &v1.SessionResponse{Result: &v1.SessionResponse_Supported{Supported: &v1.Bool{Value: ok}}}, err
	case *v1.SessionRequest_ExposeSnapshot:
		e := c.ExposeSnapshot
		id, err := wire.ParseGUID(e.SnapshotId)
		if err != nil {
			return nil, err
		}
		name, err := s.ExposeSnapshot(ctx, id, e.PathFromRoot, vss.Attributes(e.Attributes), e.Expose)
		return &v1.SessionResponse{Result: &v1.SessionResponse_Exposed{Exposed: &v1.ExposeResult{ExposedName: name}}}, err
	case *v1.SessionRequest_UnexposeSnapshot:
		id, err := wire.ParseGUID(c.UnexposeSnapshot.SnapshotId)
		if err != nil {
			return nil, err
		}
		return nil, s.UnexposeSnapshot(ctx, id)
	case *v1.SessionRequest_RevertToSnapshot:
		id, err := wire.ParseGUID(c.RevertToSnapshot.SnapshotId)
		if err != nil {
			return nil, err
		}
		return nil, s.RevertToSnapshot(ctx, id, c.RevertToSnapshot.ForceDismount)
	case *v1.SessionRequest_QueryRevertStatus:
		return asyncResult(s.QueryRevertStatus(c.QueryRevertStatus.Volume))
	case *v1.SessionRequest_QueryStatus:
		a, err := s.Async(c.QueryStatus.AsyncId)
		if err != nil {
			return nil, err
		}
		st, msg := a.Status()
		return &v1.SessionResponse{Result: &v1.SessionResponse_AsyncStatus{AsyncStatus: &v1.AsyncStatus{Hresult: uint32(st), Message: msg}}}, nil
	case *v1.SessionRequest_Cancel:
		a, err := s.Async(c.Cancel.AsyncId)
		if err != nil {
			return nil, err
		}
		st, msg := a.Cancel(ctx)
		return &v1.SessionResponse{Result: &v1.SessionResponse_AsyncStatus{AsyncStatus: &v1.AsyncStatus{Hresult: uint32(st), Message: msg}}}, nil
	case *v1.SessionRequest_GetSessionId:
		return &v1.SessionResponse{Result: &v1.SessionResponse_SessionId{SessionId: &v1.SessionId{Id: s.ID().String()}}}, nil
	}
	return restoreCall(s, req)
}

// restoreCall runs the restore-only calls (vss-reference §2.3, D21).
func restoreCall(s *coordinator.Session, req *v1.SessionRequest) (*v1.SessionResponse, error) {
	// Every restore call but three names a component first.
	var ref *v1.ComponentRef
	switch c := req.Call.(type) {
	case *v1.SessionRequest_SetRestoreState:
		return nil, s.SetRestoreState(vss.RestoreType(c.SetRestoreState.RestoreType))
	case *v1.SessionRequest_PreRestore:
		return asyncResult(s.PreRestore())
	case *v1.SessionRequest_PostRestore:
		return asyncResult(s.PostRestore())
	case *v1.SessionRequest_SetSelectedForRestore:
		ref = c.SetSelectedForRestore.Component
	case *v1.SessionRequest_AddRestoreSubcomponent:
		ref = c.AddRestoreSubcomponent.Component
	case *v1.SessionRequest_SetRestoreOptions:
		ref = c.SetRestoreOptions.Component
	case *v1.SessionRequest_SetAdditionalRestores:
		ref = c.SetAdditionalRestores.Component
	case *v1.SessionRequest_AddNewTarget:
		ref = c.AddNewTarget.Component
	case *v1.SessionRequest_SetAuthoritativeRestore:
		ref = c.SetAuthoritativeRestore.Component
	case *v1.SessionRequest_SetRollForward:
		ref = c.SetRollForward.Component
	case *v1.SessionRequest_SetRestoreName:
		ref = c.SetRestoreName.Component
	case *v1.SessionRequest_SetFileRestoreStatus:
		ref = c.SetFileRestoreStatus.Component
	case *v1.SessionRequest_AddAlternativeLocationMapping:
		ref = c.AddAlternativeLocationMapping.Component
	case *v1.SessionRequest_SetRangesFilePath:
		ref = c.SetRangesFilePath.Component
	default:
		return nil, vsserr.New(vsserr.InvalidArg, "unknown or empty call")
	}
	w, ct, lp, name, err := compRef(ref)
	if err != nil {
		return nil, err
	}
	switch c := req.Call.(type) {
	case *v1.SessionRequest_SetSelectedForRestore:
		inst, err := wire.ParseGUID(c.SetSelectedForRestore.InstanceId)
		if err != nil {
			return nil, err
		}
		return nil, s.SetSelectedForRestore(inst, w, ct, lp, name, c.SetSelectedForRestore.Selected)
	case *v1.SessionRequest_AddRestoreSubcomponent:
		a := c.AddRestoreSubcomponent
		return nil, s.AddRestoreSubcomponent(w, ct, lp, name, a.SubLogicalPath, a.SubName, a.Repair)
	case *v1.SessionRequest_SetRestoreOptions:
		return nil, s.SetRestoreOptions(w, ct, lp, name, c.SetRestoreOptions.Options)
	case *v1.SessionRequest_SetAdditionalRestores:
		return nil, s.SetAdditionalRestores(w, ct, lp, name, c.SetAdditionalRestores.AdditionalRestores)
	case *v1.SessionRequest_AddNewTarget:
		a := c.AddNewTarget
		return nil, s.AddNewTarget(w, ct, lp, name, a.Path, a.Filespec, a.Recursive, a.AlternatePath)
	case *v1.SessionRequest_SetAuthoritativeRestore:
		return nil, s.SetAuthoritativeRestore(w, ct, lp, name, c.SetAuthoritativeRestore.Authoritative)
	case *v1.SessionRequest_SetRollForward:
		a := c.SetRollForward
		return nil, s.SetRollForward(w, ct, lp, name, vss.RollForwardType(a.RollForwardType), a.RollForwardPoint)
	case *v1.SessionRequest_SetRestoreName:
		return nil, s.SetRestoreName(w, ct, lp, name, c.SetRestoreName.RestoreName)
	case *v1.SessionRequest_SetFileRestoreStatus:
		return nil, s.SetFileRestoreStatus(w, ct, lp, name, vss.FileRestoreStatus(c.SetFileRestoreStatus.Status))
	case *v1.SessionRequest_AddAlternativeLocationMapping:
		a := c.AddAlternativeLocationMapping
		return nil, s.AddAlternativeLocationMapping(w, ct, lp, name, a.Path, a.Filespec, a.Recursive, a.Destination)
	case *v1.SessionRequest_SetRangesFilePath:
		a := c.SetRangesFilePath
		return nil, s.SetRangesFilePath(w, ct, lp, name, int(a.PartialFileIndex), a.RangesFile)
	}
	return nil, vsserr.New(vsserr.InvalidArg, "unknown or empty call")
}

// SnapshotProp converts a snapshot to the wire.
func SnapshotProp(sn coordinator.Snapshot) *v1.SnapshotProp {
	return &v1.SnapshotProp{SnapshotId: sn.ID.String(), SnapshotSetId: sn.SetID.String(), SnapshotsCount: int32(sn.SnapshotsCount),
		DevicePath: sn.DevicePath, OriginalVolume: sn.OriginalVolume, OriginatingMachine: sn.OriginatingMachine,
		ServiceMachine: sn.ServiceMachine, ExposedName: sn.ExposedName, ExposedPath: sn.ExposedPath,
		ProviderId: sn.ProviderID.String(), Attributes: uint32(sn.Attributes), CreatedUnixNano: sn.Created.UnixNano(),
		Status: int32(vss.SnapshotCreated), ProviderName: sn.ProviderName, Context: int32(sn.Context), AutoRelease: sn.AutoRelease,
		Consistency: string(sn.Consistency), ConsistencyReason: sn.ConsistencyReason, SessionId: sn.SessionID.String()}
}
