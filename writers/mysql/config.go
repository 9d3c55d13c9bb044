package mysql

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// ClassID is the writer class of the MySQL/MariaDB writer. It is fixed for
// the product: requesters and restore sessions recognise the writer by it,
// so it never changes. Instances (several servers on one host) are told
// apart by Config.InstanceName.
var ClassID = uuid.MustParse("ccbd0f76-c4b8-4ad1-9316-fbe0ac43ec40")

// DefaultName is the writer name when Config.Name is empty.
const DefaultName = "mysql"

// DefaultDSN is the connection used when Config.DSN is empty: the local
// server's socket on Debian and Ubuntu, as root, whose account there
// authenticates by the client's operating-system user (unix_socket) and
// needs no password when the writer runs as root.
const DefaultDSN = "root@unix(/run/mysqld/mysqld.sock)/"

// DefaultLockTimeout bounds how long a lock statement (BACKUP STAGE, FLUSH
// TABLES WITH READ LOCK) waits for the server's metadata locks when
// Config.LockTimeout is zero.
const DefaultLockTimeout = 5 * time.Second

// dialTimeout bounds connecting when the DSN sets no timeout: an
// unreachable server must fail the event, not use up its deadline.
const dialTimeout = 5 * time.Second

// Strategy is how the writer holds the server's commits.
type Strategy string

// Strategies. See Config.Strategy.
const (
	// StrategyAuto is StrategyBackupStage on MariaDB 10.4.1 or later and
	// StrategyFTWRL on everything else (MySQL, older MariaDB), decided from
	// VERSION() at each PrepareForSnapshot.
	StrategyAuto Strategy = "auto"
	// StrategyBackupStage uses MariaDB's BACKUP STAGE statements: START (and
	// optionally FLUSH and BLOCK_DDL, Config.PrepareStage) at
	// PrepareForSnapshot, BLOCK_COMMIT at Freeze, END at the release.
	StrategyBackupStage Strategy = "backup-stage"
	// StrategyFTWRL uses FLUSH TABLES WITH READ LOCK at Freeze and UNLOCK
	// TABLES at the release; it works on MySQL and MariaDB alike, but
	// blocks every write, not only commits.
	StrategyFTWRL Strategy = "ftwrl"
)

// Stage is a BACKUP STAGE, in the order the server requires.
type Stage string

// The stages the writer may run at PrepareForSnapshot (Config.PrepareStage).
// Freeze always ends at BLOCK_COMMIT; the server runs the stages the writer
// skipped on its way there.
const (
	StageStart    Stage = "START"
	StageFlush    Stage = "FLUSH"
	StageBlockDDL Stage = "BLOCK_DDL"
)

// stages lists the stages from START up to and including s.
func (s Stage) stages() []Stage {
	all := []Stage{StageStart, StageFlush, StageBlockDDL}
	for i, x := range all {
		if x == s {
			return all[:i+1]
		}
	}
	return all[:1]
}

