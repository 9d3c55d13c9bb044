package confval

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for text, want := range map[string]string{
		"1m30s": "",
		"24h":   "",
		"0s":    `duration must be > 0 ("0s")`,
		"-5s":   `duration must be > 0 ("-5s")`,
		"24h1s": `duration must be <= 24h ("24h1s")`,
		"60":    `invalid duration "60": want a number with a unit, such as "30s" or "1m30s"`,
	} {
		var d Duration
		err := d.UnmarshalText([]byte(text))
		if got := errString(err); got != want {
			t.Errorf("UnmarshalText(%q) = %q, want %q", text, got, want)
		}
		if err == nil {
			if out, _ := d.MarshalText(); string(out) != time.Duration(d).String() {
				t.Errorf("MarshalText(%q) = %q", text, out)
			}
		}
	}
	// Check holds values set in code to the rule UnmarshalText applies.
	if err := Duration(48 * time.Hour).Check(); errString(err) != `duration must be <= 24h ("48h0m0s")` {
		t.Errorf("Check(48h) = %v", err)
	}
	if err := Duration(0).Check(); err == nil {
		t.Error("Check(0) passed")
	}
}

func TestSize(t *testing.T) {
	for text, want := range map[string]Size{
		"1GiB": 1 << 30, "1G": 1 << 30, "512MiB": 512 << 20, "64KiB": 64 << 10, "7": 7, "0": 0, " 2 TiB ": 2 << 40,
	} {
		var s Size
		if err := s.UnmarshalText([]byte(text)); err != nil || s != want {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d", text, s, err, want)
		}
		out, _ := s.MarshalText()
		var back Size
		if err := back.UnmarshalText(out); err != nil || back != s {
			t.Errorf("%d printed as %q reads back as %d, %v", s, out, back, err)
		}
	}
	for _, bad := range []string{"lots", "-1", "1.5GiB", "", "99999999999TiB"} {
		var s Size
		if err := s.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) = %d, want an error", bad, s)
		}
	}
}

func TestKeys(t *testing.T) {
	if got := Elem("providers.exec", 2) + ".volumes"; got != "providers.exec[2].volumes" {
		t.Errorf("Elem spelt %q", got)
	}
	if err := AbsPath("a.b", "/srv"); err != nil {
		t.Errorf("AbsPath(/srv) = %v", err)
	}
	err := AbsPath("a.b", "srv")
	ke, ok := err.(*KeyError)
	if !ok || len(ke.Keys) != 1 || ke.Keys[0] != "a.b" || ke.Error() != `a.b: "srv" is not an absolute path` {
		t.Errorf("AbsPath(srv) = %#v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
