// Package bench holds the benchmarks behind BENCHMARKS.md: lvss against
// the raw btrfs snapshot ioctl on one loop btrfs in one run, DoSnapshotSet
// with 0, 1 and 10 writers, how long writers are held frozen, and how long
// a filesystem is held frozen for the exec provider. It has no non-test
// code; run it with the command in BENCHMARKS.md.
package bench
