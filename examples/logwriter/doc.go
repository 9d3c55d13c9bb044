// Command logwriter is a small, complete lvss writer: it declares one
// file-group component for a directory, writes every event it receives to
// a log (one line per event), stamps its component's backup stamp in
// PrepareForBackup and its backup metadata in PostSnapshot, and can be told
// to veto one event. The README demo and the end-to-end tests run it as a
// real writer process; docs/writer-sdk.md walks through it.
//
//	logwriter --name NAME --path DIR [--level front-end|back-end|system]
//	          [--log FILE] [--fail-at EVENT] [--sleep-at EVENT=DURATION] [--socket PATH]
package main
