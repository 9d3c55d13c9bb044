package confval

import (
	"fmt"
	"time"
)

// maxDuration bounds every timeout. Nothing in a snapshot's creation should
// take a day; a larger value is far more likely a typo ("600h" for "600s")
// that would leave applications frozen or a creation lock held.
const maxDuration = 24 * time.Hour

// Duration is a timeout written in the file as a Go duration string such as
// "10s" or "1m30s". It is always > 0 and <= 24h.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the form UnmarshalText reads, so a configuration can
// be printed back as TOML.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses and range-checks the value here, rather than after
// decoding, because go-toml attaches the value's line and column to errors
// returned from this method.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a number with a unit, such as \"30s\" or \"1m30s\"", b)
	}
	if err := checkDuration(v, string(b)); err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Check applies the range UnmarshalText enforces, so that a value set in
// code obeys the same rule as one read from a file.
func (d Duration) Check() error { return checkDuration(d.D(), d.String()) }

// checkDuration quotes text, the value as the operator wrote it where
// there is such a spelling.
func checkDuration(v time.Duration, text string) error {
	if v <= 0 {
		return fmt.Errorf("duration must be > 0 (%q)", text)
	}
	if v > maxDuration {
		return fmt.Errorf("duration must be <= 24h (%q)", text)
	}
	return nil
}
