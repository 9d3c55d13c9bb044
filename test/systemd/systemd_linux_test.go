package systemd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
)

// bound is the most any one step may take: it only ends a broken test.
const bound = 90 * time.Second

// machine is systemd running as PID 1 of private namespaces, with the
// package installed in its overlay root.
type machine struct {
	t    *testing.T
	pid  int    // PID 1 of the namespace, as the machine sees it
	root string // its root, seen from outside: /proc/PID/root
	cmd  *exec.Cmd
	dir  string
}

// inner runs as PID 1 of the new namespaces: overlays over /usr, /etc and
// /var (their upper layers on a tmpfs that only this namespace sees), a
// fresh /run, the package installed with apt-get, and then systemd itself,
// told to reach lvss-test.target.
//
// Nothing of the machine's own boot may run there: systemd-tmpfiles would
// empty the machine's /tmp (shared with this namespace), udev, sysctl and
// binfmt act machine-wide. So every unit the machine's targets want is
// masked (in the overlay /etc, which wins over every other unit path), and
// lvss's units get DefaultDependencies=no, so that nothing pulls in
// sysinit.target. journald stays: the test reads the units' logs.
const inner = `set -eu
dir=$1 deb=$2
mount -t tmpfs tmpfs "$dir/ovl"
for d in usr etc var; do
  mkdir -p "$dir/ovl/$d-up" "$dir/ovl/$d-work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$dir/ovl/$d-up,workdir=$dir/ovl/$d-work" "/$d"
done
mount -t tmpfs tmpfs /run
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "$deb" >"$dir/apt.log" 2>&1
units=/etc/systemd/system
for w in /lib/systemd/system/*.wants /etc/systemd/system/*.wants; do
  [ -d "$w" ] || continue
  for u in "$w"/*; do
    n=${u##*/}
    case $n in systemd-journald*) continue ;; esac
    ln -sf /dev/null "$units/$n"
  done
done
for u in lvssd.service lvss-writer@.service lvss-backup@.service lvss-backup@.timer lvss-previous-versions@.service lvss-previous-versions@.timer; do
  mkdir -p "$units/$u.d"
  printf '[Unit]\nDefaultDependencies=no\n' >"$units/$u.d/test-no-boot.conf"
done
# The probe connects once lvssd is started: Type=notify makes that "once
# it serves".
cat >"$units/lvss-probe.service" <<'EOF'
[Unit]
DefaultDependencies=no
Requires=lvssd.service
After=lvssd.service
[Service]
Type=oneshot
ExecStart=/usr/bin/lvss list providers
EOF
cat >"$units/lvss-test.target" <<'EOF'
[Unit]
Description=lvss test
DefaultDependencies=no
Wants=systemd-journald.socket systemd-journald.service lvssd.service lvss-probe.service
EOF
exec /lib/systemd/systemd --system --unit=lvss-test.target
`

