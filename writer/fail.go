package writer

import (
	"context"
	"errors"
	"fmt"

	"github.com/lvss/lvss/vsserr"
)

// Failure is a writer failure as SetWriterFailureEx records it: a writer
// failure code of vss-reference §3.4, the application's own HRESULT (0 if none) and
// a message for the requester's GetWriterStatusEx.
type Failure struct {
	Code          vsserr.HRESULT
	ApplicationHR vsserr.HRESULT
	Message       string
}

// Fail builds the error a handler returns to veto with a specific writer
// failure code. code should be one of the VSS_E_WRITERERROR_* values; any
// other code is reported as VSS_E_WRITERERROR_NONRETRYABLE, since the
// coordinator gives no other codes a meaning for writers.
//
//	return writer.Fail(vsserr.WriterErrorRetryable, 0, "checkpoint in progress")
func Fail(code vsserr.HRESULT, appHR vsserr.HRESULT, format string, args ...any) error {
	return &Failure{Code: code, ApplicationHR: appHR, Message: fmt.Sprintf(format, args...)}
}

func (f *Failure) Error() string {
	s := f.Code.String()
	if f.ApplicationHR != 0 {
		s += " [application " + f.ApplicationHR.Hex() + "]"
	}
	if f.Message != "" {
		s += ": " + f.Message
	}
	return s
}

// Is lets errors.Is(err, vsserr.WriterErrorRetryable) see the code.
func (f *Failure) Is(target error) bool {
	switch t := target.(type) {
	case vsserr.HRESULT:
		return f.Code == t
	case *vsserr.Error:
		return f.Code == t.Code
	}
	return false
}

// writerCodes are the codes a writer may report (vss-reference §3.4). The two
// coordinator-only codes (NOT_RESPONDING, STATUS_NOT_AVAILABLE) are left
// out: a writer claiming them would confuse the requester's retry logic.
var writerCodes = map[vsserr.HRESULT]bool{
	vsserr.WriterErrorInconsistentSnapshot: true,
	vsserr.WriterErrorOutOfResources:       true,
	vsserr.WriterErrorTimeout:              true,
	vsserr.WriterErrorRetryable:            true,
	vsserr.WriterErrorNonRetryable:         true,
	vsserr.WriterErrorRecoveryFailed:       true,
	vsserr.WriterErrorPartialFailure:       true,
}

// IsWriterFailureCode reports whether code is one a writer may report.
func IsWriterFailureCode(code vsserr.HRESULT) bool { return writerCodes[code] }

// Errors the SDK puts as the cause of a handler's cancelled context; the
// answer to the cancelled event names them.
var (
	errAbortArrived  = errors.New("cancelled: Abort arrived for this session")
	errWindowExpired = errors.New("cancelled: the Freeze→Thaw window of a frozen session expired")
	errStreamLost    = errors.New("cancelled: the connection to lvssd was lost")
)

// failureOf turns a handler's outcome into what the EventResult carries.
// ctx is the handler's context, looked at after the handler returned.
func failureOf(ctx context.Context, err error) Failure {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The coordinator has stopped waiting; whatever the handler says
		// now, it said it too late.
		msg := "the handler did not finish before the event's deadline"
		if err != nil {
			msg += ": " + err.Error()
		}
		return Failure{Code: vsserr.WriterErrorTimeout, Message: msg}
	}
	if err == nil {
		return Failure{}
	}
	var f *Failure
	if errors.As(err, &f) {
		out := *f
		if !writerCodes[out.Code] {
			out.Message = fmt.Sprintf("%s (the writer reported %s, which is not a writer failure code)", out.Message, out.Code)
			out.Code = vsserr.WriterErrorNonRetryable
		}
		return out
	}
	if ctx.Err() != nil {
		// The SDK cancelled the handler (Abort, another session's window,
		// lost stream) and it gave up: say why. A new attempt may work.
		msg := context.Cause(ctx).Error()
		if !errors.Is(err, ctx.Err()) {
			msg += ": " + err.Error()
		}
		return Failure{Code: vsserr.WriterErrorRetryable, Message: msg}
	}
	if code := vsserr.Code(err); writerCodes[code] {
		return Failure{Code: code, Message: vsserr.Message(err)}
	}
	return Failure{Code: vsserr.WriterErrorNonRetryable, Message: err.Error()}
}
