package vss

import "strings"

// Attributes is _VSS_VOLUME_SNAPSHOT_ATTRIBUTES (vss-reference §1.3).
type Attributes uint32

// Snapshot attribute bits.
const (
	AttrPersistent          Attributes = 0x00000001
	AttrNoAutoRecovery      Attributes = 0x00000002
	AttrClientAccessible    Attributes = 0x00000004
	AttrNoAutoRelease       Attributes = 0x00000008
	AttrNoWriters           Attributes = 0x00000010
	AttrTransportable       Attributes = 0x00000020
	AttrNotSurfaced         Attributes = 0x00000040
	AttrNotTransacted       Attributes = 0x00000080
	AttrHardwareAssisted    Attributes = 0x00010000
	AttrDifferential        Attributes = 0x00020000
	AttrPlex                Attributes = 0x00040000
	AttrImported            Attributes = 0x00080000
	AttrExposedLocally      Attributes = 0x00100000
	AttrExposedRemotely     Attributes = 0x00200000
	AttrAutorecover         Attributes = 0x00400000
	AttrRollbackRecovery    Attributes = 0x00800000
	AttrDelayedPostSnapshot Attributes = 0x01000000
	AttrTxFRecovery         Attributes = 0x02000000
	AttrFileShare           Attributes = 0x04000000
)

var attrTable = newTable[Attributes](
	AttrPersistent, "VSS_VOLSNAP_ATTR_PERSISTENT",
	AttrNoAutoRecovery, "VSS_VOLSNAP_ATTR_NO_AUTORECOVERY",
	AttrClientAccessible, "VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE",
	AttrNoAutoRelease, "VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE",
	AttrNoWriters, "VSS_VOLSNAP_ATTR_NO_WRITERS",
	AttrTransportable, "VSS_VOLSNAP_ATTR_TRANSPORTABLE",
	AttrNotSurfaced, "VSS_VOLSNAP_ATTR_NOT_SURFACED",
	AttrNotTransacted, "VSS_VOLSNAP_ATTR_NOT_TRANSACTED",
	AttrHardwareAssisted, "VSS_VOLSNAP_ATTR_HARDWARE_ASSISTED",
	AttrDifferential, "VSS_VOLSNAP_ATTR_DIFFERENTIAL",
	AttrPlex, "VSS_VOLSNAP_ATTR_PLEX",
	AttrImported, "VSS_VOLSNAP_ATTR_IMPORTED",
	AttrExposedLocally, "VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY",
	AttrExposedRemotely, "VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY",
	AttrAutorecover, "VSS_VOLSNAP_ATTR_AUTORECOVER",
	AttrRollbackRecovery, "VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY",
	AttrDelayedPostSnapshot, "VSS_VOLSNAP_ATTR_DELAYED_POSTSNAPSHOT",
	AttrTxFRecovery, "VSS_VOLSNAP_ATTR_TXF_RECOVERY",
	AttrFileShare, "VSS_VOLSNAP_ATTR_FILE_SHARE",
)

// Names lists the set attribute bits by spec name.
func (a Attributes) Names() []string { return attrTable.flagNames(a) }
func (a Attributes) String() string  { return strings.Join(a.Names(), "|") }

// ParseAttributes accepts names or numbers joined with '|'.
func ParseAttributes(s string) (Attributes, error) { return attrTable.parseFlags("attribute", s) }

// RequesterSettable are the bits a requester may OR into a context (vss-reference §1.3).
const RequesterSettable = AttrDifferential | AttrPlex | AttrTransportable | AttrNoAutoRecovery |
	AttrNotTransacted | AttrRollbackRecovery | AttrTxFRecovery

// SnapshotKinds are the attributes that ask for a kind of snapshot. Only a
// provider that makes that kind may take the volume, and a snapshot is
// labelled with the kinds its provider makes (D19).
const SnapshotKinds = AttrDifferential | AttrPlex | AttrTransportable

// Context is _VSS_SNAPSHOT_CONTEXT (vss-reference §1.4): a base context, optionally with
// requester-settable attribute bits OR'ed in.
type Context int32

