package exec

import (
	"github.com/lvss/lvss/internal/mountinfo"
)

const supported = true

// mountOf describes the filesystem that holds path, for the commit's
// environment.
func mountOf(path string) (mount, error) {
	m, err := mountinfo.ForPath(path)
	if err != nil {
		return mount{}, err
	}
	return mount{point: m.MountPoint, source: m.Source, fstype: m.FSType, number: m.Device()}, nil
}
