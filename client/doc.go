// Package client is the requester library of lvss: the Go face of
// IVssBackupComponents, talking to lvssd over its Unix socket.
//
// A Conn is one connection to the daemon. Each BackupComponents it creates is
// one requester session (CreateVssBackupComponents) carried by one gRPC
// stream; the daemon keeps the session exactly as long as the stream, so a
// crashed or killed requester is released the way Windows releases the last
// reference to the COM object (D11): Abort if a snapshot set was
// being created, BackupShutdown to the writers that took part, auto-release
// snapshots deleted. Release does the same on purpose and reports what it
// did.
//
// The methods have the names and the order rules of IVssBackupComponents
// (vss-reference §2.4 and the D2 table of vss-reference §12): the daemon, not this package, decides
// what is VSS_E_BAD_STATE, so the library never second-guesses the state
// machine. Every error a method returns carries its HRESULT, so
//
//	if errors.Is(err, vsserr.BadState) { ... }
//
// works, and vsserr.Code(err) gives the number to print.
//
// Async methods (GatherWriterMetadata, PrepareForBackup, DoSnapshotSet,
// GatherWriterStatus, BackupComplete) return an *Async as soon as the daemon
// has started the operation. Calls on one session may be made from several
// goroutines: one goroutine reads the stream and hands each response to the
// caller waiting for it, so Wait in one goroutine and Cancel in another
// behave like IVssAsync.
//
// A typical backup in a writer context:
//
//	err := client.Run(ctx, "", func(ctx context.Context, bc *client.BackupComponents) error {
//		if err := bc.InitializeForBackup(ctx, ""); err != nil {
//			return err
//		}
//		if err := bc.SetBackupState(ctx, false, false, vss.BackupFull, false); err != nil {
//			return err
//		}
//		a, err := bc.GatherWriterMetadata(ctx)
//		if err == nil {
//			err = a.Wait(ctx)
//		}
//		...
//		return copyFiles(ctx, snapshotPaths)
//	})
//
// Run ends the session correctly whatever the function did: BackupComplete
// after a successful snapshot, AbortBackup after a failed one, then Release.
//
// The library never prints; the lvss CLI (cmd/lvss) is its printing front end.
package client
