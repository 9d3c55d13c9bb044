package btrfs

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
		{"good", Config{Volumes: []VolumeConfig{{Path: "/srv"}, {Path: "/data", SnapshotDir: "/data/.snaps"}}}, nil, ""},
		{"relative path", Config{Volumes: []VolumeConfig{{Path: "/srv"}, {Path: "data"}}},
			[]string{"providers.btrfs.volume[1].path"}, `providers.btrfs.volume[1].path: "data" is not an absolute path`},
		{"relative snapshot_dir", Config{Volumes: []VolumeConfig{{Path: "/srv", SnapshotDir: "snaps"}}},
			[]string{"providers.btrfs.volume[0].snapshot_dir"}, `providers.btrfs.volume[0].snapshot_dir: "snaps" is not an absolute path`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate("providers.btrfs")
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
