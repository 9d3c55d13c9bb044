package client

import (
	"context"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
)

// The restore calls of IVssBackupComponents (vss-reference §2.2, §2.3,
// D21), in a session started with InitializeForRestore. A component is
// named by its writer class, type, logical path and name, as in the
// backup; lvssd finds it among the backed-up writer instances and has a
// running writer of the same class and instance name restore it.
//
// The order: InitializeForRestore, (SetBackupState), GatherWriterMetadata,
// GetWriterComponents, then the selection and settings below, PreRestore,
// the copy with SetFileRestoreStatus (and AddAlternativeLocationMapping,
// SetRangesFilePath), PostRestore, GatherWriterStatus. A call out of that
// place is VSS_E_BAD_STATE.

// SetRestoreState records the VSS_RESTORE_TYPE (UNDEFINED is read as
// BY_COPY).
func (bc *BackupComponents) SetRestoreState(ctx context.Context, rt vss.RestoreType) error {
	_, err := bc.do(ctx, "SetRestoreState", &v1.SessionRequest{Call: &v1.SessionRequest_SetRestoreState{
		SetRestoreState: &v1.SetRestoreState{RestoreType: int32(rt)}}})
	return err
}

// SetSelectedForRestore selects a component explicitly included in the
// backup for restore (or deselects it). VSS_E_OBJECT_NOT_FOUND when the
// backup lacks it or its writer is not running now.
func (bc *BackupComponents) SetSelectedForRestore(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, selected bool) error {
	return bc.SetSelectedForRestoreEx(ctx, writerID, ct, logicalPath, name, selected, uuid.Nil)
}

// SetSelectedForRestoreEx is SetSelectedForRestore naming the writer
// instance: the backed-up instance the component belongs to (when the
// backup holds several of the class), or a running instance to restore it
// with, which is a move when its instance name differs and needs the
// writer's VSS_BS_WRITER_SUPPORTS_RESTORE_WITH_MOVE.
func (bc *BackupComponents) SetSelectedForRestoreEx(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, selected bool, instanceID uuid.UUID) error {
	_, err := bc.do(ctx, "SetSelectedForRestore", &v1.SessionRequest{Call: &v1.SessionRequest_SetSelectedForRestore{
		SetSelectedForRestore: &v1.SetSelectedForRestore{Component: ref(writerID, ct, logicalPath, name), Selected: selected,
			InstanceId: wire.GUID(instanceID)}}})
	return err
}

// AddRestoreSubcomponent restores a member of the component's set that the
// writer declares selectable for restore.
func (bc *BackupComponents) AddRestoreSubcomponent(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, subLogicalPath, subName string, repair bool) error {
	_, err := bc.do(ctx, "AddRestoreSubcomponent", &v1.SessionRequest{Call: &v1.SessionRequest_AddRestoreSubcomponent{
		AddRestoreSubcomponent: &v1.AddRestoreSubcomponent{Component: ref(writerID, ct, logicalPath, name),
			SubLogicalPath: subLogicalPath, SubName: subName, Repair: repair}}})
	return err
}

// SetRestoreOptions gives the writer a private option string.
func (bc *BackupComponents) SetRestoreOptions(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, options string) error {
	_, err := bc.do(ctx, "SetRestoreOptions", &v1.SessionRequest{Call: &v1.SessionRequest_SetRestoreOptions{
		SetRestoreOptions: &v1.SetRestoreOptions{Component: ref(writerID, ct, logicalPath, name), Options: options}}})
	return err
}

// SetAdditionalRestores says more restores of the component follow
// (incremental, differential, log): the writer must not recover yet.
func (bc *BackupComponents) SetAdditionalRestores(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, additional bool) error {
	_, err := bc.do(ctx, "SetAdditionalRestores", &v1.SessionRequest{Call: &v1.SessionRequest_SetAdditionalRestores{
		SetAdditionalRestores: &v1.SetAdditionalRestores{Component: ref(writerID, ct, logicalPath, name), AdditionalRestores: additional}}})
	return err
}

