// Command lvss is the command-line requester and admin tool of lvss.
//
// Verbs come in groups, one file each: `lvss call` (call.go) runs
// IVssBackupComponents methods one per line in one session, for scripts,
// tests and learning the protocol; `lvss list` (list.go) shows what the
// daemon knows without starting a session, like `vssadmin list`; `lvss
// create shadow` (create.go), `lvss delete shadows` (delete.go) and `lvss
// expose`/`unexpose` (expose.go) manage persistent snapshots like
// `vssadmin create/delete shadows`, each in a session of its own that
// client.Run ends correctly; shadows.go holds what they share. `lvss
// backup` (backup.go: the requester sequence; backuprun.go: running
// COMMAND, the exclude file and the summary; backuparchive.go and
// backupshow.go: the --bcd archive) is vshadow's create with -exec: one
// application-consistent snapshot set and a backup tool run on it, in
// place (package internal/inplace) or not.
//
// Every verb prints text, or JSON with the root's --json. errors.go is how
// a failure ends: exitCode, the one place that chooses the exit status (the
// table is in lvss --help and docs/cli.md), and reportError, which prints
// the error with its hint (internal/clierr), or as one JSON object.
package main
