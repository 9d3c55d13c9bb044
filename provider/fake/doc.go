// Package fake is an in-memory snapshot provider for unit tests of the
// coordinator. It records every call in order, can be told to fail or hang at
// any step, and can play an atomic or a per-volume provider. It keeps the
// provider contract (calls out of order refused, set IDs used once, contexts
// honoured), so a coordinator that misuses a provider fails its tests. It
// snapshots nothing: use the real providers wherever a user would have real
// ones.
package fake
