package client

import (
	"context"
	"errors"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// BackupComponents is one requester session: IVssBackupComponents. Its
// methods have the spec's names and order rules (vss-reference §2.4, D2); the
// daemon enforces the order and answers VSS_E_BAD_STATE for a call out of
// place.
//
// Every method takes ctx first. A context that ends makes the method return
// (with an error wrapping the context's cause) but cannot take back a call
// already sent: the daemon still executes it. The session itself is not
// tied to the context given to NewBackupComponents; it lasts until Release,
// until the Conn is closed, or until the process exits, and in every case
// the daemon releases it (D11).
//
// Methods may be called from several goroutines. The daemon executes calls
// in the order it receives them, except Wait, QueryStatus and Cancel, which
// it answers while an operation runs.
type BackupComponents struct {
	s     *session
	track tracker
}

// NewBackupComponents is CreateVssBackupComponents: it opens one session.
// ctx bounds only the opening.
func (c *Conn) NewBackupComponents(ctx context.Context) (*BackupComponents, error) {
	// The stream must outlive ctx (see BackupComponents), but keep its
	// values (trace metadata and the like).
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	type result struct {
		st  v1.Requester_SessionClient
		err error
	}
	ch := make(chan result, 1)
	go func() {
		st, err := c.req.Session(sctx)
		ch <- result{st, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			cancel()
			return nil, wire.FromGRPC(r.err)
		}
		return &BackupComponents{s: newSession(r.st, cancel)}, nil
	case <-ctx.Done():
		cancel()
		return nil, ctxErr(ctx, "CreateVssBackupComponents")
	}
}

// do makes one call and turns a failed HRESULT in its answer into an error.
// The response is returned even then, for the rare result that comes with a
// failure.
func (bc *BackupComponents) do(ctx context.Context, method string, req *v1.SessionRequest) (*v1.SessionResponse, error) {
	resp, err := bc.s.call(ctx, method, req)
	if err != nil {
		return nil, err
	}
	return resp, wire.ErrorOf(resp.GetStatus())
}

// noResult is the error for an answer that lacks the result its method
// promises: a daemon bug, reported rather than dereferenced.
func noResult(method string) error {
	return vsserr.New(vsserr.Unexpected, "%s: lvssd answered without a result", method)
}

func ref(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string) *v1.ComponentRef {
	return &v1.ComponentRef{WriterId: wire.GUID(writerID), ComponentType: int32(ct), LogicalPath: logicalPath, Name: name}
}

// InitializeForBackup starts a backup session with an empty Backup
// Components Document (bcdXML "") or one saved earlier.
func (bc *BackupComponents) InitializeForBackup(ctx context.Context, bcdXML string) error {
	_, err := bc.do(ctx, "InitializeForBackup", &v1.SessionRequest{Call: &v1.SessionRequest_InitializeForBackup{
		InitializeForBackup: &v1.InitializeForBackup{BcdXml: bcdXML}}})
	return err
}

// InitializeForRestore starts a restore session from the document saved
// with the backup.
func (bc *BackupComponents) InitializeForRestore(ctx context.Context, bcdXML string) error {
	_, err := bc.do(ctx, "InitializeForRestore", &v1.SessionRequest{Call: &v1.SessionRequest_InitializeForRestore{
		InitializeForRestore: &v1.InitializeForRestore{BcdXml: bcdXML}}})
	return err
}

// SetContext chooses the snapshot context (vss-reference §1.4), optionally OR'ed
// with requester-settable attribute bits. Once per session.
func (bc *BackupComponents) SetContext(ctx context.Context, c vss.Context) error {
	_, err := bc.do(ctx, "SetContext", &v1.SessionRequest{Call: &v1.SessionRequest_SetContext{
		SetContext: &v1.SetContext{Context: int32(c)}}})
	if err == nil {
		bc.track.setContext(c)
	}
	return err
}

// SetBackupState records component mode, bootable system state, the backup
// type and partial-file support in the document.
func (bc *BackupComponents) SetBackupState(ctx context.Context, selectComponents, bootableSystemState bool, bt vss.BackupType, partialFileSupport bool) error {
	_, err := bc.do(ctx, "SetBackupState", &v1.SessionRequest{Call: &v1.SessionRequest_SetBackupState{
		SetBackupState: &v1.SetBackupState{
			SelectComponents:    selectComponents,
			BootableSystemState: bootableSystemState,
			BackupType:          int32(bt),
			PartialFileSupport:  partialFileSupport,
		}}})
	return err
}

// GatherWriterMetadata asks every writer for its Writer Metadata Document
// (the Identify event).
func (bc *BackupComponents) GatherWriterMetadata(ctx context.Context) (*Async, error) {
	return bc.startAsync(ctx, "GatherWriterMetadata", &v1.SessionRequest{Call: &v1.SessionRequest_GatherWriterMetadata{
		GatherWriterMetadata: &v1.GatherWriterMetadata{}}})
}

// writerMetadata fetches the whole list. The wire returns every entry at
// once; the Count and index methods fetch it each time instead of caching it
// so that the daemon's state rules (and FreeWriterMetadata) apply to every
// call exactly as they would on Windows.
func (bc *BackupComponents) writerMetadata(ctx context.Context, method string) ([]*v1.WriterMetadataEntry, error) {
	resp, err := bc.do(ctx, method, &v1.SessionRequest{Call: &v1.SessionRequest_GetWriterMetadata{
		GetWriterMetadata: &v1.GetWriterMetadata{}}})
	if err != nil {
		return nil, err
	}
	l := resp.GetWriterMetadata()
	if l == nil {
		return nil, noResult(method)
	}
	return l.GetWriters(), nil
}

// GetWriterMetadataCount is the number of writers that answered Identify.
func (bc *BackupComponents) GetWriterMetadataCount(ctx context.Context) (int, error) {
	l, err := bc.writerMetadata(ctx, "GetWriterMetadataCount")
	return len(l), err
}

// GetWriterMetadataXML returns the i-th writer's instance ID and its Writer
// Metadata Document as the writer sent it.
func (bc *BackupComponents) GetWriterMetadataXML(ctx context.Context, i int) (uuid.UUID, string, error) {
	l, err := bc.writerMetadata(ctx, "GetWriterMetadata")
	if err != nil {
		return uuid.Nil, "", err
	}
	if i < 0 || i >= len(l) {
		return uuid.Nil, "", vsserr.New(vsserr.ObjectNotFound, "index %d out of range (%d writers)", i, len(l))
	}
	var d decoder
	id := d.guid(l[i].GetInstanceId())
	return id, l[i].GetWmdXml(), d.err
}

// GetWriterMetadata returns the i-th writer's instance ID and its parsed
// Writer Metadata Document (IVssExamineWriterMetadata).
func (bc *BackupComponents) GetWriterMetadata(ctx context.Context, i int) (uuid.UUID, *document.WriterMetadata, error) {
	id, xml, err := bc.GetWriterMetadataXML(ctx, i)
	if err != nil {
		return uuid.Nil, nil, err
	}
	wmd, err := document.ParseWriterMetadata([]byte(xml))
	if err != nil {
		return id, nil, xmlErr(err, "writer metadata %d", i)
	}
	return id, wmd, nil
}

// xmlErr keeps the document package's XML code (D8) and classifies
// anything uncoded as an invalid document rather than an internal error.
func xmlErr(err error, format string, args ...any) error {
	var ve *vsserr.Error
	if errors.As(err, &ve) {
		return err
	}
	return vsserr.Wrap(vsserr.InvalidXMLDocument, err, format, args...)
}

// FreeWriterMetadata drops the gathered documents; irreversible for the
// session.
func (bc *BackupComponents) FreeWriterMetadata(ctx context.Context) error {
	_, err := bc.do(ctx, "FreeWriterMetadata", &v1.SessionRequest{Call: &v1.SessionRequest_FreeWriterMetadata{
		FreeWriterMetadata: &v1.FreeWriterMetadata{}}})
	return err
}

// EnableWriterClasses switches to allow-list mode and adds the classes to it.
func (bc *BackupComponents) EnableWriterClasses(ctx context.Context, writerIDs ...uuid.UUID) error {
	_, err := bc.do(ctx, "EnableWriterClasses", &v1.SessionRequest{Call: &v1.SessionRequest_EnableWriterClasses{
		EnableWriterClasses: &v1.WriterClasses{WriterIds: wire.GUIDs(writerIDs)}}})
	return err
}

// DisableWriterClasses keeps the classes out of the session.
func (bc *BackupComponents) DisableWriterClasses(ctx context.Context, writerIDs ...uuid.UUID) error {
	_, err := bc.do(ctx, "DisableWriterClasses", &v1.SessionRequest{Call: &v1.SessionRequest_DisableWriterClasses{
		DisableWriterClasses: &v1.WriterClasses{WriterIds: wire.GUIDs(writerIDs)}}})
	return err
}

// DisableWriterInstances keeps single writer instances out of the session.
func (bc *BackupComponents) DisableWriterInstances(ctx context.Context, instanceIDs ...uuid.UUID) error {
	_, err := bc.do(ctx, "DisableWriterInstances", &v1.SessionRequest{Call: &v1.SessionRequest_DisableWriterInstances{
		DisableWriterInstances: &v1.WriterInstances{InstanceIds: wire.GUIDs(instanceIDs)}}})
	return err
}

// AddComponent includes a component explicitly (component mode).
func (bc *BackupComponents) AddComponent(ctx context.Context, instanceID, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string) error {
	_, err := bc.do(ctx, "AddComponent", &v1.SessionRequest{Call: &v1.SessionRequest_AddComponent{
		AddComponent: &v1.AddComponent{InstanceId: wire.GUID(instanceID), Component: ref(writerID, ct, logicalPath, name)}}})
	return err
}

// SetBackupOptions passes a writer-private option string for a component.
func (bc *BackupComponents) SetBackupOptions(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, options string) error {
	_, err := bc.do(ctx, "SetBackupOptions", &v1.SessionRequest{Call: &v1.SessionRequest_SetBackupOptions{
		SetBackupOptions: &v1.SetBackupOptions{Component: ref(writerID, ct, logicalPath, name), Options: options}}})
	return err
}

// SetPreviousBackupStamp hands a component the stamp of the backup an
// incremental or differential one builds on.
func (bc *BackupComponents) SetPreviousBackupStamp(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, stamp string) error {
	_, err := bc.do(ctx, "SetPreviousBackupStamp", &v1.SessionRequest{Call: &v1.SessionRequest_SetPreviousBackupStamp{
		SetPreviousBackupStamp: &v1.SetPreviousBackupStamp{Component: ref(writerID, ct, logicalPath, name), Stamp: stamp}}})
	return err
}

// StartSnapshotSet creates the session's snapshot set and takes the
// system-wide creation lock.
func (bc *BackupComponents) StartSnapshotSet(ctx context.Context) (uuid.UUID, error) {
	resp, err := bc.do(ctx, "StartSnapshotSet", &v1.SessionRequest{Call: &v1.SessionRequest_StartSnapshotSet{
		StartSnapshotSet: &v1.StartSnapshotSet{}}})
	if err != nil {
		return uuid.Nil, err
	}
	// From here on the daemon holds a creation for this session, whatever
	// the answer's shape: Run must abort it if the backup fails.
	bc.track.markStarted()
	r := resp.GetSnapshotSetId()
	if r == nil {
		return uuid.Nil, noResult("StartSnapshotSet")
	}
	var d decoder
	id := d.guid(r.GetId())
	return id, d.err
}

// AddToSnapshotSet adds a volume (a mount point or any path on it) to the
// set; providerID uuid.Nil lets the daemon choose the provider.
func (bc *BackupComponents) AddToSnapshotSet(ctx context.Context, volume string, providerID uuid.UUID) (uuid.UUID, error) {
	resp, err := bc.do(ctx, "AddToSnapshotSet", &v1.SessionRequest{Call: &v1.SessionRequest_AddToSnapshotSet{
		AddToSnapshotSet: &v1.AddToSnapshotSet{Volume: volume, ProviderId: wire.GUID(providerID)}}})
	if err != nil {
		return uuid.Nil, err
	}
	r := resp.GetSnapshotId()
	if r == nil {
		return uuid.Nil, noResult("AddToSnapshotSet")
	}
	var d decoder
	id := d.guid(r.GetId())
	return id, d.err
}

// PrepareForBackup sends writers PrepareForBackup with the document.
func (bc *BackupComponents) PrepareForBackup(ctx context.Context) (*Async, error) {
	return bc.startAsync(ctx, "PrepareForBackup", &v1.SessionRequest{Call: &v1.SessionRequest_PrepareForBackup{
		PrepareForBackup: &v1.PrepareForBackup{}}})
}

// DoSnapshotSet creates the snapshots of the set (PrepareForSnapshot,
// Freeze, commit, Thaw, PostSnapshot). A writer's veto does not fail it
// (D9): check GatherWriterStatus afterwards.
func (bc *BackupComponents) DoSnapshotSet(ctx context.Context) (*Async, error) {
	return bc.startAsync(ctx, "DoSnapshotSet", &v1.SessionRequest{Call: &v1.SessionRequest_DoSnapshotSet{
		DoSnapshotSet: &v1.DoSnapshotSet{}}})
}

// GatherWriterStatus asks every writer for its state.
func (bc *BackupComponents) GatherWriterStatus(ctx context.Context) (*Async, error) {
	return bc.startAsync(ctx, "GatherWriterStatus", &v1.SessionRequest{Call: &v1.SessionRequest_GatherWriterStatus{
		GatherWriterStatus: &v1.GatherWriterStatus{}}})
}

func (bc *BackupComponents) writerStatus(ctx context.Context, method string) ([]*v1.WriterStatus, error) {
	resp, err := bc.do(ctx, method, &v1.SessionRequest{Call: &v1.SessionRequest_GetWriterStatus{
		GetWriterStatus: &v1.GetWriterStatus{}}})
	if err != nil {
		return nil, err
	}
	l := resp.GetWriterStatus()
	if l == nil {
		return nil, noResult(method)
	}
	return l.GetWriters(), nil
}

// GetWriterStatusCount is the number of writers in the gathered status.
func (bc *BackupComponents) GetWriterStatusCount(ctx context.Context) (int, error) {
	l, err := bc.writerStatus(ctx, "GetWriterStatusCount")
	return len(l), err
}

// GetWriterStatus returns the i-th writer's status, with the application's
// code and message (GetWriterStatusEx).
func (bc *BackupComponents) GetWriterStatus(ctx context.Context, i int) (WriterStatus, error) {
	l, err := bc.writerStatus(ctx, "GetWriterStatus")
	if err != nil {
		return WriterStatus{}, err
	}
	if i < 0 || i >= len(l) {
		return WriterStatus{}, vsserr.New(vsserr.ObjectNotFound, "index %d out of range (%d writers)", i, len(l))
	}
	var d decoder
	ws := d.writerStatus(l[i])
	return ws, d.err
}

// FreeWriterStatus drops the gathered status.
func (bc *BackupComponents) FreeWriterStatus(ctx context.Context) error {
	_, err := bc.do(ctx, "FreeWriterStatus", &v1.SessionRequest{Call: &v1.SessionRequest_FreeWriterStatus{
		FreeWriterStatus: &v1.FreeWriterStatus{}}})
	return err
}

// SetBackupSucceeded records whether a component was backed up.
func (bc *BackupComponents) SetBackupSucceeded(ctx context.Context, instanceID, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, succeeded bool) error {
	_, err := bc.do(ctx, "SetBackupSucceeded", &v1.SessionRequest{Call: &v1.SessionRequest_SetBackupSucceeded{
		SetBackupSucceeded: &v1.SetBackupSucceeded{InstanceId: wire.GUID(instanceID),
			Component: ref(writerID, ct, logicalPath, name), Succeeded: succeeded}}})
	return err
}

// BackupComplete tells writers the backup is over (they may truncate logs).
func (bc *BackupComponents) BackupComplete(ctx context.Context) (*Async, error) {
	bc.track.markComplete()
	return bc.startAsync(ctx, "BackupComplete", &v1.SessionRequest{Call: &v1.SessionRequest_BackupComplete{
		BackupComplete: &v1.BackupComplete{}}})
}

// AbortBackup abandons the backup; writers taking part get Abort if creation
// was in progress (D4, D14). Idempotent.
func (bc *BackupComponents) AbortBackup(ctx context.Context) error {
	_, err := bc.do(ctx, "AbortBackup", &v1.SessionRequest{Call: &v1.SessionRequest_AbortBackup{
		AbortBackup: &v1.AbortBackup{}}})
	if err == nil {
		bc.track.markAborted()
	}
	return err
}

// SaveAsXML returns the Backup Components Document, final after
// DoSnapshotSet. Store it with the backup: restore needs it.
func (bc *BackupComponents) SaveAsXML(ctx context.Context) (string, error) {
	return bc.bcdXML(ctx, "SaveAsXML", &v1.SessionRequest{Call: &v1.SessionRequest_SaveAsXml{SaveAsXml: &v1.SaveAsXML{}}})
}

func (bc *BackupComponents) bcdXML(ctx context.Context, method string, req *v1.SessionRequest) (string, error) {
	resp, err := bc.do(ctx, method, req)
	if err != nil {
		return "", err
	}
	x := resp.GetXml()
	if x == nil {
		return "", noResult(method)
	}
	return x.GetXml(), nil
}

func (bc *BackupComponents) writerComponents(ctx context.Context, method string) (*document.BackupComponents, error) {
	x, err := bc.bcdXML(ctx, method, &v1.SessionRequest{Call: &v1.SessionRequest_GetWriterComponents{
		GetWriterComponents: &v1.GetWriterComponents{}}})
	if err != nil {
		return nil, err
	}
	bcd, err := document.ParseBackupComponents([]byte(x))
	if err != nil {
		return nil, xmlErr(err, "%s: backup components document", method)
	}
	return bcd, nil
}

// GetWriterComponentsCount is the number of writers with components in the
// Backup Components Document.
func (bc *BackupComponents) GetWriterComponentsCount(ctx context.Context) (int, error) {
	bcd, err := bc.writerComponents(ctx, "GetWriterComponentsCount")
	if err != nil {
		return 0, err
	}
	return len(bcd.Writers), nil
}

// GetWriterComponents returns the i-th writer's components as the document
// holds them now, writers' edits included (D1).
func (bc *BackupComponents) GetWriterComponents(ctx context.Context, i int) (*document.WriterComponents, error) {
	bcd, err := bc.writerComponents(ctx, "GetWriterComponents")
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= len(bcd.Writers) {
		return nil, vsserr.New(vsserr.ObjectNotFound, "index %d out of range (%d writers)", i, len(bcd.Writers))
	}
	return &bcd.Writers[i], nil
}

// Query lists completed snapshots of the session's context (VSS_CTX_ALL for
// all) or the providers: Query(uuid.Nil, vss.ObjectNone, vss.ObjectSnapshot).
// Its code is S_OK, or S_FALSE when nothing matched (D20), as
// IVssBackupComponents::Query's is.
func (bc *BackupComponents) Query(ctx context.Context, queriedID uuid.UUID, queriedType, returnedType vss.ObjectType) ([]Object, vsserr.HRESULT, error) {
	resp, err := bc.do(ctx, "Query", &v1.SessionRequest{Call: &v1.SessionRequest_Query{Query: &v1.Query{
		QueriedObjectId: wire.GUID(queriedID), QueriedObjectType: int32(queriedType), ReturnedObjectType: int32(returnedType)}}})
	if err != nil {
		return nil, 0, err
	}
	l := resp.GetObjects()
	if l == nil {
		return nil, 0, noResult("Query")
	}
	var d decoder
	out := make([]Object, 0, len(l.GetObjects()))
	for _, o := range l.GetObjects() {
		switch {
		case o.GetSnapshot() != nil:
			s := d.snapshot(o.GetSnapshot())
			out = append(out, Object{Type: vss.ObjectSnapshot, Snapshot: &s})
		case o.GetProvider() != nil:
			p := d.provider(o.GetProvider())
			out = append(out, Object{Type: vss.ObjectProvider, Provider: &p})
		}
	}
	return out, wire.Code(resp.GetStatus()), d.err
}

// GetSnapshotProperties describes one snapshot.
func (bc *BackupComponents) GetSnapshotProperties(ctx context.Context, id uuid.UUID) (SnapshotProp, error) {
	resp, err := bc.do(ctx, "GetSnapshotProperties", &v1.SessionRequest{Call: &v1.SessionRequest_GetSnapshotProperties{
		GetSnapshotProperties: &v1.GetSnapshotProperties{SnapshotId: wire.GUID(id)}}})
	if err != nil {
		return SnapshotProp{}, err
	}
	p := resp.GetSnapshot()
	if p == nil {
		return SnapshotProp{}, noResult("GetSnapshotProperties")
	}
	var d decoder
	s := d.snapshot(p)
	return s, d.err
}

// DeleteSnapshots deletes a snapshot or a whole set (t is
// vss.ObjectSnapshot or vss.ObjectSnapshotSet), one by one, stopping at the
// first failure: deleted counts the ones gone and nonDeleted names the one
// that failed. Both are meaningful when err is not nil.
func (bc *BackupComponents) DeleteSnapshots(ctx context.Context, id uuid.UUID, t vss.ObjectType, force bool) (deleted int, nonDeleted uuid.UUID, err error) {
	return bc.deleteSnapshots(ctx, &v1.DeleteSnapshots{SourceObjectId: wire.GUID(id), SourceObjectType: int32(t), ForceDelete: force})
}

// DeleteSnapshotsIfUnused is DeleteSnapshots, except that lvssd refuses
// with VSS_E_VOLUME_IN_USE (and stops there, as at any failure) to delete
// a snapshot that is exposed or that belongs to another session still
// running. lvssd checks under the snapshot's lock, so a snapshot exposed
// after the caller listed it is not deleted (an lvss addition).
func (bc *BackupComponents) DeleteSnapshotsIfUnused(ctx context.Context, id uuid.UUID, t vss.ObjectType, force bool) (deleted int, nonDeleted uuid.UUID, err error) {
	return bc.deleteSnapshots(ctx, &v1.DeleteSnapshots{SourceObjectId: wire.GUID(id), SourceObjectType: int32(t), ForceDelete: force,
		RefuseInUse: true})
}

func (bc *BackupComponents) deleteSnapshots(ctx context.Context, req *v1.DeleteSnapshots) (deleted int, nonDeleted uuid.UUID, err error) {
	resp, err := bc.do(ctx, "DeleteSnapshots", &v1.SessionRequest{Call: &v1.SessionRequest_DeleteSnapshots{DeleteSnapshots: req}})
	if r := resp.GetDeleted(); r != nil {
		var d decoder
		deleted, nonDeleted = int(r.GetDeleted()), d.guid(r.GetNonDeletedSnapshotId())
		if err == nil {
			err = d.err
		}
	} else if err == nil {
		err = noResult("DeleteSnapshots")
	}
	return deleted, nonDeleted, err
}

// IsVolumeSupported reports whether the provider (uuid.Nil: any provider)
// can snapshot the volume: capability, not current capacity.
func (bc *BackupComponents) IsVolumeSupported(ctx context.Context, providerID uuid.UUID, volume string) (bool, error) {
	resp, err := bc.do(ctx, "IsVolumeSupported", &v1.SessionRequest{Call: &v1.SessionRequest_IsVolumeSupported{
		IsVolumeSupported: &v1.IsVolumeSupported{ProviderId: wire.GUID(providerID), Volume: volume}}})
	if err != nil {
		return false, err
	}
	b := resp.GetSupported()
	if b == nil {
		return false, noResult("IsVolumeSupported")
	}
	return b.GetValue(), nil
}

// ExposeSnapshot makes a snapshot visible and returns the name it got.
// With attrs VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, expose is a directory and
// pathFromRoot is "". With VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY, expose is the
// name of a read-only SMB share of lvssd's Samba ("" lets lvssd choose one)
// and pathFromRoot the directory of the snapshot it shows ("" for all of
// it); docs/previous-versions.md.
func (bc *BackupComponents) ExposeSnapshot(ctx context.Context, id uuid.UUID, pathFromRoot string, attrs vss.Attributes, expose string) (string, error) {
	resp, err := bc.do(ctx, "ExposeSnapshot", &v1.SessionRequest{Call: &v1.SessionRequest_ExposeSnapshot{
		ExposeSnapshot: &v1.ExposeSnapshot{SnapshotId: wire.GUID(id), PathFromRoot: pathFromRoot, Attributes: uint32(attrs), Expose: expose}}})
	if err != nil {
		return "", err
	}
	r := resp.GetExposed()
	if r == nil {
		return "", noResult("ExposeSnapshot")
	}
	return r.GetExposedName(), nil
}

// UnexposeSnapshot undoes ExposeSnapshot.
func (bc *BackupComponents) UnexposeSnapshot(ctx context.Context, id uuid.UUID) error {
	_, err := bc.do(ctx, "UnexposeSnapshot", &v1.SessionRequest{Call: &v1.SessionRequest_UnexposeSnapshot{
		UnexposeSnapshot: &v1.UnexposeSnapshot{SnapshotId: wire.GUID(id)}}})
	return err
}

// RevertToSnapshot rolls the snapshot's volume back to it and returns when
// the volume holds the snapshot's content (D10: writers get no event).
// force is bForceDismount: revert even though a running writer has
// components on the volume or processes use it.
func (bc *BackupComponents) RevertToSnapshot(ctx context.Context, id uuid.UUID, force bool) error {
	_, err := bc.do(ctx, "RevertToSnapshot", &v1.SessionRequest{Call: &v1.SessionRequest_RevertToSnapshot{
		RevertToSnapshot: &v1.RevertToSnapshot{SnapshotId: wire.GUID(id), ForceDismount: force}}})
	return err
}

// QueryRevertStatus returns an operation following the volume's latest
// revert: pending while it runs, then finished or its error; it cannot be
// cancelled.
func (bc *BackupComponents) QueryRevertStatus(ctx context.Context, volume string) (*Async, error) {
	return bc.startAsync(ctx, "QueryRevertStatus", &v1.SessionRequest{Call: &v1.SessionRequest_QueryRevertStatus{
		QueryRevertStatus: &v1.QueryRevertStatus{Volume: volume}}})
}

// GetSessionID returns the session's ID, the one the daemon's event log and
// the writers' events carry (GetSessionId).
func (bc *BackupComponents) GetSessionID(ctx context.Context) (uuid.UUID, error) {
	resp, err := bc.do(ctx, "GetSessionId", &v1.SessionRequest{Call: &v1.SessionRequest_GetSessionId{
		GetSessionId: &v1.GetSessionId{}}})
	if err != nil {
		return uuid.Nil, err
	}
	r := resp.GetSessionId()
	if r == nil {
		return uuid.Nil, noResult("GetSessionId")
	}
	var d decoder
	id := d.guid(r.GetId())
	return id, d.err
}

// Release ends the session the way releasing IVssBackupComponents does
// (D11) and reports what that did: whether writers got Abort, which
// writers got BackupShutdown, which auto-release snapshots were deleted.
// Calls made after Release fail with VSS_E_BAD_STATE. Release is
// idempotent: later calls return the same outcome. If ctx ends first, the
// daemon still completes the release; only the report is lost.
func (bc *BackupComponents) Release(ctx context.Context) (Released, error) {
	return bc.s.release(ctx)
}
