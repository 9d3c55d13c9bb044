package client

import (
	"context"
	"errors"
	"io"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/wire"
)

// The Admin calls start no session and send writers no event (D16): they
// only read what the daemon already knows, which is why they are
// methods of Conn and not of BackupComponents.

// ListWriters lists the subscribed writers with the metadata of their last
// Identify and their state in the most recent session they took part in.
func (c *Conn) ListWriters(ctx context.Context) ([]WriterInfo, error) {
	resp, err := c.admin.ListWriters(ctx, &v1.ListWritersRequest{})
	if err != nil {
		return nil, wire.FromGRPC(err)
	}
	var d decoder
	out := make([]WriterInfo, 0, len(resp.GetWriters()))
	for _, w := range resp.GetWriters() {
		out = append(out, d.writerInfo(w))
	}
	return out, d.err
}

// ListProviders lists the registered providers.
func (c *Conn) ListProviders(ctx context.Context) ([]ProviderProp, error) {
	resp, err := c.admin.ListProviders(ctx, &v1.ListProvidersRequest{})
	if err != nil {
		return nil, wire.FromGRPC(err)
	}
	var d decoder
	out := make([]ProviderProp, 0, len(resp.GetProviders()))
	for _, p := range resp.GetProviders() {
		out = append(out, d.provider(p))
	}
	return out, d.err
}

// ListEvents returns up to limit entries of the daemon's event log with a
// sequence number above afterSeq, oldest first; limit <= 0 lets the daemon
// choose. To follow the log, pass the last Seq seen.
func (c *Conn) ListEvents(ctx context.Context, afterSeq uint64, limit int) ([]LogEvent, error) {
	if limit < 0 {
		limit = 0
	}
	resp, err := c.admin.ListEvents(ctx, &v1.ListEventsRequest{AfterSeq: afterSeq, Limit: int32(min(limit, 1<<31-1))})
	if err != nil {
		return nil, wire.FromGRPC(err)
	}
	var d decoder
	out := make([]LogEvent, 0, len(resp.GetEvents()))
	for _, e := range resp.GetEvents() {
		out = append(out, d.logEvent(e))
	}
	return out, d.err
}

// ShadowFilter selects snapshots for QueryShadows and StreamShadows. Zero
// fields do not filter.
type ShadowFilter struct {
	SetID  uuid.UUID // one snapshot set
	Volume string    // the snapshots of one original volume, as it was named
	// After continues a listing after this snapshot, in the listing's
	// order: pass the last SnapshotID of a page to get the next. The
	// snapshot must still exist (VSS_E_OBJECT_NOT_FOUND otherwise).
	After uuid.UUID
	Limit int // at most this many (<= 0: all)
}

// ListShadows lists snapshots of every context, including other sessions'
// live auto-release snapshots (LiveSession), filtered by set and original
// volume when given (uuid.Nil / "" = all). It is QueryShadows without
// pagination.
func (c *Conn) ListShadows(ctx context.Context, setID uuid.UUID, volume string) ([]SnapshotProp, error) {
	return c.QueryShadows(ctx, ShadowFilter{SetID: setID, Volume: volume})
}

// QueryShadows returns the snapshots f selects, set by set: sets in the
// order they were created (by their oldest snapshot), a set's snapshots by
// creation time, as `lvss list shadows` shows them.
func (c *Conn) QueryShadows(ctx context.Context, f ShadowFilter) ([]SnapshotProp, error) {
	var out []SnapshotProp
	err := c.StreamShadows(ctx, f, func(batch []SnapshotProp) error {
		out = append(out, batch...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// StreamShadows calls fn with the snapshots f selects, in QueryShadows's
// order, batch by batch as lvssd sends them (a few hundred at a time), so
// that a caller can print or process 10,000 snapshots without holding them
// all. An error fn returns ends the listing and is returned.
func (c *Conn) StreamShadows(ctx context.Context, f ShadowFilter, fn func(batch []SnapshotProp) error) error {
	req := &v1.ListShadowsRequest{Volume: f.Volume, Limit: int32(min(max(f.Limit, 0), 1<<31-1))}
	if f.SetID != uuid.Nil {
		req.SnapshotSetId = f.SetID.String()
	}
	if f.After != uuid.Nil {
		req.AfterSnapshotId = f.After.String()
	}
	// Cancelled on return, so that an fn that gives up ends the stream.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.admin.ListShadows(ctx, req)
	if err != nil {
		return wire.FromGRPC(err)
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return wire.FromGRPC(err)
		}
		var d decoder
		batch := make([]SnapshotProp, 0, len(resp.GetSnapshots()))
		for _, p := range resp.GetSnapshots() {
			batch = append(batch, d.snapshot(p))
		}
		if d.err != nil {
			return d.err
		}
		if err := fn(batch); err != nil {
			return err
		}
	}
}
