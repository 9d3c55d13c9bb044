package client

import (
	"context"
	"sync"
	"time"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// cleanupTimeout bounds the calls Run makes after fn returns (waiting for a
// running DoSnapshotSet, BackupComplete, AbortBackup, Release). They run
// even when ctx has ended, because leaving a snapshot set half-created holds
// the system-wide creation lock; the daemon would end it on its own when the
// stream goes, so a bound is safe.
const cleanupTimeout = 5 * time.Minute

// tracker remembers what a session did, as far as ending it correctly
// depends on it. Run reads it; every method keeps it up to date.
type tracker struct {
	mu             sync.Mutex
	context        vss.Context // VSS_CTX_BACKUP until SetContext succeeds
	setStarted     bool
	snap           *Async         // the last DoSnapshotSet started
	snapResult     vsserr.HRESULT // its final status; 0 while unknown
	completeCalled bool
	aborted        bool
}

func (t *tracker) setContext(c vss.Context) { t.mu.Lock(); t.context = c; t.mu.Unlock() }
func (t *tracker) markStarted()             { t.mu.Lock(); t.setStarted = true; t.mu.Unlock() }
func (t *tracker) markComplete()            { t.mu.Lock(); t.completeCalled = true; t.mu.Unlock() }
func (t *tracker) markAborted()             { t.mu.Lock(); t.aborted = true; t.mu.Unlock() }

func (t *tracker) started(a *Async) {
	if a.method != "DoSnapshotSet" {
		return
	}
	t.mu.Lock()
	t.snap, t.snapResult = a, 0
	t.mu.Unlock()
}

func (t *tracker) finished(a *Async, h vsserr.HRESULT) {
	t.mu.Lock()
	if t.snap == a {
		t.snapResult = h
	}
	t.mu.Unlock()
}

type trackState struct {
	context        vss.Context
	setStarted     bool
	snap           *Async
	snapResult     vsserr.HRESULT
	completeCalled bool
	aborted        bool
}

func (t *tracker) state() trackState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return trackState{t.context, t.setStarted, t.snap, t.snapResult, t.completeCalled, t.aborted}
}

// Run opens a session on the daemon at socket ("" = default), calls fn with
// it, and then ends the session correctly whatever fn did:
//
//   - if fn returned nil after a successful DoSnapshotSet in a context with
//     writers and did not call BackupComplete, Run calls it and waits;
//   - if StartSnapshotSet was called and the snapshot set was not created,
//     or fn returned an error, Run calls AbortBackup (unless fn already
//     did), so writers are not left frozen in PrepareForBackup;
//   - then it releases the session.
//
// A DoSnapshotSet that fn started and did not wait for is waited for first,
// since what to do next depends on its outcome; if ctx has ended (the
// requester was interrupted), it is cancelled first. Run returns fn's error if
// there is one, else the first error of the cleanup.
func Run(ctx context.Context, socket string, fn func(ctx context.Context, bc *BackupComponents) error) error {
	conn, err := Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	bc, err := conn.NewBackupComponents(ctx)
	if err != nil {
		return err
	}
	fnErr := fn(ctx, bc)
	cleanErr := bc.finish(ctx, fnErr)
	if fnErr != nil {
		return fnErr
	}
	return cleanErr
}

// finish is Run's end of session; see Run.
func (bc *BackupComponents) finish(ctx context.Context, fnErr error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var first error
	note := func(err error) {
		if first == nil && err != nil {
			first = err
		}
	}

	if bc.s.isClosing() {
		// fn released the session itself: nothing is left to end.
		_, err := bc.Release(cctx)
		return err
	}
	st := bc.track.state()
	if st.snap != nil && st.snapResult == 0 {
		if ctx.Err() != nil {
			// The requester was interrupted: nobody waits for this set,
			// so the writers are not kept frozen for it. lvssd aborts the
			// creation, unless it is past its commit (then it finishes).
			_, _ = st.snap.Cancel(cctx)
		}
		// Its error is fn's business; only the outcome matters here.
		_ = st.snap.Wait(cctx)
		st = bc.track.state()
	}
	created := st.snap != nil && st.snapResult == vsserr.AsyncFinished

	if fnErr == nil && created && st.context.Writers() && !st.completeCalled {
		a, err := bc.BackupComplete(cctx)
		if err == nil {
			err = a.Wait(cctx)
		}
		note(err)
	}
	if st.setStarted && (!created || fnErr != nil) && !st.aborted {
		note(bc.AbortBackup(cctx))
	}
	_, err := bc.Release(cctx)
	note(err)
	return first
}
