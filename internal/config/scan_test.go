package config

import (
	"reflect"
	"testing"
)

// future has the shapes later sections are expected to take: arrays of
// tables, nested ones, and tables keyed by name.
type future struct {
	Writers []struct {
		Name  string `toml:"name"`
		Hooks []struct {
			Cmd string `toml:"cmd"`
		} `toml:"hooks"`
	} `toml:"writers"`
	Providers map[string]struct {
		Timeout Duration `toml:"timeout"`
		Weight  float64  `toml:"weight"`
	} `toml:"providers"`
}

func TestScanRecordsPositions(t *testing.T) {
	doc := `providers.zfs = { timeout = "1s" }
[[writers]]
name = "pg"
[[writers]]
name = "mysql"
[[writers.hooks]]
cmd = "flush"
[providers.btrfs]
timeout = "5s"
weight = 2
`
	d, err := scan("f.toml", []byte(doc), reflect.TypeOf(future{}))
	if err != nil {
		t.Fatal(err)
	}
	for key, line := range map[string]int{
		"writers[0].name":          3,
		"writers[1].name":          5,
		"writers[1].hooks[0].cmd":  7,
		"providers.btrfs.timeout":  9,
		"providers.btrfs.weight":   10,
		"providers.zfs.timeout":    1,
		"writers[1].hooks[0]":      6,
		"providers.btrfs":          8,
		"providers.zfs":            1,
		"writers[0]":               2,
		"writers[1]":               4,
		"providers.zfs.timeout[0]": 0,
	} {
		pos, ok := d.at[key]
		if line == 0 {
			if ok {
				t.Errorf("%s recorded at %+v", key, pos)
			}
			continue
		}
		if !ok || pos.Line != line {
			t.Errorf("%s at %+v (found %v), want line %d", key, pos, ok, line)
		}
	}
}

func TestScanErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"unknown key in an array of tables", "[[writers]]\n[[writers]]\nnmae = \"x\"\n",
			`f.toml:3:1: unknown key "writers[1].nmae"`},
		{"table for an array of tables", "[writers]\nname = \"x\"\n",
			`f.toml:1:2: writers: want an array of tables, got a table`},
		{"map entry of the wrong kind", "[providers.btrfs]\ntimeout = 5\n",
			`f.toml:2:11: providers.btrfs.timeout: want a duration string such as "30s", got an integer`},
		{"scalar for a map entry", "providers.btrfs = 1\n",
			`f.toml:1:19: providers.btrfs: want a table, got an integer`},
		{"string for a number", "[providers.x]\nweight = \"2\"\n",
			`f.toml:2:10: providers.x.weight: want a number, got a string`},
		{"inline array of tables", "writers = [{name = \"a\"}, {nmae = \"b\"}]\n",
			`f.toml:1:27: unknown key "writers[1].nmae"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scan("f.toml", []byte(tc.doc), reflect.TypeOf(future{}))
			if err == nil || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}
