// Package handlerlock is the lock the shipped writers put around their
// event handlers and Close. The SDK never runs two handlers of one writer
// at once, but the host calls Close from another goroutine, and Close
// must neither run beside a handler nor wait behind one stuck in a
// database statement: Close first cancels every handler's context, then
// takes the lock. A handler that starts after Close fails with
// VSS_E_WRITERERROR_RETRYABLE.
package handlerlock
