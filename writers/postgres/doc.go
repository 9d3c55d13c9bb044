// Package postgres is the lvss writer for PostgreSQL 15 and later. It
// relies on the snapshot set being crash-consistent: when the cluster's
// data directory, WAL directory and tablespaces are captured at one
// instant (D15), they hold every transaction committed before
// that instant, and a server started on a copy of them recovers as after a
// power failure. So the writer blocks nothing; its work is to declare the
// cluster's files, to veto a snapshot set that would not capture them at
// one instant, and to make recovery short.
//
// New builds the writer from a Config; writer.Run serves it:
//
//	id, w, err := postgres.New(postgres.Config{DSN: "host=/run/postgresql user=postgres"})
//	if err != nil { ... }
//	defer w.Close()
//	err = writer.Run(ctx, writer.Options{Retry: true}, id, w)
//
// # What it does in each event
//   - Identify: connects (pgx, one connection, closed again), reads the
//     server's version (15 or later), data_directory, where pg_wal really
//     is and the tablespaces' locations, resolves them on this machine, and
//     declares one FILEGROUP component, "cluster", with a recursive file
//     set for the data directory and for the WAL directory and each
//     tablespace that lie outside it; postmaster.pid and postmaster.opts
//     are excluded. An unreachable server fails Identify with pgx's or the
//     server's message.
//   - PrepareForSnapshot: checks that all of those directories are
//     captured at one instant, else vetoes with
//     VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT naming each path and where it
//     is (or is not) captured; opens the session's one pinned connection;
//     checks that the layout is still the declared one; runs CHECKPOINT.
//   - Freeze: nothing is held; the times are noted.
//   - Thaw, Abort, BackupShutdown: the session's connection is closed, and
//     the hold is logged ("postgres released").
//   - PostSnapshot: the component's backup metadata records the cluster's
//     identity, layout and the checkpoint recovery starts from.
//   - PreRestore: refuses (RETRYABLE, naming the PID in postmaster.pid)
//     while a server runs on the data directory being restored, unless
//     Config.StopCommand is set: then it runs it and waits until the
//     server is gone (refusing when the command fails, with its output,
//     or the server outlives the event). Without it the writer never
//     stops the server (decision L40). It checks the restore options
//     (PostgreSQL's recovery settings, restoreopts.go).
//   - PostRestore: with VSS_RS_ALL, checks the restored cluster is the
//     backed-up one, removes a stale postmaster.pid and, for a --mode
//     pitr backup, writes backup_label, tablespace_map, recovery.signal
//     and the recovery settings; with VSS_RS_NONE changes nothing; with
//     VSS_RS_FAILED changes nothing and fails. With Config.StartCommand
//     it starts the server after VSS_RS_ALL, and after VSS_RS_NONE if it
//     stopped it in that session, and waits until it accepts connections
//     (after point-in-time recovery: until it has promoted).
//
// While the server is stopped (for a restore), Identify declares the
// cluster from the data directory it last saw or Config.DataDir, so that
// a restore session finds the writer.
//
// The mode (Config.Mode) is behind a small internal strategy (mode.go):
// crash-consistent snapshots, or base backups for point-in-time recovery
// (pg_backup_start in PrepareForSnapshot, pg_backup_stop in PostSnapshot).
//
// Server errors are reported with the writer failure code their SQLSTATE
// class calls for and the SQLSTATE itself as the application HRESULT
// (SQLStateHRESULT). docs/writer-postgres.md in the repository is the
// operator's guide.
package postgres
