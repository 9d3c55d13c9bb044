// Package providertest is the conformance suite every snapshot provider
// runs, ours or a third party's: the call order of spec §7.3, snapshot
// identity, Query after Delete, idempotent Abort and Delete, refusal of
// unsupported volumes, exposure, and — for providers that can show their
// content — that a snapshot holds the data of its commit instant and not
// what was written after.
//
// A provider package calls Run from a test with a Harness that makes a
// fresh provider and volumes for it:
//
//	func TestConformance(t *testing.T) {
//		providertest.Run(t, providertest.Harness{New: func(t *testing.T) providertest.Setup { ... }})
//	}
package providertest
