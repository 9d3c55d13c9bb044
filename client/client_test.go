package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/client/clienttest"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, srv *clienttest.Server) (*client.Conn, *client.BackupComponents) {
	t.Helper()
	ctx := testCtx(t)
	conn, err := client.Dial(ctx, srv.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	bc, err := conn.NewBackupComponents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return conn, bc
}

// waitCall waits until the daemon has received a call of method (Wait,
// QueryStatus and Cancel count under their own names). It may run in a
// goroutine other than the test's: it reports with t.Error and returns
// false if the call never came.
func waitCall(t *testing.T, srv *clienttest.Server, method string) bool {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); !slices.Contains(srv.Calls(), method); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Errorf("the daemon never received %s; calls %v", method, srv.Calls())
			return false
		}
	}
	return true
}

func TestDialMissingSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.sock")
	start := time.Now()
	_, err := client.Dial(context.Background(), path)
	if err == nil {
		t.Fatal("Dial succeeded on a missing socket")
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("Dial took %v to fail", time.Since(start))
	}
	if !errors.Is(err, vsserr.Unexpected) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v: want VSS_E_UNEXPECTED naming the socket", err)
	}
	if !errors.Is(err, client.ErrUnreachable) || !strings.HasPrefix(err.Error(), "VSS_E_UNEXPECTED (0x80042302): ") {
		t.Errorf("error %v: want ErrUnreachable, the text unchanged", err)
	}
}

func TestDialStaleSocket(t *testing.T) {
	// A file that is not a listening socket (a daemon that died and left
	// it behind) must fail in Dial, not at the first call.
	path := filepath.Join(t.TempDir(), "stale.sock")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Dial(context.Background(), path); !errors.Is(err, vsserr.Unexpected) || !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("Dial on a stale socket: %v", err)
	}
}

func TestSocketPath(t *testing.T) {
	t.Setenv(client.SocketEnv, "")
	if got := client.SocketPath(""); got != client.DefaultSocket {
		t.Errorf("default: %q", got)
	}
	t.Setenv(client.SocketEnv, "/tmp/x.sock")
	if got := client.SocketPath(""); got != "/tmp/x.sock" {
		t.Errorf("env: %q", got)
	}
	if got := client.SocketPath("/a.sock"); got != "/a.sock" {
		t.Errorf("explicit: %q", got)
	}
}

