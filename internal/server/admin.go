package server

import (
	"context"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/coordinator"
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

// ListShadows lists snapshots of every context, marking those whose
// session still runs.
func (a *admin) ListShadows(_ context.Context, r *v1.ListShadowsRequest) (*v1.ListShadowsResponse, error) {
	set, err := wire.ParseGUID(r.SnapshotSetId)
	if err != nil {
		return nil, wire.ToGRPC(err)
	}
	vol := r.Volume
	if vol != "" {
		if p, err := filepath.EvalSymlinks(vol); err == nil {
			vol = p
		}
	}
	shadows, err := a.s.c.ListShadows(set, vol)
	if err != nil {
		return nil, wire.ToGRPC(err)
	}
	out := &v1.ListShadowsResponse{}
	for _, sh := range shadows {
		p := SnapshotProp(sh.Snapshot)
		p.LiveSession = sh.LiveSession
		out.Snapshots = append(out.Snapshots, p)
	}
	return out, nil
}
