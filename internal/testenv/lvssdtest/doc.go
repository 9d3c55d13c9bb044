// Package lvssdtest is the one harness the tests use to run lvss for real:
// it builds the project's binaries once per test process, starts lvssd
// (the built binary, in temporary directories, or the real coordinator
// and gRPC server inside the test process with the fake provider), starts
// helper processes and writers, and runs the lvss CLI binary against a
// daemon.
//
// Everything a test starts is stopped by t.Cleanup, also when the test
// fails, and what a daemon or helper process printed is shown in the test
// log when the test failed. Waits are on conditions (a socket that
// answers, a writer that is listed), bounded generously so that a loaded
// machine is slow but not failing; nothing sleeps for a fixed time.
//
// A package whose tests call Bin or Binaries must end its TestMain with
// Main (or call RemoveBinaries after m.Run), so that the binaries built
// into a temporary directory are removed when the test process ends:
//
//	func TestMain(m *testing.M) { lvssdtest.Main(m) }
//
// The in-process daemon (StartInProcess) is the only place in the tests
// outside internal/coordinator and internal/server that wires those two
// packages together, so that a change to their API has one place to
// follow it here.
package lvssdtest
