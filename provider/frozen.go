package provider

import "context"

type noWritersKey struct{}

// WithoutWriters marks the context of a creation's provider calls when no
// writer will be frozen for the set: BeginPrepareSnapshot's in a context
// without writers, EndPrepareSnapshots's too when every writer already
// failed. A provider that writes dirty data out
// ahead of the snapshot does so to keep that flush out of the writers'
// Freeze→Thaw window; with nobody frozen the flush would only add to the
// snapshot's latency, since the snapshot flushes what it needs itself.
func WithoutWriters(ctx context.Context) context.Context {
	return context.WithValue(ctx, noWritersKey{}, true)
}

// NoWritersFrozen reports whether ctx was marked by WithoutWriters.
func NoWritersFrozen(ctx context.Context) bool {
	v, _ := ctx.Value(noWritersKey{}).(bool)
	return v
}