// Snapshot contexts.
const (
	CtxBackup                  Context = 0x00000000
	CtxFileShareBackup         Context = 0x00000010
	CtxNASRollback             Context = 0x00000019
	CtxAppRollback             Context = 0x00000009
	CtxClientAccessible        Context = 0x0000001D
	CtxClientAccessibleWriters Context = 0x0000000D
	CtxAll                     Context = -1 // 0xFFFFFFFF
)

var ctxTable = newTable[Context](
	CtxBackup, "VSS_CTX_BACKUP",
	CtxFileShareBackup, "VSS_CTX_FILE_SHARE_BACKUP",
	CtxNASRollback, "VSS_CTX_NAS_ROLLBACK",
	CtxAppRollback, "VSS_CTX_APP_ROLLBACK",
	CtxClientAccessible, "VSS_CTX_CLIENT_ACCESSIBLE",
	CtxClientAccessibleWriters, "VSS_CTX_CLIENT_ACCESSIBLE_WRITERS",
	CtxAll, "VSS_CTX_ALL",
)

// Base strips the requester-settable bits, leaving the context proper.
func (c Context) Base() Context {
	if c == CtxAll {
		return c
	}
	return c &^ Context(RequesterSettable)
}

// Extra returns the requester-settable bits OR'ed into the context.
func (c Context) Extra() Attributes {
	if c == CtxAll {
		return 0
	}
	return Attributes(c) & RequesterSettable
}

// Valid reports whether the base is one of the vss-reference §1.4 contexts.
func (c Context) Valid() bool { _, ok := ctxTable.names[c.Base()]; return ok }

// Writers reports whether the context involves writers (no NO_WRITERS bit).
func (c Context) Writers() bool { return c != CtxAll && Attributes(c)&AttrNoWriters == 0 }

// Persistent reports whether snapshots of the context survive the session.
func (c Context) Persistent() bool { return c != CtxAll && Attributes(c)&AttrPersistent != 0 }

// AutoRelease reports whether snapshots are deleted when the session ends.
func (c Context) AutoRelease() bool { return c != CtxAll && Attributes(c)&AttrNoAutoRelease == 0 }

// String prints the base name, then any extra bits.
func (c Context) String() string {
	s := ctxTable.name(c.Base())
	if x := c.Extra(); x != 0 {
		s += "|" + x.String()
	}
	return s
}

// ParseContext accepts a context name, optionally OR'ed with attribute names, or numbers.
func ParseContext(s string) (Context, error) {
	var out Context
	for _, part := range strings.Split(s, "|") {
		part = strings.TrimSpace(part)
		if v, err := ctxTable.parse("context", part); err == nil {
			out |= v
			continue
		}
		a, err := attrTable.parse("context", part)
		if err != nil {
			return 0, err
		}
		out |= Context(a)
	}
	return out, nil
}

// ObjectType is VSS_OBJECT_TYPE.
type ObjectType int32

// Object types.
const (
	ObjectUnknown     ObjectType = 0
	ObjectNone        ObjectType = 1
	ObjectSnapshotSet ObjectType = 2
	ObjectSnapshot    ObjectType = 3
	ObjectProvider    ObjectType = 4
)

var objTable = newTable[ObjectType](ObjectUnknown, "VSS_OBJECT_UNKNOWN", ObjectNone, "VSS_OBJECT_NONE",
	ObjectSnapshotSet, "VSS_OBJECT_SNAPSHOT_SET", ObjectSnapshot, "VSS_OBJECT_SNAPSHOT", ObjectProvider, "VSS_OBJECT_PROVIDER")

func (o ObjectType) String() string { return objTable.name(o) }

// ParseObjectType accepts a name or number.
func ParseObjectType(s string) (ObjectType, error) { return objTable.parse("object type", s) }

// SnapshotState is VSS_SNAPSHOT_STATE.
type SnapshotState int32

// Snapshot states used by lvss (the full list is in vss-reference §1.6).
const (
	SnapshotUnknown   SnapshotState = 0
	SnapshotPreparing SnapshotState = 1
	SnapshotPrepared  SnapshotState = 3
	SnapshotCommitted SnapshotState = 7
	SnapshotCreated   SnapshotState = 12
	SnapshotAborted   SnapshotState = 13
	SnapshotDeleted   SnapshotState = 14
)

