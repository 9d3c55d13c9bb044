package main

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// appendIndented appends v as encoding/json's Encoder with EscapeHTML off
// and SetIndent(prefix, "  ") writes it (writeJSON, every --json list),
// byte for byte, but without reflection or a second pass to indent:
// `lvss list shadows --json` prints 10,000 objects of 17 fields, and the
// Encoder took longer over them than lvssd took to read its catalog.
// Values of types it has no fast form for go through marshal and
// json.Indent, as before. TestAppendIndentedIsEncodingJSON holds it to
// encoding/json's output.
func appendIndented(b []byte, v any, prefix string) ([]byte, error) {
	switch x := v.(type) {
	case obj:
		if len(x) == 0 {
			return append(b, "{}"...), nil
		}
		inner := prefix + "  "
		b = append(b, '{')
		for i, f := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '\n')
			b = append(b, inner...)
			var err error
			if b, err = appendString(b, f.key); err != nil {
				return nil, err
			}
			b = append(b, ": "...)
			if b, err = appendIndented(b, f.val, inner); err != nil {
				return nil, err
			}
		}
		b = append(b, '\n')
		b = append(b, prefix...)
		return append(b, '}'), nil
	case []obj:
		return appendList(b, len(x), prefix, func(b []byte, i int, p string) ([]byte, error) { return appendIndented(b, x[i], p) })
	case []string:
		return appendList(b, len(x), prefix, func(b []byte, i int, _ string) ([]byte, error) { return appendString(b, x[i]) })
	case string:
		return appendString(b, x)
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	}
	enc, err := marshal(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, enc, prefix, "  "); err != nil {
		return nil, err
	}
	return append(b, buf.Bytes()...), nil
}

// appendList writes a JSON array, [] when empty (nil included, as
// obj.MarshalJSON does).
func appendList(b []byte, n int, prefix string, elem func([]byte, int, string) ([]byte, error)) ([]byte, error) {
	if n == 0 {
		return append(b, "[]"...), nil
	}
	inner := prefix + "  "
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '\n')
		b = append(b, inner...)
		var err error
		if b, err = elem(b, i, inner); err != nil {
			return nil, err
		}
	}
	b = append(b, '\n')
	b = append(b, prefix...)
	return append(b, ']'), nil
}

// appendString quotes s. Printable ASCII other than the quote and the
// backslash needs no escape; anything else is left to encoding/json
// (control characters, U+2028, invalid UTF-8).
func appendString(b []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			enc, err := marshal(s)
			if err != nil {
				return nil, err
			}
			return append(b, enc...), nil
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}
