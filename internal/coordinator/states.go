package coordinator

// State is a requester session's state (§12 D2; restore states from §2.3).
type State int

// Session states. The backup ones are ordered: "meta and every later state"
// in the D2 table means meta..complete.
const (
	StNew State = iota
	StInit
	StMeta
	StSet
	StPrepared
	StSnapped
	StFailed  // DoSnapshotSet failed or was cancelled (§12 D3)
	StAborted // AbortBackup or the creation lease ended creation
	StComplete
	StRestoreInit
	StRestoreMeta
	StRestorePre
	StRestorePost
	StReleased
)

var stateNames = [...]string{"new", "init", "meta", "set", "prepared", "snapped", "failed", "aborted",
	"complete", "restore-init", "restore-meta", "restore-pre", "restore-post", "released"}

func (s State) String() string { return stateNames[s] }

// Method names an IVssBackupComponents call, spelled as the spec does.
type Method string

// The backup methods of the D2 table.
const (
	MInitializeForBackup    Method = "InitializeForBackup"
	MInitializeForRestore   Method = "InitializeForRestore"
	MSetContext             Method = "SetContext"
	MEnableWriterClasses    Method = "EnableWriterClasses"
	MDisableWriterClasses   Method = "DisableWriterClasses"
	MDisableWriterInstances Method = "DisableWriterInstances"
	MSetBackupState         Method = "SetBackupState"
	MGatherWriterMetadata   Method = "GatherWriterMetadata"
	MGetWriterMetadata      Method = "GetWriterMetadata"
	MFreeWriterMetadata     Method = "FreeWriterMetadata"
	MAddComponent           Method = "AddComponent"
	MSetBackupOptions       Method = "SetBackupOptions"
	MSetPreviousBackupStamp Method = "SetPreviousBackupStamp"
	MStartSnapshotSet       Method = "StartSnapshotSet"
	MAddToSnapshotSet       Method = "AddToSnapshotSet"
	MPrepareForBackup       Method = "PrepareForBackup"
	MDoSnapshotSet          Method = "DoSnapshotSet"
	MGatherWriterStatus     Method = "GatherWriterStatus"
	MGetWriterStatus        Method = "GetWriterStatus"
	MFreeWriterStatus       Method = "FreeWriterStatus"
	MSetBackupSucceeded     Method = "SetBackupSucceeded"
	MBackupComplete         Method = "BackupComplete"
	MAbortBackup            Method = "AbortBackup"
	MSaveAsXML              Method = "SaveAsXML"
	MGetWriterComponents    Method = "GetWriterComponents"
	MQuery                  Method = "Query"
	MGetSnapshotProperties  Method = "GetSnapshotProperties"
	MDeleteSnapshots        Method = "DeleteSnapshots"
	MIsVolumeSupported      Method = "IsVolumeSupported"
	MExposeSnapshot         Method = "ExposeSnapshot"
	MUnexposeSnapshot       Method = "UnexposeSnapshot"
	MGetSessionID           Method = "GetSessionId"
)

func states(ss ...State) map[State]bool {
	m := map[State]bool{}
	for _, s := range ss {
		m[s] = true
	}
	return m
}

// afterNew are all backup states after InitializeForBackup.
var afterNew = []State{StInit, StMeta, StSet, StPrepared, StSnapped, StFailed, StAborted, StComplete}

// metaAndLater are meta and every later backup state.
var metaAndLater = []State{StMeta, StSet, StPrepared, StSnapped, StFailed, StAborted, StComplete}

// restoreStates are the restore states; only calls valid in restore allow them.
var restoreStates = []State{StRestoreInit, StRestoreMeta, StRestorePre, StRestorePost}

// allowed is the D2 table: the states in which each call may run. Extra
// conditions (once only, writer context, component mode, SetBackupState
// before PrepareForBackup) are checked by the method and are also
// VSS_E_BAD_STATE. A call outside its states leaves the session unchanged.
var allowed = map[Method]map[State]bool{
	MInitializeForBackup:    states(StNew),
	MInitializeForRestore:   states(StNew),
	MSetContext:             states(StInit),
	MEnableWriterClasses:    states(StInit),
	MDisableWriterClasses:   states(StInit),
	MDisableWriterInstances: states(StInit),
	MSetBackupState:         states(StInit, StMeta, StSet),
	MGatherWriterMetadata:   states(StInit),
	MGetWriterMetadata:      states(append(metaAndLater, StRestoreMeta, StRestorePre, StRestorePost)...),
	MFreeWriterMetadata:     states(append(metaAndLater, StRestoreMeta, StRestorePre, StRestorePost)...),
	MAddComponent:           states(StMeta, StSet),
	MSetBackupOptions:       states(StMeta, StSet),
	MSetPreviousBackupStamp: states(StMeta, StSet),
	MStartSnapshotSet:       states(StInit, StMeta),
	MAddToSnapshotSet:       states(StSet, StPrepared),
	MPrepareForBackup:       states(StSet),
	MDoSnapshotSet:          states(StSet, StPrepared),
	MGatherWriterStatus:     states(append(metaAndLater, StRestoreMeta, StRestorePre, StRestorePost)...),
	MGetWriterStatus:        states(append(metaAndLater, StRestoreMeta, StRestorePre, StRestorePost)...),
	MFreeWriterStatus:       states(append(metaAndLater, StRestoreMeta, StRestorePre, StRestorePost)...),
	MSetBackupSucceeded:     states(StSnapped),
	MBackupComplete:         states(StSnapped),
	MAbortBackup:            states(afterNew...),
	MSaveAsXML:              states(append(afterNew, restoreStates...)...),
	MGetWriterComponents:    states(append(afterNew, restoreStates...)...),
	MQuery:                  states(append(afterNew, restoreStates...)...),
	MGetSnapshotProperties:  states(append(afterNew, restoreStates...)...),
	MDeleteSnapshots:        states(append(afterNew, restoreStates...)...),
	MIsVolumeSupported:      states(append(afterNew, restoreStates...)...),
	MExposeSnapshot:         states(append(afterNew, restoreStates...)...),
	MUnexposeSnapshot:       states(append(afterNew, restoreStates...)...),
	MGetSessionID:           states(append([]State{StNew}, append(afterNew, restoreStates...)...)...),
}

// readOnly calls may run while an async operation started with `&` is
// pending (§12 D2); every other call is VSS_E_BAD_STATE then.
var readOnly = map[Method]bool{
	MGetWriterMetadata: true, MGetWriterStatus: true, MGetWriterComponents: true, MSaveAsXML: true,
	MQuery: true, MGetSnapshotProperties: true, MIsVolumeSupported: true, MGetSessionID: true,
}

// AllMethods lists the D2 table's calls (for table tests and the CLI).
func AllMethods() []Method {
	out := make([]Method, 0, len(allowed))
	for m := range allowed {
		out = append(out, m)
	}
	return out
}

// Allowed reports whether the D2 table allows m in s (without the extra
// per-call conditions).
func Allowed(m Method, s State) bool { return allowed[m][s] }
