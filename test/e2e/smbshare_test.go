package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// Remote exposure (docs/previous-versions.md, "Remote exposure"; L58,
// L59): snapshots made by the real lvssd published as read-only SMB
// shares of a throwaway smbd whose registry lvssd edits through Samba's
// own tools, read back with the real smbclient.

// sambaSection is lvssd's [samba] section for a throwaway smbd, with
// remote exposure on.
func sambaSection(smb *testenv.Samba) string {
	return fmt.Sprintf("\n[samba]\nconfig = %q\nremote_exposure = true\n", smb.Conf)
}

type createdShadow struct {
	ID          string `json:"snapshot_id"`
	Path        string `json:"snapshot_path"`
	Created     string `json:"created"`
	Consistency string `json:"consistency"`
	Reason      string `json:"consistency_reason"`
	Context     string `json:"context"`
}

// createShadow runs lvss create shadow --json with args and returns its
// one snapshot.
func createShadow(t *testing.T, socket string, args ...string) createdShadow {
	t.Helper()
	r := lvssdtest.Lvss(t, socket, "", append([]string{"create", "shadow", "--json"}, args...)...)
	var out struct {
		Snapshots []createdShadow `json:"snapshots"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil || len(out.Snapshots) != 1 {
		t.Fatalf("lvss create shadow %v: exit %d\n%s\n%s", args, r.Code, r.Stdout, r.Stderr)
	}
	return out.Snapshots[0]
}

type listedShadow struct {
	ID               string   `json:"snapshot_id"`
	Attributes       []string `json:"attributes"`
	ExposedPath      string   `json:"exposed_path"`
	ExposedShare     string   `json:"exposed_share"`
	ExposedSharePath string   `json:"exposed_share_path"`
}

func listedShadows(t *testing.T, socket string) map[string]listedShadow {
	t.Helper()
	r := lvssdtest.Lvss(t, socket, "", "list", "shadows", "--json")
	var ss []listedShadow
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &ss) != nil {
		t.Fatalf("lvss list shadows: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	out := map[string]listedShadow{}
	for _, s := range ss {
		out[s.ID] = s
	}
	return out
}

// smbGet reads a file of a share with smbclient.
func smbGet(t *testing.T, smb *testenv.Samba, share, file string) string {
	t.Helper()
	local := filepath.Join(t.TempDir(), "got")
	if out, err := smb.Client(share, "get "+file+" "+local); err != nil {
		t.Fatalf("smbclient get %s from %s: %v\n%s", file, share, err, out)
	}
	b, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// smbWriteRefused checks that a write to the share is refused.
func smbWriteRefused(t *testing.T, smb *testenv.Samba, share string) {
	t.Helper()
	local := filepath.Join(t.TempDir(), "new.txt")
	if err := os.WriteFile(local, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := smb.Client(share, "put "+local+" new.txt"); err == nil || !strings.Contains(out, "NT_STATUS_ACCESS_DENIED") {
		t.Fatalf("a write to share %s was not refused (%v):\n%s", share, err, out)
	}
}

// gone checks that the share is neither listed nor can be connected to.
func shareGone(t *testing.T, smb *testenv.Samba, share string) {
	t.Helper()
	if shares := smb.Shares(t); slices.Contains(shares, share) {
		t.Fatalf("share %s is still listed: %v", share, shares)
	}
	if out, err := smb.Client(share, "ls"); err == nil || !strings.Contains(out, "NT_STATUS_BAD_NETWORK_NAME") {
		t.Fatalf("a tree connect to the removed share %s did not fail as it should (%v):\n%s", share, err, out)
	}
}

func btrfsSubvolume(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("btrfs"); err != nil {
		testenv.Missing(t, "btrfs (apt-get install btrfs-progs)")
	}
	if out, err := exec.Command("btrfs", "subvolume", "create", path).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v\n%s", err, out)
	}
}

// TestExposeSnapshotAsSMBShare: an application-consistent btrfs snapshot
// (a real writer frozen for it) published with lvss expose --smb: listed
// by smbclient -L, its files read back with the snapshot's content although
// the live files changed, writes refused, the properties say
// VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY and the name; a subdirectory shared
// through lvss call's ExposeSnapshot as vshadow -er does; a name in use
// refused; lvss unexpose withdraws the share (no listing, no tree connect);
// deleting a shared snapshot withdraws its share.
func TestExposeSnapshotAsSMBShare(t *testing.T) {
	testenv.RequireRoot(t)
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	data := filepath.Join(fs.Mount, "data")
	btrfsSubvolume(t, data)
	writeFile(t, filepath.Join(data, "report.txt"), "monday\n")
	if err := os.Mkdir(filepath.Join(data, "projects"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(data, "projects", "plan.txt"), "plan A\n")
	smb := testenv.StartSamba(t, testenv.SambaOptions{RegistryShares: true})
	d := startDaemon(t, shortTimeouts+sambaSection(smb))
	start(t, d.dir, "lvss-writer", "--socket", d.socket, "exec", "--name", "app", "--component", "data="+data,
		"--tmpdir", "/dev/shm", "--on-freeze", "sync", "--on-thaw", "true")
	d.waitWriters(t, 1)

	snap := createShadow(t, d.socket, "--for", data, "--context", "app_rollback")
	if snap.Consistency != "application" {
		t.Fatalf("the snapshot is %s-consistent, want application (a writer with a component on the volume took part)", snap.Consistency)
	}
	writeFile(t, filepath.Join(data, "report.txt"), "tuesday\n")
	t.Cleanup(func() { lvssdtest.Lvss(t, d.socket, "", "unexpose", snap.ID) })

	r := d.lvss(t, "expose", "--smb", "monday", snap.ID)
	if r.Code != 0 || !strings.Contains(r.Stdout, "is shared read-only as SMB share monday") {
		t.Fatalf("lvss expose --smb: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if shares := smb.Shares(t); !slices.Contains(shares, "monday") {
		t.Fatalf("smbclient -L lists %v, not the share", shares)
	}
	if got := smbGet(t, smb, "monday", "report.txt"); got != "monday\n" {
		t.Fatalf("report.txt through the share reads %q, want the snapshot's %q", got, "monday\n")
	}
	if got := smbGet(t, smb, "monday", `projects\plan.txt`); got != "plan A\n" {
		t.Fatalf("projects/plan.txt through the share reads %q", got)
	}
	smbWriteRefused(t, smb, "monday")
	s := listedShadows(t, d.socket)[snap.ID]
	if s.ExposedShare != "monday" || s.ExposedPath != "" || !slices.Contains(s.Attributes, "VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY") ||
		slices.Contains(s.Attributes, "VSS_VOLSNAP_ATTR_NOT_SURFACED") {
		t.Fatalf("lvss list shadows shows %+v", s)
	}

	// A second snapshot may not take the name.
	other := createShadow(t, d.socket, "--for", data, "--context", "app_rollback")
	r = d.lvss(t, "expose", "--smb", "MONDAY", other.ID, "--json")
	if r.Code != 1 || !strings.Contains(r.Stderr, `"name":"VSS_E_OBJECT_ALREADY_EXISTS"`) {
		t.Fatalf("a share name in use: exit %d\n%s", r.Code, r.Stderr)
	}

	if r := d.lvss(t, "unexpose", snap.ID); r.Code != 0 || !strings.Contains(r.Stdout, "no longer shared as SMB share monday") {
		t.Fatalf("lvss unexpose: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	shareGone(t, smb, "monday")

	// vshadow -er=ID,projects,\projects: ExposeSnapshot through lvss call,
	// with a directory of the snapshot.
	script := fmt.Sprintf("InitializeForBackup\nSetContext VSS_CTX_ALL\nExposeSnapshot %s /projects VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY projects\n"+
		"GetSnapshotProperties %s\n", snap.ID, snap.ID)
	r = lvssdtest.Lvss(t, d.socket, script, "call", "--json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"exposed_name":"projects"`) || !strings.Contains(r.Stdout, `"exposed_path":"/projects"`) {
		t.Fatalf("lvss call ExposeSnapshot ... VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := smbGet(t, smb, "projects", "plan.txt"); got != "plan A\n" {
		t.Fatalf("plan.txt at the root of the projects share reads %q", got)
	}
	if s := listedShadows(t, d.socket)[snap.ID]; s.ExposedShare != "projects" || s.ExposedSharePath != "/projects" {
		t.Fatalf("lvss list shadows shows %+v", s)
	}

	// Deleting a shared snapshot withdraws its share first.
	if r := d.lvss(t, "delete", "shadows", "--shadow", snap.ID); r.Code != 0 {
		t.Fatalf("lvss delete shadows: exit %d\n%s", r.Code, r.Stderr)
	}
	shareGone(t, smb, "projects")
	if list, err := smb.Net("conf", "listshares"); err != nil || strings.TrimSpace(list) != "" {
		t.Fatalf("Samba's registry after the delete: %q (%v)", list, err)
	}
}

// lvss runs the lvss binary against the daemon.
func (d *daemon) lvss(t *testing.T, args ...string) lvssdtest.Result {
	t.Helper()
	return lvssdtest.Lvss(t, d.socket, "", args...)
}

// TestExposeImageSnapshotAsSMBShare: an exec provider's snapshot is an
// image file (a clone of an ext4's image, docs/provider-exec.md's worked
// example), which has no directory to share: lvssd exposes it through the
// provider's expose command at a directory of its own, shares that, and
// unexpose undoes both.
func TestExposeImageSnapshotAsSMBShare(t *testing.T) {
	testenv.RequireRoot(t)
	ext := testenv.LoopFS(t, "ext4", 64<<20)
	writeFile(t, filepath.Join(ext.Mount, "payload"), "before the snapshot\n")
	if err := os.Mkdir(filepath.Join(filepath.Dir(ext.Image), ".snapshots"), 0o700); err != nil {
		t.Fatal(err)
	}
	smb := testenv.StartSamba(t, testenv.SambaOptions{RegistryShares: true})
	cfg := fmt.Sprintf(`
[timeouts]
hold = "10s"
freeze = "20s"
[[providers.exec]]
name = "image-clone"
volumes = [%q]
timeout = "10s"
commit = '''
set -eu
i=1
while [ "$i" -le "$LVSS_VOLUME_COUNT" ]; do
	eval dev=\$LVSS_DEVICE_$i id=\$LVSS_SNAPSHOT_ID_$i
	img=$(cat "/sys/block/${dev#/dev/}/loop/backing_file")
	clone="$(dirname "$img")/.snapshots/$id.img"
	cp --reflink=auto --sparse=always -- "$img" "$clone"
	printf '%%s\n' "$clone"
	i=$((i + 1))
done
'''
delete = 'rm -f -- "$LVSS_SNAPSHOT_HANDLE"'
expose = 'mount -o ro,loop -- "$LVSS_SNAPSHOT_HANDLE" "$LVSS_EXPOSE_PATH"'
unexpose = 'if mountpoint -q -- "$LVSS_EXPOSE_PATH"; then umount -- "$LVSS_EXPOSE_PATH"; fi'
`, ext.Mount) + sambaSection(smb)
	dd := lvssdtest.StartDaemon(t, lvssdtest.DaemonOptions{Config: cfg})
	d := &daemon{dir: dd.Dir, socket: dd.Socket, proc: dd.Proc}

	snap := createShadow(t, d.socket, "--for", ext.Mount, "--provider", "image-clone")
	writeFile(t, filepath.Join(ext.Mount, "payload"), "after the snapshot\n")
	private := filepath.Join(dd.RunDir, "shares", snap.ID)
	t.Cleanup(func() {
		// A failed test must not leave the clone mounted.
		lvssdtest.Lvss(t, d.socket, "", "unexpose", snap.ID)
		unix.Unmount(private, unix.MNT_DETACH)
	})
	if r := d.lvss(t, "expose", "--smb", "image", snap.ID); r.Code != 0 {
		t.Fatalf("lvss expose --smb of an image snapshot: exit %d\n%s", r.Code, r.Stderr)
	}
	if shares := smb.Shares(t); !slices.Contains(shares, "image") {
		t.Fatalf("smbclient -L lists %v", shares)
	}
	if got := smbGet(t, smb, "image", "payload"); got != "before the snapshot\n" {
		t.Fatalf("payload through the share reads %q", got)
	}
	smbWriteRefused(t, smb, "image")
	if !mounted(t, private) {
		t.Fatalf("the image is not mounted at lvssd's directory %s", private)
	}
	if s := listedShadows(t, d.socket)[snap.ID]; s.ExposedShare != "image" || !slices.Contains(s.Attributes, "VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY") {
		t.Fatalf("lvss list shadows shows %+v", s)
	}
	// A client that has the share open (smbd's process for it works in
	// the mounted image) does not keep the image mounted: unexpose ends
	// its connection to the share, then unmounts.
	open := smb.Open(t, "image")
	if out := open.Ls(t); !strings.Contains(out, "payload") {
		t.Fatalf("the open connection does not list the share:\n%s", out)
	}
	if r := d.lvss(t, "unexpose", snap.ID); r.Code != 0 {
		t.Fatalf("lvss unexpose while a client has the share open: exit %d\n%s", r.Code, r.Stderr)
	}
	if out := open.Ls(t); !strings.Contains(out, "NT_STATUS_NETWORK_NAME_DELETED") {
		t.Fatalf("the client that had the share open is not told it is gone:\n%s", out)
	}
	shareGone(t, smb, "image")
	if mounted(t, private) {
		t.Fatalf("the image is still mounted at %s after unexpose", private)
	}
	if _, err := os.Stat(private); !os.IsNotExist(err) {
		t.Fatalf("lvssd's directory for the share stayed: %v", err)
	}
}

// mounted reports whether something is mounted at dir.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// TestSMBExposeWithoutSamba: with remote exposure off in lvssd's config
// (no [samba], or one that does not turn it on), and with it on over a
// smb.conf that lacks registry shares, remote exposure is
// VSS_E_NOT_SUPPORTED, and the message and hint say what to install and
// set.
func TestSMBExposeWithoutSamba(t *testing.T) {
	testenv.RequireRoot(t)
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	data := filepath.Join(fs.Mount, "data")
	btrfsSubvolume(t, data)
	plain := testenv.StartSamba(t, testenv.SambaOptions{})
	for _, c := range []struct {
		what, config, says string
	}{
		{"no [samba] section", shortTimeouts, "remote exposure is off in lvssd's config"},
		{"remote exposure not turned on", shortTimeouts + fmt.Sprintf("\n[samba]\nconfig = %q\n", plain.Conf), "set remote_exposure = true"},
		{"no registry shares", shortTimeouts + sambaSection(plain), "add 'registry shares = yes' to its [global] section"},
	} {
		t.Run(c.what, func(t *testing.T) {
			d := startDaemon(t, c.config)
			snap := createShadow(t, d.socket, "--for", data)
			r := d.lvss(t, "expose", "--smb", "snap", snap.ID)
			if r.Code != 1 || !strings.HasPrefix(r.Stderr, "lvss: VSS_E_NOT_SUPPORTED (0x8004232F): ExposeSnapshot ") ||
				!strings.Contains(r.Stderr, c.says) || !strings.Contains(r.Stderr, "hint: sharing snapshots needs Samba: apt-get install samba") {
				t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
			}
			if r := d.lvss(t, "delete", "shadows", "--shadow", snap.ID); r.Code != 0 {
				t.Fatalf("delete: exit %d\n%s", r.Code, r.Stderr)
			}
		})
	}
	if list, err := plain.Net("conf", "listshares"); err != nil || strings.TrimSpace(list) != "" {
		t.Fatalf("Samba's registry: %q (%v)", list, err)
	}
}

// TestSMBShareCutBeforeRecord: lvssd SIGKILLed right after it made the
// share and before the catalog recorded it (failpoint expose.record). The
// share is in Samba's registry with no owner; the next lvssd removes it,
// says so in lvss status, and the snapshot is not exposed and can be
// shared again under the same name.
func TestSMBShareCutBeforeRecord(t *testing.T) {
	testenv.RequireRoot(t)
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	data := filepath.Join(fs.Mount, "data")
	btrfsSubvolume(t, data)
	writeFile(t, filepath.Join(data, "f.txt"), "content\n")
	smb := testenv.StartSamba(t, testenv.SambaOptions{RegistryShares: true})
	dirs := t.TempDir()
	opts := lvssdtest.DaemonOptions{Config: shortTimeouts + sambaSection(smb), StateDir: filepath.Join(dirs, "state"), RunDir: filepath.Join(dirs, "run")}

	d0 := lvssdtest.StartDaemon(t, opts)
	snap := createShadow(t, d0.Socket, "--for", data)
	d0.Proc.Stop(t)

	kopts := opts
	kopts.Failpoints = "expose.record=kill"
	d1 := lvssdtest.StartDaemon(t, kopts)
	if r := lvssdtest.Lvss(t, d1.Socket, "", "expose", "--smb", "cut", snap.ID); r.Code == 0 {
		t.Fatalf("lvss expose --smb succeeded although lvssd died before recording it:\n%s", r.Stdout)
	}
	select {
	case <-d1.Proc.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("lvssd did not die at the failpoint")
	}
	if list, err := smb.Net("conf", "listshares"); err != nil || !strings.Contains(list, "cut") {
		t.Fatalf("the share was not made before the kill: %q (%v)", list, err)
	}

	d2 := lvssdtest.StartDaemon(t, opts)
	shareGone(t, smb, "cut")
	if st := statusRecovery(t, d2.Socket); !st.has("share-undone", snap.ID) {
		t.Fatalf("lvss status does not report the share removed: %+v", st.Recovery.Actions)
	}
	if s := listedShadows(t, d2.Socket)[snap.ID]; s.ExposedShare != "" || slices.Contains(s.Attributes, "VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY") {
		t.Fatalf("the snapshot is listed as %+v", s)
	}
	if r := lvssdtest.Lvss(t, d2.Socket, "", "expose", "--smb", "cut", snap.ID); r.Code != 0 {
		t.Fatalf("sharing again under the same name: exit %d\n%s", r.Code, r.Stderr)
	}
	if got := smbGet(t, smb, "cut", "f.txt"); got != "content\n" {
		t.Fatalf("f.txt reads %q", got)
	}
	if r := lvssdtest.Lvss(t, d2.Socket, "", "delete", "shadows", "--shadow", snap.ID); r.Code != 0 {
		t.Fatalf("delete: exit %d\n%s", r.Code, r.Stderr)
	}
	shareGone(t, smb, "cut")
}
