package coordinator

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/outbox"
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
// and at which instant (D15). Instant 0 means no snapshot holds it.
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
	RestoreType         vss.RestoreType
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

// WriterStream is how the coordinator reaches one writer; the server
// implements it over the writer's gRPC stream.
type WriterStream interface {
	// Send writes one message. It may block while the writer is not
	// reading: the coordinator calls it from one goroutine per writer and
	// bounds it with End.
	Send(Outbound) error
	// End ends the stream: a blocked Send returns, the writer's reads
	// fail, and it must subscribe again. It is called once.
	End(cause error)
}

// Outbound is one message to a writer: the Welcome that answers its Hello
// (always the first), or an event.
type Outbound struct {
	Welcome *Welcome
	Event   *Event
}

// Welcome tells a writer its instance ID and its effective Freeze→Thaw
// window.
type Welcome struct {
	InstanceID uuid.UUID
	Window     time.Duration
}

// outboxSize bounds the messages queued for one writer. A writer has at
// most one event in flight per session; a queue this long means it stopped
// reading long ago.
const outboxSize = 256

// WriterHandle is one subscribed writer (one stream).
type WriterHandle struct {
	InstanceID uuid.UUID
	Identity   Identity
	Peer       Peer
	// Window is the effective Freeze→Thaw window: the writer's own,
	// capped by the coordinator's.
	Window time.Duration

	box  *outbox.Box[Outbound]
	gone chan struct{}
	once sync.Once

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan Result
	wmd     *document.WriterMetadata // from the most recent successful Identify
	wmdRaw  []byte                   // the document wmd was parsed from, as the writer sent it
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

// End ends the writer's stream as lvssd does for a writer that misses a
// deadline (L29): the events it was sent fail at once, naming cause, and
// it must subscribe again. The server calls it for a writer that sent a
// message lvssd refuses.
func (w *WriterHandle) End(cause error) { w.box.End(cause) }

// Gone is closed when the writer's stream ended.
func (w *WriterHandle) Gone() <-chan struct{} { return w.gone }

func (w *WriterHandle) markGone() { w.once.Do(func() { close(w.gone) }) }

// errNotResponding builds the coordinator-set failure of vss-reference §3.4.
func errNotResponding(w *WriterHandle, ev EventType, why string) *vsserr.Error {
	return vsserr.New(vsserr.WriterNotResponding, "writer %q did not answer %s: %s", w.Identity.Name, ev, why)
}

// errCancelled is what call returns when the operation that sent the
// event was cancelled: the writer is not at fault, and its state is left
// as it was (D17).
func errCancelled(w *WriterHandle, ev EventType, cause error) error {
	return vsserr.Wrap(vsserr.WriterNotResponding, cause, "%s to writer %q: the operation was cancelled", ev, w.Identity.Name)
}

// cancelled reports whether a call ended because its operation was
// cancelled rather than because of the writer.
func cancelled(err error) bool { return errors.Is(err, context.Canceled) }

// call sends one event and waits for the answer, the event's deadline, the
// writer's disappearance or ctx. The deadline covers everything: the wait
// in the writer's queue, the write to its stream and its answer, so no
// writer delays the caller past it. A writer that misses it fails the
// event with VSS_E_WRITER_NOT_RESPONDING and its stream is ended (L29):
// from outside, a stopped writer whose bytes sit in a socket buffer looks
// exactly like one that stopped reading, and keeping it would make every
// later session wait out its deadline again. Its SDK releases whatever it
// held when the stream ends, and it may subscribe again.
func (w *WriterHandle) call(ctx context.Context, ev *Event) (Result, error) {
	timer := time.NewTimer(ev.Timeout)
	defer timer.Stop()
	deadline := time.Now().Add(ev.Timeout)
	ch := make(chan Result, 1)
	w.mu.Lock()
	w.nextID++
	ev.ID = w.nextID
	w.pending[ev.ID] = ch
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.pending, ev.ID)
		w.mu.Unlock()
	}()
	select {
	case <-w.gone:
		return Result{}, errNotResponding(w, ev.Type, "its connection is closed")
	default:
	}
	tk := w.box.Put(Outbound{Event: ev}, deadline, ev.Type.String())
	select {
	case r := <-ch:
		return r, nil
	case <-timer.C:
		why := "no answer within " + ev.Timeout.String()
		if !tk.IsWritten() {
			why = "it did not read the event within " + ev.Timeout.String()
		}
		err := errNotResponding(w, ev.Type, why)
		w.box.End(err)
		return Result{}, err
	case <-w.gone:
		why := "its connection closed"
		if c := w.box.Cause(); c != nil && !errors.Is(c, errUnsubscribed) {
			why = c.Error()
		}
		return Result{}, errNotResponding(w, ev.Type, why)
	case <-ctx.Done():
		tk.Abandon()
		return Result{}, errCancelled(w, ev.Type, ctx.Err())
	}
}
