package writer

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// DefaultFreezeTimeout is the Freeze→Thaw window a writer gets when it asks
// for none, as CVssWriter::Initialize's dwTimeoutFreeze default.
const DefaultFreezeTimeout = 60 * time.Second

// Identity is what a writer says about itself when it subscribes
// (CVssWriter::Initialize). It is sent once per subscription; the
// coordinator answers with a fresh instance ID each time.
type Identity struct {
	// ClassID is fixed per writer product: every instance of the product,
	// on every machine and in every version, uses the same one.
	ClassID uuid.UUID
	// Name is the friendly name requesters show.
	Name string
	// InstanceName tells several instances of one class apart (two
	// PostgreSQL clusters). It must be persistent across restarts and unique
	// per class; restore events need it. Optional for single-instance
	// writers.
	InstanceName string
	Usage        vss.UsageType  // zero = USERDATA
	Source       vss.SourceType // zero = OTHER
	Level        vss.AppLevel   // zero = FRONT_END
	// FreezeTimeout is the longest the writer agrees to hold its application
	// frozen. Zero = 60 s. The coordinator may lower it to its own maximum;
	// the lower of the two is enforced.
	FreezeTimeout              time.Duration
	MajorVersion, MinorVersion uint32
}

// withDefaults fills the zero values the way CVssWriter's default arguments
// do, so that an Identity literal with only ClassID and Name is complete.
func (id Identity) withDefaults() Identity {
	if id.Usage == vss.UsageUndefined {
		id.Usage = vss.UsageUserData
	}
	if id.Source == vss.SourceUndefined {
		id.Source = vss.SourceOther
	}
	if id.Level == vss.LevelUnknown {
		id.Level = vss.LevelFrontEnd
	}
	if id.FreezeTimeout <= 0 {
		id.FreezeTimeout = DefaultFreezeTimeout
	}
	return id
}

func (id Identity) validate() error {
	if id.ClassID == uuid.Nil {
		return vsserr.New(vsserr.InvalidArg, "writer identity: ClassID is GUID_NULL")
	}
	if id.Name == "" {
		return vsserr.New(vsserr.InvalidArg, "writer identity: Name is empty")
	}
	if id.FreezeTimeout > time.Duration(^uint32(0))*time.Millisecond {
		return vsserr.New(vsserr.InvalidArg, "writer identity: FreezeTimeout %s does not fit the wire", id.FreezeTimeout)
	}
	return nil
}

func (id Identity) hello() *v1.Hello {
	return &v1.Hello{
		WriterId:        id.ClassID.String(),
		Name:            id.Name,
		InstanceName:    id.InstanceName,
		Usage:           int32(id.Usage),
		Source:          int32(id.Source),
		Level:           int32(id.Level),
		FreezeTimeoutMs: uint32(id.FreezeTimeout / time.Millisecond),
		MajorVersion:    id.MajorVersion,
		MinorVersion:    id.MinorVersion,
	}
}

// Writer is what every writer implements: the pure virtual methods of
// CVssWriter plus Identify. Each handler gets a context that ends at the
// coordinator's deadline for the event, when an Abort for the same session
// arrives, when the Freeze→Thaw window of another session expires, or when
// the connection to lvssd is lost; a handler that waits on anything must
// watch it.
type Writer interface {
	// Identify describes the writer's components and files in md. It must
	// be deterministic and keep no session state: requesters call it at
	// any time, also in the middle of another session's backup. It cannot
	// veto anything: an error makes the writer FAILED_AT_IDENTIFY and
	// leaves it out of that metadata gathering.
	Identify(ctx context.Context, md *Metadata) error
	// Freeze stops the application from writing to its files. It should
	// be quick: the whole snapshot set waits for the slowest writer. The
	// Freeze→Thaw window starts when Freeze returns.
	Freeze(ctx context.Context, ev *Event) error
	// Thaw resumes normal writing and undoes what Freeze did.
	Thaw(ctx context.Context, ev *Event) error
	// Abort undoes whatever PrepareSnapshot and Freeze did for the session
	// and returns the application to normal running. It can arrive in any
	// phase, also when nothing is frozen, and more than once: it must be
	// idempotent. Its error is reported but changes nothing: the SDK
	// treats the session as released either way.
	Abort(ctx context.Context, ev *Event) error
}

