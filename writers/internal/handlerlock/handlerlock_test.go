package handlerlock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lvss/lvss/vsserr"
)

var errGone = errors.New("the test writer was closed")

// Close cancels a running handler's context before it takes the lock,
// so it never waits behind a handler stuck on its context.
func TestCloseCutsShortARunningHandler(t *testing.T) {
	var l Lock
	l.Init(errGone)
	ctx, done, err := l.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	handler := make(chan error, 1)
	go func() {
		defer done()
		<-ctx.Done() // a statement that only ends with its context
		handler <- context.Cause(ctx)
	}()
	closed := make(chan bool, 1)
	go func() {
		first := l.Close()
		l.Unlock()
		closed <- first
	}()
	select {
	case first := <-closed:
		if !first {
			t.Error("the first Close reported an earlier one")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited behind the handler")
	}
	if err := <-handler; !errors.Is(err, errGone) {
		t.Errorf("the handler's context ended with %v, want %v", err, errGone)
	}
	if l.Close() {
		t.Error("a second Close reported itself first")
	}
	l.Unlock()
}

// After Close, handlers fail RETRYABLE and hold nothing.
func TestBeginAfterClose(t *testing.T) {
	var l Lock
	l.Init(errGone)
	l.Close()
	l.Unlock()
	_, _, err := l.Begin(context.Background())
	if !errors.Is(err, vsserr.WriterErrorRetryable) {
		t.Fatalf("Begin after Close: %v, want VSS_E_WRITERERROR_RETRYABLE", err)
	}
	if !l.TryLock() {
		t.Fatal("a failed Begin left the lock held")
	}
	l.Unlock()
}

// Begin's context follows the caller's too, and done releases the lock.
func TestBeginFollowsTheCaller(t *testing.T) {
	var l Lock
	l.Init(errGone)
	parent, cancel := context.WithCancel(context.Background())
	ctx, done, err := l.Begin(parent)
	if err != nil {
		t.Fatal(err)
	}
	if l.TryLock() {
		t.Fatal("Begin did not take the lock")
	}
	cancel()
	<-ctx.Done()
	done()
	if !l.TryLock() {
		t.Fatal("done did not release the lock")
	}
	l.Unlock()
}
