package exec

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/providertest"
)

// conformanceConfig snapshots directories on a real ext4 by copying them
// into a store outside it, and exposes a snapshot with a bind mount. The
// suite calls the provider directly, without the coordinator's freeze;
// the freeze is exercised in realcase_linux_test.go.
//
// The commit and delete commands can be held, for the suite's in-flight
// cancellation checks: when ctl holds the FIFO <op>.held they write to it
// (which blocks until the test reads it: the signal that they are held)
// and then wait to read <op>.hold, which no one writes; only the kill that
// the cancellation brings ends them. They are held before they make or
// remove anything.
func conformanceConfig(store, ctl string, vols []string, list bool) Config {
	hold := func(op string) string {
		return `if [ -p "` + ctl + `/` + op + `.held" ]; then echo held > "` + ctl + `/` + op + `.held"; cat "` + ctl + `/` + op + `.hold" > /dev/null; fi
`
	}
	cfg := Config{
		Name: "conformance", Volumes: vols, Timeout: dur(5 * time.Second),
		Commit: `set -eu
` + hold("commit") + `i=1
while [ "$i" -le "$LVSS_VOLUME_COUNT" ]; do
	eval vol=\$LVSS_VOLUME_$i id=\$LVSS_SNAPSHOT_ID_$i
	mkdir "` + store + `/$id"
	cp -a "$vol/." "` + store + `/$id/"
	printf '%s\t%s\n' "$id" "` + store + `/$id"
	i=$((i + 1))
done`,
		Delete:   hold("delete") + `rm -rf -- "` + store + `/$LVSS_SNAPSHOT_HANDLE"`,
		Expose:   `mount --bind -o ro "$LVSS_DEVICE_PATH" "$LVSS_EXPOSE_PATH"`,
		Unexpose: `if mountpoint -q "$LVSS_EXPOSE_PATH"; then umount "$LVSS_EXPOSE_PATH"; fi`,
	}
	if list {
		cfg.List = `for d in "` + store + `"/*; do [ -d "$d" ] && printf '%s\t%s\n' "${d##*/}" "$d"; done; true`
	}
	return cfg
}

// holdCommand arms the hold of conformanceConfig for the next run of op.
// held is closed once that command is held. The command is left to the
// cancellation; the cleanup lets go of anything still waiting, test or
// command.
func holdCommand(t *testing.T, ctl, op string) (<-chan struct{}, func()) {
	heldPath, holdPath := filepath.Join(ctl, op+".held"), filepath.Join(ctl, op+".hold")
	for _, p := range []string{heldPath, holdPath} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	held := make(chan struct{})
	go func() {
		defer close(held)
		// Opening blocks until the command opens the other end.
		f, err := os.Open(heldPath)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, f)
		f.Close()
		// Disarmed: the next run of op goes through.
		os.Remove(heldPath)
	}()
	t.Cleanup(func() {
		// A reader or writer still blocked in open on a FIFO goes on when
		// the other end is opened; with nobody there, this fails (ENXIO).
		for _, p := range []string{heldPath, holdPath} {
			if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			} else if !errors.Is(err, syscall.ENXIO) && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("release %s: %v", p, err)
			}
		}
		<-held
		os.Remove(holdPath)
	})
	return held, func() {}
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
				store, ctl, expose := t.TempDir(), t.TempDir(), t.TempDir()
				run, state := runDir(t), t.TempDir()
				cfg := conformanceConfig(store, ctl, vols[:2], variant.list)
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
					// and bind mounts left by expose. A command killed at
					// a cancellation but not yet exited (abandoned after
					// procgroup.KillGrace on a loaded machine) still owns
					// its TMPDIR until it is reaped: wait for that first.
					Residue: func(t *testing.T) []string {
						if err := p.WaitAbandoned(tctx(t)); err != nil {
							t.Fatalf("abandoned commands did not exit: %v", err)
						}
						out := providertest.Entries(t, store)
						out = append(out, providertest.Entries(t, p.tmpRoot)...)
						return append(out, providertest.Mounts(t, expose)...)
					},
					Hold: func(t *testing.T, method string) (<-chan struct{}, func(), bool) {
						switch method {
						case "CommitSnapshots":
							held, release := holdCommand(t, ctl, opCommit)
							return held, release, true
						case "DeleteSnapshot":
							held, release := holdCommand(t, ctl, opDelete)
							return held, release, true
						}
						return nil, nil, false
					},
					Without: map[string]string{
						"Hold EndPrepareSnapshots": "EndPrepareSnapshots runs no command: there is nothing to hold",
					},
				}
			}})
		})
	}
}
