package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/outbox"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vsserr"
)

type admin struct {
	v1.UnimplementedAdminServer
	s *Server
}

func guidOrEmpty(u uuid.UUID) string {
	if u == uuid.Nil {
		return ""
	}
	return u.String()
}

// ListWriters sends no event (D16).
func (a *admin) ListWriters(context.Context, *v1.ListWritersRequest) (*v1.ListWritersResponse, error) {
	out := &v1.ListWritersResponse{}
	for _, w := range a.s.c.ListWriters() {
		out.Writers = append(out.Writers, writerInfo(w, true))
	}
	return out, nil
}

func providerProp(i provider.Info) *v1.ProviderProp {
	return &v1.ProviderProp{ProviderId: i.ID.String(), Name: i.Name, Type: int32(i.Type), Version: i.Version,
		VersionId: i.VersionID.String(), ClassId: i.ID.String()}
}

// ListProviders lists the registered providers in preference order.
func (a *admin) ListProviders(context.Context, *v1.ListProvidersRequest) (*v1.ListProvidersResponse, error) {
	out := &v1.ListProvidersResponse{}
	for _, p := range a.s.c.Options().Providers.All() {
		out.Providers = append(out.Providers, providerProp(p.Info()))
	}
	return out, nil
}

// ListEvents pages through the event log, filtered as the request says.
func (a *admin) ListEvents(_ context.Context, r *v1.ListEventsRequest) (*v1.ListEventsResponse, error) {
	f := coordinator.EventFilter{AfterSeq: r.AfterSeq, Limit: int(r.Limit), Newest: r.Newest, Writer: r.Writer,
		MinLevel: coordinator.Level(r.MinLevel), Code: vsserr.HRESULT(r.Hresult)}
	if f.MinLevel != "" && !coordinator.ValidLevel(f.MinLevel) {
		return nil, wire.ToGRPC(vsserr.New(vsserr.InvalidArg, "event level %q is not info, warn or error", r.MinLevel))
	}
	if r.SinceUnixNano != 0 {
		f.Since = time.Unix(0, r.SinceUnixNano)
	}
	var err error
	if f.Session, err = wire.ParseGUID(r.SessionId); err != nil {
		return nil, wire.ToGRPC(err)
	}
	evs, last, err := a.s.c.QueryEvents(f)
	if err != nil {
		return nil, wire.ToGRPC(err)
	}
	out := &v1.ListEventsResponse{LastSeq: last}
	for _, e := range evs {
		out.Events = append(out.Events, logEvent(e))
	}
	return out, nil
}

// shadowBatch is how many snapshots one message of a ListShadows stream
// carries (about 100 KB), and how many lvssd reads from its catalog at a
// time for it.
const shadowBatch = 256

// errListed ends a ListShadows stream's sender once everything was sent.
var errListed = errors.New("listing sent")

// ListShadows streams snapshots of every context in batches, marking those
// whose session still runs. Batches go through an outbox (package outbox)
// and the next is read only once the one before it was written, so lvssd
// holds at most two batches for a client however long the listing, and a
// client that stops reading is ended after timeouts.requester_send like a
// requester that does (L31).
func (a *admin) ListShadows(r *v1.ListShadowsRequest, stream v1.Admin_ListShadowsServer) error {
	if err := a.s.codec.takeBad(r); err != nil {
		return wire.ToGRPC(err)
	}
	var q coordinator.ShadowQuery
	var err error
	if q.SetID, err = wire.ParseGUID(r.SnapshotSetId); err != nil {
		return wire.ToGRPC(err)
	}
	if q.After, err = wire.ParseGUID(r.AfterSnapshotId); err != nil {
		return wire.ToGRPC(err)
	}
	q.Limit = int(r.Limit)
	q.Volume = r.Volume
	if q.Volume != "" {
		if p, err := filepath.EvalSymlinks(q.Volume); err == nil {
			q.Volume = p
		}
	}
	c := a.s.c
	sendTimeout := c.Options().Timeouts.RequesterSend
	ended := make(chan struct{})
	box := outbox.New(2, stream.Send, func(error) { close(ended) })
	var prev *outbox.Ticket
	// wait returns once the batch before the last one queued was written,
	// or the stream was ended.
	wait := func(t *outbox.Ticket) error {
		if t == nil {
			return nil
		}
		select {
		case <-t.Written():
			return nil
		case <-ended:
			return box.Cause()
		}
	}
	err = c.ListShadows(q, shadowBatch, func(page []coordinator.Shadow) error {
		out := &v1.ListShadowsResponse{Snapshots: make([]*v1.SnapshotProp, 0, len(page))}
		for _, sh := range page {
			p := SnapshotProp(sh.Snapshot)
			p.LiveSession = sh.LiveSession
			out.Snapshots = append(out.Snapshots, p)
		}
		t := box.Put(out, time.Now().Add(sendTimeout), "a batch of the snapshot listing")
		err := wait(prev)
		prev = t
		return err
	})
	if err == nil {
		err = wait(prev)
	}
	box.End(errListed)
	if err != nil {
		if cause := box.Cause(); cause != nil && cause != errListed {
			// A client that went away (lvss list shadows | head) is no
			// news; one lvssd had to end is.
			if ctx := stream.Context(); ctx.Err() == nil {
				c.Logf(ctx, coordinator.LevelWarn, vsserr.Unexpected, "snapshot listing stream ended by lvssd",
					"pid", fmt.Sprint(peerOf(ctx).PID), "reason", cause.Error())
			}
			return wire.ToGRPC(vsserr.Wrap(vsserr.Unexpected, cause, "lvssd ended the listing stream"))
		}
		return wire.ToGRPC(err)
	}
	return nil
}
