package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writers/internal/appctl"
	"github.com/lvss/lvss/writers/internal/handlerlock"
)

// Writer is the PostgreSQL writer. It implements writer.Writer,
// writer.PrepareBackuper, writer.PrepareSnapshotter,
// writer.PostSnapshotter, writer.BackupShutdowner, writer.PreRestorer and
// writer.PostRestorer. Create it with New,
// serve it with writer.Run, and Close it when Run has returned.
type Writer struct {
	cfg   Config
	pgcfg *pgx.ConnConfig
	strat strategy

	// mu guards everything below. The SDK never runs two handlers at
	// once; mu is for Close, which the host may call from another
	// goroutine.
	mu handlerlock.Lock // also cuts handlers short at Close
	// declared is the layout the most recent Identify put in the Writer
	// Metadata Document: the paths the requester's placements are about.
	declared *layout
	// stopped: the most recent Identify found the server stopped and
	// declared the cluster from its data directory.
	stopped  bool
	sessions map[uuid.UUID]*session
	// app runs the stop and start commands of a restore.
	app appctl.Commands
}

var errClosed = errors.New("the postgres writer was closed")

func newWriter(cfg Config, pc *pgx.ConnConfig, strat strategy) *Writer {
	w := &Writer{cfg: cfg, pgcfg: pc, strat: strat, sessions: map[uuid.UUID]*session{},
		app: appctl.Commands{Stop: cfg.StopCommand, Start: cfg.StartCommand, Log: cfg.Logger}}
	w.mu.Init(errClosed)
	return w
}

// connect opens a connection, bounded by the connect timeout and ctx.
func (w *Writer) connect(ctx context.Context) (*pgx.Conn, error) {
	cc := w.pgcfg.Copy()
	cctx, cancel := context.WithTimeout(ctx, cc.ConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cc)
	if err != nil {
		return nil, fail(ctx, err, "connecting to the server")
	}
	return conn, nil
}

// closeConn closes a connection the writer is done with.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}

// session returns the session's state, creating it for a session the
// writer meets first (after a restart, or without PrepareForBackup).
func (w *Writer) session(id uuid.UUID) *session {
	s := w.sessions[id]
	if s == nil {
		s = &session{id: id, log: w.cfg.Logger}
		w.sessions[id] = s
	}
	return s
}

// Identify declares one FILEGROUP component, "cluster", holding the
// cluster's data directory, its WAL directory and each tablespace as
// recursive file sets (the WAL directory and tablespaces only when they
// lie outside the data directory, whose tree holds them otherwise), with
// postmaster.pid and postmaster.opts excluded: a restored cluster must not
// inherit the running server's lock file. The links in pg_wal and
// pg_tblspc are part of the data directory's tree; their targets are the
// other file sets. The cluster is one component because it is one unit:
// data without its WAL cannot be recovered. A database component cannot
// carry directory trees (its file sets are never recursive), hence a file
// group.
//
// Each Identify connects, reads the layout and disconnects: holding an
// idle connection between backups would take one of the server's
// connection slots for good and notice a restarted server only late.
func (w *Writer) Identify(ctx context.Context, md *writer.Metadata) error {
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	l, stopped, err := w.identifyLayout(ctx)
	if err != nil {
		return err
	}
	// L40: the requester puts the files back over a stopped server
	// (RESTORE_IF_CAN_REPLACE); the writer takes part in every restore
	// (PreRestore checks the server is stopped, PostRestore prepares
	// recovery).
	md.SetRestoreMethod(vss.RMERestoreIfCanReplace, "", restoreProcedure, vss.WREAlways, false)
	version := l.Version
	if f := strings.Fields(version); len(f) > 0 {
		version = f[0] // "15.18", without the packager's note
	}
	caption := fmt.Sprintf("PostgreSQL %s cluster (%s)", version, l.describe())
	if stopped {
		caption = fmt.Sprintf("PostgreSQL %s cluster (%s; server stopped)", version, l.describe())
	}
	if err := md.AddComponent(document.Component{
		Type: vss.ComponentFileGroup, Name: ComponentName, Caption: caption, Selectable: true,
	}); err != nil {
		return err
	}
	for _, r := range l.roots() {
		if err := md.AddFiles("", ComponentName, r.Path, "*", true, "", 0); err != nil {
			return err
		}
	}
	for _, f := range []string{"postmaster.pid", "postmaster.opts"} {
		if err := md.AddExcludeFiles(l.DataDir, f, false); err != nil {
			return err
		}
	}
	if stopped {
		// Declared from the files: the placements of a backup are checked
		// against the server's own layout once it runs again.
		if !w.stopped {
			w.cfg.Logger.Info("the server is not running: cluster declared from its data directory", "data_directory", l.DataDir,
				"wal_directory", l.WALDir, "tablespaces", len(l.Tablespaces))
		}
		w.stopped = true
		return nil
	}
	if w.stopped || w.declared == nil || w.declared.diff(l) != "" {
		w.cfg.Logger.Info("cluster identified", "version", l.Version, "data_directory", l.DataDir,
			"wal_directory", l.WALDir, "tablespaces", len(l.Tablespaces))
	}
	w.declared, w.stopped = l, false
	return nil
}