// AddNewTarget restores a file set of the component (exactly as the writer
// declares it) to alternatePath.
func (bc *BackupComponents) AddNewTarget(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, path, filespec string, recursive bool, alternatePath string) error {
	_, err := bc.do(ctx, "AddNewTarget", &v1.SessionRequest{Call: &v1.SessionRequest_AddNewTarget{
		AddNewTarget: &v1.AddNewTarget{Component: ref(writerID, ct, logicalPath, name), Path: path, Filespec: filespec,
			Recursive: recursive, AlternatePath: alternatePath}}})
	return err
}

// SetAuthoritativeRestore marks the restore authoritative.
func (bc *BackupComponents) SetAuthoritativeRestore(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, authoritative bool) error {
	_, err := bc.do(ctx, "SetAuthoritativeRestore", &v1.SessionRequest{Call: &v1.SessionRequest_SetAuthoritativeRestore{
		SetAuthoritativeRestore: &v1.SetAuthoritativeRestore{Component: ref(writerID, ct, logicalPath, name), Authoritative: authoritative}}})
	return err
}

// SetRollForward says how far the writer rolls forward: VSS_RF_NONE,
// VSS_RF_ALL, or VSS_RF_PARTIAL up to point.
func (bc *BackupComponents) SetRollForward(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, rf vss.RollForwardType, point string) error {
	_, err := bc.do(ctx, "SetRollForward", &v1.SessionRequest{Call: &v1.SessionRequest_SetRollForward{
		SetRollForward: &v1.SetRollForward{Component: ref(writerID, ct, logicalPath, name), RollForwardType: int32(rf), RollForwardPoint: point}}})
	return err
}

// SetRestoreName restores the component under a new name.
func (bc *BackupComponents) SetRestoreName(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, restoreName string) error {
	_, err := bc.do(ctx, "SetRestoreName", &v1.SessionRequest{Call: &v1.SessionRequest_SetRestoreName{
		SetRestoreName: &v1.SetRestoreName{Component: ref(writerID, ct, logicalPath, name), RestoreName: restoreName}}})
	return err
}

// PreRestore sends PreRestore to the writers restoring selected components.
// A writer's failure does not fail it: check GatherWriterStatus.
func (bc *BackupComponents) PreRestore(ctx context.Context) (*Async, error) {
	return bc.startAsync(ctx, "PreRestore", &v1.SessionRequest{Call: &v1.SessionRequest_PreRestore{PreRestore: &v1.PreRestore{}}})
}

// SetFileRestoreStatus records how the copy of the component's files went.
func (bc *BackupComponents) SetFileRestoreStatus(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, status vss.FileRestoreStatus) error {
	_, err := bc.do(ctx, "SetFileRestoreStatus", &v1.SessionRequest{Call: &v1.SessionRequest_SetFileRestoreStatus{
		SetFileRestoreStatus: &v1.SetFileRestoreStatus{Component: ref(writerID, ct, logicalPath, name), Status: int32(status)}}})
	return err
}

// AddAlternativeLocationMapping tells the writer that the file set's files
// went to destination.
func (bc *BackupComponents) AddAlternativeLocationMapping(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, path, filespec string, recursive bool, destination string) error {
	_, err := bc.do(ctx, "AddAlternativeLocationMapping", &v1.SessionRequest{Call: &v1.SessionRequest_AddAlternativeLocationMapping{
		AddAlternativeLocationMapping: &v1.AddAlternativeLocationMapping{Component: ref(writerID, ct, logicalPath, name), Path: path,
			Filespec: filespec, Recursive: recursive, Destination: destination}}})
	return err
}

// SetRangesFilePath says where the ranges file of partial file i went.
func (bc *BackupComponents) SetRangesFilePath(ctx context.Context, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, i int, rangesFile string) error {
	_, err := bc.do(ctx, "SetRangesFilePath", &v1.SessionRequest{Call: &v1.SessionRequest_SetRangesFilePath{
		SetRangesFilePath: &v1.SetRangesFilePath{Component: ref(writerID, ct, logicalPath, name), PartialFileIndex: uint32(i), RangesFile: rangesFile}}})
	return err
}

// PostRestore sends PostRestore to the writers that took part (vss-reference
// §3.2's rules); keep the session until it has finished.
func (bc *BackupComponents) PostRestore(ctx context.Context) (*Async, error) {
	return bc.startAsync(ctx, "PostRestore", &v1.SessionRequest{Call: &v1.SessionRequest_PostRestore{PostRestore: &v1.PostRestore{}}})
}