func TestCallsAndResults(t *testing.T) {
	srv := clienttest.Start(t)
	_, bc := open(t, srv)
	ctx := testCtx(t)

	if err := bc.InitializeForBackup(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := bc.SetContext(ctx, vss.CtxFileShareBackup); err != nil {
		t.Fatal(err)
	}
	setID, err := bc.StartSnapshotSet(ctx)
	if err != nil || setID == uuid.Nil {
		t.Fatalf("StartSnapshotSet: %v %v", setID, err)
	}
	snapID, err := bc.AddToSnapshotSet(ctx, "/srv", uuid.Nil)
	if err != nil || snapID == uuid.Nil {
		t.Fatalf("AddToSnapshotSet: %v %v", snapID, err)
	}
	a, err := bc.DoSnapshotSet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if h, _, err := a.QueryStatus(ctx); err != nil || h != vsserr.AsyncFinished {
		t.Fatalf("QueryStatus: %v %v", h, err)
	}
	p, err := bc.GetSnapshotProperties(ctx, snapID)
	if err != nil || p.SnapshotID != snapID || p.SnapshotSetID != setID || p.OriginalVolume != "/srv" || p.Status != vss.SnapshotCreated {
		t.Fatalf("GetSnapshotProperties: %+v %v", p, err)
	}
	objs, _, err := bc.Query(ctx, uuid.Nil, vss.ObjectNone, vss.ObjectSnapshot)
	if err != nil || len(objs) != 1 || objs[0].Snapshot == nil || objs[0].Snapshot.SnapshotID != snapID {
		t.Fatalf("Query: %+v %v", objs, err)
	}
	if ok, err := bc.IsVolumeSupported(ctx, uuid.Nil, "/srv"); !ok || err != nil {
		t.Fatalf("IsVolumeSupported: %v %v", ok, err)
	}
	if name, err := bc.ExposeSnapshot(ctx, snapID, "", vss.AttrExposedLocally, "/mnt/x"); name != "/mnt/x" || err != nil {
		t.Fatalf("ExposeSnapshot: %q %v", name, err)
	}
	if n, non, err := bc.DeleteSnapshots(ctx, snapID, vss.ObjectSnapshot, false); n != 1 || non != uuid.Nil || err != nil {
		t.Fatalf("DeleteSnapshots: %d %v %v", n, non, err)
	}
	if id, err := bc.GetSessionID(ctx); id == uuid.Nil || err != nil {
		t.Fatalf("GetSessionID: %v %v", id, err)
	}
	rel, err := bc.Release(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Aborted || len(rel.DeletedSnapshots) != 1 || rel.DeletedSnapshots[0] != snapID {
		t.Fatalf("Released: %+v", rel)
	}
}

func TestErrorMapping(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) {
		s.Fail["PrepareForBackup"] = vsserr.BadState
		s.Async["DoSnapshotSet"] = clienttest.AsyncPlan{Result: vsserr.FlushWritesTimeout, Message: "fsfreeze /srv took too long"}
	})
	_, bc := open(t, srv)
	ctx := testCtx(t)

	_, err := bc.PrepareForBackup(ctx)
	if !errors.Is(err, vsserr.BadState) || vsserr.Code(err) != vsserr.BadState {
		t.Fatalf("PrepareForBackup: %v, want VSS_E_BAD_STATE", err)
	}
	if !strings.Contains(vsserr.Message(err), "fake lvssd fails PrepareForBackup") {
		t.Errorf("message lost: %q", vsserr.Message(err))
	}

	a, err := bc.DoSnapshotSet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Wait(ctx)
	if !errors.Is(err, vsserr.FlushWritesTimeout) || !strings.Contains(err.Error(), "fsfreeze /srv") {
		t.Fatalf("Wait: %v, want the operation's VSS_E_FLUSH_WRITES_TIMEOUT", err)
	}
	h, msg, err := a.WaitTimeout(ctx, 0)
	if h != vsserr.FlushWritesTimeout || err != nil || msg != "fsfreeze /srv took too long" {
		t.Fatalf("WaitTimeout: %v %q %v", h, msg, err)
	}
	if err := client.Outcome(h, msg); !errors.Is(err, vsserr.FlushWritesTimeout) {
		t.Fatalf("Outcome: %v", err)
	}

	// Index errors are the library's, with the spec's code.
	if _, _, err := bc.GetWriterMetadata(ctx, 0); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("GetWriterMetadata(0) with no writers: %v", err)
	}
	if _, err := bc.GetWriterStatus(ctx, -1); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("GetWriterStatus(-1): %v", err)
	}
}

func TestWriterListsAndDocuments(t *testing.T) {
	writerID, instanceID := uuid.New(), uuid.New()
	wmd := &document.WriterMetadata{
		Identity: document.Identity{WriterID: writerID, InstanceID: instanceID, FriendlyName: "files",
			Usage: vss.UsageUserData, Source: vss.SourceOther},
		RestoreMethod: document.RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WRENever},
		Components: []document.Component{{Type: vss.ComponentFileGroup, LogicalPath: "data", Name: "docs",
			Files: []document.FileDesc{{Path: "/srv/docs", Filespec: "*", Recursive: true}}}},
	}
	wx, err := wmd.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bcd := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull}
	if err := bcd.AddComponent(instanceID, writerID, "", 0, vss.ComponentFileGroup, "data", "docs"); err != nil {
		t.Fatal(err)
	}
	bx, err := bcd.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) {
		s.WMDs = []string{string(wx)}
		s.BCD = string(bx)
		s.WriterStatus = []*v1.WriterStatus{{InstanceId: instanceID.String(), WriterId: writerID.String(), Name: "files",
			State: int32(vss.WSFailedAtFreeze), Failure: uint32(vsserr.WriterErrorTimeout),
			ApplicationHresult: 0x80004005, ApplicationMessage: "flush took too long"}}
	})
	_, bc := open(t, srv)
	ctx := testCtx(t)

	if n, err := bc.GetWriterMetadataCount(ctx); n != 1 || err != nil {
		t.Fatalf("GetWriterMetadataCount: %d %v", n, err)
	}
	_, got, err := bc.GetWriterMetadata(ctx, 0)
	if err != nil || got.Identity.WriterID != writerID || len(got.Components) != 1 || got.Components[0].Name != "docs" {
		t.Fatalf("GetWriterMetadata: %+v %v", got, err)
	}
	ws, err := bc.GetWriterStatus(ctx, 0)
	if err != nil || ws.State != vss.WSFailedAtFreeze || ws.Failure != vsserr.WriterErrorTimeout ||
		ws.ApplicationHRESULT != vsserr.Fail || ws.ApplicationMessage != "flush took too long" || ws.WriterID != writerID {
		t.Fatalf("GetWriterStatus: %+v %v", ws, err)
	}
	if n, err := bc.GetWriterComponentsCount(ctx); n != 1 || err != nil {
		t.Fatalf("GetWriterComponentsCount: %d %v", n, err)
	}
	wc, err := bc.GetWriterComponents(ctx, 0)
	if err != nil || wc.InstanceID != instanceID || len(wc.Components) != 1 || wc.Components[0].LogicalPath != "data" {
		t.Fatalf("GetWriterComponents: %+v %v", wc, err)
	}
	if _, err := bc.GetWriterComponents(ctx, 1); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("GetWriterComponents(1): %v", err)
	}

	srv.Set(func(s *clienttest.Server) { s.WMDs = []string{"<WRITER_METADATA"} })
	if _, _, err := bc.GetWriterMetadata(ctx, 0); !errors.Is(err, vsserr.CorruptXMLDocument) {
		t.Fatalf("corrupt WMD: %v", err)
	}
}

