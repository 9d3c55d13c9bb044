//go:build perf

package perf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// This file holds what the peer benchmarks (peers_test.go,
// hypervisor_test.go, window_test.go) share: the loop btrfs with its test
// subvolume, a private snapper configuration, timed commands, SDK writers
// started and stopped by the dozen, lvss's CLI, and lvssd's event log.

// liftedCap is limits.max_snapshots_per_volume for every lvssd of these
// benchmarks: they delete what they make, but the figures must never
// depend on the cap.
const liftedCap = 1_000_000

// helperArg, as the first argument of this test binary, runs one of the
// helper processes of these benchmarks (the probes of window_test.go, the
// qemu-ga sandbox of hypervisor_test.go) instead of the benchmarks.
const helperArg = "__lvss-perf-helper"

// runHelper runs the helper named by args when they ask for one (TestMain
// calls it first); ok is false for a normal run of the benchmarks.
func runHelper(args []string) (code int, ok bool) {
	if len(args) < 2 || args[0] != helperArg {
		return 0, false
	}
	switch args[1] {
	case "probe":
		return probeMain(args[2:]), true
	case "qga-sandbox":
		return qgaSandboxMain(args[2:]), true
	}
	fmt.Fprintf(os.Stderr, "%s: unknown helper %q\n", helperArg, args[1])
	return 2, true
}

// helperCmd is this test binary run as the named helper.
func helperCmd(b *testing.B, name string, args ...string) *exec.Cmd {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	return exec.Command(exe, append([]string{helperArg, name}, args...)...)
}

// peerVolume is a loop btrfs with one subvolume holding a thousand small
// files: the volume every tool of the latency and window benchmarks
// snapshots.
type peerVolume struct {
	fs  *testenv.FS
	mnt string // the btrfs's top level
	vol string // the subvolume: mnt/vol
}

