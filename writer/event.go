package writer

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Event is one coordinator event as a handler sees it: the values
// CVssWriter's protected helpers return (GetSessionId, GetContext,
// GetBackupType, GetCurrentVolumeArray, ...), valid during the handler.
type Event struct {
	ID         uint64 // the coordinator's event number; 0 for an event the SDK raised itself
	Type       EventType
	InstanceID uuid.UUID // this writer's instance, as lvssd assigned it
	SessionID  uuid.UUID
	// SnapshotSetID is GUID_NULL before StartSnapshotSet and in a
	// BackupShutdown of a session that made no snapshot set.
	SnapshotSetID       uuid.UUID
	Context             vss.Context // definitive from PrepareSnapshot on
	BackupType          vss.BackupType
	RestoreType         vss.RestoreType
	SelectComponents    bool
	BootableSystemState bool
	PartialFileSupport  bool
	// Volumes are the original volumes of the snapshot set (mount points or
	// other paths the providers capture), from PrepareSnapshot on.
	Volumes []string
	// Placements say, for each path of the writer's components, which
	// snapshot holds it and at which instant (D15). They come with
	// PrepareSnapshot; later events of the session repeat them when the
	// coordinator does not, and PostSnapshot adds the device paths.
	Placements []Placement
	// Deadline is when the coordinator stops waiting for the answer; the
	// handler's context ends then too.
	Deadline time.Time
	// SelfRaised is true for an Abort or BackupShutdown the SDK called on
	// its own (window expired, connection lost, shutdown), not sent by lvssd.
	SelfRaised bool
}

// Placement is where one of the writer's paths is captured (PathPlacement).
type Placement struct {
	Path           string
	SnapshotID     uuid.UUID // GUID_NULL: no snapshot of the set holds Path
	OriginalVolume string
	// Instant numbers the moments the set is captured at: paths with the
	// same non-zero Instant are captured at one point in time (one atomic
	// provider commit). 0 means no snapshot holds Path.
	Instant uint32
	// FileByFile: the snapshot holding Path is made by a provider that
	// copies files one by one (the copy provider) rather than a
	// point-in-time image. Such a copy is consistent only if nothing writes
	// to the files while it runs; see Event.PointInTime.
	FileByFile bool
	// DevicePath is where the snapshot's content can be read (and, for
	// auto-recovery, written); set only in PostSnapshot.
	DevicePath string
}

func (p *Placement) held() bool { return p.Instant != 0 || p.SnapshotID != uuid.Nil }

// eventFromWire converts an event; GUIDs that do not parse make it
// unusable, and it is answered without calling the writer.
func eventFromWire(m *v1.Event, instance uuid.UUID, received time.Time, defaultTimeout time.Duration) (*Event, error) {
	sid, err := wire.ParseGUID(m.GetSessionId())
	if err != nil {
		return nil, fmt.Errorf("session_id: %w", err)
	}
	set, err := wire.ParseGUID(m.GetSnapshotSetId())
	if err != nil {
		return nil, fmt.Errorf("snapshot_set_id: %w", err)
	}
	ev := &Event{
		ID: m.GetId(), Type: EventType(m.GetType()), InstanceID: instance,
		SessionID: sid, SnapshotSetID: set,
		Context: vss.Context(m.GetContext()), BackupType: vss.BackupType(m.GetBackupType()),
		RestoreType:      vss.RestoreType(m.GetRestoreType()),
		SelectComponents: m.GetSelectComponents(), BootableSystemState: m.GetBootableSystemState(),
		PartialFileSupport: m.GetPartialFileSupport(),
		Volumes:            append([]string(nil), m.GetVolumes()...),
	}
	for _, p := range m.GetPlacements() {
		snap, err := wire.ParseGUID(p.GetSnapshotId())
		if err != nil {
			return nil, fmt.Errorf("placement of %q: snapshot_id: %w", p.GetPath(), err)
		}
		ev.Placements = append(ev.Placements, Placement{
			Path: p.GetPath(), SnapshotID: snap, OriginalVolume: p.GetOriginalVolume(),
			Instant: p.GetInstant(), FileByFile: p.GetFileByFile(), DevicePath: p.GetDevicePath(),
		})
	}
	// An event without a deadline would let a stuck handler block the
	// writer for good; the freeze window is a sane upper bound.
	timeout := time.Duration(m.GetTimeoutMs()) * time.Millisecond
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	ev.Deadline = received.Add(timeout)
	return ev, nil
}

// within reports whether path is root or lies below it. Both are cleaned;
// "/" holds every absolute path.
func within(path, root string) bool {
	path, root = filepath.Clean(path), filepath.Clean(root)
	if path == root || root == "/" && strings.HasPrefix(path, "/") {
		return true
	}
	return strings.HasPrefix(path, root+"/")
}

// placementOf returns the placement that covers path: the one for path
// itself or for its nearest ancestor, since the coordinator places the
// paths of file sets and a file lies below its file set's path.
func (e *Event) placementOf(path string) *Placement {
	var best *Placement
	for i := range e.Placements {
		p := &e.Placements[i]
		if within(path, p.Path) && (best == nil || len(filepath.Clean(p.Path)) > len(filepath.Clean(best.Path))) {
			best = p
		}
	}
	return best
}

// IsPathAffected reports whether path lies in the snapshot set
// (IsPathAffected). The placements decide when one covers path, since the
// coordinator knows nested mounts the SDK cannot see; otherwise path is
// affected when it lies on one of the set's volumes. Paths should be
// absolute.
func (e *Event) IsPathAffected(path string) bool {
	if p := e.placementOf(path); p != nil {
		return p.held()
	}
	for _, v := range e.Volumes {
		if within(path, v) {
			return true
		}
	}
	return false
}

