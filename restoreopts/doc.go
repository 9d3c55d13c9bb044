// Package restoreopts is the format of the restore options string lvss's
// requesters give writers (IVssBackupComponents::SetRestoreOptions, read
// by the writer from its component in PreRestore and PostRestore). VSS
// leaves the string private to each writer; lvss gives it one shape so
// that `lvss restore` can pass the same facts (a recovery target, above
// all) to any writer, and writers need not invent a parser each:
//
//	recovery_target_time=2026-12-06 13:56:59+00
//	some_writer.option=value
//
// One KEY=VALUE per line, lines separated by "\n". A key is lowercase
// letters, digits, '_', '-' and '.'; a value is any text without a newline
// or NUL, taken as it is (spaces included, nothing quoted). A key appears
// once. String writes the keys sorted, so the same options are always the
// same string; Parse accepts any order and skips empty lines. The empty
// string is no options.
//
// The keys lvss itself defines are the recovery target of a
// point-in-time restore, at most one of them (RecoveryTarget); they are
// PostgreSQL's setting names because PostgreSQL's writer is their first
// reader, and a writer of another application maps them to its own terms.
// A writer that meets a key it does not know should ignore it: options
// for other writers may be in the same string (lvss restore gives every
// selected component the same options).
//
// The package is in the spec layer with vss and document: writers and
// requesters both use it, and it needs nothing else.
package restoreopts
