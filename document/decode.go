package document

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/lvss/lvss/vsserr"
)

// Limits on what the parsers accept. Documents travel between processes
// that do not trust each other (a writer's WMD is read by the coordinator
// and by requesters), so every resource a document can make the reader
// spend is capped. Real documents are far below these: the largest observed
// Windows WMD (the System Writer's, ~20 000 file sets) is about 2 MiB and 4
// levels deep.
const (
	// MaxDocumentSize is the largest input accepted, checked before any
	// parsing so an oversized input costs nothing.
	MaxDocumentSize = 64 << 20
	// MaxDepth caps element nesting (lvss documents use at most 4 levels);
	// the XML tokenizer keeps one stack entry per open element.
	MaxDepth = 32
	// MaxElements caps the number of elements, known or not.
	MaxElements = 1 << 20
	// MaxAttributes caps attributes on one element (COMPONENT has 20).
	MaxAttributes = 128
	// MaxAttributeLength caps one attribute value in bytes after decoding;
	// the largest values are writer-private metadata blobs.
	MaxAttributeLength = 8 << 20
)

// reencodeCheckAbove is the input size above which Parse also checks that
// the document, as Marshal writes it, stays within MaxDocumentSize. Written
// output is at most about 6 times the input (a '"' read from a
// single-quoted attribute is written as &quot;, a bare <FILE_GROUP> gains
// its always-written flags), so smaller inputs cannot exceed the limit and
// skip the extra pass. This keeps the promise that whatever Parse accepts,
// Marshal writes and Parse reads back.
const reencodeCheckAbove = MaxDocumentSize / 8

// decoder walks a document with a streaming tokenizer, so memory stays
// proportional to the (capped) input and no element tree is built.
type decoder struct {
	d        *xml.Decoder
	ns       string          // the document's namespace
	vocab    map[string]bool // element names this kind of document knows
	depth    int
	elements int
	rootSeen bool
	// lastLine and lastCol are where the last start tag returned began.
	lastLine, lastCol int
	// stopped is set when reading cannot go on (the input is not
	// well-formed, or a limit was hit); drain must not read further.
	stopped bool
}

// element is a start tag being read: its local name, where it starts, and
// its attributes. Attribute accessors record the first problem in err so a
// handler can read all attributes and check once.
type element struct {
	name      string
	line, col int
	attrs     []xml.Attr
	err       error
}

