// Package redis is the lvss writer for Redis 7 servers: it makes the
// server's files consistent in snapshots by pausing its writes for the
// freeze window with CLIENT PAUSE ... WRITE and, under the pause, making
// the files on disk hold exactly the paused dataset, so that a server
// started on the snapshot loads the state after the last write executed
// before the pause.
//
// New builds the writer from a Config; writer.Run serves it:
//
//	id, w, err := redis.New(redis.Config{Addr: "127.0.0.1:6379"})
//	if err != nil { ... }
//	defer w.Close()
//	err = writer.Run(ctx, writer.Options{Retry: true}, id, w)
//
// # What it does in each event
//
//   - Identify: asks the server (CONFIG GET dir, dbfilename, appendonly,
//     appenddirname, appendfilename) and declares one DATABASE component,
//     "dataset", with the files a restart loads: the AOF directory when
//     appendonly is yes (and the RDB file if it exists), else the RDB
//     file. An unreachable server fails Identify (RETRYABLE) with the
//     driver's message, unless it is stopped (below).
//   - PrepareSnapshot: opens the writer's one connection, checks the
//     layout is still the one declared, and that the files are captured
//     at one instant (D15).
//   - Freeze: CLIENT PAUSE <bound> WRITE, the bound being the Freeze→Thaw
//     window plus a second. Then, with the AOF on, waits until the AOF
//     buffer is written out (aof_buffer_length 0; no fsync is needed, the
//     snapshot captures the page cache); with the AOF off, waits out a
//     save already running, runs BGSAVE (its fork sees the paused
//     dataset) and confirms it with INFO persistence and LASTSAVE. If
//     that cannot finish within half the window, the pause is lifted and
//     Freeze fails.
//   - Thaw, Abort, BackupShutdown: CLIENT UNPAUSE (on a fresh connection
//     if the writer's broke); BackupShutdown also closes the connection.
//   - PreRestore: refuses (RETRYABLE, naming the server's PID) while the
//     server answers, unless Config.StopCommand is set: then it runs it
//     and waits until the server no longer answers. Without it the writer
//     stops no server (L40).
//   - PostRestore: with VSS_RS_ALL checks the restored RDB file (header,
//     end marker, CRC-64) or AOF directory (manifest and the files it
//     names); with VSS_RS_NONE does nothing; with VSS_RS_FAILED does
//     nothing and fails. With Config.StartCommand it starts the server
//     after VSS_RS_ALL, and after VSS_RS_NONE if it stopped it in that
//     session, and waits until it answers PING.
//
// While the server is stopped, Identify declares the files the writer
// last saw it use, so that a restore session finds the writer.
//
// # The pause is the server's
//
// CLIENT PAUSE pauses every client of the server, and CLIENT UNPAUSE ends
// every pause, whoever set it. A writer that dies while frozen leaves the
// server's writes paused until the bound it gave, no longer. Writes wait
// (unanswered) while paused; clients need a read timeout longer than the
// freeze window. docs/writer-redis.md in the repository is the operator's
// guide.
package redis
