package writer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/vsserr"
)

func TestFailureOf(t *testing.T) {
	live := context.Background()
	expired, cancel := context.WithDeadline(live, time.Now().Add(-time.Second))
	defer cancel()
	aborted, abort := context.WithCancelCause(live)
	abort(errAbortArrived)

	for _, tc := range []struct {
		name    string
		ctx     context.Context
		err     error
		code    vsserr.HRESULT
		appHR   vsserr.HRESULT
		message string // substring
	}{
		{"success", live, nil, vsserr.OK, 0, ""},
		{"Fail", live, Fail(vsserr.WriterErrorRetryable, vsserr.OutOfMemory, "busy %d", 7), vsserr.WriterErrorRetryable, vsserr.OutOfMemory, "busy 7"},
		{"wrapped Fail", live, fmt.Errorf("freeze: %w", Fail(vsserr.WriterErrorOutOfResources, 0, "no memory")), vsserr.WriterErrorOutOfResources, 0, "no memory"},
		{"Fail with a non-writer code", live, Fail(vsserr.Fail, 0x1234, "odd"), vsserr.WriterErrorNonRetryable, 0x1234, "not a writer failure code"},
		{"plain error", live, errors.New("disk on fire"), vsserr.WriterErrorNonRetryable, 0, "disk on fire"},
		{"vsserr writer code", live, vsserr.New(vsserr.WriterErrorInconsistentSnapshot, "split"), vsserr.WriterErrorInconsistentSnapshot, 0, "split"},
		{"vsserr other code", live, vsserr.New(vsserr.BadState, "weird"), vsserr.WriterErrorNonRetryable, 0, "weird"},
		{"deadline passed", expired, nil, vsserr.WriterErrorTimeout, 0, "deadline"},
		{"deadline passed with error", expired, context.DeadlineExceeded, vsserr.WriterErrorTimeout, 0, "deadline"},
		{"cancelled by Abort", aborted, context.Canceled, vsserr.WriterErrorRetryable, 0, "Abort arrived"},
		{"cancelled, own error", aborted, errors.New("lock wait interrupted"), vsserr.WriterErrorRetryable, 0, "lock wait interrupted"},
		{"cancelled but finished", aborted, nil, vsserr.OK, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := failureOf(tc.ctx, tc.err)
			if f.Code != tc.code || f.ApplicationHR != tc.appHR || !strings.Contains(f.Message, tc.message) {
				t.Errorf("failureOf = %s app %s %q, want %s app %s containing %q", f.Code, f.ApplicationHR.Hex(), f.Message, tc.code, tc.appHR.Hex(), tc.message)
			}
		})
	}
}

func TestFailIs(t *testing.T) {
	err := fmt.Errorf("ctx: %w", Fail(vsserr.WriterErrorRetryable, 0, "x"))
	if !errors.Is(err, vsserr.WriterErrorRetryable) {
		t.Error("errors.Is does not see the code of a Fail error")
	}
	if errors.Is(err, vsserr.WriterErrorNonRetryable) {
		t.Error("errors.Is matches another code")
	}
	if got := Fail(vsserr.WriterErrorTimeout, vsserr.OutOfMemory, "slow").Error(); !strings.Contains(got, "VSS_E_WRITERERROR_TIMEOUT") || !strings.Contains(got, "0x8007000E") {
		t.Errorf("Error() = %q: want the code and the application HRESULT", got)
	}
}

func TestIdentityDefaults(t *testing.T) {
	id := Identity{}.withDefaults()
	if id.Usage != 3 || id.Source != 3 || id.Level != 3 || id.FreezeTimeout != DefaultFreezeTimeout {
		t.Errorf("defaults = %+v", id)
	}
	if err := id.validate(); !errors.Is(err, vsserr.InvalidArg) {
		t.Errorf("an identity without class ID validates: %v", err)
	}
}
