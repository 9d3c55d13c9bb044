// Package server adapts the coordinator to gRPC: the Requester session
// stream, the Writer subscription stream and the Admin service, all on one
// Unix socket. The socket is world-reachable (mode 0666) so that every
// caller reaches the daemon; who may do what is decided here from the
// peer's kernel-verified credentials (SO_PEERCRED for uid/gid/pid,
// SO_PEERGROUPS for its supplementary groups), never from anything the
// caller says about itself. A refused caller gets E_ACCESSDENIED and the
// attempt is written to the event log.
package server
