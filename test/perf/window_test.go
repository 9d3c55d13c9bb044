//go:build perf

package perf_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"
	"modernc.org/sqlite"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/benchreport"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/btrfs"
	"github.com/lvss/lvss/vss"
)

// windowRounds is how many times BenchmarkFreezeWindow measures each
// operation. One round's excess spreads over about ±5 ms on a 2-core
// machine; with 20 rounds the medians of two runs differed by up to 2 ms,
// more than the differences between the rows.
const windowRounds = 60

// windowSleep is the wait of the control row winSleepRaw: about the
// length of `lvss create shadow`.
const windowSleep = 20 * time.Millisecond

// windowDirty is what each measure writes to the volume just before the
// operation (not synced), as in the hypervisor case.
const windowDirty = 8 << 20

// windowIdle are the lengths of the fixed "idle" measures of the raw
// tables (no operation, the same probes): about as long as the raw
// ioctl, and as an `lvss backup`. They show that the longest stall a
// probe sees grows with the time it is watched; the fair tables match
// every operation with an idle watch of its own length instead.
var windowIdle = []time.Duration{5 * time.Millisecond, 50 * time.Millisecond}

// BenchmarkFreezeWindow measures the freeze window from outside: how long
// an application on the volume could not write while each tool made its
// snapshot. Two probes run on the volume during every operation: a
// process appending small records with write+fdatasync in a tight loop
// (the window is the longest gap between two completed writes that
// overlaps the operation), and a SQLite client committing small
// transactions in WAL mode (the window is the longest commit that
// overlaps the operation). On the loop btrfs: the raw ioctl, `btrfs
// subvolume snapshot -r`, `snapper create`, `lvss create shadow`, `lvss
// backup --no-writers`, and `lvss backup` with lvss-writer's sqlite writer
// holding the database's write lock across the snapshot (application
// consistency); on the hypervisor setup of BenchmarkPeersHypervisor:
// qemu-ga's freeze-and-clone against the same through lvss's exec
// provider. Each measure starts with windowDirty bytes freshly written to
// the volume.
//
// The longest stall a probe sees grows with how long it is watched, and
// the operations last from a few ms to over 100 ms; so in every round
// each operation is paired with an idle watch (no operation, the same
// preparation) exactly as long as the operation took in that round, and
// the fair figure is the window in excess of it. The stall in progress at
// the snapshot's own instant (the kernel's creation time of a btrfs
// snapshot; the start of the clone inside the freeze) is reported beside
// it.
func BenchmarkFreezeWindow(b *testing.B) {
	// Sparse: 8 GiB so that the rounds' writes, pinned by snapshots until
	// btrfs's cleaner frees them, never run it out of space.
	v := newPeerVolume(b, 8<<30)
	snapper := newSnapperConfig(b, v)
	g := newGuestDisk(b, 256<<20)
	q := startQGA(b, g.mnt)
	d := lvssdtest.StartDaemon(b, lvssdtest.DaemonOptions{Config: g.lvssdConfig()})
	lvss := newLvssCLI(b, d)
	btrfsDB := newProbeDB(b, v.vol)
	guestDB := newProbeDB(b, g.mnt)
	startSQLiteWriter(b, d, btrfsDB, "btrfs")
	startSQLiteWriter(b, d, guestDB, "guest")
	d.WaitWriters(b, 2)
	lag := coarseLag(b)

	data := make([]byte, windowDirty)
	dirty := func(dir string) {
		data[0]++
		if err := os.WriteFile(filepath.Join(dir, "dirty.bin"), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var idle []windowOp
	for _, d := range windowIdle {
		idle = append(idle, windowOp{name: winIdle(d), idle: true, run: func() { time.Sleep(d) }})
	}
	// btrfsAt is the span in which a btrfs snapshot was taken: from its
	// otime, which the kernel stamps in the transaction commit that
	// creates it from its coarse clock (behind the true time), for
	// otimeSpan.
	btrfsAt := func(otime time.Time) (lo, hi int64) {
		lo = monoOf(otime)
		return lo, lo + int64(otimeSpan)
	}
	// The raw ioctl's own span checks that reading of otime: the span
	// must reach into the ioctl.
	var rawFrom, rawTo int64
	var otimeOutside int
	rawAt := func(dst string) func() (int64, int64) {
		return func() (int64, int64) {
			lo, hi := btrfsAt(subvolOtime(b, dst))
			if hi < rawFrom || lo > rawTo {
				otimeOutside++
			}
			return lo, hi
		}
	}

	// rawOp is the raw ioctl in the benchmark's process, after before
	// (when not nil), which is timed as part of the operation.
	rawOp := func(name string, peer bool, before func()) windowOp {
		dst := filepath.Join(v.mnt, "raw")
		return windowOp{name: name, peer: peer, ref: !peer, run: func() {
			if before != nil {
				before()
			}
			rawFrom = monoNow()
			if err := btrfs.RawSnapshot(v.vol, dst); err != nil {
				b.Fatal(err)
			}
			rawTo = monoNow()
		}, at: rawAt(dst), after: func() {
			if err := btrfs.RawDelete(dst); err != nil {
				b.Fatal(err)
			}
		}}
	}

	began := time.Now()
	var cliSnap string
	btrfsOps := append(slices.Clone(idle), []windowOp{
		rawOp(winRaw, true, nil),
		{name: winBtrfsCLI, peer: true, run: func() {
			cliSnap = filepath.Join(v.mnt, "cli")
			timeCmd(b, "btrfs", "subvolume", "snapshot", "-r", v.vol, cliSnap)
		}, at: func() (int64, int64) { return btrfsAt(subvolOtime(b, cliSnap)) }, after: func() {
			if err := btrfs.RawDelete(cliSnap); err != nil {
				b.Fatal(err)
			}
		}},
		snapperOp(b, snapper, v, btrfsAt),
		rawOp(winSyncRaw, false, func() { settle(b, v.vol) }),
		// Two controls of the measure itself: a wait before the ioctl
		// makes the operation as long as lvss's without adding work, and
		// lvss's CLI started and ended (no lvssd call) adds the cost of
		// starting a Go program of its size.
		rawOp(winSleepRaw, false, func() { time.Sleep(windowSleep) }),
		rawOp(winVersionRaw, false, func() { lvss.version(b) }),
		providerOp(b, v.vol, btrfsAt),
		apiCreateOp(b, d.Socket, v.vol, btrfsAt),
		createOp(b, lvss, d.Socket, v.vol, btrfsAt),
		backupOp(b, lvss, winBackup0, v.vol, false, btrfsAt),
		backupOp(b, lvss, winBackupSQLite, v.vol, true, btrfsAt),
	}...)
	btrfsRes := measureWindows(b, v.vol, btrfsDB, btrfsOps, func() { dirty(v.vol) })

	// In the hypervisor case the instant is when the clone command starts,
	// inside the freeze: the exec provider records it as the snapshot's
	// creation time just before it starts its commit command.
	clonedAt := func(t time.Time) (int64, int64) { at := monoOf(t); return at, at }
	round := 0
	var cloned time.Time
	hvOps := append(slices.Clone(idle), []windowOp{
		{name: winQGA, peer: true, run: func() {
			round++
			cloned = q.freezeClone(b, g.mnt, g.image, filepath.Join(g.clones, fmt.Sprintf("qga-%d.img", round))).cloned
		}, at: func() (int64, int64) { return clonedAt(cloned) }, after: func() { g.removeClones(b, "qga-") }},
		{name: winSteps, ref: true, run: func() {
			round++
			_, _, cloned = guardSteps(b, g.mnt, g.image, filepath.Join(g.clones, fmt.Sprintf("steps-%d.img", round)))
		}, at: func() (int64, int64) { return clonedAt(cloned) }, after: func() { g.removeClones(b, "steps-") }},
		createOp(b, lvss, d.Socket, g.mnt, clonedAt),
		backupOp(b, lvss, winBackup0, g.mnt, false, clonedAt),
		backupOp(b, lvss, winBackupSQLite, g.mnt, true, clonedAt),
	}...)
	hvRes := measureWindows(b, g.mnt, guestDB, hvOps, func() { dirty(g.mnt) })
	b.Logf("%d rounds on each setup in %s; idle watches made before their operation but too short, made again after: %d on btrfs, %d in the hypervisor case",
		windowRounds, time.Since(began).Round(time.Millisecond), btrfsRes.lateIdle, hvRes.lateIdle)
	if otimeOutside > 0 || lag.max > otimeSpan {
		b.Logf("%d of %d in-process snapshots have an otime span that misses the ioctl; the coarse clock lagged by up to %s (span %s)",
			otimeOutside, 2*(windowRounds+1), lag.max, otimeSpan)
	}

	rep := &benchreport.Report{Suite: "window", Order: 30}
	common := fmt.Sprintf("Each measure starts with %d MiB freshly written (not synced) to the volume; %d rounds, every operation once per round in a rotated order. The operation is timed as in the tables above (commands from process start to exit, the raw ioctl in-process, qemu-ga from guest-sync to the thaw's answer). Both probes run at once, as processes of their own, on the volume being snapshotted; they stamp their operations with CLOCK_MONOTONIC, the benchmark's clock too.", windowDirty>>20, windowRounds)
	fair := "The longest stall a probe sees grows with how long it is watched (the idle rows of the raw tables below), and these operations last from a few ms to over 100 ms, so their raw windows are not comparable. In every round each operation is paired with an idle watch: the same probes, the same preparation, no operation, exactly as long as the operation took in that round (after the operation in even rounds; before it in odd rounds, where the watch is made half as long again as the operation's median so far and read over its first part of the operation's length, and made again after if the operation outlasted it). The figure is, per round, the operation's window minus its idle watch's, median over the rounds: what the operation added to the longest stall. The peer columns are differences (ms), not ratios: with an excess near zero a ratio means nothing. The note gives the medians (ms) of the operation's window and of its idle watch's (their difference is not the median of the per-round differences), of the stall at the snapshot's instant and of the idle watch's at the same offset, in how many rounds the operation's longest stall was the one at the snapshot, and the operation's median duration."
	btrfsAtNote := fmt.Sprintf("\"At the snapshot\" is the longest stall around the snapshot's own kernel work, over a span of %.0f ms for every row. The instant lvss records for a btrfs snapshot is its creation time as btrfs keeps it (otime, stamped in the transaction commit that makes the snapshot; `--json`'s `created`); the benchmark reads the same for the peers' and the in-process snapshots (BTRFS_IOC_GET_SUBVOL_INFO). The kernel takes it from its coarse clock, which runs behind the true time (here by %.1f ms at the median and %.1f ms at most over %d readings, the tick being %.0f ms): so the span starts at otime, or at the operation's start when that is later (the commit comes after both, and no row should count a stall from before it began). On the two rows whose ioctl the benchmark makes and times itself (the raw ioctl, and syncfs then the ioctl), %d of %d spans (warm-ups included) missed the ioctl. lvss's event log and log give no closer instant: their \"snapshot created\" comes after the set is recorded. The idle figure is the same span at the same offset in the matched idle watch.",
		ms(otimeSpan), ms(lag.median), ms(lag.max), lag.n, ms(lag.tick), otimeOutside, 2*(windowRounds+1))
	hvAtNote := "\"At the snapshot\" is the stall in progress when the clone command started, inside the freeze: for qemu-ga and the in-process row the benchmark's own time just before it starts `cp`, for lvss the exec provider's recorded creation time (`--json`'s `created`), taken just before it starts its commit command (`/bin/sh -c`, whose `cp` clones); its idle figure is the stall at the same offset in the matched idle watch."
	rawNote := "The longest stall during the operation itself, not matched to an idle watch: it grows with how long the operation lasts (compare the idle rows, 5 and 50 ms with no operation). The fair comparison, and the verdict, are in the table of what each operation adds above."
	probeNote := "The probe appends 64-byte records to a file on the volume, each write followed by fdatasync, in a tight loop; the window is the longest gap between two completed writes that overlaps the operation, so it includes one write+fdatasync of its own."
	dbNote := "The database client commits one-row transactions (BEGIN IMMEDIATE, INSERT, COMMIT) in a tight loop to a SQLite database on the volume, WAL mode, synchronous=FULL (each commit syncs the WAL), retrying every 0.1 ms while the database is locked (SQLite's own busy handler would add its back-off steps, up to 100 ms, on top); the window is the longest transaction, first attempt to COMMIT's return, that overlaps the operation."
	btrfsWhy := "Neither the raw ioctl nor lvss's btrfs provider freezes the filesystem: what the probes see is how long the snapshot (its flush of the subvolume's dirty data, then its transaction commit) holds up a concurrent fdatasync, over the probe's own latency. lvss's btrfs provider makes the same one ioctl; it syncs the filesystem ahead of it only when writers are to be frozen and the machine holds over 32 MiB of dirty data (never for `lvss create shadow` and `--no-writers`). Two reference rows run in the benchmark's process: lvss's btrfs provider itself, called for one writerless snapshot as lvssd calls it (its checks, its record file, the ioctl, its read of the snapshot's creation time), without lvssd, its catalog or the CLI, so that beside it the lvss rows show what those add; and a syncfs then the ioctl, the provider's kernel steps when it does sync first."
	sqliteWhy := "The sqlite writer (`lvss-writer sqlite`, a process of its own) holds the database's write lock from its Freeze to its Thaw, so the row with it is what application consistency costs the application: the peers' snapshots hold the database as a crash would leave it."
	hvWhy := "The same probes on the hypervisor setup (the guest ext4). The reference row does the guard's own steps (syncfs, FIFREEZE, `cp --reflink`, FITHAW) in the benchmark's process, without lvss. FIFREEZE blocks writers first and then flushes, so qemu-ga's flush happens frozen; lvss's guard syncs first, but here most of FIFREEZE's time is ext4's own freeze work, which a sync beforehand does not take out (while this benchmark was written, a FIFREEZE right after a syncfs still took tens of ms on a guest written to since its last freeze, and under 1 ms on one that was not)."
	hvSQLiteWhy := "With the sqlite writer the lock is held from the writer's Freeze to its Thaw, which encloses the guard's whole hold and the syncfs before it: unlike the btrfs provider, which flushes at PrepareForSnapshot, before writers freeze, the exec provider's flush (the guard's syncfs) runs while the writers are frozen."
	same := "Same rounds as the table above, seen by the second probe."
	rep.Tables = append(rep.Tables,
		fairTable("window-btrfs-probe-added", "Freeze window on btrfs: what each operation adds to an application's longest write stall (write + fdatasync)",
			btrfsRes, false, common, fair, btrfsAtNote),
		fairTable("window-btrfs-sqlite-added", "Freeze window on btrfs: what each operation adds to the longest SQLite commit",
			btrfsRes, true, "Same rounds and idle watches as the table above, seen by the second probe.", sqliteWhy),
		rawTable("window-btrfs-probe", "Freeze window on btrfs, seen by an application's writes (write + fdatasync)",
			btrfsRes, false, rawNote, probeNote, btrfsWhy),
		rawTable("window-btrfs-sqlite", "Freeze window on btrfs, seen by SQLite commits",
			btrfsRes, true, same, dbNote),
		fairTable("window-hypervisor-probe-added", "Freeze window in the hypervisor case (ext4 image on XFS): what each operation adds to an application's longest write stall",
			hvRes, false, "The same measures on the hypervisor setup (the guest ext4), with the same pairing with idle watches.", hvAtNote),
		fairTable("window-hypervisor-sqlite-added", "Freeze window in the hypervisor case: what each operation adds to the longest SQLite commit",
			hvRes, true, "Same rounds and idle watches as the table above, seen by the second probe.", hvSQLiteWhy),
		rawTable("window-hypervisor-probe", "Freeze window in the hypervisor case (ext4 image on XFS), seen by an application's writes",
			hvRes, false, rawNote, hvWhy, probeNote),
		rawTable("window-hypervisor-sqlite", "Freeze window in the hypervisor case, seen by SQLite commits",
			hvRes, true, same, dbNote),
	)
	for _, m := range []struct {
		res  *windowResults
		db   bool
		name string
		unit string
	}{
		{btrfsRes, false, winRaw, "btrfs-probe-raw"},
		{btrfsRes, false, winCreate, "btrfs-probe-create"},
		{btrfsRes, true, winBackupSQLite, "btrfs-sqlite-backup"},
		{hvRes, false, winQGA, "hv-probe-qga"},
		{hvRes, false, winCreate, "hv-probe-create"},
	} {
		f := m.res.of(m.db)
		b.ReportMetric(ms(medianOf(f.window[m.name])), m.unit+"-ms")
		b.ReportMetric(ms(medianOf(f.excess(m.name))), m.unit+"-added-ms")
	}
	if err := rep.Write(); err != nil {
		b.Fatal(err)
	}
}

const (
	winRaw          = "raw BTRFS_IOC_SNAP_CREATE_V2 ioctl"
	winBtrfsCLI     = "`btrfs subvolume snapshot -r`"
	winSnapper      = "`snapper create`"
	winQGA          = "qemu-ga freeze-list, `cp --reflink`, thaw"
	winSyncRaw      = "syncfs, then the raw ioctl (in-process)"
	winSleepRaw     = "a 20 ms sleep, then the raw ioctl (in-process)"
	winVersionRaw   = "`lvss --version`, then the raw ioctl (in-process)"
	winProvider     = "lvss's btrfs provider, in-process (no lvssd, no CLI)"
	winSteps        = "syncfs, FIFREEZE, `cp --reflink`, FITHAW (the guard's own steps, in-process)"
	winCreate       = "`lvss create shadow`"
	winAPICreate    = "the same through lvss's Go client, from a running requester"
	winBackup0      = "`lvss backup --no-writers -- true`"
	winBackupSQLite = "`lvss backup -- true` with the sqlite writer"
)

func winIdle(d time.Duration) string { return fmt.Sprintf("idle, %s (no operation)", d) }

// windowOp is one operation whose window is measured: run is the measured
// part, after undoes it (deletes the snapshot), outside the measure.
type windowOp struct {
	name string
	peer bool
	idle bool
	// ref marks what lvss does, done without lvss: a reference, neither
	// a peer nor lvss.
	ref bool
	run func()
	// at is the span [lo, hi] (CLOCK_MONOTONIC ns) in which the snapshot
	// was taken, known once run has returned; nil: not known.
	at    func() (lo, hi int64)
	after func()
}

func snapperOp(b *testing.B, s *snapperConfig, v *peerVolume, at func(time.Time) (int64, int64)) windowOp {
	var n string
	return windowOp{name: winSnapper, peer: true,
		run: func() { _, n = s.create(b) },
		// snapper keeps snapshot N as the subvolume .snapshots/N/snapshot
		// of the configured subvolume.
		at:    func() (int64, int64) { return at(subvolOtime(b, filepath.Join(v.vol, ".snapshots", n, "snapshot"))) },
		after: func() { s.delete(b, n) }}
}

// providerOp runs lvss's btrfs provider in the benchmark's process, without
// lvssd or the CLI: its calls for one writerless snapshot in the order the
// coordinator makes them (the set is deleted again after the measure).
func providerOp(b *testing.B, vol string, at func(time.Time) (int64, int64)) windowOp {
	p, err := btrfs.New(btrfs.Config{}, 0, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	var snap provider.Snapshot
	return windowOp{name: winProvider, ref: true,
		run: func() {
			ctx := provider.WithoutWriters(context.Background())
			set := uuid.New()
			check := func(call string, err error) {
				if err != nil {
					b.Fatalf("btrfs provider %s: %v", call, err)
				}
			}
			check("BeginPrepareSnapshot", p.BeginPrepareSnapshot(ctx, set, uuid.New(), vol, vss.CtxClientAccessible))
			check("EndPrepareSnapshots", p.EndPrepareSnapshots(ctx, set))
			check("PreCommitSnapshots", p.PreCommitSnapshots(ctx, set))
			check("CommitSnapshots", p.CommitSnapshots(ctx, set))
			snaps, err := p.PostCommitSnapshots(ctx, set, 1)
			check("PostCommitSnapshots", err)
			if len(snaps) != 1 {
				b.Fatalf("btrfs provider PostCommitSnapshots reported %d snapshots, want 1", len(snaps))
			}
			snap = snaps[0]
			check("PreFinalCommitSnapshots", p.PreFinalCommitSnapshots(ctx, set))
			check("PostFinalCommitSnapshots", p.PostFinalCommitSnapshots(ctx, set))
		},
		at: func() (int64, int64) { return at(snap.Created) },
		after: func() {
			if err := p.DeleteSnapshot(context.Background(), snap); err != nil {
				b.Fatal(err)
			}
		}}
}

func createOp(b *testing.B, l *lvssCLI, socket, vol string, at func(time.Time) (int64, int64)) windowOp {
	var out string
	return windowOp{name: winCreate,
		run:   func() { _, out = l.time(b, "create", "shadow", "--for", vol, "--json") },
		at:    func() (int64, int64) { return at(createdOf(b, out)) },
		after: func() { deleteSet(b, socket, setIDOf(b, out)) }}
}

// apiCreateOp is what `lvss create shadow` asks of lvssd, asked by a
// requester that is already running (a backup agent using lvss's Go
// client): one session over the socket, VSS_CTX_CLIENT_ACCESSIBLE,
// StartSnapshotSet, AddToSnapshotSet, DoSnapshotSet and its Wait, the
// snapshot's properties, the session's end; no process started.
func apiCreateOp(b *testing.B, socket, vol string, at func(time.Time) (int64, int64)) windowOp {
	var set uuid.UUID
	var created time.Time
	return windowOp{name: winAPICreate,
		run: func() {
			err := client.Run(context.Background(), socket, func(ctx context.Context, bc *client.BackupComponents) error {
				if err := bc.InitializeForBackup(ctx, ""); err != nil {
					return err
				}
				if err := bc.SetContext(ctx, vss.CtxClientAccessible); err != nil {
					return err
				}
				var err error
				if set, err = bc.StartSnapshotSet(ctx); err != nil {
					return err
				}
				id, err := bc.AddToSnapshotSet(ctx, vol, uuid.Nil)
				if err != nil {
					return err
				}
				a, err := bc.DoSnapshotSet(ctx)
				if err == nil {
					err = a.Wait(ctx)
				}
				if err != nil {
					return err
				}
				p, err := bc.GetSnapshotProperties(ctx, id)
				created = p.Created
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		},
		at:    func() (int64, int64) { return at(created) },
		after: func() { deleteSet(b, socket, set) }}
}

// backupOp is `lvss backup` (the set is deleted again as it ends).
func backupOp(b *testing.B, l *lvssCLI, name, vol string, writers bool, at func(time.Time) (int64, int64)) windowOp {
	var out string
	return windowOp{name: name,
		run: func() { _, out = l.time(b, backupArgs(vol, writers)...) },
		at:  func() (int64, int64) { return at(createdOf(b, out)) }}
}

// createdOf is the creation time lvss recorded for the one snapshot of a
// set, from `lvss create shadow --json` or `lvss backup --json`.
func createdOf(b *testing.B, out string) time.Time {
	b.Helper()
	var r struct {
		Snapshots []struct {
			Created time.Time `json:"created"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Snapshots) != 1 || r.Snapshots[0].Created.IsZero() {
		b.Fatalf("want one snapshot with its creation time in lvss's output (%v):\n%s", err, out)
	}
	return r.Snapshots[0].Created
}

// monoOf is t on CLOCK_MONOTONIC, for a t that has just passed: times read
// from elsewhere (the kernel's otime, lvss's JSON) carry the wall clock
// only, and time.Since subtracts wall clocks then.
func monoOf(t time.Time) int64 { return monoNow() - int64(time.Since(t)) }

// otimeSpan is how long after a btrfs snapshot's otime the snapshot is
// taken to have been made: two ticks at the usual 250 Hz, beyond the
// coarse clock's lag measured on the machine this was written on (1.3 to
// 7 ms).
const otimeSpan = 8 * time.Millisecond

// clockLag is how far the kernel's coarse clock (CLOCK_REALTIME_COARSE,
// from which btrfs stamps a snapshot's otime) was behind CLOCK_REALTIME
// over n readings, and its resolution (one tick).
type clockLag struct {
	n                 int
	median, max, tick time.Duration
}

func coarseLag(b *testing.B) clockLag {
	b.Helper()
	var ts unix.Timespec
	if err := unix.ClockGetres(unix.CLOCK_REALTIME_COARSE, &ts); err != nil {
		b.Fatal(err)
	}
	l := clockLag{n: 400, tick: time.Duration(ts.Nano())}
	var lags []time.Duration
	for i := range l.n {
		var c, r unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &c); err != nil {
			b.Fatal(err)
		}
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &r); err != nil {
			b.Fatal(err)
		}
		lags = append(lags, time.Duration(r.Nano()-c.Nano()))
		// Readings spread over ticks: 0 to 1.2 ms apart.
		time.Sleep(time.Duration(i%5) * 300 * time.Microsecond)
	}
	l.median, l.max = medianOf(lags), slices.Max(lags)
	return l
}

// subvolInfo is struct btrfs_ioctl_get_subvol_info_args
// (include/uapi/linux/btrfs.h); x/sys/unix has neither it nor its
// request number. Only the otime is read.
type subvolInfo struct {
	TreeID                                 uint64
	Name                                   [256]byte
	ParentID, DirID, Generation, Flags     uint64
	UUID, ParentUUID, ReceivedUUID         [16]byte
	Ctransid, Otransid, Stransid, Rtransid uint64
	Ctime, Otime, Stime, Rtime             struct {
		Sec  uint64
		Nsec uint32
		_    uint32
	}
	_ [8]uint64
}

// BTRFS_IOC_GET_SUBVOL_INFO: _IOR(0x94, 60, struct btrfs_ioctl_get_subvol_info_args).
const iocGetSubvolInfo = 2<<30 | uint(unsafe.Sizeof(subvolInfo{}))<<16 | 0x94<<8 | 60

// subvolOtime is the creation time btrfs recorded for the subvolume (or
// snapshot) at path.
func subvolOtime(b *testing.B, path string) time.Time {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var info subvolInfo
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(iocGetSubvolInfo), uintptr(unsafe.Pointer(&info))); e != 0 {
		b.Fatalf("BTRFS_IOC_GET_SUBVOL_INFO %s: %v", path, e)
	}
	return time.Unix(int64(info.Otime.Sec), int64(info.Otime.Nsec))
}

// watch is one span over which the probes were watched (an operation or
// an idle watch), with the records both probes made around it.
type watch struct {
	from, to int64
	probe    [][2]int64
	db       [][2]int64
}

// windows are the longest stalls each probe saw overlapping [from, to].
func (w *watch) windows(from, to int64) (probe, db time.Duration) {
	return gapIn(w.probe, from, to), longestIn(w.db, from, to)
}

// figures are one probe's measures of each operation, by name; the i-th
// entries of window, idle and took are from the same round, and so are
// those of at and atIdle.
type figures struct {
	window map[string][]time.Duration // longest stall during the operation
	idle   map[string][]time.Duration // ... during its matched idle watch
	at     map[string][]time.Duration // stall at the snapshot's instant
	atIdle map[string][]time.Duration // ... at the same offset in the idle watch
}

func newFigures() *figures {
	return &figures{window: map[string][]time.Duration{}, idle: map[string][]time.Duration{},
		at: map[string][]time.Duration{}, atIdle: map[string][]time.Duration{}}
}

// excess is, per round, the operation's window minus its idle watch's.
func (f *figures) excess(name string) []time.Duration {
	w, i := f.window[name], f.idle[name]
	out := make([]time.Duration, len(i))
	for k := range i {
		out[k] = w[k] - i[k]
	}
	return out
}

// atLongest counts the rounds in which the operation's longest stall was
// the one at the snapshot.
func (f *figures) atLongest(name string) int {
	n := 0
	for k, at := range f.at[name] {
		if at >= f.window[name][k] {
			n++
		}
	}
	return n
}

// windowResults are the windows each probe saw, and how long the
// operations took, by operation.
type windowResults struct {
	ops       []windowOp
	probe, db *figures
	took      map[string][]time.Duration
	// lateIdle counts the idle watches made before their operation that
	// turned out shorter than it, and were made again after it.
	lateIdle int
}

func (r *windowResults) of(db bool) *figures {
	if db {
		return r.db
	}
	return r.probe
}

// measureWindows runs both probes on dir and the database at dbPath, and
// windowRounds rounds of ops (rotated), each after dirty; every operation
// but the fixed idle ones gets a matched idle watch, after it in even
// rounds, before it in odd ones.
func measureWindows(b *testing.B, dir, dbPath string, ops []windowOp, dirty func()) *windowResults {
	b.Helper()
	wp := startProbe(b, "write", filepath.Join(dir, "probe.log"))
	dp := startProbe(b, "sqlite", dbPath)
	defer wp.stop(b)
	defer dp.stop(b)
	res := &windowResults{ops: ops, probe: newFigures(), db: newFigures(), took: map[string][]time.Duration{}}
	// watchOp watches the probes over run and returns what they recorded,
	// and the snapshot's span (ok false when not known).
	watchOp := func(run func(), at func() (int64, int64), after func()) (w *watch, lo, hi int64, ok bool) {
		dirty()
		// The gap before the operation must be measured from a write
		// that completed before it.
		wp.waitPast(b, monoNow())
		dp.waitPast(b, monoNow())
		w = &watch{from: monoNow()}
		run()
		w.to = monoNow()
		if at != nil {
			lo, hi = at()
			ok = true
		}
		// Records past the end of the watch, and of the snapshot's span
		// (moved to begin with the operation at the latest, below).
		end := w.to
		if ok {
			end = max(end, hi, w.from+hi-lo)
		}
		wp.waitPast(b, end)
		dp.waitPast(b, end)
		w.probe, w.db = slices.Clone(wp.recs), slices.Clone(dp.recs)
		wp.forget()
		dp.forget()
		if after != nil {
			after()
		}
		return w, lo, hi, ok
	}
	idleFor := func(d time.Duration) *watch {
		w, _, _, _ := watchOp(func() { time.Sleep(d) }, nil, nil)
		return w
	}
	// need is how long an operation's idle watch must be: the operation's
	// length, and the snapshot's span at the same offset (moved to begin
	// with the operation at the latest, as below).
	need := func(w *watch, lo, hi int64, ok bool) time.Duration {
		n := w.to - w.from
		if ok {
			n = max(n, hi-w.from, hi-lo)
		}
		return time.Duration(n)
	}
	needs := map[string][]time.Duration{}
	for _, op := range ops {
		w, lo, hi, ok := watchOp(op.run, op.at, op.after) // warm-up, not kept
		needs[op.name] = append(needs[op.name], need(w, lo, hi, ok))
	}
	for round := range windowRounds {
		for i := range ops {
			op := ops[(round+i)%len(ops)]
			if op.idle {
				w, _, _, _ := watchOp(op.run, nil, nil)
				p, db := w.windows(w.from, w.to)
				res.probe.window[op.name] = append(res.probe.window[op.name], p)
				res.db.window[op.name] = append(res.db.window[op.name], db)
				continue
			}
			var idle *watch
			if round%2 == 1 {
				// Longer than the operation is likely to need: half as long
				// again as its median so far (an outlier's length would
				// make every later idle watch long; one that turns out
				// short is made again after).
				idle = idleFor(medianOf(needs[op.name]) * 3 / 2)
			}
			w, lo, hi, ok := watchOp(op.run, op.at, op.after)
			took := w.to - w.from
			n := need(w, lo, hi, ok)
			needs[op.name] = append(needs[op.name], n)
			if idle == nil || time.Duration(idle.to-idle.from) < n {
				if idle != nil {
					res.lateIdle++
				}
				idle = idleFor(n)
			}
			res.took[op.name] = append(res.took[op.name], time.Duration(took))
			p, db := w.windows(w.from, w.to)
			ip, idb := idle.windows(idle.from, idle.from+took)
			for _, f := range []struct {
				fig      *figures
				win, idl time.Duration
			}{{res.probe, p, ip}, {res.db, db, idb}} {
				f.fig.window[op.name] = append(f.fig.window[op.name], f.win)
				f.fig.idle[op.name] = append(f.fig.idle[op.name], f.idl)
			}
			if !ok {
				continue
			}
			// The span never begins before the operation (btrfs's otime,
			// the coarse clock lagging, often does: the stall there is
			// the preparation's), and keeps its length for every row: it
			// still holds the true instant, which is after both.
			if lo < w.from {
				lo, hi = w.from, hi+w.from-lo
			}
			p, db = w.windows(lo, hi)
			ip, idb = idle.windows(idle.from+lo-w.from, idle.from+hi-w.from)
			for _, f := range []struct {
				fig       *figures
				at, atIdl time.Duration
			}{{res.probe, p, ip}, {res.db, db, idb}} {
				f.fig.at[op.name] = append(f.fig.at[op.name], f.at)
				f.fig.atIdle[op.name] = append(f.fig.atIdle[op.name], f.atIdl)
			}
		}
	}
	return res
}

// fairTable is the headline table: per operation, the window in excess of
// its matched idle watch (median over rounds), differences to the peers.
func fairTable(id, title string, res *windowResults, db bool, notes ...string) benchreport.Table {
	t := benchreport.Table{ID: id, Title: title, Notes: notes, Diff: true,
		Plot: &benchreport.Plot{File: id, YLabel: "longest stall beyond a matched idle watch, ms (median, p10–p90)", Bars: true}}
	f := res.of(db)
	med := func(ds []time.Duration) float64 { return ms(medianOf(ds)) }
	var peers, lvss []int
	for _, op := range res.ops {
		if op.idle {
			continue
		}
		r := benchreport.Row{Name: op.name, Peer: op.peer, Unit: "ms", Stats: benchreport.Summarize(benchreport.Millis(f.excess(op.name)))}
		r.Note = fmt.Sprintf("window %.2f, idle %.2f", med(f.window[op.name]), med(f.idle[op.name]))
		if len(f.at[op.name]) > 0 {
			r.Note += fmt.Sprintf("; at the snapshot %.2f (idle %.2f), the longest in %d/%d", med(f.at[op.name]), med(f.atIdle[op.name]),
				f.atLongest(op.name), len(f.at[op.name]))
		}
		r.Note += fmt.Sprintf("; operation %.1f ms", med(res.took[op.name]))
		t.Rows = append(t.Rows, r)
		switch {
		case op.ref:
		case op.peer:
			peers = append(peers, len(t.Rows)-1)
		default:
			lvss = append(lvss, len(t.Rows)-1)
		}
	}
	if len(peers) == 0 || len(lvss) == 0 {
		return t
	}
	best := func(rows []int, fig func(benchreport.Row) float64) benchreport.Row {
		b := t.Rows[rows[0]]
		for _, i := range rows[1:] {
			if fig(t.Rows[i]) < fig(b) {
				b = t.Rows[i]
			}
		}
		return b
	}
	excess := func(r benchreport.Row) float64 { return r.Median }
	p, l := best(peers, excess), best(lvss, excess)
	verdict := fmt.Sprintf("%.2f ms shorter than", p.Median-l.Median)
	if l.Median > p.Median {
		verdict = fmt.Sprintf("%.2f ms longer than", l.Median-p.Median)
	}
	overlap := "the two rows' p10–p90 ranges overlap"
	if l.P90 < p.P10 || p.P90 < l.P10 {
		overlap = "the two rows' p10–p90 ranges do not overlap"
	}
	t.Notes = append(t.Notes, fmt.Sprintf("In this run lvss's shortest window, by this table's figure (the longest stall in excess of an idle watch as long as the operation, median over rounds), is %s's, %s ms (%s ms), %s the shortest peer's, %s's, %s ms (%s ms); %s.",
		l.Name, signedMs(l.Median), windowIdleText(f, res, l.Name), verdict, p.Name, signedMs(p.Median), windowIdleText(f, res, p.Name), overlap))
	for _, r := range t.Rows {
		if r.Name == winProvider {
			more := fmt.Sprintf("%s adds %.2f ms more: lvssd's and the CLI's share, around the same provider calls", l.Name, l.Median-r.Median)
			if l.Median <= r.Median {
				more = fmt.Sprintf("%s adds no more", l.Name)
			}
			t.Notes = append(t.Notes, fmt.Sprintf("lvss's btrfs provider, called in the benchmark's process without lvssd and the CLI, adds %s ms (%s ms); %s.",
				signedMs(r.Median), windowIdleText(f, res, r.Name), more))
		}
	}
	at := func(r benchreport.Row) float64 { return ms(medianOf(f.at[r.Name])) }
	if pa, la := best(peers, at), best(lvss, at); len(f.at[pa.Name]) > 0 && len(f.at[la.Name]) > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("At the snapshot's own instant, lvss's shortest stall is %s's, %.2f ms (its longest stall was that one in %d of %d rounds), against the shortest peer's, %s's, %.2f ms (%d of %d); medians.",
			la.Name, at(la), f.atLongest(la.Name), len(f.at[la.Name]), pa.Name, at(pa), f.atLongest(pa.Name), len(f.at[pa.Name])))
	}
	return t
}

// windowIdleText is an operation's median window and idle window, for the
// verdict.
func windowIdleText(f *figures, res *windowResults, name string) string {
	return fmt.Sprintf("window %.2f against idle %.2f, the operation taking %.1f",
		ms(medianOf(f.window[name])), ms(medianOf(f.idle[name])), ms(medianOf(res.took[name])))
}

func signedMs(v float64) string {
	if v < 0 {
		return fmt.Sprintf("−%.2f", -v)
	}
	return fmt.Sprintf("+%.2f", v)
}

// rawTable is the longest stall during each operation, as measured, with
// the fixed idle rows; ratios to the peers.
func rawTable(id, title string, res *windowResults, db bool, notes ...string) benchreport.Table {
	t := benchreport.Table{ID: id, Title: title, Notes: notes,
		Plot: &benchreport.Plot{File: id, YLabel: "longest stall, ms (median, p10–p90)", Bars: true}}
	by := res.of(db).window
	for _, op := range res.ops {
		r := benchreport.Row{Name: op.name, Peer: op.peer, Unit: "ms", Stats: benchreport.Summarize(benchreport.Millis(by[op.name]))}
		if !op.idle {
			r.Note = fmt.Sprintf("operation: %.1f ms", ms(medianOf(res.took[op.name])))
		}
		t.Rows = append(t.Rows, r)
	}
	return t
}

// monoNow is CLOCK_MONOTONIC in nanoseconds: the clock the probes stamp
// their records with, the same in every process.
func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// probe is a running probe process and the records it reported: the
// start and the end of each of its operations (a write+fdatasync, or a
// SQLite transaction).
type probe struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	errf *os.File
	recs [][2]int64
	done chan struct{}
}

// startProbe starts this test binary as a probe of the given mode on
// path. Cleanup ends it.
func startProbe(b *testing.B, mode, path string) *probe {
	b.Helper()
	p := &probe{name: mode + " probe", cmd: helperCmd(b, "probe", mode, path), done: make(chan struct{})}
	var err error
	if p.errf, err = os.CreateTemp("", "lvss-probe-*.err"); err != nil {
		b.Fatal(err)
	}
	p.cmd.Stderr = p.errf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	p.out = bufio.NewReader(out)
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	b.Cleanup(func() {
		p.in.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		p.errf.Close()
		os.Remove(p.errf.Name())
	})
	// Running: its first records have come.
	p.waitPast(b, monoNow())
	return p
}

func (p *probe) stderr() string {
	data, _ := os.ReadFile(p.errf.Name())
	return string(data)
}

// fetch asks the probe for the records it made since the last fetch.
func (p *probe) fetch(b *testing.B) {
	b.Helper()
	if _, err := io.WriteString(p.in, "d\n"); err != nil {
		b.Fatalf("%s: %v\n%s", p.name, err, p.stderr())
	}
	for {
		line, err := p.out.ReadString('\n')
		if err != nil {
			b.Fatalf("%s: %v\n%s", p.name, err, p.stderr())
		}
		line = strings.TrimSpace(line)
		if line == "." {
			return
		}
		s, e, ok := strings.Cut(line, " ")
		start, err1 := strconv.ParseInt(s, 10, 64)
		end, err2 := strconv.ParseInt(e, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			b.Fatalf("%s: bad record %q", p.name, line)
		}
		p.recs = append(p.recs, [2]int64{start, end})
	}
}

// waitPast fetches records until the probe has completed an operation
// after t (a probe blocked by a frozen filesystem completes one once it
// thaws).
func (p *probe) waitPast(b *testing.B, t int64) {
	b.Helper()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		p.fetch(b)
		if n := len(p.recs); n > 0 && p.recs[n-1][1] > t {
			return
		}
		if time.Now().After(end) {
			b.Fatalf("%s: no operation completed for 30 s\n%s", p.name, p.stderr())
		}
	}
}

// gapIn is the longest time between two consecutive completions of recs
// that overlaps [from, to].
func gapIn(recs [][2]int64, from, to int64) time.Duration {
	var longest int64
	for i := 1; i < len(recs); i++ {
		prev, cur := recs[i-1][1], recs[i][1]
		if cur > from && prev < to {
			longest = max(longest, cur-prev)
		}
	}
	return time.Duration(longest)
}

// longestIn is the longest operation (start to end) of recs that overlaps
// [from, to].
func longestIn(recs [][2]int64, from, to int64) time.Duration {
	var longest int64
	for _, r := range recs {
		if r[1] > from && r[0] < to {
			longest = max(longest, r[1]-r[0])
		}
	}
	return time.Duration(longest)
}

// forget drops the records but the last (which the next gap starts from).
func (p *probe) forget() {
	if n := len(p.recs); n > 1 {
		p.recs = append(p.recs[:0], p.recs[n-1])
	}
}

func (p *probe) stop(b *testing.B) {
	b.Helper()
	p.in.Close()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		b.Fatalf("%s did not end after its input closed\n%s", p.name, p.stderr())
	}
	if p.cmd.ProcessState != nil && !p.cmd.ProcessState.Success() {
		b.Fatalf("%s failed: %v\n%s", p.name, p.cmd.ProcessState, p.stderr())
	}
}

// newProbeDB makes a SQLite database in WAL mode in dir/db/ for the
// database probe and the sqlite writer, and returns its path.
func newProbeDB(b *testing.B, dir string) string {
	b.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o755); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "db", "app.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		b.Fatal(err)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		b.Fatalf("journal mode %q (%v), want wal", mode, err)
	}
	return path
}

// startSQLiteWriter runs `lvss-writer sqlite` for the database, a process
// of its own (SQLite's locks are POSIX locks, which only another process
// sees).
func startSQLiteWriter(b *testing.B, d *lvssdtest.Daemon, db, instance string) {
	b.Helper()
	cmd := exec.Command(lvssdtest.Bin(b, "lvss-writer"), "sqlite", "--socket", d.Socket,
		"--db", db, "--instance-name", instance)
	lvssdtest.Start(b, d.Dir, "sqlite-writer-"+instance, cmd)
}

// probeMain is the probe process: MODE PATH, MODE "write" (append 64
// bytes and fdatasync, again and again, to the file PATH) or "sqlite"
// (commit one-row transactions, again and again, to the database PATH).
// It stamps each operation's start and end with CLOCK_MONOTONIC and,
// for each line "d" on its standard input, prints the records made since
// the last one ("START END" lines, then "."). It ends when its standard
// input does.
func probeMain(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "probe: usage: write|sqlite PATH")
		return 2
	}
	op, closeOp, err := probeOp(args[0], args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	defer closeOp()
	var mu sync.Mutex
	var recs [][2]int64
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		in := bufio.NewScanner(os.Stdin)
		out := bufio.NewWriter(os.Stdout)
		for in.Scan() {
			mu.Lock()
			got := recs
			recs = nil
			mu.Unlock()
			for _, r := range got {
				fmt.Fprintf(out, "%d %d\n", r[0], r[1])
			}
			out.WriteString(".\n")
			if out.Flush() != nil {
				return
			}
		}
	}()
	for {
		select {
		case <-eof:
			return 0
		default:
		}
		start := monoNow()
		if err := op(); err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			return 1
		}
		end := monoNow()
		mu.Lock()
		recs = append(recs, [2]int64{start, end})
		mu.Unlock()
	}
}

func probeOp(mode, path string) (op func() error, closeOp func(), err error) {
	switch mode {
	case "write":
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, err
		}
		rec := make([]byte, 64)
		return func() error {
			if _, err := f.Write(rec); err != nil {
				return err
			}
			return unix.Fdatasync(int(f.Fd()))
		}, func() { f.Close() }, nil
	case "sqlite":
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)&_pragma=synchronous(FULL)")
		if err != nil {
			return nil, nil, err
		}
		ctx := context.Background()
		conn, err := db.Conn(ctx)
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		// exec retries while the database is locked (the sqlite writer
		// holds its write lock from Freeze to Thaw).
		exec := func(q string) error {
			for {
				_, err := conn.ExecContext(ctx, q)
				var se *sqlite.Error
				if !errors.As(err, &se) || se.Code()&0xff != 5 { // SQLITE_BUSY and its extended codes
					return err
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
		return func() error {
				if err := exec("BEGIN IMMEDIATE"); err != nil {
					return err
				}
				if _, err := conn.ExecContext(ctx, "INSERT INTO t(v) VALUES(randomblob(64))"); err != nil {
					return err
				}
				return exec("COMMIT")
			}, func() {
				conn.Close()
				db.Close()
			}, nil
	}
	return nil, nil, fmt.Errorf("unknown mode %q", mode)
}
