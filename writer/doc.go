// Package writer is the lvss writer SDK: what CVssWriter is to a Windows
// application, this package is to a Linux one. An application that wants its
// data captured consistently implements Writer, and Run subscribes it to
// lvssd and delivers the coordinator's events to it.
//
// # Events
//
// For one backup session a writer that takes part sees, in order:
//
//	Identify            any time, also outside sessions; no session state
//	PrepareBackup       BCD in, may edit its own components
//	PrepareSnapshot     heavy pre-freeze work; placements of its paths (D15)
//	Freeze              stop writing; the Freeze→Thaw window starts when it returns
//	Thaw                resume writing
//	PostSnapshot        BCD in, last chance to edit; snapshot device paths
//	BackupComplete      BCD in, read-only
//	BackupShutdown      end of the session, also after an Abort or a crash
//
// Abort may arrive at any point after PrepareBackup and before PostSnapshot,
// and more than once; it must restore normal running and be idempotent. A
// restore session sends PreRestore and PostRestore, then BackupShutdown.
// Only Identify, Freeze, Thaw and Abort are mandatory; the others are
// one-method interfaces (PrepareBackuper, PostSnapshotter, ...) found by type
// assertion, and an event the writer does not implement is answered success.
//
// # Safety promises
//
// Run keeps these promises so that a writer cannot leave its application
// frozen because of the coordinator:
//
//   - Handlers of one writer never run concurrently, and run in the order
//     the events arrived.
//   - An Abort for a session whose handler is running cancels that handler's
//     context at once; Abort itself is called after the handler returned.
//   - If neither Thaw nor Abort has arrived within the Freeze→Thaw window
//     after Freeze returned, Run calls Abort itself; the late Thaw is then
//     answered VSS_E_WRITERERROR_TIMEOUT without calling Thaw.
//   - If the stream to lvssd breaks, or Run's context ends (SIGTERM), Run
//     calls Abort for every session that is frozen or between
//     PrepareSnapshot and PostSnapshot, and BackupShutdown for every session
//     the writer took part in, before it reconnects or returns.
//   - A BackupShutdown that arrives while a session is still frozen or
//     prepared is preceded by an Abort.
//
// # Failures
//
// A handler returns nil for success. Fail builds a failure with a writer
// failure code of vss-reference §3.4, an application HRESULT and a message; an error
// carrying a writer failure code (such as the one SharedInstant returns)
// keeps its code; any other error is reported as
// VSS_E_WRITERERROR_NONRETRYABLE with its text; a handler still running when
// its context's deadline passes is reported as VSS_E_WRITERERROR_TIMEOUT.
//
// docs/writer-sdk.md in the repository is the guide with a complete example;
// package writertest is the conformance suite every writer should run.
package writer
