package server

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// rawMsg is an encoded message sent as it is: the tests' way to put on the
// wire what no protobuf library would encode (invalid UTF-8 in a string).
type rawMsg []byte

// rawCodec sends a rawMsg unchanged and everything else as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(rawMsg); ok {
		return r, nil
	}
	return proto.Marshal(v.(proto.Message))
}
func (rawCodec) Unmarshal(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }
func (rawCodec) Name() string                    { return "proto" }

// dialRaw is dial with the raw codec.
func dialRaw(t testing.TB, sock string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallSendMsgSize(256<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

const badUTF8Mark = "@@MARK@@"

// withBadUTF8 encodes m, whose one string holds badUTF8Mark, with that
// string's bytes made invalid UTF-8 (same length, so every length prefix
// stays right).
func withBadUTF8(t *testing.T, m proto.Message) rawMsg {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(b, []byte(badUTF8Mark)) != 1 {
		t.Fatalf("mark not found once in %v", m)
	}
	return bytes.Replace(b, []byte(badUTF8Mark), []byte("\xff\xfe@MARK@"), 1)
}

func (r *rawSession) callRaw(id uint64, msg rawMsg) *v1.SessionResponse {
	r.t.Helper()
	if err := r.st.SendMsg(msg); err != nil {
		r.t.Fatal(err)
	}
	resp, err := r.st.Recv()
	if err != nil {
		r.t.Fatal(err)
	}
	if resp.Id != id {
		r.t.Fatalf("response id %d for request %d", resp.Id, id)
	}
	return resp
}

func code(resp *v1.SessionResponse) vsserr.HRESULT { return wire.Code(resp.Status) }

func openSession(t *testing.T, cc *grpc.ClientConn) *rawSession {
	t.Helper()
	st, err := v1.NewRequesterClient(cc).Session(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.CloseSend() })
	return &rawSession{t: t, st: st}
}

// stringFields calls f with every string field reachable in every call
// of a SessionRequest (the call's own fields and those of its component
// reference), each time in a fresh request whose call is set.
func stringFields(f func(path string, req *v1.SessionRequest, set func(string))) {
	oneof := (&v1.SessionRequest{}).ProtoReflect().Descriptor().Oneofs().ByName("call")
	for i := 0; i < oneof.Fields().Len(); i++ {
		callFD := oneof.Fields().Get(i)
		var walk func(prefix string, md protoreflect.MessageDescriptor, get func(*v1.SessionRequest) protoreflect.Message)
		walk = func(prefix string, md protoreflect.MessageDescriptor, get func(*v1.SessionRequest) protoreflect.Message) {
			for j := 0; j < md.Fields().Len(); j++ {
				fd := md.Fields().Get(j)
				path := prefix + "." + string(fd.Name())
				switch {
				case fd.Kind() == protoreflect.StringKind:
					req := &v1.SessionRequest{}
					m := get(req)
					f(path, req, func(s string) {
						if fd.IsList() {
							l := m.Mutable(fd).List()
							l.Append(protoreflect.ValueOfString(s))
						} else {
							m.Set(fd, protoreflect.ValueOfString(s))
						}
					})
				case fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap():
					walk(path, fd.Message(), func(r *v1.SessionRequest) protoreflect.Message { return get(r).Mutable(fd).Message() })
				}
			}
		}
		walk(string(callFD.Name()), callFD.Message(), func(r *v1.SessionRequest) protoreflect.Message {
			return r.ProtoReflect().Mutable(callFD).Message()
		})
	}
}

// TestHostileStringsInEveryRequestField: a 1 MB string or invalid UTF-8
// in any string of any call is refused with E_INVALIDARG under the call's
// own ID, and the session goes on: the next call is answered as usual.
func TestHostileStringsInEveryRequestField(t *testing.T) {
	d := startDaemon(t, NewAccess(Rules{}, slog.New(slog.DiscardHandler)))
	r := openSession(t, dialRaw(t, d.socket))
	long := strings.Repeat("a", 1<<20)
	n := 0
	stringFields(func(path string, req *v1.SessionRequest, set func(string)) {
		n++
		set(long)
		r.id++
		req.Id = r.id
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		// A document of 1 MiB is within bounds, and this one is not XML.
		want := vsserr.InvalidArg
		if strings.HasSuffix(path, "_xml") {
			want = vsserr.CorruptXMLDocument
		}
		if resp := r.callRaw(req.Id, b); code(resp) != want {
			t.Errorf("%s of 1 MiB: %s %s, want %s", path, code(resp), resp.Status.GetMessage(), want)
		}
	})
	stringFields(func(path string, req *v1.SessionRequest, set func(string)) {
		set(badUTF8Mark)
		r.id++
		req.Id = r.id
		resp := r.callRaw(req.Id, withBadUTF8(t, req))
		if code(resp) != vsserr.InvalidArg || !strings.Contains(resp.Status.GetMessage(), "UTF-8") {
			t.Errorf("%s with invalid UTF-8: %s %q, want E_INVALIDARG", path, code(resp), resp.Status.GetMessage())
		}
	})
	if n < 40 {
		t.Fatalf("only %d string fields found: the walk is broken", n)
	}
	r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_InitializeForBackup{InitializeForBackup: &v1.InitializeForBackup{}}})
	// Unary calls likewise.
	cc := dialRaw(t, d.socket)
	_, err := listShadows(v1.NewAdminClient(cc), &v1.ListShadowsRequest{Volume: long})
	if got := vsserr.Code(wire.FromGRPC(err)); got != vsserr.InvalidArg {
		t.Errorf("ListShadows with a 1 MiB volume: %v", err)
	}
	// ListShadows streams its answer: the refusal ends the stream.
	st, err := cc.NewStream(context.Background(), &v1.Admin_ServiceDesc.Streams[0], v1.Admin_ListShadows_FullMethodName)
	if err == nil {
		if err = st.SendMsg(withBadUTF8(t, &v1.ListShadowsRequest{Volume: badUTF8Mark})); err == nil {
			st.CloseSend()
			err = st.RecvMsg(&v1.ListShadowsResponse{})
		}
	}
	if got := vsserr.Code(wire.FromGRPC(err)); got != vsserr.InvalidArg {
		t.Errorf("ListShadows with invalid UTF-8: %v", err)
	}
}