// boot builds the package, installs it and starts systemd.
func boot(t *testing.T) *machine {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"unshare", "nsenter", "make", "dpkg-deb", "apt-get", "mkfs.xfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool+" (apt-get install util-linux make dpkg-dev apt xfsprogs)")
		}
	}
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		testenv.Missing(t, "/lib/systemd/systemd (apt-get install systemd)")
	}
	dir := t.TempDir()
	deb := buildDeb(t, dir, "9.9.9+test")
	script := filepath.Join(dir, "inner.sh")
	if err := os.WriteFile(script, []byte(inner), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "ovl"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--cgroup", "--net",
		"--mount-proc", "--propagation", "private", "sh", script, dir, deb)
	out, err := os.Create(filepath.Join(dir, "systemd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A file of the machine's /tmp that systemd's boot must leave alone
	// (see inner): checked once systemd runs.
	canary, err := os.CreateTemp("", "lvss-systemd-canary-")
	if err != nil {
		t.Fatal(err)
	}
	canary.Close()
	t.Cleanup(func() { os.Remove(canary.Name()) })
	m := &machine{t: t, cmd: cmd, dir: dir}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGKILL to PID 1 ends the whole PID namespace; its mounts go
		// with the last process. systemd's own shutdown is not used: it
		// would detach every loop device of the machine.
		if m.pid > 0 {
			_ = syscall.Kill(m.pid, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			for _, f := range []string{"systemd.log", "apt.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("--- %s:\n%s", f, b)
			}
		}
	})
	failed := func() string {
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "apt.log"))
			s, _ := os.ReadFile(filepath.Join(dir, "systemd.log"))
			return fmt.Sprintf("the namespace ended (%v)\n%s\n%s", cmd.ProcessState, b, s)
		default:
			return ""
		}
	}
	// unshare's child is PID 1 there; once it runs systemd, systemctl
	// answers through it.
	eventually(t, "systemd to start", failed, func() bool {
		if m.pid == 0 {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
			if err != nil || len(strings.Fields(string(b))) == 0 {
				return false
			}
			m.pid, _ = strconv.Atoi(strings.Fields(string(b))[0])
			m.root = fmt.Sprintf("/proc/%d/root", m.pid)
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", m.pid))
		if strings.TrimSpace(string(comm)) != "systemd" {
			return false
		}
		state, _ := m.try("systemctl", "is-system-running")
		return state == "running" || state == "degraded"
	})
	if _, err := os.Stat(canary.Name()); err != nil {
		t.Fatalf("systemd's boot in the namespace touched the machine's /tmp: %v", err)
	}
	return m
}

// buildDeb runs make deb into dir, as version, and returns the package's
// path.
func buildDeb(t *testing.T, dir, version string) string {
	t.Helper()
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "deb", "DIST="+filepath.Join(dir, "dist"), "BIN="+filepath.Join(dir, "bin"), "VERSION="+version)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "dist", "lvss_"+version+"_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v", debs)
	}
	return debs[0]
}

// try runs a command inside the machine and returns its trimmed output.
func (m *machine) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(m.pid), "-a", "--"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// run is try that fails the test when the command fails.
func (m *machine) run(args ...string) string {
	m.t.Helper()
	out, err := m.try(args...)
	if err != nil {
		m.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// show returns a unit's properties.
func (m *machine) show(unit string, props ...string) map[string]string {
	m.t.Helper()
	out := m.run(append([]string{"systemctl", "show", unit}, prefixEach("-p", props)...)...)
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			got[k] = v
		}
	}
	return got
}

func prefixEach(flag string, vals []string) []string {
	var out []string
	for _, v := range vals {
		out = append(out, flag, v)
	}
	return out
}

