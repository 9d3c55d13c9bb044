package server

import (
	"strings"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protov2 "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vsserr"
)

// What a request may carry (L61). Every string of a request is checked at
// the wire, before the coordinator sees it, so that no handler has to
// think about a 1 MB writer name or volume path: such a value can name
// nothing, and would be copied into the event log, writer events and
// status listings.
const (
	// MaxRequestSize bounds one message from a requester or writer: the
	// largest document (package document's cap) with room for the rest.
	// gRPC refuses a larger one before decoding it.
	MaxRequestSize = document.MaxDocumentSize + 1<<20
	// maxName bounds names, IDs and paths: PATH_MAX.
	maxName = 4096
	// maxBlob bounds the free-text strings a writer or requester passes
	// through lvss: backup and restore options, backup stamps, a
	// writer's application message.
	maxBlob = 64 << 10
)

// blobFields are the string fields bounded by maxBlob; fields named
// *_xml are documents, bounded by document.MaxDocumentSize; every other
// string by maxName.
var blobFields = map[protoreflect.Name]bool{"options": true, "stamp": true, "application_message": true}

// checkLimits refuses a request with a string over its bound, naming the
// field, with E_INVALIDARG.
func checkLimits(m protoreflect.Message) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() == protoreflect.MessageKind && fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = checkLimits(l.Get(i).Message())
			}
		case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
			err = checkLimits(v.Message())
		case fd.Kind() == protoreflect.StringKind && fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = checkString(fd, l.Get(i).String())
			}
		case fd.Kind() == protoreflect.StringKind && !fd.IsMap():
			err = checkString(fd, v.String())
		}
		return err == nil
	})
	return err
}

func checkString(fd protoreflect.FieldDescriptor, s string) error {
	limit, what := maxName, "a name, ID or path"
	switch {
	case strings.HasSuffix(string(fd.Name()), "_xml"):
		limit, what = document.MaxDocumentSize, "a document"
	case blobFields[fd.Name()]:
		limit, what = maxBlob, "an option string"
	}
	if len(s) > limit {
		return vsserr.New(vsserr.InvalidArg, "%s is %d bytes long: %s may have at most %d", fd.Name(), len(s), what, limit)
	}
	return nil
}

// codec is protobuf, except that a message that does not decode (invalid
// UTF-8 in a string field, a truncated field) is not a transport error:
// gRPC would end the stream with codes.Internal, which a requester sees as
// VSS_E_UNEXPECTED and which would end its session. Instead the message
// comes back empty (a SessionRequest keeps its ID when that much decodes)
// and the reason is kept for the handler, which answers E_INVALIDARG
// (takeBad). A codec serves one server, so its reasons are its own.
type codec struct {
	proto encoding.CodecV2
	bad   sync.Map // message pointer -> error; taken by the handler right after the decode
}

func newCodec() *codec { return &codec{proto: encoding.GetCodecV2(proto.Name)} }

func (c *codec) Name() string { return proto.Name }

func (c *codec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c *codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.proto.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(protov2.Message)
	if !ok {
		return err
	}
	protov2.Reset(m)
	if r, ok := m.(*v1.SessionRequest); ok {
		r.Id = leadingID(data.Materialize())
	}
	c.bad.Store(m, vsserr.New(vsserr.InvalidArg, "the %s does not decode: %v", m.ProtoReflect().Descriptor().Name(), err))
	return nil
}

// leadingID finds field 1 (a request's ID) in an encoded message, so that
// a requester's refused call is answered under its own ID; 0 when it is
// not there.
func leadingID(b []byte) uint64 {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			id, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0
			}
			return id
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0
		}
		b = b[n:]
	}
	return 0
}

// takeBad returns why m was refused: it did not decode, or a string in it
// is over its bound (E_INVALIDARG); nil when it is fine.
func (c *codec) takeBad(m protov2.Message) error {
	if err, ok := c.bad.LoadAndDelete(m); ok {
		return err.(error)
	}
	return checkLimits(m.ProtoReflect())
}
