package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writers/internal/handlerlock"
)

// Writer is the SQLite writer. It implements writer.Writer,
// writer.PrepareBackuper, writer.PrepareSnapshotter,
// writer.BackupShutdowner, writer.PreRestorer and writer.PostRestorer. Create it with New, serve it with writer.Run,
// and Close it when Run has returned.
type Writer struct {
	cfg Config
	dbs []*database

	// mu guards the databases' connection state and sessions. The SDK
	// never runs two handlers at once; mu is for Close, which the host may
	// call from another goroutine.
	mu       handlerlock.Lock          // also cuts handlers short at Close
	sessions map[uuid.UUID][]*database // databases each session takes part with, from PrepareBackup
}

var errClosed = errors.New("the sqlite writer was closed")

func newWriter(cfg Config, dbs []*database) *Writer {
	w := &Writer{cfg: cfg, dbs: dbs, sessions: map[uuid.UUID][]*database{}}
	w.mu.Init(errClosed)
	return w
}

// Databases returns the configured database paths, cleaned, in order.
func (w *Writer) Databases() []string {
	out := make([]string, len(w.dbs))
	for i, d := range w.dbs {
		out[i] = d.path
	}
	return out
}

// Identify declares one DATABASE component per database. The component is
// named by the database's path (unique, and what an operator recognises)
// at the root of the writer's logical paths. Its database file set is the
// file itself; its log file set is the -wal in WAL mode, with the -shm
// excluded (SQLite rebuilds the index from the -wal on open, and a stale
// one would be ignored anyway), or the -journal in rollback-journal mode.
// While the writer holds the lock no transaction of another connection can
// be in progress, so that -journal is absent or inert (an emptied or
// header-zeroed journal of the TRUNCATE and PERSIST modes); it is declared
// so that a restore reproduces the directory as it was, and because a hot
// journal left by a crash before the freeze would be needed to open the
// database.
func (w *Writer) Identify(ctx context.Context, md *writer.Metadata) error {
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	// L40: the requester puts the files back while the applications are
	// stopped; the writer checks that at PreRestore and the restored
	// database at PostRestore.
	md.SetRestoreMethod(vss.RMERestoreIfCanReplace, "", restoreProcedure, vss.WREAlways, false)
	for _, d := range w.dbs {
		real, err := d.realPath()
		var kind journalKind
		if _, serr := os.Lstat(d.path); errors.Is(serr, fs.ErrNotExist) && d.declared != journalUnknown && d.real != "" {
			// Gone since the writer last saw it (lost, or moved away for a
			// restore): declared as it was, so that a restore session
			// finds the writer.
			real, kind = d.real, d.declared
			d.log.Warn("database missing: declared as last identified", "journal", kind)
		} else if err != nil {
			return fmt.Errorf("sqlite writer: %w", err)
		} else if kind, err = d.identifyMode(ctx); err != nil {
			if sqliteCode(err) != 0 {
				return fmt.Errorf("sqlite writer: database %s cannot be read as a SQLite database: %w", d.path, err)
			}
			return fmt.Errorf("sqlite writer: database %s: %w", d.path, err)
		}
		d.declared, d.real = kind, real
		dir, base := filepath.Split(real)
		dir = filepath.Clean(dir)
		if err := md.AddComponent(document.Component{
			Type: vss.ComponentDatabase, Name: d.path, Selectable: true,
			Caption: fmt.Sprintf("SQLite database %s (%s)", filepath.Base(d.path), kind),
		}); err != nil {
			return err
		}
		if err := md.AddDatabaseFiles("", d.path, dir, base, 0); err != nil {
			return err
		}
		if err := md.AddDatabaseLogFiles("", d.path, dir, base+kind.suffix(), 0); err != nil {
			return err
		}
		if kind == journalWAL {
			if err := md.AddExcludeFiles(dir, base+"-shm", false); err != nil {
				return err
			}
		}
	}
	return nil
}

// PrepareBackup notes which databases the session covers: in component
// mode those whose components the requester included, else all. A
// component-mode event that names none of them (a writer takes part only
// with at least one, so the document did not arrive) covers all: freezing
// too much is safe, freezing too little is not.
func (w *Writer) PrepareBackup(_ context.Context, ev *writer.Event, c *writer.Components) error {
	if err := w.mu.LockOpen(); err != nil {
		return err
	}
	defer w.mu.Unlock()
	var dbs []*database
	for _, d := range w.dbs {
		if ev.SelectComponents && c.Get("", d.path) != nil {
			dbs = append(dbs, d)
		}
	}
	if len(dbs) == 0 {
		dbs = w.dbs
	}
	w.sessions[ev.SessionID] = dbs
	return nil
}