var snapStateTable = newTable[SnapshotState](SnapshotUnknown, "VSS_SS_UNKNOWN", SnapshotPreparing, "VSS_SS_PREPARING",
	SnapshotState(2), "VSS_SS_PROCESSING_PREPARE", SnapshotPrepared, "VSS_SS_PREPARED",
	SnapshotState(4), "VSS_SS_PROCESSING_PRECOMMIT", SnapshotState(5), "VSS_SS_PRECOMMITTED",
	SnapshotState(6), "VSS_SS_PROCESSING_COMMIT", SnapshotCommitted, "VSS_SS_COMMITTED",
	SnapshotState(8), "VSS_SS_PROCESSING_POSTCOMMIT", SnapshotState(9), "VSS_SS_PROCESSING_PREFINALCOMMIT",
	SnapshotState(10), "VSS_SS_PREFINALCOMMITTED", SnapshotState(11), "VSS_SS_PROCESSING_POSTFINALCOMMIT",
	SnapshotCreated, "VSS_SS_CREATED", SnapshotAborted, "VSS_SS_ABORTED", SnapshotDeleted, "VSS_SS_DELETED",
	SnapshotState(15), "VSS_SS_POSTCOMMITTED")

func (s SnapshotState) String() string { return snapStateTable.name(s) }

// ProviderType is VSS_PROVIDER_TYPE.
type ProviderType int32

// Provider types.
const (
	ProvUnknown   ProviderType = 0
	ProvSystem    ProviderType = 1
	ProvSoftware  ProviderType = 2
	ProvHardware  ProviderType = 3
	ProvFileShare ProviderType = 4
)

var provTable = newTable[ProviderType](ProvUnknown, "VSS_PROV_UNKNOWN", ProvSystem, "VSS_PROV_SYSTEM",
	ProvSoftware, "VSS_PROV_SOFTWARE", ProvHardware, "VSS_PROV_HARDWARE", ProvFileShare, "VSS_PROV_FILESHARE")

func (p ProviderType) String() string { return provTable.name(p) }

// BackupType is VSS_BACKUP_TYPE.
type BackupType int32

// Backup types.
const (
	BackupUndefined    BackupType = 0
	BackupFull         BackupType = 1
	BackupIncremental  BackupType = 2
	BackupDifferential BackupType = 3
	BackupLog          BackupType = 4
	BackupCopy         BackupType = 5
	BackupOther        BackupType = 6
)

var btTable = newTable[BackupType](BackupUndefined, "VSS_BT_UNDEFINED", BackupFull, "VSS_BT_FULL",
	BackupIncremental, "VSS_BT_INCREMENTAL", BackupDifferential, "VSS_BT_DIFFERENTIAL", BackupLog, "VSS_BT_LOG",
	BackupCopy, "VSS_BT_COPY", BackupOther, "VSS_BT_OTHER")

func (b BackupType) String() string { return btTable.name(b) }

// Valid reports whether the value is one of the defined backup types.
func (b BackupType) Valid() bool { _, ok := btTable.names[b]; return ok }

// ParseBackupType accepts a name or number.
func ParseBackupType(s string) (BackupType, error) { return btTable.parse("backup type", s) }

// RestoreType is VSS_RESTORE_TYPE.
type RestoreType int32

// Restore types.
const (
	RestoreUndefined RestoreType = 0
	RestoreByCopy    RestoreType = 1
	RestoreImport    RestoreType = 2
	RestoreOther     RestoreType = 3
)

var rtTable = newTable[RestoreType](RestoreUndefined, "VSS_RTYPE_UNDEFINED", RestoreByCopy, "VSS_RTYPE_BY_COPY",
	RestoreImport, "VSS_RTYPE_IMPORT", RestoreOther, "VSS_RTYPE_OTHER")

func (r RestoreType) String() string { return rtTable.name(r) }

// ParseRestoreType accepts a name or number.
func ParseRestoreType(s string) (RestoreType, error) { return rtTable.parse("restore type", s) }

// Valid reports whether r is a VSS_RESTORE_TYPE value.
func (r RestoreType) Valid() bool { _, ok := rtTable.names[r]; return ok }

// WriterState is VSS_WRITER_STATE (vss-reference §3.3).
type WriterState int32

