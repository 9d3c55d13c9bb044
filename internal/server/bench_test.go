package server

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/provider/fake"
	"github.com/lvss/lvss/vss"
)

// fillShadows records n persistent one-snapshot sets of vol, an hour
// apart, as n creations through the fake provider would have.
func fillShadows(b testing.TB, cat *catalog.DB, vol string, n int) {
	b.Helper()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i += 1000 {
		var snaps []catalog.Snapshot
		for j := i; j < min(n, i+1000); j++ {
			id := uuid.New()
			snaps = append(snaps, catalog.Snapshot{ID: id, SetID: uuid.New(), SessionID: uuid.New(), SnapshotsCount: 1,
				OriginalVolume: vol, DevicePath: filepath.Join(vol, ".lvss-snapshots", id.String()), ProviderID: fake.ID,
				ProviderName: "fake", ProviderHandle: id.String(), Attributes: 0x2005d, Context: int32(vss.CtxClientAccessible),
				Created: t0.Add(time.Duration(j) * time.Hour), OriginatingMachine: "host", ServiceMachine: "host",
				Consistency: "crash", ConsistencyReason: "writerless context VSS_CTX_CLIENT_ACCESSIBLE: no application was frozen"})
		}
		if err := cat.PutSnapshots(snaps...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListShadows is `lvss list shadows`'s call with 10,000
// snapshots in the catalog: lvssd reads them in pages and streams them
// over its socket, the client decodes every batch (issue 14: the whole
// listing, CLI included, within 100 ms).
func BenchmarkListShadows(b *testing.B) {
	const n = 10_000
	d := startDaemon(b, NewAccess(Rules{}, nil))
	fillShadows(b, d.cat, d.vol, n)
	ctx := context.Background()
	adm := v1.NewAdminClient(dial(b, d.socket))
	for b.Loop() {
		got := 0
		st, err := adm.ListShadows(ctx, &v1.ListShadowsRequest{})
		for err == nil {
			var batch *v1.ListShadowsResponse
			if batch, err = st.Recv(); err == nil {
				got += len(batch.GetSnapshots())
			}
		}
		if !errors.Is(err, io.EOF) || got != n {
			b.Fatalf("listed %d of %d: %v", got, n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/snapshot")
}

// BenchmarkListShadowsPage is one page of 100 from the middle of 10,000
// (--after ID --limit 100): it must cost a page, not the catalog.
func BenchmarkListShadowsPage(b *testing.B) {
	const n = 10_000
	d := startDaemon(b, NewAccess(Rules{}, nil))
	fillShadows(b, d.cat, d.vol, n)
	ctx := context.Background()
	adm := v1.NewAdminClient(dial(b, d.socket))
	all, err := d.cat.ListSnapshots(catalog.Filter{})
	if err != nil {
		b.Fatal(err)
	}
	after := all[n/2].ID
	for b.Loop() {
		st, err := adm.ListShadows(ctx, &v1.ListShadowsRequest{AfterSnapshotId: after.String(), Limit: 100})
		got := 0
		for err == nil {
			var batch *v1.ListShadowsResponse
			if batch, err = st.Recv(); err == nil {
				got += len(batch.GetSnapshots())
			}
		}
		if !errors.Is(err, io.EOF) || got != 100 {
			b.Fatalf("listed %d: %v", got, err)
		}
	}
}
