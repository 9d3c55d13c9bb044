package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// This file turns one line of an `lvss call` script into a method and typed
// arguments. Everything that can be wrong with a line is found here, before
// the daemon is called, and reported as E_INVALIDARG with what was wrong:
// a script that passes a bad GUID must not reach the daemon as GUID_NULL.

// token is a word of a line. Quoted words are taken literally: no variable
// or @FILE expansion, so a quote is how to pass a literal "$" or "@".
type token struct {
	text   string
	quoted bool
}

func invalid(format string, args ...any) error {
	return vsserr.New(vsserr.InvalidArg, format, args...)
}

// tokenize splits a line into words at blanks. A double-quoted word may hold
// blanks and be empty; inside it \" is a quote and every other backslash is
// itself (logical paths use backslashes). An unquoted word starting with #
// begins a comment.
func tokenize(line string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(line) {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			i++
			continue
		case c == '#':
			return toks, nil
		case c == '"':
			var b strings.Builder
			i++
			closed := false
			for i < len(line) {
				if line[i] == '\\' && i+1 < len(line) && line[i+1] == '"' {
					b.WriteByte('"')
					i += 2
					continue
				}
				if line[i] == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(line[i])
				i++
			}
			if !closed {
				return nil, invalid("unterminated quote")
			}
			if i < len(line) && !isBlank(line[i]) {
				return nil, invalid("no blank after the closing quote of %q", b.String())
			}
			toks = append(toks, token{b.String(), true})
			continue
		}
		j := i
		for j < len(line) && !isBlank(line[j]) {
			j++
		}
		w := line[i:j]
		if strings.Contains(w, `"`) {
			return nil, invalid("quote inside the word %s (quote the whole argument)", w)
		}
		toks = append(toks, token{w, false})
		i = j
	}
	return toks, nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

// kind is how an argument is read.
type kind int

const (
	kString kind = iota
	kXML         // a string, usually @FILE
	kBool
	kGUID
	kContext
	kBackupType
	kObjectType
	kComponentType
	kAttributes
	kIndex
	kTimeout
	kHandle
	kRestoreType
	kFileRestoreStatus
	kRollForward
)

func (k kind) String() string {
	return [...]string{"string", "XML", "true|false", "GUID", "VSS_CTX_*", "VSS_BT_*", "VSS_OBJECT_*",
		"VSS_CT_*", "VSS_VOLSNAP_ATTR_*", "index", "milliseconds|INFINITE", "async handle",
		"VSS_RTYPE_*", "VSS_RS_*", "VSS_RF_*"}[k]
}

// param is one argument of a method. def is the spec's default for an
// omitted trailing argument; required arguments have none.
type param struct {
	name string
	kind kind
	def  *string
}

func req(name string, k kind) param { return param{name: name, kind: k} }

func opt(name string, k kind, def string) param { return param{name: name, kind: k, def: &def} }

// infiniteMs is INFINITE as Windows spells it numerically.
const infiniteMs = 0xFFFFFFFF

// vars are the script's variables. Names are matched exactly.
type vars map[string]string

