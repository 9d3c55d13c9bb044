package provider

import (
	"errors"
	"strings"
	"testing"

	"github.com/lvss/lvss/vsserr"
)

func TestTranslate(t *testing.T) {
	denied := vsserr.New(vsserr.AccessDenied, "snapshot ioctl: operation not permitted")
	for _, tc := range []struct {
		call Call
		in   error
		want vsserr.HRESULT
	}{
		// D18: E_ACCESSDENIED means "the caller may not back up" to a
		// requester; from a provider it is lvssd's problem.
		{CallCommitSnapshots, denied, vsserr.UnexpectedProviderError},
		{CallBeginPrepareSnapshot, denied, vsserr.UnexpectedProviderError},
		{CallCommitSnapshots, vsserr.New(vsserr.ProviderVeto, "no"), vsserr.ProviderVeto},
		// Commit's list has no INSUFFICIENT_STORAGE; EndPrepare's has.
		{CallCommitSnapshots, vsserr.New(vsserr.InsufficientStorage, "full"), vsserr.UnexpectedProviderError},
		{CallEndPrepareSnapshots, vsserr.New(vsserr.InsufficientStorage, "full"), vsserr.InsufficientStorage},
		{CallPostFinalCommitSnapshots, vsserr.New(vsserr.ObjectNotFound, "gone"), vsserr.UnexpectedProviderError},
		{CallBeginPrepareSnapshot, vsserr.New(vsserr.MaximumNumberOfSnapshotsReached, "cap"), vsserr.MaximumNumberOfSnapshotsReached},
		{CallDeleteSnapshot, errors.New("no code at all"), vsserr.UnexpectedProviderError},
	} {
		got := Translate(nil, tc.call, tc.in)
		if vsserr.Code(got) != tc.want {
			t.Errorf("%s %v: got %v, want %s", tc.call, tc.in, got, tc.want)
		}
		if tc.want == vsserr.UnexpectedProviderError && !strings.Contains(got.Error(), tc.in.Error()) {
			t.Errorf("%s: the provider's own error is lost: %v", tc.call, got)
		}
	}
	if Translate(nil, CallCommitSnapshots, nil) != nil {
		t.Error("nil error translated")
	}
}
