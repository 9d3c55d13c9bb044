package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/lvss/lvss/provider/confval"
)

// document is what scan learned about a file: where each key was set, so
// that checks made after decoding can point at a line.
type document struct {
	name string
	// at maps a key path as joinKey spells it, with [i] for array elements
	// and array-of-tables entries ("access.groups[1]", "writers[0].name"),
	// to the position of its value.
	at map[string]unstable.Position
}

// errorAt builds an Error located at the first of keys that the file sets,
// or without a position if it sets none of them (the value came from the
// defaults or from code).
func (d *document) errorAt(keys []string, format string, args ...any) *Error {
	e := &Error{Msg: fmt.Sprintf(format, args...)}
	if len(keys) > 0 {
		e.Key = keys[0]
	}
	if d == nil {
		return e
	}
	e.File = d.name
	for _, k := range keys {
		if pos, ok := d.at[k]; ok {
			e.Key, e.Line, e.Column = k, pos.Line, pos.Column
			break
		}
	}
	return e
}

// locate places an error from a section's own Validate (in a provider
// package, which knows keys but not files): a *confval.KeyError at the
// first of its keys the file sets, anything else without a position.
func (d *document) locate(err error) *Error {
	var ke *confval.KeyError
	if errors.As(err, &ke) {
		return d.errorAt(ke.Keys, "%s", ke.Msg)
	}
	return d.errorAt(nil, "%s", err)
}

// scan walks the syntax tree and checks every key against the Go type it
// would land in. It exists because go-toml's strict mode does not say
// enough: it names keys inside inline tables without their table, it lets
// an integer fill a Duration (as nanoseconds), and its type errors name Go
// types rather than what the operator should write.
//
// Syntax errors are left to the decoder, which reports them with position.
//
// root is the type the document decodes into; tests pass other types to
// exercise shapes Config does not have yet.
func scan(name string, data []byte, root reflect.Type) (*document, error) {
	s := scanner{
		doc:       &document{name: name, at: map[string]unstable.Position{}},
		tableType: root,
		arrays:    map[string]int{},
	}
	s.p.Reset(data)
	for s.p.NextExpression() {
		e := s.p.Expression()
		var err error
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			err = s.header(root, e)
		case unstable.KeyValue:
			err = s.keyValue(s.table, s.tableType, e)
		}
		if err != nil {
			return nil, err
		}
	}
	return s.doc, nil
}

type scanner struct {
	p   unstable.Parser
	doc *document

	// The current [table] or [[array table]]: its path as printed and the
	// Go type its keys belong to.
	table     string
	tableType reflect.Type

	// arrays counts the entries of each array of tables so far, by path, so
	// that keys of the third [[writers]] are recorded as writers[2].x.
	arrays map[string]int
}

func (s *scanner) pos(n *unstable.Node) unstable.Position {
	return s.p.Shape(n.Raw).Start
}

func (s *scanner) fail(n *unstable.Node, key string, format string, args ...any) *Error {
	pos := s.pos(n)
	return &Error{File: s.doc.name, Line: pos.Line, Column: pos.Column, Key: key,
		Msg: fmt.Sprintf(format, args...)}
}

// mismatch reports a value or table of the wrong kind at key.
func (s *scanner) mismatch(n *unstable.Node, key string, t reflect.Type, got string) *Error {
	want, _ := describe(t)
	return s.fail(n, key, "%s: want %s, got %s", key, want, got)
}

func (s *scanner) header(root reflect.Type, e *unstable.Node) error {
	t := root
	key, plain := "", ""
	it := e.Key()
	for it.Next() {
		part := it.Node()
		name := string(part.Data)
		key, plain = appendKey(key, name), appendKey(plain, name)
		field, ok := child(t, name)
		if !ok {
			return s.fail(part, key, "unknown table %s", strconv.Quote(key))
		}
		t = deref(field)
		last := it.IsLast()
		switch {
		case last && e.Kind == unstable.ArrayTable:
			if t.Kind() != reflect.Slice || !isTable(t.Elem()) {
				return s.mismatch(part, key, t, "an array of tables")
			}
			n := s.arrays[plain]
			s.arrays[plain] = n + 1
			key += index(n)
			t = deref(t.Elem())
		case t.Kind() == reflect.Slice && isTable(t.Elem()):
			// Inside or after [[x]], x means its latest entry.
			n, ok := s.arrays[plain]
			if !ok {
				return s.mismatch(part, key, t, "a table")
			}
			key += index(n - 1)
			t = deref(t.Elem())
		case !isTable(t):
			return s.mismatch(part, key, t, "a table")
		}
		if last {
			s.doc.at[key] = s.pos(part)
		}
	}
	s.table, s.tableType = key, t
	return nil
}

