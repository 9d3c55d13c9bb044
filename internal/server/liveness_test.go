package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// rawWriter is a writer on the wire protocol without the SDK, so a test
// can make it misbehave exactly.
type rawWriter struct {
	st       v1.Writer_SubscribeClient
	instance string
}

// subscribe sends Hello and requires Welcome as the first message.
func subscribe(ctx context.Context, cc *grpc.ClientConn, name string) (*rawWriter, error) {
	st, err := v1.NewWriterClient(cc).Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	class := uuid.NewSHA1(uuid.NameSpaceOID, []byte(name))
	if err := st.Send(&v1.WriterMessage{Msg: &v1.WriterMessage_Hello{Hello: &v1.Hello{WriterId: class.String(), Name: name,
		Level: int32(vss.LevelFrontEnd)}}}); err != nil {
		return nil, err
	}
	first, err := st.Recv()
	if err != nil {
		return nil, err
	}
	wel := first.GetWelcome()
	if wel == nil {
		return nil, fmt.Errorf("writer %s: first message is %T, not Welcome", name, first.GetMsg())
	}
	return &rawWriter{st: st, instance: wel.InstanceId}, nil
}

// serve answers every event with success (Identify with a minimal WMD)
// until the stream ends.
func (w *rawWriter) serve(name string) error {
	for {
		m, err := w.st.Recv()
		if err != nil {
			return err
		}
		ev := m.GetEvent()
		if ev == nil {
			return fmt.Errorf("unexpected %T after Welcome", m.GetMsg())
		}
		r := &v1.EventResult{Id: ev.Id}
		if ev.Type == v1.EventType(coordinator.EvIdentify) {
			md := &document.WriterMetadata{Version: "1.2", Identity: document.Identity{FriendlyName: name,
				Usage: vss.UsageUserData, Source: vss.SourceOther},
				RestoreMethod: document.RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WRENever}}
			x, err := md.Marshal()
			if err != nil {
				return err
			}
			r.WmdXml = string(x)
		}
		if err := w.st.Send(&v1.WriterMessage{Msg: &v1.WriterMessage_Result{Result: r}}); err != nil {
			return err
		}
	}
}

func listed(d *daemon, instance string) bool {
	for _, w := range d.c.ListWriters() {
		if w.InstanceID.String() == instance {
			return true
		}
	}
	return false
}

// gather runs one GatherWriterMetadata session to its end.
func gather(t *testing.T, d *daemon) {
	t.Helper()
	s := d.c.NewSession(coordinator.Peer{})
	defer s.Release(context.Background())
	if err := s.InitializeForBackup(""); err != nil {
		t.Error(err)
		return
	}
	a, err := s.GatherWriterMetadata()
	if err != nil {
		t.Error(err)
		return
	}
	if st, msg := a.Wait(context.Background(), time.Minute); st != vsserr.AsyncFinished {
		t.Errorf("GatherWriterMetadata ended %s: %s", st, msg)
	}
}

// TestSubscribeDuringGathers: Welcome is the first message every writer
// gets, even when events to all writers are being sent while it
// subscribes (it was registered before its Welcome went out, so an
// Identify could overtake it).
func TestSubscribeDuringGathers(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	d := startDaemon(t, NewAccess(Rules{}, slog.New(slog.DiscardHandler)))
	var conns []*grpc.ClientConn
	for range 8 {
		conns = append(conns, dial(t, d.socket))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan struct{})
	var gathers sync.WaitGroup
	gathers.Add(1)
	go func() {
		defer gathers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			gather(t, d)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("w%04d", i)
			w, err := subscribe(ctx, conns[i%len(conns)], name)
			if err != nil {
				errs <- err
				return
			}
			go w.serve(name)
		}()
	}
	wg.Wait()
	close(stop)
	gathers.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed < 5 {
			t.Error(err)
		}
		failed++
	}
	if failed > 0 {
		t.Fatalf("%d of %d writers failed to subscribe", failed, n)
	}
	if got := len(d.c.ListWriters()); got != n {
		t.Fatalf("%d writers listed, want %d", got, n)
	}
}

