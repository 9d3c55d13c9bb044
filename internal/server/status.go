package server

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/freeze"
	"github.com/lvss/lvss/internal/preflight"
	"github.com/lvss/lvss/internal/version"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/provider"
)

// statusCallTimeout bounds each look status takes at a provider or a
// filesystem (where snapshots are kept, its free space): a filesystem that
// does not answer leaves its figures empty instead of holding the answer.
const statusCallTimeout = 2 * time.Second

// defaultStatusErrors is how many recent errors Status returns when the
// request does not say.
const defaultStatusErrors = 10

func (s *Server) daemonStatus(now time.Time) *v1.DaemonStatus {
	vi := version.Get()
	d := s.daemon
	return &v1.DaemonStatus{Version: vi.Version, Commit: vi.Commit, BuildDate: vi.Date, Dirty: vi.Dirty,
		Pid: int32(os.Getpid()), StartedUnixNano: d.Started.UnixNano(), NowUnixNano: now.UnixNano(),
		ConfigFile: d.ConfigFile, Socket: d.Socket, StateDir: d.StateDir, RunDir: d.RunDir}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// commandLine is a process's command line as ps shows it, "" when it is
// gone or hidden. lvssd runs in the host's PID namespace, so a requester's
// SO_PEERCRED pid names it here.
func commandLine(pid int32) string {
	if pid <= 0 {
		return ""
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/cmdline")
	cmd := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if err != nil || cmd == "" {
		b, _ = os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/comm")
		cmd = strings.TrimSpace(string(b))
	}
	if len(cmd) > 256 {
		cmd = cmd[:256] + "…"
	}
	return cmd
}

// Status reports what lvssd does right now. Everything comes from copies
// taken under short locks, the catalog (read-only transactions, which no
// frozen filesystem holds up) and the freeze guards' records in the run
// dir (a tmpfs); looks at filesystems have a deadline each.
func (a *admin) Status(ctx context.Context, r *v1.StatusRequest) (*v1.StatusResponse, error) {
	c := a.s.c
	opt := c.Options()
	now := time.Now()
	out := &v1.StatusResponse{Daemon: a.s.daemonStatus(now), MaxSnapshotsPerVolume: int32(opt.MaxSnapshotsPerVolume)}

	sessions, lock := c.Activity()
	for _, si := range sessions {
		out.Sessions = append(out.Sessions, &v1.SessionStatus{SessionId: si.ID.String(), Pid: si.Peer.PID, Uid: si.Peer.UID,
			Command: commandLine(si.Peer.PID), State: si.State.String(), Context: int32(si.Context), SnapshotSetId: guidOrEmpty(si.SetID),
			Operation: string(si.Operation), StartedUnixNano: unixNano(si.Started), Volumes: int32(si.Volumes)})
	}
	if lock != nil {
		out.CreationLock = &v1.CreationLock{SessionId: lock.Session.String(), SnapshotSetId: guidOrEmpty(lock.SetID),
			SinceUnixNano: unixNano(lock.Since), LeaseExpiresUnixNano: unixNano(lock.LeaseEnds)}
	}
	if a.s.daemon.RunDir != "" {
		held, err := freeze.Held(a.s.daemon.RunDir)
		if err != nil {
			return nil, wire.ToGRPC(c.Unexpected(ctx, uuid.Nil, "Status: read the freeze records", err))
		}
		for _, h := range held {
			out.Frozen = append(out.Frozen, &v1.FrozenFilesystem{MountPoint: h.MountPoint, Device: h.Device, Type: h.Type,
				Paths: h.Paths, SinceUnixNano: unixNano(h.Since), GuardPid: int32(h.GuardPid), GuardRunning: h.GuardRunning})
		}
	}
	for _, w := range c.ListWriters() {
		out.Writers = append(out.Writers, writerInfo(w, false))
	}
	if opt.Catalog != nil {
		counts, err := opt.Catalog.VolumeCounts()
		if err != nil {
			return nil, wire.ToGRPC(c.Unexpected(ctx, uuid.Nil, "Status: count snapshots", err))
		}
		for _, vc := range counts {
			vs := &v1.VolumeSnapshots{Volume: vc.Volume, Snapshots: int32(vc.Snapshots), Provider: vc.Newest.ProviderName}
			if p, err := opt.Providers.ByID(vc.Newest.ProviderID); err == nil {
				vs.SnapshotDir = snapshotDir(ctx, p, vc.Volume)
			}
			if vs.SnapshotDir != "" {
				vs.FreeBytes, vs.TotalBytes, vs.SpaceError = space(ctx, vs.SnapshotDir)
			}
			out.Volumes = append(out.Volumes, vs)
		}
	}
	for _, p := range opt.Providers.All() {
		info := p.Info()
		ps := &v1.ProviderStorage{ProviderId: info.ID.String(), Name: info.Name, NeedsFreeze: info.NeedsFreeze}
		if d, ok := p.(interface{ SnapshotDir() string }); ok {
			ps.SnapshotDir = d.SnapshotDir()
			ps.FreeBytes, ps.TotalBytes, ps.SpaceError = space(ctx, ps.SnapshotDir)
		}
		out.Providers = append(out.Providers, ps)
	}
	n := int(r.Errors)
	if n == 0 {
		n = defaultStatusErrors
	}
	errs, err := c.RecentErrors(n)
	if err != nil {
		return nil, wire.ToGRPC(c.Unexpected(ctx, uuid.Nil, "Status: read the event log", err))
	}
	for _, e := range errs {
		out.RecentErrors = append(out.RecentErrors, logEvent(e))
	}
	rec := c.Recovery()
	out.Recovery = &v1.RecoveryReport{AtUnixNano: rec.At.UnixNano(), TookNs: int64(rec.Took)}
	for _, a := range rec.Actions {
		ra := &v1.RecoveryAction{Action: a.What, Object: a.Object, Volume: a.Volume, Detail: a.Detail}
		if a.Err != nil {
			ra.Error = wire.StatusOf(a.Err)
		}
		out.Recovery.Actions = append(out.Recovery.Actions, ra)
	}
	return out, nil
}

// snapshotDir asks the provider where it keeps a volume's snapshots,
// within statusCallTimeout; "" when it cannot tell.
func snapshotDir(ctx context.Context, p provider.Provider, volume string) string {
	d, ok := p.(provider.Diagnoser)
	if !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, statusCallTimeout)
	defer cancel()
	ch := make(chan string, 1)
	go func() { ch <- d.Diagnose(ctx, volume).SnapshotDir }()
	select {
	case dir := <-ch:
		return dir
	case <-ctx.Done():
		return ""
	}
}

func space(ctx context.Context, dir string) (free, total uint64, why string) {
	free, total, err := preflight.Space(ctx, statusCallTimeout, dir)
	if err != nil {
		return 0, 0, err.Error()
	}
	return free, total, ""
}

func logEvent(e coordinator.LogEntry) *v1.LogEvent {
	return &v1.LogEvent{Seq: e.Seq, TimeUnixNano: e.Time.UnixNano(), Level: string(e.Level),
		Hresult: uint32(e.Code), SessionId: guidOrEmpty(e.SessionID), Message: e.Message, Fields: e.Fields}
}

func writerInfo(w coordinator.WriterInfo, withWMD bool) *v1.WriterInfo {
	wi := &v1.WriterInfo{InstanceId: w.InstanceID.String(), WriterId: w.Identity.ClassID.String(),
		Name: w.Identity.Name, InstanceName: w.Identity.InstanceName, Level: int32(w.Identity.Level),
		FreezeTimeoutMs: uint32(w.Window / time.Millisecond), LastSessionId: guidOrEmpty(w.LastSession),
		State: int32(w.State), Failure: uint32(w.Failure), ApplicationHresult: uint32(w.AppHRESULT),
		ApplicationMessage: w.AppMessage, Pid: w.Peer.PID, Uid: w.Peer.UID}
	if withWMD {
		wi.WmdXml = string(w.WMD)
	}
	return wi
}

// Doctor is lvssd's half of lvss doctor (package preflight), with the
// caller as lvssd sees it and the subscribed writers.
func (a *admin) Doctor(ctx context.Context, _ *v1.DoctorRequest) (*v1.DoctorResponse, error) {
	c := a.s.c
	opt := c.Options()
	p := peerOf(ctx)
	out := &v1.DoctorResponse{Daemon: a.s.daemonStatus(time.Now()), CallerUid: p.UID, CallerGid: p.GID,
		CallerGroups: p.Groups, CallerPid: p.PID, CallerAllowedBy: a.s.access.AllowedBy(p), MaxSnapshotsPerVolume: int32(opt.MaxSnapshotsPerVolume)}
	counts := map[string]int{}
	if opt.Catalog != nil {
		vcs, err := opt.Catalog.VolumeCounts()
		if err != nil {
			return nil, wire.ToGRPC(c.Unexpected(ctx, uuid.Nil, "Doctor: count snapshots", err))
		}
		for _, vc := range vcs {
			counts[vc.Volume] = vc.Snapshots
		}
	}
	rep := preflight.Run(ctx, preflight.Input{Providers: opt.Providers.All(), Snapshots: counts,
		MaxSnapshots: opt.MaxSnapshotsPerVolume, RunDir: a.s.daemon.RunDir, StateDir: a.s.daemon.StateDir})
	for _, f := range append(rep.Findings, writerFindings(c.ListWriters())...) {
		out.Findings = append(out.Findings, finding(f))
	}
	for _, v := range rep.Volumes {
		vd := &v1.VolumeDiagnosis{Path: v.Path, MountPoint: v.MountPoint, Device: v.Device, Type: v.Type, Source: v.Source,
			ReadOnly: v.ReadOnly, Mounted: v.Mounted, Configured: v.Configured, Freeze: string(v.Freeze), FreezeReason: v.FreezeReason,
			Provider: v.Provider, SnapshotDir: v.SnapshotDir, FreeBytes: v.Free, TotalBytes: v.Total, Snapshots: int32(v.Snapshots)}
		for _, vr := range v.Verdicts {
			vd.Providers = append(vd.Providers, &v1.ProviderVerdict{Name: vr.Provider.Name, ProviderId: vr.Provider.ID.String(),
				Supported: vr.Supported, Reason: vr.Reason})
		}
		for _, f := range v.Findings {
			vd.Findings = append(vd.Findings, finding(f))
		}
		out.Volumes = append(out.Volumes, vd)
	}
	return out, nil
}

func finding(f preflight.Finding) *v1.Finding {
	sev := map[preflight.Severity]v1.Severity{preflight.OK: v1.Severity_SEVERITY_OK, preflight.Info: v1.Severity_SEVERITY_INFO,
		preflight.Warning: v1.Severity_SEVERITY_WARNING, preflight.Error: v1.Severity_SEVERITY_ERROR}[f.Severity]
	return &v1.Finding{Check: f.Check, Severity: sev, Subject: f.Subject, Message: f.Message, Fix: f.Fix}
}

// writerFindings reports each subscribed writer's state and last failure.
//
// TODO(writers as systemd instances): once lvssd knows which writers are
// configured to run (lvss-writer@ units), a configured writer that is not
// subscribed is an error here ("its application is not reachable"); today
// lvssd knows only the writers that subscribed.
func writerFindings(ws []coordinator.WriterInfo) []preflight.Finding {
	if len(ws) == 0 {
		return []preflight.Finding{{Check: "writers.subscribed", Severity: preflight.Info, Subject: "writers",
			Message: "no writer is subscribed: snapshots are crash-consistent at best",
			Fix:     "start the writers of the applications to back up (lvss-writer, docs/writers.md)"}}
	}
	var out []preflight.Finding
	for _, w := range ws {
		name := w.Identity.Name
		if w.Identity.InstanceName != "" {
			name += " (" + w.Identity.InstanceName + ")"
		}
		f := preflight.Finding{Check: "writer.state", Severity: preflight.OK, Subject: name,
			Message: "subscribed (pid " + strconv.Itoa(int(w.Peer.PID)) + "), " + w.State.String()}
		if w.LastSession != uuid.Nil {
			f.Message += " after session " + w.LastSession.String()
		}
		if w.State.Failed() || w.Failure.Failed() {
			f.Severity = preflight.Warning
			f.Message += ", failed with " + w.Failure.String()
			if w.AppMessage != "" {
				f.Message += ": " + w.AppMessage
			}
			f.Fix = "see the writer's log and lvss events --writer " + w.Identity.Name
		}
		out = append(out, f)
	}
	return out
}
