package providertest

import (
	"strings"

	"github.com/lvss/lvss/internal/mountinfo"
)

func mountsUnder(dir string) ([]string, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if m.MountPoint == dir || strings.HasPrefix(m.MountPoint, dir+"/") {
			out = append(out, "mount at "+m.MountPoint)
		}
	}
	return out, nil
}