// write puts a file into the machine's root.
func (m *machine) write(path, content string) {
	m.t.Helper()
	if err := os.MkdirAll(filepath.Dir(m.root+path), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(m.root+path, []byte(content), 0o644); err != nil {
		m.t.Fatal(err)
	}
}

// exists reports whether path exists in the machine.
func (m *machine) exists(path string) bool {
	_, err := os.Stat(m.root + path)
	return err == nil
}

// eventually waits for cond, failing the test after bound or when gone
// says why it never will.
func eventually(t *testing.T, what string, gone func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if gone != nil {
			if why := gone(); why != "" {
				t.Fatalf("waiting for %s: %s", what, why)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lvssdActive waits until lvssd is active with a main PID other than old,
// and returns it.
func (m *machine) lvssdActive(old string) string {
	m.t.Helper()
	var pid string
	eventually(m.t, "lvssd to be active (main PID other than "+old+")", nil, func() bool {
		p := m.show("lvssd.service", "ActiveState", "SubState", "MainPID")
		pid = p["MainPID"]
		return p["ActiveState"] == "active" && p["SubState"] == "running" && pid != "0" && pid != old
	})
	return pid
}

func TestPackageUnderSystemd(t *testing.T) {
	testenv.SkipIfShort(t, "builds the Debian package and boots systemd")
	// Made before systemd starts, so its mount namespace has them: a btrfs
	// for the writer, the backups and the snapshots, and an XFS that an
	// exec provider freezes.
	btrfs := testenv.LoopFS(t, "btrfs", 256<<20)
	xfs := testenv.LoopFS(t, "xfs", 320<<20)
	data := filepath.Join(btrfs.Mount, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := boot(t)

	t.Run("installed", func(t *testing.T) {
		m.t = t
		if v := m.run("lvssd", "--version"); !strings.HasPrefix(v, "lvssd 9.9.9+test (commit ") {
			t.Errorf("lvssd --version: %q", v)
		}
		if out := m.run("lvssd", "--check-config"); out != "/etc/lvss/lvssd.toml: valid" {
			t.Errorf("the packaged config: %q", out)
		}
		if _, err := m.try("getent", "group", "lvss"); err != nil {
			t.Errorf("no lvss group: %v", err)
		}
		// Nothing enabled by the package: lvss-test.target started lvssd.
		for _, u := range []string{"lvssd.service", "lvss-writer@x.service", "lvss-backup@x.timer", "lvss-previous-versions@x.timer"} {
			if out, _ := m.try("systemctl", "is-enabled", u); out != "disabled" {
				t.Errorf("%s is %q after install, want disabled", u, out)
			}
		}
		if bin, err := os.ReadFile(m.root + "/usr/sbin/lvssd"); err != nil || len(bin) == 0 {
			t.Errorf("/usr/sbin/lvssd: %v", err)
		}
		// lvss cluster runs the packaged /usr/libexec/lvss/lvss-cluster (L69).
		if out := m.run("lvss", "cluster", "--help"); !strings.Contains(out, "lvss cluster [command]") || !strings.Contains(out, "--etcd") {
			t.Errorf("lvss cluster --help, installed: %q", out)
		}
	})

	t.Run("ready through sd_notify", func(t *testing.T) {
		m.t = t
		m.lvssdActive("")
		if p := m.show("lvssd.service", "StatusText", "Type"); p["StatusText"] != "serving on /run/lvss/lvssd.sock" || p["Type"] != "notify" {
			t.Errorf("lvssd: %v", p)
		}
		// The probe ran once lvssd was started, and lvssd answered it.
		eventually(t, "lvss-probe.service to finish", nil, func() bool {
			return m.show("lvss-probe.service", "ActiveState")["ActiveState"] != "activating"
		})
		if p := m.show("lvss-probe.service", "Result", "ExecMainStatus"); p["Result"] != "success" || p["ExecMainStatus"] != "0" {
			t.Errorf("a unit started after lvssd could not use it: %v\n%s", p, m.run("journalctl", "-u", "lvss-probe", "--no-pager"))
		}
	})

	t.Run("writer unit", func(t *testing.T) {
		m.t = t
		m.write("/etc/lvss/writers/demo.conf", "# an exec writer on the btrfs\nexec\n--name\ndemo\n--component\ndata="+data+"\n")
		m.run("systemctl", "start", "lvss-writer@demo.service")
		eventually(t, "the demo writer to subscribe", nil, func() bool {
			out, _ := m.try("lvss", "list", "writers", "--json")
			return strings.Contains(out, `"name": "demo"`) || strings.Contains(out, `"name":"demo"`)
		})
	})

	t.Run("timer-driven backup", func(t *testing.T) {
		m.t = t
		// A restore point kept on the volume, the newest two of them, and a
		// tar of it.
		m.write("/etc/lvss/backups/nightly.conf", strings.Join([]string{"# the demo writer's data, with tar",
			"backup", "--writer", "demo", "--persistent", "--keep", "2", "--in-place", "--",
			"tar", "-cf", "/var/tmp/nightly.tar", data}, "\n")+"\n")
		// The timer fires a second after it starts instead of daily.
		m.write("/etc/systemd/system/lvss-backup@nightly.timer.d/soon.conf", "[Timer]\nOnCalendar=\nRandomizedDelaySec=0\nOnActiveSec=1s\n")
		m.run("systemctl", "daemon-reload")
		m.run("systemctl", "start", "lvss-backup@nightly.timer")
		eventually(t, "the timer's backup to finish", nil, func() bool {
			p := m.show("lvss-backup@nightly.service", "ExecMainExitTimestampMonotonic", "ActiveState")
			return p["ExecMainExitTimestampMonotonic"] != "0" && p["ActiveState"] != "activating"
		})
		if p := m.show("lvss-backup@nightly.service", "Result", "ExecMainStatus"); p["Result"] != "success" {
			t.Fatalf("backup: %v\n%s", p, m.run("journalctl", "-u", "lvss-backup@nightly", "--no-pager"))
		}
		list := m.run("tar", "-tvf", "/var/tmp/nightly.tar")
		if !strings.Contains(list, strings.TrimPrefix(data, "/")+"/hello.txt") {
			t.Errorf("the backup's archive holds:\n%s", list)
		}
		journal := m.run("journalctl", "-u", "lvss-backup@nightly", "--no-pager")
		if !strings.Contains(journal, "Consistency: application") || !strings.Contains(journal, "'demo': VSS_WS_STABLE") {
			t.Errorf("the journal lacks lvss backup's summary:\n%s", journal)
		}
		// Two more runs: the retention keeps two restore points.
		for range 2 {
			m.run("systemctl", "start", "lvss-backup@nightly.service")
		}
		var shadows []struct {
			Context string `json:"context"`
		}
		if err := json.Unmarshal([]byte(m.run("lvss", "list", "shadows", "--json")), &shadows); err != nil {
			t.Fatal(err)
		}
		if len(shadows) != 2 || !strings.Contains(shadows[0].Context, "APP_ROLLBACK") {
			t.Errorf("after three backups with --keep 2: %+v\n%s", shadows, m.run("journalctl", "-u", "lvss-backup@nightly", "--no-pager"))
		}
	})

	t.Run("previous versions", func(t *testing.T) {
		m.t = t
		// lvssd keeps the path's snapdir; the unit of the path (its
		// instance is the path, escaped) takes client-accessible snapshots
		// with the writer and keeps the newest KEEP of them.
		m.write("/etc/lvss/lvssd.toml", fmt.Sprintf("[[previous_versions]]\npath = %q\n", data))
		m.run("systemctl", "restart", "lvssd.service")
		m.lvssdActive("")
		inst := m.run("systemd-escape", "--path", data)
		unit := "lvss-previous-versions@" + inst
		// Windows' schedule: two calendar entries (one line each).
		if tm := m.run("systemctl", "show", unit+".timer", "-p", "TimersCalendar", "-p", "Persistent"); !strings.Contains(tm, "Persistent=yes") ||
			!strings.Contains(tm, "OnCalendar=Mon..Fri *-*-* 07:00:00 ") || !strings.Contains(tm, "OnCalendar=Mon..Fri *-*-* 12:00:00 ") {
			t.Errorf("the timer: %s", tm)
		}
		// Named by the path (the unit's %I).
		m.write("/etc/lvss/previous-versions"+data+".conf", "# two are enough here\nKEEP=2\n")
		for range 3 {
			m.run("systemctl", "start", unit+".service")
			if p := m.show(unit+".service", "Result"); p["Result"] != "success" {
				t.Fatalf("%s: %v\n%s", unit, p, m.run("journalctl", "-u", unit, "--no-pager"))
			}
		}
		var shadows []struct {
			ID          string `json:"snapshot_id"`
			Context     string `json:"context"`
			Consistency string `json:"consistency"`
		}
		if err := json.Unmarshal([]byte(m.run("lvss", "list", "shadows", "--for", data, "--json")), &shadows); err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, s := range shadows {
			kinds[s.Context]++
			if strings.Contains(s.Context, "CLIENT_ACCESSIBLE") && s.Consistency != "application" {
				t.Errorf("a previous version is %s, not application-consistent", s.Consistency)
			}
		}
		// Pruned to KEEP, and the backups' restore points untouched.
		if kinds["VSS_CTX_CLIENT_ACCESSIBLE_WRITERS"] != 2 || kinds["VSS_CTX_APP_ROLLBACK"] != 2 || len(kinds) != 2 {
			t.Errorf("after three runs with KEEP=2: %v\n%s", kinds, m.run("journalctl", "-u", unit, "--no-pager"))
		}
		journal := m.run("journalctl", "-u", unit, "--no-pager")
		if !strings.Contains(journal, "Deleted shadow copy ") || !strings.Contains(journal, "not one of the newest 2") {
			t.Errorf("the unit's journal lacks retention's report:\n%s", journal)
		}
		eventually(t, "lvssd's snapdir of the path to hold the two", nil, func() bool {
			// ReadDir, not Glob: the escaped name holds backslashes.
			links, _ := os.ReadDir(m.root + "/run/lvss/previous-versions/" + inst)
			n := 0
			for _, l := range links {
				if strings.HasPrefix(l.Name(), "@GMT-") && l.Type()&os.ModeSymlink != 0 {
					n++
				}
			}
			return n == 2
		})
	})

	// An exec provider on the XFS whose commit (run while the XFS is
	// frozen) signals that it started and then waits: the XFS stays
	// frozen until lvssd is killed or the hold window ends.
	m.write("/etc/lvss/lvssd.toml", fmt.Sprintf(`[timeouts]
hold = "20s"
freeze = "40s"
prepare_snapshot = "60s"

[[providers.exec]]
name = "slowsan"
volumes = [%q]
commit = "touch /run/lvss-test-committing; exec sleep 300"
delete = "true"
timeout = "20s"
`, xfs.Mount))
	if out := m.run("lvssd", "--check-config"); out != "/etc/lvss/lvssd.toml: valid" {
		t.Fatalf("test config: %s", out)
	}
	startHeldCreation := func(t *testing.T, unit string) {
		t.Helper()
		_ = os.Remove(m.root + "/run/lvss-test-committing")
		m.run("systemd-run", "--unit="+unit, "--service-type=exec", "-p", "DefaultDependencies=no", "lvss", "create", "shadow", "--for", xfs.Mount, "--provider", "slowsan")
		eventually(t, "the exec provider's commit to run", nil, func() bool { return m.exists("/run/lvss-test-committing") })
		if frozen, err := xfs.Frozen(); !frozen || err != nil {
			t.Fatalf("the XFS is not frozen during the commit: %v %v", frozen, err)
		}
		if recs, _ := os.ReadDir(m.root + "/run/lvss/freeze"); len(recs) == 0 {
			t.Fatal("no freeze record in /run/lvss/freeze while frozen")
		}
	}
	thawed := func(t *testing.T) {
		t.Helper()
		eventually(t, "the XFS to be thawed", nil, func() bool {
			frozen, err := xfs.Frozen()
			return err == nil && !frozen
		})
		if recs, _ := os.ReadDir(m.root + "/run/lvss/freeze"); len(recs) != 0 {
			t.Errorf("freeze records left: %v", recs)
		}
	}
	// noSnapshot: the failed creation left nothing in lvssd's catalog.
	noSnapshot := func(t *testing.T) {
		t.Helper()
		if out := m.run("lvss", "list", "shadows", "--json"); strings.Contains(out, xfs.Mount) {
			t.Errorf("a snapshot of the failed creation is listed: %s", out)
		}
	}

	for _, kill := range []string{"main", "all"} {
		t.Run("SIGKILL to "+kill+" while frozen", func(t *testing.T) {
			m.t = t
			m.run("systemctl", "restart", "lvssd.service")
			before := m.lvssdActive("")
			restarts := m.show("lvssd.service", "NRestarts")["NRestarts"]
			startHeldCreation(t, "lvss-test-create-"+kill)
			// "all" kills the freeze guard too: then only the records and
			// ExecStopPost (and lvssd's start) can thaw.
			m.run("systemctl", "kill", "--signal=SIGKILL", "--kill-whom="+kill, "lvssd.service")
			thawed(t)
			m.lvssdActive(before)
			noSnapshot(t)
			if n := m.show("lvssd.service", "NRestarts")["NRestarts"]; n == restarts {
				t.Errorf("systemd did not restart lvssd (NRestarts %s)", n)
			}
		})
	}

	t.Run("stop during a backup", func(t *testing.T) {
		m.t = t
		m.lvssdActive("")
		startHeldCreation(t, "lvss-test-create-stop")
		m.run("systemctl", "stop", "lvssd.service")
		if frozen, err := xfs.Frozen(); frozen || err != nil {
			t.Fatalf("the XFS is frozen after systemctl stop returned: %v %v", frozen, err)
		}
		if p := m.show("lvssd.service", "ActiveState"); p["ActiveState"] != "inactive" && p["ActiveState"] != "failed" {
			t.Errorf("lvssd after stop: %v", p)
		}
		thawed(t)
		m.run("systemctl", "start", "lvssd.service")
		noSnapshot(t)
	})

	t.Run("upgrade", func(t *testing.T) {
		m.t = t
		// The admin's configuration, changed from the package's.
		mine := "[limits]\nmax_snapshots_per_volume = 100\n"
		m.write("/etc/lvss/lvssd.toml", mine)
		m.run("systemctl", "restart", "lvssd.service")
		before := m.lvssdActive("")
		deb := buildDeb(t, t.TempDir(), "9.9.10+test")
		if err := os.WriteFile(m.root+"/run/lvss-upgrade.deb", mustRead(t, deb), 0o644); err != nil {
			t.Fatal(err)
		}
		m.run("apt-get", "install", "-y", "-q", "--no-install-recommends", "/run/lvss-upgrade.deb")
		if v := m.run("lvssd", "--version"); !strings.HasPrefix(v, "lvssd 9.9.10+test ") {
			t.Errorf("after the upgrade: %q", v)
		}
		// The running lvssd was restarted on the new binary.
		m.lvssdActive(before)
		if b, _ := os.ReadFile(m.root + "/etc/lvss/lvssd.toml"); string(b) != mine {
			t.Errorf("the upgrade changed /etc/lvss/lvssd.toml:\n%s", b)
		}
	})

	t.Run("remove and purge keep snapshots", func(t *testing.T) {
		m.t = t
		m.write("/etc/lvss/lvssd.toml", "")
		m.run("systemctl", "restart", "lvssd.service")
		m.lvssdActive("")
		m.run("lvss", "create", "shadow", "--for", btrfs.Mount)
		var shadows []struct {
			SnapshotPath string `json:"snapshot_path"`
		}
		// The backups' two restore points, the two previous versions and
		// this one.
		if err := json.Unmarshal([]byte(m.run("lvss", "list", "shadows", "--json")), &shadows); err != nil || len(shadows) != 5 {
			t.Fatalf("shadows: %v %+v", err, shadows)
		}
		snap := shadows[len(shadows)-1].SnapshotPath
		m.run("apt-get", "remove", "-y", "-q", "lvss")
		for _, u := range []string{"lvssd.service", "lvss-writer@demo.service"} {
			if out, _ := m.try("systemctl", "is-active", u); out == "active" {
				t.Errorf("%s still active after apt-get remove", u)
			}
		}
		if !m.exists("/var/lib/lvss/catalog.db") || !m.exists(snap) || !m.exists("/etc/lvss/lvssd.toml") {
			t.Fatalf("apt-get remove took the catalog (%v), the snapshot %s (%v) or the config (%v)",
				m.exists("/var/lib/lvss/catalog.db"), snap, m.exists(snap), m.exists("/etc/lvss/lvssd.toml"))
		}
		if m.exists("/usr/sbin/lvssd") {
			t.Error("apt-get remove left /usr/sbin/lvssd")
		}
		m.run("apt-get", "purge", "-y", "-q", "lvss")
		if m.exists("/var/lib/lvss/catalog.db") || m.exists("/etc/lvss") {
			t.Error("apt-get purge left the catalog or /etc/lvss")
		}
		for _, sh := range shadows {
			if !m.exists(sh.SnapshotPath) {
				t.Errorf("apt-get purge deleted the snapshot %s", sh.SnapshotPath)
			}
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
