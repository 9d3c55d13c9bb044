package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// gmtToken is a previous version's name as smbclient shows it.
var gmtToken = regexp.MustCompile(`@GMT-\d{4}\.\d{2}\.\d{2}-\d{2}\.\d{2}\.\d{2}`)

// smbVersions lists the previous versions smbd offers of a file of a share,
// sorted: smbclient's allinfo sends FSCTL_SRV_ENUMERATE_SNAPSHOTS, the
// request Windows Explorer's Previous Versions tab makes.
func smbVersions(t *testing.T, s *testenv.Samba, share, file string) []string {
	t.Helper()
	out, err := s.Client(share, "allinfo "+file)
	if err != nil {
		t.Fatalf("smbclient allinfo %s on [%s]: %v\n%s", file, share, err, out)
	}
	v := gmtToken.FindAllString(out, -1)
	slices.Sort(v)
	return slices.Compact(v)
}

// token is the @GMT name of the snapshot's creation time.
func (m createdShadow) token(t *testing.T) string {
	t.Helper()
	c, err := time.Parse(time.RFC3339Nano, m.Created)
	if err != nil {
		t.Fatalf("created %q: %v", m.Created, err)
	}
	return c.UTC().Format("@GMT-2006.01.02-15.04.05")
}

// nextSecond waits until the clock is past the second a snapshot was made
// in, so that the next one has a name of its own (the same-second rule,
// L56, is the unit tests' in internal/prevver).
func nextSecond(t *testing.T, m createdShadow) {
	t.Helper()
	c, err := time.Parse(time.RFC3339Nano, m.Created)
	if err != nil {
		t.Fatal(err)
	}
	lvssdtest.Eventually(t, 10*time.Second, "the next second", func() bool { return time.Now().Unix() > c.Unix() })
}

