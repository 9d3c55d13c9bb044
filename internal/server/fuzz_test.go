package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/fake"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// FuzzSessionCalls feeds a requester session whatever calls the bytes
// decode to — any method, any arguments, in any order — through the
// server's dispatch, against a real coordinator with a fake provider and a
// real catalog. Every call must be answered with a status, and garbage is
// the caller's mistake: never VSS_E_UNEXPECTED, which says lvssd itself
// failed. The input is a sequence of length-prefixed SessionRequest
// messages (one length byte each). Fuzzing makes sessions faster than
// the event log's writer can store their entries; the log drops what does
// not fit rather than making the callers wait (L60).
func FuzzSessionCalls(f *testing.F) {
	dir := f.TempDir()
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		f.Fatal(err)
	}
	vol, _ := filepath.EvalSymlinks(f.TempDir())
	c, err := coordinator.New(context.Background(), coordinator.Options{Catalog: cat, Providers: provider.NewRegistry(fake.New(vol))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close(context.Background()); cat.Close() })
	h := &requester{s: New(c, nil, slog.New(slog.DiscardHandler))}

	seq := func(reqs ...*v1.SessionRequest) []byte {
		var b []byte
		for _, r := range reqs {
			m, err := proto.Marshal(r)
			if err != nil || len(m) > 255 {
				f.Fatalf("seed: %v (%d bytes)", err, len(m))
			}
			b = append(append(b, byte(len(m))), m...)
		}
		return b
	}
	f.Add(seq(
		&v1.SessionRequest{Id: 1, Call: &v1.SessionRequest_InitializeForBackup{InitializeForBackup: &v1.InitializeForBackup{}}},
		&v1.SessionRequest{Id: 2, Call: &v1.SessionRequest_SetBackupState{SetBackupState: &v1.SetBackupState{BackupType: int32(vss.BackupFull)}}},
		&v1.SessionRequest{Id: 3, Call: &v1.SessionRequest_GatherWriterMetadata{GatherWriterMetadata: &v1.GatherWriterMetadata{}}},
		&v1.SessionRequest{Id: 4, Call: &v1.SessionRequest_StartSnapshotSet{StartSnapshotSet: &v1.StartSnapshotSet{}}},
		&v1.SessionRequest{Id: 5, Call: &v1.SessionRequest_AddToSnapshotSet{AddToSnapshotSet: &v1.AddToSnapshotSet{Volume: vol}}},
		&v1.SessionRequest{Id: 6, Call: &v1.SessionRequest_DoSnapshotSet{DoSnapshotSet: &v1.DoSnapshotSet{}}},
	))
	f.Add(seq(
		&v1.SessionRequest{Id: 1, Call: &v1.SessionRequest_AddToSnapshotSet{AddToSnapshotSet: &v1.AddToSnapshotSet{Volume: "/nonexistent", ProviderId: "not a guid"}}},
	))
	f.Fuzz(func(t *testing.T, data []byte) {
		sess := c.NewSession(coordinator.Peer{})
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sess.Release(ctx)
		}()
		for len(data) > 0 {
			n := min(int(data[0]), len(data)-1)
			msg := data[1 : 1+n]
			data = data[1+n:]
			var req v1.SessionRequest
			if proto.Unmarshal(msg, &req) != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			resp := h.dispatch(ctx, sess, &req)
			cancel()
			if resp.GetStatus() == nil {
				t.Fatalf("%v: answered without a status", &req)
			}
			if code := vsserr.HRESULT(resp.GetStatus().GetHresult()); code == vsserr.Unexpected {
				t.Fatalf("%v: VSS_E_UNEXPECTED: %s", &req, resp.GetStatus().GetMessage())
			}
		}
	})
}

// FuzzWriterStream feeds a writer's stream, over lvssd's real socket and
// server, whatever messages the bytes decode to: Hellos with any identity,
// answers to events it was sent or not, messages that do not decode
// (each after its length in two bytes, big-endian, sent as they are). lvssd must
// end or keep the stream with an lvss status, never VSS_E_UNEXPECTED or a
// bare transport error, never panic, and forget the writer once its
// stream is gone.
func FuzzWriterStream(f *testing.F) {
	d := startDaemonWith(f, NewAccess(Rules{}, slog.New(slog.DiscardHandler)), func(o *coordinator.Options) {
		o.Timeouts.Identify = 2 * time.Second
	})
	cc := dialRaw(f, d.socket)
	seq := func(msgs ...[]byte) []byte {
		var b []byte
		for _, m := range msgs {
			b = append(append(b, byte(len(m)>>8), byte(len(m))), m...)
		}
		return b
	}
	enc := func(m *v1.WriterMessage) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	hello := func(name string) []byte {
		return enc(&v1.WriterMessage{Msg: &v1.WriterMessage_Hello{Hello: &v1.Hello{WriterId: "6c1b5a1e-0f4e-4c47-9d0e-0000000000aa", Name: name}}})
	}
	result := func(id uint64, failure vsserr.HRESULT, wmd string) []byte {
		return enc(&v1.WriterMessage{Msg: &v1.WriterMessage_Result{Result: &v1.EventResult{Id: id, Failure: uint32(failure), WmdXml: wmd}}})
	}
	small := `<WRITER_METADATA xmlns="x-schema:#VssWriterMetadataInfo" version="1.2"><IDENTIFICATION writerId="6c1b5a1e-0f4e-4c47-9d0e-0000000000aa" instanceId="6c1b5a1e-0f4e-4c47-9d0e-0000000000bb" friendlyName="f" usage="USER_DATA" dataSource="OTHER"/></WRITER_METADATA>`
	f.Add(seq(hello("w"), result(1, 0, small)))
	f.Add(seq(hello("w"), result(1, vsserr.WriterErrorRetryable, ""), result(1, 0, small), result(99, 0, small)))
	f.Add(seq(result(1, 0, small)))
	f.Add(seq(hello("w"), result(1, 0, "<not xml")))
	f.Add(seq(hello("w"), bytes.Replace(result(1, 0, small+"@@MARK@@"), []byte(badUTF8Mark), []byte("\xff\xfe@MARK@"), 1)))
	f.Add(seq(bytes.Replace(hello(badUTF8Mark), []byte(badUTF8Mark), []byte("\xff\xfe@MARK@"), 1)))
	f.Add(seq([]byte{0x12, 0xff}))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := v1.NewWriterClient(cc).Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for len(data) > 1 {
			n := min(int(data[0])<<8|int(data[1]), len(data)-2)
			if st.SendMsg(rawMsg(data[2:2+n])) != nil {
				break // lvssd ended the stream: Recv says why
			}
			data = data[2+n:]
		}
		_ = st.CloseSend()
		for {
			_, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				if code := vsserr.Code(wire.FromGRPC(err)); code == vsserr.Unexpected {
					t.Fatalf("stream ended with %v", err)
				}
				break
			}
		}
		for deadline := time.Now().Add(20 * time.Second); len(d.c.ListWriters()) != 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("writers still subscribed after their stream ended: %+v", d.c.ListWriters())
			}
		}
	})
}
