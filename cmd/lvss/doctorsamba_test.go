package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// What testparm prints is read as Samba reads smb.conf, and compared with
// what lvssd says a share needs: vfs objects must hold shadow_copy2 among
// others, paths are compared clean, shadow:localtime may be left at its
// default, and each difference comes with the line that fixes it.
func TestShareMismatches(t *testing.T) {
	dump := "# Global parameters\n[global]\n\tworkgroup = X\n\n\n[data]\n\tpath = /srv/share/\n\tvfs objects = acl_xattr shadow_copy2\n" +
		"\tshadow:format = @GMT-%Y.%m.%d-%H.%M.%S\n\tshadow:mountpoint = /srv/share\n\tshadow:snapdir = /run/lvss/previous-versions/srv-share/\n" +
		"\n[old]\n\tpath = /srv/share\n\tvfs objects = acl_xattr\n\tshadow:localtime = Yes\n\tshadow:snapdir = /srv/.snapshots\n"
	secs := parseTestparm([]byte(dump))
	if len(secs) != 3 || secs[1].name != "data" || secs[1].params["path"] != "/srv/share/" || secs[0].params["workgroup"] != "X" {
		t.Fatalf("parsed %+v", secs)
	}
	want := []client.SambaParam{{Key: "path", Value: "/srv/share"}, {Key: "vfs objects", Value: "shadow_copy2"},
		{Key: "shadow:snapdir", Value: "/run/lvss/previous-versions/srv-share"}, {Key: "shadow:mountpoint", Value: "/srv/share"},
		{Key: "shadow:format", Value: "@GMT-%Y.%m.%d-%H.%M.%S"}, {Key: "shadow:localtime", Value: "no"}}
	if wrong, fixes := shareMismatches(secs[1], want); len(wrong)+len(fixes) != 0 {
		t.Errorf("a matching share: %v %v", wrong, fixes)
	}
	wrong, fixes := shareMismatches(secs[2], want)
	if !slices.Equal(fixes, []string{"vfs objects = acl_xattr shadow_copy2", "shadow:snapdir = /run/lvss/previous-versions/srv-share",
		"shadow:mountpoint = /srv/share", "shadow:format = @GMT-%Y.%m.%d-%H.%M.%S", "shadow:localtime = no"}) ||
		!slices.Equal(wrong, []string{`vfs objects is "acl_xattr", without shadow_copy2`,
			`shadow:snapdir is "/srv/.snapshots", not "/run/lvss/previous-versions/srv-share"`, "shadow:mountpoint is not set",
			"shadow:format is not set", `shadow:localtime is "Yes", not "no"`}) {
		t.Errorf("a share to fix:\n%q\n%q", wrong, fixes)
	}
}

// doctorGroup is the findings of one group of lvss doctor --json.
func doctorGroup(r map[string]any, group string) []map[string]any {
	var out []map[string]any
	for _, f := range r["findings"].([]any) {
		if m := f.(map[string]any); m["group"] == group {
			out = append(out, m)
		}
	}
	return out
}

