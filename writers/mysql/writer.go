package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writers/internal/appctl"
	"github.com/lvss/lvss/writers/internal/handlerlock"
)

// Writer is the MySQL/MariaDB writer. It implements writer.Writer,
// writer.PrepareSnapshotter, writer.PostSnapshotter,
// writer.BackupShutdowner, writer.PreRestorer and writer.PostRestorer. Create it with New, serve it with writer.Run,
// and Close it when Run has returned.
type Writer struct {
	cfg Config
	dc  *gomysql.Config
	db  *sql.DB // at most one connection, never idle (openDB)

	// mu guards what follows. The SDK never runs two handlers at once; mu
	// is for Close, which the host may call from another goroutine.
	mu handlerlock.Lock // also cuts handlers short at Close
	// declared is what the most recent Identify put in the Writer Metadata
	// Document, so that a change (a new database, a moved log) that would
	// leave files out of the requester's list is noticed before the
	// snapshot.
	declared *layout
	// held is the session holding the writer's connection, from
	// PrepareForSnapshot to its release; nil when none. Snapshot sets are
	// created one at a time (lvssd's creation lock), so there is at most
	// one.
	held *hold
	// positions are the binary log positions recorded at Freeze, for
	// PostSnapshot, until BackupShutdown.
	positions    map[uuid.UUID]Position
	warnedRemote bool
	openErr      error
	// app runs the stop and start commands of a restore.
	app appctl.Commands
}

var errClosed = errors.New("the mysql writer was closed")

func newWriter(cfg Config, dc *gomysql.Config) *Writer {
	w := &Writer{cfg: cfg, dc: dc, positions: map[uuid.UUID]Position{},
		app: appctl.Commands{Stop: cfg.StopCommand, Start: cfg.StartCommand, Log: cfg.Logger}}
	w.mu.Init(errClosed)
	w.db, w.openErr = openDB(dc)
	return w
}

// Server is where the writer connects, as the DSN says (without the
// password), for messages.
func (w *Writer) Server() string {
	return fmt.Sprintf("%s(%s)", w.dc.Net, w.dc.Addr)
}

// begin takes mu for a handler; it fails once the writer is closed.
func (w *Writer) begin() error {
	if err := w.mu.LockOpen(); err != nil {
		return err
	}
	if w.openErr != nil {
		w.mu.Unlock()
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "mysql writer: %v", w.openErr)
	}
	return nil
}

// lockWait is the lock_wait_timeout for a statement of an event with that
// deadline: LockTimeout, but at most half the time left before the
// deadline and half the Freeze→Thaw window, so that a lock the server
// cannot grant fails the event with the server's own error well before
// the coordinator gives up.
func (w *Writer) lockWait(deadline time.Time) time.Duration {
	d := w.cfg.LockTimeout
	if !deadline.IsZero() {
		d = min(d, time.Until(deadline)/2)
	}
	if w.cfg.FreezeTimeout > 0 {
		d = min(d, w.cfg.FreezeTimeout/2)
	}
	return d
}

// Identify declares one DATABASE component for the server, named by its
// data directory: the data directory's files and each database's
// directory as database files, InnoDB's redo log and the binary, relay and
// Aria logs as log files, the files the server recreates (temporary
// tablespace, tmpdir, pid file and socket when they lie among the others)
// excluded. The server says where each is (SHOW GLOBAL VARIABLES); a
// server that cannot be reached, or refuses the writer, fails Identify
// with its own (or the driver's) message.
func (w *Writer) Identify(ctx context.Context, md *writer.Metadata) error {
	if err := w.begin(); err != nil {
		return err
	}
	defer w.mu.Unlock()
	ctx, done := w.mu.Join(ctx)
	defer done()
	var (
		l   *layout
		err error
	)
	if w.held != nil {
		// The connection is pinned by a session (MaxOpenConns 1): ask on it.
		l, err = readLayout(ctx, w.held.conn)
	} else {
		l, err = w.readLayout(ctx)
	}
	stopped := false
	if err != nil {
		// A server stopped for a restore: the files it used, as the writer
		// last saw them, so that a restore session finds the writer.
		if w.declared == nil || w.probe(ctx).running {
			return fail(err, "mysql writer: asking the server at %s where its files are", w.Server())
		}
		l, stopped = w.declared, true
	}
	if l.remoteUnknown != nil && !w.warnedRemote {
		w.warnedRemote = true
		w.cfg.Logger.Warn("the server does not list its tablespaces to the writer; tables created with DATA DIRECTORY outside the data directory are not declared (grant PROCESS)",
			"err", l.remoteUnknown)
	}
	// L40: the requester puts the files back while the server is stopped;
	// PreRestore checks it is, PostRestore checks the restored files.
	md.SetRestoreMethod(vss.RMERestoreIfCanReplace, "", restoreProcedure, vss.WREAlways, false)
	name := l.dataDir
	caption := fmt.Sprintf("%s server, data directory %s", l.version, l.dataDir)
	if stopped {
		caption += " (server stopped)"
	}
	if err := md.AddComponent(document.Component{
		Type: vss.ComponentDatabase, Name: name, Selectable: true, Caption: caption,
	}); err != nil {
		return err
	}
	for _, f := range l.data {
		if err := md.AddDatabaseFiles("", name, f.dir, f.spec, 0); err != nil {
			return err
		}
	}
	for _, f := range l.logs {
		if err := md.AddDatabaseLogFiles("", name, f.dir, f.spec, 0); err != nil {
			return err
		}
	}
	for _, f := range l.excluded {
		if err := md.AddExcludeFiles(f.dir, f.spec, f.spec == "*"); err != nil {
			return err
		}
	}
	w.declared = l
	return nil
}

