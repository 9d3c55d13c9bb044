package client

import (
	"context"

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

// ListShadows lists snapshots of every context, including other sessions'
// live auto-release snapshots (LiveSession), filtered by set and original
// volume when given (uuid.Nil / "" = all).
func (c *Conn) ListShadows(ctx context.Context, setID uuid.UUID, volume string) ([]SnapshotProp, error) {
	req := &v1.ListShadowsRequest{Volume: volume}
	if setID != uuid.Nil {
		req.SnapshotSetId = setID.String()
	}
	resp, err := c.admin.ListShadows(ctx, req)
	if err != nil {
		return nil, wire.FromGRPC(err)
	}
	var d decoder
	out := make([]SnapshotProp, 0, len(resp.GetSnapshots()))
	for _, p := range resp.GetSnapshots() {
		out = append(out, d.snapshot(p))
	}
	return out, d.err
}
