// Package writertest is the conformance suite for lvss writers, and the
// small in-process coordinator it drives them with.
//
// Every writer, shipped with lvss or not, should pass Run from its own
// tests:
//
//	func TestConformance(t *testing.T) {
//		writertest.Run(t, func(t *testing.T) (writer.Identity, writer.Writer) {
//			app := startApp(t)
//			return myIdentity, newMyWriter(app)
//		}, writertest.Options{
//			CheckFrozen: func(t *testing.T) { app.mustRefuseWrites(t) },
//			CheckThawed: func(t *testing.T) { app.mustAcceptWrites(t) },
//		})
//	}
//
// Run starts a Coordinator (a gRPC server implementing the Writer service on
// a Unix socket in a temporary directory: a test driver, not lvssd), runs
// the writer with writer.Run, and walks it through Identify, a full backup,
// Abort in every phase, a session shut down without BackupComplete, an
// expired Freeze→Thaw window, a dropped stream and a cancelled Run, and
// (for writers that take part in restores) a restore with every file
// restore status and one cut before PostRestore. It
// checks every answer (success, the event's id, BCD edits confined to the
// writer's own components) and that the SDK never runs two handlers of the
// writer at once; the CheckFrozen and CheckThawed hooks check the
// application itself.
//
// Writer-specific tests can drive odd sequences with NewCoordinator, Send,
// WaitWriters and DropWriter directly.
package writertest