// readLayout asks the server on a connection of its own, closed after.
func (w *Writer) readLayout(ctx context.Context) (*layout, error) {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return readLayout(ctx, conn)
}

// PrepareSnapshot opens the writer's connection for the session, checks
// that the server's files are still those Identify declared and that they
// are captured at one instant (D15: InnoDB's data files, its redo
// log and the binary log are recovered together), checks the privileges
// Freeze needs, and starts the hold's slow part: BACKUP STAGE up to
// Config.PrepareStage (backup-stage), or a flush of the tables
// (ftwrl) so that the read lock at Freeze has little left to flush.
func (w *Writer) PrepareSnapshot(ctx context.Context, ev *writer.Event) error {
	if err := w.begin(); err != nil {
		return err
	}
	defer w.mu.Unlock()
	ctx, done := w.mu.Join(ctx)
	defer done()
	if h := w.held; h != nil {
		if h.session == ev.SessionID {
			return nil // a repeated PrepareSnapshot
		}
		// A session lvssd has moved on from without Abort: never leave its
		// stage behind.
		w.releaseHeld(ctx, "PrepareSnapshot of session "+ev.SessionID.String())
	}
	err := w.prepare(ctx, ev, true)
	if err != nil && w.held != nil {
		w.releaseHeld(context.WithoutCancel(ctx), "failed PrepareSnapshot")
	}
	return err
}

// prepare connects and runs the prepare steps; check says whether to
// check the placements (not when Freeze arrives without PrepareSnapshot).
func (w *Writer) prepare(ctx context.Context, ev *writer.Event, check bool) error {
	h, err := connect(ctx, w.db, ev.SessionID, w.cfg.Logger)
	if err != nil {
		return fail(err, "connecting to the server at %s", w.Server())
	}
	w.held = h
	if h.layout, err = readLayout(ctx, h.conn); err != nil {
		return fail(err, "asking the server where its files are")
	}
	if d := w.declared; d != nil {
		if diff := d.differs(h.layout); diff != "" {
			return writer.Fail(vsserr.WriterErrorRetryable, 0,
				"the server's files changed since Identify declared them (%s); gather writer metadata again", diff)
		}
	}
	if check {
		if err := ev.SharedInstant(h.layout.dirs...); err != nil {
			return err
		}
		// The server blocks commits, not page flushing: a copy made file
		// by file while frozen can hold pages of different moments.
		if err := ev.PointInTime(h.layout.dirs...); err != nil {
			return err
		}
	}
	h.strategy = w.cfg.Strategy.resolve(h.version)
	if h.strategy == StrategyBackupStage && !h.version.hasBackupStage() {
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"strategy backup-stage needs MariaDB 10.4.1 or later, the server is %s (%s); use strategy ftwrl or auto", h.version, h.version.text)
	}
	// The position is read again under the lock; reading it now checks
	// the privilege (BINLOG MONITOR or REPLICATION CLIENT) before Freeze.
	if _, err := readPosition(ctx, h.conn, h.version); err != nil {
		return fail(err, "reading the binary log position (%s)", h.version.binlogStatusStatement())
	}
	if err := h.setLockWait(ctx, w.lockWait(ev.Deadline)); err != nil {
		return fail(err, "SET SESSION lock_wait_timeout")
	}
	start := time.Now()
	switch h.strategy {
	case StrategyBackupStage:
		for _, s := range w.cfg.PrepareStage.stages() {
			if err := h.exec(ctx, w.db, "BACKUP STAGE "+string(s)); err != nil {
				return fail(err, "BACKUP STAGE %s", s)
			}
			h.stage = s
		}
		h.log.Debug("backup stage reached", "session", ev.SessionID.String(), "stage", h.stage, "took", time.Since(start))
	case StrategyFTWRL:
		// NO_WRITE_TO_BINLOG: a replica has no use for it. It needs RELOAD,
		// as the read lock does, so a missing privilege shows here, before
		// anything is held.
		if err := h.exec(ctx, w.db, "FLUSH NO_WRITE_TO_BINLOG TABLES"); err != nil {
			return fail(err, "FLUSH TABLES")
		}
		h.log.Debug("tables flushed", "session", ev.SessionID.String(), "took", time.Since(start))
	}
	return nil
}

