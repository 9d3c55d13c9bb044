package confval

import (
	"fmt"
	"strconv"
	"strings"
)

// KeyError is a problem a section's own rules find in its values. A
// section does not know which file, if any, its values came from, so it
// names keys; internal/config points at the line of the first of them the
// file sets.
type KeyError struct {
	// Keys are what the problem is about, most specific first, each
	// spelt in full as the file would ("providers.exec[0].volumes[1]",
	// see Elem). The later ones are fallbacks: a problem with a default
	// value is located at the enclosing table the file does set.
	Keys []string
	// Msg is the whole message, already naming the key where that helps.
	Msg string
}

func (e *KeyError) Error() string { return e.Msg }

// Errorf makes a KeyError about keys.
func Errorf(keys []string, format string, args ...any) *KeyError {
	return &KeyError{Keys: keys, Msg: fmt.Sprintf(format, args...)}
}

// Elem spells element i of the array at key, the way internal/config
// records where values are ("access.groups[1]"); a KeyError whose keys
// are spelt otherwise loses its line number.
func Elem(key string, i int) string { return key + "[" + strconv.Itoa(i) + "]" }

// AbsPath refuses a path that is not absolute. Paths in the configuration
// are used by a daemon whose working directory is no one's business, so a
// relative one can only be a mistake.
func AbsPath(key, path string) error {
	if !strings.HasPrefix(path, "/") {
		return Errorf([]string{key}, "%s: %q is not an absolute path", key, path)
	}
	return nil
}
