package provider

import (
	"testing"

	"github.com/google/uuid"
)

func TestClosedSets(t *testing.T) {
	var c ClosedSets
	first := uuid.New()
	if c.Closed(first) {
		t.Fatal("the zero value holds a set")
	}
	c.Close(first)
	c.Close(first) // twice is once: it must not take two places
	if !c.Closed(first) {
		t.Fatal("a closed set is not remembered")
	}
	// Fill up to the bound: first is still there, as the oldest.
	ids := make([]uuid.UUID, closedSetsKept-1)
	for i := range ids {
		ids[i] = uuid.New()
		c.Close(ids[i])
	}
	if !c.Closed(first) || len(c.ids) != closedSetsKept {
		t.Fatalf("at the bound: first remembered %v, %d held", c.Closed(first), len(c.ids))
	}
	// One more forgets the oldest only.
	c.Close(uuid.New())
	if c.Closed(first) || !c.Closed(ids[0]) || len(c.ids) != closedSetsKept {
		t.Fatalf("past the bound: first remembered %v, second %v, %d held", c.Closed(first), c.Closed(ids[0]), len(c.ids))
	}
}
