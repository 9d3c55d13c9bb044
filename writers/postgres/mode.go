package postgres

import (
	"context"
	"fmt"
	"time"
)

// strategy is what a mode does with the server around the snapshot. The
// writer owns the session's pinned connection and its life (opened in
// PrepareForSnapshot, closed at Thaw, Abort, BackupShutdown or Close,
// whichever comes first) and calls the strategy at each step on it; the
// strategy holds no connection of its own.
//
// The planned point-in-time-recovery mode fits in here without changes
// to the writer: prepare runs pg_backup_start (its own checkpoint) on the
// pinned connection, which must stay open until pg_backup_stop because a
// non-exclusive backup belongs to its session; thaw runs pg_backup_stop
// and keeps the returned backup_label and tablespace_map in the session's
// backupInfo, which PostSnapshot writes into the component's backup
// metadata for the restore side; abandon just lets the connection close,
// which ends the server's backup.
type strategy interface {
	mode() Mode
	// prepare runs in PrepareForSnapshot, after the placement check,
	// with s.conn open.
	prepare(ctx context.Context, s *session) error
	// freeze runs in Freeze; it must return at once. s.conn is open when
	// PrepareForSnapshot ran.
	freeze(ctx context.Context, s *session) error
	// thaw runs in Thaw, once the snapshot exists, before the writer
	// closes s.conn (which may be nil).
	thaw(ctx context.Context, s *session) error
	// abandon runs when the session ends otherwise (Abort,
	// BackupShutdown, Close) before the writer closes s.conn (not nil).
	abandon(ctx context.Context, s *session) error
}

func newStrategy(cfg Config) (strategy, error) {
	switch cfg.Mode {
	case ModeSnapshot:
		return &snapshotMode{checkpoint: !cfg.NoCheckpoint}, nil
	}
	return nil, fmt.Errorf("postgres writer: mode %q: the only mode is %q (crash-consistent snapshots)", cfg.Mode, ModeSnapshot)
}

// snapshotMode relies on the snapshot being crash-consistent: data, WAL
// and tablespaces captured at one instant (checked before prepare) hold
// every commit acknowledged before that instant, and a server started on
// them recovers as after a power failure. Nothing has to be held while the
// snapshot is taken. The CHECKPOINT in prepare only makes that recovery
// short: it replays the WAL written since the last checkpoint.
type snapshotMode struct {
	checkpoint bool
}

func (*snapshotMode) mode() Mode { return ModeSnapshot }

func (m *snapshotMode) prepare(ctx context.Context, s *session) error {
	if m.checkpoint {
		start := time.Now()
		if _, err := s.conn.Exec(ctx, "CHECKPOINT"); err != nil {
			return fail(ctx, err, "CHECKPOINT (the role needs pg_checkpoint or superuser; --checkpoint=false skips it)")
		}
		s.log.Info("checkpoint", "session", s.id.String(), "took", time.Since(start))
	}
	// Where recovery of the snapshot will start, for the backup's
	// metadata: the redo point of the checkpoint just made (or of the
	// last one). pg_control_checkpoint() is readable by every role.
	var ckpt, redo string
	var tli int32
	err := s.conn.QueryRow(ctx, "SELECT checkpoint_lsn::text, redo_lsn::text, timeline_id FROM pg_control_checkpoint()").Scan(&ckpt, &redo, &tli)
	if err != nil {
		return fail(ctx, err, "reading pg_control_checkpoint()")
	}
	s.info.CheckpointLSN, s.info.RedoLSN, s.info.Timeline = ckpt, redo, tli
	return nil
}

func (*snapshotMode) freeze(context.Context, *session) error  { return nil }
func (*snapshotMode) thaw(context.Context, *session) error    { return nil }
func (*snapshotMode) abandon(context.Context, *session) error { return nil }
