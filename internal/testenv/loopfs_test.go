package testenv

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestLoopFSAndFreezeProbe(t *testing.T) {
	for _, typ := range []string{"btrfs", "xfs", "ext4"} {
		t.Run(typ, func(t *testing.T) {
			fs := LoopFS(t, typ, 400<<20)
			var st unix.Statfs_t
			if err := unix.Statfs(fs.Mount, &st); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(fs.Mount, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if !fs.Writable(2 * time.Second) {
				t.Fatal("fresh filesystem not writable")
			}
			if frozen, err := fs.Frozen(); frozen || err != nil {
				t.Fatalf("fresh filesystem: Frozen() = %v, %v", frozen, err)
			}
			f, err := os.Open(fs.Mount)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.IoctlSetInt(int(f.Fd()), fifreeze, 0); err != nil {
				t.Fatalf("FIFREEZE: %v", err)
			}
			f.Close()
			if frozen, err := fs.Frozen(); !frozen || err != nil {
				t.Fatalf("frozen filesystem: Frozen() = %v, %v", frozen, err)
			}
			if fs.Writable(300 * time.Millisecond) {
				t.Fatal("frozen filesystem accepted a write")
			}
			// Cleanup must thaw and unmount even though the test leaves it frozen.
		})
	}
}
