package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// closeTimeout bounds closing the pinned connection (a Terminate message
// and the socket's close) when the caller's context has no deadline.
const closeTimeout = 5 * time.Second

// backupInfo is what PostSnapshot records in the component's backup
// metadata (as JSON): which cluster, where its files were, and where
// recovery of the snapshot starts. A restore checks it against the
// cluster it restores to; a point-in-time-recovery mode adds its backup
// label here.
type backupInfo struct {
	Mode             Mode              `json:"mode"`
	ServerVersion    string            `json:"server_version"`
	ServerVersionNum int               `json:"server_version_num"`
	SystemIdentifier string            `json:"system_identifier"` // a decimal string: JSON numbers lose 64-bit precision
	DataDirectory    string            `json:"data_directory"`
	WALDirectory     string            `json:"wal_directory"`
	Tablespaces      []tablespaceInfo  `json:"tablespaces,omitempty"`
	CheckpointLSN    string            `json:"checkpoint_lsn,omitempty"`
	RedoLSN          string            `json:"redo_lsn,omitempty"`
	Timeline         int32             `json:"timeline,omitempty"`
	Extra            map[string]string `json:"extra,omitempty"` // a mode's own (backup_label, tablespace_map)
}

type tablespaceInfo struct {
	OID      uint32 `json:"oid"`
	Name     string `json:"name"`
	Location string `json:"location"`
}

// session is one backup session the writer takes part in, from
// PrepareForBackup (or the first event that names it) to BackupShutdown.
// Its fields are guarded by Writer.mu.
type session struct {
	id  uuid.UUID
	log *slog.Logger

	// conn is the session's one connection, pinned from
	// PrepareForSnapshot until Thaw, Abort, BackupShutdown or Close. It is
	// never a pool: a future mode's server-side state (pg_backup_start)
	// belongs to this one server session.
	conn     *pgx.Conn
	openedAt time.Time
	layout   *layout // as checked in PrepareForSnapshot
	info     backupInfo

	// The hold: from Freeze until the release. In snapshot mode nothing
	// of the application is blocked; lockedAt is when Freeze finished.
	frozen             bool
	freezeAt, lockedAt time.Time
}

// endHold logs the hold record when the session was frozen, and returns
// when the hold ended.
func (s *session) endHold(by string) time.Time {
	releasing := time.Now()
	if s.frozen {
		// Exactly the attributes the operators' and tests' tooling reads.
		s.log.Info("postgres released", "session", s.id.String(), "by", by, "held", releasing.Sub(s.lockedAt),
			"freeze_at", s.freezeAt, "locked_at", s.lockedAt, "release_at", releasing)
		s.frozen = false
	}
	return releasing
}

// release closes the pinned connection, if open, and logs the hold
// record when the session was frozen. It returns the error of closing,
// which changes nothing: the connection is gone either way.
func (s *session) release(ctx context.Context, by string) error {
	releasing := s.endHold(by)
	if s.conn == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok || ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
	}
	err := s.conn.Close(ctx)
	s.conn = nil
	s.log.Debug("connection closed", "session", s.id.String(), "by", by, "open_for", releasing.Sub(s.openedAt))
	return err
}
