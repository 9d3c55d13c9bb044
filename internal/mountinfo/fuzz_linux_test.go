package mountinfo

import (
	"fmt"
	"strings"
	"testing"
)

// escape is the kernel's mountinfo escaping of a path: space, tab,
// newline and backslash as three octal digits.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzParse: any text either parses or is refused, never a panic; and a
// mount that parsed, written back as the kernel writes it, parses to the
// same mount (the unescaping undoes exactly the kernel's escaping).
func FuzzParse(f *testing.F) {
	f.Add("36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n")
	f.Add("22 1 0:21 / /srv/my\\040data rw shared:1 - btrfs /dev/loop0 rw,subvol=/\n")
	f.Add("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n")
	f.Add("x y z\n")
	f.Fuzz(func(t *testing.T, text string) {
		ms, err := Parse(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, m := range ms {
			if strings.ContainsAny(m.FSType+m.Options+m.SuperOptions, " \t\n") {
				continue // fields the kernel never escapes: no line writes them back
			}
			line := fmt.Sprintf("%d %d %d:%d %s %s %s - %s %s %s", m.ID, m.Parent, m.Major, m.Minor,
				escape(m.Root), escape(m.MountPoint), m.Options, m.FSType, escape(m.Source), m.SuperOptions)
			again, err := Parse(strings.NewReader(line))
			if err != nil || len(again) != 1 || again[0] != m {
				t.Fatalf("%+v, written back as %q, parses to %+v (%v)", m, line, again, err)
			}
		}
	})
}
