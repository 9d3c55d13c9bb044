package exec

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/config"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/providertest"
)

// conformanceConfig snapshots directories on a real ext4 by copying them
// into a store outside it, and exposes a snapshot with a bind mount. The
// suite calls the provider directly, without the coordinator's freeze;
// the freeze is exercised in realcase_linux_test.go.
func conformanceConfig(store string, vols []string, list bool) config.ExecConfig {
	cfg := config.ExecConfig{
		Name: "conformance", Volumes: vols, Timeout: dur(5 * time.Second),
		Commit: `set -eu
i=1
while [ "$i" -le "$LVSS_VOLUME_COUNT" ]; do
	eval vol=\$LVSS_VOLUME_$i id=\$LVSS_SNAPSHOT_ID_$i
	mkdir "` + store + `/$id"
	cp -a "$vol/." "` + store + `/$id/"
	printf '%s\t%s\n' "$id" "` + store + `/$id"
	i=$((i + 1))
done`,
		Delete:   `rm -rf -- "` + store + `/$LVSS_SNAPSHOT_HANDLE"`,
		Expose:   `mount --bind -o ro "$LVSS_DEVICE_PATH" "$LVSS_EXPOSE_PATH"`,
		Unexpose: `if mountpoint -q "$LVSS_EXPOSE_PATH"; then umount "$LVSS_EXPOSE_PATH"; fi`,
	}
	if list {
		cfg.List = `for d in "` + store + `"/*; do [ -d "$d" ] && printf '%s\t%s\n' "${d##*/}" "$d"; done; true`
	}
	return cfg
}

func TestConformance(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", 128<<20)
	for _, variant := range []struct {
		name string
		list bool
	}{{"Index", false}, {"ListCommand", true}} {
		t.Run(variant.name, func(t *testing.T) {
			t.Parallel()
			providertest.Run(t, providertest.Harness{New: func(t *testing.T) providertest.Setup {
				base, err := os.MkdirTemp(fs.Mount, "case-")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(base) })
				vols := []string{filepath.Join(base, "vol1"), filepath.Join(base, "vol2"), filepath.Join(base, "other")}
				for _, v := range vols {
					if err := os.Mkdir(v, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				store, expose := t.TempDir(), t.TempDir()
				run, state := runDir(t), t.TempDir()
				cfg := conformanceConfig(store, vols[:2], variant.list)
				p := openProvider(t, cfg, 10*time.Second, run, state)
				return providertest.Setup{
					Provider: p, Volume: vols[0], Second: vols[1], Unsupported: vols[2],
					ReadSnapshot: func(t *testing.T, s provider.Snapshot, rel string) []byte {
						b, err := os.ReadFile(filepath.Join(s.DevicePath, rel))
						if err != nil {
							t.Fatal(err)
						}
						return b
					},
					ExposeDir: expose,
					// lvssd restarted: the same configuration, run and
					// state directories (the index is in the latter).
					Restart: func(t *testing.T) provider.Provider { return openProvider(t, cfg, 10*time.Second, run, state) },
					// The copies the commands make, the commands' TMPDIRs,
					// and bind mounts left by expose.
					Residue: func(t *testing.T) []string {
						out := providertest.Entries(t, store)
						out = append(out, providertest.Entries(t, p.tmpRoot)...)
						return append(out, providertest.Mounts(t, expose)...)
					},
				}
			}})
		})
	}
}