// Freeze holds the server's commits: BACKUP STAGE BLOCK_COMMIT
// (backup-stage) or FLUSH TABLES WITH READ LOCK (ftwrl), waiting at most
// the session's lock_wait_timeout. Then, under the lock, it checks that no
// database was created since Identify and reads the binary log position
// and GTIDs: the point the snapshot is consistent at. If anything fails,
// the hold is released at once and Freeze fails with the server's error.
func (w *Writer) Freeze(ctx context.Context, ev *writer.Event) error {
	arrived := time.Now()
	if err := w.begin(); err != nil {
		return err
	}
	defer w.mu.Unlock()
	ctx, done := w.mu.Join(ctx)
	defer done()
	if h := w.held; h != nil && h.session == ev.SessionID && h.frozen {
		return nil // a repeated Freeze
	}
	err := w.freeze(ctx, ev, arrived)
	if err != nil && w.held != nil && w.held.session == ev.SessionID {
		// Let the application go at once rather than wait for the Abort
		// that follows.
		w.releaseHeld(context.WithoutCancel(ctx), "failed Freeze")
	}
	return err
}

func (w *Writer) freeze(ctx context.Context, ev *writer.Event, arrived time.Time) error {
	if h := w.held; h == nil || h.session != ev.SessionID {
		if h != nil {
			w.releaseHeld(ctx, "Freeze of session "+ev.SessionID.String())
		}
		// No PrepareSnapshot came (or its connection is gone): the hold is
		// still worth taking.
		if err := w.prepare(ctx, ev, false); err != nil {
			return err
		}
	}
	h := w.held
	if err := h.setLockWait(ctx, w.lockWait(ev.Deadline)); err != nil {
		return fail(err, "SET SESSION lock_wait_timeout")
	}
	stmt := "FLUSH TABLES WITH READ LOCK"
	if h.strategy == StrategyBackupStage {
		stmt = "BACKUP STAGE BLOCK_COMMIT"
	}
	err := h.exec(ctx, w.db, stmt)
	if err != nil {
		return fail(err, "%s", stmt)
	}
	h.frozen, h.freezeAt, h.lockedAt = true, arrived, time.Now()
	if h.strategy == StrategyBackupStage {
		h.stage = "BLOCK_COMMIT"
	}
	h.log.Info("mysql holds commits", "session", ev.SessionID.String(), "statement", stmt, "waited", h.lockedAt.Sub(arrived))

	// DDL is blocked now: the list of databases cannot change until the
	// release. A database created after Identify has a directory the
	// requester would not copy.
	if fresh, err := h.layout.newSchemaDirs(); err != nil {
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "listing the data directory %s: %v", h.layout.dataDir, err)
	} else if len(fresh) > 0 {
		return writer.Fail(vsserr.WriterErrorRetryable, 0,
			"database directories created after Identify declared the files: %s in %s; gather writer metadata again",
			strings.Join(fresh, ", "), h.layout.dataDir)
	}
	pos, err := readPosition(ctx, h.conn, h.version)
	if err != nil {
		return fail(err, "reading the binary log position (%s)", h.version.binlogStatusStatement())
	}
	pos.Strategy, pos.LockedAt = h.strategy, h.lockedAt
	w.positions[ev.SessionID] = pos
	h.log.Info("position recorded", "session", ev.SessionID.String(), "binlog_file", pos.BinlogFile,
		"binlog_position", pos.BinlogPosition, "gtid_binlog_pos", pos.GTIDBinlogPos, "executed_gtid_set", pos.ExecutedGTIDSet)
	return nil
}

