package config

import (
	"errors"
	"testing"
)

// FuzzParse: any bytes given as lvssd's config file either parse into a
// configuration that passes validation, or are refused with an *Error
// naming the file and a position in it — never a panic, never an error
// without a place to look.
func FuzzParse(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("[timeouts]\nfreeze = \"10s\"\n"))
	f.Add([]byte("[[providers.exec]]\nname = \"san\"\nvolumes = [\"/srv\"]\ncommit = \"x\"\ndelete = \"y\"\n"))
	f.Add([]byte("[metrics]\nlisten = \"unix:/run/lvss/m.sock\"\n[limits]\nmin_free = \"1GiB\"\n"))
	f.Add([]byte("[access]\ngroups = [\"lvss\", 7]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != "fuzz.toml" {
				t.Fatalf("refused without naming the file: %T %v", err, err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed, yet does not validate: %v\n%q", err, data)
		}
	})
}
