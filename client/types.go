package client

import (
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// WriterStatus is one writer's answer to GatherWriterStatus, as
// GetWriterStatusEx reports it. A writer's veto is not an error of the call
// that caused it: it is Failure here (vss-reference §3.4, D9).
type WriterStatus struct {
	InstanceID   uuid.UUID
	WriterID     uuid.UUID
	Name         string
	InstanceName string
	State        vss.WriterState
	// Failure is the writer failure code (vss-reference §3.4): S_OK, or the reason the
	// writer failed or vetoed.
	Failure vsserr.HRESULT
	// ApplicationHRESULT and ApplicationMessage are what the application
	// behind the writer said (GetWriterStatusEx).
	ApplicationHRESULT vsserr.HRESULT
	ApplicationMessage string
}

// SnapshotProp is VSS_SNAPSHOT_PROP plus what lvss records about each
// snapshot (provider name, context, consistency, owning session).
type SnapshotProp struct {
	SnapshotID         uuid.UUID
	SnapshotSetID      uuid.UUID
	SnapshotsCount     int
	DevicePath         string // where the snapshot's content is readable
	OriginalVolume     string
	OriginatingMachine string
	ServiceMachine     string
	ExposedName        string
	ExposedPath        string
	ProviderID         uuid.UUID
	Attributes         vss.Attributes
	Created            time.Time
	Status             vss.SnapshotState

	ProviderName string
	Context      vss.Context
	AutoRelease  bool
	// Consistency is "application", "crash" or "none" (architecture:
	// consistency is recorded), with the reason in ConsistencyReason.
	Consistency       string
	ConsistencyReason string
	SessionID         uuid.UUID
	// LiveSession: the session that created it still runs (set by
	// ListShadows only); its auto-release snapshots belong to it.
	LiveSession bool
}

// ProviderProp is VSS_PROVIDER_PROP.
type ProviderProp struct {
	ProviderID uuid.UUID
	Name       string
	Type       vss.ProviderType
	Version    string
	VersionID  uuid.UUID
	ClassID    uuid.UUID
}

// Object is one element of a Query result (VSS_OBJECT_PROP): exactly one of
// Snapshot and Provider is set, as Type says.
type Object struct {
	Type     vss.ObjectType
	Snapshot *SnapshotProp
	Provider *ProviderProp
}

// Released is what ending a session did (D11).
type Released struct {
	// Aborted: the session's snapshot set creation ended unfinished after
	// PrepareForBackup (DoSnapshotSet failed, AbortBackup, the lease, or
	// this release), so the writers taking part got Abort for it.
	Aborted bool
	// ShutdownWriters are the writer instances sent BackupShutdown.
	ShutdownWriters []uuid.UUID
	// DeletedSnapshots are the auto-release snapshots deleted.
	DeletedSnapshots []uuid.UUID
}

// WriterInfo is one subscribed writer as the Admin service lists it: the
// metadata of its last Identify and its state in the most recent session it
// took part in (D16).
type WriterInfo struct {
	InstanceID    uuid.UUID
	WriterID      uuid.UUID
	Name          string
	InstanceName  string
	Level         vss.AppLevel
	FreezeTimeout time.Duration
	// WMD is the Writer Metadata Document of its most recent Identify,
	// "" if it never answered one. Metadata parses it.
	WMD string

	LastSessionID      uuid.UUID // uuid.Nil: it never took part in a session
	State              vss.WriterState
	Failure            vsserr.HRESULT
	ApplicationHRESULT vsserr.HRESULT
	ApplicationMessage string
	PID                int
	UID                uint32
}

// Metadata parses WMD. It returns nil and no error when the writer has not
// answered Identify yet.
func (w *WriterInfo) Metadata() (*document.WriterMetadata, error) {
	if w.WMD == "" {
		return nil, nil
	}
	return document.ParseWriterMetadata([]byte(w.WMD))
}

// LogEvent is one entry of the daemon's event log.
type LogEvent struct {
	Seq       uint64
	Time      time.Time
	Level     string
	HRESULT   vsserr.HRESULT
	SessionID uuid.UUID
	Message   string
	Fields    map[string]string
}

// decoder turns wire messages into the types above. The daemon is trusted
// to send well-formed GUIDs; if one is not, the first bad one is kept as the
// error of the call rather than silently becoming GUID_NULL, which a caller
// could go on to pass to DeleteSnapshots.
type decoder struct{ err error }

func (d *decoder) guid(s string) uuid.UUID {
	u, err := wire.ParseGUID(s)
	if err != nil && d.err == nil {
		d.err = vsserr.Wrap(vsserr.Unexpected, err, "lvssd sent a malformed GUID")
	}
	return u
}

func (d *decoder) guids(ss []string) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(ss))
	for _, s := range ss {
		out = append(out, d.guid(s))
	}
	return out
}

