package exec

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzOutput feeds what a provider command prints to the parsers of
// commit and list output and to salvage. What they accept is always safe
// to put back into a command's environment (non-empty, UTF-8, no control
// character, at most maxField bytes, handles distinct where they must
// be); commit output is accepted only with one line per volume; what is
// accepted, written back in the documented format, reads the same.
func FuzzOutput(f *testing.F) {
	f.Add([]byte("snap-1\n"), uint8(1), false)
	f.Add([]byte("snap-1\t/dev/mapper/snap1\r\nsnap-2\t/dev/mapper/snap2\n"), uint8(2), true)
	f.Add([]byte("a\na\n"), uint8(2), false)
	f.Add([]byte("\n \n\t/dev/x\n"), uint8(1), false)
	f.Add([]byte("h\x00andle\nh\x1b[2J\n"), uint8(2), false)
	f.Add([]byte("\xff\xfe\n"), uint8(1), false)
	f.Add([]byte("partial line without newline"), uint8(1), true)
	f.Add([]byte(strings.Repeat("x", maxField+1)+"\n"), uint8(1), false)
	f.Add([]byte("a\tb\tc\n"), uint8(1), false)
	f.Fuzz(func(t *testing.T, out []byte, n uint8, complete bool) {
		valid := func(what string, h handleLine) {
			for _, s := range []string{h.handle, h.device} {
				if len(s) > maxField || !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 || s != strings.TrimSpace(s) {
					t.Fatalf("%s accepted %q", what, s)
				}
			}
			if h.handle == "" || h.devicePath() == "" {
				t.Fatalf("%s accepted an empty handle", what)
			}
		}
		write := func(hs []handleLine) []byte {
			var b strings.Builder
			for _, h := range hs {
				b.WriteString(h.handle)
				if h.device != "" {
					b.WriteString("\t" + h.device)
				}
				b.WriteString("\n")
			}
			return []byte(b.String())
		}
		if hs, err := parseCommit(out, false, int(n)); err == nil {
			if len(hs) != int(n) {
				t.Fatalf("commit: %d lines for %d volumes", len(hs), n)
			}
			seen := map[string]bool{}
			for _, h := range hs {
				valid("commit", h)
				if seen[h.handle] {
					t.Fatalf("commit accepted %q twice", h.handle)
				}
				seen[h.handle] = true
			}
			again, err := parseCommit(write(hs), false, int(n))
			if err != nil || !slices.Equal(again, hs) {
				t.Fatalf("commit output written back reads %v %v, want %v", again, err, hs)
			}
			if s := salvage(out, false); !slices.Equal(s, hs) {
				t.Fatalf("salvage of good commit output: %v, want %v", s, hs)
			}
		}
		if _, err := parseCommit(out, true, int(n)); err == nil {
			t.Fatal("commit output over its cap accepted")
		}
		if hs, err := parseList(out, false); err == nil {
			for _, h := range hs {
				valid("list", h)
			}
			if again, err := parseList(write(hs), false); err != nil || !slices.Equal(again, hs) {
				t.Fatalf("list output written back reads %v %v, want %v", again, err, hs)
			}
		}
		seen := map[string]bool{}
		for _, h := range salvage(out, complete) {
			valid("salvage", h)
			if seen[h.handle] {
				t.Fatalf("salvage returned %q twice", h.handle)
			}
			seen[h.handle] = true
		}
	})
}
