//go:build perf

package perf_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/benchreport"
	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// hvRounds is how many times BenchmarkPeersHypervisor measures each way.
const hvRounds = 20

// hvDirty is how much each measure of the hypervisor case writes to the
// guest filesystem just before it starts (not synced), so that freezing
// has something to flush.
const hvDirty = 8 << 20

// BenchmarkPeersHypervisor is the hypervisor case: an ext4 "guest"
// filesystem in an image file on a host XFS (reflink=1), snapshotted by
// freezing the guest and reflink-cloning its image. The peer is Debian's
// qemu-guest-agent driven over its socket as a hypervisor drives it
// (guest-sync, guest-fsfreeze-freeze-list naming only the guest mount,
// `cp --reflink=always`, guest-fsfreeze-thaw); against it lvssd's exec
// provider, whose commit is the same `cp` inside the freeze guard's hold,
// driven by `lvss create shadow`, `lvss backup --no-writers` and
// DoSnapshotSet through the Go API. Each measure starts with hvDirty
// bytes freshly written to the guest.
func BenchmarkPeersHypervisor(b *testing.B) {
	g := newGuestDisk(b, 256<<20)
	q := startQGA(b, g.mnt)
	d := lvssdtest.StartDaemon(b, lvssdtest.DaemonOptions{Config: g.lvssdConfig()})
	lvss := newLvssCLI(b, d)
	events := newEventLog(b, d.Socket)
	s := newSamples()
	warmup := true
	rec := func(name string, took time.Duration) {
		if !warmup {
			s.add(name, took)
		}
	}
	steps := []func(round int){
		func(round int) {
			g.dirty(b)
			r := q.freezeClone(b, g.mnt, g.image, filepath.Join(g.clones, fmt.Sprintf("qga-%d.img", round)))
			rec(hvQGA, r.whole)
			rec(hvQGAFrozen, r.frozen)
			rec(hvQGAFrozenSent, r.frozen+r.freezeCall)
			g.removeClones(b, "qga-")
		},
		func(int) {
			g.dirty(b)
			took, set := lvss.createShadow(b, g.mnt)
			rec(hvCreate, took)
			rec(hvCreate+hvHeld, events.held(b, set))
			deleteSet(b, d.Socket, set)
		},
		func(int) {
			g.dirty(b)
			took, set := lvss.backup(b, g.mnt, false)
			rec(hvBackup, took)
			rec(hvBackup+hvHeld, events.held(b, set))
		},
		func(int) {
			g.dirty(b)
			took, set := doSnapshotSet(b, d.Socket, g.mnt)
			rec(hvDSS, took)
			rec(hvDSS+hvHeld, events.held(b, set))
		},
		func(round int) {
			g.dirty(b)
			whole, frozen, _ := guardSteps(b, g.mnt, g.image, filepath.Join(g.clones, fmt.Sprintf("steps-%d.img", round)))
			rec(hvSteps, whole)
			rec(hvStepsFrozen, frozen)
			g.removeClones(b, "steps-")
		},
	}
	began := time.Now()
	for _, step := range steps {
		step(-1)
	}
	warmup = false
	for round := range hvRounds {
		for i := range steps {
			steps[(round+i)%len(steps)](round)
		}
	}
	b.Logf("%d rounds in %s", hvRounds, time.Since(began).Round(time.Millisecond))
	if err := hypervisorReport(b, s).Write(); err != nil {
		b.Fatal(err)
	}
}

const (
	hvQGA           = "qemu-ga: guest-sync → thaw answered"
	hvQGAFrozen     = "qemu-ga: freeze-list answered → thaw answered"
	hvQGAFrozenSent = "qemu-ga: freeze-list sent → thaw answered"
	hvCreate        = "`lvss create shadow` (exec provider)"
	hvBackup        = "`lvss backup --no-writers -- true` (exec provider)"
	hvDSS           = "DoSnapshotSet (Go API, exec provider)"
	hvHeld          = ": guard's hold"
	hvSteps         = "the guard's steps alone, in-process: syncfs, FIFREEZE, `cp --reflink`, FITHAW"
	hvStepsFrozen   = "the guard's steps alone: FIFREEZE → FITHAW"
)

