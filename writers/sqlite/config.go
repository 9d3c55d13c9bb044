package sqlite

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// ClassID is the writer class of the SQLite writer. It is fixed for the
// product: requesters and restore sessions recognise the writer by it, so
// it never changes. Instances are told apart by Config.InstanceName.
var ClassID = uuid.MustParse("5d1e5c9b-340c-4dc2-8583-b1f60ab181c3")

// DefaultName is the writer name when Config.Name is empty.
const DefaultName = "sqlite"

// DefaultLockTimeout is how long Freeze waits for a database's write lock
// when Config.LockTimeout is zero.
const DefaultLockTimeout = 5 * time.Second

// CheckpointMode is what PrepareSnapshot asks of a WAL database: one of
// SQLite's wal_checkpoint modes, or none.
type CheckpointMode string

// Checkpoint modes. See Config.Checkpoint.
const (
	CheckpointPassive  CheckpointMode = "PASSIVE"
	CheckpointFull     CheckpointMode = "FULL"
	CheckpointRestart  CheckpointMode = "RESTART"
	CheckpointTruncate CheckpointMode = "TRUNCATE"
	CheckpointNone     CheckpointMode = "NONE"
)

// Config says which databases the writer covers and how it behaves.
type Config struct {
	// Databases are the database files, as absolute paths. Each becomes
	// one component. They need not exist when New is called; one that does
	// not exist fails Identify.
	Databases []string
	// Name is the writer name requesters show; default DefaultName.
	Name string
	// InstanceName tells several SQLite writers apart (it must be unique
	// per host and stable across restarts). Optional.
	InstanceName string
	// FreezeTimeout is the longest the writer agrees to hold the databases
	// frozen (the Freeze→Thaw window it asks lvssd for); 0 = the SDK's
	// default (60 s). lvssd may grant less.
	FreezeTimeout time.Duration
	// LockTimeout bounds how long Freeze waits for a database's write lock
	// while the application is writing; 0 = DefaultLockTimeout. It is also
	// never more than half the time left before Freeze's deadline, so that
	// a slow lock leaves room for the snapshot. Giving up fails Freeze
	// with VSS_E_WRITERERROR_RETRYABLE.
	LockTimeout time.Duration
	// Checkpoint is the wal_checkpoint mode PrepareSnapshot runs on WAL
	// databases; "" = CheckpointPassive, which never blocks the
	// application. FULL, RESTART and TRUNCATE wait for the application's
	// writers and readers, and hold its writers off while they wait
	// (bounded by PrepareSnapshot's deadline); TRUNCATE leaves the
	// smallest -wal in the snapshot. docs/writer-sqlite.md has
	// measurements.
	Checkpoint CheckpointMode
	// Level is the writer's application level; 0 = vss.LevelFrontEnd, for
	// the usual SQLite database, embedded in the application that writes
	// it. vss.LevelBackEnd when the writing application has a writer of its
	// own (front-end, perhaps on another host of a cluster set) that must be
	// quiesced before the database's write lock is taken (D5); or
	// vss.LevelSystem.
	Level vss.AppLevel
	// Logger receives the writer's records (locks taken and released, how
	// long they were held, checkpoints). Nil discards them.
	Logger *slog.Logger
}

// New checks cfg and returns the writer's identity, for writer.Run, and
// the writer. It does not touch the databases: their existence is checked
// at Identify, their connections are opened at PrepareSnapshot.
func New(cfg Config) (writer.Identity, *Writer, error) {
	if len(cfg.Databases) == 0 {
		return writer.Identity{}, nil, fmt.Errorf("sqlite writer: no database given")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.FreezeTimeout < 0 || cfg.LockTimeout < 0 {
		return writer.Identity{}, nil, fmt.Errorf("sqlite writer: negative timeout")
	}
	if cfg.Checkpoint == "" {
		cfg.Checkpoint = CheckpointPassive
	}
	cfg.Checkpoint = CheckpointMode(strings.ToUpper(string(cfg.Checkpoint)))
	switch cfg.Checkpoint {
	case CheckpointPassive, CheckpointFull, CheckpointRestart, CheckpointTruncate, CheckpointNone:
	default:
		return writer.Identity{}, nil, fmt.Errorf("sqlite writer: checkpoint mode %q is none of PASSIVE, FULL, RESTART, TRUNCATE, NONE", cfg.Checkpoint)
	}
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = DefaultLockTimeout
	}
	switch cfg.Level {
	case vss.LevelUnknown:
		cfg.Level = vss.LevelFrontEnd
	case vss.LevelFrontEnd, vss.LevelBackEnd, vss.LevelSystem:
	default:
		return writer.Identity{}, nil, fmt.Errorf("sqlite writer: level %s: want front-end, back-end or system", cfg.Level)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	dbs := make([]*database, 0, len(cfg.Databases))
	for _, p := range cfg.Databases {
		if err := checkPath(p); err != nil {
			return writer.Identity{}, nil, err
		}
		p = filepath.Clean(p)
		if seen[p] {
			return writer.Identity{}, nil, fmt.Errorf("sqlite writer: database %s is listed twice", p)
		}
		seen[p] = true
		dbs = append(dbs, &database{path: p, log: cfg.Logger.With("db", p)})
	}
	id := writer.Identity{
		ClassID:       ClassID,
		Name:          cfg.Name,
		InstanceName:  cfg.InstanceName,
		Usage:         vss.UsageUserData,
		Source:        vss.SourceTransactedDB,
		Level:         cfg.Level,
		FreezeTimeout: cfg.FreezeTimeout,
	}
	return id, newWriter(cfg, dbs), nil
}

// checkPath refuses paths the Writer Metadata Document cannot carry
// exactly: the component is named by the path (no backslash allowed in a
// name) and the file is named by a filespec, where * and ? are wildcards.
func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("sqlite writer: empty database path")
	case !filepath.IsAbs(p):
		return fmt.Errorf("sqlite writer: database path %q is not absolute", p)
	case strings.Contains(p, `\`):
		return fmt.Errorf("sqlite writer: database path %q contains a backslash, which a component name cannot", p)
	case strings.ContainsAny(filepath.Base(p), "*?"):
		return fmt.Errorf("sqlite writer: database file name %q contains a wildcard character (* or ?), which a file set cannot name exactly", filepath.Base(p))
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("sqlite writer: database path %q names a directory", p)
	}
	return nil
}