// PrepareBackuper handles PrepareForBackup: inspect the backup type and the
// selected components, set backup metadata, partial and differenced files,
// start long work that must end before Freeze. c may be edited.
type PrepareBackuper interface {
	PrepareBackup(ctx context.Context, ev *Event, c *Components) error
}

// PrepareSnapshotter handles PrepareForSnapshot: heavy pre-freeze work
// (checkpoints, draining queues) and the check that the writer's paths are
// captured as it needs (Event.SharedInstant). Whatever it locks must be
// released on Abort or BackupShutdown, whichever comes first.
type PrepareSnapshotter interface {
	PrepareSnapshot(ctx context.Context, ev *Event) error
}

// PostSnapshotter handles PostSnapshot: clean up after the freeze, set
// backup stamps, auto-recover the snapshot through Placement.DevicePath.
// c may be edited; this is the last chance in a backup.
type PostSnapshotter interface {
	PostSnapshot(ctx context.Context, ev *Event, c *Components) error
}

// BackupCompleter handles BackupComplete (truncate logs when the requester
// says the backup succeeded). c is read-only: edits are not sent.
type BackupCompleter interface {
	BackupComplete(ctx context.Context, ev *Event, c *Components) error
}

// BackupShutdowner handles BackupShutdown: forget the session. It may come
// without BackupComplete (aborted or crashed requester); ev.SnapshotSetID is
// GUID_NULL when no snapshot set was made.
type BackupShutdowner interface {
	BackupShutdown(ctx context.Context, ev *Event) error
}

// PreRestorer handles PreRestore: take the application offline for the
// selected components, set restore targets and directed targets. c may be
// edited.
type PreRestorer interface {
	PreRestore(ctx context.Context, ev *Event, c *Components) error
}

// PostRestorer handles PostRestore: check the restored files, recover,
// bring the application back. c is read-only.
type PostRestorer interface {
	PostRestore(ctx context.Context, ev *Event, c *Components) error
}

// EventType names a coordinator event.
type EventType int32

// Event types, numbered as on the wire.
const (
	EventUnspecified     = EventType(v1.EventType_EVENT_UNSPECIFIED)
	EventIdentify        = EventType(v1.EventType_EVENT_IDENTIFY)
	EventPrepareBackup   = EventType(v1.EventType_EVENT_PREPARE_BACKUP)
	EventPrepareSnapshot = EventType(v1.EventType_EVENT_PREPARE_SNAPSHOT)
	EventFreeze          = EventType(v1.EventType_EVENT_FREEZE)
	EventThaw            = EventType(v1.EventType_EVENT_THAW)
	EventPostSnapshot    = EventType(v1.EventType_EVENT_POST_SNAPSHOT)
	EventAbort           = EventType(v1.EventType_EVENT_ABORT)
	EventBackupComplete  = EventType(v1.EventType_EVENT_BACKUP_COMPLETE)
	EventBackupShutdown  = EventType(v1.EventType_EVENT_BACKUP_SHUTDOWN)
	EventPreRestore      = EventType(v1.EventType_EVENT_PRE_RESTORE)
	EventPostRestore     = EventType(v1.EventType_EVENT_POST_RESTORE)
)

var eventNames = map[EventType]string{
	EventUnspecified:     "Unspecified",
	EventIdentify:        "Identify",
	EventPrepareBackup:   "PrepareBackup",
	EventPrepareSnapshot: "PrepareSnapshot",
	EventFreeze:          "Freeze",
	EventThaw:            "Thaw",
	EventPostSnapshot:    "PostSnapshot",
	EventAbort:           "Abort",
	EventBackupComplete:  "BackupComplete",
	EventBackupShutdown:  "BackupShutdown",
	EventPreRestore:      "PreRestore",
	EventPostRestore:     "PostRestore",
}

func (t EventType) String() string {
	if s, ok := eventNames[t]; ok {
		return s
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}