func hypervisorReport(b *testing.B, s *samples) *benchreport.Report {
	row := func(name string, peer bool) benchreport.Row {
		return benchreport.Row{Name: name, Peer: peer, Unit: "ms", Stats: benchreport.Summarize(benchreport.Millis(s.by[name]))}
	}
	whole := benchreport.Table{
		ID:    "peers-hypervisor",
		Title: "Freeze and reflink-clone of an ext4 image on XFS (the hypervisor case): qemu-guest-agent and lvss's exec provider",
		Notes: []string{
			fmt.Sprintf("A 256 MiB ext4 image (no lazy init) on a loop XFS made with reflink=1, loop-mounted as the guest filesystem; %d rounds, each measuring every row once in a rotated order, each measure starting with %d MiB freshly written (not synced) to the guest. qemu-ga (Debian's, `qemu-ga -m unix-listen`) is driven over its socket on one connection, as a hypervisor drives it: guest-sync, guest-fsfreeze-freeze-list naming only the guest mount, `cp --reflink=always IMAGE CLONE` (a process), guest-fsfreeze-thaw; timed from the guest-sync request to the thaw's answer. lvssd's exec provider runs the same `cp` (in `/bin/sh -c`, as its commit command) inside the freeze guard's hold: the guard syncs the guest (syncfs) before FIFREEZE, FITHAWs when the commit returns. The lvss CLI rows are timed from process start to exit (process start and a whole VSS session included, and the clone's deletion at the end of `lvss backup`); DoSnapshotSet from the call to the end of its Wait. The last row does the guard's own steps (syncfs, FIFREEZE, the same `cp`, FITHAW) in the benchmark's process, without lvss: the floor of lvss's way, and beside qemu-ga what syncing before the freeze changes.", hvRounds, hvDirty>>20),
			"qemu-ga runs in a mount namespace of its own holding only `/`, pseudo-filesystems and the guest mount, because its guest-fsfreeze-thaw issues FITHAW on every mounted filesystem it sees: on the machine's namespace it would thaw filesystems other programs had frozen. Every RPC but guest-sync, guest-ping, guest-info and the three fsfreeze calls it needs is disabled with `-b`, and the benchmark refuses to send the plain guest-fsfreeze-freeze (it freezes every filesystem of the machine).",
		},
		Rows: []benchreport.Row{row(hvQGA, true), row(hvCreate, false), row(hvBackup, false), row(hvDSS, false), row(hvSteps, false)},
		Plot: &benchreport.Plot{File: "peers-hypervisor", YLabel: "ms (median, p10–p90)", Bars: true},
	}
	frozen := benchreport.Table{
		ID:    "peers-hypervisor-frozen",
		Title: "How long the guest filesystem was frozen (hypervisor case)",
		Notes: []string{
			"qemu-ga's figures are what its client can see: from the freeze-list call's answer to the thaw's answer (the clone and the thaw), and from the freeze-list request to the thaw's answer, which also counts FIFREEZE itself: FIFREEZE blocks writers first and then flushes the dirty data, so the flush happens frozen. lvss's figure is the freeze guard's own timing, from its first FIFREEZE to its last FITHAW (lvssd's event \"filesystems held frozen\"): the guard has flushed the guest with syncfs before, while applications could still write. The last row is the same span for the guard's steps done in-process without lvss (its FIFREEZE to its FITHAW): what lvss's hold adds to it is lvss's own cost inside the freeze (the commit command's start through `/bin/sh`, the round trips between lvssd, the guard and the provider). The freeze window tables below measure all of them from outside, by the writes an application could not make.",
		},
		Rows: []benchreport.Row{row(hvQGAFrozen, true), row(hvQGAFrozenSent, true), row(hvCreate+hvHeld, false), row(hvBackup+hvHeld, false), row(hvDSS+hvHeld, false), row(hvStepsFrozen, false)},
	}
	for _, m := range []struct{ name, unit string }{
		{hvQGA, "qga-ms"}, {hvCreate, "create-ms"}, {hvBackup, "backup0-ms"}, {hvDSS, "dss-ms"},
		{hvQGAFrozen, "qga-frozen-ms"}, {hvQGAFrozenSent, "qga-freeze-to-thaw-ms"}, {hvCreate + hvHeld, "create-held-ms"},
	} {
		b.ReportMetric(ms(medianOf(s.by[m.name])), m.unit)
	}
	return &benchreport.Report{Suite: "hypervisor", Order: 20, Tables: []benchreport.Table{whole, frozen}}
}

// guestDisk is the hypervisor case's storage: an ext4 image file on a
// loop XFS (the host filesystem, reflink=1), attached to a loop device of
// its own and mounted (the guest filesystem); clones go beside the image.
type guestDisk struct {
	host   *testenv.FS
	image  string // the guest's image file on the host XFS
	clones string // where clones of it go, on the host XFS
	mnt    string // the guest filesystem's mount point (on the machine's root filesystem)
	dev    string
	data   []byte
}

