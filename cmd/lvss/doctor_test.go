package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
)

func doctorJSON(t *testing.T, socket string, wantCode int) map[string]any {
	t.Helper()
	code, out, errOut := runLvss(t, socket, "", "doctor", "--json")
	if code != wantCode || errOut != "" {
		t.Fatalf("doctor: exit %d (want %d), stderr %q\n%s", code, wantCode, errOut, out)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	return r
}

func findingsOf(r map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, f := range r["findings"].([]any) {
		m := f.(map[string]any)
		out[m["check"].(string)] = m
	}
	return out
}

// TestDoctorInProcess: against a running lvssd, doctor reports the socket,
// the caller's rights and the builds, and lvssd's volumes, among them one
// with snapshots in the catalog, taken by the provider that made them.
func TestDoctorInProcess(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "data")
	if code, _, _ := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol); code != 0 {
		t.Fatal("create shadow failed")
	}
	r := doctorJSON(t, srv.Socket, 0)
	if r["ok"] != true || r["volumes_from"] != "lvssd" || r["lvssd"].(map[string]any)["reachable"] != true || r["max_snapshots_per_volume"] != 512.0 {
		t.Fatalf("report: %v", r)
	}
	fs := findingsOf(r)
	for _, check := range []string{"socket.reachable", "access.caller", "version.match"} {
		if fs[check]["severity"] != "ok" || fs[check]["group"] != "lvssd" {
			t.Errorf("%s: %v", check, fs[check])
		}
	}
	if c := r["caller"].(map[string]any); c["uid"] != float64(os.Getuid()) || c["allowed_by"] == "" {
		t.Errorf("caller: %v", c)
	}
	if w := fs["writers.subscribed"]; w["severity"] != "info" || w["group"] != "writers" {
		t.Errorf("writers: %v", w)
	}
	var v map[string]any
	for _, x := range r["volumes"].([]any) {
		if x.(map[string]any)["path"] == vol {
			v = x.(map[string]any)
		}
	}
	if v == nil || v["provider"] != "fake" || v["snapshots"] != 1.0 || v["mounted"] != false {
		t.Fatalf("the volume with a snapshot: %v", v)
	}
	provs := v["providers"].([]any)
	if len(provs) != 1 || provs[0].(map[string]any)["supported"] != true {
		t.Errorf("verdicts: %v", provs)
	}
	code, text, _ := runLvss(t, srv.Socket, "", "doctor")
	if code != 0 || !strings.HasPrefix(text, "lvssd\n  ok       lvssd ") || !strings.Contains(text, "\nWriters\n  info     no writer is subscribed") ||
		!strings.Contains(text, "\n  "+vol+" (") || !strings.Contains(text, "\n    provider   fake: it supports the volume\n") ||
		!strings.Contains(text, ": nothing stands in the way of a backup\n") {
		t.Errorf("text:\n%s", text)
	}
}

// TestDoctorUnreachable: with lvssd not there doctor still reports what
// lvss can see alone, the socket as an error, and exits 69 with nothing on
// standard error.
func TestDoctorUnreachable(t *testing.T) {
	sock := t.TempDir() + "/nothing.sock"
	r := doctorJSON(t, sock, exitUnreachable)
	if r["ok"] != false || r["volumes_from"] != "lvss" || r["lvssd"].(map[string]any)["reachable"] != false || r["caller"] != nil {
		t.Fatalf("report: %v", r)
	}
	f := findingsOf(r)["socket.reachable"]
	if f["severity"] != "error" || f["subject"] != sock || !strings.Contains(f["fix"].(string), "start lvssd") {
		t.Fatalf("socket finding: %v", f)
	}
	root := false
	for _, x := range r["volumes"].([]any) {
		v := x.(map[string]any)
		if v["path"] == "/" {
			root = v["freeze"] != "" && v["type"] != "" && v["provider"] == "" && len(v["providers"].([]any)) == 0
		}
	}
	if !root {
		t.Errorf("the root filesystem is not reported with its type and freeze support: %v", r["volumes"])
	}
	code, text, errOut := runLvss(t, sock, "", "doctor")
	if code != exitUnreachable || errOut != "" || !strings.HasPrefix(text, "lvssd\n  error    lvssd socket "+sock) ||
		!strings.Contains(text, "provider   unknown: lvssd did not answer") || !strings.HasSuffix(text, ": lvssd is unreachable\n") {
		t.Errorf("exit %d, stderr %q, text:\n%s", code, errOut, text)
	}
}