// releaseHeld releases the held session's locks and closes its
// connection, and logs the hold. It returns the release statement's error:
// the locks are released either way.
func (w *Writer) releaseHeld(ctx context.Context, why string) error {
	h := w.held
	if h == nil {
		return nil
	}
	w.held = nil
	releasing := time.Now()
	err := h.release(ctx)
	switch {
	case !h.frozen && h.stage == "":
		h.log.Debug("connection released before anything was held", "session", h.session.String(), "by", why)
	case !h.frozen:
		h.log.Info("mysql prepared stage released", "session", h.session.String(), "by", why, "stage", h.stage)
	default:
		// The hold record, with exactly these attributes (docs/writers.md):
		// the writer's own logger, without the connection's.
		w.cfg.Logger.Info("mysql released", "session", h.session.String(), "by", why, "held", releasing.Sub(h.lockedAt),
			"freeze_at", h.freezeAt, "locked_at", h.lockedAt, "release_at", releasing)
	}
	if err != nil {
		h.log.Warn("the release statement failed; the connection was closed, which releases the server's locks too",
			"session", h.session.String(), "by", why, "err", err)
	}
	return err
}

// release is Thaw's and Abort's: release the session's hold, if it has
// the connection. A release statement that failed after a freeze means
// the server may have ended the session, and the hold with it, before the
// snapshot was taken: it is reported, and a failed Thaw makes lvssd record
// the snapshot as crash-consistent only (D9).
func (w *Writer) release(ctx context.Context, ev *writer.Event, why string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.Closed() || w.held == nil || w.held.session != ev.SessionID {
		return nil // nothing held: Close released everything, or a second Abort
	}
	ctx, done := w.mu.Join(ctx)
	defer done()
	frozen := w.held.frozen
	if err := w.releaseHeld(ctx, why); err != nil {
		if frozen && (connectionLost(err) || serverErrorNumber(err) == erConnectionKilled) {
			return writer.Fail(vsserr.WriterErrorRetryable, applicationHR(err),
				"%s: the server ended the writer's session before the release, so commits may have run while the snapshot was taken: %v", why, err)
		}
		return writer.Fail(failureCode(err), applicationHR(err), "%s: %v", why, err)
	}
	return nil
}

// Thaw releases the session's hold: BACKUP STAGE END or UNLOCK TABLES.
func (w *Writer) Thaw(ctx context.Context, ev *writer.Event) error {
	return w.release(ctx, ev, "Thaw")
}

// Abort releases whatever the session holds, whether it was frozen or only
// prepared. It is idempotent: a second Abort finds nothing held. The SDK
// cancels a running Freeze before it calls Abort, and a lock statement
// cut short that way kills its own server session.
func (w *Writer) Abort(ctx context.Context, ev *writer.Event) error {
	return w.release(ctx, ev, "Abort")
}

// PostSnapshot puts the position recorded at Freeze into the backup
// metadata of the writer's component (JSON, see Position), where it stays
// with the backup. Backup metadata can be set once; a component that has
// some already keeps it. Nothing is set when the writer did not freeze in
// this session or the requester included no component of it.
func (w *Writer) PostSnapshot(_ context.Context, ev *writer.Event, c *writer.Components) error {
	if err := w.begin(); err != nil {
		return err
	}
	defer w.mu.Unlock()
	pos, ok := w.positions[ev.SessionID]
	if !ok || c == nil {
		return nil
	}
	meta := pos.metadata()
	for _, comp := range c.List() {
		if comp.BackupMetadata == nil {
			comp.BackupMetadata = &meta
		}
	}
	return nil
}

// BackupShutdown ends the session: its hold is released if it still has
// one (the SDK has sent Abort first if it was frozen or prepared) and its
// recorded position is forgotten.
func (w *Writer) BackupShutdown(ctx context.Context, ev *writer.Event) error {
	w.app.RestoreAbandoned(ev.SessionID, "MariaDB")
	w.mu.Lock()
	delete(w.positions, ev.SessionID)
	w.mu.Unlock()
	return w.release(ctx, ev, "BackupShutdown")
}

// Close releases any hold, closes the connection and the pool; the writer
// refuses further events. Call it after writer.Run returned (Run has then
// released every session already); it is also safe while a handler runs,
// which it cuts short. It is idempotent.
func (w *Writer) Close() error {
	first := w.mu.Close()
	defer w.mu.Unlock()
	if !first {
		return nil
	}
	err := w.releaseHeld(context.Background(), "Close")
	if w.db != nil {
		err = errors.Join(err, w.db.Close())
	}
	return err
}
