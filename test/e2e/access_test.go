package e2e

import (
	"context"
	"os"
	stdexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vsserr"
	execwriter "github.com/lvss/lvss/writers/exec"
)

// The access tests run lvss and lvss-writer under uids and gids of a
// private range without passwd or group entries (lvssd.toml takes numeric
// ids; the peer's groups come from the kernel), so nothing is added to the
// machine. The daemon's directory is made reachable for them.
const (
	e2eOutsider  = 61010
	e2eRequester = 61011
	e2eAdmin     = 61012
	e2eBound     = 61013
	e2eWriter    = 61014

	e2eRequesterGroup = 61110
	e2eAdminGroup     = 61310
	e2eWriterGroup    = 61210
)

func as(uid uint32, groups ...uint32) *syscall.Credential {
	gid := uid
	if len(groups) > 0 {
		gid = groups[0]
	}
	return &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}
}

func accessConfig(extra string) string {
	return shortTimeouts + `
[access]
groups = []
requester_groups = ["` + strconv.Itoa(e2eRequesterGroup) + `"]
admin_groups = ["` + strconv.Itoa(e2eAdminGroup) + `"]
writer_groups = ["` + strconv.Itoa(e2eWriterGroup) + `"]
` + extra
}

// TestAccessRolesWithTheCLI: a member of the requester group runs a real
// lvss backup on a btrfs volume; a read-only admin may list, see the
// status and read the events but not create a snapshot; an outsider may
// do neither; each refusal says which role is needed and the key that
// grants it.
func TestAccessRolesWithTheCLI(t *testing.T) {
	testenv.RequireRoot(t)
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	// lvss looks at --for paths itself: the requester must reach the
	// volume, as it would reach /srv.
	if err := os.Chmod(filepath.Dir(fs.Mount), 0o755); err != nil {
		t.Fatal(err)
	}
	d := lvssdtest.StartDaemon(t, lvssdtest.DaemonOptions{Config: accessConfig(""), Reachable: true})
	requester, admin, outsider := as(e2eRequester, e2eRequesterGroup), as(e2eAdmin, e2eAdmin, e2eAdminGroup), as(e2eOutsider)

	r := lvssdtest.LvssAs(t, requester, d.Socket, "", "backup", "--for", fs.Mount, "--json", "--", "sh", "-c", `test -n "$LVSS_SNAPSHOT_1_PATH"`)
	if r.Code != 0 {
		t.Fatalf("lvss backup as a requester: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := lvssdtest.LvssAs(t, requester, d.Socket, "", "create", "shadow", "--for", fs.Mount); r.Code != 0 {
		t.Fatalf("lvss create shadow as a requester: exit %d\n%s", r.Code, r.Stderr)
	}

	for _, args := range [][]string{{"list", "shadows"}, {"list", "writers"}, {"list", "providers"}, {"status"}, {"events"}} {
		if r := lvssdtest.LvssAs(t, admin, d.Socket, "", args...); r.Code != 0 {
			t.Errorf("lvss %s as an admin: exit %d\n%s", strings.Join(args, " "), r.Code, r.Stderr)
		}
	}
	r = lvssdtest.LvssAs(t, admin, d.Socket, "", "create", "shadow", "--for", fs.Mount)
	if r.Code != 1 || !strings.Contains(r.Stderr, "E_ACCESSDENIED (0x80070005)") ||
		!strings.Contains(r.Stderr, "hint: this needs the requester role") || !strings.Contains(r.Stderr, "access.requester_groups") {
		t.Fatalf("lvss create shadow as an admin: exit %d\n%s", r.Code, r.Stderr)
	}
	r = lvssdtest.LvssAs(t, outsider, d.Socket, "", "list", "shadows", "--json")
	if r.Code != 1 || !strings.Contains(r.Stdout+r.Stderr, `"name":"E_ACCESSDENIED"`) || !strings.Contains(r.Stdout+r.Stderr, "access.admin_groups") {
		t.Fatalf("lvss list shadows as an outsider: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := lvssdtest.LvssAs(t, outsider, d.Socket, "", "backup", "--for", fs.Mount, "--", "true"); r.Code != 1 || !strings.Contains(r.Stderr, "E_ACCESSDENIED") {
		t.Fatalf("lvss backup as an outsider: exit %d\n%s", r.Code, r.Stderr)
	}
	// The admin's refused creation left nothing: the requester's
	// persistent snapshot is the only one.
	if r := lvssdtest.Lvss(t, d.Socket, "", "list", "shadows", "--json"); strings.Count(r.Stdout, `"snapshot_id"`) != 1 {
		t.Fatalf("snapshots after the refusals:\n%s", r.Stdout)
	}
}

// TestAccessWriterClassBinding: with the exec writer "guarded" bound to
// one uid, a process of another uid in the writer group cannot register
// it (refused and logged with its uid and executable), and the bound uid
// can, without a writer role.
func TestAccessWriterClassBinding(t *testing.T) {
	testenv.RequireRoot(t)
	class := execwriter.ClassIDFor("guarded")
	d := lvssdtest.StartDaemon(t, lvssdtest.DaemonOptions{Reachable: true, Config: accessConfig(`
[[access.writer_class]]
class_id = "` + class.String() + `"
users = ["` + strconv.Itoa(e2eBound) + `"]
`)})
	data := filepath.Join(d.Dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	writerBin := filepath.Join(lvssdtest.Binaries(t), "lvss-writer")
	run := func(name string, cred *syscall.Credential) *lvssdtest.Proc {
		cmd := stdexec.Command(writerBin, "--socket", d.Socket, "exec", "--name", "guarded", "--component", "data="+data, "--tmpdir", "/dev/shm")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
		return lvssdtest.Start(t, d.Dir, name, cmd)
	}
	impostor := run("lvss-writer impostor", as(e2eWriter, e2eWriterGroup))
	var denial client.LogEvent
	lvssdtest.Eventually(t, 15*time.Second, "lvssd to log the impostor's refusal", func() bool {
		for _, e := range lvssdtest.Events(t, d.Socket) {
			if e.HRESULT == vsserr.AccessDenied && e.Fields["uid"] == strconv.Itoa(e2eWriter) {
				denial = e
				return true
			}
		}
		return false
	})
	if denial.Fields["exe"] != writerBin || denial.Fields["pid"] != strconv.Itoa(impostor.Cmd.Process.Pid) ||
		!strings.Contains(denial.Fields["method"], "Writer.Subscribe") || !strings.Contains(denial.Fields["reason"], "access.writer_class[0]") {
		t.Fatalf("denial: %+v", denial.Fields)
	}
	impostor.Stop(t)
	run("lvss-writer bound", as(e2eBound))
	d.WaitWriters(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ws, err := conn.ListWriters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].WriterID != class || ws[0].UID != e2eBound {
		t.Fatalf("writers: %+v", ws)
	}
}

// TestExposureKeepsOwnershipAndModes: a snapshot exposed by the btrfs and
// the copy provider shows every file with its owner and mode, so an
// unprivileged user can read a 0644 file through the exposure and not a
// 0600 one of root's; and a volume others cannot reach is not exposed
// where they can (L53).
func TestExposureKeepsOwnershipAndModes(t *testing.T) {
	testenv.RequireRoot(t)
	bt := testenv.LoopFS(t, "btrfs", 256<<20)
	ext := testenv.LoopFS(t, "ext4", 256<<20)
	for _, fs := range []*testenv.FS{bt, ext} {
		// The loop mounts sit in private directories; open the way to
		// them as /srv would be.
		if err := os.Chmod(filepath.Dir(fs.Mount), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(fs.Mount, "secret"), "root only")
		writeFile(t, filepath.Join(fs.Mount, "public"), "anyone")
		if err := os.Chmod(filepath.Join(fs.Mount, "secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(fs.Mount, "public"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := lvssdtest.StartDaemon(t, lvssdtest.DaemonOptions{Reachable: true, Config: shortTimeouts + `
[providers.copy]
volumes = ["` + ext.Mount + `"]
`})
	open := t.TempDir()
	if err := os.Chmod(filepath.Dir(open), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	reader := as(e2eOutsider)
	for name, fs := range map[string]*testenv.FS{"btrfs": bt, "copy": ext} {
		t.Run(name, func(t *testing.T) {
			id := shadowOf(t, d, fs.Mount)
			at := filepath.Join(open, name)
			if err := os.Mkdir(at, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				d.Lvss(t, "", "unexpose", id)
				syscall.Unmount(at, syscall.MNT_DETACH)
			})
			if r := d.Lvss(t, "", "expose", id, at); r.Code != 0 {
				t.Fatalf("expose: %d\n%s", r.Code, r.Stderr)
			}
			var vol, exp syscall.Stat_t
			if err := syscall.Stat(fs.Mount, &vol); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Stat(at, &exp); err != nil {
				t.Fatal(err)
			}
			if exp.Mode != vol.Mode || exp.Uid != vol.Uid || exp.Gid != vol.Gid {
				t.Fatalf("exposure root %o %d:%d, volume root %o %d:%d", exp.Mode, exp.Uid, exp.Gid, vol.Mode, vol.Uid, vol.Gid)
			}
			if out, err := catAs(reader, filepath.Join(at, "public")); err != nil || out != "anyone" {
				t.Fatalf("reading the 0644 file through the exposure: %q %v", out, err)
			}
			if out, err := catAs(reader, filepath.Join(at, "secret")); err == nil || !strings.Contains(out, "Permission denied") {
				t.Fatalf("an unprivileged user read root's 0600 file through the exposure: %q %v", out, err)
			}
		})
	}

	// A volume below a directory others may not enter is not exposed
	// where everyone can reach it; below a private directory it is.
	if err := os.Chmod(filepath.Dir(bt.Mount), 0o700); err != nil {
		t.Fatal(err)
	}
	id := shadowOf(t, d, bt.Mount)
	at := filepath.Join(open, "wider")
	if err := os.Mkdir(at, 0o755); err != nil {
		t.Fatal(err)
	}
	r := d.Lvss(t, "", "expose", id, at)
	if r.Code != 1 || !strings.Contains(r.Stderr, "E_INVALIDARG") || !strings.Contains(r.Stderr, filepath.Dir(bt.Mount)+" lets no others in") {
		t.Fatalf("expose where everyone can reach a private volume: exit %d\n%s", r.Code, r.Stderr)
	}
	private := filepath.Join(t.TempDir(), "private", "x")
	if err := os.Mkdir(filepath.Dir(private), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(private, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Lvss(t, "", "unexpose", id)
		syscall.Unmount(private, syscall.MNT_DETACH)
	})
	if r := d.Lvss(t, "", "expose", id, private); r.Code != 0 {
		t.Fatalf("expose below a private directory: exit %d\n%s", r.Code, r.Stderr)
	}
}

// catAs reads a file as cred with cat(1), returning its output (or
// error text) without the trailing newline.
func catAs(cred *syscall.Credential, path string) (string, error) {
	cmd := stdexec.Command("cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestStartRefusesOpenStateDir: lvssd does not start on a state directory
// others may write, and says which directory and the command that fixes
// it (L51).
func TestStartRefusesOpenStateDir(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(state, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := filepath.Join(dir, "lvssd.toml")
	writeFile(t, cfg, "")
	out, err := stdexec.CommandContext(ctx, filepath.Join(binaries(t), "lvssd"), "--socket", filepath.Join(dir, "s"), "--state-dir", state,
		"--run-dir", filepath.Join(dir, "run"), "--config", cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("lvssd started on a world-writable state dir:\n%s", out)
	}
	want := "state directory " + state + " is writable by group or others (mode 0777)"
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "fix: chmod go-w "+state) {
		t.Fatalf("lvssd's refusal does not name the directory and the fix:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(state, "catalog.db")); !os.IsNotExist(err) {
		t.Fatalf("lvssd wrote into the refused state dir: %v", err)
	}
}