// Writer states.
const (
	WSUnknown                  WriterState = 0
	WSStable                   WriterState = 1
	WSWaitingForFreeze         WriterState = 2
	WSWaitingForThaw           WriterState = 3
	WSWaitingForPostSnapshot   WriterState = 4
	WSWaitingForBackupComplete WriterState = 5
	WSFailedAtIdentify         WriterState = 6
	WSFailedAtPrepareBackup    WriterState = 7
	WSFailedAtPrepareSnapshot  WriterState = 8
	WSFailedAtFreeze           WriterState = 9
	WSFailedAtThaw             WriterState = 10
	WSFailedAtPostSnapshot     WriterState = 11
	WSFailedAtBackupComplete   WriterState = 12
	WSFailedAtPreRestore       WriterState = 13
	WSFailedAtPostRestore      WriterState = 14
	WSFailedAtBackupShutdown   WriterState = 15
)

var wsTable = newTable[WriterState](WSUnknown, "VSS_WS_UNKNOWN", WSStable, "VSS_WS_STABLE",
	WSWaitingForFreeze, "VSS_WS_WAITING_FOR_FREEZE", WSWaitingForThaw, "VSS_WS_WAITING_FOR_THAW",
	WSWaitingForPostSnapshot, "VSS_WS_WAITING_FOR_POST_SNAPSHOT",
	WSWaitingForBackupComplete, "VSS_WS_WAITING_FOR_BACKUP_COMPLETE",
	WSFailedAtIdentify, "VSS_WS_FAILED_AT_IDENTIFY", WSFailedAtPrepareBackup, "VSS_WS_FAILED_AT_PREPARE_BACKUP",
	WSFailedAtPrepareSnapshot, "VSS_WS_FAILED_AT_PREPARE_SNAPSHOT", WSFailedAtFreeze, "VSS_WS_FAILED_AT_FREEZE",
	WSFailedAtThaw, "VSS_WS_FAILED_AT_THAW", WSFailedAtPostSnapshot, "VSS_WS_FAILED_AT_POST_SNAPSHOT",
	WSFailedAtBackupComplete, "VSS_WS_FAILED_AT_BACKUP_COMPLETE", WSFailedAtPreRestore, "VSS_WS_FAILED_AT_PRE_RESTORE",
	WSFailedAtPostRestore, "VSS_WS_FAILED_AT_POST_RESTORE", WSFailedAtBackupShutdown, "VSS_WS_FAILED_AT_BACKUPSHUTDOWN")

func (w WriterState) String() string { return wsTable.name(w) }

// Failed reports whether the state is one of the FAILED_AT_* states.
func (w WriterState) Failed() bool { return w >= WSFailedAtIdentify && w <= WSFailedAtBackupShutdown }

// AppLevel is VSS_APPLICATION_LEVEL.
type AppLevel int32

// Application levels.
const (
	LevelUnknown  AppLevel = 0
	LevelSystem   AppLevel = 1
	LevelBackEnd  AppLevel = 2
	LevelFrontEnd AppLevel = 3
	LevelSystemRM AppLevel = 4
	LevelAuto     AppLevel = -1
)

var levelTable = newTable[AppLevel](LevelUnknown, "VSS_APP_UNKNOWN", LevelSystem, "VSS_APP_SYSTEM",
	LevelBackEnd, "VSS_APP_BACK_END", LevelFrontEnd, "VSS_APP_FRONT_END", LevelSystemRM, "VSS_APP_SYSTEM_RM",
	LevelAuto, "VSS_APP_AUTO")

func (l AppLevel) String() string { return levelTable.name(l) }

// ParseAppLevel accepts a name or number.
func ParseAppLevel(s string) (AppLevel, error) { return levelTable.parse("application level", s) }

// FreezeOrder is the order in which levels are frozen (D5); Thaw runs it backwards.
// Unknown and auto levels are treated as front-end, the VSS default.
var FreezeOrder = []AppLevel{LevelFrontEnd, LevelBackEnd, LevelSystem, LevelSystemRM}

// Normalize maps UNKNOWN and AUTO to FRONT_END, the level VSS assumes by default.
func (l AppLevel) Normalize() AppLevel {
	switch l {
	case LevelSystem, LevelBackEnd, LevelFrontEnd, LevelSystemRM:
		return l
	}
	return LevelFrontEnd
}

// UsageType is VSS_USAGE_TYPE.
type UsageType int32

