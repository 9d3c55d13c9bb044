package server

import (
	"testing"

	"github.com/google/uuid"
)

// TestIDTextFollowsTheIDs: the remembered text of an event's IDs is
// always the text of the IDs asked for, GUID_NULL included.
func TestIDTextFollowsTheIDs(t *testing.T) {
	var ids idText
	a, b := uuid.New(), uuid.New()
	for _, tc := range []struct{ session, set uuid.UUID }{
		{uuid.Nil, uuid.Nil}, {a, uuid.Nil}, {a, b}, {a, b}, {b, a}, {uuid.Nil, b},
	} {
		s, st := ids.of(tc.session, tc.set)
		if s != tc.session.String() || st != tc.set.String() {
			t.Fatalf("of(%s, %s) = %q, %q", tc.session, tc.set, s, st)
		}
	}
}