// Config says which server the writer covers and how it holds it.
type Config struct {
	// DSN is the connection in go-sql-driver/mysql's format, e.g.
	// "lvss@unix(/run/mysqld/mysqld.sock)/" or "lvss@tcp(127.0.0.1:3306)/";
	// default DefaultDSN. No database name is needed. A password in it is
	// visible to anyone who can read the writer's command line or
	// configuration: prefer Password.
	DSN string
	// Password, if not empty, replaces the DSN's password (lvss-writer reads
	// it from --password-file).
	Password string
	// Strategy is how the server is held; "" = StrategyAuto.
	Strategy Strategy
	// PrepareStage is how far BACKUP STAGE goes at PrepareForSnapshot with
	// StrategyBackupStage; "" = StageStart. FLUSH also flushes and closes
	// the non-transactional tables no statement uses, and from then on holds
	// off new writes to them; BLOCK_DDL also waits for the writes to them
	// that are running and blocks DDL. What is done at PrepareForSnapshot is
	// not done inside the freeze, but is held longer. docs/writer-mysql.md
	// has measurements.
	PrepareStage Stage
	// Name is the writer name requesters show; default DefaultName.
	Name string
	// InstanceName tells several MySQL writers (servers) apart; it must be
	// unique per host and stable across restarts. Optional.
	InstanceName string
	// FreezeTimeout is the longest the writer agrees to hold the server (the
	// Freeze→Thaw window it asks lvssd for); 0 = the SDK's default (60 s).
	// lvssd may grant less.
	FreezeTimeout time.Duration
	// LockTimeout bounds the wait of each lock statement for the server's
	// metadata locks (the session's lock_wait_timeout, whole seconds, at
	// least 1); 0 = DefaultLockTimeout. It is also never more than half the
	// time left before the event's deadline, nor more than half of
	// FreezeTimeout, so a wait never eats the freeze window. Giving up fails
	// the event with VSS_E_WRITERERROR_RETRYABLE and the server's message.
	LockTimeout time.Duration
	// Level is the writer's application level; 0 = vss.LevelBackEnd: the
	// database is frozen after the front-end applications that write to it
	// and thawed before them.
	Level vss.AppLevel
	// StopCommand, if set, is a shell command line that stops the server
	// ("systemctl stop mariadb"): PreRestore runs it when the server runs
	// and waits until it is stopped (its pid file names no live server
	// and its address refuses connections), instead of refusing. Without
	// it the writer never stops the server (decision L40).
	StopCommand string
	// StartCommand, if set, is a shell command line that starts the server
	// ("systemctl start mariadb"): PostRestore runs it after checking the
	// restored files (VSS_RS_ALL), or after a restore that wrote nothing
	// (VSS_RS_NONE) when StopCommand stopped the server in that session,
	// and waits until the server answers a ping (InnoDB's recovery done).
	// Without it the server is left stopped.
	StartCommand string
	// Logger receives the writer's records (holds taken and released, how
	// long they lasted, the position recorded). Nil discards them.
	Logger *slog.Logger
}

// New checks cfg and returns the writer's identity, for writer.Run, and the
// writer. It does not connect: the server is asked about its files at
// Identify, and the writer's connection is opened at PrepareForSnapshot.
func New(cfg Config) (writer.Identity, *Writer, error) {
	if cfg.DSN == "" {
		cfg.DSN = DefaultDSN
	}
	dc, err := gomysql.ParseDSN(cfg.DSN)
	if err != nil {
		return writer.Identity{}, nil, fmt.Errorf("mysql writer: DSN: %w", err)
	}
	if cfg.Password != "" {
		dc.Passwd = cfg.Password
	}
	if dc.Timeout == 0 {
		dc.Timeout = dialTimeout
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Strategy == "" {
		cfg.Strategy = StrategyAuto
	}
	cfg.Strategy = Strategy(strings.ToLower(string(cfg.Strategy)))
	switch cfg.Strategy {
	case StrategyAuto, StrategyBackupStage, StrategyFTWRL:
	default:
		return writer.Identity{}, nil, fmt.Errorf("mysql writer: strategy %q is none of auto, backup-stage, ftwrl", cfg.Strategy)
	}
	if cfg.PrepareStage == "" {
		cfg.PrepareStage = StageStart
	}
	cfg.PrepareStage = Stage(strings.ToUpper(string(cfg.PrepareStage)))
	switch cfg.PrepareStage {
	case StageStart, StageFlush, StageBlockDDL:
	default:
		return writer.Identity{}, nil, fmt.Errorf("mysql writer: prepare stage %q is none of START, FLUSH, BLOCK_DDL", cfg.PrepareStage)
	}
	if cfg.FreezeTimeout < 0 || cfg.LockTimeout < 0 {
		return writer.Identity{}, nil, fmt.Errorf("mysql writer: negative timeout")
	}
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = DefaultLockTimeout
	}
	if cfg.Level == vss.LevelUnknown {
		cfg.Level = vss.LevelBackEnd
	}
	switch cfg.Level {
	case vss.LevelFrontEnd, vss.LevelBackEnd, vss.LevelSystem, vss.LevelSystemRM:
	default:
		return writer.Identity{}, nil, fmt.Errorf("mysql writer: application level %s is not one a writer can have", cfg.Level)
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
		Level:         cfg.Level,
		FreezeTimeout: cfg.FreezeTimeout,
	}
	return id, newWriter(cfg, dc), nil
}
