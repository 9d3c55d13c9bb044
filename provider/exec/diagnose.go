package exec

import (
	"context"
	"strings"

	"github.com/lvss/lvss/provider"
)

// Diagnose implements provider.Diagnoser. Only the configured volumes
// themselves are supported (IsVolumeSupported). Where the snapshots go is
// the commands' business, so SnapshotDir is empty; the freeze the commit
// runs in is lvss doctor's to check, as it is the coordinator's to do.
func (p *Provider) Diagnose(_ context.Context, volume string) provider.Diagnosis {
	if p.supports(volume) {
		return provider.Diagnosis{Supported: true,
			Reason: "one of the volumes of [[providers.exec]] " + p.cfg.Name + "; its commit runs while the filesystem is frozen"}
	}
	return provider.Diagnosis{Reason: "not one of its volumes (" + strings.Join(p.volumes, ", ") + ")"}
}

// ConfiguredVolumes implements provider.Configured: the provider's volumes.
func (p *Provider) ConfiguredVolumes() []string { return append([]string(nil), p.volumes...) }

var (
	_ provider.Diagnoser  = (*Provider)(nil)
	_ provider.Configured = (*Provider)(nil)
)