// TestPreviousVersionsThroughSamba: the real smbd and smbclient, with the
// share section lvss samba-config prints, serve lvss snapshots of a
// directory of a btrfs volume as Previous Versions. Three application-
// consistent snapshots (a writer subscribed, VSS_CTX_CLIENT_ACCESSIBLE_
// WRITERS) made while a file changes appear as exactly three versions named
// by their creation times, each reading back that version's content; a
// deleted one disappears; a restart of lvssd changes nothing, and one that
// finds the snapdir edited behind its back repairs it; a revert leaves the
// versions as they were; a persistent snapshot that is not client-
// accessible is shown only by a share configured with all_persistent;
// retention removes entries; lvss doctor finds the share in order.
func TestPreviousVersionsThroughSamba(t *testing.T) {
	testenv.RequireRoot(t)
	for _, bin := range []string{"btrfs", "testparm"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Missing(t, bin+" (apt-get install btrfs-progs samba-common-bin)")
		}
	}
	fs := testenv.LoopFS(t, "btrfs", 512<<20)
	vol := filepath.Join(fs.Mount, "data")
	if out, err := exec.Command("btrfs", "subvolume", "create", vol).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v\n%s", err, out)
	}
	// The share is a directory of the volume, not the volume; "all" is
	// another one, configured to show every persistent snapshot.
	share, all := filepath.Join(vol, "share"), filepath.Join(vol, "all")
	for _, d := range []string{share, all} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(all, "g.txt"), "in all\n")
	dirs := t.TempDir()
	opts := lvssdtest.DaemonOptions{StateDir: filepath.Join(dirs, "state"), RunDir: filepath.Join(dirs, "run"),
		Socket: filepath.Join(dirs, "lvssd.sock")}
	config := func(smbConf string) string {
		return shortTimeouts + fmt.Sprintf("\n[samba]\nconfig = %q\n\n[[previous_versions]]\npath = %q\n\n"+
			"[[previous_versions]]\npath = %q\nall_persistent = true\n", smbConf, share, all)
	}
	opts.Config = config("/nonexistent/smb.conf")
	d := lvssdtest.StartDaemon(t, opts)

	// A real writer with its component in the share: the snapshots are
	// application-consistent.
	start(t, dirs, "lvss-writer files", "--socket", opts.Socket, "exec", "--name", "files", "--component", "data="+share)
	d.WaitWriters(t, 1)

	var made []createdShadow
	for i, forVol := range []string{share, share, vol} {
		writeFile(t, filepath.Join(share, "f.txt"), fmt.Sprintf("version %d\n", i+1))
		if i > 0 {
			nextSecond(t, made[i-1])
		}
		m := createShadow(t, opts.Socket, "--for", forVol, "--context", "VSS_CTX_CLIENT_ACCESSIBLE_WRITERS")
		if m.Consistency != "application" {
			t.Fatalf("snapshot %d: consistency %s (%s), want application", i+1, m.Consistency, m.Reason)
		}
		made = append(made, m)
	}
	writeFile(t, filepath.Join(share, "f.txt"), "now\n")
	want := []string{made[0].token(t), made[1].token(t), made[2].token(t)}

	// The section lvss samba-config prints, pasted into smb.conf.
	stanza := func(path, name string) string {
		r := d.Lvss(t, "", "samba-config", path, "--name", name)
		if r.Code != 0 || !strings.Contains(r.Stdout, "\tshadow:snapdir = "+filepath.Join(opts.RunDir, "previous-versions")) {
			t.Fatalf("samba-config %s: exit %d\n%s%s", path, r.Code, r.Stdout, r.Stderr)
		}
		return r.Stdout
	}
	smb := testenv.StartSamba(t, testenv.SambaOptions{Extra: stanza(share, "data") + stanza(all, "all")})

	if got := smbVersions(t, smb, "data", "f.txt"); !slices.Equal(got, want) {
		t.Fatalf("previous versions of f.txt: %v, want %v (the snapshots' creation times)", got, want)
	}
	for i, tok := range want {
		if got := smbGet(t, smb, "data", tok+`\f.txt`); got != fmt.Sprintf("version %d\n", i+1) {
			t.Errorf("f.txt of %s reads %q, want version %d", tok, got, i+1)
		}
	}
	if got := smbGet(t, smb, "data", want[0]+`\f.txt`); got != "version 1\n" {
		t.Errorf("read again: %q", got)
	}
	// "all" shows the one snapshot of the whole volume (the others are of
	// the share only).
	if got := smbVersions(t, smb, "all", "g.txt"); !slices.Equal(got, want[2:]) {
		t.Errorf("previous versions of all/g.txt: %v, want %v", got, want[2:])
	}

	// Deleted: gone from the list.
	if r := d.Lvss(t, "", "delete", "shadows", "--shadow", made[1].ID, "--quiet"); r.Code != 0 {
		t.Fatalf("delete shadows: exit %d\n%s", r.Code, r.Stderr)
	}
	want = []string{want[0], want[2]}
	lvssdtest.Eventually(t, 30*time.Second, "the deleted snapshot to leave the list", func() bool {
		return slices.Equal(smbVersions(t, smb, "data", "f.txt"), want)
	})

	// A restart changes nothing; this one also names the smbd's config.
	d.Proc.Stop(t)
	if got := smbVersions(t, smb, "data", "f.txt"); !slices.Equal(got, want) {
		t.Fatalf("with lvssd stopped: %v, want %v", got, want)
	}
	opts.Config = config(smb.Conf)
	d = lvssdtest.StartDaemon(t, opts)
	d.WaitWriters(t, 1)
	if got := smbVersions(t, smb, "data", "f.txt"); !slices.Equal(got, want) {
		t.Fatalf("after a restart: %v, want %v", got, want)
	}
	// lvss doctor finds both shares in order (once lvssd's first
	// reconcile after its start has run: until then the snapdirs' finding
	// says it has not).
	var doctorOut string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the last lvss doctor --json:\n%s", doctorOut)
		}
	})
	lvssdtest.Eventually(t, 30*time.Second, "lvss doctor to find the shares in order", func() bool {
		doctor := d.Lvss(t, "", "doctor", "--json")
		doctorOut = doctor.Stdout
		var rep struct {
			Findings []struct{ Group, Check, Severity, Subject, Message string }
		}
		if err := json.Unmarshal([]byte(doctor.Stdout), &rep); err != nil {
			t.Fatalf("doctor --json: %v\n%s", err, doctor.Stdout)
		}
		okShares, notOK := map[string]bool{}, 0
		for _, f := range rep.Findings {
			if f.Group == "previous_versions" && f.Severity != "ok" {
				notOK++
			}
			if f.Check == "samba.share" && f.Severity == "ok" {
				okShares[f.Subject] = true
			}
		}
		return notOK == 0 && okShares["[data] of "+smb.Conf] && okShares["[all] of "+smb.Conf]
	})

	// Edited behind lvssd's back while it was down: the next start puts
	// it right (a stray entry removed, a missing one made again).
	var where struct{ Snapdir string }
	if r := d.Lvss(t, "", "samba-config", share, "--json"); json.Unmarshal([]byte(r.Stdout), &where) != nil {
		t.Fatalf("samba-config --json: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	snapdir := where.Snapdir
	d.Proc.Stop(t)
	if _, err := os.Lstat(filepath.Join(snapdir, want[0])); err != nil {
		t.Fatalf("the snapdir %s: %v", snapdir, err)
	}
	stray := "@GMT-2001.01.01-00.00.00"
	if err := os.Symlink(all, filepath.Join(snapdir, stray)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(snapdir, want[0])); err != nil {
		t.Fatal(err)
	}
	if got := smbVersions(t, smb, "data", "f.txt"); !slices.Contains(got, stray) || slices.Contains(got, want[0]) {
		t.Fatalf("the edit does not show: %v", got)
	}
	d = lvssdtest.StartDaemon(t, opts)
	lvssdtest.Eventually(t, 30*time.Second, "the start to repair the snapdir", func() bool {
		return slices.Equal(smbVersions(t, smb, "data", "f.txt"), want)
	})
	d.WaitWriters(t, 1)

	// A revert of the volume (forced: the writer has its component there)
	// keeps every snapshot, and so the versions; the share holds version 3
	// again, and the versions read as before.
	if r := d.Lvss(t, "", "revert", made[2].ID, "--force"); r.Code != 0 {
		t.Fatalf("revert: exit %d\n%s", r.Code, r.Stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(share, "f.txt")); string(b) != "version 3\n" {
		t.Fatalf("f.txt after the revert: %q", b)
	}
	if got := smbVersions(t, smb, "data", "f.txt"); !slices.Equal(got, want) {
		t.Fatalf("after the revert: %v, want %v", got, want)
	}
	if got := smbGet(t, smb, "data", want[0]+`\f.txt`); got != "version 1\n" {
		t.Errorf("after the revert, f.txt of %s reads %q", want[0], got)
	}

	// Not client-accessible: only the all_persistent share shows it.
	nextSecond(t, made[2])
	app := createShadow(t, opts.Socket, "--for", vol, "--context", "VSS_CTX_APP_ROLLBACK")
	lvssdtest.Eventually(t, 30*time.Second, "the all_persistent share to show the VSS_CTX_APP_ROLLBACK snapshot", func() bool {
		return slices.Equal(smbVersions(t, smb, "all", "g.txt"), []string{made[2].token(t), app.token(t)})
	})
	if got := smbVersions(t, smb, "data", "f.txt"); !slices.Equal(got, want) {
		t.Errorf("[data] shows a snapshot that is not client-accessible: %v, want %v", got, want)
	}

	// Retention (--keep 0 of the share's own client-accessible snapshots)
	// deletes the one left of the share; the snapshot of the whole volume
	// is another volume's, and stays with its version.
	r := d.Lvss(t, "", "delete", "shadows", "--for", share, "--context", "client_accessible_writers", "--keep", "0", "--quiet")
	if r.Code != 0 {
		t.Fatalf("retention: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	lvssdtest.Eventually(t, 30*time.Second, "retention's deletions to leave the list", func() bool {
		return slices.Equal(smbVersions(t, smb, "data", "f.txt"), want[1:])
	})
	var pv struct {
		Versions []struct {
			Name       string `json:"name"`
			SnapshotID string `json:"snapshot_id"`
		} `json:"versions"`
	}
	r = d.Lvss(t, "", "samba-config", share, "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &pv); err != nil || len(pv.Versions) != 1 || pv.Versions[0].Name != want[1] ||
		pv.Versions[0].SnapshotID != made[2].ID {
		t.Errorf("samba-config --json: %v\n%s", err, r.Stdout)
	}
	events := lvssdtest.Events(t, opts.Socket)
	updates := map[string]bool{}
	for _, e := range events {
		if e.Message == "previous versions: snapdir updated" {
			updates[e.Fields["path"]] = true
		}
	}
	if !maps.Equal(updates, map[string]bool{share: true, all: true}) {
		t.Errorf("the event log's snapdir updates: %v", updates)
	}
}

// lvssd does not start with a [[previous_versions]] path no provider can
// snapshot, and says why and what to do.
func TestPreviousVersionsPathOnNoVolume(t *testing.T) {
	testenv.RequireRoot(t)
	dirs := t.TempDir()
	// A tmpfs: no btrfs, and no copy or exec provider is configured.
	share, err := os.MkdirTemp("/dev/shm", "lvss-share-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(share) })
	cfg := filepath.Join(dirs, "lvssd.toml")
	writeFile(t, cfg, fmt.Sprintf("[[previous_versions]]\npath = %q\n", share))
	code, _, errOut := runLvssd(t, "--config", cfg, "--socket", filepath.Join(dirs, "s.sock"), "--state-dir", filepath.Join(dirs, "state"),
		"--run-dir", filepath.Join(dirs, "run"))
	if code != 1 || !strings.Contains(errOut, "lvssd: VSS_E_VOLUME_NOT_SUPPORTED (0x8004230C): previous_versions[0].path "+share+
		": no provider can snapshot it (it is on tmpfs, mounted at /dev/shm); providers: btrfs") ||
		!strings.Contains(errOut, "\nhint: keep the share on a volume a provider snapshots") {
		t.Errorf("exit %d\n%s", code, errOut)
	}
	writeFile(t, cfg, fmt.Sprintf("[[previous_versions]]\npath = %q\n", filepath.Join(share, "missing")))
	code, _, errOut = runLvssd(t, "--config", cfg, "--socket", filepath.Join(dirs, "s.sock"), "--state-dir", filepath.Join(dirs, "state"),
		"--run-dir", filepath.Join(dirs, "run"))
	if code != 1 || !strings.Contains(errOut, "VSS_E_OBJECT_NOT_FOUND (0x80042308): previous_versions[0].path "+share+"/missing does not exist") ||
		!strings.Contains(errOut, "RequiresMountsFor=") {
		t.Errorf("a missing path: exit %d\n%s", code, errOut)
	}
}

// TestPreviousVersionsForOtherUsers: smbd opens the versions as the
// connected user, and the btrfs provider keeps its snapshots in a
// directory only root may search (.lvss-snapshots, 0700). Samba lists the
// versions to anyone, but a user who is not root cannot open one: lvss
// samba-config and lvss doctor say which directory stands in the way and
// the chmod that opens it (lvssd does not widen access itself, L53), and
// after it the user reads the version.
func TestPreviousVersionsForOtherUsers(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("btrfs"); err != nil {
		testenv.Missing(t, "btrfs (apt-get install btrfs-progs)")
	}
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	vol := filepath.Join(fs.Mount, "data")
	if out, err := exec.Command("btrfs", "subvolume", "create", vol).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v\n%s", err, out)
	}
	share := filepath.Join(vol, "share")
	dirs := t.TempDir()
	// The way to the share and to lvssd's run directory is open to
	// others, as /srv and /run are: these are the test's own directories.
	for _, d := range []string{filepath.Dir(fs.Mount), fs.Mount, vol, filepath.Dir(dirs), dirs} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(share, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(share, "f.txt"), "then\n")
	opts := lvssdtest.DaemonOptions{StateDir: filepath.Join(dirs, "state"), RunDir: filepath.Join(dirs, "run"),
		Config: fmt.Sprintf("[[previous_versions]]\npath = %q\n", share)}
	d := lvssdtest.StartDaemon(t, opts)
	m := createShadow(t, d.Socket, "--for", share, "--context", "VSS_CTX_CLIENT_ACCESSIBLE")
	writeFile(t, filepath.Join(share, "f.txt"), "now\n")
	snaps := filepath.Join(vol, ".lvss-snapshots")

	r := d.Lvss(t, "", "samba-config", share, "--name", "data")
	note := "# Only root can open the versions until other users may search " + snaps + " (mode 0700):\n#   chmod o+x " + snaps + "\n"
	if r.Code != 0 || !strings.Contains(r.Stdout, note) {
		t.Fatalf("samba-config: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	smb := testenv.StartSamba(t, testenv.SambaOptions{Extra: r.Stdout, Users: []string{"nobody"}})
	get := func() (string, error) {
		local := filepath.Join(t.TempDir(), "got")
		out, err := smb.ClientAs("nobody", "data", "get "+m.token(t)+`\f.txt `+local)
		if err != nil {
			return out, err
		}
		b, err := os.ReadFile(local)
		return string(b), err
	}
	if out, err := smb.ClientAs("nobody", "data", "get f.txt "+filepath.Join(t.TempDir(), "live")); err != nil {
		t.Fatalf("nobody cannot read the live share: %v\n%s", err, out)
	}
	if got, err := get(); err == nil {
		t.Fatalf("nobody read the version through a directory it may not search: %q", got)
	}
	reach := func() string {
		var rep struct {
			Findings []struct{ Check, Severity, Message, Fix string }
		}
		if err := json.Unmarshal([]byte(d.Lvss(t, "", "doctor", "--json").Stdout), &rep); err != nil {
			t.Fatal(err)
		}
		for _, f := range rep.Findings {
			if f.Check == "previous_versions.reach" {
				return f.Severity + ": " + f.Fix
			}
		}
		return ""
	}
	if got := reach(); !strings.HasPrefix(got, "warning: chmod o+x "+snaps+" (") {
		t.Errorf("doctor: %q", got)
	}

	if err := os.Chmod(snaps, 0o711); err != nil {
		t.Fatal(err)
	}
	if got, err := get(); err != nil || got != "then\n" {
		t.Fatalf("nobody reads the version as %q, %v", got, err)
	}
	if got := reach(); got != "" {
		t.Errorf("doctor after the chmod: %q", got)
	}
	if r := d.Lvss(t, "", "samba-config", share); strings.Contains(r.Stdout, "Only root") {
		t.Errorf("samba-config after the chmod:\n%s", r.Stdout)
	}
}
