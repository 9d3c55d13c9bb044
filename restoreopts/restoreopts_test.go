package restoreopts

import (
	"errors"
	"testing"

	"github.com/lvss/lvss/vsserr"
)

func TestRoundTrip(t *testing.T) {
	o := Options{RecoveryTargetTime: "2026-12-06 13:56:59.288343+00", "postgres.restore_command": "cp /srv/a/%f %p", "x": ""}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	s := o.String()
	want := "postgres.restore_command=cp /srv/a/%f %p\nrecovery_target_time=2026-12-06 13:56:59.288343+00\nx="
	if s != want {
		t.Fatalf("String: %q, want %q", s, want)
	}
	back, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	if back.String() != s || len(back) != 3 {
		t.Fatalf("Parse(String) = %v", back)
	}
	k, v, ok := back.RecoveryTarget()
	if !ok || k != RecoveryTargetTime || v != o[RecoveryTargetTime] {
		t.Fatalf("RecoveryTarget: %q %q %v", k, v, ok)
	}
	if _, _, ok := (Options{}).RecoveryTarget(); ok {
		t.Fatal("no options, yet a recovery target")
	}
	if (Options{}).String() != "" {
		t.Fatal("no options must be the empty string")
	}
	if o, err := Parse("\n\na=b=c\n"); err != nil || o["a"] != "b=c" {
		t.Fatalf("Parse: %v %v", o, err)
	}
}

func TestRefusals(t *testing.T) {
	for _, s := range []string{"novalue", "A=upper", "=empty", "a=1\na=2", "sp ace=1"} {
		if _, err := Parse(s); !errors.Is(err, vsserr.InvalidArg) {
			t.Errorf("Parse(%q): %v, want E_INVALIDARG", s, err)
		}
	}
	for _, o := range []Options{
		{RecoveryTargetTime: "t", RecoveryTargetLSN: "0/1"},
		{RecoveryTarget: "latest"},
		{RecoveryTargetName: ""},
		{"k": "two\nlines"},
		{"Bad": "x"},
	} {
		if err := o.Validate(); !errors.Is(err, vsserr.InvalidArg) {
			t.Errorf("Validate(%v): %v, want E_INVALIDARG", o, err)
		}
	}
	if err := (Options{RecoveryTarget: "immediate"}).Validate(); err != nil {
		t.Fatal(err)
	}
}
