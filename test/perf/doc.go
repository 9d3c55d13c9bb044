// Package perf is `make bench`: the benchmarks behind BENCHMARKS.md that
// put lvss beside the tools users already run (the raw btrfs ioctl,
// `btrfs subvolume snapshot`, snapper, qemu-guest-agent's fsfreeze) and
// measure how its costs grow with writers, with snapshots in the catalog,
// and with the hosts of a cluster snapshot set (network namespaces with
// an lvssd each and a 3-member etcd, internal/testenv/cluster).
//
// The measurements are Go benchmarks behind the build tag `perf`, run once
// each (`-benchtime 1x`) as root by scripts/bench: each takes its own
// samples, because one figure compares many tools measured side by side on
// one filesystem state, which `b.N` cannot express. Each writes a Report
// (package internal/benchreport) as JSON into $LVSS_BENCH_DIR; the program
// in ./report turns every report of a run into the Markdown tables and
// gnuplot pictures that BENCHMARKS.md shows. Nothing here asserts a time:
// targets are printed beside the figures, never checked.
//
// The benchmarks that compare lvss with its peers (latency, hypervisor,
// window) run some helpers as the test binary itself, started again with
// a first argument its TestMain recognises: the probes that time an
// application's writes and SQLite commits, and the sandbox that starts
// qemu-ga in a mount namespace of its own.
package perf
