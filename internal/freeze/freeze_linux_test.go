package freeze

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vsserr"
)

const (
	ext4Size  = 128 << 20
	xfsSize   = 320 << 20 // mkfs.xfs refuses less than 300 MB
	btrfsSize = 256 << 20

	frozenProbe = 300 * time.Millisecond // a write that takes this long is blocked
	thawedProbe = 5 * time.Second        // a thawed filesystem answers well within this
)

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func assertFrozen(t testing.TB, fs *testenv.FS) {
	t.Helper()
	if fs.Writable(frozenProbe) {
		t.Fatalf("%s (%s) accepted a write: not frozen", fs.Mount, fs.Type)
	}
}

func assertThawed(t testing.TB, fs *testenv.FS) {
	t.Helper()
	if !fs.Writable(thawedProbe) {
		t.Fatalf("%s (%s) still blocks writes: not thawed", fs.Mount, fs.Type)
	}
}

// waitThawed polls until fs takes writes, failing after limit; it returns
// how long that took.
func waitThawed(t testing.TB, fs *testenv.FS, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for !fs.Writable(50 * time.Millisecond) {
		if time.Since(start) > limit {
			t.Fatalf("%s still frozen %s later", fs.Mount, limit)
		}
	}
	return time.Since(start)
}

func waitNoRecords(t testing.TB, runDir string, limit time.Duration) {
	t.Helper()
	start := time.Now()
	for len(records(t, runDir)) > 0 {
		if time.Since(start) > limit {
			t.Fatalf("records still in %s after %s: %+v", runDir, limit, records(t, runDir))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIoctlNumbersAgainstKernel(t *testing.T) {
	if fiFreeze != 0xC0045877 || fiThaw != 0xC0045878 {
		t.Fatalf("FIFREEZE %#x FITHAW %#x, want 0xc0045877 0xc0045878 (<linux/fs.h>)", fiFreeze, fiThaw)
	}
	fs := testenv.LoopFS(t, "ext4", ext4Size)
	fd, err := openNoWrite(fs.Mount)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// A number the kernel does not know gives ENOTTY; FITHAW on a
	// filesystem that is not frozen gives EINVAL, so EINVAL proves the
	// kernel took the number as FITHAW.
	if err := fithaw(fd); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("FITHAW on a thawed fs: %v, want EINVAL", err)
	}
	if err := fifreeze(fd); err != nil {
		t.Fatalf("FIFREEZE: %v", err)
	}
	assertFrozen(t, fs)
	if err := fifreeze(fd); !errors.Is(err, unix.EBUSY) {
		t.Errorf("second FIFREEZE: %v, want EBUSY", err)
	}
	if err := fithaw(fd); err != nil {
		t.Fatalf("FITHAW: %v", err)
	}
	assertThawed(t, fs)
}

func TestFreezeThawExt4AndXFS(t *testing.T) {
	e4 := testenv.LoopFS(t, "ext4", ext4Size)
	xf := testenv.LoopFS(t, "xfs", xfsSize)
	sub := filepath.Join(xf.Mount, "data")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	// Dirty data, so that syncfs has something to flush.
	if err := os.WriteFile(filepath.Join(e4.Mount, "dirty"), make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	g, runDir := startGuard(t, 10*time.Second)
	if n := len(records(t, runDir)); n != 0 {
		t.Fatalf("%d records before Freeze", n)
	}
	// The guard's test hook (TestMain) fails any FIFREEZE whose record is
	// not on disk yet, so success here also proves "record first".
	if err := g.Freeze(ctx(t), []string{e4.Mount, sub}); err != nil {
		t.Fatal(err)
	}
	recs := records(t, runDir)
	if len(recs) != 2 {
		t.Fatalf("%d records while frozen, want 2: %+v", len(recs), recs)
	}
	for _, r := range recs {
		if r.Pid != g.Pid() || (r.Mnt != e4.Mount && r.Mnt != xf.Mount) {
			t.Errorf("record %+v", r)
		}
	}
	assertFrozen(t, e4)
	assertFrozen(t, xf)
	// lvss status's view: what the records say is held, by a live guard.
	hs, err := Held(runDir)
	if err != nil || len(hs) != 2 {
		t.Fatalf("Held while frozen: %+v %v", hs, err)
	}
	for _, h := range hs {
		if h.GuardPid != g.Pid() || !h.GuardRunning || h.Since.IsZero() || (h.MountPoint != e4.Mount && h.MountPoint != xf.Mount) {
			t.Errorf("held %+v", h)
		}
	}
	st := g.Stats()
	if len(st.Filesystems) != 2 || st.Filesystems[0].MountPoint != e4.Mount || st.Filesystems[1].Type != "xfs" {
		t.Fatalf("stats %+v", st)
	}

	held, err := g.Thaw()
	if err != nil {
		t.Fatal(err)
	}
	assertThawed(t, e4)
	assertThawed(t, xf)
	if n := len(records(t, runDir)); n != 0 {
		t.Fatalf("%d records after Thaw", n)
	}
	if hs, err := Held(runDir); err != nil || len(hs) != 0 {
		t.Fatalf("Held after Thaw: %+v %v", hs, err)
	}
	st = g.Stats()
	if held <= 0 || held != st.Held || st.Ended != "thaw" || st.Freeze <= 0 || st.Thaw <= 0 || st.Call <= 0 || st.Spawn <= 0 {
		t.Fatalf("held %s, stats %+v", held, st)
	}
	t.Logf("spawn %s resolve %s sync %s freeze %s thaw %s held %s (Freeze call %s)", st.Spawn, st.Resolve, st.Sync, st.Freeze, st.Thaw, st.Held, st.Call)
	for _, f := range st.Filesystems {
		t.Logf("  %s %s %s: sync %s freeze %s thaw %s", f.Type, f.Device, f.MountPoint, f.Sync, f.Freeze, f.Thaw)
	}

	// Idempotent, twice.
	for i := 0; i < 2; i++ {
		if h, err := g.Thaw(); err != nil || h != held {
			t.Fatalf("Thaw again: %s %v", h, err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := g.Close(); err != nil {
			t.Fatalf("Close after Thaw: %v", err)
		}
	}
	select {
	case <-g.Done():
	default:
		t.Fatal("guard still running after Close")
	}
	if err := g.Freeze(ctx(t), []string{e4.Mount}); vsserr.Code(err) != vsserr.BadState {
		t.Fatalf("Freeze after Thaw: %v", err)
	}
}

func TestDedupeBtrfsSubvolumes(t *testing.T) {
	fs := testenv.LoopFS(t, "btrfs", btrfsSize)
	if _, err := exec.LookPath("btrfs"); err != nil {
		testenv.Missing(t, "btrfs (btrfs-progs)")
	}
	var mounts []*testenv.FS
	for _, sv := range []string{"sv1", "sv2"} {
		if out, err := exec.Command("btrfs", "-q", "subvolume", "create", filepath.Join(fs.Mount, sv)).CombinedOutput(); err != nil {
			t.Fatalf("subvolume create: %v\n%s", err, out)
		}
		mnt := t.TempDir()
		if out, err := exec.Command("mount", "-o", "subvol="+sv, fs.Device, mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount subvol: %v\n%s", err, out)
		}
		t.Cleanup(func() {
			fs.Thaw()
			if err := unix.Unmount(mnt, 0); err != nil {
				_ = unix.Unmount(mnt, unix.MNT_DETACH)
			}
		})
		mounts = append(mounts, &testenv.FS{Type: "btrfs", Mount: mnt})
	}
	file := filepath.Join(mounts[1].Mount, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	g, runDir := startGuard(t, 10*time.Second)
	// Four paths, three mounts, one superblock: a second FIFREEZE on it
	// would fail with EBUSY, so success means it was issued once.
	paths := []string{mounts[0].Mount, mounts[1].Mount, file, fs.Mount}
	if err := g.Freeze(ctx(t), paths); err != nil {
		t.Fatal(err)
	}
	st := g.Stats()
	if len(st.Filesystems) != 1 || len(st.Filesystems[0].Paths) != 4 {
		t.Fatalf("want one filesystem holding 4 paths: %+v", st.Filesystems)
	}
	if recs := records(t, runDir); len(recs) != 1 {
		t.Fatalf("want one record: %+v", recs)
	}
	assertFrozen(t, mounts[0])
	assertFrozen(t, mounts[1])
	assertFrozen(t, fs)
	if _, err := g.Thaw(); err != nil {
		t.Fatal(err)
	}
	assertThawed(t, mounts[0])
	assertThawed(t, mounts[1])
	assertThawed(t, fs)
	if n := len(records(t, runDir)); n != 0 {
		t.Fatalf("%d records after Thaw", n)
	}
}

func TestHoldWindowExpires(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", ext4Size)
	const hold = 500 * time.Millisecond
	g, runDir := startGuard(t, hold)
	asked := time.Now() // the window starts after this, at the first FIFREEZE
	if err := g.Freeze(ctx(t), []string{fs.Mount}); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now()
	if fs.Writable(200 * time.Millisecond) {
		t.Fatal("not frozen")
	}
	waitThawed(t, fs, hold+time.Second)
	t.Logf("writable again %s after Freeze returned (hold %s, first FIFREEZE %s before that), without any call",
		time.Since(frozenAt), hold, frozenAt.Sub(asked))
	if since := time.Since(asked); since < hold {
		t.Fatalf("thawed %s after Freeze was called, before the hold window %s", since, hold)
	}
	select {
	case <-g.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("guard did not exit after the hold window")
	}
	if n := len(records(t, runDir)); n != 0 {
		t.Fatalf("%d records after expiry", n)
	}
	held, err := g.Thaw()
	if vsserr.Code(err) != vsserr.HoldWritesTimeout || !errors.Is(err, ErrHoldLost) {
		t.Fatalf("Thaw after expiry: %v", err)
	}
	if held < hold || held > hold+500*time.Millisecond {
		t.Fatalf("held %s, hold window %s", held, hold)
	}
	if st := g.Stats(); st.Ended != "expired" {
		t.Fatalf("ended %q", st.Ended)
	}
	if h, err2 := g.Thaw(); h != held || vsserr.Code(err2) != vsserr.HoldWritesTimeout {
		t.Fatalf("second Thaw: %s %v", h, err2)
	}
	t.Logf("held %s; Thaw: %v", held, err)
}

// fakeLvssd starts the test binary as a stand-in lvssd holding path, and
// returns it with its guard's pid.
func startFakeLvssd(t *testing.T, path, runDir string, hold time.Duration, env ...string) (*exec.Cmd, []int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envFakePath+"="+path, envFakeRunDir+"="+runDir, envFakeHold+"="+hold.String())
	cmd.Env = append(cmd.Env, env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		stdin.Close()
	})
	line := readLine(t, stdout, 30*time.Second)
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "READY" {
		t.Fatalf("fake lvssd: %q", line)
	}
	var pids []int
	for _, s := range f[1:] {
		pid, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return cmd, pids
}

func TestParentSIGKILLThaws(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", ext4Size)
	runDir := t.TempDir()
	// A long hold window: a thaw within a second is the death detection,
	// not the timer.
	const hold = 5 * time.Second
	lvssd, pids := startFakeLvssd(t, fs.Mount, runDir, hold)
	guardPid := pids[0]
	assertFrozen(t, fs)
	if n := len(records(t, runDir)); n != 1 {
		t.Fatalf("%d records while frozen", n)
	}
	killed := time.Now()
	if err := lvssd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = lvssd.Wait()
	took := waitThawed(t, fs, time.Second)
	t.Logf("writable %s after SIGKILL of the parent (measured %s after the kill, hold %s)", took, time.Since(killed), hold)
	waitNoRecords(t, runDir, 2*time.Second)
	deadline := time.Now().Add(2 * time.Second)
	for guardAlive(guardPid) {
		if time.Now().After(deadline) {
			t.Fatalf("guard %d still running (state %s)", guardPid, procState(guardPid))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if thawed, err := Recover(runDir, testLogger(t)); err != nil || len(thawed) != 0 {
		t.Fatalf("Recover after a clean guard exit: %v %v", thawed, err)
	}
}

// The control pipe's write end outlives lvssd (leaked into a child), so
// no EOF comes: the pidfd alone must notice the death.
func TestParentSIGKILLThawsThroughPidfd(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", ext4Size)
	runDir := t.TempDir()
	const hold = 5 * time.Second
	lvssd, pids := startFakeLvssd(t, fs.Mount, runDir, hold, envFakeLeak+"=1")
	if len(pids) != 2 {
		t.Fatalf("pids %v", pids)
	}
	t.Cleanup(func() { _ = syscall.Kill(pids[1], syscall.SIGKILL) })
	assertFrozen(t, fs)
	if err := lvssd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = lvssd.Wait()
	took := waitThawed(t, fs, time.Second)
	t.Logf("writable %s after SIGKILL of the parent, its control pipe still open elsewhere", took)
	if procState(pids[1]) == "gone" {
		t.Fatal("the process holding the pipe is gone: the test proves nothing")
	}
	waitNoRecords(t, runDir, 2*time.Second)
}

func TestGuardSignalsThaw(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", ext4Size)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			g, runDir := startGuard(t, 10*time.Second)
			if err := g.Freeze(ctx(t), []string{fs.Mount}); err != nil {
				t.Fatal(err)
			}
			assertFrozen(t, fs)
			if err := syscall.Kill(g.Pid(), sig); err != nil {
				t.Fatal(err)
			}
			took := waitThawed(t, fs, time.Second)
			t.Logf("writable %s after %s", took, unix.SignalName(sig))
			held, err := g.Thaw()
			if !errors.Is(err, ErrHoldLost) || !strings.Contains(err.Error(), unix.SignalName(sig)) || held <= 0 {
				t.Fatalf("Thaw after %s: %s %v", unix.SignalName(sig), held, err)
			}
			if n := len(records(t, runDir)); n != 0 {
				t.Fatalf("%d records", n)
			}
			if st := g.Stats(); st.Ended != "signal "+unix.SignalName(sig) {
				t.Fatalf("ended %q", st.Ended)
			}
		})
	}
}

func TestGuardSIGKILLRecoveredByParent(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", ext4Size)
	g, runDir := startGuard(t, 10*time.Second)
	if err := g.Freeze(ctx(t), []string{fs.Mount}); err != nil {
		t.Fatal(err)
	}
	assertFrozen(t, fs)
	if err := syscall.Kill(g.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("guard death not noticed")
	}
	took := waitThawed(t, fs, time.Second)
	t.Logf("writable %s after Done", took)
	if n := len(records(t, runDir)); n != 0 {
		t.Fatalf("%d records after recovery", n)
	}
	_, err := g.Thaw()
	if !errors.Is(err, ErrHoldLost) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Thaw after the guard was killed: %v", err)
	}
	if st := g.Stats(); st.Ended != "killed" {
		t.Fatalf("ended %q", st.Ended)
	}
}

func TestGuardSIGKILLStaysFrozenUntilRecover(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", ext4Size)
	runDir := t.TempDir()
	if thawed, err := Recover(runDir, testLogger(t)); err != nil || thawed != nil {
		t.Fatalf("Recover with no records: %v %v", thawed, err)
	}
	if thawed, err := Recover(filepath.Join(runDir, "missing"), nil); err != nil || thawed != nil {
		t.Fatalf("Recover of a missing run dir: %v %v", thawed, err)
	}
	const hold = time.Second
	lvssd, pids := startFakeLvssd(t, fs.Mount, runDir, hold)
	guardPid := pids[0]
	// lvssd is stuck (stopped): nobody but Recover will thaw.
	if err := lvssd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(guardPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for procState(guardPid) != "Z" && procState(guardPid) != "gone" {
		if time.Now().After(deadline) {
			t.Fatalf("guard not dead: %s", procState(guardPid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Past the hold window: the dead guard's timer is gone with it.
	time.Sleep(hold + 200*time.Millisecond)
	assertFrozen(t, fs)
	recs := records(t, runDir)
	if len(recs) != 1 || recs[0].Pid != guardPid || recs[0].Mnt != fs.Mount {
		t.Fatalf("records of the killed guard: %+v", recs)
	}
	if hs, err := Held(runDir); err != nil || len(hs) != 1 || hs[0].GuardRunning || hs[0].MountPoint != fs.Mount {
		t.Fatalf("Held with a dead guard: %+v %v", hs, err)
	}
	thawed, err := Recover(runDir, testLogger(t))
	if err != nil || len(thawed) != 1 || thawed[0] != fs.Mount {
		t.Fatalf("Recover: %v %v", thawed, err)
	}
	assertThawed(t, fs)
	if n := len(records(t, runDir)); n != 0 {
		t.Fatalf("%d records after Recover", n)
	}
	if thawed, err := Recover(runDir, testLogger(t)); err != nil || thawed != nil {
		t.Fatalf("second Recover: %v %v", thawed, err)
	}
}

func TestRecoverLeavesRunningGuardAlone(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", ext4Size)
	g, runDir := startGuard(t, 10*time.Second)
	if err := g.Freeze(ctx(t), []string{fs.Mount}); err != nil {
		t.Fatal(err)
	}
	if thawed, err := Recover(runDir, testLogger(t)); err != nil || thawed != nil {
		t.Fatalf("Recover beside a live guard: %v %v", thawed, err)
	}
	assertFrozen(t, fs)
	if _, err := g.Thaw(); err != nil {
		t.Fatal(err)
	}
	assertThawed(t, fs)
}

func TestAlreadyFrozenByOther(t *testing.T) {
	e4 := testenv.LoopFS(t, "ext4", ext4Size)
	xf := testenv.LoopFS(t, "xfs", xfsSize)
	// Someone else (fsfreeze, another backup tool) holds the XFS.
	fd, err := openNoWrite(xf.Mount)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := fifreeze(fd); err != nil {
		t.Fatal(err)
	}
	g, runDir := startGuard(t, 10*time.Second)
	err = g.Freeze(ctx(t), []string{e4.Mount, xf.Mount})
	if !errors.Is(err, ErrFrozenByOther) || vsserr.Code(err) != vsserr.VolumeInUse || !strings.Contains(err.Error(), xf.Mount) {
		t.Fatalf("Freeze of a filesystem frozen by someone else: %v", err)
	}
	t.Logf("Freeze: %v", err)
	assertThawed(t, e4) // ours, frozen first, thawed on the failure
	assertFrozen(t, xf) // not ours: still frozen
	if n := len(records(t, runDir)); n != 0 {
		t.Fatalf("%d records after a failed Freeze", n)
	}
	if held, err := g.Thaw(); err != nil || held != 0 {
		t.Fatalf("Thaw after a failed Freeze: %s %v", held, err)
	}
	// The owner's thaw succeeds (EINVAL would mean we had thawed it).
	if err := fithaw(fd); err != nil {
		t.Fatalf("owner's FITHAW: %v", err)
	}
	assertThawed(t, xf)
}

func TestFailureHalfwayThawsWhatItFroze(t *testing.T) {
	e4 := testenv.LoopFS(t, "ext4", ext4Size)
	xf := testenv.LoopFS(t, "xfs", xfsSize)
	t.Setenv(envHook, "fail-second")
	g, runDir := startGuard(t, 10*time.Second)
	err := g.Freeze(ctx(t), []string{e4.Mount, xf.Mount})
	if err == nil || !strings.Contains(err.Error(), "test hook") {
		t.Fatalf("Freeze: %v", err)
	}
	assertThawed(t, e4)
	assertThawed(t, xf)
	fd, err := openNoWrite(e4.Mount)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := fithaw(fd); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("first filesystem still frozen after the failed Freeze: %v", err)
	}
	if n := len(records(t, runDir)); n != 0 {
		t.Fatalf("%d records", n)
	}
	if st := g.Stats(); st.Ended != "failed" || st.Filesystems[0].Thaw <= 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRunDirOnFrozenFilesystemRefused(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", ext4Size)
	runDir := filepath.Join(fs.Mount, "run")
	g, err := Start(ctx(t), Options{RunDir: runDir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	err = g.Freeze(ctx(t), []string{filepath.Join(fs.Mount)})
	if vsserr.Code(err) != vsserr.InvalidArg || !strings.Contains(err.Error(), "run dir") {
		t.Fatalf("Freeze of the run dir's filesystem: %v", err)
	}
	assertThawed(t, fs)
}

// The tests below need no root: the guard refuses before any ioctl.

func TestBadPathsAndCallOrder(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		path string
		code vsserr.HRESULT
	}{
		{filepath.Join(dir, "missing"), vsserr.ObjectNotFound},
		{"relative/path", vsserr.InvalidArg},
		{"/dev/null", vsserr.InvalidArg},
	}
	for _, c := range cases {
		g, _ := startGuard(t, time.Second)
		if err := g.Freeze(ctx(t), []string{c.path}); vsserr.Code(err) != c.code {
			t.Errorf("Freeze(%s): %v, want %s", c.path, err, c.code)
		}
		if held, err := g.Thaw(); held != 0 || err != nil {
			t.Errorf("Thaw after refused Freeze: %s %v", held, err)
		}
	}

	// A guard never asked to freeze: Thaw and Close end it, twice each.
	g, _ := startGuard(t, time.Second)
	for i := 0; i < 2; i++ {
		if held, err := g.Thaw(); held != 0 || err != nil {
			t.Fatalf("Thaw of an idle guard: %s %v", held, err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := g.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := g.Freeze(ctx(t), []string{dir}); vsserr.Code(err) != vsserr.BadState {
		t.Fatalf("Freeze after Close: %v", err)
	}

	// Close without Thaw.
	g, _ = startGuard(t, time.Second)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := Start(ctx(t), Options{RunDir: "relative"}); vsserr.Code(err) != vsserr.InvalidArg {
		t.Fatalf("relative run dir: %v", err)
	}
	if _, err := Start(ctx(t), Options{RunDir: dir, Exe: "/nonexistent/lvssd"}); err == nil {
		t.Fatal("Start with a missing binary succeeded")
	}
	// A binary that is not a guard exits at once.
	if _, err := Start(ctx(t), Options{RunDir: dir, Exe: "/bin/true"}); err == nil || !strings.Contains(err.Error(), "did not start") {
		t.Fatalf("Start of a binary that is no guard: %v", err)
	}
}

func TestProtocolVersionRefused(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctlR, ctlW, _ := os.Pipe()
	evR, evW, _ := os.Pipe()
	defer ctlW.Close()
	defer evR.Close()
	cmd := exec.Command(exe, GuardArg, "-v=99", "-run-dir="+t.TempDir())
	cmd.ExtraFiles = []*os.File{ctlR, evW}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctlR.Close()
	evW.Close()
	line := readLine(t, evR, 10*time.Second)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
		t.Fatalf("exit: %v", err)
	}
	if !strings.Contains(line, `"ev":"ended"`) || !strings.Contains(line, "protocol 1") || !strings.Contains(line, fmt.Sprint(uint32(vsserr.InvalidArg))) {
		t.Fatalf("event: %s", line)
	}
}

// TestFreezeSupportAgainstKernel: what lvss doctor says about freezing a
// filesystem type (mountinfo.FreezeSupport, which never freezes) is what
// the running kernel does, for every type the tests can make: FIFREEZE
// works on btrfs, ext4 and XFS, and fails with EOPNOTSUPP on a tmpfs.
func TestFreezeSupportAgainstKernel(t *testing.T) {
	sizes := map[string]int64{"btrfs": btrfsSize, "ext4": ext4Size, "xfs": xfsSize}
	for _, typ := range []string{"btrfs", "ext4", "xfs"} {
		fs := testenv.LoopFS(t, typ, sizes[typ])
		if got, why := mountinfo.FreezeSupport(typ); got != mountinfo.FreezeSupported {
			t.Errorf("FreezeSupport(%s) = %s (%s)", typ, got, why)
		}
		fd, err := openNoWrite(fs.Mount)
		if err != nil {
			t.Fatal(err)
		}
		err = fifreeze(fd)
		if err == nil {
			err = fithaw(fd)
		}
		unix.Close(fd)
		if err != nil {
			t.Errorf("%s: FIFREEZE/FITHAW: %v", typ, err)
		}
	}
	testenv.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("lvss-test", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if got, why := mountinfo.FreezeSupport("tmpfs"); got != mountinfo.FreezeUnsupported {
		t.Errorf("FreezeSupport(tmpfs) = %s (%s)", got, why)
	}
	fd, err := openNoWrite(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := fifreeze(fd); !errors.Is(err, unix.EOPNOTSUPP) {
		if err == nil {
			_ = fithaw(fd)
		}
		t.Fatalf("FIFREEZE on a tmpfs: %v, want EOPNOTSUPP", err)
	}
}