// identifyLayout reads the cluster's layout from the server. When the
// server cannot be reached and is not running (no live postmaster.pid in
// the data directory the writer last saw, or in Config.DataDir), the
// layout comes from the data directory instead (stopped is true): a
// restore needs the writer to identify while the server is stopped for
// the copy. A server that runs but cannot be reached fails Identify as
// before.
func (w *Writer) identifyLayout(ctx context.Context) (_ *layout, stopped bool, _ error) {
	conn, err := w.connect(ctx)
	if err != nil {
		if l := w.stoppedLayout(); l != nil {
			w.cfg.Logger.Debug("server unreachable and stopped", "err", err)
			return l, true, nil
		}
		return nil, false, err
	}
	defer closeConn(ctx, conn)
	l, err := readLayout(ctx, conn)
	if err != nil {
		return nil, false, err
	}
	if err := w.strat.check(ctx, conn); err != nil {
		return nil, false, err
	}
	return l, false, nil
}

// stoppedLayout is the layout of the cluster while its server is stopped,
// or nil if the writer knows no data directory or a server runs there.
func (w *Writer) stoppedLayout() *layout {
	var l *layout
	switch {
	case w.declared != nil && (w.cfg.DataDir == "" || filepath.Clean(w.cfg.DataDir) == w.declared.DataDir):
		c := *w.declared
		l = &c
	case w.cfg.DataDir != "":
		l = readLayoutOffline(w.cfg.DataDir)
	default:
		return nil
	}
	if _, running, err := postmaster(l.DataDir); err != nil || running {
		return nil
	}
	return l
}

// PrepareBackup notes that the session takes part. In component mode the
// requester included the cluster (the writer's only component), or the
// writer would not be taking part.
func (w *Writer) PrepareBackup(_ context.Context, ev *writer.Event, _ *writer.Components) error {
	if err := w.mu.LockOpen(); err != nil {
		return err
	}
	defer w.mu.Unlock()
	w.session(ev.SessionID)
	return nil
}

