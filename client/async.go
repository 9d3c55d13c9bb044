package client

import (
	"context"
	"time"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/vsserr"
)

// Async is IVssAsync: a handle on an operation the daemon runs for the
// session (GatherWriterMetadata, PrepareForBackup, DoSnapshotSet,
// GatherWriterStatus, BackupComplete). Its methods may be called from
// several goroutines at once, typically Wait in one and Cancel in another.
//
// The operation's status (vss-reference §4) is VSS_S_ASYNC_PENDING while it runs,
// then VSS_S_ASYNC_FINISHED (success), VSS_S_ASYNC_CANCELLED, or the
// failure code of the operation. A session call moves the session's state
// only when it finishes with success (D3).
type Async struct {
	bc     *BackupComponents
	id     uint64
	method string
}

// ID is the daemon's handle for the operation, unique within the session.
func (a *Async) ID() uint64 { return a.id }

// Method names the call that started the operation.
func (a *Async) Method() string { return a.method }

// infinite is IVssAsync::Wait's INFINITE on the wire.
const infinite = -1

// Wait blocks until the operation ends and returns its outcome: nil when it
// finished with success, the operation's error when it failed, and an error
// carrying VSS_S_ASYNC_CANCELLED when it was cancelled (a success code:
// errors.Is(err, vsserr.AsyncCancelled) finds it). If ctx has a deadline the
// daemon is asked to wait no longer than that; if ctx ends first, Wait
// returns an error wrapping its cause and the operation goes on.
func (a *Async) Wait(ctx context.Context) error {
	d := time.Duration(infinite)
	if dl, ok := ctx.Deadline(); ok {
		d = max(time.Until(dl), 0)
	}
	h, msg, err := a.WaitTimeout(ctx, d)
	if err != nil {
		return err
	}
	if h == vsserr.AsyncPending {
		// The daemon gave up at the deadline, a moment before ctx does;
		// the deadline bounds this wait.
		<-ctx.Done()
		return ctxErr(ctx, a.method+" Wait")
	}
	return Outcome(h, msg)
}

// WaitTimeout is IVssAsync::Wait(dwMilliseconds) followed by QueryStatus:
// it waits at most d (d < 0: INFINITE) and returns the operation's status
// then, with the daemon's message for it: VSS_S_ASYNC_PENDING if it still
// runs, VSS_S_ASYNC_FINISHED, VSS_S_ASYNC_CANCELLED, or the operation's
// failure code. The error is that of the Wait call itself (the session is
// gone, ctx ended), never the operation's; Outcome turns a status into the
// error Wait would return.
func (a *Async) WaitTimeout(ctx context.Context, d time.Duration) (vsserr.HRESULT, string, error) {
	ms := int64(infinite)
	if d >= 0 {
		ms = d.Milliseconds()
	}
	resp, err := a.bc.do(ctx, a.method+" Wait", &v1.SessionRequest{Call: &v1.SessionRequest_Wait{
		Wait: &v1.Wait{AsyncId: a.id, TimeoutMs: ms}}})
	if err != nil {
		return 0, "", err
	}
	st := resp.GetAsyncStatus()
	if st == nil {
		// Wait's own result says nothing about the operation (vss-reference §4);
		// ask for it the way a COM caller would.
		return a.QueryStatus(ctx)
	}
	h := vsserr.HRESULT(st.GetHresult())
	a.observe(h)
	return h, st.GetMessage(), nil
}

// Outcome turns an operation status, as WaitTimeout and QueryStatus return
// it, into the error Wait returns: nil while pending or after success, an
// error carrying VSS_S_ASYNC_CANCELLED after a cancel, and the failure
// otherwise.
func Outcome(h vsserr.HRESULT, msg string) error {
	switch {
	case h == vsserr.AsyncPending || h == vsserr.AsyncFinished || h == vsserr.OK:
		return nil
	case h == vsserr.AsyncCancelled:
		if msg == "" {
			msg = "the operation was cancelled"
		}
		return &vsserr.Error{Code: h, Msg: msg}
	case h.Failed():
		return &vsserr.Error{Code: h, Msg: msg}
	}
	// Another success code would be a daemon extension; treat it as done.
	return nil
}

// QueryStatus returns the operation's status without waiting, with the
// daemon's message for it. The error is that of the QueryStatus call, not
// of the operation.
func (a *Async) QueryStatus(ctx context.Context) (vsserr.HRESULT, string, error) {
	resp, err := a.bc.do(ctx, a.method+" QueryStatus", &v1.SessionRequest{Call: &v1.SessionRequest_QueryStatus{
		QueryStatus: &v1.QueryStatus{AsyncId: a.id}}})
	if err != nil {
		return 0, "", err
	}
	st := resp.GetAsyncStatus()
	if st == nil {
		return 0, "", noResult("QueryStatus")
	}
	h := vsserr.HRESULT(st.GetHresult())
	a.observe(h)
	return h, st.GetMessage(), nil
}

// Cancel asks for the operation to stop. It returns S_OK when it was
// cancelled now (lvssd answers once the operation has stopped, so the
// next call finds nothing pending) and VSS_S_ASYNC_CANCELLED when it had
// been already; for an
// operation that had ended, VSS_S_ASYNC_FINISHED after a success,
// VSS_S_ASYNC_CANCELLED after a cancellation and the operation's own
// error after a failure (D17), as IVssAsync::Cancel does. A Wait in
// progress then returns.
func (a *Async) Cancel(ctx context.Context) (vsserr.HRESULT, error) {
	resp, err := a.bc.do(ctx, a.method+" Cancel", &v1.SessionRequest{Call: &v1.SessionRequest_Cancel{
		Cancel: &v1.Cancel{AsyncId: a.id}}})
	if err != nil {
		return vsserr.Code(err), err
	}
	st := resp.GetAsyncStatus()
	if st == nil {
		return vsserr.Code(wireStatus(resp)), nil
	}
	return vsserr.HRESULT(st.GetHresult()), nil
}

// wireStatus is the call's own HRESULT as an error-or-nil value for Code.
func wireStatus(resp *v1.SessionResponse) error {
	if s := resp.GetStatus(); s != nil && s.GetHresult() != 0 {
		return vsserr.HRESULT(s.GetHresult())
	}
	return nil
}

// observe records a final status for Run's bookkeeping.
func (a *Async) observe(h vsserr.HRESULT) {
	if h != vsserr.AsyncPending {
		a.bc.track.finished(a, h)
	}
}

// startAsync starts an async method and returns its handle.
func (bc *BackupComponents) startAsync(ctx context.Context, method string, req *v1.SessionRequest) (*Async, error) {
	resp, err := bc.do(ctx, method, req)
	if err != nil {
		return nil, err
	}
	r := resp.GetAsync()
	if r == nil {
		return nil, noResult(method)
	}
	a := &Async{bc: bc, id: r.GetAsyncId(), method: method}
	bc.track.started(a)
	return a, nil
}
