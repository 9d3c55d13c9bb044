package client

import (
	"context"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// EventFilter selects entries of the daemon's event log (QueryEvents). Zero
// fields do not filter; an entry must pass every one that is set.
type EventFilter struct {
	AfterSeq uint64 // only entries with a larger sequence number
	Limit    int    // at most this many (<= 0: all)
	// Newest: with a Limit, the newest Limit matching entries rather than
	// the first ones after AfterSeq. Entries come oldest first either way.
	Newest    bool
	Since     time.Time // at or after this time
	SessionID uuid.UUID
	// Writer is a writer's name (any case) or instance ID, as the entry's
	// "writer" or "instance" field names it.
	Writer string
	// MinLevel is "info", "warn" or "error": that level and above.
	MinLevel string
	HRESULT  vsserr.HRESULT // only entries with this code
}

// QueryEvents returns the event-log entries f selects, oldest first, and
// the sequence number of the log's newest entry when lvssd read it (0: the
// log is empty). To follow the log, pass as AfterSeq the last Seq seen, or
// that newest sequence number when fewer than Limit entries came back.
func (c *Conn) QueryEvents(ctx context.Context, f EventFilter) ([]LogEvent, uint64, error) {
	req := &v1.ListEventsRequest{AfterSeq: f.AfterSeq, Limit: int32(min(max(f.Limit, 0), 1<<31-1)), Newest: f.Newest,
		Writer: f.Writer, MinLevel: f.MinLevel, Hresult: uint32(f.HRESULT)}
	if !f.Since.IsZero() {
		req.SinceUnixNano = f.Since.UnixNano()
	}
	if f.SessionID != uuid.Nil {
		req.SessionId = f.SessionID.String()
	}
	resp, err := c.admin.ListEvents(ctx, req)
	if err != nil {
		return nil, 0, wire.FromGRPC(err)
	}
	var d decoder
	out := make([]LogEvent, 0, len(resp.GetEvents()))
	for _, e := range resp.GetEvents() {
		out = append(out, d.logEvent(e))
	}
	return out, resp.GetLastSeq(), d.err
}

// DaemonInfo is lvssd itself.
type DaemonInfo struct {
	Version, Commit, BuildDate string
	Dirty                      bool // built from a tree with uncommitted changes
	PID                        int
	Started                    time.Time
	Now                        time.Time // lvssd's clock when it answered
	ConfigFile                 string    // "": the defaults apply
	Socket, StateDir, RunDir   string
}

// Uptime is how long lvssd had run when it answered.
func (d DaemonInfo) Uptime() time.Duration { return d.Now.Sub(d.Started) }

// SessionInfo is one requester session in progress.
type SessionInfo struct {
	SessionID uuid.UUID
	PID       int    // the requester's process
	UID       uint32 // and user
	Command   string // its command line, "" when unknown
	State     string // lvss's session state: new, init, meta, set, prepared, snapped, ...
	Context   vss.Context
	SetID     uuid.UUID // uuid.Nil before StartSnapshotSet
	Operation string    // the asynchronous call running, "" when none
	Started   time.Time
	Volumes   int // volumes added to its snapshot set
}

// CreationLock is the holder of the system-wide lock of the snapshot set
// being created, and its lease (D7).
type CreationLock struct {
	SessionID   uuid.UUID
	SetID       uuid.UUID
	Since       time.Time
	LeaseExpiry time.Time
}

// FrozenFilesystem is a filesystem a freeze guard holds right now.
type FrozenFilesystem struct {
	MountPoint, Device, Type string
	Paths                    []string // the volumes it is frozen for
	Since                    time.Time
	GuardPID                 int
	// GuardRunning is false when the guard that froze it is gone: lvssd
	// thaws it when it reaps that guard or at its next start.
	GuardRunning bool
}

// VolumeSnapshots is one volume's snapshots against the cap and the space
// where they are kept.
type VolumeSnapshots struct {
	Volume      string
	Snapshots   int
	Provider    string // of the newest snapshot
	SnapshotDir string // where that provider keeps them; "" when it cannot tell
	FreeBytes   uint64
	TotalBytes  uint64
	SpaceError  string // why the space is unknown
}

// ProviderStorage is where a provider keeps its snapshots, when that is
// one place.
type ProviderStorage struct {
	ProviderID  uuid.UUID
	Name        string
	NeedsFreeze bool
	SnapshotDir string // "": on each volume (btrfs), or wherever its commands put them (exec)
	FreeBytes   uint64
	TotalBytes  uint64
	SpaceError  string
}

// Status is what lvssd is doing right now (lvss status).
type Status struct {
	Daemon                DaemonInfo
	Sessions              []SessionInfo
	CreationLock          *CreationLock // nil: no snapshot set is being created
	Frozen                []FrozenFilesystem
	Writers               []WriterInfo // without WMD
	MaxSnapshotsPerVolume int
	Volumes               []VolumeSnapshots
	Providers             []ProviderStorage
	RecentErrors          []LogEvent // oldest first
	Recovery              Recovery
}

// Recovery is what lvssd did at start about what an earlier lvssd left
// unfinished (docs/reliability.md).
type Recovery struct {
	At      time.Time
	Took    time.Duration
	Actions []RecoveryAction
}

// RecoveryAction is one thing recovery did or found: Action is one of
// thawed, revert-finished, revert-undone, set-aborted, snapshot-deleted,
// auto-release-deleted, exposure-undone, share-undone, share-removed,
// share-gone, share-restored, restore-cut, entry-removed, entry-kept,
// snapshot-adopted, snapshot-unknown, failed.
type RecoveryAction struct {
	Action, Object, Volume, Detail string
	Error                          vsserr.HRESULT // 0: it succeeded
	ErrorMessage                   string
}

// Status asks lvssd what it is doing, with its errors latest error events
// (0: lvssd's default of 10; < 0: none). lvssd answers without waiting for
// any writer, provider or frozen filesystem.
func (c *Conn) Status(ctx context.Context, errors int) (*Status, error) {
	resp, err := c.admin.Status(ctx, &v1.StatusRequest{Errors: int32(max(min(errors, 1<<31-1), -1))})
	if err != nil {
		return nil, wire.FromGRPC(err)
	}
	var d decoder
	st := &Status{Daemon: daemonInfo(resp.GetDaemon()), MaxSnapshotsPerVolume: int(resp.GetMaxSnapshotsPerVolume())}
	for _, s := range resp.GetSessions() {
		st.Sessions = append(st.Sessions, SessionInfo{SessionID: d.guid(s.GetSessionId()), PID: int(s.GetPid()), UID: s.GetUid(),
			Command: s.GetCommand(), State: s.GetState(), Context: vss.Context(s.GetContext()), SetID: d.guid(s.GetSnapshotSetId()),
			Operation: s.GetOperation(), Started: fromNano(s.GetStartedUnixNano()), Volumes: int(s.GetVolumes())})
	}
	if l := resp.GetCreationLock(); l != nil {
		st.CreationLock = &CreationLock{SessionID: d.guid(l.GetSessionId()), SetID: d.guid(l.GetSnapshotSetId()),
			Since: fromNano(l.GetSinceUnixNano()), LeaseExpiry: fromNano(l.GetLeaseExpiresUnixNano())}
	}
	for _, f := range resp.GetFrozen() {
		st.Frozen = append(st.Frozen, FrozenFilesystem{MountPoint: f.GetMountPoint(), Device: f.GetDevice(), Type: f.GetType(),
			Paths: f.GetPaths(), Since: fromNano(f.GetSinceUnixNano()), GuardPID: int(f.GetGuardPid()), GuardRunning: f.GetGuardRunning()})
	}
	for _, w := range resp.GetWriters() {
		st.Writers = append(st.Writers, d.writerInfo(w))
	}
	for _, v := range resp.GetVolumes() {
		st.Volumes = append(st.Volumes, VolumeSnapshots{Volume: v.GetVolume(), Snapshots: int(v.GetSnapshots()), Provider: v.GetProvider(),
			SnapshotDir: v.GetSnapshotDir(), FreeBytes: v.GetFreeBytes(), TotalBytes: v.GetTotalBytes(), SpaceError: v.GetSpaceError()})
	}
	for _, p := range resp.GetProviders() {
		st.Providers = append(st.Providers, ProviderStorage{ProviderID: d.guid(p.GetProviderId()), Name: p.GetName(),
			NeedsFreeze: p.GetNeedsFreeze(), SnapshotDir: p.GetSnapshotDir(), FreeBytes: p.GetFreeBytes(), TotalBytes: p.GetTotalBytes(),
			SpaceError: p.GetSpaceError()})
	}
	for _, e := range resp.GetRecentErrors() {
		st.RecentErrors = append(st.RecentErrors, d.logEvent(e))
	}
	if r := resp.GetRecovery(); r != nil {
		st.Recovery = Recovery{At: fromNano(r.GetAtUnixNano()), Took: time.Duration(r.GetTookNs())}
		for _, a := range r.GetActions() {
			st.Recovery.Actions = append(st.Recovery.Actions, RecoveryAction{Action: a.GetAction(), Object: a.GetObject(),
				Volume: a.GetVolume(), Detail: a.GetDetail(), Error: wire.Code(a.GetError()), ErrorMessage: a.GetError().GetMessage()})
		}
	}
	return st, d.err
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func daemonInfo(d *v1.DaemonStatus) DaemonInfo {
	return DaemonInfo{Version: d.GetVersion(), Commit: d.GetCommit(), BuildDate: d.GetBuildDate(), Dirty: d.GetDirty(),
		PID: int(d.GetPid()), Started: fromNano(d.GetStartedUnixNano()), Now: fromNano(d.GetNowUnixNano()),
		ConfigFile: d.GetConfigFile(), Socket: d.GetSocket(), StateDir: d.GetStateDir(), RunDir: d.GetRunDir()}
}

// Severity is how bad a doctor Finding is: "ok", "info", "warning" or
// "error". Only "error" means a backup that needs it fails.
type Severity string

// The severities, mildest first.
const (
	SeverityOK      Severity = "ok"
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Finding is one result of a doctor check.
type Finding struct {
	Check    string // the check's stable name, e.g. "run_dir.tmpfs"
	Severity Severity
	Subject  string // what it is about: a path, a writer
	Message  string
	Fix      string // what to do about it; "" when nothing
}

// ProviderVerdict is whether one provider would take a volume, and why.
type ProviderVerdict struct {
	Name       string
	ProviderID uuid.UUID
	Supported  bool
	Reason     string
}

// VolumeDiagnosis is one path lvssd could be asked to snapshot, as lvssd
// sees it.
type VolumeDiagnosis struct {
	Path, MountPoint, Device, Type, Source string
	ReadOnly                               bool
	Mounted                                bool   // Path is a mount point
	Configured                             bool   // a provider's configuration names it
	Freeze                                 string // "supported", "unsupported", "unknown"; "" when not looked at
	FreezeReason                           string
	Provider                               string // the provider lvssd would choose; "" when none
	Providers                              []ProviderVerdict
	SnapshotDir                            string
	FreeBytes, TotalBytes                  uint64
	Snapshots                              int
	Findings                               []Finding
}

// Diagnosis is lvssd's preflight of its host (lvss doctor).
type Diagnosis struct {
	Daemon DaemonInfo
	// The caller as lvssd sees it, and the access rule that lets it in.
	CallerUID, CallerGID uint32
	CallerGroups         []uint32
	CallerPID            int
	CallerAllowedBy      string
	Findings             []Finding // directories and writers
	Volumes              []VolumeDiagnosis
	// MaxSnapshotsPerVolume is limits.max_snapshots_per_volume.
	MaxSnapshotsPerVolume int
}

var severities = map[v1.Severity]Severity{v1.Severity_SEVERITY_OK: SeverityOK, v1.Severity_SEVERITY_INFO: SeverityInfo,
	v1.Severity_SEVERITY_WARNING: SeverityWarning, v1.Severity_SEVERITY_ERROR: SeverityError}

func findings(fs []*v1.Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		sev, ok := severities[f.GetSeverity()]
		if !ok {
			sev = SeverityError // a severity this client does not know: do not pass it as fine
		}
		out = append(out, Finding{Check: f.GetCheck(), Severity: sev, Subject: f.GetSubject(), Message: f.GetMessage(), Fix: f.GetFix()})
	}
	return out
}

// Doctor asks lvssd for its preflight of the host. It changes nothing on
// the host, and may take a few seconds: lvssd looks at every mounted
// filesystem.
func (c *Conn) Doctor(ctx context.Context) (*Diagnosis, error) {
	resp, err := c.admin.Doctor(ctx, &v1.DoctorRequest{})
	if err != nil {
		return nil, wire.FromGRPC(err)
	}
	var d decoder
	out := &Diagnosis{Daemon: daemonInfo(resp.GetDaemon()), CallerUID: resp.GetCallerUid(), CallerGID: resp.GetCallerGid(),
		CallerGroups: resp.GetCallerGroups(), CallerPID: int(resp.GetCallerPid()), CallerAllowedBy: resp.GetCallerAllowedBy(),
		Findings: findings(resp.GetFindings()), MaxSnapshotsPerVolume: int(resp.GetMaxSnapshotsPerVolume())}
	for _, v := range resp.GetVolumes() {
		vd := VolumeDiagnosis{Path: v.GetPath(), MountPoint: v.GetMountPoint(), Device: v.GetDevice(), Type: v.GetType(), Source: v.GetSource(),
			ReadOnly: v.GetReadOnly(), Mounted: v.GetMounted(), Configured: v.GetConfigured(), Freeze: v.GetFreeze(), FreezeReason: v.GetFreezeReason(),
			Provider: v.GetProvider(), SnapshotDir: v.GetSnapshotDir(), FreeBytes: v.GetFreeBytes(), TotalBytes: v.GetTotalBytes(),
			Snapshots: int(v.GetSnapshots()), Findings: findings(v.GetFindings())}
		for _, p := range v.GetProviders() {
			vd.Providers = append(vd.Providers, ProviderVerdict{Name: p.GetName(), ProviderID: d.guid(p.GetProviderId()),
				Supported: p.GetSupported(), Reason: p.GetReason()})
		}
		out.Volumes = append(out.Volumes, vd)
	}
	return out, d.err
}