// sessionDBs returns the databases of a session; a session whose
// PrepareBackup the writer did not see covers all of them.
func (w *Writer) sessionDBs(id uuid.UUID) []*database {
	if dbs, ok := w.sessions[id]; ok {
		return dbs
	}
	return w.dbs
}

// PrepareSnapshot checks each database's placement, opens its pinned
// connection and checkpoints its WAL, so that the snapshot carries a short
// -wal.
func (w *Writer) PrepareSnapshot(ctx context.Context, ev *writer.Event) error {
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	dbs := w.sessionDBs(ev.SessionID)
	w.sessions[ev.SessionID] = dbs
	for _, d := range dbs {
		real, err := d.realPath()
		if err != nil {
			return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "%v", err)
		}
		kind := d.declared
		if kind == journalUnknown {
			kind = journalWAL
		}
		// The database and its journal are one unit (D15); a
		// database whose directory is in no snapshot of the set is the
		// requester's to fix by adding the volume.
		if err := ev.SharedInstant(real, real+kind.suffix()); err != nil {
			return err
		}
		if err := d.open(ctx); err != nil {
			return fail(err, "opening %s", d.path)
		}
		if d.users == nil {
			d.users = map[uuid.UUID]bool{}
		}
		d.users[ev.SessionID] = true
		mode, err := journalMode(ctx, d.conn)
		if err != nil {
			return fail(err, "reading the journal mode of %s", d.path)
		}
		if err := d.checkDeclared(mode); err != nil {
			return err
		}
		if mode != journalWAL || w.cfg.Checkpoint == CheckpointNone {
			continue
		}
		start := time.Now()
		r, err := d.checkpoint(ctx, w.cfg.Checkpoint)
		if err != nil {
			return fail(err, "PRAGMA wal_checkpoint(%s) on %s", w.cfg.Checkpoint, d.path)
		}
		// An unfinished checkpoint is no failure: the -wal is captured
		// with the database, only longer. A busy PASSIVE one is routine
		// (the application's own autocheckpoint was running).
		lvl := slog.LevelDebug
		if r.Busy && w.cfg.Checkpoint != CheckpointPassive {
			lvl = slog.LevelWarn
		}
		d.log.Log(ctx, lvl, "checkpoint", "mode", w.cfg.Checkpoint, "busy", r.Busy, "wal_frames", r.Log,
			"checkpointed", r.Written, "took", time.Since(start))
	}
	return nil
}

// checkDeclared fails when the database is in WAL mode but Identify
// declared a rollback journal: the requester's copy of the metadata would
// leave the -wal, and the transactions in it, out of the backup. The other
// way round is harmless (a rollback database's journal is inert while the
// writer holds the lock), and nothing is known before the first Identify.
func (d *database) checkDeclared(mode journalKind) error {
	if mode == journalWAL && d.declared == journalRollback {
		return writer.Fail(vsserr.WriterErrorRetryable, 0,
			"database %s switched to WAL mode after Identify declared its rollback journal; gather writer metadata again", d.path)
	}
	return nil
}

// Freeze takes the write lock of each of the session's databases, in the
// configured order, with a literal BEGIN IMMEDIATE on its pinned
// connection: from then on no transaction of any other connection can
// commit, and readers go on. If a lock cannot be had within the lock
// timeout, the locks already taken are released and Freeze fails with
// VSS_E_WRITERERROR_RETRYABLE and SQLite's message.
func (w *Writer) Freeze(ctx context.Context, ev *writer.Event) error {
	arrived := time.Now()
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	wait := w.cfg.LockTimeout
	if !ev.Deadline.IsZero() {
		wait = min(wait, time.Until(ev.Deadline)/2)
	}
	err = w.freeze(ctx, ev.SessionID, arrived, wait)
	if err != nil {
		// Let go of the locks already taken at once, rather than keep the
		// application waiting for the Abort that follows.
		w.releaseSession(context.WithoutCancel(ctx), ev.SessionID, "failed Freeze")
	}
	return err
}

