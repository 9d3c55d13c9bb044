package coordinator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// MaxVolumes is the per-set volume limit (§1.5).
const MaxVolumes = 64

// WriterStatus is one writer's status in a session (GetWriterStatusEx).
type WriterStatus struct {
	InstanceID   uuid.UUID
	ClassID      uuid.UUID
	Name         string
	InstanceName string
	State        vss.WriterState
	Failure      vsserr.HRESULT
	AppHRESULT   vsserr.HRESULT
	AppMessage   string
}

// sessionWriter is a writer as one session sees it.
type sessionWriter struct {
	w   *WriterHandle
	wmd *document.WriterMetadata

	mu          sync.Mutex
	st          WriterStatus
	participant bool
	prepared    bool // PrepareForSnapshot succeeded and nothing released it yet
	frozen      bool // Freeze succeeded, Thaw/Abort not yet sent
	aborted     bool // Abort sent in the current operation
	timedOut    bool // the Freeze→Thaw window expired
	froze       bool // froze and thawed in time (for consistency)
}

func (sw *sessionWriter) status() WriterStatus { sw.mu.Lock(); defer sw.mu.Unlock(); return sw.st }

func (sw *sessionWriter) setState(s vss.WriterState) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if !sw.st.State.Failed() { // a failed writer stays failed for the session (§3.3)
		sw.st.State = s
	}
}

// fail records a writer failure at an event, unless it already failed.
func (sw *sessionWriter) fail(ev EventType, code, appHR vsserr.HRESULT, msg string) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.st.State.Failed() {
		return
	}
	sw.st.State = ev.failedState()
	sw.st.Failure, sw.st.AppHRESULT, sw.st.AppMessage = code, appHR, msg
}

func (sw *sessionWriter) failed() bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.st.State.Failed()
}

// volumeEntry is one AddToSnapshotSet.
type volumeEntry struct {
	snapshotID uuid.UUID
	volume     string
	prov       provider.Provider
}

// Session is one IVssBackupComponents object.
type Session struct {
	c    *Coordinator
	id   uuid.UUID
	peer Peer

	mu             sync.Mutex
	state          State
	context        vss.Context
	contextSet     bool
	backupStateSet bool
	bcd            *document.BackupComponents
	allowMode      bool
	allowClasses   map[uuid.UUID]bool
	denyClasses    map[uuid.UUID]bool
	denyInstances  map[uuid.UUID]bool
	gathered       []*sessionWriter
	metadataFreed  bool
	statusList     []WriterStatus
	setID          uuid.UUID
	volumes        []volumeEntry
	prepareIssued  bool
	creating       bool // holds the creation lock
	abortSent      bool // writers got Abort for this creation
	snapshots      []catalog.Snapshot
	asyncs         map[uint64]*Async
	nextAsync      uint64
	pending        *Async // running async op
	opCancel       context.CancelFunc
	opDone         chan struct{}
	releasing      chan struct{} // closed when Release has finished
}

func newSession(c *Coordinator, peer Peer) *Session {
	return &Session{c: c, id: uuid.New(), peer: peer, asyncs: map[uint64]*Async{},
		allowClasses: map[uuid.UUID]bool{}, denyClasses: map[uuid.UUID]bool{}, denyInstances: map[uuid.UUID]bool{}}
}

// ID is the session's GUID (GetSessionId).
func (s *Session) ID() uuid.UUID { return s.id }

// State reports the current state.
func (s *Session) State() State { s.mu.Lock(); defer s.mu.Unlock(); return s.state }

func (s *Session) setIDForLock() uuid.UUID { s.mu.Lock(); defer s.mu.Unlock(); return s.setID }

// check enforces the D2 table and the pending-async rule. Caller holds s.mu.
func (s *Session) check(m Method) error {
	if s.state == StReleased {
		return vsserr.New(vsserr.BadState, "%s: the session was released", m)
	}
	if s.pending != nil && !readOnly[m] {
		return vsserr.New(vsserr.BadState, "%s while an asynchronous operation is pending (only Wait, QueryStatus, Cancel and read-only calls are allowed)", m)
	}
	if !allowed[m][s.state] {
		return vsserr.New(vsserr.BadState, "%s is not allowed in state %s", m, s.state)
	}
	return nil
}

func badState(format string, args ...any) error { return vsserr.New(vsserr.BadState, format, args...) }

// InitializeForBackup starts a backup session with an empty BCD, or with a
// saved one (bcdXML non-empty).
func (s *Session) InitializeForBackup(bcdXML string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MInitializeForBackup); err != nil {
		return err
	}
	bcd := &document.BackupComponents{Version: "1.2"}
	if strings.TrimSpace(bcdXML) != "" {
		b, err := document.ParseBackupComponents([]byte(bcdXML))
		if err != nil {
			return err
		}
		bcd = b
	}
	s.bcd, s.state, s.context = bcd, StInit, vss.CtxBackup
	return nil
}

// InitializeForRestore loads a saved BCD for a restore session. The
// restore sequence itself comes later (roadmap); backup-only calls are
// VSS_E_BAD_STATE in a restore session.
func (s *Session) InitializeForRestore(bcdXML string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MInitializeForRestore); err != nil {
		return err
	}
	b, err := document.ParseBackupComponents([]byte(bcdXML))
	if err != nil {
		return err
	}
	s.bcd, s.state = b, StRestoreInit
	return nil
}