// TestConcurrentWaitCancel is IVssAsync's use from two threads: Wait blocks
// in one goroutine while other calls, and finally Cancel, go through in
// another. The daemon answers Wait after the calls sent later, so this also
// tests that responses are routed by id, not by order.
func TestConcurrentWaitCancel(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) { s.Async["GatherWriterMetadata"] = clienttest.AsyncPlan{Hold: true} })
	_, bc := open(t, srv)
	ctx := testCtx(t)

	a, err := bc.GatherWriterMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- a.Wait(ctx) }()

	// Calls overtaking the pending Wait get their own answers.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := bc.GetSessionID(ctx); err != nil {
				t.Error(err)
			}
			if h, _, err := a.QueryStatus(ctx); h != vsserr.AsyncPending || err != nil {
				t.Errorf("QueryStatus while held: %v %v", h, err)
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-waitErr:
		t.Fatalf("Wait returned before Cancel: %v", err)
	default:
	}
	if h, err := a.Cancel(ctx); h != vsserr.OK || err != nil {
		t.Fatalf("Cancel: %v %v", h, err)
	}
	err = <-waitErr
	if !errors.Is(err, vsserr.AsyncCancelled) {
		t.Fatalf("Wait after Cancel: %v, want VSS_S_ASYNC_CANCELLED", err)
	}
	if h, err := a.Cancel(ctx); h != vsserr.AsyncCancelled || err != nil {
		t.Fatalf("second Cancel: %v %v", h, err)
	}
}

func TestWaitTimeoutPending(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) { s.Async["PrepareForBackup"] = clienttest.AsyncPlan{Hold: true} })
	_, bc := open(t, srv)
	ctx := testCtx(t)
	a, err := bc.PrepareForBackup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h, _, err := a.WaitTimeout(ctx, 20*time.Millisecond); h != vsserr.AsyncPending || err != nil {
		t.Fatalf("WaitTimeout: %v %v", h, err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := a.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past the deadline: %v", err)
	}
}

func TestStreamBreak(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) {
		s.Async["GatherWriterMetadata"] = clienttest.AsyncPlan{Hold: true}
		s.BreakOn = "DoSnapshotSet"
	})
	_, bc := open(t, srv)
	ctx := testCtx(t)

	a, err := bc.GatherWriterMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- a.Wait(ctx) }()
	if !waitCall(t, srv, "Wait") { // the Wait is pending in the daemon when the stream breaks
		t.FailNow()
	}

	_, err = bc.DoSnapshotSet(ctx)
	if !errors.Is(err, vsserr.Unexpected) || !strings.Contains(err.Error(), "broke the stream") {
		t.Fatalf("call on a breaking stream: %v", err)
	}
	if err := <-waitErr; !errors.Is(err, vsserr.Unexpected) {
		t.Fatalf("pending Wait on a broken stream: %v", err)
	}
	if err := bc.InitializeForBackup(ctx, ""); !errors.Is(err, vsserr.Unexpected) {
		t.Fatalf("later call: %v", err)
	}
	if _, err := bc.Release(ctx); !errors.Is(err, vsserr.Unexpected) {
		t.Fatalf("Release of a broken session: %v", err)
	}
}

