// Package failpoint names the places where the fault-matrix tests make
// lvssd fail: before and after each writer event, each provider call and
// each journal and catalog write. A failpoint is a call to Hit with the
// place's name.
//
// Only builds with the lvss_failpoints tag act on them (lvssdtest builds
// lvssd so for the matrix); in every other build Hit is an empty function
// the compiler removes, so a shipped lvssd has no way to be told to fail.
//
// In a test build, LVSSD_FAILPOINTS lists what to do where, as
// NAME=ACTION pairs separated by semicolons; NAME may end in '*' to match
// a prefix. Actions:
//
//	kill   SIGKILL lvssd itself at that point (a crash, no clean-up)
//	error  Hit returns an error (VSS_E_UNEXPECTED_PROVIDER_ERROR for
//	       provider calls; the caller treats it as that step's failure)
//	pause  create DIR/NAME.reached and wait until DIR/NAME.go exists, so a
//	       test can act (kill a writer, stop the requester, SIGKILL lvssd)
//	       while lvssd stands exactly there; DIR is $LVSSD_FAILPOINT_DIR.
//	       Leaving (the go-ahead, or ctx ended), it removes both files
//	hang   block until the context given to HitCtx ends (for ever for Hit)
//
// A test may change the rules while lvssd runs by writing them, in the
// same format, to DIR/failpoints: from the next failpoint reached on, they
// replace LVSSD_FAILPOINTS's (and act afresh).
//
// Each failpoint acts the first time it is reached only, unless the action
// ends in '+' (every time), so that a restarted or retried step goes on.
package failpoint
