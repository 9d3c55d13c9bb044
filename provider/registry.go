package provider

import (
	"context"
	"strings"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vsserr"
)

// Registry holds the providers of a coordinator in preference order: the
// first one that supports a volume is chosen when the requester names none
// (spec §7.1).
type Registry struct {
	list []Provider
}

// NewRegistry keeps the providers in the given order of preference.
func NewRegistry(ps ...Provider) *Registry { return &Registry{list: ps} }

// All returns the providers in preference order.
func (r *Registry) All() []Provider { return append([]Provider(nil), r.list...) }

// Lookup finds a provider by ID, or by name (case-insensitive) when ref is
// not a GUID. VSS_E_PROVIDER_NOT_REGISTERED when there is none.
func (r *Registry) Lookup(ref string) (Provider, error) {
	id, err := uuid.Parse(strings.Trim(ref, "{}"))
	for _, p := range r.list {
		if err == nil && p.Info().ID == id || err != nil && strings.EqualFold(p.Info().Name, ref) {
			return p, nil
		}
	}
	return nil, vsserr.New(vsserr.ProviderNotRegistered, "no provider %q", ref)
}

// ByID finds a provider by ID.
func (r *Registry) ByID(id uuid.UUID) (Provider, error) { return r.Lookup(id.String()) }

// Select picks the provider for a volume: the one with the given ID
// (uuid.Nil = any), which must support it (else
// VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER), or the first in preference order
// that does (else VSS_E_VOLUME_NOT_SUPPORTED).
func (r *Registry) Select(ctx context.Context, id uuid.UUID, volume string) (Provider, error) {
	if id != uuid.Nil {
		p, err := r.ByID(id)
		if err != nil {
			return nil, err
		}
		ok, err := p.IsVolumeSupported(ctx, volume)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, vsserr.New(vsserr.VolumeNotSupportedByProvider, "provider %s cannot snapshot %s", p.Info().Name, volume)
		}
		return p, nil
	}
	for _, p := range r.list {
		ok, err := p.IsVolumeSupported(ctx, volume)
		if err != nil {
			return nil, err
		}
		if ok {
			return p, nil
		}
	}
	return nil, vsserr.New(vsserr.VolumeNotSupported, "no provider can snapshot %s", volume)
}
