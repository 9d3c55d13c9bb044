// Package soak runs lvss under sustained load for as long as asked and
// fails on what only time shows: leaks (goroutines, descriptors, memory),
// snapshots lost or duplicated between lvssd's catalog and the disk,
// sessions that never end, and unexpected errors.
//
// The real parts run: the built lvssd (own socket, state, run directory
// and config, metrics on a Unix socket) on a btrfs on a loop device, 100
// SDK writers in several processes that leave and come back, 50 requester
// sessions at once through the Go requester API doing whole backups in
// auto-release and persistent contexts, and between them exposures,
// deletions and listings through the lvss CLI binary.
//
// The test is built only with the tag soak, so that go test ./... does not
// run it; make soak DURATION=10m does (docs/testing.md):
//
//	LVSS_SOAK_DURATION=10m go test -tags soak -run TestSoak -v -timeout 30m ./test/soak/
//
// The test binary is also the writers' host: run with soak-writers as its
// first argument (see writerHostMain), it hosts SDK writers and obeys
// commands on its standard input.
package soak