// keyValue checks one key = value, whose (possibly dotted) key is relative
// to the table at prefix of type t.
func (s *scanner) keyValue(prefix string, t reflect.Type, e *unstable.Node) error {
	key := prefix
	it := e.Key()
	for it.Next() {
		part := it.Node()
		if !isTable(t) {
			return s.mismatch(part, key, t, "a table")
		}
		name := string(part.Data)
		key = appendKey(key, name)
		field, ok := child(t, name)
		if !ok {
			return s.fail(part, key, "unknown key %s", strconv.Quote(key))
		}
		t = field
	}
	if pos, dup := s.doc.at[key]; dup {
		return s.fail(e.Value(), key, "%s: set twice (first on line %d)", key, pos.Line)
	}
	return s.value(key, t, e.Value())
}

// value records where the value of key is and checks that its kind can
// become a t.
func (s *scanner) value(key string, t reflect.Type, v *unstable.Node) error {
	s.doc.at[key] = s.pos(v)
	// The parser keeps no range for an array itself: place it at its
	// first element, on the line that sets it.
	if v.Kind == unstable.Array && v.Raw.Length == 0 {
		if it := v.Children(); it.Next() {
			s.doc.at[key] = s.pos(it.Node())
		}
	}
	t = deref(t)
	switch v.Kind {
	case unstable.InlineTable:
		if !isTable(t) {
			break
		}
		it := v.Children()
		for it.Next() {
			if err := s.keyValue(key, t, it.Node()); err != nil {
				return err
			}
		}
		return nil
	case unstable.Array:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			break
		}
		it := v.Children()
		for i := 0; it.Next(); i++ {
			if err := s.value(key+index(i), t.Elem(), it.Node()); err != nil {
				return err
			}
		}
		return nil
	default:
		if scalarFits(t, v.Kind) {
			return nil
		}
	}
	return s.mismatch(v, key, t, kindName(v.Kind))
}

func appendKey(prefix, name string) string {
	if prefix == "" {
		return keyPart(name)
	}
	return prefix + "." + keyPart(name)
}

func index(i int) string { return "[" + strconv.Itoa(i) + "]" }

var (
	textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	timeType        = reflect.TypeOf(time.Time{})
)

// child is the type of the key name inside a table of type t, following the
// toml struct tags go-toml decodes by. Only exact tag matches count: go-toml
// would also accept a field name in another case, which strictness forbids.
func child(t reflect.Type, name string) (reflect.Type, bool) {
	t = deref(t)
	switch t.Kind() {
	case reflect.Map:
		return t.Elem(), t.Key().Kind() == reflect.String
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if tag == name {
				return f.Type, true
			}
		}
	}
	return nil, false
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// isTable reports whether t is written as a TOML table. Types that decode
// from text, such as time.Time, are structs but not tables.
func isTable(t reflect.Type) bool {
	t = deref(t)
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return false
	}
	return t.Kind() == reflect.Struct || t.Kind() == reflect.Map
}

func scalarFits(t reflect.Type, k unstable.Kind) bool {
	if t == timeType {
		return k == unstable.DateTime || k == unstable.LocalDateTime || k == unstable.LocalDate
	}
	// Check text types before their underlying kind: go-toml would store
	// `hold = 5` into a Duration as 5ns without calling UnmarshalText.
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return k == unstable.String
	}
	switch t.Kind() {
	case reflect.String:
		return k == unstable.String
	case reflect.Bool:
		return k == unstable.Bool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return k == unstable.Integer
	case reflect.Float32, reflect.Float64:
		return k == unstable.Float || k == unstable.Integer
	case reflect.Interface:
		return true
	}
	return false
}

var (
	durationType = reflect.TypeOf(Duration(0))
	sizeType     = reflect.TypeOf(Size(0))
)

// describe says what the file should contain for a value of type t, in
// the singular and the plural.
func describe(t reflect.Type) (string, string) {
	t = deref(t)
	switch {
	case t == durationType:
		return `a duration string such as "30s"`, `duration strings such as "30s"`
	case t == sizeType:
		return `a size string such as "1GiB"`, `size strings such as "1GiB"`
	case t == timeType:
		return "a date-time", "date-times"
	case isTable(t):
		return "a table", "tables"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string", "strings"
	case reflect.Bool:
		return "true or false", "booleans"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer", "integers"
	case reflect.Float32, reflect.Float64:
		return "a number", "numbers"
	case reflect.Slice, reflect.Array:
		_, elems := describe(t.Elem())
		return "an array of " + elems, "arrays"
	}
	return "a " + t.String(), t.String() + " values"
}

func kindName(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "an array"
	case unstable.InlineTable:
		return "an inline table"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return "a date or time"
	}
	return strings.ToLower(k.String())
}