// PrepareSnapshot checks that data, WAL and tablespaces are captured at
// one instant (D15) and vetoes with
// VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT otherwise; then it opens the
// session's pinned connection, checks that the layout is still the one
// Identify declared, and runs the mode's preparation (snapshot mode:
// CHECKPOINT, so that recovery of the snapshot is short).
func (w *Writer) PrepareSnapshot(ctx context.Context, ev *writer.Event) (err error) {
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	s := w.session(ev.SessionID)
	defer func() {
		if err != nil && s.conn != nil {
			// A vetoed session gets no Freeze; its connection would only
			// wait for BackupShutdown.
			w.abandon(ctx, s, "failed PrepareSnapshot")
		}
	}()
	if w.declared != nil {
		// The placements are about the declared paths; check them before
		// anything touches the server.
		if err := checkPlacements(ev, w.declared); err != nil {
			return err
		}
	}
	if s.conn == nil {
		conn, err := w.connect(ctx)
		if err != nil {
			return err
		}
		s.conn, s.openedAt = conn, time.Now()
		s.log.Debug("connection opened", "session", s.id.String())
	}
	l, err := readLayout(ctx, s.conn)
	if err != nil {
		return err
	}
	if w.declared == nil {
		// No Identify since the writer started: nothing was declared that
		// could be stale, and the placements are about these paths.
		if err := checkPlacements(ev, l); err != nil {
			return err
		}
	} else if d := w.declared.diff(l); d != "" {
		return writer.Fail(vsserr.WriterErrorRetryable, 0,
			"postgres writer: the cluster's layout changed since Identify (%s): the requester's metadata misses files; gather writer metadata again", d)
	}
	s.layout = l
	s.info = backupInfo{
		Mode: w.strat.mode(), ServerVersion: l.Version, ServerVersionNum: l.VersionNum,
		SystemIdentifier: strconv.FormatUint(l.SystemID, 10), DataDirectory: l.DataDir, WALDirectory: l.WALDir,
	}
	for _, ts := range l.Tablespaces {
		s.info.Tablespaces = append(s.info.Tablespaces, tablespaceInfo(ts))
	}
	return w.strat.prepare(ctx, s)
}

// checkPlacements vetoes unless every root of the cluster is captured at
// one instant. The SDK's SharedInstant decides and says where each path
// is; the message adds what each path is.
func checkPlacements(ev *writer.Event, l *layout) error {
	roots := l.roots()
	paths := make([]string, len(roots))
	names := make([]string, len(roots))
	for i, r := range roots {
		paths[i] = r.Path
		names[i] = fmt.Sprintf("%s %s", r.Role, r.Path)
	}
	err := ev.SharedInstant(paths...)
	if err == nil {
		// One instant is not enough if that "instant" is a copy made file
		// by file: the server writes pages and WAL all the while.
		if err := ev.PointInTime(paths...); err != nil {
			return writer.Fail(vsserr.WriterErrorInconsistentSnapshot, 0,
				"postgres writer: the cluster is crash-consistent only in a point-in-time snapshot, and PostgreSQL keeps writing while frozen; %s",
				vsserr.Message(err))
		}
		return nil
	}
	if len(roots) == 1 {
		return writer.Fail(vsserr.WriterErrorInconsistentSnapshot, 0,
			"postgres writer: the cluster's %s is not captured by the snapshot set: %s. Add its volume to the snapshot set",
			names[0], vsserr.Message(err))
	}
	hint := "They are on volumes snapshotted at different instants: keep them on one volume, or on volumes one provider snapshots atomically"
	for _, p := range paths {
		if !ev.IsPathAffected(p) {
			hint = "Add the missing volumes to the snapshot set, or keep them on one volume (or on volumes one provider snapshots atomically)"
		}
	}
	return writer.Fail(vsserr.WriterErrorInconsistentSnapshot, 0,
		"postgres writer: the cluster's %s are one unit, which only one instant (one atomic snapshot) captures consistently; %s. %s",
		joinList(names), vsserr.Message(err), hint)
}