func newDecoder(data []byte, ns string, vocab map[string]bool) (*decoder, error) {
	data, fromUTF16, err := toUTF8(data)
	if err != nil {
		return nil, err
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	d.CharsetReader = func(label string, r io.Reader) (io.Reader, error) {
		// The bytes were already turned into UTF-8 when a UTF-16 byte-order
		// mark was found; any other declared encoding is not supported.
		if fromUTF16 && isUTF16Label(label) {
			return r, nil
		}
		return nil, errors.New("lvss reads UTF-8, and UTF-16 with a byte-order mark")
	}
	return &decoder{d: d, ns: ns, vocab: vocab}, nil
}

func isUTF16Label(label string) bool {
	switch strings.ToLower(label) {
	case "utf-16", "utf-16le", "utf-16be", "unicode":
		return true
	}
	return false
}

// toUTF8 strips a UTF-8 byte-order mark and converts UTF-16 input (which
// Windows uses for in-memory documents) to UTF-8. Only input that starts
// with a byte-order mark is taken as UTF-16.
func toUTF8(data []byte) ([]byte, bool, error) {
	var big bool
	switch {
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		return data[3:], false, nil
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		big = false
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		big = true
	default:
		return data, false, nil
	}
	data = data[2:]
	if len(data)%2 != 0 {
		return nil, false, vsserr.New(vsserr.CorruptXMLDocument, "UTF-16 input has an odd number of bytes")
	}
	out := make([]byte, 0, len(data)/2*3/2)
	unit := func(i int) uint16 {
		if big {
			return uint16(data[i])<<8 | uint16(data[i+1])
		}
		return uint16(data[i+1])<<8 | uint16(data[i])
	}
	for i := 0; i < len(data); i += 2 {
		u := rune(unit(i))
		switch {
		case utf16.IsSurrogate(u):
			if u >= 0xDC00 || i+2 >= len(data) {
				return nil, false, vsserr.New(vsserr.CorruptXMLDocument, "byte offset %d: unpaired UTF-16 surrogate", i+2)
			}
			r := utf16.DecodeRune(u, rune(unit(i+2)))
			if r == utf8.RuneError {
				return nil, false, vsserr.New(vsserr.CorruptXMLDocument, "byte offset %d: unpaired UTF-16 surrogate", i+2)
			}
			out = utf8.AppendRune(out, r)
			i += 2
		default:
			out = utf8.AppendRune(out, u)
		}
	}
	return out, true, nil
}

// parseDoc reads one document: the root element must be rootName in the
// document's namespace, and readRoot consumes everything inside it.
func parseDoc(data []byte, rootName, ns string, vocab map[string]bool, readRoot func(*decoder, *element) error) error {
	if len(data) > MaxDocumentSize {
		return vsserr.New(vsserr.InvalidXMLDocument, "document is %d bytes; the limit is %d bytes (%d MiB)",
			len(data), MaxDocumentSize, MaxDocumentSize>>20)
	}
	p, err := newDecoder(data, ns, vocab)
	if err != nil {
		return err
	}
	err = p.readDocument(rootName, readRoot)
	if err != nil && !p.stopped {
		// A document that is both invalid and not well-formed is reported
		// as not well-formed (D8), so read on to the end.
		err = p.drain(err)
	}
	return err
}

func (p *decoder) readDocument(rootName string, readRoot func(*decoder, *element) error) error {
	tok, err := p.next()
	if err == io.EOF {
		return p.corrupt("no root element")
	}
	if err != nil {
		return err
	}
	start, ok := tok.(xml.StartElement)
	if !ok { // the tokenizer refuses an end tag before any start tag
		return p.corrupt("unexpected end tag")
	}
	root := p.element(start)
	if start.Name.Local != rootName {
		return root.invalid("root element is <%s>, want <%s>", start.Name.Local, rootName)
	}
	if start.Name.Space != p.ns {
		return root.invalid("namespace is %q, want %q", start.Name.Space, p.ns)
	}
	if err := readRoot(p, root); err != nil {
		return err
	}
	// Only comments, processing instructions and white space may follow.
	for {
		if _, err := p.next(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// drain reads the rest of the input after a validity error and returns a
// well-formedness error if one turns up, else the original error.
func (p *decoder) drain(invalid error) error {
	for {
		_, err := p.next()
		switch {
		case err == io.EOF:
			return invalid
		case err != nil && vsserr.Code(err) == vsserr.CorruptXMLDocument:
			return err
		case err != nil: // a limit: stop reading, keep the first error
			return invalid
		}
	}
}

// next returns the next start or end tag, enforcing the limits and the
// single-root rule the tokenizer does not check. It returns io.EOF at a
// clean end of input.
func (p *decoder) next() (xml.Token, error) {
	for {
		line, col := p.d.InputPos() // where the next token starts
		tok, err := p.d.Token()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			p.stopped = true
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				l, c := p.d.InputPos()
				return nil, corruptAt(l, c, se.Msg)
			}
			return nil, corruptAt(line, col, err.Error())
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if p.depth == 0 && p.rootSeen {
				p.stopped = true
				return nil, corruptAt(line, col, fmt.Sprintf("second root element <%s>", t.Name.Local))
			}
			p.rootSeen = true
			p.depth++
			p.elements++
			if err := p.limits(t, line, col); err != nil {
				p.stopped = true
				return nil, err
			}
			p.lastLine, p.lastCol = line, col
			return t, nil
		case xml.EndElement:
			p.depth--
			return t, nil
		case xml.CharData:
			if p.depth == 0 && len(bytes.TrimLeft(t, " \t\r\n")) > 0 {
				p.stopped = true
				return nil, corruptAt(line, col, "text outside the root element")
			}
			// Text inside elements carries nothing in these documents.
		default:
			// Comments, processing instructions and directives carry
			// nothing either; the tokenizer expands no custom entities.
		}
	}
}

func (p *decoder) limits(t xml.StartElement, line, col int) error {
	lim := func(format string, args ...any) error {
		return vsserr.New(vsserr.InvalidXMLDocument, "line %d, column %d: <%s>: %s", line, col, t.Name.Local,
			fmt.Sprintf(format, args...))
	}
	if p.depth > MaxDepth {
		return lim("nesting deeper than %d elements", MaxDepth)
	}
	if p.elements > MaxElements {
		return lim("more than %d elements", MaxElements)
	}
	if len(t.Attr) > MaxAttributes {
		return lim("more than %d attributes", MaxAttributes)
	}
	for i, a := range t.Attr {
		if len(a.Value) > MaxAttributeLength {
			return lim("attribute %s is %d bytes; the limit is %d", a.Name.Local, len(a.Value), MaxAttributeLength)
		}
		// Unique attribute names are a well-formedness rule the tokenizer
		// does not check.
		for _, b := range t.Attr[:i] {
			if a.Name == b.Name {
				return corruptAt(line, col, fmt.Sprintf("<%s>: attribute %s appears twice", t.Name.Local, a.Name.Local))
			}
		}
	}
	return nil
}

func corruptAt(line, col int, msg string) error {
	return vsserr.New(vsserr.CorruptXMLDocument, "line %d, column %d: %s", line, col, msg)
}

func (p *decoder) corrupt(msg string) error {
	p.stopped = true
	l, c := p.d.InputPos()
	return corruptAt(l, c, msg)
}

func (p *decoder) element(t xml.StartElement) *element {
	return &element{name: t.Name.Local, line: p.lastLine, col: p.lastCol, attrs: t.Attr}
}
