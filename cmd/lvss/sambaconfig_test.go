package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// lvss samba-config prints the share section for a [[previous_versions]]
// path as lvssd says it (the snapdir is lvssd's, not lvss's guess), in
// text to paste and in JSON; a path lvssd does not keep is
// VSS_E_OBJECT_NOT_FOUND with the config to add; a name no share can have
// is a usage error.
func TestSambaConfig(t *testing.T) {
	srv := lvssdtest.StartInProcess(t, lvssdtest.InProcessOptions{PreviousVersions: []string{"data/share"},
		SambaConfig: "/etc/samba/smb.conf"})
	share := filepath.Join(srv.Root, "data", "share")
	// systemd-escape --path (the temporary paths hold letters, digits,
	// dashes and slashes only).
	escaped := strings.ReplaceAll(strings.ReplaceAll(strings.TrimPrefix(share, "/"), "-", `\x2d`), "/", "-")
	snapdir := filepath.Join(srv.RunDir, "previous-versions", escaped)

	code, out, errOut := runLvss(t, srv.Socket, "", "samba-config", share)
	want := "# Previous versions of " + share + " from lvss snapshots (lvss samba-config): add to /etc/samba/smb.conf,\n" +
		"# or add shadow_copy2 and the shadow: lines to the share of " + share + " there.\n" +
		"[share]\n" +
		"\tpath = " + share + "\n" +
		"\tvfs objects = shadow_copy2\n" +
		"\tshadow:snapdir = " + snapdir + "\n" +
		"\tshadow:mountpoint = " + share + "\n" +
		"\tshadow:format = @GMT-%Y.%m.%d-%H.%M.%S\n" +
		"\tshadow:localtime = no\n"
	if code != 0 || out != want || errOut != "" {
		t.Fatalf("exit %d\n%s\nwant\n%s\nstderr %s", code, out, want, errOut)
	}

	// A snapshot of the fake provider has no directory to link to: JSON
	// lists it as skipped, with the reason.
	if code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", filepath.Join(srv.Root, "data")); code != 0 {
		t.Fatalf("create shadow: exit %d\n%s%s", code, out, errOut)
	}
	var got struct {
		Name, Path, Snapdir string
		SambaConfig         string `json:"samba_config"`
		Parameters          []struct{ Key, Value string }
		Stanza              string
		Versions            []any
		Skipped             []struct {
			SnapshotID string `json:"snapshot_id"`
			Reason     string
		}
	}
	lvssdtest.Eventually(t, 20*time.Second, "the snapshot to be looked at", func() bool {
		code, out, _ := runLvss(t, srv.Socket, "", "samba-config", share, "--name", "Projects 2026", "--json")
		if code != 0 {
			t.Fatalf("--json: exit %d", code)
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("--json: %v\n%s", err, out)
		}
		return len(got.Skipped) == 1
	})
	if got.Name != "Projects 2026" || got.Path != share || got.Snapdir != snapdir || got.SambaConfig != "/etc/samba/smb.conf" ||
		len(got.Parameters) != 6 || got.Parameters[2].Key != "shadow:snapdir" || got.Parameters[2].Value != snapdir ||
		!strings.HasPrefix(got.Stanza, "[Projects 2026]\n\tpath = ") || got.Versions == nil || len(got.Versions) != 0 ||
		!strings.Contains(got.Skipped[0].Reason, "cannot be reached") {
		t.Errorf("--json: %+v", got)
	}

	// Not configured: what to add says the hint.
	other := srv.Volume(t, "other")
	code, out, errOut = runLvss(t, srv.Socket, "", "samba-config", other)
	if code != exitFailed || out != "" || !strings.HasPrefix(errOut, "lvss: VSS_E_OBJECT_NOT_FOUND (0x80042308): PreviousVersions: "+other+
		" is not a [[previous_versions]] path of lvssd") || !strings.Contains(errOut, "configured: "+share) ||
		!strings.Contains(errOut, "hint: add [[previous_versions]] with path = \""+other+"\" to lvssd's config") {
		t.Errorf("a path not configured: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runLvss(t, srv.Socket, "", "samba-config", other, "--json")
	if e := errorObject(t, errOut); code != exitFailed || e["name"] != "VSS_E_OBJECT_NOT_FOUND" || !strings.Contains(e["hint"], "lvssd --check-config") {
		t.Errorf("a path not configured, --json: exit %d %v", code, e)
	}

	for _, argv := range [][]string{
		{"samba-config", share, "--name", "global"},
		{"samba-config", share, "--name", "a/b"},
		{"samba-config", share, "--name", " x"},
		{"samba-config", share, "--name", strings.Repeat("x", 81)},
		{"samba-config", "/"},
		{"samba-config"},
		{"samba-config", share, share},
	} {
		if code, out, errOut := runLvss(t, srv.Socket, "", argv...); code != exitUsage || out != "" || !strings.Contains(errOut, "hint: run 'lvss samba-config --help'") {
			t.Errorf("%q: exit %d, want %d\n%s%s", argv, code, exitUsage, out, errOut)
		}
	}
}
