package filecopy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/provider"
)

// Diagnose implements provider.Diagnoser: why a volume is or is not
// covered by providers.copy.volumes (the same rules as IsVolumeSupported),
// and whether the snapshot directory leaves limits.min_free. How much a
// copy needs is known only by walking the volume, which Diagnose does not
// do: EndPrepareSnapshots measures it.
func (p *Provider) Diagnose(_ context.Context, volume string) provider.Diagnosis {
	d := provider.Diagnosis{Reason: p.refusal(volume)}
	if d.Reason != "" {
		return d
	}
	d.Supported, d.SnapshotDir = true, p.dir
	d.Reason = "listed in providers.copy.volumes: a file-by-file copy, consistent only under writer cover"
	// The directory is made at the first copy: judge the nearest existing
	// ancestor, which is where it would be made.
	probe := p.dir
	for {
		if _, err := os.Stat(probe); err == nil || filepath.Dir(probe) == probe {
			break
		}
		probe = filepath.Dir(probe)
	}
	if err := unix.Access(probe, unix.W_OK); err != nil {
		d.Problems = append(d.Problems, provider.Problem{Check: "copy.writable", Severity: provider.Error,
			Message: fmt.Sprintf("the snapshot directory %s is not writable (%s: %v)", p.dir, probe, err),
			Fix:     "set providers.copy.snapshot_dir to a writable directory"})
		return d
	}
	var st unix.Statfs_t
	if err := unix.Statfs(probe, &st); err == nil {
		if avail := int64(st.Bavail) * st.Bsize; avail < p.minFree {
			d.Problems = append(d.Problems, provider.Problem{Check: "copy.free_space", Severity: provider.Error,
				Message: fmt.Sprintf("the snapshot directory %s has %s free, less than limits.min_free (%s): a copy would be refused with VSS_E_INSUFFICIENT_STORAGE",
					p.dir, human(avail), human(p.minFree)),
				Fix: "free space there (lvss delete shadows), or set providers.copy.snapshot_dir elsewhere"})
		}
	}
	return d
}

// refusal is why IsVolumeSupported says no, "" when it says yes; it
// follows supported's rules step by step.
func (p *Provider) refusal(volume string) string {
	if _, ok := p.supported(volume); ok {
		return ""
	}
	if len(p.volumes) == 0 {
		return "providers.copy.volumes is empty (the copy provider is opt-in)"
	}
	if !filepath.IsAbs(volume) {
		return "not an absolute path"
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(volume))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "it does not exist"
		}
		return err.Error()
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return "not a directory"
	}
	if within(real, p.realDir()) {
		return "inside the copies' own directory " + p.dir
	}
	for _, v := range p.volumes {
		if rv, err := filepath.EvalSymlinks(v); err == nil && within(real, rv) {
			if ms, err := mountinfo.Read(); err == nil {
				if m, err := mountinfo.Find(ms, real); err == nil {
					return fmt.Sprintf("inside %s, which providers.copy.volumes lists, but on another mount (%s)", v, m.MountPoint)
				}
			}
			return fmt.Sprintf("inside %s, which providers.copy.volumes lists, but on another mount", v)
		}
	}
	return "not listed in providers.copy.volumes (the copy provider is opt-in)"
}

// ConfiguredVolumes implements provider.Configured: providers.copy.volumes.
func (p *Provider) ConfiguredVolumes() []string { return append([]string(nil), p.volumes...) }

var (
	_ provider.Diagnoser  = (*Provider)(nil)
	_ provider.Configured = (*Provider)(nil)
)
