// Package appctl is what the database writers (postgres, mysql, redis)
// share to stop and start their application around a restore, when the
// operator gives them the commands (--stop-command, --start-command;
// decision L40): running a shell command line bounded by the event's
// context, with its process group killed at the deadline and only the end
// of its output kept; waiting, polled and bounded, until the application
// is seen stopped or answering; and remembering which restore sessions
// the writer stopped the application for, so that a restore that wrote
// nothing (VSS_RS_NONE) brings back exactly what the writer took away.
//
// The writers do not own the service: without the commands they never
// stop or start anything.
package appctl
