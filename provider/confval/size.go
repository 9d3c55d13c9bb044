package confval

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a byte count written as a string: "1GiB", "512MiB", "64KiB",
// "1G" (= GiB), or plain digits for bytes.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1},
}

// UnmarshalText parses a size; it must be >= 0.
func (s *Size) UnmarshalText(b []byte) error {
	text := strings.TrimSpace(string(b))
	num, mult := text, int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(text, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(text, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || (mult > 1 && n > (1<<62)/mult) {
		return fmt.Errorf("want a size such as \"1GiB\", got %q", text)
	}
	*s = Size(n * mult)
	return nil
}

// MarshalText prints the largest exact binary unit.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s Size) String() string {
	for _, u := range sizeUnits[:4] {
		if s != 0 && int64(s)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(s)/u.mult, u.suffix)
		}
	}
	return strconv.FormatInt(int64(s), 10)
}
