package provider

import (
	"sync"

	"github.com/google/uuid"
)

// closedSetsKept bounds ClosedSets. The coordinator allocates a fresh set
// ID for every set, so a reused one is a bug that shows up within a few
// sets; remembering every set for the life of lvssd would only grow.
const closedSetsKept = 4096

// ClosedSets remembers the IDs of the snapshot sets a provider finished or
// aborted, so that BeginPrepareSnapshot can refuse to prepare one again
// (E_INVALIDARG, see Provider). It keeps the most recent 4096. The zero
// value is ready to use; it is safe for concurrent use.
type ClosedSets struct {
	mu   sync.Mutex
	ids  map[uuid.UUID]struct{}
	ring []uuid.UUID // insertion order, for forgetting the oldest
	next int         // where the next ID goes in ring once it is full
}

// Close records that the set is finished or aborted.
func (c *ClosedSets) Close(id uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.ids[id]; ok {
		return
	}
	if c.ids == nil {
		c.ids = map[uuid.UUID]struct{}{}
	}
	c.ids[id] = struct{}{}
	if len(c.ring) < closedSetsKept {
		c.ring = append(c.ring, id)
		return
	}
	delete(c.ids, c.ring[c.next])
	c.ring[c.next] = id
	c.next = (c.next + 1) % closedSetsKept
}

// Closed reports whether the set was closed (among the most recent ones).
func (c *ClosedSets) Closed(id uuid.UUID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.ids[id]
	return ok
}
