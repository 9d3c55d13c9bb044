// Package sqlite is the lvss writer for SQLite databases: it makes listed
// database files consistent in snapshots by holding SQLite's own write lock
// for the freeze window, so that no transaction commits while the snapshot
// is taken and the captured database (with its -wal or -journal) is exactly
// the state after the last commit before the freeze.
//
// New builds the writer from a Config; writer.Run serves it:
//
//	id, w, err := sqlite.New(sqlite.Config{Databases: []string{"/var/lib/app/app.db"}})
//	if err != nil { ... }
//	defer w.Close()
//	err = writer.Run(ctx, writer.Options{Retry: true}, id, w)
//
// # What it does in each event
//
//   - Identify: one DATABASE component per database, named by its path,
//     with the database file and its -wal (WAL mode; the -shm is excluded,
//     SQLite rebuilds it) or its -journal (rollback-journal mode). A
//     database file that does not exist, or is not a database, fails
//     Identify with a message naming the path.
//   - PrepareBackup: notes which databases the requester selected.
//   - PrepareSnapshot: checks that each database and its -wal or -journal
//     are captured at one instant (D15), opens the writer's one
//     connection to each database, and checkpoints the WAL (PASSIVE by
//     default, see Config.Checkpoint).
//   - Freeze: sends a literal BEGIN IMMEDIATE on that connection, which
//     takes the database's write lock (RESERVED in rollback mode, the WAL
//     write lock in WAL mode). Readers go on; writers wait in their busy
//     handler.
//   - Thaw, Abort, BackupShutdown: ROLLBACK (nothing was written) releases
//     the lock; if that fails the connection is closed, which releases it
//     too. BackupShutdown closes the connection.
//   - PreRestore: refuses (RETRYABLE, naming the processes) while another
//     process has a selected database or its -wal, -journal or -shm open
//     (found through /proc); the writer stops no application (L40).
//   - PostRestore: with VSS_RS_ALL opens the restored database, which
//     recovers it, and runs PRAGMA integrity_check; with VSS_RS_NONE does
//     nothing; with VSS_RS_FAILED does nothing and fails.
//
// # One connection, one process
//
// SQLite's locks are POSIX record locks, which belong to the process: the
// kernel drops all of them when the process closes any descriptor of the
// file. The writer therefore opens each database only through SQLite (whose
// connections in one process share their lock bookkeeping) and never with
// os.Open; the process hosting the writer must not open the files
// otherwise, nor through a second SQLite library. For the same reason a
// lock held by the writer does not stop other connections of the same
// process: the application must run in another process.
//
// Applications need a busy timeout (PRAGMA busy_timeout) longer than the
// freeze window, or their writes fail with SQLITE_BUSY while frozen.
// docs/writer-sqlite.md in the repository is the operator's guide.
package sqlite
