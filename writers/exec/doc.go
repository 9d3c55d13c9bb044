// Package exec is the exec writer: an lvss writer whose every event runs
// an administrator's command, so that an application without VSS support
// of its own (a database with a "flush and lock" statement, a service that
// can pause) is made consistent in snapshots by shell hooks.
// cmd/lvss-writer hosts it as "lvss-writer exec".
//
// Each event runs its hook with "sh -c" (Config.Hooks, keyed by the names
// of Events()), in "/", in a process group of its own, with the event's
// facts in LVSS_* environment variables and TMPDIR on a tmpfs: a hook that
// writes to a filesystem while it is frozen hangs, uninterruptibly. Exit 0
// is success, 75 (EX_TEMPFAIL) VSS_E_WRITERERROR_RETRYABLE, anything else
// VSS_E_WRITERERROR_NONRETRYABLE, with the last line of stderr as the
// application message. A hook that outlives its timeout is killed with its
// whole process group and reported as VSS_E_WRITERERROR_TIMEOUT.
//
// A directory of fsfreeze-hook.d scripts (qemu-guest-agent's convention)
// can stand beside or instead of the freeze and thaw hooks: each script is
// called with "freeze" at Freeze, in lexical order, and with "thaw" at Thaw,
// Abort and BackupShutdown, in reverse order.
//
// The application is released on every path: Thaw, Abort (from lvssd, or
// raised by the SDK when the Freeze→Thaw window expires, the connection is
// lost or writer.Run's context ends), and BackupShutdown. Release hooks are
// bounded by their own timeout only, not cut short at lvssd's deadline,
// since a thaw killed halfway leaves the application frozen.
//
// With a pre-restore or post-restore hook the writer takes part in
// restores (VSS_WRE_ALWAYS); those hooks get the restore facts of the
// components selected for restore (target, file restore status, restore
// options, new targets, alternate locations used) in LVSS_RESTORE_* and
// related variables.
//
// docs/writer-exec.md lists every flag, variable and timeout.
package exec
