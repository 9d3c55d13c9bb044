package postgres

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// ClassID is the writer class of the PostgreSQL writer. It is fixed for the
// product: requesters and restore sessions recognise the writer by it, so
// it never changes. Instances (clusters) are told apart by
// Config.InstanceName.
var ClassID = uuid.MustParse("7fb0b9cd-c65d-4295-9e38-eda7166ef992")

// DefaultName is the writer name when Config.Name is empty.
const DefaultName = "postgres"

// ComponentName is the name of the writer's one component: the whole
// cluster (data directory, WAL directory and tablespaces), which can only
// be backed up as one unit.
const ComponentName = "cluster"

// DefaultConnectTimeout bounds each connection attempt when neither
// Config.ConnectTimeout nor the DSN (connect_timeout, PGCONNECT_TIMEOUT)
// sets one. The event's deadline bounds it too.
const DefaultConnectTimeout = 10 * time.Second

// MinServerVersion is the oldest server the writer supports (as
// server_version_num): PostgreSQL 15, which has the pg_checkpoint role for
// a CHECKPOINT without superuser and pg_backup_start/pg_backup_stop, which
// a point-in-time-recovery mode will use.
const MinServerVersion = 150000

// Mode is how the writer makes the cluster restorable from a snapshot.
type Mode string

// ModeSnapshot is the crash-consistent mode: the snapshot set captures
// data, WAL and tablespaces at one instant, and a server started on the
// copy recovers as after a power failure.
const ModeSnapshot Mode = "snapshot"

// ModePITR makes each snapshot a base backup for point-in-time recovery:
// pg_backup_start before the snapshot, pg_backup_stop after it, the
// backup label kept in the component's backup metadata; the server must
// archive its WAL (mode.go, pitrMode).
const ModePITR Mode = "pitr"

// Config says which server the writer covers and how it behaves.
type Config struct {
	// DSN is a libpq connection string ("host=/run/postgresql user=postgres")
	// or URL ("postgres://lvss@localhost/postgres"). Whatever it leaves out
	// comes from the PG* environment variables (PGHOST, PGPORT, PGUSER,
	// PGPASSWORD, PGPASSFILE, PGSERVICE, PGSSLMODE, ...) and libpq's
	// defaults, as pgx reads them. "" takes everything from there.
	//
	// The server must run on this machine (the writer reads its data
	// directory), and the connection must go to it directly, not through a
	// transaction-pooling proxy: the writer keeps one session across
	// events. The role needs pg_read_all_settings (to read data_directory)
	// and pg_checkpoint (for CHECKPOINT), or superuser.
	DSN string
	// Name is the writer name requesters show; default DefaultName.
	Name string
	// InstanceName tells several PostgreSQL writers apart (one per cluster;
	// unique per host and stable across restarts, e.g. "15/main").
	// Optional with one cluster.
	InstanceName string
	// FreezeTimeout is the Freeze→Thaw window the writer asks lvssd for;
	// 0 = the SDK's default (60 s). Nothing of the application is held
	// during it in snapshot mode, but the writer's connection is.
	FreezeTimeout time.Duration
	// ConnectTimeout bounds each connection attempt; 0 = the DSN's
	// connect_timeout, else DefaultConnectTimeout. The event's deadline
	// bounds it as well.
	ConnectTimeout time.Duration
	// Mode is "" (ModeSnapshot), ModeSnapshot or ModePITR.
	Mode Mode
	// NoCheckpoint skips the CHECKPOINT in PrepareForSnapshot. The snapshot
	// is as consistent without it, but a server started on it replays all
	// WAL written since the last checkpoint (up to checkpoint_timeout's or
	// max_wal_size's worth); the role then needs no pg_checkpoint.
	NoCheckpoint bool
	// DataDir is the cluster's data directory, for an Identify while the
	// server is stopped (a restore stops it) and the writer has not seen
	// it running since it started. Optional: once the writer has reached
	// the server, it knows the data directory.
	DataDir string
	// RestoreCommand is PostgreSQL's restore_command for the point-in-time
	// recovery of a --mode pitr backup ("cp /srv/pg-archive/%f %p"): the
	// writer cannot know where the WAL archive is. A restore_command in
	// the component's restore options wins over it.
	RestoreCommand string
	// StopCommand, if set, is a shell command line that stops the server
	// ("systemctl stop postgresql@15-main"): PreRestore runs it when the
	// server runs on the cluster being restored and waits until it is
	// stopped, instead of refusing. Without it the writer never stops the
	// server (decision L40).
	StopCommand string
	// StartCommand, if set, is a shell command line that starts the server
	// ("systemctl start postgresql@15-main"): PostRestore runs it after
	// preparing a restored cluster (VSS_RS_ALL), or after a restore that
	// wrote nothing (VSS_RS_NONE) when StopCommand stopped the server in
	// that session, and waits until the server accepts connections (and,
	// after a point-in-time recovery, has promoted). Without it the server
	// is left stopped.
	StartCommand string
	// Logger receives the writer's records (connections, checkpoints, each
	// hold and its release). Nil discards them.
	Logger *slog.Logger
}

// New checks cfg and returns the writer's identity, for writer.Run, and
// the writer. It parses the DSN (with the PG* environment) but does not
// connect: the server is reached at Identify and PrepareForSnapshot.
func New(cfg Config) (writer.Identity, *Writer, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.FreezeTimeout < 0 || cfg.ConnectTimeout < 0 {
		return writer.Identity{}, nil, fmt.Errorf("postgres writer: negative timeout")
	}
	if cfg.DataDir != "" && !filepath.IsAbs(cfg.DataDir) {
		return writer.Identity{}, nil, fmt.Errorf("postgres writer: --data-dir %q is not an absolute path", cfg.DataDir)
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeSnapshot
	}
	strat, err := newStrategy(cfg)
	if err != nil {
		return writer.Identity{}, nil, err
	}
	pc, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's message names the part that does not parse and hides
		// passwords.
		return writer.Identity{}, nil, fmt.Errorf("postgres writer: --dsn: %w", err)
	}
	switch {
	case cfg.ConnectTimeout > 0:
		pc.ConnectTimeout = cfg.ConnectTimeout
	case pc.ConnectTimeout <= 0:
		pc.ConnectTimeout = DefaultConnectTimeout
	}
	if _, ok := pc.RuntimeParams["application_name"]; !ok {
		// So that an operator recognises the writer's session in
		// pg_stat_activity.
		pc.RuntimeParams["application_name"] = "lvss-writer"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	id := writer.Identity{
		ClassID:       ClassID,
		Name:          cfg.Name,
		InstanceName:  cfg.InstanceName,
		Usage:         vss.UsageUserData,
		Source:        vss.SourceTransactedDB,
		Level:         vss.LevelBackEnd,
		FreezeTimeout: cfg.FreezeTimeout,
	}
	return id, newWriter(cfg, pc, strat), nil
}
