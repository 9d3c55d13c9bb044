package exec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// volumes makes n plain directories to serve as configured volumes: the
// provider runs commands and reads mountinfo, neither of which needs a
// dedicated filesystem or root.
func volumes(t *testing.T, n int) []string {
	t.Helper()
	base := t.TempDir()
	var out []string
	for i := range n {
		v := filepath.Join(base, "vol"+string(rune('a'+i)))
		if err := os.Mkdir(v, 0o755); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// printHandles prints one handle line per volume: h<N><TAB>/dev/snap<N>.
const printHandles = `i=1; while [ "$i" -le "$LVSS_VOLUME_COUNT" ]; do printf 'h%s-%s\t/dev/snap%s\n' "$i" "$LVSS_SNAPSHOT_SET_ID" "$i"; i=$((i+1)); done`

// logDelete appends each deleted handle to $DELETED.
func logDelete(file string) string {
	return `printf '%s\n' "$LVSS_SNAPSHOT_HANDLE" >> '` + file + `'`
}

func TestInfo(t *testing.T) {
	cfg := Config{Name: "san", Volumes: volumes(t, 1), Commit: "true", Delete: "true"}
	p1, _ := newProvider(t, cfg, 10*time.Second)
	p2, _ := newProvider(t, cfg, 10*time.Second)
	other, _ := newProvider(t, Config{Name: "cloud", Volumes: cfg.Volumes, Commit: "true", Delete: "true"}, 10*time.Second)
	i := p1.Info()
	if i.ID != p2.Info().ID || i.ID != ProviderID("san") || i.ID == other.Info().ID || i.ID == uuid.Nil {
		t.Fatalf("IDs must derive from the name only: %s %s %s", i.ID, p2.Info().ID, other.Info().ID)
	}
	if i.Name != "san" || i.Type != vss.ProvHardware || !i.NeedsFreeze || !i.Atomic || !i.SetAtomic || i.LongCommit || i.Version == "" {
		t.Fatalf("Info = %+v", i)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	vols := volumes(t, 1)
	good := Config{Name: "x", Volumes: vols, Commit: "true", Delete: "true"}
	for name, mod := range map[string]func(*Config){
		"timeout over hold":   func(c *Config) { c.Timeout = dur(11 * time.Second) },
		"no commit":           func(c *Config) { c.Commit = "" },
		"no delete":           func(c *Config) { c.Delete = "" },
		"expose without undo": func(c *Config) { c.Expose = "true" },
		"relative volume":     func(c *Config) { c.Volumes = []string{"srv"} },
		"newline in volume":   func(c *Config) { c.Volumes = []string{"/srv\n/x"} },
		"no volumes":          func(c *Config) { c.Volumes = nil },
		"no name":             func(c *Config) { c.Name = "" },
	} {
		c := good
		mod(&c)
		if _, err := New(c, 10*time.Second, t.TempDir(), t.TempDir(), nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(good, 10*time.Second, t.TempDir(), t.TempDir(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestIsVolumeSupported(t *testing.T) {
	vols := volumes(t, 2)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(vols[1], link); err != nil {
		t.Fatal(err)
	}
	p, _ := newProvider(t, Config{Name: "x", Volumes: []string{vols[0], link}, Commit: "true", Delete: "true"}, 10*time.Second)
	inside := filepath.Join(vols[0], "sub")
	os.Mkdir(inside, 0o755)
	for v, want := range map[string]bool{vols[0]: true, vols[0] + "/": true, vols[1]: true, link: true, inside: false, filepath.Dir(vols[0]): false} {
		if got, err := p.IsVolumeSupported(tctx(t), v); err != nil || got != want {
			t.Errorf("IsVolumeSupported(%s) = %v %v, want %v", v, got, err, want)
		}
		// lvss doctor hears the same, with a reason naming the volumes.
		if d := p.Diagnose(tctx(t), v); d.Supported != want || d.SnapshotDir != "" || !want && !strings.Contains(d.Reason, vols[0]) {
			t.Errorf("Diagnose(%s) = %+v, want supported %v", v, d, want)
		}
	}
	if got := p.ConfiguredVolumes(); len(got) != 2 || got[0] != vols[0] || got[1] != link {
		t.Errorf("ConfiguredVolumes = %q", got)
	}
	err := p.BeginPrepareSnapshot(tctx(t), uuid.New(), uuid.New(), inside, vss.CtxBackup)
	if !errors.Is(err, vsserr.VolumeNotSupportedByProvider) {
		t.Fatalf("a path inside a volume: %v", err)
	}
}

func TestCommitEnvironment(t *testing.T) {
	vols := volumes(t, 2)
	dump := t.TempDir()
	commit := `env -0 > '` + dump + `/env'; pwd > '` + dump + `/pwd'; cut -d' ' -f5 /proc/$$/stat > '` + dump + `/pgrp'; echo $$ > '` + dump + `/pid'; ` + printHandles
	p, _ := newProvider(t, Config{Name: "envcheck", Volumes: vols, Commit: commit, Delete: "true", Timeout: dur(4 * time.Second)}, 10*time.Second)
	t.Setenv("LVSS_SNAPSHOT_SET_ID", "inherited-must-not-leak")
	a := run(t, p, hooks{}, vols...)
	if a.err != nil {
		t.Fatalf("%s: %v", a.step, a.err)
	}
	env := readEnvFile(t, filepath.Join(dump, "env"))
	want := map[string]string{
		"LVSS_OPERATION":       "commit",
		"LVSS_PROVIDER_NAME":   "envcheck",
		"LVSS_PROVIDER_ID":     ProviderID("envcheck").String(),
		"LVSS_SNAPSHOT_SET_ID": a.set.String(),
		"LVSS_CONTEXT":         "VSS_CTX_BACKUP",
		"LVSS_CONTEXT_VALUE":   "0x00000000",
		"LVSS_VOLUME_COUNT":    "2",
		"LVSS_VOLUMES":         vols[0] + "\n" + vols[1],
		"LVSS_SNAPSHOT_IDS":    a.ids[0].String() + "\n" + a.ids[1].String(),
	}
	var mps, devs []string
	for i, v := range vols {
		m, err := mountinfo.ForPath(v)
		if err != nil {
			t.Fatal(err)
		}
		n := string(rune('1' + i))
		want["LVSS_VOLUME_"+n] = v
		want["LVSS_SNAPSHOT_ID_"+n] = a.ids[i].String()
		want["LVSS_MOUNT_POINT_"+n] = m.MountPoint
		want["LVSS_DEVICE_"+n] = m.Source
		want["LVSS_FSTYPE_"+n] = m.FSType
		want["LVSS_DEVICE_NUMBER_"+n] = m.Device()
		mps, devs = append(mps, m.MountPoint), append(devs, m.Source)
	}
	want["LVSS_MOUNT_POINTS"] = strings.Join(mps, "\n")
	want["LVSS_DEVICES"] = strings.Join(devs, "\n")
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if ms, err := strconv.Atoi(env["LVSS_TIMEOUT_MS"]); err != nil || ms <= 0 || ms > 4000 {
		t.Errorf("LVSS_TIMEOUT_MS = %q, want the commit's 4s or less", env["LVSS_TIMEOUT_MS"])
	}
	if !strings.HasPrefix(env["TMPDIR"], p.tmpRoot+"/") {
		t.Errorf("TMPDIR = %q, want a directory under %s", env["TMPDIR"], p.tmpRoot)
	}
	if _, err := os.Stat(env["TMPDIR"]); !os.IsNotExist(err) {
		t.Errorf("commit TMPDIR %s left behind: %v", env["TMPDIR"], err)
	}
	if env["PATH"] == "" {
		t.Error("PATH not passed on: commands need lvssd's environment")
	}
	if got := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(dump, "pwd"))))); got != "/" {
		t.Errorf("working directory %q, want /", got)
	}
	if pg, pid := must(os.ReadFile(filepath.Join(dump, "pgrp"))), must(os.ReadFile(filepath.Join(dump, "pid"))); string(pg) != string(pid) {
		t.Errorf("commit runs in process group %s, want its own (%s)", pg, pid)
	}
	// Output format: HANDLE<TAB>DEVICE_PATH, in volume order.
	for i, s := range a.snaps {
		n := string(rune('1' + i))
		if s.ID != a.ids[i] || s.Handle != "h"+n+"-"+a.set.String() || s.DevicePath != "/dev/snap"+n || s.OriginalVolume != vols[i] || s.SetID != a.set || s.Created.IsZero() {
			t.Errorf("snapshot %d = %+v", i, s)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestCommitOutputWithoutDevicePath(t *testing.T) {
	vols := volumes(t, 1)
	p, _ := newProvider(t, Config{Name: "x", Volumes: vols, Commit: `echo; echo "  snap-$LVSS_SNAPSHOT_ID_1  "; echo`, Delete: "true"}, 10*time.Second)
	s := mustRun(t, p, hooks{}, vols...)[0]
	if want := "snap-" + s.ID.String(); s.Handle != want || s.DevicePath != want {
		t.Fatalf("handle %q device %q, want both %q (blank lines and surrounding spaces ignored)", s.Handle, s.DevicePath, want)
	}
}

func TestCommitBadOutput(t *testing.T) {
	vols := volumes(t, 2)
	for name, tc := range map[string]struct {
		commit  string
		salvage []string // handles Abort must delete
	}{
		"too few lines":   {`echo one`, []string{"one"}},
		"too many lines":  {`printf 'a\nb\nc\n'`, []string{"a", "b", "c"}},
		"empty handle":    {`printf 'a\n\t/dev/x\n'`, []string{"a"}},
		"duplicate":       {`printf 'a\na\n'`, []string{"a"}},
		"control char":    {`printf 'a\nb\033c\n'`, []string{"a"}},
		"over the cap":    {`yes handle | head -c 70000`, []string{"handle"}},
		"nothing printed": {`true`, nil},
	} {
		t.Run(name, func(t *testing.T) {
			deleted := filepath.Join(t.TempDir(), "deleted")
			p, _ := newProvider(t, Config{Name: "x", Volumes: vols, Commit: tc.commit, Delete: logDelete(deleted)}, 10*time.Second)
			a := run(t, p, hooks{}, vols...)
			if a.step != "CommitSnapshots" || a.err == nil {
				t.Fatalf("want a CommitSnapshots failure, got %s: %v", a.step, a.err)
			}
			// Not a veto: the coordinator reports a provider that
			// breaks its protocol as VSS_E_UNEXPECTED_PROVIDER_ERROR.
			if c := vsserr.Code(a.err); c != vsserr.Unexpected {
				t.Fatalf("bad output carries code %s: %v", c, a.err)
			}
			if _, err := p.PostCommitSnapshots(tctx(t), a.set, 2); vsserr.Code(err) != vsserr.ObjectNotFound {
				t.Fatalf("PostCommit after a failed commit: %v", err)
			}
			if err := p.AbortSnapshots(tctx(t), a.set); err != nil {
				t.Fatal(err)
			}
			if got := readLines(t, deleted); !slices.Equal(got, tc.salvage) {
				t.Fatalf("abort deleted %q, want %q", got, tc.salvage)
			}
			if qs, _ := p.Query(tctx(t)); len(qs) != 0 {
				t.Fatalf("Query after abort: %+v", qs)
			}
		})
	}
}

func TestCommitNonZeroExitVetoes(t *testing.T) {
	vols := volumes(t, 1)
	deleted := filepath.Join(t.TempDir(), "deleted")
	commit := `echo partial-1; echo "connecting" >&2; echo "array ctl0: volume busy" >&2; exit 3`
	p, _ := newProvider(t, Config{Name: "san", Volumes: vols, Commit: commit, Delete: logDelete(deleted)}, 10*time.Second)
	a := run(t, p, hooks{}, vols...)
	if a.step != "CommitSnapshots" || !errors.Is(a.err, vsserr.ProviderVeto) {
		t.Fatalf("want VSS_E_PROVIDER_VETO from CommitSnapshots, got %s: %v", a.step, a.err)
	}
	if msg := a.err.Error(); !strings.Contains(msg, "array ctl0: volume busy") || strings.Contains(msg, "connecting") || !strings.Contains(msg, "exit status 3") {
		t.Fatalf("error should carry the last stderr line and the status: %v", a.err)
	}
	if errors.Is(a.err, context.DeadlineExceeded) {
		t.Fatal("a failure is not a timeout")
	}
	for range 2 {
		if err := p.AbortSnapshots(tctx(t), a.set); err != nil {
			t.Fatal(err)
		}
	}
	if got := readLines(t, deleted); !slices.Equal(got, []string{"partial-1"}) {
		t.Fatalf("abort deleted %q, want the handle printed before the failure", got)
	}
}

func TestCommitTimeoutKillsGroup(t *testing.T) {
	vols := volumes(t, 1)
	pidfile := filepath.Join(t.TempDir(), "pid")
	// A background child and a foreground one: both must die.
	commit := `echo $$ > '` + pidfile + `'; sleep 30 & sleep 30; echo never`
	p, _ := newProvider(t, Config{Name: "slow", Volumes: vols, Commit: commit, Delete: "true", Timeout: dur(time.Second)}, 10*time.Second)
	t0 := time.Now()
	a := run(t, p, hooks{}, vols...)
	took := time.Since(t0)
	if a.step != "CommitSnapshots" || !errors.Is(a.err, context.DeadlineExceeded) {
		t.Fatalf("want a timeout from CommitSnapshots, got %s: %v", a.step, a.err)
	}
	if !strings.Contains(a.err.Error(), "did not finish within 1s") || !strings.Contains(a.err.Error(), "process group was killed") {
		t.Fatalf("error does not say what happened: %v", a.err)
	}
	if took > 15*time.Second {
		t.Fatalf("commit returned after %s with a 1s timeout", took)
	}
	waitGroupGone(t, readPid(t, pidfile), 2*time.Second)
	if err := p.AbortSnapshots(tctx(t), a.set); err != nil {
		t.Fatal(err)
	}
}

func TestCommitStopsAtCallersDeadline(t *testing.T) {
	vols := volumes(t, 1)
	p, _ := newProvider(t, Config{Name: "slow", Volumes: vols, Commit: "sleep 30", Delete: "true"}, 10*time.Second)
	c := tctx(t)
	set := uuid.New()
	for _, err := range []error{
		p.BeginPrepareSnapshot(c, set, uuid.New(), vols[0], vss.CtxBackup),
		p.EndPrepareSnapshots(c, set),
		p.PreCommitSnapshots(c, set),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	hold, cancel := context.WithTimeout(c, 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err := p.CommitSnapshots(hold, set)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 15*time.Second {
		t.Fatalf("commit under a 300ms hold: %v after %s", err, time.Since(t0))
	}
	if err := p.AbortSnapshots(c, set); err != nil {
		t.Fatal(err)
	}
}

func TestCallOrder(t *testing.T) {
	vols := volumes(t, 1)
	p, _ := newProvider(t, Config{Name: "x", Volumes: vols, Commit: printHandles, Delete: "true"}, 10*time.Second)
	c := tctx(t)
	set := uuid.New()
	if err := p.CommitSnapshots(c, set); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("commit of an unknown set: %v", err)
	}
	if err := p.BeginPrepareSnapshot(c, set, uuid.New(), vols[0], vss.CtxBackup); err != nil {
		t.Fatal(err)
	}
	if err := p.BeginPrepareSnapshot(c, set, uuid.New(), vols[0], vss.CtxBackup); !errors.Is(err, vsserr.InvalidArg) {
		t.Fatalf("same volume twice: %v", err)
	}
	// Out of order: no set in the state Commit needs (vss-reference §7.2 gives Commit
	// no VSS_E_BAD_STATE).
	if err := p.CommitSnapshots(c, set); vsserr.Code(err) != vsserr.ObjectNotFound {
		t.Fatalf("commit before prepare: %v", err)
	}
	if err := p.AbortSnapshots(c, set); err != nil {
		t.Fatal(err)
	}
}

// commandsConfig writes every command's environment to files in dir and
// keeps its "snapshots" as files in dir/store.
func commandsConfig(dir string, vols []string, list bool) Config {
	store := filepath.Join(dir, "store")
	os.MkdirAll(store, 0o755)
	cfg := Config{
		Name: "cmds", Volumes: vols,
		Commit:   `for id in $LVSS_SNAPSHOT_IDS; do echo "$id" > '` + store + `'/"$id" && printf '%s\t%s\n' "$id" "/dev/mapper/snap-$id"; done`,
		Delete:   `env -0 > '` + dir + `/delete.env'; if [ -f '` + store + `'/"$LVSS_SNAPSHOT_HANDLE" ]; then rm '` + store + `'/"$LVSS_SNAPSHOT_HANDLE"; fi; [ "$LVSS_SNAPSHOT_HANDLE" != stuck ] || { echo "snapshot is in use" >&2; exit 1; }`,
		Expose:   `env -0 > '` + dir + `/expose.env'; echo "  $LVSS_EXPOSE_PATH/mounted  "`,
		Unexpose: `env -0 > '` + dir + `/unexpose.env'`,
	}
	if list {
		cfg.List = `env -0 > '` + dir + `/list.env'; for f in '` + store + `'/*; do [ -e "$f" ] && echo "${f##*/}"; done; printf 'foreign\t/dev/foreign\n'`
	}
	return cfg
}

func TestDeleteListExposeUnexpose(t *testing.T) {
	vols := volumes(t, 1)
	dir := t.TempDir()
	p, _ := newProvider(t, commandsConfig(dir, vols, true), 10*time.Second)
	s := mustRun(t, p, hooks{}, vols...)[0]

	// Query = what list prints; known handles keep their full record,
	// unknown ones get a stable ID and the device path list gave.
	qs, err := p.Query(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 {
		t.Fatalf("Query = %+v", qs)
	}
	var foreign provider.Snapshot
	for _, q := range qs {
		switch q.Handle {
		case s.Handle:
			if q.ID != s.ID || q.SetID != s.SetID || q.OriginalVolume != s.OriginalVolume || q.DevicePath != s.DevicePath || !q.Created.Equal(s.Created) {
				t.Errorf("Query lost the record: %+v, want %+v", q, s)
			}
		case "foreign":
			foreign = q
		}
	}
	if foreign.DevicePath != "/dev/foreign" || foreign.ID != p.handleID("foreign") || foreign.ID == uuid.Nil {
		t.Errorf("unknown handle from list: %+v", foreign)
	}
	if env := readEnvFile(t, filepath.Join(dir, "list.env")); env["LVSS_OPERATION"] != "list" || env["LVSS_PROVIDER_NAME"] != "cmds" {
		t.Errorf("list env: %v", env)
	}

	// Expose: the first output line (trimmed) is the exposed name.
	target := filepath.Join(dir, "x")
	name, err := p.Expose(tctx(t), provider.Snapshot{ID: s.ID}, target)
	if err != nil || name != target+"/mounted" {
		t.Fatalf("Expose = %q %v", name, err)
	}
	env := readEnvFile(t, filepath.Join(dir, "expose.env"))
	for k, v := range map[string]string{"LVSS_OPERATION": "expose", "LVSS_EXPOSE_PATH": target, "LVSS_SNAPSHOT_HANDLE": s.Handle,
		"LVSS_SNAPSHOT_ID": s.ID.String(), "LVSS_ORIGINAL_VOLUME": vols[0], "LVSS_DEVICE_PATH": s.DevicePath, "LVSS_SNAPSHOT_SET_ID": s.SetID.String()} {
		if env[k] != v {
			t.Errorf("expose: %s = %q, want %q (filled in from the index)", k, env[k], v)
		}
	}
	if err := p.Unexpose(tctx(t), s, name); err != nil {
		t.Fatal(err)
	}
	if env := readEnvFile(t, filepath.Join(dir, "unexpose.env")); env["LVSS_EXPOSE_PATH"] != name || env["LVSS_OPERATION"] != "unexpose" {
		t.Errorf("unexpose env: %v", env)
	}

	// Delete twice: the second finds it gone and still succeeds.
	for range 2 {
		if err := p.DeleteSnapshot(tctx(t), s); err != nil {
			t.Fatal(err)
		}
	}
	env = readEnvFile(t, filepath.Join(dir, "delete.env"))
	for k, v := range map[string]string{"LVSS_OPERATION": "delete", "LVSS_SNAPSHOT_HANDLE": s.Handle, "LVSS_SNAPSHOT_ID": s.ID.String(),
		"LVSS_ORIGINAL_VOLUME": vols[0], "LVSS_DEVICE_PATH": s.DevicePath} {
		if env[k] != v {
			t.Errorf("delete: %s = %q, want %q", k, env[k], v)
		}
	}
	qs, _ = p.Query(tctx(t))
	if len(qs) != 1 || qs[0].Handle != "foreign" {
		t.Fatalf("Query after delete: %+v", qs)
	}

	// A failing delete is a veto with the command's reason.
	err = p.DeleteSnapshot(tctx(t), provider.Snapshot{ID: uuid.New(), Handle: "stuck"})
	if !errors.Is(err, vsserr.ProviderVeto) || !strings.Contains(err.Error(), "snapshot is in use") {
		t.Fatalf("failing delete: %v", err)
	}
}

func TestExposeNotConfigured(t *testing.T) {
	vols := volumes(t, 1)
	p, _ := newProvider(t, Config{Name: "x", Volumes: vols, Commit: printHandles, Delete: "true"}, 10*time.Second)
	if _, err := p.Expose(tctx(t), provider.Snapshot{ID: uuid.New(), Handle: "h"}, "/mnt"); !errors.Is(err, vsserr.ProviderVeto) {
		t.Fatalf("Expose without a command: %v", err)
	}
	if err := p.Unexpose(tctx(t), provider.Snapshot{ID: uuid.New(), Handle: "h"}, "/mnt"); err != nil {
		t.Fatalf("Unexpose without a command: %v", err)
	}
}

func TestOtherCommandTimeout(t *testing.T) {
	vols := volumes(t, 1)
	pidfile := filepath.Join(t.TempDir(), "pid")
	cfg := Config{Name: "x", Volumes: vols, Commit: printHandles, Delete: `echo $$ > '` + pidfile + `'; sleep 30`, OtherTimeout: dur(500 * time.Millisecond)}
	p, _ := newProvider(t, cfg, 10*time.Second)
	err := p.DeleteSnapshot(tctx(t), provider.Snapshot{ID: uuid.New(), Handle: "h"})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "delete command did not finish within 500ms") {
		t.Fatalf("delete past other_timeout: %v", err)
	}
	waitGroupGone(t, readPid(t, pidfile), 2*time.Second)
}

func TestIndexPersistsAcrossRestart(t *testing.T) {
	vols := volumes(t, 2)
	dir := t.TempDir()
	cfg := commandsConfig(dir, vols, false)
	state, run1 := t.TempDir(), runDir(t)
	p1, err := New(cfg, 10*time.Second, run1, state, nil)
	if err != nil {
		t.Fatal(err)
	}
	snaps := mustRun(t, p1, hooks{}, vols...)
	second := mustRun(t, p1, hooks{}, vols[0])
	// A set aborted after PostCommit leaves nothing behind.
	ab := uuid.New()
	c := tctx(t)
	if err := p1.BeginPrepareSnapshot(c, ab, uuid.New(), vols[0], vss.CtxBackup); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{p1.EndPrepareSnapshots(c, ab), p1.PreCommitSnapshots(c, ab), p1.CommitSnapshots(c, ab)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p1.PostCommitSnapshots(c, ab, 1); err != nil {
		t.Fatal(err)
	}
	if err := p1.AbortSnapshots(c, ab); err != nil {
		t.Fatal(err)
	}

	p2, err := New(cfg, 10*time.Second, runDir(t), state, nil)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := p2.Query(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]provider.Snapshot(nil), snaps...), second...)
	if len(qs) != len(want) {
		t.Fatalf("after restart Query = %+v, want %+v", qs, want)
	}
	for _, w := range want {
		if !slices.ContainsFunc(qs, func(q provider.Snapshot) bool {
			return q.ID == w.ID && q.Handle == w.Handle && q.DevicePath == w.DevicePath && q.OriginalVolume == w.OriginalVolume && q.SetID == w.SetID && q.Created.Equal(w.Created)
		}) {
			t.Errorf("after restart Query lacks %+v", w)
		}
	}
	// The catalog may hand back only the ID; the index supplies the rest.
	if err := p2.DeleteSnapshot(tctx(t), provider.Snapshot{ID: snaps[0].ID}); err != nil {
		t.Fatal(err)
	}
	if env := readEnvFile(t, filepath.Join(dir, "delete.env")); env["LVSS_SNAPSHOT_HANDLE"] != snaps[0].Handle {
		t.Fatalf("delete by ID got handle %q", env["LVSS_SNAPSHOT_HANDLE"])
	}
	p3, err := New(cfg, 10*time.Second, runDir(t), state, nil)
	if err != nil {
		t.Fatal(err)
	}
	qs, _ = p3.Query(tctx(t))
	if len(qs) != len(want)-1 || slices.ContainsFunc(qs, func(q provider.Snapshot) bool { return q.ID == snaps[0].ID }) {
		t.Fatalf("deleted snapshot survives a restart: %+v", qs)
	}

	// A corrupt index stops the provider rather than hiding snapshots.
	if err := os.WriteFile(p3.indexPath, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, 10*time.Second, runDir(t), state, nil); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt index: %v", err)
	}
}

func TestAbandonedPreparationIsDropped(t *testing.T) {
	vols := volumes(t, 1)
	p, _ := newProvider(t, Config{Name: "x", Volumes: vols, Commit: printHandles, Delete: "true"}, 10*time.Second)
	c := tctx(t)
	old := uuid.New()
	if err := p.BeginPrepareSnapshot(c, old, uuid.New(), vols[0], vss.CtxBackup); err != nil {
		t.Fatal(err)
	}
	if err := p.EndPrepareSnapshots(c, old); err != nil {
		t.Fatal(err)
	}
	mustRun(t, p, hooks{}, vols...)
	if err := p.PreCommitSnapshots(c, old); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("abandoned set still known: %v", err)
	}
	if ents, _ := os.ReadDir(p.tmpRoot); len(ents) != 0 {
		t.Fatalf("TMPDIRs left behind: %v", ents)
	}
}

// TestCommitRecordSurvivesACrash (L46): lvssd ends between a commit and its
// PostCommitSnapshots, the only write of the index. The next start finds
// the commit's record in the run directory and puts its snapshots in the
// index, so Query names them with their own IDs and set, even with a list
// command that prints bare handles, and the coordinator's recovery can
// delete them. A set that reaches PostCommitSnapshots leaves no record,
// and a run directory removed under the provider is made again.
func TestCommitRecordSurvivesACrash(t *testing.T) {
	vols := volumes(t, 2)
	dir := t.TempDir()
	cfg := commandsConfig(dir, vols, true)
	state, run := t.TempDir(), runDir(t)
	p1 := openProvider(t, cfg, 10*time.Second, run, state)
	mustRun(t, p1, hooks{}, vols...)
	records := func() []string {
		m, _ := filepath.Glob(filepath.Join(committedDir(run, p1.info.ID), "*"))
		return m
	}
	if r := records(); len(r) != 0 {
		t.Fatalf("a finished set left records %v", r)
	}

	c := tctx(t)
	set, ids := uuid.New(), []uuid.UUID{uuid.New(), uuid.New()}
	for i, v := range vols {
		if err := p1.BeginPrepareSnapshot(c, set, ids[i], v, vss.CtxBackup); err != nil {
			t.Fatal(err)
		}
	}
	for _, err := range []error{p1.EndPrepareSnapshots(c, set), p1.PreCommitSnapshots(c, set), p1.CommitSnapshots(c, set)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(records()) != 1 {
		t.Fatalf("the commit returned without its record: %v", records())
	}
	// p1 is dropped here, as by SIGKILL: no PostCommitSnapshots.
	p2 := openProvider(t, cfg, 10*time.Second, run, state)
	qs, err := p2.Query(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if !slices.ContainsFunc(qs, func(q provider.Snapshot) bool {
			return q.ID == id && q.SetID == set && q.OriginalVolume == vols[i] && q.Handle == id.String()
		}) {
			t.Errorf("after the restart Query lacks snapshot %s of the cut set: %+v", id, qs)
		}
	}
	if r := records(); len(r) != 0 {
		t.Fatalf("the records stay after they went into the index: %v", r)
	}
	for _, id := range ids {
		if err := p2.DeleteSnapshot(tctx(t), provider.Snapshot{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	// The run directory removed under lvssd: the next set makes what it
	// needs there again.
	if err := os.RemoveAll(run); err != nil {
		t.Fatal(err)
	}
	mustRun(t, p2, hooks{}, vols...)
	if r := records(); len(r) != 0 {
		t.Fatalf("a finished set left records %v", r)
	}
}
