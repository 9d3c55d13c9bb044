package filecopy

import (
	"errors"
	"slices"
	"testing"

	"github.com/lvss/lvss/provider/confval"
)

// The section names its keys under the prefix it is given, so that lvssd
// can point at the line; the messages are the ones lvssd prints.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		keys []string
		msg  string
	}{
		{"empty", Config{}, nil, ""},
		{"good", Config{Volumes: []string{"/srv", "/srv/copies-not"}, SnapshotDir: "/srv/copies/"}, nil, ""},
		{"relative volume", Config{Volumes: []string{"/srv", "rel"}},
			[]string{"providers.copy.volumes[1]"}, `providers.copy.volumes[1]: "rel" is not an absolute path`},
		{"relative snapshot_dir", Config{SnapshotDir: "copies"},
			[]string{"providers.copy.snapshot_dir"}, `providers.copy.snapshot_dir: "copies" is not an absolute path`},
		{"volume is the snapshot_dir", Config{Volumes: []string{"/srv/copies"}, SnapshotDir: "/srv/copies/"},
			[]string{"providers.copy.volumes[0]"}, `providers.copy.volumes[0]: "/srv/copies" is inside providers.copy.snapshot_dir`},
		{"volume inside the snapshot_dir", Config{Volumes: []string{"/a", "/srv/copies/x"}, SnapshotDir: "/srv/copies"},
			[]string{"providers.copy.volumes[1]"}, `providers.copy.volumes[1]: "/srv/copies/x" is inside providers.copy.snapshot_dir`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate("providers.copy")
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var ke *confval.KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("Validate = %#v, want a *confval.KeyError", err)
			}
			if ke.Msg != tc.msg || !slices.Equal(ke.Keys, tc.keys) {
				t.Errorf("Validate = %q at %q\nwant       %q at %q", ke.Msg, ke.Keys, tc.msg, tc.keys)
			}
		})
	}
}
