package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	msqlite "modernc.org/sqlite"
)

// journalKind is how a database keeps its uncommitted and recently
// committed changes, which decides the files that belong to it.
type journalKind int

const (
	journalUnknown  journalKind = iota
	journalRollback             // <db>-journal (DELETE, TRUNCATE, PERSIST modes)
	journalWAL                  // <db>-wal, with the <db>-shm index
)

func (k journalKind) String() string {
	switch k {
	case journalRollback:
		return "rollback journal"
	case journalWAL:
		return "WAL"
	}
	return "unknown"
}

// suffix is the journal file's suffix for the kind.
func (k journalKind) suffix() string {
	if k == journalWAL {
		return "-wal"
	}
	return "-journal"
}

// lockPoll is the pause between two attempts at the write lock. SQLite's
// locks have no queue: a waiter gets the lock only by trying in a gap
// between the application's transactions, so short, steady polling wins
// it far sooner than SQLite's own busy handler, whose pauses grow to
// 100 ms.
const lockPoll = time.Millisecond

// releaseTimeout bounds a ROLLBACK when the caller's context has no
// deadline; past it the connection is closed, which releases the lock too.
const releaseTimeout = 5 * time.Second

// database is one configured database file and, from PrepareSnapshot to
// BackupShutdown, the writer's one connection to it. Its mutable fields are
// guarded by Writer.mu.
type database struct {
	path string // as configured, cleaned; also the component name
	log  *slog.Logger

	// declared is the journal kind the most recent Identify put in the
	// Writer Metadata Document, so that a later change of mode (which would
	// leave a needed file out of the backup) is noticed before the freeze.
	declared journalKind
	// real is where the most recent successful Identify found the file
	// (symbolic links resolved).
	real string

	db    *sql.DB
	conn  *sql.Conn          // the pinned connection; nil when closed
	users map[uuid.UUID]bool // sessions between PrepareSnapshot and BackupShutdown
	held  uuid.UUID          // session whose Freeze holds the write lock; Nil if none
	hold  struct{ freeze, locked time.Time }
}

// dsn is the SQLite URI for path. mode=rw: the writer must never create a
// database that is not there. The path is percent-encoded so that '?', '#'
// and '%' in file names reach SQLite intact.
func dsn(path string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=rw"
}

// realPath is where SQLite really keeps the database: it follows symbolic
// links to the database file and puts the -wal and -journal beside the
// target, so that is the directory the snapshot must capture.
func (d *database) realPath() (string, error) {
	fi, err := os.Stat(d.path) // a stat opens no descriptor, so it drops no lock
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("database %s does not exist", d.path)
	}
	if err != nil {
		return "", fmt.Errorf("database %s: %w", d.path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("database %s is not a regular file (%s)", d.path, fi.Mode().Type())
	}
	return filepath.EvalSymlinks(d.path)
}

// open opens the pinned connection if it is not open. database/sql is kept
// to exactly one connection (MaxOpenConns 1, pinned through *sql.Conn) so
// that the pool can never open the file a second time behind the writer's
// back.
func (d *database) open(ctx context.Context) error {
	if d.conn != nil {
		return nil
	}
	c, err := msqlite.NewConnector(dsn(d.path))
	if err != nil {
		return err
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	conn, err := db.Conn(ctx)
	if err == nil {
		// The writer's waits are its own polling loops (bounded by
		// contexts); SQLite's busy handler would sleep uninterruptibly in
		// growing steps. Checkpoints set a timeout of their own.
		_, err = conn.ExecContext(ctx, "PRAGMA busy_timeout = 0")
	}
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		db.Close()
		return err
	}
	d.db, d.conn = db, conn
	d.log.Debug("connection opened")
	return nil
}

// close closes the connection, which releases every lock it holds.
func (d *database) close() error {
	if d.conn == nil {
		return nil
	}
	err := errors.Join(d.conn.Close(), d.db.Close())
	d.db, d.conn, d.held = nil, nil, uuid.Nil
	d.log.Debug("connection closed")
	return err
}

