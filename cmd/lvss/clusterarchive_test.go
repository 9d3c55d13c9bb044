package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/vss"
)

// clusterSampleFile writes the archive of a cluster set of two hosts,
// db1 (backupshow_test.go's sample) and db2 (the same backup, its
// snapshot application-consistent and its command a success), and
// returns its path.
func clusterSampleFile(t *testing.T) string {
	t.Helper()
	hosts := map[string][]byte{}
	for _, h := range []string{"db1", "db2"} {
		m, bcd, wmds := showSample(t)
		m.Host = h
		if h == "db2" {
			m.Snapshots[0].Consistency, m.Snapshots[0].ConsistencyReason = "application", ""
			zero := 0
			m.ExitStatus = &zero
		}
		var b bytes.Buffer
		if err := backupdoc.Write(&b, m, bcd, wmds); err != nil {
			t.Fatal(err)
		}
		hosts[h] = b.Bytes()
	}
	path := filepath.Join(t.TempDir(), "shop.cluster.tar")
	m := backupdoc.ClusterManifest{Stage: backupdoc.StageBackupComplete, LvssVersion: "0.9.0", Requester: "root@backup1[4242]",
		Time: showWritten, SnapshotSetID: showSet, BackupType: vss.BackupFull}
	if err := backupdoc.WriteClusterFile(path, m, hosts); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBackupShowCluster(t *testing.T) {
	path := clusterSampleFile(t)
	code, out, errOut := runBackupShow(t, path)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	inOrder(t, out,
		"Cluster backup archive "+path,
		"   Cluster snapshot set: "+showSet.String(),
		"   Stage: backup complete (BackupComplete was sent)",
		"   Time: 2026-11-25T01:12:40Z",
		"   Requester: root@backup1[4242]",
		"   lvss version: 0.9.0",
		"   Backup type: VSS_BT_FULL",
		"   Consistency: crash",
		"   Hosts: db1 (crash), db2 (application)",
		"Host db1 (hosts/db1.tar)",
		"      Snapshot set: "+showSet.String(),
		"      Host: db1",
		"      Exit status: 2",
		"   Snapshots:",
		"         Consistency: crash (writer postgres: VSS_WS_FAILED_AT_FREEZE)",
		"   Writers:",
		"      Writer name: 'files'",
		"            files\\data (VSS_CT_FILEGROUP): backup succeeded: yes",
		"Host db2 (hosts/db2.tar)",
		"      Host: db2",
		"      Exit status: 0",
		"         Consistency: application",
	)

	code, out, errOut = runBackupShow(t, path, "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errOut)
	}
	got := jsonObject(t, out)
	var stored map[string]any
	if err := json.Unmarshal([]byte(tarFile(t, path, "cluster.json")), &stored); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !reflect.DeepEqual(got["cluster"], stored) {
		t.Errorf("cluster differs from cluster.json:\n got %v\nwant %v", got["cluster"], stored)
	}
	hosts, _ := got["hosts"].([]any)
	if len(hosts) != 2 {
		t.Fatalf("hosts: %v", got["hosts"])
	}
	for i, name := range []string{"db1", "db2"} {
		h := hosts[i].(map[string]any)
		m, _ := h["manifest"].(map[string]any)
		comps, _ := h["components"].([]any)
		if h["host"] != name || m["host"] != name || m["format"] != "lvss-backup-archive" || len(comps) != 2 {
			t.Errorf("hosts[%d]: %v", i, h)
		}
	}

	// A damaged part is reported naming it, with the archive hint.
	b, _ := os.ReadFile(path)
	bad := filepath.Join(t.TempDir(), "bad.tar")
	os.WriteFile(bad, bytes.Replace(b, []byte(`"host": "db2"`), []byte(`"host": "db3"`), 1), 0o644)
	code, _, errOut = runBackupShow(t, bad)
	if code != 1 || !strings.Contains(errOut, "E_INVALIDARG") || !strings.Contains(errOut, "hosts/db3.tar") ||
		!strings.Contains(errOut, "hint: FILE must be an archive written by") {
		t.Errorf("damaged cluster archive: exit %d\n%s", code, errOut)
	}
}

// TestRestoreClusterHost: --host picks a host's part of a cluster archive
// and is required with one; with a single host's archive it may only
// name that host.
func TestRestoreClusterHost(t *testing.T) {
	cluster := clusterSampleFile(t)
	m, bcd, wmds := showSample(t)
	single := writeSample(t, m, bcd, wmds)
	base := func(file, host string) restoreOptions {
		return restoreOptions{bcd: file, host: host, target: "original", nothingWritten: defaultNothingWritten, command: []string{"true"}}
	}
	usage := func(o restoreOptions, says ...string) {
		t.Helper()
		_, err := o.plan()
		if !clierr.IsUsage(err) {
			t.Errorf("--bcd %s --host %q: %v, want a usage error", filepath.Base(o.bcd), o.host, err)
			return
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("--bcd %s --host %q: %v, want it to say %q", filepath.Base(o.bcd), o.host, err, s)
			}
		}
		var h interface{ Hint() string }
		if !errors.As(err, &h) || h.Hint() == "" {
			t.Errorf("--host %q: no hint", o.host)
		}
	}
	usage(base(cluster, ""), "is the archive of cluster set "+showSet.String()+", of hosts db1, db2", "--host HOST")
	usage(base(cluster, "db3"), "--host db3", "holds the parts of db1, db2")
	usage(base(single, "db2"), "--host db2", "the archive of one host, db1, not of a cluster set")

	p, err := base(cluster, "db2").plan()
	if err != nil {
		t.Fatal(err)
	}
	if p.host != "db2" || p.archive.Manifest.Host != "db2" || !slices.Equal(pickNames(p.picks), []string{`files:files\data`}) {
		t.Errorf("plan of db2's part: host %q, archive of %q, picks %v", p.host, p.archive.Manifest.Host, pickNames(p.picks))
	}
	env := p.restoreEnv()
	for _, want := range []string{"LVSS_HOST=db2", "LVSS_RESTORE_ARCHIVE=" + cluster, "LVSS_SNAPSHOT_SET_ID=" + showSet.String()} {
		if !slices.Contains(env, want) {
			t.Errorf("COMMAND's environment lacks %q", want)
		}
	}
	// The single host's archive, with or without its own host named.
	for _, host := range []string{"", "db1"} {
		p, err := base(single, host).plan()
		if err != nil || p.host != host {
			t.Errorf("single archive, --host %q: %v", host, err)
			continue
		}
		if has := slices.ContainsFunc(p.restoreEnv(), func(s string) bool { return strings.HasPrefix(s, "LVSS_HOST=") }); has != (host != "") {
			t.Errorf("single archive, --host %q: LVSS_HOST set: %v", host, has)
		}
	}

	// Through the real root: usage errors are exit status 2, with the
	// hosts named, before any lvssd is asked.
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, _, errOut := runLvss(t, sock, "", "restore", "--bcd", cluster, "--", "true")
	if code != 2 || !strings.Contains(errOut, "of hosts db1, db2") || !strings.Contains(errOut, "hint:") {
		t.Errorf("no --host: exit %d\n%s", code, errOut)
	}
	code, _, errOut = runLvss(t, sock, "", "--json", "restore", "--bcd", cluster, "--host", "nosuch", "--", "true")
	if code != 2 || !strings.Contains(errOut, `"name":"E_INVALIDARG"`) || !strings.Contains(errOut, "db1, db2") {
		t.Errorf("--json, unknown --host: exit %d\n%s", code, errOut)
	}
	code, _, errOut = runLvss(t, sock, "", "restore", "--bcd", cluster, "--host", "db2", "--", "true")
	if code != 69 {
		t.Errorf("--host db2 without lvssd: exit %d, want 69\n%s", code, errOut)
	}
}
