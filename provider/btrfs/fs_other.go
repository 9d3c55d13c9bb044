//go:build !linux || !(amd64 || arm64 || riscv64 || loong64 || s390x)

package btrfs

import (
	"errors"
	"os"
	"runtime"
	"time"
)

// Elsewhere the provider cannot be made: New says why, and these stubs only
// keep the package compiling.

var errUnsupported = errors.New("the btrfs provider is built for Linux on amd64, arm64, riscv64, loong64 and s390x, not " + runtime.GOOS + "/" + runtime.GOARCH)

var errNoBtrfs = errUnsupported

func supported() error                                     { return errUnsupported }
func locate(string) (location, error)                      { return location{}, errUnsupported }
func createSubvolume(string, string, os.FileMode) error    { return errUnsupported }
func snapshot(*os.File, *os.File, string) error            { return errUnsupported }
func destroySubvolume(string) error                        { return errUnsupported }
func isReadOnlySubvolume(string) (bool, error)             { return false, errUnsupported }
func readOnlySnapshotInfo(string) (bool, time.Time, error) { return false, time.Time{}, errUnsupported }
func subvolumeCreated(string) (time.Time, error)           { return time.Time{}, errUnsupported }
func childSubvolumes(string, uint64) ([]nested, error)     { return nil, errUnsupported }
func freeBytes(string) (uint64, error)                     { return 0, errUnsupported }
func defaultDirs() ([]string, error)                       { return nil, errUnsupported }
func snapshotMounts(string) ([]string, error)              { return nil, errUnsupported }
func exposedAt(string, string) (bool, error)               { return false, errUnsupported }
func bindReadOnly(string, string) error                    { return errUnsupported }
func unmount(string) error                                 { return errUnsupported }
func accessW(string) error                                 { return errUnsupported }
func syncFS(string) error                                  { return errUnsupported }

func dirtyBytes() int64 { return 1 << 62 }
