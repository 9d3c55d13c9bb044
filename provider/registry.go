package provider

import (
	"context"
	"strings"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Registry holds the providers of a coordinator in preference order: the
// first one that supports a volume is chosen when the requester names none
// (vss-reference §7.1).
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

// Select picks the provider for a volume that makes every kind of snapshot
// in kinds (vss.SnapshotKinds bits the context asks for, D19): the one with
// the given ID (uuid.Nil = any), which must support the volume and make
// those kinds (else VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER), or the first
// in preference order that does (else VSS_E_VOLUME_NOT_SUPPORTED). A
// provider's own error from IsVolumeSupported is translated (Translate).
func (r *Registry) Select(ctx context.Context, id uuid.UUID, volume string, kinds vss.Attributes) (Provider, error) {
	kinds &= vss.SnapshotKinds
	if id != uuid.Nil {
		p, err := r.ByID(id)
		if err != nil {
			return nil, err
		}
		if missing := kinds &^ p.Info().Kinds; missing != 0 {
			return nil, vsserr.New(vsserr.VolumeNotSupportedByProvider, "provider %s cannot make a %s snapshot (it makes: %s)",
				p.Info().Name, missing, kindNames(p.Info().Kinds))
		}
		ok, err := p.IsVolumeSupported(ctx, volume)
		if err != nil {
			return nil, Translate(p, CallIsVolumeSupported, err)
		}
		if !ok {
			return nil, vsserr.New(vsserr.VolumeNotSupportedByProvider, "provider %s cannot snapshot %s", p.Info().Name, volume)
		}
		return p, nil
	}
	supported := false
	for _, p := range r.list {
		ok, err := p.IsVolumeSupported(ctx, volume)
		if err != nil {
			return nil, Translate(p, CallIsVolumeSupported, err)
		}
		if !ok {
			continue
		}
		supported = true
		if kinds&^p.Info().Kinds == 0 {
			return p, nil
		}
	}
	if supported {
		return nil, vsserr.New(vsserr.VolumeNotSupported, "no provider can make a %s snapshot of %s", kinds, volume)
	}
	return nil, vsserr.New(vsserr.VolumeNotSupported, "no provider can snapshot %s", volume)
}

func kindNames(k vss.Attributes) string {
	if k == 0 {
		return "no declared kind"
	}
	return k.String()
}
