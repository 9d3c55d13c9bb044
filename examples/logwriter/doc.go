// Command logwriter is a small, complete lvss writer: it declares one
// file-group component for a directory, writes every event it receives to
// a log (one line per event), stamps its component's backup stamp in
// PrepareForBackup and its backup metadata in PostSnapshot, and can be told
// to veto one event or to take long in one (until SIGUSR1 ends it). The
// README demo and the end-to-end tests run it as a real writer process;
// docs/writer-sdk.md walks through it. --entered logs each event when its
// handler starts too, so that a test can wait for the writer to be inside
// a handler.
//
//	logwriter --name NAME --path DIR [--level front-end|back-end|system]
//	          [--log FILE] [--fail-at EVENT] [--sleep-at EVENT=DURATION]
//	          [--entered FILE] [--socket PATH]
//	          [--restore never|if-replace-fails|always]
//
// With --restore other than never it takes part in restores and logs, with
// PreRestore and PostRestore, the restore type and each component's
// selection, restore target, file restore status and, when given, restore
// options and new targets. It declares VSS_BS_WRITER_SUPPORTS_NEW_TARGET.
package main
