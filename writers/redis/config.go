package redis

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// ClassID is the writer class of the Redis writer. It is fixed for the
// product: requesters and restore sessions recognise the writer by it, so
// it never changes. Instances are told apart by Config.InstanceName.
var ClassID = uuid.MustParse("64dffbfa-2d42-4afb-acdc-5de6a32f6504")

// DefaultName is the writer name when Config.Name is empty.
const DefaultName = "redis"

// DefaultAddr is the server address when neither Config.Addr nor
// Config.SocketPath is set: Redis's own default.
const DefaultAddr = "127.0.0.1:6379"

// ComponentName is the name of the writer's one component: the server's
// whole dataset (every logical database lives in the same files).
const ComponentName = "dataset"

// Config says which server the writer covers and how it behaves.
type Config struct {
	// Addr is the server's TCP address, host:port; default DefaultAddr.
	Addr string
	// SocketPath is the server's Unix socket; when set it is used instead
	// of Addr.
	SocketPath string
	// Username is the ACL user (Redis 6 and later); empty = "default".
	Username string
	// Password authenticates Username (or requirepass); empty = none.
	Password string
	// Name is the writer name requesters show; default DefaultName.
	Name string
	// InstanceName tells several Redis writers apart (unique per host,
	// stable across restarts); default the server's address (Addr or
	// SocketPath), which is both for a server that keeps its address.
	InstanceName string
	// FreezeTimeout is the longest the writer agrees to keep the server's
	// writes paused (the Freeze→Thaw window it asks lvssd for); 0 = the
	// SDK's default (60 s). lvssd may grant less. It also bounds the
	// CLIENT PAUSE the writer sends, so that a writer that dies while
	// frozen leaves the server's writes paused no longer than this (plus
	// a second).
	FreezeTimeout time.Duration
	// PersistTimeout bounds how long Freeze waits, under the pause, for
	// the files to match the dataset (the AOF buffer written out, or a
	// BGSAVE finished); 0 = no bound of its own. It is never more than
	// half the time left before Freeze's deadline, so that the snapshot
	// keeps the other half.
	PersistTimeout time.Duration
	// StopCommand, if set, is a shell command line that stops the server
	// ("systemctl stop redis-server"): PreRestore runs it when the server
	// answers and waits until it no longer does, instead of refusing.
	// Without it the writer never stops the server (decision L40).
	StopCommand string
	// StartCommand, if set, is a shell command line that starts the server
	// ("systemctl start redis-server"): PostRestore runs it after checking
	// the restored files (VSS_RS_ALL), or after a restore that wrote
	// nothing (VSS_RS_NONE) when StopCommand stopped the server in that
	// session, and waits until it answers PING (loading done). Without it
	// the server is left stopped.
	StartCommand string
	// Logger receives the writer's records (pauses, persistence waits,
	// releases and how long the server was held). Nil discards them.
	Logger *slog.Logger
}

// network and address are what go-redis dials.
func (c *Config) network() (string, string) {
	if c.SocketPath != "" {
		return "unix", c.SocketPath
	}
	return "tcp", c.Addr
}

// server names the server in messages.
func (c *Config) server() string {
	if c.SocketPath != "" {
		return "unix:" + c.SocketPath
	}
	return c.Addr
}

// New checks cfg and returns the writer's identity, for writer.Run, and
// the writer. It does not connect: the server is first asked at Identify,
// and the writer's connection is opened at PrepareSnapshot.
func New(cfg Config) (writer.Identity, *Writer, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.FreezeTimeout < 0 || cfg.PersistTimeout < 0 {
		return writer.Identity{}, nil, fmt.Errorf("redis writer: negative timeout")
	}
	if cfg.FreezeTimeout == 0 {
		cfg.FreezeTimeout = writer.DefaultFreezeTimeout
	}
	if cfg.SocketPath != "" {
		if !filepath.IsAbs(cfg.SocketPath) {
			return writer.Identity{}, nil, fmt.Errorf("redis writer: socket path %q is not absolute", cfg.SocketPath)
		}
		cfg.SocketPath = filepath.Clean(cfg.SocketPath)
	} else {
		if cfg.Addr == "" {
			cfg.Addr = DefaultAddr
		}
		if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
			return writer.Identity{}, nil, fmt.Errorf("redis writer: address %q: %v", cfg.Addr, err)
		}
	}
	if cfg.InstanceName == "" {
		cfg.InstanceName = cfg.server()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	id := writer.Identity{
		ClassID:      ClassID,
		Name:         cfg.Name,
		InstanceName: cfg.InstanceName,
		Usage:        vss.UsageUserData,
		// MULTI/EXEC blocks apply whole or not at all, and the files a
		// restart loads end at a command boundary: a transacted store in
		// VSS's sense, though without rollback.
		Source: vss.SourceTransactedDB,
		// Back-end: Redis is the store under applications, which front-end
		// writers quiesce first (D5).
		Level:         vss.LevelBackEnd,
		FreezeTimeout: cfg.FreezeTimeout,
	}
	return id, newWriter(cfg), nil
}
