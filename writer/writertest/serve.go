package writertest

import (
	"context"
	"errors"
	"testing"

	"github.com/lvss/lvss/writer"
)

// Serve starts a Coordinator and runs w under identity id against it with
// writer.Run until the test ends, and returns once w has subscribed: the
// start of a test that drives a writer event by event over the real wire
// (Coordinator.Send). Cleanup ends Run and waits for it, so the writer has
// released its application before the test's other cleanups run.
func Serve(t testing.TB, id writer.Identity, w writer.Writer) *Coordinator {
	t.Helper()
	co := NewCoordinator(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = writer.Run(ctx, writer.Options{Socket: co.Socket()}, id, w) }()
	t.Cleanup(func() { cancel(); <-done })
	co.WaitWriters(1)
	return co
}

// AsFailure returns err's writer.Failure (what a handler returned through
// writer.Fail), failing t if it has none.
func AsFailure(t testing.TB, err error) *writer.Failure {
	t.Helper()
	var f *writer.Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T) is not a writer.Failure", err, err)
	}
	return f
}
