package exec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/procgroup"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/confval"
	"github.com/lvss/lvss/vss"
)

func dur(d time.Duration) *confval.Duration { v := confval.Duration(d); return &v }

// runDir is where the provider makes TMPDIRs: a tmpfs when the machine has
// one at /dev/shm, as /run/lvss is in production.
func runDir(t *testing.T) string {
	t.Helper()
	if procgroup.OnTmpfs("/dev/shm") {
		d, err := os.MkdirTemp("/dev/shm", "lvss-exec-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// newProvider makes a provider with fresh run and state directories.
func newProvider(t *testing.T, cfg Config, hold time.Duration) (*Provider, string) {
	t.Helper()
	state := t.TempDir()
	return openProvider(t, cfg, hold, runDir(t), state), state
}

// openProvider makes a provider on the given run and state directories, as
// lvssd does at every start.
func openProvider(t *testing.T, cfg Config, hold time.Duration, run, state string) *Provider {
	t.Helper()
	p, err := New(cfg, hold, run, state, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		if err := p.WaitAbandoned(ctx); err != nil {
			t.Errorf("abandoned commands still running at the end of the test: %v", err)
		}
	})
	return p
}

func tctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// hooks are what the coordinator does around the provider calls: freeze
// the filesystems after PreCommit, thaw after PostCommit.
type hooks struct {
	freeze, thaw func()
}

// attempt is one snapshot-set creation driven like the coordinator drives
// it; it stops at the first error and reports the step.
type attempt struct {
	set   uuid.UUID
	ids   []uuid.UUID
	snaps []provider.Snapshot
	step  string
	err   error
}

func run(t *testing.T, p *Provider, h hooks, vols ...string) attempt {
	t.Helper()
	c := tctx(t)
	a := attempt{set: uuid.New()}
	for _, v := range vols {
		id := uuid.New()
		a.ids = append(a.ids, id)
		if err := p.BeginPrepareSnapshot(c, a.set, id, v, vss.CtxBackup); err != nil {
			a.step, a.err = "BeginPrepareSnapshot", err
			return a
		}
	}
	if a.err = p.EndPrepareSnapshots(c, a.set); a.err != nil {
		a.step = "EndPrepareSnapshots"
		return a
	}
	if a.err = p.PreCommitSnapshots(c, a.set); a.err != nil {
		a.step = "PreCommitSnapshots"
		return a
	}
	if h.freeze != nil {
		h.freeze()
	}
	thawed := false
	thaw := func() {
		if h.thaw != nil && !thawed {
			thawed = true
			h.thaw()
		}
	}
	defer thaw()
	hold, cancel := context.WithTimeout(c, 10*time.Second)
	a.err = p.CommitSnapshots(hold, a.set)
	cancel()
	if a.err != nil {
		a.step = "CommitSnapshots"
		return a
	}
	if a.snaps, a.err = p.PostCommitSnapshots(c, a.set, len(vols)); a.err != nil {
		a.step = "PostCommitSnapshots"
		return a
	}
	thaw()
	if a.err = p.PreFinalCommitSnapshots(c, a.set); a.err != nil {
		a.step = "PreFinalCommitSnapshots"
		return a
	}
	if a.err = p.PostFinalCommitSnapshots(c, a.set); a.err != nil {
		a.step = "PostFinalCommitSnapshots"
	}
	return a
}

func mustRun(t *testing.T, p *Provider, h hooks, vols ...string) []provider.Snapshot {
	t.Helper()
	a := run(t, p, h, vols...)
	if a.err != nil {
		t.Fatalf("%s: %v", a.step, a.err)
	}
	return a.snaps
}

// readEnvFile parses what "env -0" wrote: NUL-separated NAME=VALUE
// records, so that values with newlines (the LVSS_* lists) survive.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, rec := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(rec, "="); ok {
			out[k] = v
		}
	}
	return out
}

// groupAlive reports whether any live (non-zombie) process is in the
// process group pgid. Zombies do not count: their parent (sh, killed too)
// is gone, and reaping them is init's business.
func groupAlive(pgid int) bool {
	ds, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range ds {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// waitGroupGone waits up to d for the process group to disappear.
func waitGroupGone(t *testing.T, pgid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for groupAlive(pgid) {
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has live processes %s after the kill", pgid, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s: %v", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}
