package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/coordinator"
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
