package exec

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lvss/lvss/provider/confval"
	"github.com/lvss/lvss/vss"
)

// The entry names its keys under the prefix it is given, so that lvssd can
// point at the line; the messages are the ones lvssd prints. The most
// specific key comes first, the entry itself last, for when the file sets
// only the entry.
func TestConfigValidate(t *testing.T) {
	good := Config{Name: "san", Volumes: []string{"/srv/a", "/srv/b"}, Commit: "c", Delete: "d"}
	five, eleven := confval.Duration(5*time.Second), confval.Duration(11*time.Second)
	tests := []struct {
		name string
		edit func(*Config)
		keys []string
		msg  string
	}{
		{"good", func(*Config) {}, nil, ""},
		{"timeout within hold", func(c *Config) { c.Timeout = &five }, nil, ""},
		{"expose and unexpose", func(c *Config) { c.Expose, c.Unexpose = "e", "u" }, nil, ""},
		{"kind differential", func(c *Config) { c.Kind = "differential" }, nil, ""},
		{"kind plex", func(c *Config) { c.Kind = "plex" }, nil, ""},
		{"unknown kind", func(c *Config) { c.Kind = "transportable" },
			[]string{"providers.exec[3].kind"}, `providers.exec[3].kind: "transportable" is not a snapshot kind: say "differential" or "plex", or leave it unset`},
		{"no name is for the caller", func(c *Config) { c.Name = "" }, nil, ""},
		{"no commit", func(c *Config) { c.Commit = "" },
			[]string{"providers.exec[3].commit", "providers.exec[3]"}, "providers.exec[3]: commit and delete commands are required"},
		{"no delete", func(c *Config) { c.Delete = "" },
			[]string{"providers.exec[3].commit", "providers.exec[3]"}, "providers.exec[3]: commit and delete commands are required"},
		{"no volumes", func(c *Config) { c.Volumes = nil },
			[]string{"providers.exec[3].volumes", "providers.exec[3]"}, "providers.exec[3].volumes: list the volumes this provider snapshots"},
		{"relative volume", func(c *Config) { c.Volumes = []string{"/a", "b"} },
			[]string{"providers.exec[3].volumes[1]"}, `providers.exec[3].volumes[1]: "b" is not an absolute path`},
		{"newline in a volume", func(c *Config) { c.Volumes = []string{"/a\n/b"} },
			[]string{"providers.exec[3].volumes[0]"}, "providers.exec[3].volumes[0]: a volume path may not contain a newline"},
		{"expose alone", func(c *Config) { c.Expose = "e" },
			[]string{"providers.exec[3].expose", "providers.exec[3].unexpose", "providers.exec[3]"},
			"providers.exec[3]: expose and unexpose go together: set both or neither"},
		{"timeout over hold", func(c *Config) { c.Timeout = &eleven },
			[]string{"providers.exec[3].timeout"},
			"providers.exec[3].timeout (11s) must fit in timeouts.hold (10s): the commit runs inside the filesystem freeze"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.Volumes = slices.Clone(good.Volumes)
			tc.edit(&c)
			err := c.Validate("providers.exec[3]", 10*time.Second)
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

func TestConfigKinds(t *testing.T) {
	for kind, want := range map[string]vss.Attributes{"": 0, "differential": vss.AttrDifferential, "plex": vss.AttrPlex} {
		if got := (Config{Kind: kind}).Kinds(); got != want {
			t.Errorf("kind %q: %s, want %s", kind, got, want)
		}
	}
}
