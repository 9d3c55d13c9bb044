package prevver

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Escape names a path the way `systemd-escape --path` does: slashes
// become dashes, and every byte but ASCII letters, digits, ':', '_' and
// '.' (and a leading '.') becomes \xNN. A snapdir is named so (its
// share's path, escaped) and so is the lvss-previous-versions@.timer
// instance of the same path: one name for both, and never two paths for
// one name.
func Escape(path string) string {
	p := strings.Trim(filepath.Clean("/"+path), "/")
	if p == "" {
		return "-"
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ':', c == '_', c == '.':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

// DirName is where lvssd keeps the snapdirs, below its run directory.
const DirName = "previous-versions"

// Snapdir is the snapdir of a share path under lvssd's run directory.
func Snapdir(runDir, path string) string {
	return filepath.Join(runDir, DirName, Escape(path))
}
