package provider

import (
	"github.com/lvss/lvss/vsserr"
)

// Call names a provider call, for the codes it may return.
type Call string

// The provider calls, as the coordinator makes them (vss-reference §7.3).
const (
	CallIsVolumeSupported        Call = "IsVolumeSupported"
	CallBeginPrepareSnapshot     Call = "BeginPrepareSnapshot"
	CallEndPrepareSnapshots      Call = "EndPrepareSnapshots"
	CallPreCommitSnapshots       Call = "PreCommitSnapshots"
	CallCommitSnapshots          Call = "CommitSnapshots"
	CallPostCommitSnapshots      Call = "PostCommitSnapshots"
	CallPreFinalCommitSnapshots  Call = "PreFinalCommitSnapshots"
	CallPostFinalCommitSnapshots Call = "PostFinalCommitSnapshots"
	CallAbortSnapshots           Call = "AbortSnapshots"
	CallDeleteSnapshot           Call = "DeleteSnapshot"
	CallExpose                   Call = "Expose"
	CallUnexpose                 Call = "Unexpose"
	CallRevert                   Call = "Revert"
	CallQuery                    Call = "Query"
)

func codes(hs ...vsserr.HRESULT) map[vsserr.HRESULT]bool {
	m := map[vsserr.HRESULT]bool{}
	for _, h := range hs {
		m[h] = true
	}
	return m
}

// general is vss-reference §7.2's list for provider calls without a list of their own,
// less E_ACCESSDENIED (D18): providers are called by lvssd alone, so an
// E_ACCESSDENIED from one (the kernel said EPERM) is lvssd's problem, and
// passed on it would tell the requester that it lacks the right to back up.
var general = codes(vsserr.OutOfMemory, vsserr.InvalidArg, vsserr.BadState, vsserr.ObjectNotFound,
	vsserr.InsufficientStorage, vsserr.VolumeNotSupported, vsserr.VolumeNotSupportedByProvider,
	vsserr.MaximumNumberOfSnapshotsReached, vsserr.ProviderVeto, vsserr.CannotRevertDiskID)

var (
	commitCodes = codes(vsserr.OutOfMemory, vsserr.InvalidArg, vsserr.ObjectNotFound, vsserr.ProviderVeto)
	finalCodes  = codes(vsserr.OutOfMemory, vsserr.InvalidArg, vsserr.ProviderVeto)
)

// permitted are vss-reference §7.2's per-call lists (D18). BeginPrepareSnapshot's is
// IVssSoftwareSnapshotProvider::BeginPrepareSnapshot's documented set
// (vss-reference §7.2), with the per-volume cap the provider contract
// lets it report.
var permitted = map[Call]map[vsserr.HRESULT]bool{
	CallBeginPrepareSnapshot: codes(vsserr.OutOfMemory, vsserr.InvalidArg, vsserr.ObjectNotFound, vsserr.ProviderVeto,
		vsserr.UnsupportedContext, vsserr.VolumeNotSupportedByProvider, vsserr.MaximumNumberOfSnapshotsReached),
	CallEndPrepareSnapshots:      codes(vsserr.OutOfMemory, vsserr.InvalidArg, vsserr.ObjectNotFound, vsserr.ProviderVeto, vsserr.InsufficientStorage),
	CallPreCommitSnapshots:       commitCodes,
	CallCommitSnapshots:          commitCodes,
	CallPostCommitSnapshots:      commitCodes,
	CallAbortSnapshots:           commitCodes,
	CallPreFinalCommitSnapshots:  finalCodes,
	CallPostFinalCommitSnapshots: finalCodes,
	// RevertToSnapshot's list (vss-reference §2.3), less what only the
	// coordinator decides (the context, a provider not registered).
	CallRevert: codes(vsserr.Fail, vsserr.OutOfMemory, vsserr.InvalidArg, vsserr.ObjectNotFound,
		vsserr.RevertInProgress, vsserr.VolumeInUse, vsserr.VolumeNotSupported),
}

// Permitted reports whether call may return code (D18; S_OK always may).
func Permitted(call Call, code vsserr.HRESULT) bool {
	if code == vsserr.OK {
		return true
	}
	if l, ok := permitted[call]; ok {
		return l[code]
	}
	return general[code]
}

// Translate is how a provider's error reaches a requester: a code the call
// may return passes unchanged; any other becomes
// VSS_E_UNEXPECTED_PROVIDER_ERROR, with the provider's error (and its own
// code) kept in the message and the chain (D18). p may be nil.
func Translate(p Provider, call Call, err error) error {
	if err == nil {
		return nil
	}
	if Permitted(call, vsserr.Code(err)) {
		return err
	}
	name := "provider"
	if p != nil {
		name = p.Info().Name
	}
	return vsserr.Wrap(vsserr.UnexpectedProviderError, err, "%s %s returned a code it may not return", name, call)
}