// TestWriterThatStopsReadingIsEnded: a writer that reads its Welcome and
// then nothing more fails the event at its deadline, its stream is ended
// (so it never holds anyone up again), and it can subscribe again.
func TestWriterThatStopsReadingIsEnded(t *testing.T) {
	d := startDaemonWith(t, NewAccess(Rules{}, slog.New(slog.DiscardHandler)), func(o *coordinator.Options) {
		o.Timeouts.Identify = 300 * time.Millisecond
	})
	cc := dial(t, d.socket)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := subscribe(ctx, cc, "deaf")
	if err != nil {
		t.Fatal(err)
	}
	// The writer reads nothing: the Identify lvssd sends at subscription
	// goes unanswered. The stream must end at that event's deadline.
	s := d.c.NewSession(coordinator.Peer{})
	defer s.Release(context.Background())
	if err := s.InitializeForBackup(""); err != nil {
		t.Fatal(err)
	}
	a, err := s.GatherWriterMetadata()
	if err != nil {
		t.Fatal(err)
	}
	if st, msg := a.Wait(context.Background(), 20*time.Second); st != vsserr.AsyncFinished {
		t.Fatalf("GatherWriterMetadata ended %s: %s", st, msg)
	}
	var end error
	for {
		if _, end = w.st.Recv(); end != nil {
			break
		}
	}
	if code := vsserr.Code(wire.FromGRPC(end)); code != vsserr.WriterNotResponding {
		t.Fatalf("the stream ended with %v (%s), want VSS_E_WRITER_NOT_RESPONDING", end, code)
	}
	if listed(d, w.instance) {
		t.Fatal("an ended writer is still listed")
	}
	again, err := subscribe(ctx, cc, "deaf")
	if err != nil {
		t.Fatalf("subscribing again: %v", err)
	}
	if again.instance == w.instance {
		t.Fatal("a new subscription must be a new instance")
	}
}

// TestRequesterThatStopsReadingIsReleased: a requester that holds the
// creation lock and stops reading its responses loses its session, and so
// the lock, once a response has waited timeouts.requester_send.
func TestRequesterThatStopsReadingIsReleased(t *testing.T) {
	d := startDaemonWith(t, NewAccess(Rules{}, slog.New(slog.DiscardHandler)), func(o *coordinator.Options) {
		o.Timeouts.RequesterSend = 300 * time.Millisecond
	})
	cc := dial(t, d.socket)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := v1.NewRequesterClient(cc).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawSession{t: t, st: st}
	r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_InitializeForBackup{InitializeForBackup: &v1.InitializeForBackup{}}})
	r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_SetContext{SetContext: &v1.SetContext{Context: int32(vss.CtxFileShareBackup)}}})
	r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_StartSnapshotSet{StartSnapshotSet: &v1.StartSnapshotSet{}}})

	// Another session cannot start a set while the first holds the lock.
	other := d.c.NewSession(coordinator.Peer{})
	defer other.Release(context.Background())
	if err := other.InitializeForBackup(""); err != nil {
		t.Fatal(err)
	}
	if err := other.SetContext(vss.CtxFileShareBackup); err != nil {
		t.Fatal(err)
	}
	if _, err := other.StartSnapshotSet(); !errors.Is(err, vsserr.SnapshotSetInProgress) {
		t.Fatalf("StartSnapshotSet while another session creates: %v", err)
	}

	// The first requester keeps calling and never reads an answer. Its
	// responses fill the stream's flow-control window, then its queue.
	flooded := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := st.Send(&v1.SessionRequest{Id: uint64(100 + i), Call: &v1.SessionRequest_GetSessionId{GetSessionId: &v1.GetSessionId{}}}); err != nil {
				flooded <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := other.StartSnapshotSet()
		if err == nil {
			break
		}
		if !errors.Is(err, vsserr.SnapshotSetInProgress) {
			t.Fatalf("StartSnapshotSet: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a requester that stopped reading kept the creation lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-flooded
}
