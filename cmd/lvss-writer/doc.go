// Command lvss-writer hosts lvss's shipped writers, each as its own
// process, so that a hung database client never hangs lvssd:
//
//	lvss-writer [--socket PATH] exec     [flags]   hook scripts as a VSS writer
//	lvss-writer [--socket PATH] sqlite   [flags]   SQLite databases
//	lvss-writer [--socket PATH] postgres [flags]   PostgreSQL 15+ clusters (crash-consistent)
//	lvss-writer [--socket PATH] mysql    [flags]   MariaDB and MySQL servers
//	lvss-writer [--socket PATH] redis    [flags]   Redis 7 servers
//
// It finds lvssd as lvss does (--socket, else $LVSS_SOCKET, else
// /run/lvss/lvssd.sock), waits and retries with backoff while the socket is
// missing, subscribes again when lvssd restarts, and on SIGTERM or SIGINT
// releases its application (Abort, then BackupShutdown, through the writer
// SDK) before it exits.
package main
