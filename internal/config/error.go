package config

import (
	"strconv"
	"strings"
)

// Error is a problem in a configuration, with where it is when known.
type Error struct {
	File   string // as given to Parse or Load; "" for a Config built in code
	Line   int    // 1-based; 0 if the problem has no place in the file
	Column int    // 1-based; 0 if unknown
	Key    string // dotted key the problem is about, "" if none
	Msg    string // the reason, already naming the key where that helps
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
			if e.Column > 0 {
				b.WriteString(":" + strconv.Itoa(e.Column))
			}
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// joinKey spells a key the way it would be written in the file, quoting
// parts that are not bare keys so that "a.b" and a.b stay distinguishable.
func joinKey(parts []string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(keyPart(p))
	}
	return b.String()
}

func keyPart(p string) string {
	if p == "" {
		return `""`
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return strconv.Quote(p)
		}
	}
	return p
}
