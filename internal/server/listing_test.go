package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vsserr"
)

// ListShadows streams a long listing in batches of at most shadowBatch,
// the whole of it in the catalog's order; a page (limit, after) is that
// part of it; after a snapshot that is gone is VSS_E_OBJECT_NOT_FOUND.
func TestListShadowsStreamsInBatches(t *testing.T) {
	const n = 2*shadowBatch + 88
	d := startDaemon(t, NewAccess(Rules{}, slog.New(slog.DiscardHandler)))
	fillShadows(t, d.cat, d.vol, n)
	want, err := d.cat.ListSnapshots(catalog.Filter{})
	if err != nil || len(want) != n {
		t.Fatalf("catalog: %d, %v", len(want), err)
	}
	adm := v1.NewAdminClient(dial(t, d.socket))
	read := func(req *v1.ListShadowsRequest) (ids []string, batches int, err error) {
		st, err := adm.ListShadows(context.Background(), req)
		if err != nil {
			return nil, 0, err
		}
		for {
			resp, err := st.Recv()
			if errors.Is(err, io.EOF) {
				return ids, batches, nil
			}
			if err != nil {
				return ids, batches, err
			}
			if len(resp.Snapshots) == 0 || len(resp.Snapshots) > shadowBatch {
				t.Errorf("a batch of %d snapshots", len(resp.Snapshots))
			}
			batches++
			for _, p := range resp.Snapshots {
				ids = append(ids, p.SnapshotId)
			}
		}
	}
	same := func(what string, got []string, want []catalog.Snapshot) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d snapshots, want %d", what, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i].ID.String() {
				t.Fatalf("%s: #%d is %s, want %s", what, i, got[i], want[i].ID)
			}
		}
	}
	got, batches, err := read(&v1.ListShadowsRequest{})
	if err != nil || batches != 3 {
		t.Fatalf("whole listing: %d batches, %v", batches, err)
	}
	same("whole listing", got, want)
	got, _, err = read(&v1.ListShadowsRequest{Limit: 300})
	if err != nil {
		t.Fatal(err)
	}
	same("first 300", got, want[:300])
	got, _, err = read(&v1.ListShadowsRequest{AfterSnapshotId: want[299].ID.String(), Limit: 300})
	if err != nil {
		t.Fatal(err)
	}
	same("next 300", got, want[300:])
	got, batches, err = read(&v1.ListShadowsRequest{AfterSnapshotId: want[n-1].ID.String()})
	if err != nil || len(got) != 0 || batches != 0 {
		t.Fatalf("after the last: %d in %d batches, %v", len(got), batches, err)
	}
	if err := d.cat.DeleteSnapshot(want[10].ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := read(&v1.ListShadowsRequest{AfterSnapshotId: want[10].ID.String()}); !errors.Is(wire.FromGRPC(err), vsserr.ObjectNotFound) {
		t.Errorf("after a deleted snapshot: %v", err)
	}
	if _, _, err := read(&v1.ListShadowsRequest{AfterSnapshotId: "not-a-guid"}); !errors.Is(wire.FromGRPC(err), vsserr.InvalidArg) {
		t.Errorf("after a bad GUID: %v", err)
	}
}

// A client that opens a listing and stops reading holds one batch of
// lvssd's memory until timeouts.requester_send, then its stream is ended
// and the event log says so (L31, as for a requester).
func TestListShadowsEndsAReaderThatStops(t *testing.T) {
	const n = 3000 // about 1 MB: far more than the stream's window
	d := startDaemonWith(t, NewAccess(Rules{}, slog.New(slog.DiscardHandler)), func(o *coordinator.Options) {
		o.Timeouts.RequesterSend = 300 * time.Millisecond
	})
	fillShadows(t, d.cat, d.vol, n)
	// A fixed 64 KiB window (no window growth): lvssd's sends block once
	// it is full.
	cc, err := grpc.NewClient("unix://"+d.socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := v1.NewAdminClient(cc).ListShadows(ctx, &v1.ListShadowsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !endedByLvssd(t, d) {
		if time.Now().After(deadline) {
			t.Fatal("a listing nobody reads was not ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := 0
	for {
		resp, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || got >= n {
				t.Fatalf("the listing ended normally (%d snapshots, %v)", got, err)
			}
			break
		}
		got += len(resp.Snapshots)
	}
}

func endedByLvssd(t *testing.T, d *daemon) bool {
	t.Helper()
	evs, _, err := d.c.QueryEvents(coordinator.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Message == "snapshot listing stream ended by lvssd" {
			return true
		}
	}
	return false
}

// A client that goes away in the middle of a listing (`lvss list shadows
// | head`) ends it without a warning in the event log.
func TestListShadowsClientThatLeaves(t *testing.T) {
	d := startDaemon(t, NewAccess(Rules{}, slog.New(slog.DiscardHandler)))
	fillShadows(t, d.cat, d.vol, 3*shadowBatch)
	ctx, cancel := context.WithCancel(context.Background())
	st, err := v1.NewAdminClient(dial(t, d.socket)).ListShadows(ctx, &v1.ListShadowsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	// lvssd's handler has returned once a new listing is served whole
	// after it (they do not wait on each other, so this only bounds the
	// wait); the event log then must not hold the warning.
	if got, err := listShadows(v1.NewAdminClient(dial(t, d.socket)), &v1.ListShadowsRequest{Limit: 1}); err != nil || len(got) != 1 {
		t.Fatalf("a listing after: %d, %v", len(got), err)
	}
	d.c.FlushEvents()
	if endedByLvssd(t, d) {
		t.Error("a client that left was logged as a stream lvssd ended")
	}
}
