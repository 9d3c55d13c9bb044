package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
)

// releaseTimeout bounds the release statement when the caller's context
// has no deadline; past it the connection is closed, which releases the
// server's locks too.
const releaseTimeout = 5 * time.Second

// killTimeout bounds killing the writer's own session after a lock
// statement was cut short.
const killTimeout = 2 * time.Second

// openDB makes the writer's connection pool: at most one connection, never
// kept idle, so that what must live across events is always the one
// *sql.Conn the writer took from it (a BACKUP STAGE or a global read lock
// belongs to its session), and nothing else stays connected between
// backups.
func openDB(dc *gomysql.Config) (*sql.DB, error) {
	c, err := gomysql.NewConnector(dc)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(0)
	db.SetConnMaxLifetime(0)
	return db, nil
}

// hold is the writer's one connection to the server for one session, from
// PrepareForSnapshot to the release (Thaw, Abort, BackupShutdown), and what
// it holds there. Its fields are guarded by Writer.mu.
type hold struct {
	session  uuid.UUID
	conn     *sql.Conn
	id       int64 // CONNECTION_ID(): the server's name of the session
	version  serverVersion
	strategy Strategy // resolved: backup-stage or ftwrl
	layout   *layout  // as read on this connection at PrepareForSnapshot
	log      *slog.Logger

	// stage is the BACKUP STAGE reached ("" before any); frozen is set once
	// the commits are held (BLOCK_COMMIT or the global read lock).
	stage    Stage
	frozen   bool
	freezeAt time.Time // when Freeze reached the writer
	lockedAt time.Time // when the lock statement returned
}

// connect takes the writer's one connection from db and learns the
// session's id and the server's version.
func connect(ctx context.Context, db *sql.DB, session uuid.UUID, log *slog.Logger) (*hold, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	h := &hold{session: session, conn: conn}
	var version string
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID(), VERSION()").Scan(&h.id, &version); err != nil {
		conn.Close()
		return nil, err
	}
	h.version = parseVersion(version)
	h.log = log.With("connection", h.id)
	h.log.Debug("connected", "session", session.String(), "server", version)
	return h, nil
}

// setLockWait sets the session's lock_wait_timeout, in whole seconds: the
// longest the next lock statement waits for the server's metadata locks
// before it fails with error 1205.
func (h *hold) setLockWait(ctx context.Context, d time.Duration) error {
	secs := max(int(d/time.Second), 1)
	_, err := h.conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", secs))
	return err
}

// exec runs one lock statement. When ctx ends while the statement waits
// in the server, the driver closes the connection; the server notices only
// at its next check (up to half a second later) and could meanwhile be
// granted the lock, so the writer also kills its session from a second
// connection: nothing the writer asked for is then held once exec returns.
func (h *hold) exec(ctx context.Context, db *sql.DB, stmt string) error {
	_, err := h.conn.ExecContext(ctx, stmt)
	if err != nil && ctx.Err() != nil {
		h.kill(db)
	}
	return err
}

// kill ends the writer's session in the server from another connection,
// after closing its own. Errors are logged: the session is gone either
// way (1094: no such thread).
func (h *hold) kill(db *sql.DB) {
	h.close()
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", h.id))
		conn.Close()
	}
	if err != nil && serverErrorNumber(err) != 1094 {
		h.log.Warn("could not kill the writer's own session after a cut-short statement; the server ends it when it notices the closed connection", "err", err)
		return
	}
	h.log.Debug("session killed after a cut-short statement")
}

// release ends what the session holds: BACKUP STAGE END or UNLOCK TABLES,
// then closes the connection. The server releases whatever a session
// holds when it ends, so the locks are gone when release returns whatever
// happened; the error says that the statement failed, which after a
// freeze means the session may have ended (and the hold with it) before
// the release.
func (h *hold) release(ctx context.Context) error {
	if h.conn == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, releaseTimeout)
		defer cancel()
	}
	var err error
	switch {
	case h.strategy == StrategyBackupStage && h.stage != "":
		_, err = h.conn.ExecContext(ctx, "BACKUP STAGE END")
	case h.strategy == StrategyFTWRL && h.frozen:
		_, err = h.conn.ExecContext(ctx, "UNLOCK TABLES")
	}
	return errors.Join(err, h.close())
}

// close closes the connection; the server then ends the session and
// releases everything it held.
func (h *hold) close() error {
	if h.conn == nil {
		return nil
	}
	err := h.conn.Close()
	h.conn = nil
	if errors.Is(err, sql.ErrConnDone) {
		err = nil
	}
	h.log.Debug("connection closed")
	return err
}