// SetContext chooses the context once (§1.4).
func (s *Session) SetContext(c vss.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MSetContext); err != nil {
		return err
	}
	if s.contextSet {
		return badState("SetContext was already called")
	}
	// VSS_CTX_ALL is valid here: it is how administrative calls (Query,
	// DeleteSnapshots) see every context. Creation refuses it.
	if !c.Valid() {
		return vsserr.New(vsserr.InvalidArg, "context %s (0x%X) is not a snapshot context", c, uint32(c))
	}
	s.context, s.contextSet = c, true
	return nil
}

// SetBackupState records the backup's settings in the BCD.
func (s *Session) SetBackupState(selectComponents, bootable bool, bt vss.BackupType, partial bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MSetBackupState); err != nil {
		return err
	}
	if !bt.Valid() {
		return vsserr.New(vsserr.InvalidArg, "backup type %d is not a VSS_BACKUP_TYPE", bt)
	}
	s.bcd.SelectComponents, s.bcd.BootableSystemStateBackup, s.bcd.BackupType, s.bcd.PartialFileSupport = selectComponents, bootable, bt, partial
	s.backupStateSet = true
	return nil
}

// EnableWriterClasses switches to (or extends) the allow list.
func (s *Session) EnableWriterClasses(ids []uuid.UUID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MEnableWriterClasses); err != nil {
		return err
	}
	if !s.allowMode {
		s.allowMode = true
		s.denyClasses = map[uuid.UUID]bool{} // an Enable after Disables discards the deny list
	}
	for _, id := range ids {
		s.allowClasses[id] = true
	}
	return nil
}

// DisableWriterClasses adds to the deny list, or removes from the allow list.
func (s *Session) DisableWriterClasses(ids []uuid.UUID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MDisableWriterClasses); err != nil {
		return err
	}
	for _, id := range ids {
		if s.allowMode {
			delete(s.allowClasses, id)
		} else {
			s.denyClasses[id] = true
		}
	}
	return nil
}

// DisableWriterInstances blocks single writer instances.
func (s *Session) DisableWriterInstances(ids []uuid.UUID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MDisableWriterInstances); err != nil {
		return err
	}
	for _, id := range ids {
		s.denyInstances[id] = true
	}
	return nil
}

func (s *Session) excluded(w *WriterHandle) bool {
	if s.denyInstances[w.InstanceID] {
		return true
	}
	if s.allowMode {
		return !s.allowClasses[w.Identity.ClassID]
	}
	return s.denyClasses[w.Identity.ClassID]
}

// GatherWriterMetadata sends Identify to every writer not filtered out. In
// a writerless context no event is sent (the rule: writerless
// contexts send writers no events); the metadata of each writer's last
// Identify is returned instead.
func (s *Session) GatherWriterMetadata() (*Async, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MGatherWriterMetadata); err != nil {
		return nil, err
	}
	var targets []*WriterHandle
	for _, w := range s.c.subscribed() {
		if !s.excluded(w) {
			targets = append(targets, w)
		}
	}
	writers := s.context.Writers()
	return s.startAsync(MGatherWriterMetadata, func(ctx context.Context) error {
		got := make([]*sessionWriter, len(targets))
		var wg sync.WaitGroup
		for i, w := range targets {
			if !writers {
				w.mu.Lock()
				md := w.wmd
				w.mu.Unlock()
				if md != nil {
					got[i] = &sessionWriter{w: w, wmd: md.Clone(), st: s.initialStatus(w)}
				}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				md, err := s.c.identify(ctx, w, s.id)
				if err != nil {
					// Writers failing Identify simply do not appear (§2.1).
					s.c.event(ctx, "warn", vsserr.Code(err), s.id, "writer failed Identify and is left out", "writer", w.Identity.Name, "error", err.Error())
					return
				}
				got[i] = &sessionWriter{w: w, wmd: md, st: s.initialStatus(w)}
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, sw := range got {
			if sw != nil {
				s.gathered = append(s.gathered, sw)
			}
		}
		s.state = StMeta
		return nil
	}), nil
}

func (s *Session) initialStatus(w *WriterHandle) WriterStatus {
	return WriterStatus{InstanceID: w.InstanceID, ClassID: w.Identity.ClassID, Name: w.Identity.Name,
		InstanceName: w.Identity.InstanceName, State: vss.WSStable}
}

// WriterMetadata is one gathered WMD.
type WriterMetadata struct {
	InstanceID uuid.UUID
	XML        []byte
}

// GetWriterMetadata returns the gathered WMDs in index order.
func (s *Session) GetWriterMetadata() ([]WriterMetadata, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MGetWriterMetadata); err != nil {
		return nil, err
	}
	if s.metadataFreed {
		return nil, nil
	}
	out := make([]WriterMetadata, 0, len(s.gathered))
	for _, sw := range s.gathered {
		x, err := sw.wmd.Marshal()
		if err != nil {
			return nil, s.c.Unexpected(context.Background(), s.id, "marshal writer metadata", err)
		}
		out = append(out, WriterMetadata{InstanceID: sw.w.InstanceID, XML: x})
	}
	return out, nil
}

// FreeWriterMetadata drops the gathered WMDs for good.
func (s *Session) FreeWriterMetadata() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MFreeWriterMetadata); err != nil {
		return err
	}
	s.metadataFreed = true
	return nil
}