func (d *decoder) writerStatus(w *v1.WriterStatus) WriterStatus {
	return WriterStatus{
		InstanceID:         d.guid(w.GetInstanceId()),
		WriterID:           d.guid(w.GetWriterId()),
		Name:               w.GetName(),
		InstanceName:       w.GetInstanceName(),
		State:              vss.WriterState(w.GetState()),
		Failure:            vsserr.HRESULT(w.GetFailure()),
		ApplicationHRESULT: vsserr.HRESULT(w.GetApplicationHresult()),
		ApplicationMessage: w.GetApplicationMessage(),
	}
}

func (d *decoder) snapshot(p *v1.SnapshotProp) SnapshotProp {
	s := SnapshotProp{
		SnapshotID:         d.guid(p.GetSnapshotId()),
		SnapshotSetID:      d.guid(p.GetSnapshotSetId()),
		SnapshotsCount:     int(p.GetSnapshotsCount()),
		DevicePath:         p.GetDevicePath(),
		OriginalVolume:     p.GetOriginalVolume(),
		OriginatingMachine: p.GetOriginatingMachine(),
		ServiceMachine:     p.GetServiceMachine(),
		ExposedName:        p.GetExposedName(),
		ExposedPath:        p.GetExposedPath(),
		ProviderID:         d.guid(p.GetProviderId()),
		Attributes:         vss.Attributes(p.GetAttributes()),
		Status:             vss.SnapshotState(p.GetStatus()),
		ProviderName:       p.GetProviderName(),
		Context:            vss.Context(p.GetContext()),
		AutoRelease:        p.GetAutoRelease(),
		Consistency:        p.GetConsistency(),
		ConsistencyReason:  p.GetConsistencyReason(),
		SessionID:          d.guid(p.GetSessionId()),
		LiveSession:        p.GetLiveSession(),
	}
	if n := p.GetCreatedUnixNano(); n != 0 {
		s.Created = time.Unix(0, n)
	}
	return s
}

func (d *decoder) provider(p *v1.ProviderProp) ProviderProp {
	return ProviderProp{
		ProviderID: d.guid(p.GetProviderId()),
		Name:       p.GetName(),
		Type:       vss.ProviderType(p.GetType()),
		Version:    p.GetVersion(),
		VersionID:  d.guid(p.GetVersionId()),
		ClassID:    d.guid(p.GetClassId()),
	}
}

func (d *decoder) writerInfo(w *v1.WriterInfo) WriterInfo {
	return WriterInfo{
		InstanceID:         d.guid(w.GetInstanceId()),
		WriterID:           d.guid(w.GetWriterId()),
		Name:               w.GetName(),
		InstanceName:       w.GetInstanceName(),
		Level:              vss.AppLevel(w.GetLevel()),
		FreezeTimeout:      time.Duration(w.GetFreezeTimeoutMs()) * time.Millisecond,
		WMD:                w.GetWmdXml(),
		LastSessionID:      d.guid(w.GetLastSessionId()),
		State:              vss.WriterState(w.GetState()),
		Failure:            vsserr.HRESULT(w.GetFailure()),
		ApplicationHRESULT: vsserr.HRESULT(w.GetApplicationHresult()),
		ApplicationMessage: w.GetApplicationMessage(),
		PID:                int(w.GetPid()),
		UID:                w.GetUid(),
	}
}

func (d *decoder) logEvent(e *v1.LogEvent) LogEvent {
	ev := LogEvent{
		Seq:       e.GetSeq(),
		Level:     e.GetLevel(),
		HRESULT:   vsserr.HRESULT(e.GetHresult()),
		SessionID: d.guid(e.GetSessionId()),
		Message:   e.GetMessage(),
		Fields:    e.GetFields(),
	}
	if n := e.GetTimeUnixNano(); n != 0 {
		ev.Time = time.Unix(0, n)
	}
	return ev
}