func TestReleaseIdempotent(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) { s.ShutdownWriters = []string{"5b1e8f8a-61c4-4c36-9a4f-6cf8e4b0f0a1"} })
	_, bc := open(t, srv)
	ctx := testCtx(t)
	if _, err := bc.StartSnapshotSet(ctx); err != nil {
		t.Fatal(err)
	}
	r1, err := bc.Release(ctx)
	if err != nil || !r1.Aborted || len(r1.ShutdownWriters) != 1 {
		t.Fatalf("Release: %+v %v", r1, err)
	}
	r2, err := bc.Release(ctx)
	if err != nil || !r2.Aborted || len(r2.ShutdownWriters) != 1 {
		t.Fatalf("second Release: %+v %v", r2, err)
	}
	if err := bc.AbortBackup(ctx); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("call after Release: %v, want VSS_E_BAD_STATE", err)
	}
	if n := len(srv.Releases()); n != 1 {
		t.Fatalf("%d releases, want 1", n)
	}
}

func TestRunEndPaths(t *testing.T) {
	boom := errors.New("copy failed")
	tests := []struct {
		name     string
		setup    func(s *clienttest.Server)
		fn       func(ctx context.Context, bc *client.BackupComponents) error
		wantErr  error
		wantTail []string // the calls Run made after fn, in order
	}{{
		name: "success with writers: BackupComplete",
		fn: func(ctx context.Context, bc *client.BackupComponents) error {
			if _, err := bc.StartSnapshotSet(ctx); err != nil {
				return err
			}
			a, err := bc.DoSnapshotSet(ctx)
			if err != nil {
				return err
			}
			return a.Wait(ctx)
		},
		wantTail: []string{"DoSnapshotSet", "Wait", "BackupComplete", "Wait"},
	}, {
		name: "success without writers: only Release",
		fn: func(ctx context.Context, bc *client.BackupComponents) error {
			if err := bc.SetContext(ctx, vss.CtxFileShareBackup); err != nil {
				return err
			}
			if _, err := bc.StartSnapshotSet(ctx); err != nil {
				return err
			}
			a, err := bc.DoSnapshotSet(ctx)
			if err != nil {
				return err
			}
			return a.Wait(ctx)
		},
		wantTail: []string{"DoSnapshotSet", "Wait"},
	}, {
		name: "creation failed: AbortBackup",
		setup: func(s *clienttest.Server) {
			s.Async["DoSnapshotSet"] = clienttest.AsyncPlan{Result: vsserr.ProviderVeto}
		},
		fn: func(ctx context.Context, bc *client.BackupComponents) error {
			if _, err := bc.StartSnapshotSet(ctx); err != nil {
				return err
			}
			a, err := bc.DoSnapshotSet(ctx)
			if err != nil {
				return err
			}
			a.Wait(ctx) // the requester looks at the error and returns nil
			return nil
		},
		wantTail: []string{"DoSnapshotSet", "Wait", "AbortBackup"},
	}, {
		name: "fn error after the snapshot: AbortBackup, no BackupComplete",
		fn: func(ctx context.Context, bc *client.BackupComponents) error {
			bc.StartSnapshotSet(ctx)
			a, _ := bc.DoSnapshotSet(ctx)
			a.Wait(ctx)
			return boom
		},
		wantErr:  boom,
		wantTail: []string{"DoSnapshotSet", "Wait", "AbortBackup"},
	}, {
		name: "DoSnapshotSet not waited: Run waits, then completes",
		fn: func(ctx context.Context, bc *client.BackupComponents) error {
			bc.StartSnapshotSet(ctx)
			_, err := bc.DoSnapshotSet(ctx)
			return err
		},
		wantTail: []string{"DoSnapshotSet", "Wait", "BackupComplete", "Wait"},
	}, {
		name: "fn called BackupComplete: not again",
		fn: func(ctx context.Context, bc *client.BackupComponents) error {
			bc.StartSnapshotSet(ctx)
			a, _ := bc.DoSnapshotSet(ctx)
			a.Wait(ctx)
			a, _ = bc.BackupComplete(ctx)
			return a.Wait(ctx)
		},
		wantTail: []string{"Wait", "BackupComplete", "Wait"},
	}, {
		name: "no snapshot set: nothing to end",
		fn: func(ctx context.Context, bc *client.BackupComponents) error {
			return bc.InitializeForBackup(ctx, "")
		},
		wantTail: []string{"InitializeForBackup"},
	}, {
		name: "cleanup error is returned when fn succeeded",
		setup: func(s *clienttest.Server) {
			s.Async["BackupComplete"] = clienttest.AsyncPlan{Result: vsserr.UnexpectedWriterError}
		},
		fn: func(ctx context.Context, bc *client.BackupComponents) error {
			bc.StartSnapshotSet(ctx)
			a, _ := bc.DoSnapshotSet(ctx)
			return a.Wait(ctx)
		},
		wantErr:  vsserr.UnexpectedWriterError,
		wantTail: []string{"DoSnapshotSet", "Wait", "BackupComplete", "Wait"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := clienttest.Start(t)
			if tc.setup != nil {
				srv.Set(tc.setup)
			}
			err := client.Run(testCtx(t), srv.Socket, tc.fn)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Run: %v, want %v", err, tc.wantErr)
			}
			calls := srv.Calls()
			if len(calls) < len(tc.wantTail) || !slices.Equal(calls[len(calls)-len(tc.wantTail):], tc.wantTail) {
				t.Fatalf("calls %v, want them to end with %v", calls, tc.wantTail)
			}
			if n := len(srv.Releases()); n != 1 {
				t.Fatalf("%d releases, want 1", n)
			}
		})
	}
}

