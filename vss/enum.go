package vss

import (
	"fmt"
	"strconv"
	"strings"
)

// table maps an enum's values to their spec names and back.
type table[T ~int32 | ~uint32] struct {
	names  map[T]string
	values map[string]T
	order  []T
}

func newTable[T ~int32 | ~uint32](pairs ...any) *table[T] {
	t := &table[T]{names: map[T]string{}, values: map[string]T{}}
	for i := 0; i < len(pairs); i += 2 {
		v, n := pairs[i].(T), pairs[i+1].(string)
		t.names[v] = n
		t.values[n] = v
		t.order = append(t.order, v)
	}
	return t
}

func (t *table[T]) name(v T) string {
	if n, ok := t.names[v]; ok {
		return n
	}
	return strconv.FormatInt(int64(v), 10)
}

// parse accepts a spec name (case-sensitive, as D12 says) or a number.
func (t *table[T]) parse(kind, s string) (T, error) {
	if v, ok := t.values[s]; ok {
		return v, nil
	}
	if n, err := strconv.ParseInt(s, 0, 64); err == nil {
		return T(n), nil
	}
	return 0, fmt.Errorf("unknown %s %q", kind, s)
}

// parseFlags accepts names or numbers joined with '|'.
func (t *table[T]) parseFlags(kind, s string) (T, error) {
	var out T
	for _, part := range strings.Split(s, "|") {
		part = strings.TrimSpace(part)
		if part == "" {
			return 0, fmt.Errorf("empty %s flag in %q", kind, s)
		}
		v, err := t.parse(kind, part)
		if err != nil {
			return 0, err
		}
		out |= v
	}
	return out, nil
}

// flagNames lists the names of the set bits, lowest first; bits without a
// name are printed as one hex number.
func (t *table[T]) flagNames(v T) []string {
	var out []string
	rest := v
	for _, f := range t.order {
		if f != 0 && v&f == f && singleBit(uint64(f)) {
			out = append(out, t.names[f])
			rest &^= f
		}
	}
	if rest != 0 {
		out = append(out, fmt.Sprintf("0x%X", uint64(uint32(rest))))
	}
	return out
}

func singleBit(x uint64) bool { return x != 0 && x&(x-1) == 0 }
