package btrfs

import (
	"os"
	"path/filepath"
)

// RawSnapshot is the bare kernel call the provider's commit makes: one
// read-only snapshot of the subvolume src as dst (dst's directory must be
// on the same btrfs). It exists so that benchmarks can measure lvss
// against the raw ioctl on the same filesystem in the same run
// (BENCHMARKS.md); the provider itself adds locations, records and
// checks around it.
func RawSnapshot(src, dst string) error {
	s, err := os.Open(src)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := os.Open(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer d.Close()
	return snapCreate(int(d.Fd()), int(s.Fd()), filepath.Base(dst))
}

// RawDelete destroys a snapshot made by RawSnapshot.
func RawDelete(dst string) error {
	d, err := os.Open(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer d.Close()
	return snapDestroy(int(d.Fd()), filepath.Base(dst))
}