func newPeerVolume(b *testing.B, size int64) *peerVolume {
	b.Helper()
	fs := testenv.LoopFS(b, "btrfs", size)
	v := &peerVolume{fs: fs, mnt: fs.Mount, vol: filepath.Join(fs.Mount, "vol")}
	if out, err := exec.Command("btrfs", "subvolume", "create", v.vol).CombinedOutput(); err != nil {
		b.Fatalf("btrfs subvolume create: %v %s", err, out)
	}
	for i := range 1000 {
		if err := os.WriteFile(filepath.Join(v.vol, "f"+strconv.Itoa(i)), []byte("some data"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	settle(b, v.vol)
	return v
}

// settle writes out everything dirty on path's filesystem (syncfs), so
// that a measure that follows does not pay for earlier writes.
func settle(b *testing.B, path string) {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		b.Fatal(err)
	}
}

// snapperConfig is a snapper configuration of the test subvolume under a
// private configuration root (snapper --root): its sysconfig file and
// config file live in ROOT/etc on the loop btrfs's top level, so the
// machine's /etc/snapper and /etc/default/snapper are never read or
// written. (`snapper create-config` cannot be used for that: it writes
// the machine's /etc whatever --root says; the two files it would write
// are written here from snapper's own template instead, and the
// .snapshots subvolume made as it makes it.)
type snapperConfig struct {
	root, name string
}

const snapperTemplate = "/usr/share/snapper/config-templates/default"

func newSnapperConfig(b *testing.B, v *peerVolume) *snapperConfig {
	b.Helper()
	if _, err := exec.LookPath("snapper"); err != nil {
		b.Fatal("snapper is not installed (scripts/bench installs it: apt-get install snapper)")
	}
	tmpl, err := os.ReadFile(snapperTemplate)
	if err != nil {
		b.Fatalf("snapper's config template: %v", err)
	}
	s := &snapperConfig{root: v.mnt, name: "lvssbench"}
	etc := filepath.Join(s.root, "etc")
	b.Cleanup(func() {
		// The config goes with the loop filesystem anyway; removing it
		// first keeps a failed run's leftovers to the loop image.
		os.RemoveAll(etc)
	})
	rel, err := filepath.Rel(s.root, v.vol)
	if err != nil {
		b.Fatal(err)
	}
	var cfg []string
	for _, l := range strings.Split(string(tmpl), "\n") {
		switch {
		case strings.HasPrefix(l, "SUBVOLUME="):
			l = fmt.Sprintf("SUBVOLUME=%q", "/"+rel)
		case strings.HasPrefix(l, "FSTYPE="):
			l = `FSTYPE="btrfs"`
		}
		cfg = append(cfg, l)
	}
	for path, text := range map[string]string{
		filepath.Join(etc, "default", "snapper"):         fmt.Sprintf("SNAPPER_CONFIGS=%q\n", s.name),
		filepath.Join(etc, "snapper", "configs", s.name): strings.Join(cfg, "\n"),
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	snaps := filepath.Join(v.vol, ".snapshots")
	if out, err := exec.Command("btrfs", "subvolume", "create", snaps).CombinedOutput(); err != nil {
		b.Fatalf("btrfs subvolume create %s: %v %s", snaps, err, out)
	}
	if err := os.Chmod(snaps, 0o750); err != nil {
		b.Fatal(err)
	}
	return s
}

// args are snapper's global options for this configuration.
func (s *snapperConfig) args(more ...string) []string {
	return append([]string{"--no-dbus", "--root", s.root, "-c", s.name}, more...)
}

// create times `snapper create` (process start to exit) and returns the
// snapshot's number.
func (s *snapperConfig) create(b *testing.B) (time.Duration, string) {
	b.Helper()
	took, out := timeCmd(b, "snapper", s.args("create", "--read-only", "--print-number", "--description", "lvss bench")...)
	n := strings.TrimSpace(out)
	if _, err := strconv.Atoi(n); err != nil {
		b.Fatalf("snapper create printed %q, not a snapshot number", out)
	}
	return took, n
}

func (s *snapperConfig) delete(b *testing.B, n string) {
	b.Helper()
	run(b, "snapper", s.args("delete", n)...)
}

// timeCmd runs a command and returns how long it took, from just before
// its process is started to just after it has exited, and its standard
// output. It fails b if the command fails.
func timeCmd(b *testing.B, name string, args ...string) (time.Duration, string) {
	b.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return took, out.String()
}

func run(b *testing.B, name string, args ...string) string {
	b.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lvssCLI runs the built lvss binary against one lvssd.
type lvssCLI struct {
	bin, socket string
}

func newLvssCLI(b *testing.B, d *lvssdtest.Daemon) *lvssCLI {
	return &lvssCLI{bin: lvssdtest.Bin(b, "lvss"), socket: d.Socket}
}

// time runs lvss with args and returns how long the process took (start
// to exit) and its standard output.
func (l *lvssCLI) time(b *testing.B, args ...string) (time.Duration, string) {
	b.Helper()
	return timeCmd(b, l.bin, append([]string{"--socket", l.socket}, args...)...)
}

// version runs `lvss --version`: lvss started and ended, no lvssd call.
func (l *lvssCLI) version(b *testing.B) {
	b.Helper()
	timeCmd(b, l.bin, "--version")
}

// createShadow times `lvss create shadow --for vol --json` and returns
// the set it made.
func (l *lvssCLI) createShadow(b *testing.B, vol string) (time.Duration, uuid.UUID) {
	b.Helper()
	took, out := l.time(b, "create", "shadow", "--for", vol, "--json")
	return took, setIDOf(b, out)
}

// backup times `lvss backup --for vol [--no-writers] --json -- true` and
// returns the set it made (deleted again when it ended).
func (l *lvssCLI) backup(b *testing.B, vol string, writers bool) (time.Duration, uuid.UUID) {
	b.Helper()
	took, out := l.time(b, backupArgs(vol, writers)...)
	return took, setIDOf(b, out)
}

func backupArgs(vol string, writers bool) []string {
	args := []string{"backup", "--for", vol, "--json"}
	if !writers {
		args = append(args, "--no-writers")
	}
	return append(args, "--", "true")
}

func setIDOf(b *testing.B, out string) uuid.UUID {
	b.Helper()
	var r struct {
		SetID uuid.UUID `json:"snapshot_set_id"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.SetID == uuid.Nil {
		b.Fatalf("no snapshot_set_id in lvss's output (%v):\n%s", err, out)
	}
	return r.SetID
}

// deleteSet deletes a snapshot set through lvssd (outside any measure).
func deleteSet(b *testing.B, socket string, set uuid.UUID) {
	b.Helper()
	err := client.Run(context.Background(), socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if err := bc.SetContext(ctx, vss.CtxAll); err != nil {
			return err
		}
		_, _, err := bc.DeleteSnapshots(ctx, set, vss.ObjectSnapshotSet, true)
		return err
	})
	if err != nil {
		b.Fatalf("delete set %s: %v", set, err)
	}
}

// eventLog reads lvssd's event log from where it last stopped.
type eventLog struct {
	conn  *client.Conn
	after uint64
	seen  []client.LogEvent
}

func newEventLog(b *testing.B, socket string) *eventLog {
	b.Helper()
	conn, err := client.Dial(context.Background(), socket)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	e := &eventLog{conn: conn}
	e.poll(b)
	e.seen = nil
	return e
}

func (e *eventLog) poll(b *testing.B) {
	b.Helper()
	evs, err := e.conn.ListEvents(context.Background(), e.after, 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, ev := range evs {
		e.after = max(e.after, ev.Seq)
	}
	e.seen = append(e.seen, evs...)
	// Only recent entries are looked up: keep the slice short.
	if len(e.seen) > 2000 {
		e.seen = slices.Clone(e.seen[len(e.seen)-1000:])
	}
}

// held returns how long the freeze guard held the set's filesystems frozen
// (lvssd's event "filesystems held frozen": from the first FIFREEZE to the
// last FITHAW, as the guard timed them).
func (e *eventLog) held(b *testing.B, set uuid.UUID) time.Duration {
	b.Helper()
	return e.heldFor(b, set, "filesystems held frozen")
}

// heldFor returns the "held" duration of lvssd's event message for the
// set, reading the log again once if it is not there yet.
func (e *eventLog) heldFor(b *testing.B, set uuid.UUID, message string) time.Duration {
	b.Helper()
	for range 2 {
		for _, ev := range e.seen {
			if ev.Message == message && ev.Fields["set"] == set.String() {
				d, err := time.ParseDuration(ev.Fields["held"])
				if err != nil {
					b.Fatalf("event %q: held %q: %v", ev.Message, ev.Fields["held"], err)
				}
				return d
			}
		}
		e.poll(b)
	}
	b.Fatalf("lvssd's event log has no event %q for set %s", message, set)
	return 0
}

// peerWriter is an SDK writer with one component covering a directory of
// the volume; it does nothing at Freeze and Thaw, so a backup measures
// lvss's own cost of a writer.
type peerWriter struct{ path string }

func (w peerWriter) Identify(_ context.Context, md *writer.Metadata) error {
	if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, Name: "data", Selectable: true}); err != nil {
		return err
	}
	return md.AddFiles("", "data", w.path, "*", true, "", 0)
}

func (peerWriter) Freeze(context.Context, *writer.Event) error { return nil }
func (peerWriter) Thaw(context.Context, *writer.Event) error   { return nil }
func (peerWriter) Abort(context.Context, *writer.Event) error  { return nil }

// writerGroup runs SDK writers in this process (writer.Run, one stream
// each, as one application hosting many writers would), grown and
// stopped between measures so that lvssd has exactly the writers a
// measure names.
type writerGroup struct {
	socket, path string
	cancels      []context.CancelFunc
	wg           sync.WaitGroup
}

func newWriterGroup(b *testing.B, socket, path string) *writerGroup {
	g := &writerGroup{socket: socket, path: path}
	b.Cleanup(func() { g.cancel() })
	return g
}

// grow starts writers until n run, and returns once lvssd lists n writers
// with their metadata.
func (g *writerGroup) grow(b *testing.B, n int) {
	b.Helper()
	for i := len(g.cancels); i < n; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		g.cancels = append(g.cancels, cancel)
		name := fmt.Sprintf("peers-%d", i)
		id := writer.Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceURL, []byte("lvss-perf/"+name)), Name: name}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			_ = writer.Run(ctx, writer.Options{Socket: g.socket}, id, peerWriter{path: g.path})
		}()
	}
	lvssdtest.WaitWriters(b, g.socket, n)
}

func (g *writerGroup) cancel() {
	for _, c := range g.cancels {
		c()
	}
	g.cancels = nil
	g.wg.Wait()
}

// stop ends every writer and returns once lvssd lists none.
func (g *writerGroup) stop(b *testing.B) {
	b.Helper()
	g.cancel()
	lvssdtest.WaitWriters(b, g.socket, 0)
}

// doSnapshotSet runs a whole writer-context backup of vol with the Go
// requester and returns how long DoSnapshotSet took, from the call to the
// end of its Wait (PrepareForSnapshot, Freeze, the commit, Thaw,
// PostSnapshot and the catalog's record of the set): the figure of the
// issue's "lvss over the raw ioctl" targets. The rest of the session and
// the auto-release deletion at its end are outside the measure. It
// returns the set too.
func doSnapshotSet(b *testing.B, socket, vol string) (time.Duration, uuid.UUID) {
	b.Helper()
	var took time.Duration
	var set uuid.UUID
	err := client.Run(context.Background(), socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if err := bc.SetBackupState(ctx, false, false, vss.BackupCopy, false); err != nil {
			return err
		}
		a, err := bc.GatherWriterMetadata(ctx)
		if err == nil {
			err = a.Wait(ctx)
		}
		if err != nil {
			return err
		}
		if set, err = bc.StartSnapshotSet(ctx); err != nil {
			return err
		}
		if _, err := bc.AddToSnapshotSet(ctx, vol, uuid.Nil); err != nil {
			return err
		}
		if a, err = bc.PrepareForBackup(ctx); err == nil {
			err = a.Wait(ctx)
		}
		if err != nil {
			return err
		}
		start := time.Now()
		if a, err = bc.DoSnapshotSet(ctx); err == nil {
			err = a.Wait(ctx)
		}
		took = time.Since(start)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return took, set
}

// samples collects the measures of a run by row name, in the order rows
// were first measured.
type samples struct {
	order []string
	by    map[string][]time.Duration
}

func newSamples() *samples { return &samples{by: map[string][]time.Duration{}} }

func (s *samples) add(name string, d time.Duration) {
	if _, ok := s.by[name]; !ok {
		s.order = append(s.order, name)
	}
	s.by[name] = append(s.by[name], d)
}

func medianOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
