package freeze

import (
	"errors"
	"log/slog"
	"time"
)

// GuardArg is argv[1] that makes a binary run as the guard. lvssd's main
// starts with
//
//	if len(os.Args) > 1 && os.Args[1] == freeze.GuardArg {
//		os.Exit(freeze.GuardMain(os.Args[2:]))
//	}
//
// before it parses flags, opens the catalog or starts logging: the guard
// must write nothing but its records and its pipe.
const GuardArg = "__lvss-freeze-guard"

// ProtocolVersion is the version of the control protocol between a Guard
// and its guard process. The guard refuses any other version, so a guard
// binary from another build fails at Start, never in the middle of a hold.
const ProtocolVersion = 1

// DefaultHold is the hold window of VSS's kernel flush-and-hold (vss-reference §1.5).
const DefaultHold = 10 * time.Second

// Options configure Start.
type Options struct {
	// Exe is the binary run as the guard (default /proc/self/exe: lvssd
	// itself, which must then dispatch GuardArg to GuardMain).
	Exe string
	// RunDir is lvssd's --run-dir. The guard keeps its records in
	// RunDir/freeze. It must be on a filesystem that is never frozen (a
	// tmpfs); Freeze refuses paths on the filesystem that holds it.
	RunDir string
	// Hold is the hold window (default DefaultHold). It also bounds the
	// flush (syncfs) that precedes the first FIFREEZE.
	Hold time.Duration
	// Logger receives progress, only while nothing is frozen (default:
	// discard).
	Logger *slog.Logger
}

// Stats are the measured durations of one guard's life. Zero where a step
// did not happen.
type Stats struct {
	Spawn   time.Duration // Start: exec of the guard until it reported ready
	Resolve time.Duration // paths → distinct filesystems (statx, mountinfo, open)
	Sync    time.Duration // syncfs of every filesystem, in parallel
	Freeze  time.Duration // first FIFREEZE issued → last FIFREEZE returned
	Thaw    time.Duration // every FITHAW
	Held    time.Duration // first FIFREEZE issued → last FITHAW returned
	Call    time.Duration // Freeze as its caller saw it, request → reply
	// Ended says why the hold ended: "thaw" (asked to), "expired" (hold
	// window), "signal <name>", "parent" (lvssd gone), "failed" (Freeze
	// failed), "aborted" (Freeze's context or flush budget ran out),
	// "protocol", or "killed" (the guard died; its records were recovered).
	Ended       string
	Filesystems []FSStat
}

// FSStat is one frozen filesystem.
type FSStat struct {
	Device     string   // superblock major:minor (mountinfo)
	MountPoint string   // the mount it was frozen through
	Type       string   // btrfs, ext4, xfs, ...
	Paths      []string // the paths given to Freeze that it holds
	Sync       time.Duration
	Freeze     time.Duration
	Thaw       time.Duration
}

// HeldFS is one filesystem a guard holds frozen right now (Held).
type HeldFS struct {
	Device       string // superblock major:minor
	MountPoint   string // the mount it was frozen through
	Type         string
	Paths        []string  // the paths given to Freeze that it holds
	Since        time.Time // just before its FIFREEZE
	GuardPid     int
	GuardRunning bool // false: its guard is gone and it waits for Recover
}

var (
	// ErrFrozenByOther is wrapped (with VSS_E_VOLUME_IN_USE) by a Freeze
	// that met a filesystem someone else had frozen (FIFREEZE gave EBUSY).
	// The guard thaws what it froze itself and leaves that filesystem
	// frozen: its owner must thaw it, and thawing it under the owner would
	// break whatever the owner is doing.
	ErrFrozenByOther = errors.New("filesystem is frozen by someone else")
	// ErrHoldLost is wrapped by Thaw (and Freeze) when the hold ended
	// before it was asked to end: the hold window passed
	// (VSS_E_HOLD_WRITES_TIMEOUT), the guard was signalled or died. A
	// snapshot committed in that hold may not be consistent.
	ErrHoldLost = errors.New("the hold ended before Thaw")
)
