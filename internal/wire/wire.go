package wire

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/vsserr"
)

// MaxMessageSize bounds every gRPC message both ways. Documents are capped at
// 64 MiB by package document; listings of many snapshots or writers fit well
// under this.
const MaxMessageSize = 128 << 20

// StatusOf converts an error (nil = S_OK) to its wire form.
func StatusOf(err error) *v1.Status {
	if err == nil {
		return &v1.Status{}
	}
	return &v1.Status{Hresult: uint32(vsserr.Code(err)), Message: vsserr.Message(err)}
}

// Code returns a status's HRESULT.
func Code(s *v1.Status) vsserr.HRESULT {
	if s == nil {
		return vsserr.OK
	}
	return vsserr.HRESULT(s.Hresult)
}

// ErrorOf turns a wire status back into an error; success codes give nil.
func ErrorOf(s *v1.Status) error {
	if s == nil || !vsserr.HRESULT(s.Hresult).Failed() {
		return nil
	}
	return &vsserr.Error{Code: vsserr.HRESULT(s.Hresult), Msg: s.Message}
}

// grpcCode picks a transport code for tools that only look at gRPC codes;
// the HRESULT in the detail is what lvss clients read.
func grpcCode(h vsserr.HRESULT) codes.Code {
	switch h {
	case vsserr.AccessDenied:
		return codes.PermissionDenied
	case vsserr.InvalidArg:
		return codes.InvalidArgument
	case vsserr.BadState:
		return codes.FailedPrecondition
	case vsserr.ObjectNotFound:
		return codes.NotFound
	case vsserr.ObjectAlreadyExists, vsserr.WriterAlreadySubscribed:
		return codes.AlreadyExists
	case vsserr.NotImpl, vsserr.NotSupported:
		return codes.Unimplemented
	}
	return codes.Unknown
}

// ToGRPC converts an error to a gRPC status error carrying the HRESULT.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	s := StatusOf(err)
	st := status.New(grpcCode(vsserr.HRESULT(s.Hresult)), err.Error())
	if d, derr := st.WithDetails(s); derr == nil {
		st = d
	}
	return st.Err()
}

// FromGRPC recovers the HRESULT from a gRPC error. Errors without an lvss
// detail (the daemon is gone, the socket is missing) become
// VSS_E_UNEXPECTED wrapping the transport error, so callers still see why.
func FromGRPC(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return vsserr.Wrap(vsserr.Unexpected, err, "lvssd")
	}
	for _, d := range st.Details() {
		if s, ok := d.(*v1.Status); ok {
			return &vsserr.Error{Code: vsserr.HRESULT(s.Hresult), Msg: s.Message}
		}
	}
	if st.Code() == codes.Canceled {
		return vsserr.Wrap(vsserr.Unexpected, errors.New(st.Message()), "call cancelled")
	}
	if st.Code() == codes.Unavailable {
		return vsserr.Wrap(vsserr.Unexpected, fmt.Errorf("%w (%s)", ErrConnectionLost, st.Message()), "lvssd")
	}
	return vsserr.Wrap(vsserr.Unexpected, errors.New(st.Message()), "lvssd (%s)", st.Code())
}

// ErrConnectionLost matches (errors.Is) a call whose connection to lvssd
// broke: lvssd stopped or crashed while it ran. The tools say so, and what
// lvssd does about the unfinished work at its next start, rather than
// show gRPC's words for it.
var ErrConnectionLost = errors.New("the connection to lvssd was lost: lvssd stopped or crashed during the call")

// ParseGUID reads a GUID as the wire and `lvss call` write it: lowercase or
// not, with or without a pair of braces; "" and "GUID_NULL" are the zero
// GUID. uuid.Parse's other spellings (a urn: prefix, no dashes) and a
// brace without its pair are not GUIDs as VSS writes them.
func ParseGUID(s string) (uuid.UUID, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "GUID_NULL" {
		return uuid.Nil, nil
	}
	in := s
	if len(in) == 38 && in[0] == '{' && in[37] == '}' {
		in = in[1:37]
	}
	u, err := uuid.Parse(in)
	if len(in) != 36 {
		err = errors.New("not 8-4-4-4-12 hex digits")
	}
	if err != nil {
		return uuid.Nil, vsserr.New(vsserr.InvalidArg, "bad GUID %q", s)
	}
	return u, nil
}

// GUID formats a GUID for the wire.
func GUID(u uuid.UUID) string { return u.String() }

// GUIDs formats a list.
func GUIDs(us []uuid.UUID) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}

// ParseGUIDs reads a list, failing on the first bad one.
func ParseGUIDs(ss []string) ([]uuid.UUID, error) {
	out := make([]uuid.UUID, 0, len(ss))
	for _, s := range ss {
		u, err := ParseGUID(s)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}
