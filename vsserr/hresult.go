package vsserr

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// HRESULT is a COM result code: bit 31 set means failure.
type HRESULT uint32

// Failed reports whether the code has the failure bit set. Success codes such
// as S_FALSE or VSS_S_ASYNC_FINISHED are not failures.
func (h HRESULT) Failed() bool { return h&0x80000000 != 0 }

// Name is the symbolic name, or "HRESULT" for a code the catalogue does not know.
func (h HRESULT) Name() string {
	if n, ok := names[h]; ok {
		return n
	}
	return "HRESULT"
}

// Hex formats the code as 0x and eight uppercase hex digits (D12).
func (h HRESULT) Hex() string { return fmt.Sprintf("0x%08X", uint32(h)) }

// String reads like "VSS_E_BAD_STATE (0x80042301)".
func (h HRESULT) String() string { return h.Name() + " (" + h.Hex() + ")" }

// Error lets a bare HRESULT be used as an error and as an errors.Is target.
func (h HRESULT) Error() string { return h.String() }

// Known reports whether the catalogue has a name for the code.
func (h HRESULT) Known() bool { _, ok := names[h]; return ok }

// Generic COM codes.
const (
	OK           HRESULT = 0x00000000 // S_OK
	False        HRESULT = 0x00000001 // S_FALSE
	NotImpl      HRESULT = 0x80004001 // E_NOTIMPL
	Pointer      HRESULT = 0x80004003 // E_POINTER
	Fail         HRESULT = 0x80004005 // E_FAIL
	EUnexpected  HRESULT = 0x8000FFFF // E_UNEXPECTED
	AccessDenied HRESULT = 0x80070005 // E_ACCESSDENIED
	OutOfMemory  HRESULT = 0x8007000E // E_OUTOFMEMORY
	InvalidArg   HRESULT = 0x80070057 // E_INVALIDARG
)

