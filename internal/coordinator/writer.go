package coordinator

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// EventType names writer events (the wire enum has the same values).
type EventType int

// Writer events.
const (
	EvIdentify EventType = iota + 1
	EvPrepareBackup
	EvPrepareSnapshot
	EvFreeze
	EvThaw
	EvPostSnapshot
	EvAbort
	EvBackupComplete
	EvBackupShutdown
	EvPreRestore
	EvPostRestore
)

var eventNames = [...]string{"", "Identify", "PrepareForBackup", "PrepareForSnapshot", "Freeze", "Thaw",
	"PostSnapshot", "Abort", "BackupComplete", "BackupShutdown", "PreRestore", "PostRestore"}

func (e EventType) String() string {
	if int(e) < len(eventNames) {
		return eventNames[e]
	}
	return "Event?"
}

// failedState is the FAILED_AT_* state for a failure in the event.
func (e EventType) failedState() vss.WriterState {
	switch e {
	case EvIdentify:
		return vss.WSFailedAtIdentify
	case EvPrepareBackup:
		return vss.WSFailedAtPrepareBackup
	case EvPrepareSnapshot:
		return vss.WSFailedAtPrepareSnapshot
	case EvFreeze:
		return vss.WSFailedAtFreeze
	case EvThaw:
		return vss.WSFailedAtThaw
	case EvPostSnapshot:
		return vss.WSFailedAtPostSnapshot
	case EvBackupComplete:
		return vss.WSFailedAtBackupComplete
	case EvBackupShutdown:
		return vss.WSFailedAtBackupShutdown
	case EvPreRestore:
		return vss.WSFailedAtPreRestore
	case EvPostRestore:
		return vss.WSFailedAtPostRestore
	}
	return vss.WSUnknown
}

// Placement says which snapshot of the set holds one of a writer's paths
// and at which instant (§12 D15). Instant 0 means no snapshot holds it.
type Placement struct {
	Path           string
	SnapshotID     uuid.UUID
	OriginalVolume string
	Instant        uint32
	// FileByFile: the snapshot is made by a provider that is not Atomic
	// (it copies files one by one while writers are frozen).
	FileByFile bool
	DevicePath string // PostSnapshot only
}

// Event is one event sent to one writer.
type Event struct {
	ID                  uint64
	Type                EventType
	SessionID           uuid.UUID
	SnapshotSetID       uuid.UUID
	Context             vss.Context
	BackupType          vss.BackupType
	SelectComponents    bool
	BootableSystemState bool
	PartialFileSupport  bool
	BCD                 []byte // the writer's view of the BCD, when the event carries it
	Volumes             []string
	Placements          []Placement
	Timeout             time.Duration
}

// Result is a writer's answer to an event.
type Result struct {
	EventID            uint64
	Failure            vsserr.HRESULT
	ApplicationHRESULT vsserr.HRESULT
	ApplicationMessage string
	WMD                []byte
	BCD                []byte
}

// Identity is what a writer says about itself when it subscribes.
type Identity struct {
	ClassID       uuid.UUID
	Name          string
	InstanceName  string
	Usage         vss.UsageType
	Source        vss.SourceType
	Level         vss.AppLevel
	FreezeTimeout time.Duration
	Major, Minor  uint32
}

// Peer is the process on the other end of a connection.
type Peer struct {
	UID, GID uint32
	PID      int32
}

// WriterHandle is one subscribed writer (one stream).
type WriterHandle struct {
	InstanceID uuid.UUID
	Identity   Identity
	Peer       Peer
	// Window is the effective Freeze→Thaw window: the writer's own,
	// capped by the coordinator's.
	Window time.Duration

	send func(*Event) error
	gone chan struct{}
	once sync.Once

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan Result
	wmd     *document.WriterMetadata // from the most recent successful Identify
	last    *sessionWriter           // most recent session it took part in
	lastSID uuid.UUID
}

// Deliver hands a writer's answer to whoever waits for it. Late answers to
// events the coordinator stopped waiting for are dropped.
func (w *WriterHandle) Deliver(r Result) {
	w.mu.Lock()
	ch := w.pending[r.EventID]
	delete(w.pending, r.EventID)
	w.mu.Unlock()
	if ch != nil {
		ch <- r
	}
}

// Gone is closed when the writer's stream ended.
func (w *WriterHandle) Gone() <-chan struct{} { return w.gone }

func (w *WriterHandle) markGone() { w.once.Do(func() { close(w.gone) }) }

// errNotResponding builds the coordinator-set failure of §3.4.
func errNotResponding(w *WriterHandle, ev EventType, why string) *vsserr.Error {
	return vsserr.New(vsserr.WriterNotResponding, "writer %q did not answer %s: %s", w.Identity.Name, ev, why)
}

// call sends one event and waits for the answer, the timeout, the writer's
// disappearance or ctx. A writer that does not answer in time gets
// VSS_E_WRITER_NOT_RESPONDING as its failure.
func (w *WriterHandle) call(ctx context.Context, ev *Event) (Result, error) {
	ch := make(chan Result, 1)
	w.mu.Lock()
	w.nextID++
	ev.ID = w.nextID
	w.pending[ev.ID] = ch
	w.mu.Unlock()
	drop := func() {
		w.mu.Lock()
		delete(w.pending, ev.ID)
		w.mu.Unlock()
	}
	select {
	case <-w.gone:
		drop()
		return Result{}, errNotResponding(w, ev.Type, "its connection is closed")
	default:
	}
	if err := w.send(ev); err != nil {
		drop()
		return Result{}, errNotResponding(w, ev.Type, err.Error())
	}
	t := time.NewTimer(ev.Timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r, nil
	case <-t.C:
		drop()
		return Result{}, errNotResponding(w, ev.Type, "no answer within "+ev.Timeout.String())
	case <-w.gone:
		drop()
		return Result{}, errNotResponding(w, ev.Type, "its connection closed")
	case <-ctx.Done():
		drop()
		return Result{}, errNotResponding(w, ev.Type, "the operation was cancelled")
	}
}