func TestAdmin(t *testing.T) {
	srv := clienttest.Start(t)
	wid, iid, sid := uuid.New(), uuid.New(), uuid.New()
	srv.Set(func(s *clienttest.Server) {
		s.Writers = []*v1.WriterInfo{{InstanceId: iid.String(), WriterId: wid.String(), Name: "pg", Level: 2,
			FreezeTimeoutMs: 60000, LastSessionId: sid.String(), State: 1, Pid: 42, Uid: 7}}
		s.Providers = []*v1.ProviderProp{{ProviderId: uuid.NewString(), Name: "btrfs", Type: 2}}
		s.Events = []*v1.LogEvent{{Seq: 1, Message: "a"}, {Seq: 2, Message: "b"}, {Seq: 3, Message: "c"}}
	})
	conn, _ := open(t, srv)
	ctx := testCtx(t)
	ws, err := conn.ListWriters(ctx)
	if err != nil || len(ws) != 1 || ws[0].WriterID != wid || ws[0].LastSessionID != sid ||
		ws[0].FreezeTimeout != time.Minute || ws[0].State != vss.WSStable || ws[0].Level != vss.LevelBackEnd {
		t.Fatalf("ListWriters: %+v %v", ws, err)
	}
	if md, err := ws[0].Metadata(); md != nil || err != nil {
		t.Fatalf("Metadata of a writer without WMD: %v %v", md, err)
	}
	ps, err := conn.ListProviders(ctx)
	if err != nil || len(ps) != 1 || ps[0].Type != vss.ProvSoftware {
		t.Fatalf("ListProviders: %+v %v", ps, err)
	}
	ev, err := conn.ListEvents(ctx, 1, 1)
	if err != nil || len(ev) != 1 || ev[0].Message != "b" {
		t.Fatalf("ListEvents: %+v %v", ev, err)
	}
}

func TestContextEndsCallNotSession(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) { s.Async["DoSnapshotSet"] = clienttest.AsyncPlan{Hold: true} })
	conn, err := client.Dial(testCtx(t), srv.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	openCtx, cancel := context.WithCancel(context.Background())
	bc, err := conn.NewBackupComponents(openCtx)
	if err != nil {
		t.Fatal(err)
	}
	cancel() // the session must outlive the context it was opened with
	ctx := testCtx(t)
	a, err := bc.DoSnapshotSet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	// Cancel once the Wait is pending in the daemon: its answer then comes
	// late, to a call that is no longer there.
	go func() { defer wcancel(); waitCall(t, srv, "Wait") }()
	if err := a.Wait(wctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v", err)
	}
	// The abandoned Wait's late answer must not confuse later calls.
	if h, err := a.Cancel(ctx); h != vsserr.OK || err != nil {
		t.Fatalf("Cancel: %v %v", h, err)
	}
	if _, err := bc.GetSessionID(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// An interrupted requester (Run's ctx ended) cancels its pending
// DoSnapshotSet instead of waiting for it, then aborts.
func TestRunCancelsPendingCreationWhenInterrupted(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) { s.Async["DoSnapshotSet"] = clienttest.AsyncPlan{Hold: true} })
	ctx, cancel := context.WithCancel(testCtx(t))
	err := client.Run(ctx, srv.Socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if _, err := bc.StartSnapshotSet(ctx); err != nil {
			return err
		}
		a, err := bc.DoSnapshotSet(ctx)
		if err != nil {
			return err
		}
		cancel() // SIGINT
		return a.Wait(ctx)
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	calls := srv.Calls()
	i := slices.Index(calls, "DoSnapshotSet")
	if i < 0 || !slices.Contains(calls[i:], "Cancel") || calls[len(calls)-1] != "AbortBackup" {
		t.Fatalf("calls %v: want DoSnapshotSet, Cancel, ..., AbortBackup", calls)
	}
}