// VSS codes (vsserror.h).
const (
	BadState                                        HRESULT = 0x80042301
	Unexpected                                      HRESULT = 0x80042302
	ProviderAlreadyRegistered                       HRESULT = 0x80042303
	ProviderNotRegistered                           HRESULT = 0x80042304
	ProviderVeto                                    HRESULT = 0x80042306
	ProviderInUse                                   HRESULT = 0x80042307
	ObjectNotFound                                  HRESULT = 0x80042308
	AsyncPending                                    HRESULT = 0x00042309
	AsyncFinished                                   HRESULT = 0x0004230A
	AsyncCancelled                                  HRESULT = 0x0004230B
	VolumeNotSupported                              HRESULT = 0x8004230C
	ObjectAlreadyExists                             HRESULT = 0x8004230D
	VolumeNotSupportedByProvider                    HRESULT = 0x8004230E
	UnexpectedProviderError                         HRESULT = 0x8004230F
	CorruptXMLDocument                              HRESULT = 0x80042310
	InvalidXMLDocument                              HRESULT = 0x80042311
	MaximumNumberOfVolumesReached                   HRESULT = 0x80042312
	FlushWritesTimeout                              HRESULT = 0x80042313
	HoldWritesTimeout                               HRESULT = 0x80042314
	UnexpectedWriterError                           HRESULT = 0x80042315
	SnapshotSetInProgress                           HRESULT = 0x80042316
	MaximumNumberOfSnapshotsReached                 HRESULT = 0x80042317
	WriterInfrastructure                            HRESULT = 0x80042318
	WriterNotResponding                             HRESULT = 0x80042319
	WriterAlreadySubscribed                         HRESULT = 0x8004231A
	UnsupportedContext                              HRESULT = 0x8004231B
	VolumeInUse                                     HRESULT = 0x8004231D
	MaximumDiffareaAssociationsReached              HRESULT = 0x8004231E
	InsufficientStorage                             HRESULT = 0x8004231F
	NoSnapshotsImported                             HRESULT = 0x80042320
	SSomeSnapshotsNotImported                       HRESULT = 0x00042321
	SomeSnapshotsNotImported                        HRESULT = 0x80042321
	MaximumNumberOfRemoteMachinesReached            HRESULT = 0x80042322
	RemoteServerUnavailable                         HRESULT = 0x80042323
	RemoteServerUnsupported                         HRESULT = 0x80042324
	RevertInProgress                                HRESULT = 0x80042325
	RevertVolumeLost                                HRESULT = 0x80042326
	RebootRequired                                  HRESULT = 0x80042327
	TransactionFreezeTimeout                        HRESULT = 0x80042328
	TransactionThawTimeout                          HRESULT = 0x80042329
	UnselectedVolume                                HRESULT = 0x8004232A
	SnapshotNotInSet                                HRESULT = 0x8004232B
	NestedVolumeLimit                               HRESULT = 0x8004232C
	VolumeNotLocal                                  HRESULT = 0x8004232D
	ClusterTimeout                                  HRESULT = 0x8004232E
	NotSupported                                    HRESULT = 0x8004232F
	WriterErrorPartialFailure                       HRESULT = 0x80042336
	WriterErrorInconsistentSnapshot                 HRESULT = 0x800423F0
	WriterErrorOutOfResources                       HRESULT = 0x800423F1
	WriterErrorTimeout                              HRESULT = 0x800423F2
	WriterErrorRetryable                            HRESULT = 0x800423F3
	WriterErrorNonRetryable                         HRESULT = 0x800423F4
	WriterErrorRecoveryFailed                       HRESULT = 0x800423F5
	BreakRevertIDFailed                             HRESULT = 0x800423F6
	LegacyProvider                                  HRESULT = 0x800423F7
	MissingDisk                                     HRESULT = 0x800423F8
	MissingHiddenVolume                             HRESULT = 0x800423F9
	MissingVolume                                   HRESULT = 0x800423FA
	AutorecoveryFailed                              HRESULT = 0x800423FB
	DynamicDiskError                                HRESULT = 0x800423FC
	NontransportableBCD                             HRESULT = 0x800423FD
	CannotRevertDiskID                              HRESULT = 0x800423FE
	ResyncInProgress                                HRESULT = 0x800423FF
	ClusterError                                    HRESULT = 0x80042400
	ASRDiskAssignmentFailed                         HRESULT = 0x80042401
	ASRDiskRecreationFailed                         HRESULT = 0x80042402
	ASRNoArcPath                                    HRESULT = 0x80042403
	ASRMissingDynDisk                               HRESULT = 0x80042404
	ASRSharedCriDisk                                HRESULT = 0x80042405
	ASRDataDiskRDisk0                               HRESULT = 0x80042406
	ASRRDisk0TooSmall                               HRESULT = 0x80042407
	ASRCriticalDisksTooSmall                        HRESULT = 0x80042408
	WriterStatusNotAvailable                        HRESULT = 0x80042409
	ASRDynamicVHDNotSupported                       HRESULT = 0x8004240A
	CriticalVolumeOnInvalidDisk                     HRESULT = 0x80042411
	ASRRDiskForSystemDiskNotFound                   HRESULT = 0x80042412
	ASRNoPhysicalDiskAvailable                      HRESULT = 0x80042413
	ASRFixedPhysicalDiskAvailableAfterDiskExclusion HRESULT = 0x80042414
	ASRCriticalDiskCannotBeExcluded                 HRESULT = 0x80042415
	ASRSystemPartitionHidden                        HRESULT = 0x80042416
	FSSTimeout                                      HRESULT = 0x80042417
)