// componentCall checks the extra conditions of AddComponent,
// SetBackupOptions and SetPreviousBackupStamp. Caller holds s.mu.
func (s *Session) componentCall(m Method) error {
	if err := s.check(m); err != nil {
		return err
	}
	if !s.context.Writers() {
		return badState("%s in writerless context %s", m, s.context)
	}
	if !s.bcd.SelectComponents {
		return badState("%s outside component mode (SetBackupState with selectComponents=true first)", m)
	}
	return nil
}

func (s *Session) gatheredWriter(instance uuid.UUID) *sessionWriter {
	for _, sw := range s.gathered {
		if sw.w.InstanceID == instance {
			return sw
		}
	}
	return nil
}

// AddComponent includes a component explicitly in the backup.
func (s *Session) AddComponent(instance, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.componentCall(MAddComponent); err != nil {
		return err
	}
	sw := s.gatheredWriter(instance)
	if sw == nil {
		return vsserr.New(vsserr.ObjectNotFound, "no gathered writer instance %s", instance)
	}
	if sw.w.Identity.ClassID != writerID {
		return vsserr.New(vsserr.InvalidArg, "writer instance %s is of class %s, not %s", instance, sw.w.Identity.ClassID, writerID)
	}
	comp := sw.wmd.Component(logicalPath, name)
	if comp == nil {
		return vsserr.New(vsserr.ObjectNotFound, "writer %q has no component %q", sw.w.Identity.Name, joinLogical(logicalPath, name))
	}
	if comp.Type != ct {
		return vsserr.New(vsserr.InvalidArg, "component %q is %s, not %s", joinLogical(logicalPath, name), comp.Type, ct)
	}
	return s.bcd.AddComponent(instance, writerID, sw.w.Identity.InstanceName, sw.wmd.BackupSchema, ct, logicalPath, name)
}