func newGuestDisk(b *testing.B, size int64) *guestDisk {
	b.Helper()
	host := testenv.LoopFS(b, "xfs", 1<<30, "-m", "reflink=1")
	g := &guestDisk{host: host, image: filepath.Join(host.Mount, "disks", "guest.img"),
		clones: filepath.Join(host.Mount, "disks", "clones"), data: make([]byte, hvDirty)}
	if err := os.MkdirAll(g.clones, 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(g.image)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	// No lazy init: ext4lazyinit would write the inode tables in the
	// background, into every measure.
	run(b, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", g.image)
	dir, err := os.MkdirTemp("", "lvss-guest-")
	if err != nil {
		b.Fatal(err)
	}
	g.mnt = filepath.Join(dir, "guest")
	if err := os.Mkdir(g.mnt, 0o755); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if g.dev != "" {
			(&testenv.FS{Mount: g.mnt}).Thaw()
			for i := 0; ; i++ {
				err := unix.Unmount(g.mnt, 0)
				if err == nil || err == unix.EINVAL || err == unix.ENOENT {
					break
				}
				if i == 50 {
					_ = unix.Unmount(g.mnt, unix.MNT_DETACH)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			_ = exec.Command("losetup", "-d", g.dev).Run()
		}
		os.RemoveAll(dir)
	})
	g.dev = strings.TrimSpace(run(b, "losetup", "--find", "--show", g.image))
	run(b, "mount", g.dev, g.mnt)
	for i := range 200 {
		if err := os.WriteFile(filepath.Join(g.mnt, fmt.Sprintf("f%d", i)), []byte("guest data"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	settle(b, g.mnt)
	return g
}

// dirty writes hvDirty bytes of new content to the guest, not synced.
func (g *guestDisk) dirty(b *testing.B) {
	b.Helper()
	g.data[0]++
	if err := os.WriteFile(filepath.Join(g.mnt, "dirty.bin"), g.data, 0o644); err != nil {
		b.Fatal(err)
	}
}

func (g *guestDisk) removeClones(b *testing.B, prefix string) {
	b.Helper()
	ms, _ := filepath.Glob(filepath.Join(g.clones, prefix+"*"))
	for _, m := range ms {
		if err := os.Remove(m); err != nil {
			b.Fatal(err)
		}
	}
}

// lvssdConfig is lvssd's configuration for the guest: an exec provider
// whose commit reflink-clones the image (the worked example of
// docs/provider-exec.md, with the image's path written in instead of
// looked up from the loop device).
func (g *guestDisk) lvssdConfig() string {
	return fmt.Sprintf(`[limits]
max_snapshots_per_volume = %d

[[providers.exec]]
name = "image-clone"
volumes = [%q]
timeout = "5s"
commit = '''
set -eu
clone='%s'/"$LVSS_SNAPSHOT_ID_1.img"
cp --reflink=always -- '%s' "$clone"
printf '%%s\n' "$clone"
'''
delete = 'rm -f -- "$LVSS_SNAPSHOT_HANDLE"'
`, liftedCap, g.mnt, g.clones, g.image)
}

// guardSteps does, in the benchmark's process, what lvss's freeze guard
// and exec provider do around the clone, without lvss: syncfs of the
// guest, FIFREEZE, `cp --reflink=always`, FITHAW. It returns the time of
// all four and of FIFREEZE to FITHAW: the floor of lvss's way, beside
// which lvss's own figures show what lvss adds; and when the clone
// command was started (inside the freeze).
func guardSteps(b *testing.B, mnt, image, clone string) (whole, frozen time.Duration, cloned time.Time) {
	b.Helper()
	f, err := os.Open(mnt)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	start := time.Now()
	if err := unix.Syncfs(fd); err != nil {
		b.Fatal(err)
	}
	froze := time.Now()
	if err := unix.IoctlSetInt(fd, fifreeze, 0); err != nil {
		b.Fatalf("FIFREEZE %s: %v", mnt, err)
	}
	cloned = time.Now()
	out, cpErr := exec.Command("cp", "--reflink=always", "--", image, clone).CombinedOutput()
	thawErr := unix.IoctlSetInt(fd, fithaw, 0)
	end := time.Now()
	if thawErr != nil {
		b.Fatalf("FITHAW %s: %v", mnt, thawErr)
	}
	if cpErr != nil {
		b.Fatalf("cp --reflink=always: %v %s", cpErr, out)
	}
	return end.Sub(start), end.Sub(froze), cloned
}

// FIFREEZE and FITHAW, _IOWR('X', 119/120, int): x/sys/unix has no names
// for them.
const (
	fifreeze = 0xC0045877
	fithaw   = 0xC0045878
)

// qgaAllowed are the only RPCs the benchmark's qemu-ga answers; it is
// started with every other one disabled (-b), guest-fsfreeze-freeze (which
// freezes every filesystem of the machine) first of all.
var qgaAllowed = []string{"guest-sync", "guest-sync-delimited", "guest-ping", "guest-info",
	"guest-fsfreeze-status", "guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw"}

// qga is a connection to a qemu-ga listening on a Unix socket.
type qga struct {
	conn net.Conn
	dec  *json.Decoder
	id   int
}

// startQGA starts Debian's qemu-ga on a socket in a temporary directory,
// its pid file and state directory there too, in a mount namespace that
// keeps only guest among the machine's real filesystems (qgaSandboxMain),
// and connects to it.
func startQGA(b *testing.B, guest string) *qga {
	b.Helper()
	bin, err := exec.LookPath("qemu-ga")
	if err != nil {
		b.Fatal("qemu-ga is not installed (scripts/bench installs it: apt-get install qemu-guest-agent)")
	}
	out, err := exec.Command(bin, "-b", "help").CombinedOutput()
	if err != nil {
		b.Fatalf("qemu-ga -b help: %v %s", err, out)
	}
	var blocked []string
	for _, rpc := range strings.Fields(string(out)) {
		if !slices.Contains(qgaAllowed, rpc) {
			blocked = append(blocked, rpc)
		}
	}
	if !slices.Contains(blocked, "guest-fsfreeze-freeze") {
		b.Fatalf("qemu-ga -b help does not list guest-fsfreeze-freeze, so it cannot be disabled: %s", out)
	}
	dir, err := os.MkdirTemp("", "lvss-qga-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "qga.sock")
	cmd := helperCmd(b, "qga-sandbox", guest, "--", bin, "-m", "unix-listen", "-p", sock,
		"-f", filepath.Join(dir, "qemu-ga.pid"), "-t", state, "-b", strings.Join(blocked, ","))
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	p := lvssdtest.Start(b, dir, "qemu-ga", cmd)
	b.Cleanup(func() { stopQGA(b, p) })
	q := &qga{}
	lvssdtest.Eventually(b, 15*time.Second, "qemu-ga to listen on "+sock, func() bool {
		if p.Exited() {
			b.Fatalf("qemu-ga exited: %v\n%s", p.Wait(), p.Output())
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false
		}
		q.conn, q.dec = c, json.NewDecoder(c)
		return true
	})
	b.Cleanup(func() { q.conn.Close() })
	q.sync(b)
	if st := q.call(b, "guest-fsfreeze-status", nil); string(st) != `"thawed"` {
		b.Fatalf("qemu-ga's fsfreeze status is %s before anything was frozen", st)
	}
	return q
}

// stopQGA ends qemu-ga (SIGTERM; it thaws what it froze, if anything, as
// it exits) before the harness would: one run saw it take longer than the
// harness's 10 s, so it gets 2 s, then what it was doing is logged and it
// is killed (the guest's own cleanup thaws the guest anyway).
func stopQGA(b *testing.B, p *lvssdtest.Proc) {
	if p.Exited() {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.Done():
		return
	case <-time.After(2 * time.Second):
	}
	pid := p.Cmd.Process.Pid
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	stack, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stack", pid))
	b.Logf("qemu-ga did not exit within 2 s of SIGTERM; killing it. /proc/%d/stat: %s\nstack:\n%s", pid, st, stack)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-p.Done()
}

// call sends one command and returns its answer's "return" value. It
// refuses guest-fsfreeze-freeze, which freezes every filesystem of the
// machine.
func (q *qga) call(b *testing.B, cmd string, args any) json.RawMessage {
	b.Helper()
	if cmd == "guest-fsfreeze-freeze" {
		b.Fatal("refusing guest-fsfreeze-freeze: it freezes every filesystem of the machine; use guest-fsfreeze-freeze-list")
	}
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	if err := q.conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		b.Fatal(err)
	}
	if err := json.NewEncoder(q.conn).Encode(req); err != nil {
		b.Fatalf("qemu-ga %s: %v", cmd, err)
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
		Error  *struct {
			Class string `json:"class"`
			Desc  string `json:"desc"`
		} `json:"error"`
	}
	if err := q.dec.Decode(&resp); err != nil {
		b.Fatalf("qemu-ga %s: %v", cmd, err)
	}
	if resp.Error != nil {
		b.Fatalf("qemu-ga %s: %s: %s", cmd, resp.Error.Class, resp.Error.Desc)
	}
	return resp.Return
}

func (q *qga) sync(b *testing.B) {
	b.Helper()
	q.id++
	if got := string(q.call(b, "guest-sync", map[string]int{"id": q.id})); got != fmt.Sprint(q.id) {
		b.Fatalf("qemu-ga guest-sync %d answered %s", q.id, got)
	}
}

// qgaTimes are the parts of one freeze-and-clone through qemu-ga.
type qgaTimes struct {
	whole      time.Duration // guest-sync request to the thaw's answer
	freezeCall time.Duration // freeze-list request to its answer (FIFREEZE, flush included)
	frozen     time.Duration // freeze-list answer to the thaw's answer
	cloned     time.Time     // when the clone command was started (frozen)
}

// freezeClone freezes mount alone, clones image to clone and thaws.
func (q *qga) freezeClone(b *testing.B, mount, image, clone string) qgaTimes {
	b.Helper()
	start := time.Now()
	q.sync(b)
	sent := time.Now()
	n := q.call(b, "guest-fsfreeze-freeze-list", map[string][]string{"mountpoints": {mount}})
	frozen := time.Now()
	if string(n) != "1" {
		q.call(b, "guest-fsfreeze-thaw", nil)
		b.Fatalf("qemu-ga froze %s filesystems for the one mount point %s", n, mount)
	}
	cloned := time.Now()
	out, cpErr := exec.Command("cp", "--reflink=always", "--", image, clone).CombinedOutput()
	thawed := q.call(b, "guest-fsfreeze-thaw", nil)
	end := time.Now()
	if cpErr != nil {
		b.Fatalf("cp --reflink=always: %v %s", cpErr, out)
	}
	if string(thawed) != "1" {
		b.Fatalf("qemu-ga thawed %s filesystems, want the 1 it froze", thawed)
	}
	return qgaTimes{whole: end.Sub(start), freezeCall: frozen.Sub(sent), frozen: end.Sub(frozen), cloned: cloned}
}

// qgaSandboxMain is the helper process that becomes qemu-ga: started in a
// mount namespace of its own (Unshareflags CLONE_NEWNS, mounts made
// private by Go), it detaches every mount that qemu-ga's thaw would touch
// (real filesystems: a device number with a major, or btrfs) except `/`
// and the mount points given, checks that none is left, and executes
// the command after "--". The machine's own mounts are untouched: the
// detaching happens in the private namespace alone.
func qgaSandboxMain(args []string) int {
	i := slices.Index(args, "--")
	if i < 0 || i == len(args)-1 {
		fmt.Fprintln(os.Stderr, "qga-sandbox: usage: KEEP... -- COMMAND ARGS...")
		return 2
	}
	keep, argv := args[:i], args[i+1:]
	touched := func(m mountinfo.Mount) bool {
		return m.MountPoint != "/" && !slices.Contains(keep, m.MountPoint) && (m.Major != 0 || m.FSType == "btrfs")
	}
	ms, err := mountinfo.Read()
	if err != nil {
		fmt.Fprintln(os.Stderr, "qga-sandbox:", err)
		return 1
	}
	for _, m := range slices.Backward(ms) {
		if touched(m) {
			_ = unix.Unmount(m.MountPoint, unix.MNT_DETACH) // a parent's detach may have taken it already
		}
	}
	if ms, err = mountinfo.Read(); err != nil {
		fmt.Fprintln(os.Stderr, "qga-sandbox:", err)
		return 1
	}
	for _, m := range ms {
		if touched(m) {
			fmt.Fprintf(os.Stderr, "qga-sandbox: %s (%s) is still mounted in the sandbox\n", m.MountPoint, m.FSType)
			return 1
		}
	}
	for _, k := range keep {
		if !slices.ContainsFunc(ms, func(m mountinfo.Mount) bool { return m.MountPoint == k }) {
			fmt.Fprintf(os.Stderr, "qga-sandbox: %s is not a mount point\n", k)
			return 1
		}
	}
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "qga-sandbox:", err)
		return 1
	}
	err = syscall.Exec(bin, argv, os.Environ())
	fmt.Fprintln(os.Stderr, "qga-sandbox: exec:", err)
	return 1
}
