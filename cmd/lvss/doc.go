// Command lvss is the command-line requester and admin tool of lvss.
//
// Verbs come in groups, one file each: `lvss call` (call.go) runs
// IVssBackupComponents methods one per line in one session, for scripts,
// tests and learning the protocol; `lvss list` (list.go) shows what the
// daemon knows without starting a session, like `vssadmin list`.
//
// Every verb prints text, or JSON with --json. The exit status is chosen in
// one place, exitCode in main.go: 0 success, 1 a call or operation failed,
// 2 the command line was wrong, 130 interrupted.
package main
