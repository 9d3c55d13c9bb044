// Package coordinator is the heart of lvssd: requester sessions with the
// state machine of the D2 table (vss-reference §2.3, vss-reference §12), writer event
// fan-out with deadlines, the system-wide snapshot-set creation lock with
// its lease (D7), provider calls in the order of vss-reference §7.3,
// consistency recording (D9), and session release (D11).
//
// Where things are:
//   - states.go: the table (for each call, where it is allowed and where it
//     leads), admit and transition: the one place a session's state
//     changes.
//   - session.go: a session's life, its settings, and its release.
//   - writers.go: writers as a session sees them (status and phase),
//     GatherWriterMetadata and GatherWriterStatus.
//   - writer.go: one subscribed writer, its outbound queue and call.
//   - components.go: components and documents.
//   - creation.go, snapshot.go: StartSnapshotSet to BackupComplete, the
//     abort paths and the lease; DoSnapshotSet.
//   - fanout.go: sending one event to many writers; Abort.
//   - admin.go: Query, properties, delete, expose; the coordinator's
//     Snapshot type.
//   - async.go: IVssAsync.
//   - eventlog.go: the event log's bounded queue and its writer (L60).
//
// It knows nothing about gRPC: package internal/server adapts streams to the
// Session and WriterHandle types here. Writers are reached through a
// WriterStream and answer through WriterHandle.Deliver, so unit tests drive
// the coordinator with in-process fake writers and the fake provider.
//
// Locking: Coordinator.mu guards the writer registry and the creation lock;
// Session.mu guards one session's state and documents. Neither is held
// across a send, a provider call or a disk write, and no caller ever waits
// on a stream: every message to a writer goes through its outbox (package
// internal/outbox), bounded by the event's deadline (L29).
package coordinator