// lvss doctor checks, for each [[previous_versions]] path of lvssd, the
// snapdir lvssd keeps and the share of smb.conf ([samba] config) that
// serves it, read by Samba's own testparm: a matching share is ok, one
// with other settings an error that names the lines to fix, none a
// warning, as are a missing smb.conf and a missing Samba.
func TestDoctorPreviousVersions(t *testing.T) {
	if _, err := exec.LookPath("testparm"); err != nil {
		testenv.Missing(t, "testparm (apt-get install samba-common-bin)")
	}
	conf := filepath.Join(t.TempDir(), "smb.conf")
	srv := lvssdtest.StartInProcess(t, lvssdtest.InProcessOptions{PreviousVersions: []string{"good", "bad", "none"}, SambaConfig: conf})
	good, bad, none := filepath.Join(srv.Root, "good"), filepath.Join(srv.Root, "bad"), filepath.Join(srv.Root, "none")
	_, stanza, _ := runLvss(t, srv.Socket, "", "samba-config", good, "--name", "good")
	var badJSON struct{ Snapdir string }
	_, out, _ := runLvss(t, srv.Socket, "", "samba-config", bad, "--json")
	if err := json.Unmarshal([]byte(out), &badJSON); err != nil {
		t.Fatal(err)
	}
	smb := "[global]\n  workgroup = LVSSTEST\n" + stanza +
		"[bad]\n  path = " + bad + "/\n  vfs objects = acl_xattr\n  shadow:snapdir = /srv/.snapshots\n  shadow:mountpoint = " + bad + "\n" +
		"  shadow:format = @GMT-%Y.%m.%d-%H.%M.%S\n"
	if err := os.WriteFile(conf, []byte(smb), 0o644); err != nil {
		t.Fatal(err)
	}
	lvssdtest.Eventually(t, 20*time.Second, "the snapdirs", func() bool {
		fs := doctorGroup(doctorJSON(t, srv.Socket, 1), "previous_versions")
		return len(fs) == 6 && fs[0]["severity"] == "ok"
	})
	fs := doctorGroup(doctorJSON(t, srv.Socket, 1), "previous_versions")
	for i, p := range []string{good, bad, none} {
		if f := fs[i]; f["check"] != "previous_versions.snapdir" || f["severity"] != "ok" || f["subject"] != p ||
			!strings.HasPrefix(f["message"].(string), "0 previous versions in "+srv.RunDir+"/previous-versions/") {
			t.Errorf("snapdir %s: %v", p, f)
		}
	}
	if f := fs[3]; f["check"] != "samba.share" || f["severity"] != "ok" || f["subject"] != "[good] of "+conf {
		t.Errorf("the good share: %v", f)
	}
	if f := fs[4]; f["check"] != "samba.share" || f["severity"] != "error" || f["subject"] != "[bad] of "+conf ||
		!strings.Contains(f["message"].(string), `vfs objects is "acl_xattr", without shadow_copy2`) ||
		f["fix"] != "in [bad] of "+conf+" set: vfs objects = acl_xattr shadow_copy2; shadow:snapdir = "+badJSON.Snapdir+
			" (lvss samba-config "+bad+" prints the whole section), then 'smbcontrol smbd reload-config'" {
		t.Errorf("the bad share: %v", f)
	}
	if f := fs[5]; f["check"] != "samba.share" || f["severity"] != "warning" || f["subject"] != none ||
		!strings.Contains(f["fix"].(string), "lvss samba-config "+none) {
		t.Errorf("no share: %v", f)
	}
	code, text, _ := runLvss(t, srv.Socket, "", "doctor")
	if code != 1 || !strings.Contains(text, "\nPrevious versions (Samba)\n  ok       0 previous versions in ") ||
		!strings.Contains(text, "\n  error    share [bad] serves "+bad+", but Windows clients will not see its previous versions: ") ||
		!strings.Contains(text, "\n           fix: in [bad] of "+conf+" set: vfs objects = acl_xattr shadow_copy2; ") {
		t.Errorf("text, exit %d:\n%s", code, text)
	}

	// Without smb.conf, or without Samba: warnings, and doctor passes.
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	fs = doctorGroup(doctorJSON(t, srv.Socket, 0), "previous_versions")
	if f := fs[len(fs)-1]; len(fs) != 4 || f["check"] != "samba.config" || f["severity"] != "warning" || !strings.Contains(f["message"].(string), "does not exist") {
		t.Errorf("no smb.conf: %v", fs)
	}
	if err := os.WriteFile(conf, []byte(smb), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	fs = doctorGroup(doctorJSON(t, srv.Socket, 0), "previous_versions")
	if f := fs[len(fs)-1]; len(fs) != 4 || f["check"] != "samba.testparm" || f["severity"] != "warning" {
		t.Errorf("no testparm: %v", fs)
	}
}