// joinList joins items as "a", "a and b", "a, b and c".
func joinList(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// Freeze holds nothing in snapshot mode: it notes when it arrived and
// finished, which bound the snapshot's instant for the hold record.
func (w *Writer) Freeze(ctx context.Context, ev *writer.Event) error {
	arrived := time.Now()
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	s := w.session(ev.SessionID)
	if s.frozen {
		return nil // a repeated Freeze
	}
	if err := w.strat.freeze(ctx, s); err != nil {
		return err
	}
	s.frozen, s.freezeAt, s.lockedAt = true, arrived, time.Now()
	s.log.Debug("frozen", "session", s.id.String(), "mode", w.strat.mode(), "pinned_connection", s.conn != nil)
	return nil
}

// Thaw lets the mode finish its work now that the snapshot exists, then
// closes the session's connection (a mode that holds it past Thaw, pitr,
// keeps it for PostSnapshot; the hold record ends here all the same).
func (w *Writer) Thaw(ctx context.Context, ev *writer.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.Closed() {
		return nil // Close released everything
	}
	ctx, done := w.mu.Join(ctx)
	defer done()
	s := w.sessions[ev.SessionID]
	if s == nil {
		return nil
	}
	err := w.strat.thaw(ctx, s)
	if err == nil && w.strat.holdsPastThaw() && s.conn != nil {
		s.endHold("Thaw")
		return nil
	}
	w.releaseSession(ctx, s, "Thaw")
	return err
}

// Abort ends the session's work with the server and closes its
// connection. It is idempotent: a second Abort finds nothing open.
func (w *Writer) Abort(ctx context.Context, ev *writer.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.Closed() {
		return nil
	}
	ctx, done := w.mu.Join(ctx)
	defer done()
	if s := w.sessions[ev.SessionID]; s != nil {
		w.abandon(ctx, s, "Abort")
	}
	return nil
}

// abandon ends a session that did not reach Thaw: the mode undoes its
// work, and the connection is closed whatever that said.
func (w *Writer) abandon(ctx context.Context, s *session, by string) {
	if s.conn != nil {
		if err := w.strat.abandon(ctx, s); err != nil {
			s.log.Warn("ending the session's work with the server", "session", s.id.String(), "by", by, "err", err)
		}
	}
	w.releaseSession(ctx, s, by)
}

// releaseSession releases s; a failure to close the connection is logged,
// not reported: the connection is gone either way, and the server ends
// its session when the socket closes.
func (w *Writer) releaseSession(ctx context.Context, s *session, by string) {
	if err := s.release(ctx, by); err != nil {
		s.log.Debug("closing the connection", "session", s.id.String(), "by", by, "err", err)
	}
}

// PostSnapshot lets a mode that held the connection past Thaw finish
// (pitr: pg_backup_stop), then records in the cluster component's backup
// metadata what a restore needs to know about the snapshot (backupInfo,
// as JSON).
func (w *Writer) PostSnapshot(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	s := w.sessions[ev.SessionID]
	if s != nil && s.conn != nil {
		err := w.strat.postSnapshot(ctx, s)
		w.releaseSession(ctx, s, "PostSnapshot")
		if err != nil {
			return err
		}
	}
	comp := c.Get("", ComponentName)
	if s == nil || s.layout == nil || comp == nil || !c.Writable() || comp.BackupMetadata != nil {
		return nil
	}
	b, err := json.Marshal(s.info)
	if err != nil {
		return err
	}
	md := string(b)
	comp.BackupMetadata = &md
	return nil
}

// BackupShutdown forgets the session, releasing it first if Thaw or Abort
// did not (the SDK sends Abort before it for a session still prepared or
// frozen, so normally nothing is left).
func (w *Writer) BackupShutdown(ctx context.Context, ev *writer.Event) error {
	w.app.RestoreAbandoned(ev.SessionID, "PostgreSQL")
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.Closed() {
		return nil
	}
	ctx, done := w.mu.Join(ctx)
	defer done()
	if s := w.sessions[ev.SessionID]; s != nil {
		w.abandon(ctx, s, "BackupShutdown")
		delete(w.sessions, ev.SessionID)
	}
	return nil
}

// Close releases every session and closes every connection; the writer
// refuses further events. Call it after writer.Run returned (Run has then
// released every session already); it is also safe while a handler runs,
// which it cuts short. It is idempotent.
func (w *Writer) Close() error {
	first := w.mu.Close()
	defer w.mu.Unlock()
	if !first {
		return nil
	}
	for id, s := range w.sessions {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		w.abandon(ctx, s, "Close")
		cancel()
		delete(w.sessions, id)
	}
	return nil
}
