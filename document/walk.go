package document

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lvss/lvss/vsserr"
)

// ours reports whether an element belongs to the document's vocabulary:
// in the document namespace or in none (Windows writes BACKUP_METADATA
// with xmlns=""), and a name the document kind knows. Anything else is an
// extension lvss does not understand; it is skipped with its content.
func (p *decoder) ours(n xml.Name) bool {
	return (n.Space == p.ns || n.Space == "") && p.vocab[n.Local]
}

// children reads the content of parent up to its end tag. Each child the
// vocabulary knows is passed to f, which must read it completely (usually
// by calling children again, or leaf); unknown children are skipped.
func (p *decoder) children(parent *element, f func(*element) error) error {
	for {
		tok, err := p.next()
		if err == io.EOF {
			return p.corrupt(fmt.Sprintf("input ends inside <%s>", parent.name))
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if !p.ours(t.Name) {
				if err := p.skip(); err != nil {
					return err
				}
				continue
			}
			if err := f(p.element(t)); err != nil {
				return err
			}
		}
	}
}

// leaf reads an element that has no known children.
func (p *decoder) leaf(e *element) error {
	return p.children(e, func(c *element) error { return c.misplaced(e) })
}

// skip reads past the end of the element whose start tag was just read.
func (p *decoder) skip() error {
	for depth := 1; depth > 0; {
		tok, err := p.next()
		if err == io.EOF {
			return p.corrupt("input ends inside an element")
		}
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return nil
}

// invalid is a validity error located at the element's start tag.
func (e *element) invalid(format string, args ...any) error {
	return vsserr.New(vsserr.InvalidXMLDocument, "line %d, column %d: <%s>: %s", e.line, e.col, e.name,
		fmt.Sprintf(format, args...))
}

// misplaced reports a known element where the vocabulary does not allow it.
func (e *element) misplaced(parent *element) error {
	return e.invalid("not allowed inside <%s>", parent.name)
}

// check turns a reason from the check functions into an error here.
func (e *element) check(reason string) error {
	if reason == "" {
		return nil
	}
	return e.invalid("%s", reason)
}

// fail records the first attribute problem.
func (e *element) fail(attr, value, format string, args ...any) {
	if e.err == nil {
		e.err = e.invalid("attribute %s=%q: %s", attr, clip(value), fmt.Sprintf(format, args...))
	}
}

// clip keeps messages short when a value is huge.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "..."
}

// get finds an attribute without a namespace prefix; prefixed attributes
// (and namespace declarations) are not part of the vocabulary.
func (e *element) get(name string) (string, bool) {
	for _, a := range e.attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

func (e *element) required(name string) (string, bool) {
	v, ok := e.get(name)
	if !ok && e.err == nil {
		e.err = e.invalid("missing attribute %s", name)
	}
	return v, ok
}

// str reads a string attribute; an absent optional one reads as "".
func (e *element) str(name string, req bool) string {
	if req {
		v, _ := e.required(name)
		return v
	}
	v, _ := e.get(name)
	return v
}

// boolean reads yes/no, exactly as Windows writes them.
func (e *element) boolean(name string, def bool) bool {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	switch v {
	case "yes":
		return true
	case "no":
		return false
	}
	e.fail(name, v, "want yes or no")
	return def
}

// guid reads a GUID with or without braces, in any letter case.
func (e *element) guid(name string, req bool) uuid.UUID {
	var v string
	var ok bool
	if req {
		v, ok = e.required(name)
	} else {
		v, ok = e.get(name)
	}
	if !ok {
		return uuid.Nil
	}
	id, good := parseGUID(v)
	if !good {
		e.fail(name, v, "not a GUID")
	}
	return id
}

func parseGUID(s string) (uuid.UUID, bool) {
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	// uuid.Parse also takes urn:uuid: and undashed forms; documents use
	// only the dashed form.
	if len(s) != 36 {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(s)
	return id, err == nil
}

// u32 reads a decimal unsigned number (masks are decimal in both documents).
func (e *element) u32(name string, def uint32) uint32 {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		e.fail(name, v, "want a decimal number below 2^32")
		return def
	}
	return uint32(n)
}

func (e *element) i32(name string, def int32) int32 {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		e.fail(name, v, "want a signed 32-bit decimal number")
		return def
	}
	return int32(n)
}

// hresult reads an HRESULT written as 0x plus hex digits, or in decimal.
func (e *element) hresult(name string, req bool) uint32 {
	var v string
	var ok bool
	if req {
		v, ok = e.required(name)
	} else {
		v, ok = e.get(name)
	}
	if !ok {
		return 0
	}
	var n uint64
	var err error
	if hex, isHex := strings.CutPrefix(v, "0x"); isHex {
		n, err = strconv.ParseUint(hex, 16, 32)
	} else {
		n, err = strconv.ParseUint(v, 10, 32)
	}
	if err != nil {
		e.fail(name, v, "want an HRESULT (0x followed by up to 8 hex digits, or decimal)")
		return 0
	}
	return uint32(n)
}

// filetime reads a decimal FILETIME; absent reads as the zero time.
func (e *element) filetime(name string) time.Time {
	v, ok := e.get(name)
	if !ok {
		return time.Time{}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.fail(name, v, "want a FILETIME (decimal count of 100 ns since 1601-01-01 UTC)")
		return time.Time{}
	}
	return filetimeToTime(n)
}

// enumAttr reads an enum by its XML word. A required attribute must be
// present; an optional one reads as def when absent.
func enumAttr[T comparable](e *element, name string, sp spelling[T], req bool, def T) T {
	var v string
	var ok bool
	if req {
		v, ok = e.required(name)
	} else {
		v, ok = e.get(name)
	}
	if !ok {
		return def
	}
	x, good := sp.value(v)
	if !good {
		e.fail(name, v, "want one of %s", strings.Join(sp.words(), ", "))
		return def
	}
	return x
}
