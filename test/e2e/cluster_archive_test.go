package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// clusterShow is what these tests read of lvss backup show --json of a
// cluster archive.
type clusterShow struct {
	Cluster struct {
		Format      string `json:"format"`
		Stage       string `json:"stage"`
		SetID       string `json:"snapshot_set_id"`
		Consistency string `json:"consistency"`
		Hosts       []struct {
			Host        string `json:"host"`
			Consistency string `json:"consistency"`
			Archive     string `json:"archive"`
		} `json:"hosts"`
	} `json:"cluster"`
	Hosts []struct {
		Host     string `json:"host"`
		Manifest struct {
			Stage      string   `json:"stage"`
			Host       string   `json:"host"`
			SetID      string   `json:"snapshot_set_id"`
			Context    string   `json:"context"`
			Command    []string `json:"command"`
			ExitStatus *int     `json:"exit_status"`
			Snapshots  []struct {
				ID          string `json:"snapshot_id"`
				Original    string `json:"original_volume"`
				Consistency string `json:"consistency"`
			} `json:"snapshots"`
			Writers []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"writers"`
		} `json:"manifest"`
		Components []struct {
			Writer          string `json:"writer"`
			Component       string `json:"component"`
			BackupSucceeded bool   `json:"backup_succeeded"`
		} `json:"components"`
	} `json:"hosts"`
}

func showCluster(t *testing.T, h *clusterHost, file string) clusterShow {
	t.Helper()
	r := lvssdtest.Lvss(t, h.d.socket, "", "backup", "show", "--json", file)
	var out clusterShow
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil {
		t.Fatalf("lvss backup show --json %s: exit %d\n%s\n%s", file, r.Code, r.Stdout, r.Stderr)
	}
	return out
}

// TestClusterBackupArchiveRestore: lvss cluster backup --bcd FILE with an
// exec writer on each of two hosts writes one archive holding both
// hosts' documents, once before COMMAND (stage snapshot) and again at the
// end; lvss restore --bcd FILE --host host-b, run against host-b's
// lvssd, restores host-b's part with its writer told PreRestore and
// PostRestore, and leaves host-a alone.
func TestClusterBackupArchiveRestore(t *testing.T) {
	testenv.SkipIfShort(t, "starts etcd and two lvssd")
	e, a, b := twoClusterHosts(t)
	hooks := filepath.Join(t.TempDir(), "hooks.log")
	for _, h := range []struct {
		host   *clusterHost
		writer string
	}{{a, "wa"}, {b, "wb"}} {
		hookWriter(t, h.host, h.writer, hooks,
			"--on-pre-restore", "echo "+h.host.name+" pre-restore >> "+hooks,
			"--on-post-restore", `echo "`+h.host.name+` post-restore $LVSS_FILE_RESTORE_STATUS" >> `+hooks)
		h.host.d.waitWriters(t, 1)
		if err := os.WriteFile(filepath.Join(h.host.vol, h.writer, "data.txt"), []byte(h.host.name+" at the backup\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// COMMAND copies each host's snapshot to backups/HOST (this machine
	// reaches both hosts' paths), and keeps the archive as it is while
	// COMMAND runs.
	dir := t.TempDir()
	file := filepath.Join(dir, "cluster.tar")
	backups := filepath.Join(dir, "backups")
	r := lvssCluster(t, a, e.endpoint, "backup", "--json", "--persistent", "--type", "full", "--bcd", file,
		"--writer", "host-a:wa", "--writer", "host-b:wb", "--",
		"sh", "-c", `mkdir -p `+backups+`/$LVSS_HOST && cp -a "$LVSS_SNAPSHOT_1_PATH/." `+backups+`/$LVSS_HOST/ && cp `+file+` `+dir+`/at-command-$LVSS_HOST.tar`)
	if r.Code != 0 {
		t.Fatalf("lvss cluster backup --bcd: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	var res struct {
		SetID       string   `json:"snapshot_set_id"`
		Consistency string   `json:"consistency"`
		Warnings    []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || res.Consistency != "application" || len(res.Warnings) != 0 {
		t.Fatalf("lvss cluster backup --json: %v\n%s", err, r.Stdout)
	}

	// The archive as COMMAND saw it: every host's part, at stage
	// snapshot, COMMAND not yet ended.
	early := showCluster(t, a, filepath.Join(dir, "at-command-host-a.tar"))
	if early.Cluster.Stage != "snapshot" || len(early.Hosts) != 2 {
		t.Fatalf("the archive while COMMAND ran: %+v", early.Cluster)
	}
	for _, h := range early.Hosts {
		if h.Manifest.Stage != "snapshot" || h.Manifest.ExitStatus != nil || len(h.Manifest.Command) != 3 {
			t.Errorf("%s's part while COMMAND ran: %+v", h.Host, h.Manifest)
		}
	}

	// The final archive: both hosts' documents, of this set, complete.
	got := showCluster(t, b, file)
	c := got.Cluster
	if c.Format != "lvss-cluster-backup-archive" || c.Stage != "backup_complete" || c.SetID != res.SetID || c.Consistency != "application" ||
		len(c.Hosts) != 2 || c.Hosts[0].Host != "host-a" || c.Hosts[1].Archive != "hosts/host-b.tar" {
		t.Fatalf("cluster.json: %+v", c)
	}
	for i, h := range []*clusterHost{a, b} {
		part := got.Hosts[i]
		m := part.Manifest
		writer := map[*clusterHost]string{a: "wa", b: "wb"}[h]
		if part.Host != h.name || m.Host != h.name || m.SetID != res.SetID || m.Stage != "backup_complete" ||
			m.Context != "VSS_CTX_APP_ROLLBACK" || m.ExitStatus == nil || *m.ExitStatus != 0 {
			t.Errorf("%s's manifest: %+v", h.name, m)
		}
		if len(m.Snapshots) != 1 || m.Snapshots[0].Original != filepath.Join(h.vol, writer) || m.Snapshots[0].Consistency != "application" {
			t.Errorf("%s's snapshots: %+v", h.name, m.Snapshots)
		}
		if got := shadowsOf(t, h); got[m.Snapshots[0].ID] != res.SetID {
			t.Errorf("%s keeps %v, want the archive's snapshot %s", h.name, got, m.Snapshots[0].ID)
		}
		if len(m.Writers) != 1 || m.Writers[0].Name != writer || m.Writers[0].State != "VSS_WS_STABLE" {
			t.Errorf("%s's writers: %+v", h.name, m.Writers)
		}
		if len(part.Components) != 1 || part.Components[0].Writer != writer || !part.Components[0].BackupSucceeded {
			t.Errorf("%s's components: %+v", h.name, part.Components)
		}
	}

	// Both hosts' data change after the backup.
	for _, h := range []*clusterHost{a, b} {
		writer := map[*clusterHost]string{a: "wa", b: "wb"}[h]
		if err := os.WriteFile(filepath.Join(h.vol, writer, "data.txt"), []byte(h.name+" later\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Without --host a cluster archive is a usage error naming its hosts.
	if r := lvssdtest.Lvss(t, b.d.socket, "", "restore", "--bcd", file, "--", "true"); r.Code != 2 ||
		!strings.Contains(r.Stderr, "of hosts host-a, host-b") {
		t.Fatalf("lvss restore of a cluster archive without --host: exit %d\n%s", r.Code, r.Stderr)
	}
	// host-b's part, restored on host-b from what COMMAND copied.
	r = lvssdtest.Lvss(t, b.d.socket, "", "restore", "--json", "--bcd", file, "--host", "host-b", "--",
		"sh", "-c", `test "$LVSS_HOST" = host-b && cp -a `+backups+`/host-b/. "$LVSS_RESTORE_PATH_1_TARGET"/`)
	if r.Code != 0 {
		t.Fatalf("lvss restore --host host-b: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	var rest struct {
		Host       string `json:"host"`
		SetID      string `json:"snapshot_set_id"`
		Status     string `json:"file_restore_status"`
		Components []struct {
			Component string `json:"component"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rest); err != nil || rest.Host != "host-b" || rest.SetID != res.SetID ||
		rest.Status != "VSS_RS_ALL" || len(rest.Components) != 1 || !strings.HasPrefix(rest.Components[0].Component, "wb:") {
		t.Fatalf("lvss restore --json: %v\n%s", err, r.Stdout)
	}
	if data, _ := os.ReadFile(filepath.Join(b.vol, "wb", "data.txt")); string(data) != "host-b at the backup\n" {
		t.Errorf("host-b's data after the restore: %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(a.vol, "wa", "data.txt")); string(data) != "host-a later\n" {
		t.Errorf("host-a's data was touched by host-b's restore: %q", data)
	}
	lines := readLines(hooks)
	pre, post := slices.Index(lines, "host-b pre-restore"), slices.Index(lines, "host-b post-restore VSS_RS_ALL")
	if pre < 0 || post < pre {
		t.Errorf("host-b's writer was not told PreRestore then PostRestore (VSS_RS_ALL): %v", lines)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "host-a pre-restore") || strings.HasPrefix(l, "host-a post-restore") {
			t.Errorf("host-a's writer heard of host-b's restore: %v", lines)
		}
	}
}

// TestClusterArchiveTooLarge: a host whose documents could not go
// through etcd in one value (a writer with thousands of components: its
// metadata alone is larger than etcd takes) fails a cluster set with
// --bcd before any writer is frozen, on every host, naming itself; no
// snapshot is kept. The same set without --bcd carries no archive and is
// made.
func TestClusterArchiveTooLarge(t *testing.T) {
	testenv.SkipIfShort(t, "starts etcd and two lvssd")
	e, a, b := twoClusterHosts(t)
	hooks := filepath.Join(t.TempDir(), "hooks.log")
	hookWriter(t, a, "wa", hooks)
	args := []string{"--socket", b.d.socket, "exec", "--name", "big", "--tmpdir", "/dev/shm",
		"--on-freeze", "echo host-b freeze >> " + hooks, "--on-abort", "echo host-b abort >> " + hooks}
	big := filepath.Join(b.vol, "big")
	if err := os.Mkdir(big, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		args = append(args, "--component", fmt.Sprintf("c%04d=%s", i, big))
	}
	start(t, b.d.dir, "lvss-writer host-b big", args...)
	a.d.waitWriters(t, 1)
	b.d.waitWriters(t, 1)

	file := filepath.Join(t.TempDir(), "cluster.tar")
	r := lvssCluster(t, a, e.endpoint, "backup", "--bcd", file, "--for", "host-a:"+a.vol, "--for", "host-b:"+b.vol, "--", "true")
	if r.Code != 1 || !strings.Contains(r.Stderr, "E_INVALIDARG") || !strings.Contains(r.Stderr, "aborted by host-b") ||
		!strings.Contains(r.Stderr, "host host-b's backup archive is") || !strings.Contains(r.Stderr, "hint: back the set up without --bcd") {
		t.Fatalf("a host's archive too large for etcd: exit %d, want 1 naming host-b and its archive\n%s", r.Code, r.Stderr)
	}
	if lines := readLines(hooks); slices.Contains(lines, "host-a freeze") || slices.Contains(lines, "host-b freeze") {
		t.Fatalf("a writer was frozen in a set that could not carry its archive: %v", lines)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("--bcd %s was written for an aborted set: %v", file, err)
	}
	for _, h := range []*clusterHost{a, b} {
		eventually(t, 20*time.Second, h.name+" to keep no snapshot", func() bool { return len(shadowsOf(t, h)) == 0 })
	}
	if r := lvssCluster(t, a, e.endpoint, "backup", "--for", "host-a:"+a.vol, "--for", "host-b:"+b.vol, "--", "true"); r.Code != 0 {
		t.Fatalf("the same set without --bcd: exit %d\n%s", r.Code, r.Stderr)
	}
}
