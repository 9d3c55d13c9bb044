//go:build perf

package perf_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/benchreport"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/provider/btrfs"
)

// peerRounds is how many times BenchmarkPeersBtrfs measures each tool.
const peerRounds = 25

// peerWriterCounts are the writers of the `lvss backup` rows.
var peerWriterCounts = []int{1, 10, 100}

// BenchmarkPeersBtrfs puts lvss beside the tools that snapshot a btrfs
// subvolume today: the raw BTRFS_IOC_SNAP_CREATE_V2 ioctl, `btrfs
// subvolume snapshot -r` and `snapper create`, against `lvss create
// shadow`, `lvss backup --no-writers` and `lvss backup` with 1, 10 and 100
// SDK writers, all on one loop btrfs (2 GiB, a subvolume of 1000 small
// files) and the real lvssd binary. Each round measures every tool once,
// in an order rotated from round to round, so that btrfs's own slowdown
// (it deletes the snapshots lazily, in the background) and the machine's
// noise hit every tool alike; each measure starts on a synced filesystem
// and deletes its snapshot afterwards, outside the measure. The `lvss
// backup` rows run with exactly that many writers subscribed (started
// before, and stopped after, within the round). DoSnapshotSet through the
// Go API is timed in the same rounds, for the targets of lvss
// over the raw ioctl.
func BenchmarkPeersBtrfs(b *testing.B) {
	v := newPeerVolume(b, 2<<30)
	snapper := newSnapperConfig(b, v)
	d := lvssdtest.StartDaemon(b, lvssdtest.DaemonOptions{
		Config: fmt.Sprintf("[limits]\nmax_snapshots_per_volume = %d\n", liftedCap),
	})
	lvss := newLvssCLI(b, d)
	writers := newWriterGroup(b, d.Socket, v.vol)
	// One of each before the rounds (not kept): binaries and caches warm.
	warmup := true

	s := newSamples()
	rec := func(name string, took time.Duration) {
		if !warmup {
			s.add(name, took)
		}
	}
	steps := []func(round int){
		func(round int) {
			dst := filepath.Join(v.mnt, "raw-"+strconv.Itoa(round))
			settle(b, v.vol)
			start := time.Now()
			if err := btrfs.RawSnapshot(v.vol, dst); err != nil {
				b.Fatal(err)
			}
			rec(rowRaw, time.Since(start))
			if err := btrfs.RawDelete(dst); err != nil {
				b.Fatal(err)
			}
		},
		func(round int) {
			dst := filepath.Join(v.mnt, "cli-"+strconv.Itoa(round))
			settle(b, v.vol)
			took, _ := timeCmd(b, "btrfs", "subvolume", "snapshot", "-r", v.vol, dst)
			rec(rowBtrfsCLI, took)
			if err := btrfs.RawDelete(dst); err != nil {
				b.Fatal(err)
			}
		},
		func(int) {
			settle(b, v.vol)
			took, n := snapper.create(b)
			rec(rowSnapper, took)
			snapper.delete(b, n)
		},
		func(int) {
			settle(b, v.vol)
			took, set := lvss.createShadow(b, v.vol)
			rec(rowCreate, took)
			deleteSet(b, d.Socket, set)
		},
		func(int) {
			settle(b, v.vol)
			took, _ := lvss.backup(b, v.vol, false)
			rec(rowBackup0, took)
		},
		func(int) {
			settle(b, v.vol)
			took, _ := doSnapshotSet(b, d.Socket, v.vol)
			rec(rowDSS(0), took)
		},
		func(int) {
			for _, n := range peerWriterCounts {
				writers.grow(b, n)
				settle(b, v.vol)
				took, _ := lvss.backup(b, v.vol, true)
				rec(rowBackupN(n), took)
				settle(b, v.vol)
				took, _ = doSnapshotSet(b, d.Socket, v.vol)
				rec(rowDSS(n), took)
			}
			writers.stop(b)
		},
	}
	began := time.Now()
	for _, step := range steps {
		step(-1)
	}
	warmup = false
	for round := range peerRounds {
		for i := range steps {
			steps[(round+i)%len(steps)](round)
		}
	}
	b.Logf("%d rounds in %s", peerRounds, time.Since(began).Round(time.Millisecond))
	if err := peersReport(b, s).Write(); err != nil {
		b.Fatal(err)
	}
}

const (
	rowRaw      = "raw BTRFS_IOC_SNAP_CREATE_V2 ioctl"
	rowBtrfsCLI = "`btrfs subvolume snapshot -r`"
	rowSnapper  = "`snapper create`"
	rowCreate   = "`lvss create shadow`"
	rowBackup0  = "`lvss backup --no-writers -- true`"
)

func rowBackupN(n int) string {
	return fmt.Sprintf("`lvss backup -- true`, %d %s", n, plural(n, "writer"))
}

