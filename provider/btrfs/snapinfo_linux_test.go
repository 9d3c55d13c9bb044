package btrfs

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReadOnlySnapshotInfo: the one-ioctl check Query makes of every
// snapshot agrees with SUBVOL_GETFLAGS on a read-only snapshot, a
// writable subvolume and a plain directory, and gives the snapshot's
// creation time.
func TestReadOnlySnapshotInfo(t *testing.T) {
	mnt := newBtrfs(t)
	sv := subvol(t, filepath.Join(mnt, "sv"))
	before := time.Now().Add(-time.Minute)
	snap := filepath.Join(mnt, "snap")
	if err := RawSnapshot(sv, snap); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		ro   bool
	}{{snap, true}, {sv, false}, {dir, false}} {
		ro, created, err := readOnlySnapshotInfo(tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		old, err := isReadOnlySubvolume(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if ro != tc.ro || old != tc.ro {
			t.Errorf("%s: read-only %v (SUBVOL_GETFLAGS says %v), want %v", tc.path, ro, old, tc.ro)
		}
		if tc.ro && (created.Before(before) || created.After(time.Now().Add(time.Minute))) {
			t.Errorf("%s: created %v, not about now", tc.path, created)
		}
	}
	if _, _, err := readOnlySnapshotInfo(filepath.Join(mnt, "missing")); !os.IsNotExist(err) {
		t.Errorf("a missing path: %v, want not-exist", err)
	}
}