// journalMode reads the database's journal mode through conn. Reading the
// schema first makes SQLite read the header, so a file that is not a
// database is reported as such, and a WAL database is reported as WAL.
func journalMode(ctx context.Context, conn *sql.Conn) (journalKind, error) {
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return journalUnknown, err
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return journalUnknown, err
	}
	if strings.EqualFold(mode, "wal") {
		return journalWAL, nil
	}
	return journalRollback, nil
}

// identifyMode finds the journal mode for Identify: through the pinned
// connection when one is open, else through a connection opened for the
// question and closed again. Both go through SQLite, which keeps the
// process's locks on the file when one of its connections closes while
// another holds them; the writer never opens the file any other way.
func (d *database) identifyMode(ctx context.Context) (journalKind, error) {
	if d.conn != nil {
		return journalMode(ctx, d.conn)
	}
	c, err := msqlite.NewConnector(dsn(d.path))
	if err != nil {
		return journalUnknown, err
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return journalUnknown, err
	}
	defer conn.Close()
	// In rollback mode the application's commit briefly excludes readers.
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 1000"); err != nil {
		return journalUnknown, err
	}
	return journalMode(ctx, conn)
}

// checkpointResult is what PRAGMA wal_checkpoint reports.
type checkpointResult struct {
	Busy         bool // the checkpoint could not finish (readers, writers, or another checkpoint)
	Log, Written int  // frames in the WAL, frames copied into the database
}

// checkpoint runs PRAGMA wal_checkpoint(mode). Modes other than PASSIVE
// wait for the application through SQLite's busy handler, bounded by the
// time left before ctx's deadline; the driver ends that wait when ctx ends.
func (d *database) checkpoint(ctx context.Context, mode CheckpointMode) (checkpointResult, error) {
	var r checkpointResult
	if mode != CheckpointPassive {
		wait := time.Minute
		if dl, ok := ctx.Deadline(); ok {
			wait = time.Until(dl) / 2
		}
		if _, err := d.conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", max(wait.Milliseconds(), 1))); err != nil {
			return r, err
		}
		defer func() { _, _ = d.conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA busy_timeout = 0") }()
	}
	var busy int
	err := d.conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+string(mode)+")").Scan(&busy, &r.Log, &r.Written)
	r.Busy = busy != 0
	return r, err
}

// lock takes the write lock with a literal BEGIN IMMEDIATE, trying until it
// gets it, until wait has passed, or until ctx ends. Each attempt runs
// without a context: with busy_timeout 0 it returns at once, and an
// attempt the driver interrupted could leave it unknown whether the
// transaction began.
func (d *database) lock(ctx context.Context, wait time.Duration) (attempts int, err error) {
	give := time.Now().Add(wait)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		attempts++
		_, err = d.conn.ExecContext(context.Background(), "BEGIN IMMEDIATE")
		if err == nil || !isBusy(err) || !time.Now().Before(give) {
			return attempts, err
		}
		t.Reset(lockPoll)
		select {
		case <-ctx.Done():
			return attempts, fmt.Errorf("waiting for the write lock of %s: %w", d.path, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// release ends the writer's transaction, which releases the write lock.
// ROLLBACK suffices: the writer never writes. If ROLLBACK fails the
// connection is closed, which releases every lock it holds; the lock is
// therefore always released when release returns, and the error only says
// that closing was needed or failed.
func (d *database) release(ctx context.Context) error {
	if d.conn == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, releaseTimeout)
		defer cancel()
	}
	_, err := d.conn.ExecContext(ctx, "ROLLBACK")
	d.held = uuid.Nil
	if err == nil {
		return nil
	}
	if cerr := d.close(); cerr != nil {
		return fmt.Errorf("ROLLBACK failed (%w) and closing the connection failed: %v", err, cerr)
	}
	return fmt.Errorf("ROLLBACK failed, connection closed instead: %w", err)
}

// sqliteCode is the extended result code of a SQLite error, or 0.
func sqliteCode(err error) int {
	var se *msqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// isBusy: another connection holds a lock that is needed (SQLITE_BUSY and
// its extended codes, SQLITE_LOCKED for shared-cache connections).
func isBusy(err error) bool {
	switch sqliteCode(err) & 0xff {
	case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
		return true
	}
	return false
}
