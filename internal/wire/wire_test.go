package wire

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vsserr"
)

func TestHRESULTSurvivesGRPC(t *testing.T) {
	for _, h := range vsserr.All() {
		if !h.Failed() {
			continue
		}
		orig := fmt.Errorf("ctx: %w", vsserr.New(h, "reason %d", 7))
		back := FromGRPC(ToGRPC(orig))
		if !errors.Is(back, h) || vsserr.Code(back) != h {
			t.Fatalf("%v came back as %v", h, back)
		}
		if vsserr.Message(back) != "ctx: reason 7" {
			t.Fatalf("message lost: %q", vsserr.Message(back))
		}
	}
}

func TestStatusRoundTrip(t *testing.T) {
	if ErrorOf(StatusOf(nil)) != nil {
		t.Fatal("nil must stay nil")
	}
	err := ErrorOf(StatusOf(vsserr.New(vsserr.BadState, "x")))
	if !errors.Is(err, vsserr.BadState) || err.Error() != "VSS_E_BAD_STATE (0x80042301): x" {
		t.Fatalf("got %v", err)
	}
	if vsserr.Code(FromGRPC(errors.New("dial unix: no such file"))) != vsserr.Unexpected {
		t.Fatal("transport errors must be VSS_E_UNEXPECTED")
	}
}

func TestParseGUID(t *testing.T) {
	u := uuid.MustParse("a65faa63-5ea8-4ebc-9dbd-a0c4db26912a")
	for _, s := range []string{"a65faa63-5ea8-4ebc-9dbd-a0c4db26912a", "{A65FAA63-5EA8-4EBC-9DBD-A0C4DB26912A}"} {
		got, err := ParseGUID(s)
		if err != nil || got != u {
			t.Fatalf("%s: %v %v", s, got, err)
		}
	}
	for _, s := range []string{"", "GUID_NULL", "00000000-0000-0000-0000-000000000000"} {
		if got, err := ParseGUID(s); err != nil || got != uuid.Nil {
			t.Fatalf("%q: %v %v", s, got, err)
		}
	}
	// Half a pair of braces, uuid.Parse's URN and undashed forms, and the
	// hostile cases of the server's tests are not GUIDs.
	for _, s := range []string{"nope", "{a65faa63-5ea8-4ebc-9dbd-a0c4db26912a", "a65faa63-5ea8-4ebc-9dbd-a0c4db26912a}",
		"urn:uuid:a65faa63-5ea8-4ebc-9dbd-a0c4db26912a", "a65faa635ea84ebc9dbda0c4db26912a", "{{a65faa63-5ea8-4ebc-9dbd-a0c4db26912}",
		"a65faa63-5ea8-4ebc-9dbd-a0c4db26912a\x00"} {
		if _, err := ParseGUID(s); !errors.Is(err, vsserr.InvalidArg) {
			t.Errorf("%q gave %v, want E_INVALIDARG", s, err)
		}
	}
	if GUID(u) != "a65faa63-5ea8-4ebc-9dbd-a0c4db26912a" {
		t.Fatal("GUIDs are lowercase without braces")
	}
}