// TestHostileIDsAndPaths: identifiers that do not parse, that name
// nothing, or that belong to another session; volume paths that leave the
// volume through ".." or a symbolic link. Each gets its HRESULT and leaves
// the other session untouched.
func TestHostileIDsAndPaths(t *testing.T) {
	d := startDaemon(t, NewAccess(Rules{}, slog.New(slog.DiscardHandler)))
	cc := dial(t, d.socket)
	// Session A holds an auto-release snapshot and a finished async.
	a := openSession(t, cc)
	a.ok(&v1.SessionRequest{Call: &v1.SessionRequest_InitializeForBackup{InitializeForBackup: &v1.InitializeForBackup{}}})
	a.ok(&v1.SessionRequest{Call: &v1.SessionRequest_SetContext{SetContext: &v1.SetContext{Context: int32(vss.CtxFileShareBackup)}}})
	a.ok(&v1.SessionRequest{Call: &v1.SessionRequest_StartSnapshotSet{StartSnapshotSet: &v1.StartSnapshotSet{}}})
	snapA := a.ok(&v1.SessionRequest{Call: &v1.SessionRequest_AddToSnapshotSet{AddToSnapshotSet: &v1.AddToSnapshotSet{Volume: d.vol}}}).GetSnapshotId().Id
	doA := a.ok(&v1.SessionRequest{Call: &v1.SessionRequest_DoSnapshotSet{DoSnapshotSet: &v1.DoSnapshotSet{}}})
	a.waitOK(doA)
	asyncA := doA.GetAsync().AsyncId

	// Paths out of the volume: a directory beside it, reached with "..",
	// and a symbolic link inside it to that directory.
	outside, _ := filepath.EvalSymlinks(t.TempDir())
	if err := os.Symlink(outside, filepath.Join(d.vol, "link")); err != nil {
		t.Fatal(err)
	}
	dotdot := filepath.Join(d.vol, "sub") + "/../../" + filepath.Base(outside)
	if err := os.Rename(outside, filepath.Join(filepath.Dir(d.vol), filepath.Base(outside))); err != nil {
		// different parents: make the ".." path name a real sibling
		dotdot = d.vol + "/../" + filepath.Base(d.vol) + "-sibling"
		if err := os.Mkdir(filepath.Join(filepath.Dir(d.vol), filepath.Base(d.vol)+"-sibling"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(filepath.Join(filepath.Dir(d.vol), filepath.Base(d.vol)+"-sibling")) })
	}
	if err := os.MkdirAll(filepath.Join(d.vol, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}

	b := openSession(t, cc)
	b.ok(&v1.SessionRequest{Call: &v1.SessionRequest_InitializeForBackup{InitializeForBackup: &v1.InitializeForBackup{}}})
	b.ok(&v1.SessionRequest{Call: &v1.SessionRequest_SetContext{SetContext: &v1.SetContext{Context: int32(vss.CtxFileShareBackup)}}})
	b.ok(&v1.SessionRequest{Call: &v1.SessionRequest_StartSnapshotSet{StartSnapshotSet: &v1.StartSnapshotSet{}}})
	other := uuid.NewString()
	props := func(id string) *v1.SessionRequest {
		return &v1.SessionRequest{Call: &v1.SessionRequest_GetSnapshotProperties{GetSnapshotProperties: &v1.GetSnapshotProperties{SnapshotId: id}}}
	}
	add := func(vol, prov string) *v1.SessionRequest {
		return &v1.SessionRequest{Call: &v1.SessionRequest_AddToSnapshotSet{AddToSnapshotSet: &v1.AddToSnapshotSet{Volume: vol, ProviderId: prov}}}
	}
	del := func(id string, refuse bool) *v1.SessionRequest {
		return &v1.SessionRequest{Call: &v1.SessionRequest_DeleteSnapshots{DeleteSnapshots: &v1.DeleteSnapshots{SourceObjectId: id,
			SourceObjectType: int32(vss.ObjectSnapshot), RefuseInUse: refuse}}}
	}
	expose := func(id, pathFromRoot, where string) *v1.SessionRequest {
		return &v1.SessionRequest{Call: &v1.SessionRequest_ExposeSnapshot{ExposeSnapshot: &v1.ExposeSnapshot{SnapshotId: id,
			PathFromRoot: pathFromRoot, Attributes: uint32(vss.AttrExposedLocally), Expose: where}}}
	}
	for _, c := range []struct {
		name string
		req  *v1.SessionRequest
		want vsserr.HRESULT
	}{
		{"snapshot ID that does not parse", props("not-a-guid"), vsserr.InvalidArg},
		{"snapshot ID with a stray brace", props("{" + other), vsserr.InvalidArg},
		{"snapshot ID of 37 hex digits", props(strings.Repeat("a", 37)), vsserr.InvalidArg},
		{"GUID_NULL snapshot", props(""), vsserr.ObjectNotFound},
		{"unknown snapshot", props(other), vsserr.ObjectNotFound},
		{"another session's snapshot is administrative", props(snapA), vsserr.OK},
		{"delete: bad ID", del("zz", false), vsserr.InvalidArg},
		{"delete: unknown snapshot", del(other, false), vsserr.ObjectNotFound},
		{"delete another running session's snapshot if unused", del(snapA, true), vsserr.VolumeInUse},
		{"expose: bad ID", expose("zz", "", "/mnt"), vsserr.InvalidArg},
		{"expose: unknown snapshot", expose(other, "", "/mnt"), vsserr.ObjectNotFound},
		{"expose a subtree out of the snapshot", expose(snapA, "../../etc", "/mnt"), vsserr.InvalidArg},
		{"expose at a relative path", expose(snapA, "", "../mnt"), vsserr.InvalidArg},
		{"wait on another session's async", &v1.SessionRequest{Call: &v1.SessionRequest_Wait{Wait: &v1.Wait{AsyncId: asyncA + 1000}}}, vsserr.InvalidArg},
		{"query another session's async", &v1.SessionRequest{Call: &v1.SessionRequest_QueryStatus{QueryStatus: &v1.QueryStatus{AsyncId: asyncA}}}, vsserr.InvalidArg},
		{"cancel another session's async", &v1.SessionRequest{Call: &v1.SessionRequest_Cancel{Cancel: &v1.Cancel{AsyncId: asyncA}}}, vsserr.InvalidArg},
		{"provider ID that does not parse", add(d.vol, "fake"), vsserr.InvalidArg},
		{"unknown provider", add(d.vol, other), vsserr.ProviderNotRegistered},
		{"relative volume", add("vol", ""), vsserr.InvalidArg},
		{"volume that does not exist", add(d.vol+"/nothing/here", ""), vsserr.ObjectNotFound},
		{"volume left through ..", add(dotdot, ""), vsserr.VolumeNotSupported},
		{"volume left through a symbolic link", add(filepath.Join(d.vol, "link"), ""), vsserr.VolumeNotSupported},
		{"volume of PATH_MAX+1 bytes", add("/"+strings.Repeat("a", 4096), ""), vsserr.InvalidArg},
		{"revert status of a path out of the volume", &v1.SessionRequest{Call: &v1.SessionRequest_QueryRevertStatus{QueryRevertStatus: &v1.QueryRevertStatus{Volume: filepath.Join(d.vol, "link")}}}, vsserr.ObjectNotFound},
	} {
		resp := b.call(c.req)
		if got := code(resp); got != c.want {
			t.Errorf("%s: %s %q, want %s", c.name, got, resp.Status.GetMessage(), c.want)
		}
	}
	// Session A saw none of it: its snapshot is there, its async finished.
	if st := code(a.call(&v1.SessionRequest{Call: &v1.SessionRequest_QueryStatus{QueryStatus: &v1.QueryStatus{AsyncId: asyncA}}})); st != vsserr.OK {
		t.Errorf("A's QueryStatus: %s", st)
	}
	if st := code(a.call(props(snapA))); st != vsserr.OK {
		t.Errorf("A's snapshot: %s", st)
	}
	// The one volume that is the volume still is, ".." or not.
	if st := code(b.call(add(filepath.Join(d.vol, "sub", ".."), ""))); st != vsserr.OK {
		t.Errorf("the volume named through sub/..: %s", st)
	}
}