var names = map[HRESULT]string{
	OK: "S_OK", False: "S_FALSE", NotImpl: "E_NOTIMPL", Pointer: "E_POINTER", Fail: "E_FAIL",
	EUnexpected: "E_UNEXPECTED", AccessDenied: "E_ACCESSDENIED", OutOfMemory: "E_OUTOFMEMORY",
	InvalidArg: "E_INVALIDARG",

	BadState:                             "VSS_E_BAD_STATE",
	Unexpected:                           "VSS_E_UNEXPECTED",
	ProviderAlreadyRegistered:            "VSS_E_PROVIDER_ALREADY_REGISTERED",
	ProviderNotRegistered:                "VSS_E_PROVIDER_NOT_REGISTERED",
	ProviderVeto:                         "VSS_E_PROVIDER_VETO",
	ProviderInUse:                        "VSS_E_PROVIDER_IN_USE",
	ObjectNotFound:                       "VSS_E_OBJECT_NOT_FOUND",
	AsyncPending:                         "VSS_S_ASYNC_PENDING",
	AsyncFinished:                        "VSS_S_ASYNC_FINISHED",
	AsyncCancelled:                       "VSS_S_ASYNC_CANCELLED",
	VolumeNotSupported:                   "VSS_E_VOLUME_NOT_SUPPORTED",
	ObjectAlreadyExists:                  "VSS_E_OBJECT_ALREADY_EXISTS",
	VolumeNotSupportedByProvider:         "VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER",
	UnexpectedProviderError:              "VSS_E_UNEXPECTED_PROVIDER_ERROR",
	CorruptXMLDocument:                   "VSS_E_CORRUPT_XML_DOCUMENT",
	InvalidXMLDocument:                   "VSS_E_INVALID_XML_DOCUMENT",
	MaximumNumberOfVolumesReached:        "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED",
	FlushWritesTimeout:                   "VSS_E_FLUSH_WRITES_TIMEOUT",
	HoldWritesTimeout:                    "VSS_E_HOLD_WRITES_TIMEOUT",
	UnexpectedWriterError:                "VSS_E_UNEXPECTED_WRITER_ERROR",
	SnapshotSetInProgress:                "VSS_E_SNAPSHOT_SET_IN_PROGRESS",
	MaximumNumberOfSnapshotsReached:      "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED",
	WriterInfrastructure:                 "VSS_E_WRITER_INFRASTRUCTURE",
	WriterNotResponding:                  "VSS_E_WRITER_NOT_RESPONDING",
	WriterAlreadySubscribed:              "VSS_E_WRITER_ALREADY_SUBSCRIBED",
	UnsupportedContext:                   "VSS_E_UNSUPPORTED_CONTEXT",
	VolumeInUse:                          "VSS_E_VOLUME_IN_USE",
	MaximumDiffareaAssociationsReached:   "VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED",
	InsufficientStorage:                  "VSS_E_INSUFFICIENT_STORAGE",
	NoSnapshotsImported:                  "VSS_E_NO_SNAPSHOTS_IMPORTED",
	SSomeSnapshotsNotImported:            "VSS_S_SOME_SNAPSHOTS_NOT_IMPORTED",
	SomeSnapshotsNotImported:             "VSS_E_SOME_SNAPSHOTS_NOT_IMPORTED",
	MaximumNumberOfRemoteMachinesReached: "VSS_E_MAXIMUM_NUMBER_OF_REMOTE_MACHINES_REACHED",
	RemoteServerUnavailable:              "VSS_E_REMOTE_SERVER_UNAVAILABLE",
	RemoteServerUnsupported:              "VSS_E_REMOTE_SERVER_UNSUPPORTED",
	RevertInProgress:                     "VSS_E_REVERT_IN_PROGRESS",
	RevertVolumeLost:                     "VSS_E_REVERT_VOLUME_LOST",
	RebootRequired:                       "VSS_E_REBOOT_REQUIRED",
	TransactionFreezeTimeout:             "VSS_E_TRANSACTION_FREEZE_TIMEOUT",
	TransactionThawTimeout:               "VSS_E_TRANSACTION_THAW_TIMEOUT",
	UnselectedVolume:                     "VSS_E_UNSELECTED_VOLUME",
	SnapshotNotInSet:                     "VSS_E_SNAPSHOT_NOT_IN_SET",
	NestedVolumeLimit:                    "VSS_E_NESTED_VOLUME_LIMIT",
	VolumeNotLocal:                       "VSS_E_VOLUME_NOT_LOCAL",
	ClusterTimeout:                       "VSS_E_CLUSTER_TIMEOUT",
	NotSupported:                         "VSS_E_NOT_SUPPORTED",
	WriterErrorPartialFailure:            "VSS_E_WRITERERROR_PARTIAL_FAILURE",
	WriterErrorInconsistentSnapshot:      "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT",
	WriterErrorOutOfResources:            "VSS_E_WRITERERROR_OUTOFRESOURCES",
	WriterErrorTimeout:                   "VSS_E_WRITERERROR_TIMEOUT",
	WriterErrorRetryable:                 "VSS_E_WRITERERROR_RETRYABLE",
	WriterErrorNonRetryable:              "VSS_E_WRITERERROR_NONRETRYABLE",
	WriterErrorRecoveryFailed:            "VSS_E_WRITERERROR_RECOVERY_FAILED",
	BreakRevertIDFailed:                  "VSS_E_BREAK_REVERT_ID_FAILED",
	LegacyProvider:                       "VSS_E_LEGACY_PROVIDER",
	MissingDisk:                          "VSS_E_MISSING_DISK",
	MissingHiddenVolume:                  "VSS_E_MISSING_HIDDEN_VOLUME",
	MissingVolume:                        "VSS_E_MISSING_VOLUME",
	AutorecoveryFailed:                   "VSS_E_AUTORECOVERY_FAILED",
	DynamicDiskError:                     "VSS_E_DYNAMIC_DISK_ERROR",
	NontransportableBCD:                  "VSS_E_NONTRANSPORTABLE_BCD",
	CannotRevertDiskID:                   "VSS_E_CANNOT_REVERT_DISKID",
	ResyncInProgress:                     "VSS_E_RESYNC_IN_PROGRESS",
	ClusterError:                         "VSS_E_CLUSTER_ERROR",
	ASRDiskAssignmentFailed:              "VSS_E_ASRERROR_DISK_ASSIGNMENT_FAILED",
	ASRDiskRecreationFailed:              "VSS_E_ASRERROR_DISK_RECREATION_FAILED",
	ASRNoArcPath:                         "VSS_E_ASRERROR_NO_ARCPATH",
	ASRMissingDynDisk:                    "VSS_E_ASRERROR_MISSING_DYNDISK",
	ASRSharedCriDisk:                     "VSS_E_ASRERROR_SHARED_CRIDISK",
	ASRDataDiskRDisk0:                    "VSS_E_ASRERROR_DATADISK_RDISK0",
	ASRRDisk0TooSmall:                    "VSS_E_ASRERROR_RDISK0_TOOSMALL",
	ASRCriticalDisksTooSmall:             "VSS_E_ASRERROR_CRITICAL_DISKS_TOO_SMALL",
	WriterStatusNotAvailable:             "VSS_E_WRITER_STATUS_NOT_AVAILABLE",
	ASRDynamicVHDNotSupported:            "VSS_E_ASRERROR_DYNAMIC_VHD_NOT_SUPPORTED",
	CriticalVolumeOnInvalidDisk:          "VSS_E_CRITICAL_VOLUME_ON_INVALID_DISK",
	ASRRDiskForSystemDiskNotFound:        "VSS_E_ASRERROR_RDISK_FOR_SYSTEM_DISK_NOT_FOUND",
	ASRNoPhysicalDiskAvailable:           "VSS_E_ASRERROR_NO_PHYSICAL_DISK_AVAILABLE",
	ASRFixedPhysicalDiskAvailableAfterDiskExclusion: "VSS_E_ASRERROR_FIXED_PHYSICAL_DISK_AVAILABLE_AFTER_DISK_EXCLUSION",
	ASRCriticalDiskCannotBeExcluded:                 "VSS_E_ASRERROR_CRITICAL_DISK_CANNOT_BE_EXCLUDED",
	ASRSystemPartitionHidden:                        "VSS_E_ASRERROR_SYSTEM_PARTITION_HIDDEN",
	FSSTimeout:                                      "VSS_E_FSS_TIMEOUT",
}

var byName = func() map[string]HRESULT {
	m := make(map[string]HRESULT, len(names))
	for h, n := range names {
		m[n] = h
	}
	return m
}()

// Lookup finds a code by its symbolic name ("VSS_E_BAD_STATE") or by number
// ("0x80042301", "2147754753").
func Lookup(s string) (HRESULT, bool) {
	if h, ok := byName[s]; ok {
		return h, true
	}
	v, err := strconv.ParseUint(strings.TrimSpace(s), 0, 32)
	if err != nil {
		return 0, false
	}
	return HRESULT(v), true
}

// All lists every catalogued code in numeric order.
func All() []HRESULT {
	out := make([]HRESULT, 0, len(names))
	for h := range names {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// WriterFailureCodes are the codes a writer may report as its failure (vss-reference §3.4),
// including the two the coordinator sets on a writer's behalf.
var WriterFailureCodes = []HRESULT{
	OK,
	WriterErrorInconsistentSnapshot, WriterErrorOutOfResources, WriterErrorTimeout,
	WriterErrorRetryable, WriterErrorNonRetryable, WriterErrorRecoveryFailed,
	WriterErrorPartialFailure, WriterNotResponding, WriterStatusNotAvailable,
}
