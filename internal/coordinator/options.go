package coordinator

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/provider"
)

// Timeouts are the coordinator's named deadlines (architecture: "Timeouts").
type Timeouts struct {
	Identify        time.Duration
	PrepareBackup   time.Duration
	PrepareSnapshot time.Duration
	Freeze          time.Duration // upper bound of every writer's Freeze→Thaw window
	Thaw            time.Duration
	PostSnapshot    time.Duration
	BackupComplete  time.Duration
	BackupShutdown  time.Duration
	Abort           time.Duration
	Restore         time.Duration // a writer's answer to PreRestore and PostRestore
	Hold            time.Duration // provider commit (flush-and-hold) window
	CreationLease   time.Duration
	// ProviderCall bounds each provider call of a creation that no
	// requester can cancel or that must not wait for one (L45):
	// EndPrepare, PreCommit, every call after the commit, and the
	// AbortSnapshots and DeleteSnapshot that undo a failed set.
	// CommitSnapshots has the hold window instead.
	ProviderCall time.Duration
	// RequesterSend bounds how long a response may wait for its requester
	// to read it; past it the requester's stream is ended and its session
	// released.
	RequesterSend time.Duration
}

// DefaultTimeouts are VSS's where VSS has one, generous elsewhere.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		Identify: 30 * time.Second, PrepareBackup: 60 * time.Second, PrepareSnapshot: 120 * time.Second,
		Freeze: 60 * time.Second, Thaw: 60 * time.Second, PostSnapshot: 60 * time.Second,
		BackupComplete: 60 * time.Second, BackupShutdown: 30 * time.Second, Abort: 30 * time.Second,
		Restore: 120 * time.Second, Hold: 10 * time.Second, CreationLease: 10 * time.Minute, RequesterSend: 30 * time.Second,
		ProviderCall: 120 * time.Second,
	}
}

// Options configure a Coordinator.
type Options struct {
	Catalog   *catalog.DB
	Providers *provider.Registry
	Timeouts  Timeouts
	Logger    *slog.Logger
	// Machine is recorded as originating and service machine of snapshots.
	Machine string
	// MaxSnapshotsPerVolume caps the snapshots of one volume (default 512).
	MaxSnapshotsPerVolume int
	// MaxEvents bounds the event log in the catalog: past it, the oldest
	// events are pruned (default DefaultMaxEvents). It may exceed it by
	// less than a pruning step (eventPruneStep) between prunings.
	MaxEvents int
	// Freezer holds filesystems for providers that need it (Info.NeedsFreeze).
	// Nil: sets with such providers fail with VSS_E_PROVIDER_VETO.
	Freezer Freezer
	// Observer is told of sessions, sets, freeze windows and writer
	// failures as they happen (lvssd's metrics). Nil: nobody is told.
	Observer Observer
	// RunDir is lvssd's run directory (tmpfs): the journal's records of
	// the steps a creation takes while writers are frozen go there
	// (journal.go). "": only the catalog's journal entries are kept.
	RunDir string
	// ThawedAtStart are the filesystems lvssd thawed at start from the
	// records of a freeze guard that died holding them; recovery reports
	// them with everything else it did.
	ThawedAtStart []string
	// AdoptSnapshots makes recovery add to the catalog the snapshots the
	// providers hold and the catalog lacks (lvssd --adopt-snapshots, after
	// a damaged catalog was moved aside). Otherwise they are reported.
	AdoptSnapshots bool
	// Clock gives the deadlines (clock.go). Nil: Go's clock. Only tests
	// set another.
	Clock Clock
	// Shares is the Samba that remote exposure publishes snapshots with
	// (share.go, L58); nil (remote exposure off in lvssd's config): remote
	// exposure is VSS_E_NOT_SUPPORTED and recovery leaves Samba alone.
	Shares Shares
	// SnapshotsChanged is called after every change to the snapshots
	// lvssd keeps, whatever made it: a set recorded, DeleteSnapshots,
	// retention, a session's auto-release snapshots deleted, recovery at
	// start, an exposure, a revert (which changes what a snapshot's
	// volume holds, not the catalog). It is called on the path of the
	// call that made the change, sometimes with the coordinator's locks
	// held: it must return at once (signal a goroutine of its own, as
	// lvssd's previous-versions keeper does, L55), and must not call back
	// into the coordinator. Nil: nobody is told.
	SnapshotsChanged func()
}

// Freezer starts a flush-and-hold guard (internal/freeze in lvssd). The
// coordinator starts one before writers freeze, so that starting it is off
// the critical path, and uses it only around the commits that need it.
type Freezer interface {
	Start(ctx context.Context, hold time.Duration) (Hold, error)
}

// Hold is one guard: Freeze holds the filesystems of the given paths;
// Thaw releases them (VSS_E_HOLD_WRITES_TIMEOUT if the guard had to thaw
// on its own because the hold window passed); Close ends the guard,
// thawing if needed. Thaw and Close are idempotent.
type Hold interface {
	Freeze(ctx context.Context, paths []string) error
	Thaw() (time.Duration, error)
	Close() error
}

func (o *Options) fill() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Providers == nil {
		o.Providers = provider.NewRegistry()
	}
	d := DefaultTimeouts()
	fill := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	t := &o.Timeouts
	fill(&t.Identify, d.Identify)
	fill(&t.PrepareBackup, d.PrepareBackup)
	fill(&t.PrepareSnapshot, d.PrepareSnapshot)
	fill(&t.Freeze, d.Freeze)
	fill(&t.Thaw, d.Thaw)
	fill(&t.PostSnapshot, d.PostSnapshot)
	fill(&t.BackupComplete, d.BackupComplete)
	fill(&t.BackupShutdown, d.BackupShutdown)
	fill(&t.Abort, d.Abort)
	fill(&t.Restore, d.Restore)
	fill(&t.Hold, d.Hold)
	fill(&t.CreationLease, d.CreationLease)
	fill(&t.RequesterSend, d.RequesterSend)
	fill(&t.ProviderCall, d.ProviderCall)
	if o.MaxSnapshotsPerVolume <= 0 {
		o.MaxSnapshotsPerVolume = 512
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.Machine == "" {
		o.Machine, _ = os.Hostname()
	}
}