// SharedInstant checks that every one of paths is held by a snapshot of
// the set and that all are captured at one instant (D15). It
// returns nil if so, and otherwise a VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT
// error naming each path and where it lies, meant to be returned from
// PrepareSnapshot as is:
//
//	if err := ev.SharedInstant(dataDir, walDir); err != nil {
//		return err
//	}
func (e *Event) SharedInstant(paths ...string) error {
	var (
		where   []string
		instant uint32
		split   bool
	)
	for i, path := range paths {
		p := e.placementOf(path)
		if p == nil || !p.held() {
			split = true
			where = append(where, fmt.Sprintf("%q is in no snapshot of the set", path))
			continue
		}
		if i == 0 || instant == 0 {
			instant = p.Instant
		} else if p.Instant != instant {
			split = true
		}
		where = append(where, fmt.Sprintf("%q is in snapshot %s of %q (instant %d)", path, p.SnapshotID, p.OriginalVolume, p.Instant))
	}
	if !split {
		return nil
	}
	return vsserr.New(vsserr.WriterErrorInconsistentSnapshot, "paths that must be captured at one instant are not: %s", strings.Join(where, "; "))
}

// PointInTime checks that every one of paths is held by a point-in-time
// snapshot, not by one a provider copies file by file (Placement.
// FileByFile). A writer whose application goes on writing its files while
// frozen — a database that blocks commits but not page flushing, or one
// that blocks nothing and relies on crash consistency — needs a
// point-in-time image and calls it in PrepareSnapshot beside
// SharedInstant; a writer that stops every write to its files during the
// freeze does not. It returns nil, or a
// VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT error naming each such path.
// Paths no snapshot holds are SharedInstant's to report.
func (e *Event) PointInTime(paths ...string) error {
	var copied []string
	for _, path := range paths {
		if p := e.placementOf(path); p != nil && p.held() && p.FileByFile {
			copied = append(copied, fmt.Sprintf("%q (snapshot %s of %q)", path, p.SnapshotID, p.OriginalVolume))
		}
	}
	if len(copied) == 0 {
		return nil
	}
	return vsserr.New(vsserr.WriterErrorInconsistentSnapshot,
		"these paths would be copied file by file while the application still writes to them, not captured at one instant: %s; use a provider that takes point-in-time snapshots of their volumes",
		strings.Join(copied, "; "))
}

// Components is the writer's own part of the Backup Components Document in
// an event (IVssWriterComponents): the components the requester explicitly
// included. In PrepareBackup, PostSnapshot and PreRestore the writer may
// edit the fields it owns in that event (backup stamp, backup metadata,
// partial and differenced files, failure messages, restore target, ...); in
// PostRestore only the post-restore failure message and the component
// failure; in BackupComplete nothing, and edits are dropped. The SDK checks
// the edits with the same rules the coordinator applies
// (document.ApplyWriterEdits) and sends the edited document back; an edit
// the rules refuse fails the event with a message naming the field.
// docs/documents.md says which field belongs to whom.
type Components struct {
	view  *document.BackupComponents // attributes + this instance's WRITER_COMPONENTS only
	own   *document.WriterComponents // in view; nil when the requester selected none
	orig  *document.BackupComponents // view as received, to check the edits against
	phase document.Phase             // PhaseReadOnly: edits are dropped
}

// componentsFromXML builds the writer's view of a BCD. Whatever the
// coordinator sent, only this instance's components are kept, so that
// nothing else can be edited or echoed back.
func componentsFromXML(bcd string, instance uuid.UUID, phase document.Phase) (*Components, error) {
	c := &Components{phase: phase}
	if bcd == "" {
		return c, nil
	}
	doc, err := document.ParseBackupComponents([]byte(bcd))
	if err != nil {
		return nil, err
	}
	c.view = doc.ForWriter(instance)
	c.own = c.view.Writer(instance)
	c.orig = c.view.Clone()
	return c, nil
}

// List returns the writer's components in document order. The pointers
// refer to the document: edits through them are what is sent back.
func (c *Components) List() []*document.ComponentState {
	if c == nil || c.own == nil {
		return nil
	}
	out := make([]*document.ComponentState, len(c.own.Components))
	for i := range c.own.Components {
		out[i] = &c.own.Components[i]
	}
	return out
}

// Get returns one component, or nil if the requester did not include it.
func (c *Components) Get(logicalPath, name string) *document.ComponentState {
	if c == nil || c.own == nil {
		return nil
	}
	return c.own.Component(logicalPath, name)
}

// Writable reports whether edits in this event reach the requester.
func (c *Components) Writable() bool { return c != nil && c.phase != document.PhaseReadOnly }

// Document returns the whole view: the document attributes (backup type,
// snapshot set, partial file support, ...) and this writer's
// WRITER_COMPONENTS. It is nil when the event carried no document.
func (c *Components) Document() *document.BackupComponents {
	if c == nil {
		return nil
	}
	return c.view
}

// result returns what goes back in EventResult.bcd_xml ("" when nothing
// may or can be sent), or why the writer's edits cannot be sent.
func (c *Components) result(instance uuid.UUID) (string, error) {
	if c == nil || c.phase == document.PhaseReadOnly || c.own == nil {
		return "", nil
	}
	if err := c.orig.Clone().ApplyWriterEdits(c.phase, instance, c.own); err != nil {
		return "", err
	}
	b, err := c.view.Marshal()
	if err != nil {
		return "", err
	}
	return string(b), nil
}
