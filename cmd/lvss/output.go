package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// obj is a JSON object whose keys keep the order they were added in, so
// that the JSON and text forms list results alike and humans reading JSON
// see "call" and "hresult" first.
type obj []field

type field struct {
	key string
	val any // string, bool, integers, []string, obj, []obj
}

func (o obj) add(key string, val any) obj { return append(o, field{key, val}) }

// get returns a field's value, for tests and for binding variables.
func (o obj) get(key string) (any, bool) {
	for _, f := range o {
		if f.key == key {
			return f.val, true
		}
	}
	return nil, false
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := marshal(f.key)
		b.Write(k)
		b.WriteByte(':')
		v := f.val
		switch x := v.(type) {
		case []string:
			if x == nil {
				v = []string{} // a list is always a list in JSON, even empty
			}
		case []obj:
			if x == nil {
				v = []obj{}
			}
		}
		enc, err := marshal(v)
		if err != nil {
			return nil, err
		}
		b.Write(enc)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping: results carry XML
// documents, which should read as XML, not as \u003c soup.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// hresultFields are the fields every call result starts with.
func hresultFields(call string, h vsserr.HRESULT, msg string) obj {
	return obj{{"call", call}, {"hresult", h.Hex()}, {"name", h.Name()}, {"message", msg}}
}

// printer writes results in text or JSON, one result per call, flushed
// before the next input line is read.
type printer struct {
	w    io.Writer
	json bool
}

func (p *printer) result(o obj) error {
	if p.json {
		b, err := marshal(o)
		if err != nil {
			return err
		}
		b = append(b, '\n')
		_, err = p.w.Write(b)
		return err
	}
	var b strings.Builder
	writeHeadline(&b, o)
	for _, f := range o {
		switch f.key {
		case "call", "hresult", "name", "message", "line":
			continue // in the headline, or only useful to programs
		}
		writeText(&b, 1, f.key, f.val)
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

// writeHeadline is "Method: NAME (0xHEX)" with the message after a colon,
// the way vsserr prints errors.
func writeHeadline(b *strings.Builder, o obj) {
	call, _ := o.get("call")
	hex, _ := o.get("hresult")
	name, _ := o.get("name")
	msg, _ := o.get("message")
	fmt.Fprintf(b, "%s: %s (%s)", call, name, hex)
	if m, _ := msg.(string); m != "" {
		fmt.Fprintf(b, ": %s", m)
	}
	b.WriteByte('\n')
}

func writeText(b *strings.Builder, depth int, key string, val any) {
	ind := strings.Repeat("  ", depth)
	switch v := val.(type) {
	case obj:
		fmt.Fprintf(b, "%s%s:\n", ind, key)
		for _, f := range v {
			writeText(b, depth+1, f.key, f.val)
		}
	case []obj:
		if len(v) == 0 {
			fmt.Fprintf(b, "%s%s: (none)\n", ind, key)
			return
		}
		fmt.Fprintf(b, "%s%s:\n", ind, key)
		for i, item := range v {
			fmt.Fprintf(b, "%s  [%d]\n", ind, i)
			for _, f := range item {
				writeText(b, depth+2, f.key, f.val)
			}
		}
	case []string:
		if len(v) == 0 {
			fmt.Fprintf(b, "%s%s: (none)\n", ind, key)
			return
		}
		fmt.Fprintf(b, "%s%s: %s\n", ind, key, strings.Join(v, ", "))
	case string:
		if strings.Contains(v, "\n") {
			// Documents are printed as they are, indented under their key.
			fmt.Fprintf(b, "%s%s:\n", ind, key)
			for _, line := range strings.Split(strings.TrimRight(v, "\n"), "\n") {
				fmt.Fprintf(b, "%s  %s\n", ind, line)
			}
			return
		}
		if v == "" {
			fmt.Fprintf(b, "%s%s:\n", ind, key)
			return
		}
		fmt.Fprintf(b, "%s%s: %s\n", ind, key, v)
	default:
		fmt.Fprintf(b, "%s%s: %v\n", ind, key, v)
	}
}

// guidText prints GUIDs as D12 says: lowercase, no braces.
func guidText(u uuid.UUID) string { return u.String() }

func guidsText(us []uuid.UUID) []string {
	out := make([]string, 0, len(us))
	for _, u := range us {
		out = append(out, u.String())
	}
	return out
}

// stateFields prints a writer state by name and number.
func stateFields(o obj, key string, s vss.WriterState) obj {
	return o.add(key, s.String()).add(key+"_value", int32(s))
}

// hrFields prints an HRESULT that is a result (not the call's own) by name
// and number.
func hrFields(o obj, key string, h vsserr.HRESULT) obj {
	return o.add(key, h.Name()).add(key+"_hresult", h.Hex())
}
