//go:build perf

package perf_test

import (
	"bufio"
	"context"
	"database/sql"
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

	"github.com/google/uuid"
	"golang.org/x/sys/unix"
	"modernc.org/sqlite"

	"github.com/lvss/lvss/internal/benchreport"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/provider/btrfs"
)

// windowRounds is how many times BenchmarkFreezeWindow measures each
// operation.
const windowRounds = 20

// windowDirty is what each measure writes to the volume just before the
// operation (not synced), as in the hypervisor case.
const windowDirty = 8 << 20

// windowIdle are the lengths of the "idle" measures (no operation, the
// same probes): about as long as the raw ioctl, and as an `lvss backup`.
// The longest stall a probe sees grows with the time it is watched, so
// each operation's window is to be read beside the idle row of about its
// duration (the rows' notes give the operations' durations).
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
// the volume; "idle" rows measure the probes with no operation at all.
func BenchmarkFreezeWindow(b *testing.B) {
	v := newPeerVolume(b, 2<<30)
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

	began := time.Now()
	btrfsOps := append(slices.Clone(idle), []windowOp{
		{name: winRaw, peer: true, run: func() {
			dst := filepath.Join(v.mnt, "raw")
			if err := btrfs.RawSnapshot(v.vol, dst); err != nil {
				b.Fatal(err)
			}
		}, after: func() {
			if err := btrfs.RawDelete(filepath.Join(v.mnt, "raw")); err != nil {
				b.Fatal(err)
			}
		}},
		{name: winBtrfsCLI, peer: true, run: func() {
			timeCmd(b, "btrfs", "subvolume", "snapshot", "-r", v.vol, filepath.Join(v.mnt, "cli"))
		}, after: func() {
			if err := btrfs.RawDelete(filepath.Join(v.mnt, "cli")); err != nil {
				b.Fatal(err)
			}
		}},
		snapperOp(b, snapper),
		{name: winSyncRaw, ref: true, run: func() {
			settle(b, v.vol)
			if err := btrfs.RawSnapshot(v.vol, filepath.Join(v.mnt, "raw")); err != nil {
				b.Fatal(err)
			}
		}, after: func() {
			if err := btrfs.RawDelete(filepath.Join(v.mnt, "raw")); err != nil {
				b.Fatal(err)
			}
		}},
		createOp(b, lvss, d.Socket, v.vol),
		{name: winBackup0, run: func() { lvss.backup(b, v.vol, false) }},
		{name: winBackupSQLite, run: func() { lvss.backup(b, v.vol, true) }},
	}...)
	btrfsRes := measureWindows(b, v.vol, btrfsDB, btrfsOps, func() { dirty(v.vol) })

	round := 0
	hvOps := append(slices.Clone(idle), []windowOp{
		{name: winQGA, peer: true, run: func() {
			round++
			q.freezeClone(b, g.mnt, g.image, filepath.Join(g.clones, fmt.Sprintf("qga-%d.img", round)))
		}, after: func() { g.removeClones(b, "qga-") }},
		{name: winSteps, ref: true, run: func() {
			round++
			guardSteps(b, g.mnt, g.image, filepath.Join(g.clones, fmt.Sprintf("steps-%d.img", round)))
		}, after: func() { g.removeClones(b, "steps-") }},
		createOp(b, lvss, d.Socket, g.mnt),
		{name: winBackup0, run: func() { lvss.backup(b, g.mnt, false) }},
		{name: winBackupSQLite, run: func() { lvss.backup(b, g.mnt, true) }},
	}...)
	hvRes := measureWindows(b, g.mnt, guestDB, hvOps, func() { dirty(g.mnt) })
	b.Logf("%d rounds on each setup in %s", windowRounds, time.Since(began).Round(time.Millisecond))

	rep := &benchreport.Report{Suite: "window", Order: 30}
	common := fmt.Sprintf("Each measure starts with %d MiB freshly written (not synced) to the volume; %d rounds, every operation once per round in a rotated order. The operation is timed as in the tables above (commands from process start to exit, the raw ioctl in-process, qemu-ga from guest-sync to the thaw's answer); each row's note gives its median duration. The \"idle\" rows watch the probes for that long with no operation: the longest stall a probe sees grows with how long it is watched, so read each row beside the idle row of about its duration. Both probes run at once, as processes of their own, on the volume being snapshotted; they stamp their operations with CLOCK_MONOTONIC, the benchmark's clock too.", windowDirty>>20, windowRounds)
	probeNote := "The probe appends 64-byte records to a file on the volume, each write followed by fdatasync, in a tight loop; the window is the longest gap between two completed writes that overlaps the operation, so it includes one write+fdatasync of its own."
	dbNote := "The database client commits one-row transactions (BEGIN IMMEDIATE, INSERT, COMMIT) in a tight loop to a SQLite database on the volume, WAL mode, synchronous=FULL (each commit syncs the WAL), retrying every 0.1 ms while the database is locked (SQLite's own busy handler would add its back-off steps, up to 100 ms, on top); the window is the longest transaction, first attempt to COMMIT's return, that overlaps the operation."
	btrfsWhy := "Neither the raw ioctl nor lvss's btrfs provider freezes the filesystem: what the probes see is how long the snapshot's transaction commit (and, for lvss, the syncfs before it) holds up a concurrent fdatasync, over the probe's own latency. The reference row does the btrfs provider's own kernel steps (syncfs of the volume, then the snapshot ioctl) in the benchmark's process, without lvss: beside it, the lvss rows show what the rest of the lvss operation (process, session, catalog, records, snapshot deletion) adds while the probe is watched."
	sqliteWhy := "The sqlite writer (`lvss-writer sqlite`, a process of its own) holds the database's write lock from its Freeze to its Thaw, so the row with it is what application consistency costs the application: the peers' snapshots hold the database as a crash would leave it."
	hvWhy := "The same probes on the hypervisor setup (the guest ext4). The reference row does the guard's own steps (syncfs, FIFREEZE, `cp --reflink`, FITHAW) in the benchmark's process, without lvss. FIFREEZE blocks writers first and then flushes, so qemu-ga's flush happens frozen; lvss's guard syncs first, but here most of FIFREEZE's time is ext4's own freeze work, which a sync beforehand does not take out (while this benchmark was written, a FIFREEZE right after a syncfs still took tens of ms on a guest written to since its last freeze, and under 1 ms on one that was not)."
	hvSQLiteWhy := "With the sqlite writer the lock is held from the writer's Freeze to its Thaw, which encloses the guard's whole hold and the syncfs before it: unlike the btrfs provider, which flushes at PrepareForSnapshot, before writers freeze, the exec provider's flush (the guard's syncfs) runs while the writers are frozen."
	rep.Tables = append(rep.Tables,
		windowTable("window-btrfs-probe", "Freeze window on btrfs, seen by an application's writes (write + fdatasync)",
			btrfsRes, false, common, probeNote, btrfsWhy),
		windowTable("window-btrfs-sqlite", "Freeze window on btrfs, seen by SQLite commits",
			btrfsRes, true, "Same rounds as the table above, seen by the second probe.", dbNote, sqliteWhy),
		windowTable("window-hypervisor-probe", "Freeze window in the hypervisor case (ext4 image on XFS), seen by an application's writes",
			hvRes, false, hvWhy, probeNote),
		windowTable("window-hypervisor-sqlite", "Freeze window in the hypervisor case, seen by SQLite commits",
			hvRes, true, "Same rounds as the table above, seen by the second probe.", dbNote, hvSQLiteWhy),
	)
	for _, m := range []struct {
		res  *windowResults
		db   bool
		name string
		unit string
	}{
		{btrfsRes, false, winRaw, "btrfs-probe-raw-ms"},
		{btrfsRes, false, winCreate, "btrfs-probe-create-ms"},
		{btrfsRes, true, winBackupSQLite, "btrfs-sqlite-backup-ms"},
		{hvRes, false, winQGA, "hv-probe-qga-ms"},
		{hvRes, false, winCreate, "hv-probe-create-ms"},
	} {
		b.ReportMetric(ms(medianOf(m.res.of(m.db)[m.name])), m.unit)
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
	winSyncRaw      = "syncfs, then the raw ioctl (the btrfs provider's own steps, in-process)"
	winSteps        = "syncfs, FIFREEZE, `cp --reflink`, FITHAW (the guard's own steps, in-process)"
	winCreate       = "`lvss create shadow`"
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
	ref   bool
	run   func()
	after func()
}

func snapperOp(b *testing.B, s *snapperConfig) windowOp {
	var n string
	return windowOp{name: winSnapper, peer: true,
		run:   func() { _, n = s.create(b) },
		after: func() { s.delete(b, n) }}
}

func createOp(b *testing.B, l *lvssCLI, socket, vol string) windowOp {
	var set uuid.UUID
	return windowOp{name: winCreate,
		run:   func() { _, set = l.createShadow(b, vol) },
		after: func() { deleteSet(b, socket, set) }}
}

// windowResults are the windows each probe saw, and how long the
// operations took, by operation.
type windowResults struct {
	ops   []windowOp
	probe map[string][]time.Duration
	db    map[string][]time.Duration
	took  map[string][]time.Duration
}

func (r *windowResults) of(db bool) map[string][]time.Duration {
	if db {
		return r.db
	}
	return r.probe
}

// measureWindows runs both probes on dir and the database at dbPath, and
// windowRounds rounds of ops (rotated), each after dirty.
func measureWindows(b *testing.B, dir, dbPath string, ops []windowOp, dirty func()) *windowResults {
	b.Helper()
	wp := startProbe(b, "write", filepath.Join(dir, "probe.log"))
	dp := startProbe(b, "sqlite", dbPath)
	defer wp.stop(b)
	defer dp.stop(b)
	res := &windowResults{ops: ops, probe: map[string][]time.Duration{}, db: map[string][]time.Duration{}, took: map[string][]time.Duration{}}
	measure := func(op windowOp, keep bool) {
		dirty()
		// The gap before the operation must be measured from a write
		// that completed before it.
		wp.waitPast(b, monoNow())
		dp.waitPast(b, monoNow())
		from := monoNow()
		op.run()
		to := monoNow()
		wp.waitPast(b, to)
		dp.waitPast(b, to)
		if keep {
			res.probe[op.name] = append(res.probe[op.name], wp.gap(from, to))
			res.db[op.name] = append(res.db[op.name], dp.longest(from, to))
			res.took[op.name] = append(res.took[op.name], time.Duration(to-from))
		}
		wp.forget()
		dp.forget()
		if op.after != nil {
			op.after()
		}
	}
	for _, op := range ops {
		measure(op, false) // warm-up, not kept
	}
	for round := range windowRounds {
		for i := range ops {
			measure(ops[(round+i)%len(ops)], true)
		}
	}
	return res
}

func windowTable(id, title string, res *windowResults, db bool, notes ...string) benchreport.Table {
	t := benchreport.Table{ID: id, Title: title, Notes: notes,
		Plot: &benchreport.Plot{File: id, YLabel: "longest stall, ms (median, p10–p90)", Bars: true}}
	by := res.of(db)
	var bestPeer, bestLvss int
	took := func(i int) float64 { return ms(medianOf(res.took[t.Rows[i].Name])) }
	for _, op := range res.ops {
		r := benchreport.Row{Name: op.name, Peer: op.peer, Unit: "ms", Stats: benchreport.Summarize(benchreport.Millis(by[op.name]))}
		if !op.idle {
			r.Note = fmt.Sprintf("operation: %.1f ms", ms(medianOf(res.took[op.name])))
		}
		t.Rows = append(t.Rows, r)
		i := len(t.Rows)
		switch {
		case op.idle, op.ref:
		case op.peer && (bestPeer == 0 || r.Median < t.Rows[bestPeer-1].Median):
			bestPeer = i
		case !op.peer && (bestLvss == 0 || r.Median < t.Rows[bestLvss-1].Median):
			bestLvss = i
		}
	}
	if bestPeer > 0 && bestLvss > 0 {
		p, l := t.Rows[bestPeer-1], t.Rows[bestLvss-1]
		verdict := "shorter than"
		if l.Median > p.Median {
			verdict = fmt.Sprintf("%.2f ms (%.0f%%) longer than", l.Median-p.Median, 100*(l.Median-p.Median)/p.Median)
		}
		t.Notes = append(t.Notes, fmt.Sprintf("In this run lvss's shortest window (%s, %.2f ms median, the operation taking %.1f ms) is %s the shortest peer's (%s, %.2f ms, taking %.1f ms).",
			l.Name, l.Median, took(bestLvss-1), verdict, p.Name, p.Median, took(bestPeer-1)))
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

// gap is the longest time between two consecutive completions that
// overlaps [from, to].
func (p *probe) gap(from, to int64) time.Duration {
	var longest int64
	for i := 1; i < len(p.recs); i++ {
		prev, cur := p.recs[i-1][1], p.recs[i][1]
		if cur > from && prev < to {
			longest = max(longest, cur-prev)
		}
	}
	return time.Duration(longest)
}

// longest is the longest operation (start to end) that overlaps
// [from, to].
func (p *probe) longest(from, to int64) time.Duration {
	var longest int64
	for _, r := range p.recs {
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
