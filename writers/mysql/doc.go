// Package mysql is the lvss writer for MariaDB and MySQL servers: it holds
// the server's commits for the freeze window, so that a snapshot taken
// meanwhile holds exactly the committed state of that instant, and records
// the binary log position and GTIDs of that instant in the backup.
//
// New builds the writer from a Config; writer.Run serves it:
//
//	id, w, err := mysql.New(mysql.Config{DSN: "lvss@unix(/run/mysqld/mysqld.sock)/", Password: pw})
//	if err != nil { ... }
//	defer w.Close()
//	err = writer.Run(ctx, writer.Options{Retry: true}, id, w)
//
// # What it does in each event
//
//   - Identify: asks the server where its files are (SHOW GLOBAL
//     VARIABLES) and declares one DATABASE component named by the data
//     directory: the data directory's own files and each database's
//     directory as database files, InnoDB's redo log and the binary, relay
//     and Aria logs as log files, the temporary tablespace, tmpdir, pid
//     file and socket excluded when they lie among them.
//   - PrepareSnapshot: opens the writer's one connection for the session,
//     checks that all those directories are captured at one instant (D15),
//     that the files have not moved since Identify, and that the
//     writer may read the binary log position; then BACKUP STAGE START
//     (optionally FLUSH and BLOCK_DDL, Config.PrepareStage) with the
//     backup-stage strategy, or FLUSH TABLES with the ftwrl strategy.
//   - Freeze: BACKUP STAGE BLOCK_COMMIT or FLUSH TABLES WITH READ LOCK,
//     bounded by the session's lock_wait_timeout; then, under the lock,
//     reads the binary log position and GTIDs.
//   - Thaw, Abort, BackupShutdown: BACKUP STAGE END or UNLOCK TABLES, and
//     the connection is closed, which releases everything the session held
//     even if the statement failed.
//   - PostSnapshot: stores the position, as JSON (Position), in the
//     component's backup metadata.
//   - PreRestore: refuses (RETRYABLE, naming the PID in the pid file)
//     while the server runs, unless Config.StopCommand is set: then it
//     runs it and waits until the server is stopped. Without it the
//     writer stops no server (L40).
//   - PostRestore: with VSS_RS_ALL checks the restored data directory
//     (system schema, system tablespace) and logs the binary log position
//     to roll forward from; with VSS_RS_NONE does nothing; with
//     VSS_RS_FAILED does nothing and fails. With Config.StartCommand it
//     starts the server after VSS_RS_ALL, and after VSS_RS_NONE if it
//     stopped it in that session, and waits until it answers a ping. While the server is stopped,
//     Identify declares the files the writer last saw it use.
//
// # Consistent only on an atomic snapshot
//
// Both strategies stop commits, not the server's writes: InnoDB keeps
// flushing pages and writing its redo log during the freeze. The files are
// therefore consistent only as captured at one instant, which a recovery
// (the server's own crash recovery, on first start) turns into exactly the
// committed state of the freeze. A copy of the files taken over time is
// not a backup of the database.
//
// docs/writer-mysql.md in the repository is the operator's guide.
package mysql
