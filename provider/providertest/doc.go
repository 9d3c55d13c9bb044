// Package providertest is the conformance suite every snapshot provider
// runs, ours or a third party's. It checks the provider contract documented
// on provider.Provider:
//
//   - the call order of vss-reference §7.3, snapshot identity, Query after Delete,
//     idempotent Abort and Delete, refusal of unsupported volumes, exposure,
//     and — for providers that can show their content — that a snapshot
//     holds the data of its commit instant and not what was written after;
//   - refusals: a step out of order or repeated, at every point of the
//     sequence, or for an unknown, aborted or finished set, is refused with
//     a code vss-reference §7.2 permits for it (VSS_E_OBJECT_NOT_FOUND, E_INVALIDARG for
//     the two final steps), and a set ID is never prepared twice;
//   - AbortSnapshots undoes a set at every point before
//     PostFinalCommitSnapshots (no partial commit) and leaves a finished
//     set's snapshots alone;
//   - a new provider value over the same state (a restart) lists, exposes
//     and deletes the snapshots an earlier one made;
//   - EndPrepareSnapshots, CommitSnapshots and DeleteSnapshot honour a
//     context that is already done, or that ends while they work, and
//     leave nothing behind.
//
// A provider package calls Run from a test with a Harness that makes a
// fresh provider and volumes for each subtest; subtests run in parallel
// unless Harness.Serial says why they cannot:
//
//	func TestConformance(t *testing.T) {
//		providertest.Run(t, providertest.Harness{New: func(t *testing.T) providertest.Setup { ... }})
//	}
//
// Most of Setup is optional, but a gap must be explained. A check that
// needs what a harness does not give (a second volume, a way to read
// snapshots, to restart the provider, to list what it keeps on disk, to
// hold a call while it works) is skipped naming what is not checked and
// the reason the harness gives in Setup.Without; an ability missing
// without a reason, or a reason for one the Setup has, fails. So a suite
// that runs on CI cannot lose a check silently: a provider that stops
// implementing provider.Exposer, or a harness that drops a field, fails
// until someone says why. HoldOnce helps a harness implement Hold.
package providertest
