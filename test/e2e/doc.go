// Package e2e runs lvss as a user would: the real lvssd binary on its real
// socket, real writer processes built on the SDK, requesters through the Go
// client and the lvss CLI, and requester processes killed mid-backup. It
// has no non-test code.
package e2e
