package vsserr

import (
	"errors"
	"fmt"
	"strings"
)

// Error is an HRESULT with the reason it happened, optionally wrapping a cause.
type Error struct {
	Code HRESULT
	Msg  string
	Err  error // cause, may be nil
}

// New builds an error with a formatted reason.
func New(code HRESULT, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Wrap attaches code and a formatted reason to a cause.
func Wrap(code HRESULT, err error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}

func (e *Error) Error() string {
	s := e.Code.String()
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap exposes the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches a bare HRESULT target or another *Error with the same code.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case HRESULT:
		return e.Code == t
	case *Error:
		return e.Code == t.Code
	}
	return false
}

// Code returns the HRESULT an error carries: S_OK for nil, the first HRESULT
// found in the chain, and VSS_E_UNEXPECTED for anything else (an error that
// carries no code is by definition one the caller did not expect).
func Code(err error) HRESULT {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var h HRESULT
	if errors.As(err, &h) {
		return h
	}
	return Unexpected
}

// Message returns the reason text of an error without its code, for fields
// that carry the code separately: "ctx: VSS_E_BAD_STATE (0x80042301): why"
// becomes "ctx: why".
func Message(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	code := Code(err)
	if code != Unexpected || strings.Contains(s, code.String()) {
		s = strings.Replace(s, code.String()+": ", "", 1)
		s = strings.TrimSuffix(s, code.String())
	}
	return strings.TrimSuffix(s, ": ")
}
