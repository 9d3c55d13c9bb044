package coordinator

import (
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
	Hold            time.Duration // provider commit (flush-and-hold) window
	CreationLease   time.Duration
}

// DefaultTimeouts are VSS's where VSS has one, generous elsewhere.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		Identify: 30 * time.Second, PrepareBackup: 60 * time.Second, PrepareSnapshot: 120 * time.Second,
		Freeze: 60 * time.Second, Thaw: 60 * time.Second, PostSnapshot: 60 * time.Second,
		BackupComplete: 60 * time.Second, BackupShutdown: 30 * time.Second, Abort: 30 * time.Second,
		Hold: 10 * time.Second, CreationLease: 10 * time.Minute,
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
}

func (o *Options) fill() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
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
	fill(&t.Hold, d.Hold)
	fill(&t.CreationLease, d.CreationLease)
	if o.Machine == "" {
		o.Machine, _ = os.Hostname()
	}
}