// TestDoctorText: the report's shape, from a fixed report.
func TestDoctorText(t *testing.T) {
	r := &doctorReport{socket: "/run/lvss/lvssd.sock", reachable: true, diag: &client.Diagnosis{MaxSnapshotsPerVolume: 512}}
	r.add("lvssd", client.Finding{Check: "socket.reachable", Severity: client.SeverityOK, Message: "lvssd 1.0 answers"})
	r.add(groupOf("run_dir.tmpfs"), client.Finding{Check: "run_dir.tmpfs", Severity: client.SeverityWarning, Message: "run dir /x is on / (ext4), not a tmpfs",
		Fix: "run lvssd with --run-dir on a tmpfs"})
	r.add(groupOf("writer.state"), client.Finding{Check: "writer.state", Severity: client.SeverityOK, Message: "subscribed"})
	r.volumes = []client.VolumeDiagnosis{{Path: "/srv", MountPoint: "/srv", Type: "ext4", Source: "/dev/vdb", Mounted: true, Configured: true,
		Freeze: "supported", FreezeReason: "the ext4 driver implements FIFREEZE", Provider: "san", SnapshotDir: "",
		Providers: []client.ProviderVerdict{{Name: "btrfs", Reason: "not a directory on btrfs"}, {Name: "san", Supported: true, Reason: "one of its volumes"},
			{Name: "copy", Supported: true, Reason: "listed in providers.copy.volumes"}},
		Snapshots: 2,
		Findings: []client.Finding{{Check: "volume.provider", Severity: client.SeverityOK, Message: "san would take it"},
			{Check: "volume.run_dir", Severity: client.SeverityError, Message: "lvssd's run dir is on this filesystem", Fix: "move it"}}}}
	want := `lvssd
  ok       lvssd 1.0 answers
Directories
  warning  run dir /x is on / (ext4), not a tmpfs
           fix: run lvssd with --run-dir on a tmpfs
Writers
  ok       subscribed
Volumes
  /srv (ext4, /dev/vdb, configured)
    provider   san: one of its volumes
               btrfs would not take it: not a directory on btrfs
               copy would take it too, after san: listed in providers.copy.volumes
    freeze     supported: the ext4 driver implements FIFREEZE
    snapshots  2 of 512
    error      lvssd's run dir is on this filesystem
               fix: move it

1 error, 1 warning, 0 info, 3 ok: fix the errors before relying on a backup
`
	if got := r.text(); got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
	if n := r.count(); n[client.SeverityError] != 1 || n[client.SeverityOK] != 3 {
		t.Errorf("count: %v", n)
	}
}

// Writers configured for lvss-writer@NAME.service must be subscribed: one
// that is, is ok; one that is not, or a file naming no writer, is an
// error with what to look at, and doctor exits 1.
func TestDoctorConfiguredWriters(t *testing.T) {
	srv := startLvssd(t)
	runTestWriter(t, srv.Socket, "pg", "main", vss.LevelBackEnd, newTestWriter(srv.Volume(t, "pg")))
	dir := t.TempDir()
	for name, content := range map[string]string{
		"pg-main.conf": "# the subscribed one\n--log-level=debug\nexec\n--name\npg\n--instance-name=main\n--component\ndata=/srv\n",
		"shop.conf":    "postgres\n--instance-name\nshop\n",
		"empty.conf":   "--log-format\njson\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("LVSS_WRITERS_DIR", dir)
	r := doctorJSON(t, srv.Socket, 1)
	got := map[string]map[string]any{}
	for _, f := range r["findings"].([]any) {
		if m := f.(map[string]any); m["check"] == "writer.configured" {
			got[m["subject"].(string)] = m
		}
	}
	for unit, want := range map[string]struct{ severity, says string }{
		"lvss-writer@pg-main.service": {"ok", "subscribed as 'pg (main)'"},
		"lvss-writer@shop.service":    {"error", "no writer 'postgres (shop)' is subscribed"},
		"lvss-writer@empty.service":   {"error", "names no writer"},
	} {
		f := got[unit]
		if f == nil || f["severity"] != want.severity || !strings.Contains(f["message"].(string), want.says) || f["group"] != "writers" {
			t.Errorf("%s: %v, want %s %q", unit, f, want.severity, want.says)
		}
	}
	if f := got["lvss-writer@shop.service"]; f != nil && !strings.Contains(f["fix"].(string), "journalctl -u lvss-writer@shop.service") {
		t.Errorf("fix: %v", f["fix"])
	}
}

func TestWriterArgs(t *testing.T) {
	for _, tc := range []struct {
		args                 []string
		kind, name, instance string
	}{
		{[]string{"postgres", "--dsn", "host=/run/postgresql", "--instance-name", "15/main"}, "postgres", "postgres", "15/main"},
		{[]string{"--socket", "/run/x.sock", "exec", "--name=nginx", "--on-freeze", "nginx -s stop"}, "exec", "nginx", ""},
		{[]string{"--log-level=debug", "sqlite", "--db", "/srv/a.db", "--name", "shop"}, "sqlite", "shop", ""},
		{[]string{"--log-format", "json"}, "", "", ""},
	} {
		k, n, i := writerArgs(tc.args)
		if k != tc.kind || n != tc.name || i != tc.instance {
			t.Errorf("writerArgs(%q) = %q %q %q, want %q %q %q", tc.args, k, n, i, tc.kind, tc.name, tc.instance)
		}
	}
}
