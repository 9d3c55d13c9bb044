// Package clienttest is a fake lvssd for testing requesters: it serves the
// Requester and Admin gRPC services on a Unix socket in a temporary
// directory, answers every session call with a plausible result, and can be
// told to fail a call, to fail or hold an async operation, or to break the
// stream when a given call arrives.
//
// It has no state machine on purpose: it tests what a client does with the
// answers it gets (routing, error mapping, cleanup), not the coordinator's
// order rules, which belong to the coordinator's own tests and to
// integration tests against a real lvssd. The CLI's tests run against the
// real coordinator (internal/testenv/lvssdtest.StartInProcess); this fake
// is for the client's own tests and the few situations a real lvssd never
// produces.
//
// It does keep a small snapshot catalog (Server.Shadows), because admin
// tools decide what to do from what ListShadows says: snapshots a session
// creates join it, DeleteSnapshots and ExposeSnapshot act on it, ending a
// session removes its auto-release snapshots. Requests and Deleted record
// what a client sent, so tests can check arguments and not only methods.
package clienttest