func rowDSS(n int) string {
	return fmt.Sprintf("DoSnapshotSet (Go API), %d %s", n, plural(n, "writer"))
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

// dssTargets are the targets for DoSnapshotSet over the raw ioctl
// (ms), by writers.
var dssTargets = map[int]float64{0: 0.5, 1: 0.7, 10: 1.0}

// peersReport turns the samples into the two tables of the latency suite
// and reports the headline metrics.
func peersReport(b *testing.B, s *samples) *benchreport.Report {
	raw := s.by[rowRaw]
	row := func(name string, peer bool) benchreport.Row {
		return benchreport.Row{Name: name, Peer: peer, Unit: "ms", Stats: benchreport.Summarize(benchreport.Millis(s.by[name]))}
	}
	// over is name's per-round difference to the raw ioctl of the same
	// round.
	over := func(name string) []time.Duration {
		ds := s.by[name]
		out := make([]time.Duration, len(ds))
		for i := range ds {
			out[i] = ds[i] - raw[i]
		}
		return out
	}
	lat := benchreport.Table{
		ID:    "peers-btrfs",
		Title: "Snapshot latency on a loop btrfs: lvss beside the raw ioctl, btrfs-progs and snapper",
		Notes: []string{
			fmt.Sprintf("One loop btrfs (2 GiB image on the machine's disk), one subvolume of 1000 small files, the real lvssd binary with the per-volume cap lifted; %d rounds, each measuring every row once in an order rotated from round to round, each measure on a freshly synced filesystem (syncfs, untimed) and each snapshot deleted after its measure (untimed; `lvss backup` deletes its auto-release snapshot itself, inside its measure, as it does for users).", peerRounds),
			"What is timed: the raw ioctl from the call to its return, in the benchmark's process; every other row is a command, timed from just before its process starts to just after it exits, so each includes a process start (a few ms for lvss, whose CLI then connects to lvssd over its Unix socket and runs a whole VSS session). snapper runs with `--no-dbus` on a private configuration root (`--root`, the config file written from Debian's template), so no snapperd is involved. `lvss create shadow` makes a persistent crash-consistent set (VSS_CTX_CLIENT_ACCESSIBLE, no writers); `lvss backup` runs the whole backup (gather, prepare, DoSnapshotSet, COMMAND `true`, BackupComplete, release); the writers are SDK writers in the benchmark's process, one stream each, each with a component on the subvolume, and exactly that many are subscribed during the row's measure.",
		},
		Rows: []benchreport.Row{row(rowRaw, true), row(rowBtrfsCLI, true), row(rowSnapper, true), row(rowCreate, false), row(rowBackup0, false)},
		Plot: &benchreport.Plot{File: "peers-btrfs", XLabel: "", YLabel: "ms (median, p10–p90)", Bars: true},
	}
	for _, n := range peerWriterCounts {
		lat.Rows = append(lat.Rows, row(rowBackupN(n), false))
	}
	overRow := func(label, name string, peer bool, target float64) benchreport.Row {
		return benchreport.Row{Name: label, Peer: peer, Unit: "ms", Stats: benchreport.Summarize(benchreport.Millis(over(name))), Target: target}
	}
	ovr := benchreport.Table{
		ID:    "peers-btrfs-over-raw",
		Title: "lvss over the raw ioctl (per-round difference, same rounds as above)",
		Notes: []string{
			"Each row is the median of (the row's measure − the raw ioctl's measure of the same round). The DoSnapshotSet rows are the issue's targets: the call to the end of its Wait (PrepareForSnapshot, Freeze, the snapshot ioctl, Thaw, PostSnapshot, the catalog's record), a Go requester talking to the lvssd binary over its socket, no process start; test/bench measures the same in-process. The CLI rows include everything the command does beyond the ioctl, process start and session included; the two peer rows are the same difference for btrfs-progs and snapper, for scale.",
		},
		Rows: []benchreport.Row{overRow(rowBtrfsCLI+" − raw", rowBtrfsCLI, true, 0), overRow(rowSnapper+" − raw", rowSnapper, true, 0)},
	}
	for _, n := range append([]int{0}, peerWriterCounts...) {
		r := overRow(rowDSS(n)+" − raw", rowDSS(n), false, dssTargets[n])
		r.Note = fmt.Sprintf("DoSnapshotSet itself: %.2f ms median", ms(medianOf(s.by[rowDSS(n)])))
		ovr.Rows = append(ovr.Rows, r)
	}
	ovr.Rows = append(ovr.Rows, overRow(rowCreate+" − raw", rowCreate, false, 0), overRow(rowBackup0+" − raw", rowBackup0, false, 0))
	for _, n := range peerWriterCounts {
		ovr.Rows = append(ovr.Rows, overRow(rowBackupN(n)+" − raw", rowBackupN(n), false, 0))
	}

	metric := func(name, unit string) { b.ReportMetric(ms(medianOf(s.by[name])), unit) }
	metric(rowRaw, "raw-ms")
	metric(rowBtrfsCLI, "btrfs-cli-ms")
	metric(rowSnapper, "snapper-ms")
	metric(rowCreate, "create-ms")
	metric(rowBackup0, "backup0-ms")
	b.ReportMetric(ms(medianOf(over(rowCreate))), "create-minus-raw-ms")
	b.ReportMetric(ms(medianOf(over(rowBackup0))), "backup0-minus-raw-ms")
	for _, n := range append([]int{0}, peerWriterCounts...) {
		b.ReportMetric(ms(medianOf(over(rowDSS(n)))), fmt.Sprintf("dss%d-minus-raw-ms", n))
	}
	for _, n := range peerWriterCounts {
		metric(rowBackupN(n), fmt.Sprintf("backup%d-ms", n))
	}
	return &benchreport.Report{Suite: "latency", Order: 10, Tables: []benchreport.Table{lat, ovr}}
}