func joinLogical(path, name string) string {
	if path == "" {
		return name
	}
	return path + `\` + name
}

// SetBackupOptions stores a writer-private option string on a component.
func (s *Session) SetBackupOptions(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, opts string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.componentCall(MSetBackupOptions); err != nil {
		return err
	}
	_, c, err := s.bcd.FindComponent(writerID, ct, logicalPath, name)
	if err != nil {
		return err
	}
	c.BackupOptions = opts
	return nil
}

// SetPreviousBackupStamp passes an earlier backup stamp to the writer.
func (s *Session) SetPreviousBackupStamp(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, stamp string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.componentCall(MSetPreviousBackupStamp); err != nil {
		return err
	}
	_, c, err := s.bcd.FindComponent(writerID, ct, logicalPath, name)
	if err != nil {
		return err
	}
	c.PreviousBackupStamp = stamp
	return nil
}

// StartSnapshotSet creates the set and takes the system-wide creation lock.
func (s *Session) StartSnapshotSet() (uuid.UUID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MStartSnapshotSet); err != nil {
		return uuid.Nil, err
	}
	if s.setID != uuid.Nil {
		return uuid.Nil, badState("StartSnapshotSet was already called")
	}
	if s.context == vss.CtxAll {
		return uuid.Nil, vsserr.New(vsserr.UnsupportedContext, "VSS_CTX_ALL is for administrative calls; snapshots need a snapshot context")
	}
	if s.context.Writers() && s.state != StMeta {
		return uuid.Nil, badState("StartSnapshotSet before GatherWriterMetadata in writer context %s", s.context)
	}
	if err := s.c.acquireCreation(s); err != nil {
		return uuid.Nil, err
	}
	s.setID, s.creating, s.state = uuid.New(), true, StSet
	s.bcd.SnapshotSetID = s.setID
	s.c.event(context.Background(), "info", 0, s.id, "snapshot set creation started", "set", s.setID.String(), "context", s.context.String())
	return s.setID, nil
}

// AddToSnapshotSet adds a volume (a path) to the set.
func (s *Session) AddToSnapshotSet(ctx context.Context, volume string, providerID uuid.UUID) (uuid.UUID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MAddToSnapshotSet); err != nil {
		return uuid.Nil, err
	}
	vol, err := resolveVolume(volume)
	if err != nil {
		return uuid.Nil, err
	}
	for _, v := range s.volumes {
		if v.volume == vol {
			return uuid.Nil, vsserr.New(vsserr.ObjectAlreadyExists, "%s is already in the set", vol)
		}
	}
	if len(s.volumes) >= MaxVolumes {
		return uuid.Nil, vsserr.New(vsserr.MaximumNumberOfVolumesReached, "a snapshot set holds at most %d volumes", MaxVolumes)
	}
	p, err := s.c.opt.Providers.Select(ctx, providerID, vol)
	if err != nil {
		return uuid.Nil, providerError(p, "IsVolumeSupported", err)
	}
	if err := s.c.checkCap(vol); err != nil {
		return uuid.Nil, err
	}
	snap := uuid.New()
	if err := p.BeginPrepareSnapshot(ctx, s.setID, snap, vol, s.context); err != nil {
		return uuid.Nil, providerError(p, "BeginPrepareSnapshot", err)
	}
	s.volumes = append(s.volumes, volumeEntry{snapshotID: snap, volume: vol, prov: p})
	return snap, nil
}

// checkCap enforces the per-volume snapshot cap (§1.5: 512 by default).
func (c *Coordinator) checkCap(vol string) error {
	if c.opt.Catalog == nil {
		return nil
	}
	have, err := c.opt.Catalog.ListSnapshots(catalog.Filter{Volume: vol})
	if err != nil {
		return err
	}
	if len(have) >= c.opt.MaxSnapshotsPerVolume {
		return vsserr.New(vsserr.MaximumNumberOfSnapshotsReached, "%s already has %d snapshots (limits.max_snapshots_per_volume = %d)",
			vol, len(have), c.opt.MaxSnapshotsPerVolume)
	}
	return nil
}

// resolveVolume makes the requester's path absolute, clean and free of
// symlinks, so that two spellings of one volume are one volume.
func resolveVolume(volume string) (string, error) {
	if !filepath.IsAbs(volume) {
		return "", vsserr.New(vsserr.InvalidArg, "volume %q is not an absolute path", volume)
	}
	p, err := filepath.EvalSymlinks(filepath.Clean(volume))
	if err != nil {
		if os.IsNotExist(err) {
			return "", vsserr.New(vsserr.ObjectNotFound, "volume %s does not exist", volume)
		}
		return "", vsserr.Wrap(vsserr.ObjectNotFound, err, "volume %s", volume)
	}
	return p, nil
}

// permittedProviderCodes are the HRESULTs a provider may return (§7.2);
// anything else is VSS_E_UNEXPECTED_PROVIDER_ERROR.
var permittedProviderCodes = map[vsserr.HRESULT]bool{
	vsserr.OutOfMemory: true, vsserr.InvalidArg: true, vsserr.AccessDenied: true, vsserr.BadState: true,
	vsserr.ObjectNotFound: true, vsserr.InsufficientStorage: true, vsserr.VolumeNotSupported: true,
	vsserr.VolumeNotSupportedByProvider: true, vsserr.MaximumNumberOfSnapshotsReached: true,
	vsserr.ProviderVeto: true, vsserr.CannotRevertDiskID: true, vsserr.ProviderNotRegistered: true,
	vsserr.HoldWritesTimeout: true, vsserr.FlushWritesTimeout: true, vsserr.NotSupported: true,
}

func providerError(p provider.Provider, step string, err error) error {
	if err == nil {
		return nil
	}
	name := "provider"
	if p != nil {
		name = p.Info().Name
	}
	if permittedProviderCodes[vsserr.Code(err)] {
		return err
	}
	return vsserr.Wrap(vsserr.UnexpectedProviderError, err, "%s %s", name, step)
}

// participants are the writers taking part (§12 D14). Caller holds s.mu.
func (s *Session) computeParticipants() []*sessionWriter {
	var out []*sessionWriter
	for _, sw := range s.gathered {
		take := true
		if s.bcd.SelectComponents {
			wc := s.bcd.Writer(sw.w.InstanceID)
			take = wc != nil && len(wc.Components) > 0
		}
		if take {
			out = append(out, sw)
		}
	}
	return out
}

func (s *Session) participantsLocked() []*sessionWriter {
	var out []*sessionWriter
	for _, sw := range s.gathered {
		sw.mu.Lock()
		p := sw.participant
		sw.mu.Unlock()
		if p {
			out = append(out, sw)
		}
	}
	return out
}

// PrepareForBackup sends PrepareForBackup to the writers taking part; from
// then on they may read and edit their components of the BCD (§12 D1).
func (s *Session) PrepareForBackup() (*Async, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MPrepareForBackup); err != nil {
		return nil, err
	}
	if !s.context.Writers() {
		return nil, badState("PrepareForBackup in writerless context %s", s.context)
	}
	if !s.backupStateSet {
		return nil, badState("PrepareForBackup before SetBackupState")
	}
	parts := s.computeParticipants()
	for _, sw := range parts {
		sw.mu.Lock()
		sw.participant = true
		sw.mu.Unlock()
		sw.w.mu.Lock()
		sw.w.last, sw.w.lastSID = sw, s.id
		sw.w.mu.Unlock()
	}
	s.prepareIssued = true
	return s.startAsync(MPrepareForBackup, func(ctx context.Context) error {
		s.fanOut(ctx, parts, EvPrepareBackup, s.c.opt.Timeouts.PrepareBackup, document.PhasePrepareBackup, nil)
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		s.state = StPrepared
		s.mu.Unlock()
		return nil
	}), nil
}

// baseEvent fills the session facts every event carries. Caller holds s.mu
// or is the only goroutine touching the fields read.
func (s *Session) baseEvent(t EventType, timeout time.Duration) *Event {
	ev := &Event{Type: t, SessionID: s.id, SnapshotSetID: s.setID, Context: s.context, Timeout: timeout}
	if s.bcd != nil {
		ev.BackupType, ev.SelectComponents = s.bcd.BackupType, s.bcd.SelectComponents
		ev.BootableSystemState, ev.PartialFileSupport = s.bcd.BootableSystemStateBackup, s.bcd.PartialFileSupport
	}
	for _, v := range s.volumes {
		ev.Volumes = append(ev.Volumes, v.volume)
	}
	return ev
}

// fanOut sends one event to writers in parallel and records the outcome.
// phase says whether (and how) the writer may edit its BCD components; the
// BCD is sent with the event when phase is not PhaseNone. decorate may
// adjust each writer's event (placements).
func (s *Session) fanOut(ctx context.Context, ws []*sessionWriter, t EventType, timeout time.Duration, phase document.Phase, decorate func(*sessionWriter, *Event)) {
	var wg sync.WaitGroup
	for _, sw := range ws {
		s.mu.Lock()
		ev := s.baseEvent(t, timeout)
		if phase != PhaseNone {
			view := s.bcd.ForWriter(sw.w.InstanceID)
			x, err := view.Marshal()
			if err != nil {
				s.mu.Unlock()
				sw.fail(t, vsserr.WriterErrorNonRetryable, vsserr.Unexpected, "lvssd could not render the writer's components: "+err.Error())
				continue
			}
			ev.BCD = x
		}
		s.mu.Unlock()
		if decorate != nil {
			decorate(sw, ev)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.deliver(ctx, sw, ev, phase)
		}()
	}
	wg.Wait()
}

// PhaseNone marks events that carry no BCD.
const PhaseNone document.Phase = -1

// deliver sends one event and applies the result to the writer's status
// (and, in editable phases, its BCD edits). It returns whether the writer
// succeeded.
func (s *Session) deliver(ctx context.Context, sw *sessionWriter, ev *Event, phase document.Phase) bool {
	res, err := sw.w.call(ctx, ev)
	if err != nil {
		if cancelled(err) {
			// The requester cancelled the operation; the writer did
			// nothing wrong and keeps its state (§12 D17).
			return false
		}
		sw.fail(ev.Type, vsserr.Code(err), 0, vsserr.Message(err))
		s.c.event(ctx, "warn", vsserr.Code(err), s.id, "writer did not answer", "writer", sw.w.Identity.Name, "event", ev.Type.String())
		return false
	}
	if phase != PhaseNone && phase != document.PhaseReadOnly && len(res.BCD) > 0 {
		if err := s.applyEdits(phase, sw, res.BCD); err != nil {
			sw.fail(ev.Type, vsserr.WriterErrorNonRetryable, vsserr.Code(err), "lvssd refused the writer's document edits: "+vsserr.Message(err))
			return false
		}
	}
	if res.Failure.Failed() {
		sw.fail(ev.Type, res.Failure, res.ApplicationHRESULT, res.ApplicationMessage)
		s.c.event(ctx, "warn", res.Failure, s.id, "writer failed "+ev.Type.String(), "writer", sw.w.Identity.Name,
			"application_hresult", res.ApplicationHRESULT.Hex(), "message", res.ApplicationMessage)
		return false
	}
	return true
}

func (s *Session) applyEdits(phase document.Phase, sw *sessionWriter, x []byte) error {
	edited, err := document.ParseBackupComponents(x)
	if err != nil {
		return err
	}
	wc := edited.Writer(sw.w.InstanceID)
	if wc == nil {
		return nil // the writer changed nothing of its own
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bcd.ApplyWriterEdits(phase, sw.w.InstanceID, wc)
}

// GatherWriterStatus captures the status of the gathered writers. The
// coordinator tracks writer state itself, so no event is sent.
func (s *Session) GatherWriterStatus() (*Async, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MGatherWriterStatus); err != nil {
		return nil, err
	}
	return s.startAsync(MGatherWriterStatus, func(context.Context) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.statusList = s.statusList[:0]
		for _, sw := range s.gathered {
			s.statusList = append(s.statusList, sw.status())
		}
		return nil
	}), nil
}

// GetWriterStatus returns the status captured by the last GatherWriterStatus.
func (s *Session) GetWriterStatus() ([]WriterStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MGetWriterStatus); err != nil {
		return nil, err
	}
	return append([]WriterStatus(nil), s.statusList...), nil
}

// FreeWriterStatus drops the captured status.
func (s *Session) FreeWriterStatus() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MFreeWriterStatus); err != nil {
		return err
	}
	s.statusList = nil
	return nil
}

// SetBackupSucceeded records a component's backup result.
func (s *Session) SetBackupSucceeded(instance, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, ok bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MSetBackupSucceeded); err != nil {
		return err
	}
	wc, c, err := s.bcd.FindComponent(writerID, ct, logicalPath, name)
	if err != nil {
		return err
	}
	if instance != uuid.Nil && wc.InstanceID != instance {
		return vsserr.New(vsserr.ObjectNotFound, "component %q belongs to instance %s, not %s", joinLogical(logicalPath, name), wc.InstanceID, instance)
	}
	c.BackupSucceeded = ok
	return nil
}

// BackupComplete tells the writers that took part that the backup is over;
// the BCD is read-only for them from here (§12 D1).
func (s *Session) BackupComplete() (*Async, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MBackupComplete); err != nil {
		return nil, err
	}
	if !s.context.Writers() {
		return nil, badState("BackupComplete in writerless context %s", s.context)
	}
	var targets []*sessionWriter
	for _, sw := range s.participantsLocked() {
		if sw.status().State == vss.WSWaitingForBackupComplete {
			targets = append(targets, sw)
		}
	}
	return s.startAsync(MBackupComplete, func(ctx context.Context) error {
		s.fanOut(ctx, targets, EvBackupComplete, s.c.opt.Timeouts.BackupComplete, document.PhaseReadOnly, nil)
		for _, sw := range targets {
			if !sw.failed() {
				sw.setState(vss.WSStable)
			}
		}
		s.mu.Lock()
		s.state = StComplete
		s.mu.Unlock()
		s.saveDocuments(ctx)
		return nil
	}), nil
}

// AbortBackup gives up (§12 D4, D14).
func (s *Session) AbortBackup(ctx context.Context) error {
	s.mu.Lock()
	if err := s.check(MAbortBackup); err != nil {
		s.mu.Unlock()
		return err
	}
	switch s.state {
	case StSet, StPrepared:
		s.mu.Unlock()
		s.abortCreation(ctx, "AbortBackup")
	case StSnapped:
		// After a successful DoSnapshotSet writers get no Abort (D14); the
		// backup is over without BackupComplete.
		s.state = StAborted
		s.mu.Unlock()
	default:
		s.mu.Unlock() // nothing in progress: a no-op
	}
	return nil
}

// abortCreation ends an unfinished creation: Abort to the writers taking
// part if PrepareForBackup was issued, AbortSnapshots to providers that
// reached EndPrepare (done by the DoSnapshotSet op itself), lock released.
func (s *Session) abortCreation(ctx context.Context, why string) {
	s.mu.Lock()
	if s.state != StSet && s.state != StPrepared {
		s.mu.Unlock()
		return
	}
	parts := s.participantsLocked()
	prepared := s.prepareIssued
	s.state = StAborted
	s.creating = false
	s.abortSent = s.abortSent || prepared
	s.mu.Unlock()
	if prepared {
		s.sendAbort(ctx, parts)
	}
	s.c.releaseCreation(s)
	s.c.event(ctx, "info", 0, s.id, "snapshot set creation aborted", "reason", why, "set", s.setIDForLock().String())
}

// sendAbort sends Abort to each writer once per operation. A writer that
// was aborted only because of someone else's failure returns to STABLE
// (§3.3); a failed writer keeps its failure.
func (s *Session) sendAbort(ctx context.Context, ws []*sessionWriter) {
	var todo []*sessionWriter
	for _, sw := range ws {
		sw.mu.Lock()
		if !sw.aborted {
			sw.aborted = true
			sw.frozen, sw.prepared = false, false
			todo = append(todo, sw)
		}
		sw.mu.Unlock()
	}
	var wg sync.WaitGroup
	for _, sw := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.mu.Lock()
			ev := s.baseEvent(EvAbort, s.c.opt.Timeouts.Abort)
			s.mu.Unlock()
			if _, err := sw.w.call(ctx, ev); err != nil {
				s.c.event(ctx, "warn", vsserr.Code(err), s.id, "writer did not answer Abort", "writer", sw.w.Identity.Name)
			}
			sw.setState(vss.WSStable)
		}()
	}
	wg.Wait()
}

// leaseExpired ends a creation that held the lock too long (§12 D7).
func (s *Session) leaseExpired(lease time.Duration) {
	ctx := context.Background()
	s.c.event(ctx, "warn", vsserr.BadState, s.id, "creation lease expired: snapshot set creation aborted", "lease", lease.String())
	s.mu.Lock()
	cancel := s.opCancel
	running := s.pending != nil && s.pending.method == MDoSnapshotSet
	s.mu.Unlock()
	if running && cancel != nil {
		cancel() // DoSnapshotSet aborts itself unless past its point of no return
		return
	}
	s.abortCreation(ctx, "creation lease expired after "+lease.String())
}

// SaveAsXML returns the BCD; final only after DoSnapshotSet (§12 D1).
func (s *Session) SaveAsXML() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MSaveAsXML); err != nil {
		return "", err
	}
	x, err := s.bcd.Marshal()
	if err != nil {
		return "", s.c.Unexpected(context.Background(), s.id, "SaveAsXML", err)
	}
	return string(x), nil
}

// GetWriterComponents returns the BCD (the client lists its writers'
// components from it): a live view including writers' edits.
func (s *Session) GetWriterComponents() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(MGetWriterComponents); err != nil {
		return "", err
	}
	x, err := s.bcd.Marshal()
	if err != nil {
		return "", s.c.Unexpected(context.Background(), s.id, "GetWriterComponents", err)
	}
	return string(x), nil
}

// Object is one Query result: a snapshot or a provider.
type Object struct {
	Snapshot *catalog.Snapshot
	Provider *provider.Info
}

// Query lists snapshots of the session's context (all with VSS_CTX_ALL)
// or providers.
func (s *Session) Query(queried uuid.UUID, qType, rType vss.ObjectType) ([]Object, error) {
	s.mu.Lock()
	if err := s.check(MQuery); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	ctxFilter := s.context
	s.mu.Unlock()
	if queried != uuid.Nil || (qType != vss.ObjectNone && qType != vss.ObjectUnknown) {
		return nil, vsserr.New(vsserr.InvalidArg, "Query supports only GUID_NULL / VSS_OBJECT_NONE as the queried object")
	}
	switch rType {
	case vss.ObjectProvider:
		var out []Object
		for _, p := range s.c.opt.Providers.All() {
			i := p.Info()
			out = append(out, Object{Provider: &i})
		}
		return out, nil
	case vss.ObjectSnapshot:
		snaps, err := s.c.opt.Catalog.ListSnapshots(catalog.Filter{})
		if err != nil {
			return nil, s.c.Unexpected(context.Background(), s.id, "Query", err)
		}
		var out []Object
		for i := range snaps {
			if ctxFilter == vss.CtxAll || vss.Context(snaps[i].Context).Base() == ctxFilter.Base() {
				out = append(out, Object{Snapshot: &snaps[i]})
			}
		}
		return out, nil
	}
	return nil, vsserr.New(vsserr.InvalidArg, "Query returns VSS_OBJECT_SNAPSHOT or VSS_OBJECT_PROVIDER, not %s", rType)
}

// GetSnapshotProperties returns one snapshot's properties.
func (s *Session) GetSnapshotProperties(id uuid.UUID) (catalog.Snapshot, error) {
	s.mu.Lock()
	if err := s.check(MGetSnapshotProperties); err != nil {
		s.mu.Unlock()
		return catalog.Snapshot{}, err
	}
	s.mu.Unlock()
	return s.c.opt.Catalog.GetSnapshot(id)
}

// DeleteSnapshots deletes one snapshot or a whole set, sequentially,
// stopping at the first failure.
func (s *Session) DeleteSnapshots(ctx context.Context, id uuid.UUID, t vss.ObjectType, force bool) (int, uuid.UUID, error) {
	s.mu.Lock()
	if err := s.check(MDeleteSnapshots); err != nil {
		s.mu.Unlock()
		return 0, uuid.Nil, err
	}
	s.mu.Unlock()
	var snaps []catalog.Snapshot
	switch t {
	case vss.ObjectSnapshot:
		sn, err := s.c.opt.Catalog.GetSnapshot(id)
		if err != nil {
			return 0, uuid.Nil, err
		}
		snaps = append(snaps, sn)
	case vss.ObjectSnapshotSet:
		var err error
		snaps, err = s.c.opt.Catalog.ListSnapshots(catalog.Filter{SetID: id})
		if err != nil {
			return 0, uuid.Nil, s.c.Unexpected(ctx, s.id, "DeleteSnapshots", err)
		}
		if len(snaps) == 0 {
			return 0, uuid.Nil, vsserr.New(vsserr.ObjectNotFound, "no snapshot set %s", id)
		}
	default:
		return 0, uuid.Nil, vsserr.New(vsserr.InvalidArg, "DeleteSnapshots takes VSS_OBJECT_SNAPSHOT or VSS_OBJECT_SNAPSHOT_SET, not %s", t)
	}
	n := 0
	for _, sn := range snaps {
		if err := s.c.deleteSnapshot(ctx, sn); err != nil {
			return n, sn.ID, err
		}
		n++
	}
	return n, uuid.Nil, nil
}

// deleteSnapshot removes a snapshot through its provider, then from the
// catalog (in that order: a crash in between leaves a catalog entry that a
// later delete can finish, never an untracked snapshot).
func (c *Coordinator) deleteSnapshot(ctx context.Context, sn catalog.Snapshot) error {
	p, err := c.opt.Providers.ByID(sn.ProviderID)
	if err != nil {
		return err
	}
	if sn.ExposedName != "" {
		if ex, ok := p.(provider.Exposer); ok {
			if err := ex.Unexpose(ctx, toProviderSnapshot(sn), sn.ExposedName); err != nil {
				return providerError(p, "Unexpose", err)
			}
		}
	}
	if err := p.DeleteSnapshot(ctx, toProviderSnapshot(sn)); err != nil {
		return providerError(p, "DeleteSnapshot", err)
	}
	if err := c.opt.Catalog.DeleteSnapshot(sn.ID); err != nil && vsserr.Code(err) != vsserr.ObjectNotFound {
		return err
	}
	return nil
}

func toProviderSnapshot(sn catalog.Snapshot) provider.Snapshot {
	return provider.Snapshot{ID: sn.ID, SetID: sn.SetID, OriginalVolume: sn.OriginalVolume, DevicePath: sn.DevicePath,
		Handle: sn.ProviderHandle, Created: sn.Created}
}

// IsVolumeSupported asks one provider, or all (GUID_NULL).
func (s *Session) IsVolumeSupported(ctx context.Context, providerID uuid.UUID, volume string) (bool, error) {
	s.mu.Lock()
	if err := s.check(MIsVolumeSupported); err != nil {
		s.mu.Unlock()
		return false, err
	}
	s.mu.Unlock()
	vol, err := resolveVolume(volume)
	if err != nil {
		return false, err
	}
	if providerID != uuid.Nil {
		p, err := s.c.opt.Providers.ByID(providerID)
		if err != nil {
			return false, err
		}
		ok, err := p.IsVolumeSupported(ctx, vol)
		return ok, providerError(p, "IsVolumeSupported", err)
	}
	for _, p := range s.c.opt.Providers.All() {
		ok, err := p.IsVolumeSupported(ctx, vol)
		if err != nil {
			return false, providerError(p, "IsVolumeSupported", err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// ExposeSnapshot makes a snapshot visible at a path.
func (s *Session) ExposeSnapshot(ctx context.Context, id uuid.UUID, pathFromRoot string, attrs vss.Attributes, expose string) (string, error) {
	s.mu.Lock()
	if err := s.check(MExposeSnapshot); err != nil {
		s.mu.Unlock()
		return "", err
	}
	s.mu.Unlock()
	if attrs != vss.AttrExposedLocally {
		return "", vsserr.New(vsserr.NotSupported, "only VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY is supported")
	}
	if pathFromRoot != "" {
		return "", vsserr.New(vsserr.InvalidArg, "local exposure shows the whole snapshot: pathFromRoot must be empty")
	}
	if !filepath.IsAbs(expose) {
		return "", vsserr.New(vsserr.InvalidArg, "expose path %q is not absolute", expose)
	}
	sn, err := s.c.opt.Catalog.GetSnapshot(id)
	if err != nil {
		return "", err
	}
	if sn.ExposedName != "" {
		return "", vsserr.New(vsserr.ObjectAlreadyExists, "snapshot %s is already exposed at %s", id, sn.ExposedName)
	}
	p, err := s.c.opt.Providers.ByID(sn.ProviderID)
	if err != nil {
		return "", err
	}
	ex, ok := p.(provider.Exposer)
	if !ok {
		return "", vsserr.New(vsserr.NotSupported, "provider %s cannot expose snapshots", p.Info().Name)
	}
	name, err := ex.Expose(ctx, toProviderSnapshot(sn), filepath.Clean(expose))
	if err != nil {
		return "", providerError(p, "Expose", err)
	}
	sn.ExposedName = name
	sn.Attributes = (sn.Attributes | uint32(vss.AttrExposedLocally)) &^ uint32(vss.AttrNotSurfaced)
	if err := s.c.opt.Catalog.PutSnapshots(sn); err != nil {
		return "", s.c.Unexpected(ctx, s.id, "ExposeSnapshot", err)
	}
	return name, nil
}

// UnexposeSnapshot undoes ExposeSnapshot.
func (s *Session) UnexposeSnapshot(ctx context.Context, id uuid.UUID) error {
	s.mu.Lock()
	if err := s.check(MUnexposeSnapshot); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	sn, err := s.c.opt.Catalog.GetSnapshot(id)
	if err != nil {
		return err
	}
	if sn.ExposedName == "" {
		return vsserr.New(vsserr.ObjectNotFound, "snapshot %s is not exposed", id)
	}
	p, err := s.c.opt.Providers.ByID(sn.ProviderID)
	if err != nil {
		return err
	}
	if ex, ok := p.(provider.Exposer); ok {
		if err := ex.Unexpose(ctx, toProviderSnapshot(sn), sn.ExposedName); err != nil {
			return providerError(p, "Unexpose", err)
		}
	}
	sn.ExposedName = ""
	sn.Attributes = (sn.Attributes &^ uint32(vss.AttrExposedLocally)) | uint32(vss.AttrNotSurfaced)
	return s.c.opt.Catalog.PutSnapshots(sn)
}

// Released says what ending a session did (§12 D11).
type Released struct {
	Aborted          bool
	ShutdownWriters  []uuid.UUID
	DeletedSnapshots []uuid.UUID
}

// Release ends the session, whatever its state: Abort if creation was in
// progress, BackupShutdown to the writers that took part, auto-release
// snapshots deleted. Idempotent.
func (s *Session) Release(ctx context.Context) Released {
	var r Released
	s.mu.Lock()
	if s.releasing != nil {
		// Released already, or being released by someone else (the
		// stream ending while lvssd shuts down): wait for that one.
		ch := s.releasing
		s.mu.Unlock()
		<-ch
		return r
	}
	s.releasing = make(chan struct{})
	defer close(s.releasing)
	cancel, done := s.opCancel, s.opDone
	s.mu.Unlock()
	// A running operation is cancelled and waited for: DoSnapshotSet then
	// aborts the creation itself (or finishes, if past its commit point).
	if cancel != nil {
		cancel()
		<-done
	}
	s.abortCreation(ctx, "session released")
	s.mu.Lock()
	r.Aborted = s.abortSent
	parts := s.participantsLocked()
	setID, autoSnaps := s.setID, s.snapshots
	auto := s.context.AutoRelease()
	s.state = StReleased
	s.mu.Unlock()
	s.c.releaseCreation(s)

	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, sw := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := &Event{Type: EvBackupShutdown, SessionID: s.id, SnapshotSetID: setID, Context: s.context, Timeout: s.c.opt.Timeouts.BackupShutdown}
			s.deliver(ctx, sw, ev, PhaseNone)
			mu.Lock()
			r.ShutdownWriters = append(r.ShutdownWriters, sw.w.InstanceID)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(r.ShutdownWriters, func(i, j int) bool { return r.ShutdownWriters[i].String() < r.ShutdownWriters[j].String() })
	if auto {
		for _, sn := range autoSnaps {
			if err := s.c.deleteSnapshot(ctx, sn); err != nil {
				s.c.event(ctx, "error", vsserr.Code(err), s.id, "could not delete auto-release snapshot", "snapshot", sn.ID.String(), "error", err.Error())
				continue
			}
			r.DeletedSnapshots = append(r.DeletedSnapshots, sn.ID)
		}
		if len(r.DeletedSnapshots) == len(autoSnaps) && setID != uuid.Nil && s.c.opt.Catalog != nil {
			_ = s.c.opt.Catalog.DeleteDocuments(setID)
		}
	}
	s.c.forgetSession(s)
	s.c.event(ctx, "info", 0, s.id, "session released", "aborted", fmt.Sprint(r.Aborted),
		"shutdown_writers", fmt.Sprint(len(r.ShutdownWriters)), "deleted_snapshots", fmt.Sprint(len(r.DeletedSnapshots)))
	return r
}
