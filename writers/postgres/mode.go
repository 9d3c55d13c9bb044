package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// strategy is what a mode does with the server around the snapshot. The
// writer owns the session's pinned connection and its life (opened in
// PrepareForSnapshot, closed at Thaw — or, for a mode that holds it past
// Thaw, at PostSnapshot — or at Abort, BackupShutdown or Close, whichever
// comes first) and calls the strategy at each step on it; the strategy
// holds no connection of its own.
type strategy interface {
	mode() Mode
	// check runs in Identify on its short connection: what the mode needs
	// of the server's configuration.
	check(ctx context.Context, conn *pgx.Conn) error
	// prepare runs in PrepareForSnapshot, after the placement check,
	// with s.conn open.
	prepare(ctx context.Context, s *session) error
	// freeze runs in Freeze; it must return at once. s.conn is open when
	// PrepareForSnapshot ran.
	freeze(ctx context.Context, s *session) error
	// thaw runs in Thaw, once the snapshot exists, before the writer
	// closes s.conn (which may be nil) — unless holdsPastThaw.
	thaw(ctx context.Context, s *session) error
	// holdsPastThaw: the writer keeps s.conn open after Thaw, for
	// postSnapshot (the hold record still ends at Thaw).
	holdsPastThaw() bool
	// postSnapshot runs in PostSnapshot with s.conn open (a mode that
	// holds past Thaw), before the backup metadata is written.
	postSnapshot(ctx context.Context, s *session) error
	// abandon runs when the session ends otherwise (Abort,
	// BackupShutdown, Close) before the writer closes s.conn (not nil).
	abandon(ctx context.Context, s *session) error
}

func newStrategy(cfg Config) (strategy, error) {
	switch cfg.Mode {
	case ModeSnapshot:
		return &snapshotMode{checkpoint: !cfg.NoCheckpoint}, nil
	case ModePITR:
		return &pitrMode{}, nil
	}
	return nil, fmt.Errorf("postgres writer: mode %q: say %q (crash-consistent snapshots) or %q (point-in-time recovery)", cfg.Mode, ModeSnapshot, ModePITR)
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

func (*snapshotMode) check(context.Context, *pgx.Conn) error { return nil }

func (m *snapshotMode) prepare(ctx context.Context, s *session) error {
	if m.checkpoint {
		start := time.Now()
		if _, err := s.conn.Exec(ctx, "CHECKPOINT"); err != nil {
			return fail(ctx, err, "CHECKPOINT (the role needs pg_checkpoint or superuser; --checkpoint=false skips it)")
		}
		s.log.Info("checkpoint", "session", s.id.String(), "took", time.Since(start))
	}
	return readCheckpoint(ctx, s)
}

// readCheckpoint records where recovery of the snapshot will start, for
// the backup's metadata: the redo point of the checkpoint just made (or
// of the last one). pg_control_checkpoint() is readable by every role.
func readCheckpoint(ctx context.Context, s *session) error {
	var ckpt, redo string
	var tli int32
	err := s.conn.QueryRow(ctx, "SELECT checkpoint_lsn::text, redo_lsn::text, timeline_id FROM pg_control_checkpoint()").Scan(&ckpt, &redo, &tli)
	if err != nil {
		return fail(ctx, err, "reading pg_control_checkpoint()")
	}
	s.info.CheckpointLSN, s.info.RedoLSN, s.info.Timeline = ckpt, redo, tli
	return nil
}

func (*snapshotMode) freeze(context.Context, *session) error       { return nil }
func (*snapshotMode) thaw(context.Context, *session) error         { return nil }
func (*snapshotMode) holdsPastThaw() bool                          { return false }
func (*snapshotMode) postSnapshot(context.Context, *session) error { return nil }
func (*snapshotMode) abandon(context.Context, *session) error      { return nil }

// pitrMode makes the snapshot a base backup for point-in-time recovery:
// pg_backup_start (a fast checkpoint) before the snapshot and
// pg_backup_stop after it, on the session's pinned connection, since a
// non-exclusive backup belongs to the server session that started it. The
// stop's backup_label and tablespace_map are what turn the snapshot's
// files into a base backup: they go into the component's backup metadata,
// and a restore writes them back beside recovery.signal and a recovery
// target; the server then replays archived WAL up to that target. The stop
// is at PostSnapshot, not Thaw: it waits until the WAL the backup needs is
// archived, which must not lengthen the Freeze→Thaw window. Abandoning the
// session closes the connection, which ends the server's backup.
type pitrMode struct{}

func (*pitrMode) mode() Mode { return ModePITR }

// check refuses a server that does not archive WAL: a base backup without
// its WAL restores to no point at all.
func (*pitrMode) check(ctx context.Context, conn *pgx.Conn) error {
	var archiveMode, archiveCommand, archiveLibrary, walLevel string
	err := conn.QueryRow(ctx, "SELECT current_setting('archive_mode'), current_setting('archive_command'), "+
		"coalesce(current_setting('archive_library', true), ''), current_setting('wal_level')").
		Scan(&archiveMode, &archiveCommand, &archiveLibrary, &walLevel)
	if err != nil {
		return fail(ctx, err, "reading archive_mode, archive_command and wal_level")
	}
	switch {
	case archiveMode == "off":
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"postgres writer: --mode pitr needs WAL archiving, and archive_mode is off: set archive_mode = on and an archive_command, "+
				"then restart the server (docs/writer-postgres.md, \"Point-in-time recovery\")")
	case archiveCommand == "" && archiveLibrary == "":
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"postgres writer: --mode pitr needs WAL archiving, and neither archive_command nor archive_library is set: "+
				"set one and reload the server (docs/writer-postgres.md, \"Point-in-time recovery\")")
	case walLevel == "minimal":
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"postgres writer: --mode pitr needs wal_level replica or logical, not minimal: set it and restart the server")
	}
	return nil
}

func (*pitrMode) prepare(ctx context.Context, s *session) error {
	start := time.Now()
	var lsn string
	label := "lvss " + s.id.String()
	if err := s.conn.QueryRow(ctx, "SELECT pg_backup_start($1, true)::text", label).Scan(&lsn); err != nil {
		return fail(ctx, err, "pg_backup_start (the role needs EXECUTE on pg_backup_start and pg_backup_stop, or superuser)")
	}
	s.log.Info("backup started", "session", s.id.String(), "start_lsn", lsn, "took", time.Since(start))
	s.info.Extra = map[string]string{"start_lsn": lsn}
	return readCheckpoint(ctx, s)
}

func (*pitrMode) freeze(context.Context, *session) error { return nil }
func (*pitrMode) thaw(context.Context, *session) error   { return nil }
func (*pitrMode) holdsPastThaw() bool                    { return true }

func (*pitrMode) postSnapshot(ctx context.Context, s *session) error {
	start := time.Now()
	var lsn, label, spcmap string
	err := s.conn.QueryRow(ctx, "SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop(true)").Scan(&lsn, &label, &spcmap)
	if err != nil {
		return fail(ctx, err, "pg_backup_stop (it waits until the WAL the backup needs is archived: check archive_command)")
	}
	s.log.Info("backup stopped", "session", s.id.String(), "stop_lsn", lsn, "took", time.Since(start))
	if s.info.Extra == nil {
		s.info.Extra = map[string]string{}
	}
	s.info.Extra["stop_lsn"], s.info.Extra["backup_label"] = lsn, label
	if spcmap != "" {
		s.info.Extra["tablespace_map"] = spcmap
	}
	return nil
}

func (*pitrMode) abandon(context.Context, *session) error { return nil }
