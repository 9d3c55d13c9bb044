package clierr

import (
	"bytes"
	"errors"
	"testing"

	"github.com/lvss/lvss/vsserr"
)

func TestHint(t *testing.T) {
	if got := Hint(Usage, vsserr.BadState, "lvss call"); got != "run 'lvss call --help'" {
		t.Errorf("usage: %q", got)
	}
	if got := Hint(Other, vsserr.BadState, "lvss call"); got != codeHints[vsserr.BadState] {
		t.Errorf("bad state: %q", got)
	}
	// No filler: a code the table does not know, or a COMMAND failure,
	// has no hint.
	if got := Hint(Other, vsserr.Unexpected, "lvss"); got != "" {
		t.Errorf("unexpected: %q", got)
	}
	if got := Hint(Command, vsserr.ObjectNotFound, "lvss backup"); got != "" {
		t.Errorf("command: %q", got)
	}
}

type archiveErr struct{ error }

func (archiveErr) Hint() string { return "own advice" }

func TestReport(t *testing.T) {
	r := New(vsserr.New(vsserr.ObjectNotFound, "snapshot %s is gone", "x"), Other, "lvss expose")
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	want := `{"error":{"hresult":"0x80042308","name":"VSS_E_OBJECT_NOT_FOUND","message":"snapshot x is gone","hint":"` +
		codeHints[vsserr.ObjectNotFound] + "\"}}\n"
	if b.String() != want {
		t.Errorf("got  %s\nwant %s", b.String(), want)
	}
	// A usage error is E_INVALIDARG, and an error's own hint wins.
	if r := New(errors.New("unknown flag: --x"), Usage, "lvss"); r.Code != vsserr.InvalidArg || r.Message != "unknown flag: --x" {
		t.Errorf("usage: %+v", r)
	}
	if r := New(archiveErr{vsserr.New(vsserr.ObjectNotFound, "f")}, Other, "lvss"); r.Hint != "own advice" {
		t.Errorf("own hint: %+v", r)
	}
	b.Reset()
	Report{Code: vsserr.Unexpected}.WriteHint(&b)
	if b.Len() != 0 {
		t.Errorf("an empty hint printed %q", b.String())
	}
}
