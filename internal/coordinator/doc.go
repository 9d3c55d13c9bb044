// Package coordinator is the heart of lvssd: requester sessions with the
// state machine of spec §2.3/§12 D2, writer event fan-out with deadlines,
// the system-wide snapshot-set creation lock with its lease (§12 D7),
// provider calls in the order of §7.3, consistency recording (§12 D9), and
// session release (§12 D11).
//
// It knows nothing about gRPC: package internal/server adapts streams to the
// Session and WriterHandle types here. Writers are reached through a send
// function and answer through WriterHandle.Deliver, so unit tests drive the
// coordinator with in-process fake writers and the fake provider.
//
// Locking: Coordinator.mu guards the writer registry and the creation lock;
// Session.mu guards one session's state and documents. Writer events are
// never sent while holding either lock: a slow writer must not stall
// unrelated calls (status, Query, other sessions).
package coordinator