// expand resolves $VARIABLE and @FILE words.
func expand(toks []token, v vars) ([]string, error) {
	out := make([]string, 0, len(toks))
	for _, t := range toks {
		switch {
		case t.quoted:
			out = append(out, t.text)
		case strings.HasPrefix(t.text, "$"):
			name := t.text[1:]
			if !validVarName(name) {
				return nil, invalid("bad variable name %s", t.text)
			}
			val, ok := v[name]
			if !ok {
				return nil, invalid("undefined variable %s", t.text)
			}
			out = append(out, val)
		case strings.HasPrefix(t.text, "@") && len(t.text) > 1:
			b, err := os.ReadFile(t.text[1:])
			if err != nil {
				return nil, vsserr.Wrap(vsserr.InvalidArg, err, "argument %s", t.text)
			}
			out = append(out, string(b))
		default:
			out = append(out, t.text)
		}
	}
	return out, nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// line is a parsed script line, ready to run.
type line struct {
	m      *method
	args   []any
	noWait bool // ended in &: return with the handle
}

// parseLine reads one script line. It returns nil, nil for a blank or
// comment line; errors are E_INVALIDARG. name is the method word as typed,
// for reporting even when it is not a method.
func parseLine(text string, v vars, asyncs map[uint64]*client.Async) (l *line, name string, err error) {
	toks, err := tokenize(text)
	if err != nil {
		if len(strings.Fields(text)) > 0 {
			name = strings.Fields(text)[0]
		}
		return nil, name, err
	}
	if len(toks) == 0 {
		return nil, "", nil
	}
	name = toks[0].text
	noWait := false
	last := &toks[len(toks)-1]
	if !last.quoted && strings.HasSuffix(last.text, "&") {
		noWait = true
		last.text = strings.TrimSuffix(last.text, "&")
		if last.text == "" {
			toks = toks[:len(toks)-1]
		}
		if len(toks) == 0 {
			return nil, "&", invalid("no method before &")
		}
		name = toks[0].text
	}
	m := methodByName(name)
	if m == nil || toks[0].quoted {
		return nil, name, invalid("unknown method %q (names are case-sensitive, as the spec spells them)", name)
	}
	if noWait && !m.async {
		return nil, name, invalid("%s is not asynchronous: & applies only to %s", name, strings.Join(asyncNames(), ", "))
	}
	words, err := expand(toks[1:], v)
	if err != nil {
		return nil, name, err
	}
	args, err := m.parseArgs(words, asyncs)
	if err != nil {
		return nil, name, err
	}
	return &line{m: m, args: args, noWait: noWait}, name, nil
}

// parseArgs checks the count and converts each word; omitted trailing
// optional arguments take their defaults.
func (m *method) parseArgs(words []string, asyncs map[uint64]*client.Async) ([]any, error) {
	nreq := 0
	for _, p := range m.params {
		if p.def == nil {
			nreq++
		}
	}
	switch {
	case m.variadic && len(words) < len(m.params):
		return nil, invalid("%s needs at least %d argument(s): %s", m.name, len(m.params), m.usage())
	case !m.variadic && (len(words) < nreq || len(words) > len(m.params)):
		return nil, invalid("%s takes %s, got %d argument(s): %s", m.name, countText(nreq, len(m.params)), len(words), m.usage())
	}
	args := make([]any, 0, max(len(words), len(m.params)))
	for i := range max(len(words), len(m.params)) {
		var p param
		if i < len(m.params) {
			p = m.params[i]
		} else {
			p = m.params[len(m.params)-1] // variadic tail
		}
		var w string
		if i < len(words) {
			w = words[i]
		} else {
			w = *p.def
		}
		a, err := convert(p, w, asyncs)
		if err != nil {
			return nil, fmt.Errorf("argument %d (%s): %w", i+1, p.name, err)
		}
		args = append(args, a)
	}
	return args, nil
}

func countText(lo, hi int) string {
	switch {
	case lo == hi && lo == 0:
		return "no arguments"
	case lo == hi:
		return fmt.Sprintf("%d argument(s)", lo)
	}
	return fmt.Sprintf("%d to %d arguments", lo, hi)
}

func convert(p param, w string, asyncs map[uint64]*client.Async) (any, error) {
	bad := func(err error) error { return vsserr.Wrap(vsserr.InvalidArg, err, "%q is not a %s", w, p.kind) }
	switch p.kind {
	case kString, kXML:
		return w, nil
	case kBool:
		switch w {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, invalid("%q is not true or false", w)
	case kGUID:
		u, err := wire.ParseGUID(w)
		if err != nil || w == "" {
			return nil, invalid("%q is not a GUID (lowercase, braces tolerated, or GUID_NULL)", w)
		}
		return u, nil
	case kContext:
		c, err := vss.ParseContext(w)
		if err != nil {
			return nil, bad(err)
		}
		return c, nil
	case kBackupType:
		b, err := vss.ParseBackupType(w)
		if err != nil {
			return nil, bad(err)
		}
		return b, nil
	case kObjectType:
		o, err := vss.ParseObjectType(w)
		if err != nil {
			return nil, bad(err)
		}
		return o, nil
	case kComponentType:
		c, err := vss.ParseComponentType(w)
		if err != nil {
			return nil, bad(err)
		}
		return c, nil
	case kAttributes:
		a, err := vss.ParseAttributes(w)
		if err != nil {
			return nil, bad(err)
		}
		return a, nil
	case kRestoreType:
		r, err := vss.ParseRestoreType(w)
		if err != nil {
			return nil, bad(err)
		}
		return r, nil
	case kFileRestoreStatus:
		r, err := vss.ParseFileRestoreStatus(w)
		if err != nil {
			return nil, bad(err)
		}
		return r, nil
	case kRollForward:
		r, err := vss.ParseRollForwardType(w)
		if err != nil {
			return nil, bad(err)
		}
		return r, nil
	case kIndex:
		if w == allIndex {
			return nil, nil // absent: the Get...[index] methods then list all
		}
		n, err := strconv.ParseUint(w, 10, 31)
		if err != nil {
			return nil, invalid("%q is not an index (0, 1, ...)", w)
		}
		return int(n), nil
	case kTimeout:
		if w == "INFINITE" {
			return time.Duration(-1), nil
		}
		n, err := strconv.ParseUint(w, 0, 32)
		if err != nil {
			return nil, invalid("%q is not a timeout (milliseconds or INFINITE)", w)
		}
		if n == infiniteMs {
			return time.Duration(-1), nil
		}
		return time.Duration(n) * time.Millisecond, nil
	case kHandle:
		n, err := strconv.ParseUint(w, 10, 64)
		if err != nil {
			return nil, invalid("%q is not an async handle (use $ASYNC)", w)
		}
		a, ok := asyncs[n]
		if !ok {
			return nil, invalid("no async operation %d was started in this session", n)
		}
		return a, nil
	}
	return nil, invalid("internal: unknown argument kind %d", p.kind)
}

// args gives typed access to parsed arguments; parseArgs guarantees the
// types, so a wrong assertion is a bug in the method table.
type args []any

func (a args) str(i int) string                { return a[i].(string) }
func (a args) boolean(i int) bool              { return a[i].(bool) }
func (a args) guid(i int) uuid.UUID            { return a[i].(uuid.UUID) }
func (a args) ct(i int) vss.ComponentType      { return a[i].(vss.ComponentType) }
func (a args) objType(i int) vss.ObjectType    { return a[i].(vss.ObjectType) }
func (a args) async(i int) *client.Async       { return a[i].(*client.Async) }
func (a args) timeout(i int) time.Duration     { return a[i].(time.Duration) }
func (a args) attrs(i int) vss.Attributes      { return a[i].(vss.Attributes) }
func (a args) backupType(i int) vss.BackupType { return a[i].(vss.BackupType) }
func (a args) context(i int) vss.Context       { return a[i].(vss.Context) }
func (a args) index(i int) int                 { return a[i].(int) }
func (a args) restoreType(i int) vss.RestoreType {
	return a[i].(vss.RestoreType)
}
func (a args) fileRestoreStatus(i int) vss.FileRestoreStatus {
	return a[i].(vss.FileRestoreStatus)
}
func (a args) rollForward(i int) vss.RollForwardType { return a[i].(vss.RollForwardType) }
func (a args) guids(from int) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(a)-from)
	for _, x := range a[from:] {
		out = append(out, x.(uuid.UUID))
	}
	return out
}