// Usage types.
const (
	UsageUndefined           UsageType = 0
	UsageBootableSystemState UsageType = 1
	UsageSystemService       UsageType = 2
	UsageUserData            UsageType = 3
	UsageOther               UsageType = 4
)

var usageTable = newTable[UsageType](UsageUndefined, "VSS_UT_UNDEFINED", UsageBootableSystemState, "VSS_UT_BOOTABLESYSTEMSTATE",
	UsageSystemService, "VSS_UT_SYSTEMSERVICE", UsageUserData, "VSS_UT_USERDATA", UsageOther, "VSS_UT_OTHER")

func (u UsageType) String() string { return usageTable.name(u) }

// ParseUsageType accepts a name or number.
func ParseUsageType(s string) (UsageType, error) { return usageTable.parse("usage type", s) }

// SourceType is VSS_SOURCE_TYPE.
type SourceType int32

// Source types.
const (
	SourceUndefined       SourceType = 0
	SourceTransactedDB    SourceType = 1
	SourceNonTransactedDB SourceType = 2
	SourceOther           SourceType = 3
)

var sourceTable = newTable[SourceType](SourceUndefined, "VSS_ST_UNDEFINED", SourceTransactedDB, "VSS_ST_TRANSACTEDDB",
	SourceNonTransactedDB, "VSS_ST_NONTRANSACTEDDB", SourceOther, "VSS_ST_OTHER")

func (s SourceType) String() string { return sourceTable.name(s) }

// ParseSourceType accepts a name or number.
func ParseSourceType(s string) (SourceType, error) { return sourceTable.parse("source type", s) }

// ComponentType is VSS_COMPONENT_TYPE.
type ComponentType int32

// Component types.
const (
	ComponentUndefined ComponentType = 0
	ComponentDatabase  ComponentType = 1
	ComponentFileGroup ComponentType = 2
)

var ctTable = newTable[ComponentType](ComponentUndefined, "VSS_CT_UNDEFINED", ComponentDatabase, "VSS_CT_DATABASE",
	ComponentFileGroup, "VSS_CT_FILEGROUP")

func (c ComponentType) String() string { return ctTable.name(c) }

// ParseComponentType accepts a name or number.
func ParseComponentType(s string) (ComponentType, error) { return ctTable.parse("component type", s) }

// RestoreMethod is VSS_RESTOREMETHOD_ENUM.
type RestoreMethod int32

// Restore methods.
const (
	RMEUndefined                      RestoreMethod = 0
	RMERestoreIfNotThere              RestoreMethod = 1
	RMERestoreIfCanReplace            RestoreMethod = 2
	RMEStopRestoreStart               RestoreMethod = 3
	RMERestoreToAlternateLocation     RestoreMethod = 4
	RMERestoreAtReboot                RestoreMethod = 5
	RMERestoreAtRebootIfCannotReplace RestoreMethod = 6
	RMECustom                         RestoreMethod = 7
	RMERestoreStopStart               RestoreMethod = 8
)

var rmeTable = newTable[RestoreMethod](RMEUndefined, "VSS_RME_UNDEFINED", RMERestoreIfNotThere, "VSS_RME_RESTORE_IF_NOT_THERE",
	RMERestoreIfCanReplace, "VSS_RME_RESTORE_IF_CAN_REPLACE", RMEStopRestoreStart, "VSS_RME_STOP_RESTORE_START",
	RMERestoreToAlternateLocation, "VSS_RME_RESTORE_TO_ALTERNATE_LOCATION", RMERestoreAtReboot, "VSS_RME_RESTORE_AT_REBOOT",
	RMERestoreAtRebootIfCannotReplace, "VSS_RME_RESTORE_AT_REBOOT_IF_CANNOT_REPLACE", RMECustom, "VSS_RME_CUSTOM",
	RMERestoreStopStart, "VSS_RME_RESTORE_STOP_START")

func (r RestoreMethod) String() string { return rmeTable.name(r) }

// ParseRestoreMethod accepts a name or number.
func ParseRestoreMethod(s string) (RestoreMethod, error) { return rmeTable.parse("restore method", s) }

// WriterRestore is VSS_WRITERRESTORE_ENUM.
type WriterRestore int32