func (w *Writer) freeze(ctx context.Context, session uuid.UUID, arrived time.Time, wait time.Duration) error {
	for _, d := range w.sessionDBs(session) {
		if d.held == session {
			continue // a repeated Freeze
		}
		if d.conn == nil {
			// No PrepareSnapshot came (or a failed release closed it): the
			// lock is still worth taking.
			if err := d.open(ctx); err != nil {
				return fail(err, "opening %s", d.path)
			}
			if d.users == nil {
				d.users = map[uuid.UUID]bool{}
			}
			d.users[session] = true
		}
		attempts, err := d.lock(ctx, wait)
		if err != nil {
			if isBusy(err) {
				return writer.Fail(vsserr.WriterErrorRetryable, applicationHR(err),
					"BEGIN IMMEDIATE on %s: the application kept the write lock for %s (%d attempts): %v", d.path, wait, attempts, err)
			}
			return fail(err, "BEGIN IMMEDIATE on %s", d.path)
		}
		d.held = session
		d.hold.freeze, d.hold.locked = arrived, time.Now()
		d.log.Info("write lock taken", "session", session.String(), "waited", d.hold.locked.Sub(arrived), "attempts", attempts)
		// Under the lock the mode cannot change: this is the definitive check.
		mode, err := journalMode(ctx, d.conn)
		if err != nil {
			return fail(err, "reading the journal mode of %s", d.path)
		}
		if err := d.checkDeclared(mode); err != nil {
			return err
		}
	}
	return nil
}

// releaseSession releases the write locks a session holds; it reports the
// first error, after releasing all of them.
func (w *Writer) releaseSession(ctx context.Context, session uuid.UUID, why string) error {
	var errs []error
	for _, d := range w.dbs {
		if d.held != session || session == uuid.Nil {
			continue
		}
		h := d.hold
		releasing := time.Now()
		err := d.release(ctx)
		attrs := []any{"session", session.String(), "by", why, "held", releasing.Sub(h.locked),
			"freeze_at", h.freeze, "locked_at", h.locked, "release_at", releasing}
		if err != nil {
			d.log.Warn("write lock released by closing the connection", append(attrs, "err", err)...)
			errs = append(errs, err)
			continue
		}
		d.log.Info("write lock released", attrs...)
	}
	return errors.Join(errs...)
}

// Thaw releases the session's write locks.
func (w *Writer) Thaw(ctx context.Context, ev *writer.Event) error {
	return w.release(ctx, ev, "Thaw")
}

// Abort releases the session's write locks. It is idempotent: a second
// Abort finds nothing held. The SDK cancels a running Freeze before it
// calls Abort, and Freeze's lock attempts watch that cancellation.
func (w *Writer) Abort(ctx context.Context, ev *writer.Event) error {
	return w.release(ctx, ev, "Abort")
}

func (w *Writer) release(ctx context.Context, ev *writer.Event, why string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.Closed() {
		return nil // Close released everything
	}
	ctx, done := w.mu.Join(ctx)
	defer done()
	// The lock is released whatever the error says (release closes the
	// connection when ROLLBACK fails); the error is reported so that the
	// requester knows something went wrong with the database.
	if err := w.releaseSession(ctx, ev.SessionID, why); err != nil {
		return writer.Fail(failureCode(err), applicationHR(err), "%s: %v", why, err)
	}
	return nil
}

// BackupShutdown ends the session: its locks are released (the SDK has
// already sent Abort if it was frozen) and the connections no other
// session uses are closed.
func (w *Writer) BackupShutdown(ctx context.Context, ev *writer.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.Closed() {
		return nil
	}
	ctx, done := w.mu.Join(ctx)
	defer done()
	err := w.releaseSession(ctx, ev.SessionID, "BackupShutdown")
	delete(w.sessions, ev.SessionID)
	for _, d := range w.dbs {
		delete(d.users, ev.SessionID)
		if len(d.users) == 0 && d.held == uuid.Nil {
			err = errors.Join(err, d.close())
		}
	}
	if err != nil {
		return writer.Fail(failureCode(err), applicationHR(err), "BackupShutdown: %v", err)
	}
	return nil
}

// Close releases every lock and closes every connection; the writer
// refuses further events. Call it after writer.Run returned (Run has then
// released every session already); it is also safe while a handler runs,
// which it cuts short. It is idempotent.
func (w *Writer) Close() error {
	first := w.mu.Close()
	defer w.mu.Unlock()
	if !first {
		return nil
	}
	var errs []error
	for _, d := range w.dbs {
		if d.held != uuid.Nil {
			errs = append(errs, w.releaseSession(context.Background(), d.held, "Close"))
		}
		errs = append(errs, d.close())
		d.users = nil
	}
	return errors.Join(errs...)
}
