// Package freeze holds filesystems still (FIFREEZE) for the few milliseconds
// a provider that copies from outside the filesystem needs, and guarantees
// that the hold ends even when the daemon that asked for it does not.
//
// A frozen filesystem blocks every writer in the kernel, uninterruptibly. A
// freeze that outlives its purpose — because lvssd crashed, hung, was
// killed, or simply forgot — stops the machine. So the ioctls are not issued
// by lvssd but by a guard: a small child process (lvssd's own binary run
// with GuardArg) that does nothing else and thaws on its own when
//
//   - the hold window passes (Options.Hold, default 10 s as in VSS),
//     counted from the moment the first FIFREEZE is issued;
//   - it gets SIGTERM, SIGINT, SIGHUP (or SIGQUIT, SIGUSR1/2, SIGALRM);
//   - lvssd dies in any way, SIGKILL included: its control pipe reaches
//     end-of-file, and a pidfd on lvssd becomes readable;
//   - lvssd tells it to (Thaw, Close, or an aborted Freeze).
//
// The guard that is itself SIGKILLed cannot thaw. Before each FIFREEZE it
// writes a record to <RunDir>/freeze/ (a tmpfs: it is written while
// filesystems are frozen), and removes it after FITHAW; Recover thaws what
// such records name. The Guard value in lvssd calls it for its own guard
// the moment that guard exits, and lvssd calls Recover at start.
//
// Call order on a Guard:
//
//	g, err := freeze.Start(ctx, opt) // before writers freeze: spawning is slow
//	defer g.Close()                  // always: thaws if needed, ends the guard
//	err = g.Freeze(ctx, paths)       // syncfs all, then FIFREEZE each filesystem once
//	...                              // provider commit, nothing else (see below)
//	held, err := g.Thaw()            // VSS_E_HOLD_WRITES_TIMEOUT if the window passed
//
// One guard serves one hold: Freeze at most once, and after Thaw the guard
// is gone. Thaw and Close are idempotent; Close is safe after Thaw.
//
// While filesystems are frozen the caller must not write to them, nor do
// anything that might: no catalog commit, no journal outside the run dir, no
// logging to a file or to a journald whose storage may be frozen, no hook
// script without a tmpfs TMPDIR. The package itself logs only when nothing
// it froze is still frozen. A btrfs snapshot blocks on a frozen btrfs and a
// reflink copy on a frozen XFS: providers that snapshot atomically on their
// own must never have their filesystems frozen; the coordinator decides
// which paths reach Freeze.
//
// docs/freeze.md describes the control protocol, the records and the
// measured costs.
package freeze