// Writer restore settings.
const (
	WREUndefined      WriterRestore = 0
	WRENever          WriterRestore = 1
	WREIfReplaceFails WriterRestore = 2
	WREAlways         WriterRestore = 3
)

var wreTable = newTable[WriterRestore](WREUndefined, "VSS_WRE_UNDEFINED", WRENever, "VSS_WRE_NEVER",
	WREIfReplaceFails, "VSS_WRE_IF_REPLACE_FAILS", WREAlways, "VSS_WRE_ALWAYS")

func (w WriterRestore) String() string { return wreTable.name(w) }

// RestoreTarget is VSS_RESTORE_TARGET.
type RestoreTarget int32

// Restore targets.
const (
	RTUndefined        RestoreTarget = 0
	RTOriginal         RestoreTarget = 1
	RTAlternate        RestoreTarget = 2
	RTDirected         RestoreTarget = 3
	RTOriginalLocation RestoreTarget = 4
)

var rtgTable = newTable[RestoreTarget](RTUndefined, "VSS_RT_UNDEFINED", RTOriginal, "VSS_RT_ORIGINAL",
	RTAlternate, "VSS_RT_ALTERNATE", RTDirected, "VSS_RT_DIRECTED", RTOriginalLocation, "VSS_RT_ORIGINAL_LOCATION")

func (r RestoreTarget) String() string { return rtgTable.name(r) }

// FileRestoreStatus is VSS_FILE_RESTORE_STATUS.
type FileRestoreStatus int32

// File restore statuses.
const (
	RSUndefined FileRestoreStatus = 0
	RSNone      FileRestoreStatus = 1
	RSAll       FileRestoreStatus = 2
	RSFailed    FileRestoreStatus = 3
)

var rsTable = newTable[FileRestoreStatus](RSUndefined, "VSS_RS_UNDEFINED", RSNone, "VSS_RS_NONE", RSAll, "VSS_RS_ALL", RSFailed, "VSS_RS_FAILED")

func (r FileRestoreStatus) String() string { return rsTable.name(r) }

// Valid reports whether r is a VSS_FILE_RESTORE_STATUS value.
func (r FileRestoreStatus) Valid() bool { _, ok := rsTable.names[r]; return ok }

// ParseFileRestoreStatus accepts a name or number.
func ParseFileRestoreStatus(s string) (FileRestoreStatus, error) {
	return rsTable.parse("file restore status", s)
}

// RollForwardType is VSS_ROLLFORWARD_TYPE.
type RollForwardType int32

// Roll-forward types.
const (
	RFUndefined RollForwardType = 0
	RFNone      RollForwardType = 1
	RFAll       RollForwardType = 2
	RFPartial   RollForwardType = 3
)

var rfTable = newTable[RollForwardType](RFUndefined, "VSS_RF_UNDEFINED", RFNone, "VSS_RF_NONE", RFAll, "VSS_RF_ALL", RFPartial, "VSS_RF_PARTIAL")

func (r RollForwardType) String() string { return rfTable.name(r) }

// Valid reports whether r is a VSS_ROLLFORWARD_TYPE value.
func (r RollForwardType) Valid() bool { _, ok := rfTable.names[r]; return ok }

// ParseRollForwardType accepts a name or number.
func ParseRollForwardType(s string) (RollForwardType, error) {
	return rfTable.parse("roll-forward type", s)
}

// The VSS_BACKUP_SCHEMA bits that restore calls depend on (vss-reference
// §1.6): a writer without the bit does not support the call's feature.
const (
	SchemaWriterSupportsNewTarget       uint32 = 0x100
	SchemaWriterSupportsRestoreWithMove uint32 = 0x200
	SchemaRollForwardRestore            uint32 = 0x1000
	SchemaRestoreRename                 uint32 = 0x2000
	SchemaAuthoritativeRestore          uint32 = 0x4000
)

// Component flags (VSS_COMPONENT_FLAGS).
const (
	CFBackupRecovery      uint32 = 0x1
	CFAppRollbackRecovery uint32 = 0x2
	CFNotSystemState      uint32 = 0x4
)

// Default file-set backup type mask (VSS_FSBT_ALL_BACKUP_REQUIRED|VSS_FSBT_ALL_SNAPSHOT_REQUIRED).
const DefaultFileBackupTypeMask uint32 = 0xF0F
