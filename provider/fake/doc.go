// Package fake is an in-memory snapshot provider for unit tests of the
// coordinator. It records every call in order, can be told to fail or hang at
// any step, and can play an atomic or a per-volume provider. It snapshots
// nothing: use the real providers wherever a user would have real ones.
package fake
