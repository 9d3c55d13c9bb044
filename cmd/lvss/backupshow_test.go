package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// runBackupShow runs `lvss backup show` the way main does: the real root,
// its usage marking, its error printing and exit statuses.
func runBackupShow(t *testing.T, argv ...string) (int, string, string) {
	t.Helper()
	root := newRootCommand()
	var out, errb bytes.Buffer
	root.SetArgs(append([]string{"backup", "show"}, argv...))
	root.SetOut(&out)
	root.SetErr(&errb)
	argv = append([]string{"backup", "show"}, argv...)
	cmd, err := root.ExecuteContextC(context.Background())
	reportError(&errb, cmd, argv, err)
	return exitCode(err), out.String(), errb.String()
}

var (
	showSet     = uuid.MustParse("0b2f6c1e-5d7a-4e21-9f3c-8a4b2d1e6f70")
	showSnap    = uuid.MustParse("7d0c93a4-1b2e-4f6a-8c5d-3e9f0a1b2c4d")
	showProv    = uuid.MustParse("3f1e7a52-9c4d-4b8e-a1f0-6d2c5b7e9a13")
	showFiles   = [2]uuid.UUID{uuid.MustParse("d39fbed9-41e7-4535-ab3b-decd33c7ce85"), uuid.MustParse("0c6f3a52-8e1d-4b7a-9d25-6f4e3b2a1c0d")}
	showPG      = [2]uuid.UUID{uuid.MustParse("c0ffee00-1234-4abc-8def-0123456789ab"), uuid.MustParse("5f3e2a10-7c4b-4d9e-a1f2-6b8c0d3e4f51")}
	showWritten = time.Date(2026, 11, 25, 1, 12, 40, 0, time.UTC)
)

func showWMD(t *testing.T, ids [2]uuid.UUID, name string) string {
	t.Helper()
	md := &document.WriterMetadata{
		Identity: document.Identity{InstanceID: ids[0], WriterID: ids[1], FriendlyName: name, Usage: vss.UsageUserData,
			Source: vss.SourceOther},
		RestoreMethod: document.RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WRENever},
		Components: []document.Component{{Type: vss.ComponentFileGroup, LogicalPath: name, Name: "data",
			Files: []document.FileDesc{{Path: "/srv/" + name, Filespec: "*", Recursive: true, BackupTypeMask: vss.DefaultFileBackupTypeMask}}}},
	}
	x, err := md.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(x)
}

// showSample is a full backup of /srv with two writers: files, backed up,
// and postgres, which failed at Freeze and whose component says why.
func showSample(t *testing.T) (backupdoc.Manifest, string, map[uuid.UUID]string) {
	t.Helper()
	bcd := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull, SnapshotSetID: showSet,
		SnapshotSet: &document.SnapshotSetRecord{ID: showSet, Snapshots: []document.SnapshotRecord{{ID: showSnap}}}}
	for _, w := range []struct {
		ids  [2]uuid.UUID
		name string
	}{{showFiles, "files"}, {showPG, "postgres"}} {
		if err := bcd.AddComponent(w.ids[0], w.ids[1], "", 0, vss.ComponentFileGroup, w.name, "data"); err != nil {
			t.Fatal(err)
		}
	}
	bcd.Writers[0].Components[0].BackupSucceeded = true
	bcd.Writers[0].Components[0].BackupStamp = "stamp-1"
	bcd.Writers[1].Components[0].Failure = &document.ComponentFailure{HR: uint32(vsserr.WriterErrorTimeout), Message: "checkpoint took too long"}
	x, err := bcd.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	status := 2
	m := backupdoc.Manifest{Stage: backupdoc.StageBackupComplete, LvssVersion: "0.9.0", Host: "db1", Time: showWritten,
		SnapshotSetID: showSet, Context: vss.CtxBackup, BackupType: vss.BackupFull,
		Command: []string{"tar", "-cf", "/backup/my srv.tar", "-C", "/srv/.lvss-snapshots/" + showSnap.String(), "."}, ExitStatus: &status,
		FreezeHeld: 1500 * time.Microsecond, WritersFrozen: 4250 * time.Microsecond,
		Snapshots: []backupdoc.Snapshot{{SnapshotID: showSnap, OriginalVolume: "/srv", DevicePath: "/srv/.lvss-snapshots/" + showSnap.String(),
			ProviderName: "btrfs", ProviderID: showProv, Consistency: "crash", ConsistencyReason: "writer postgres: VSS_WS_FAILED_AT_FREEZE"}},
		Writers: []backupdoc.Writer{
			{InstanceID: showFiles[0], WriterID: showFiles[1], Name: "files", InstanceName: "main", State: vss.WSStable},
			{InstanceID: showPG[0], WriterID: showPG[1], Name: "postgres", State: vss.WSFailedAtFreeze, Failure: vsserr.WriterErrorTimeout,
				ApplicationHRESULT: vsserr.Fail, ApplicationMessage: "checkpoint took too long"},
		},
	}
	return m, string(x), map[uuid.UUID]string{showFiles[0]: showWMD(t, showFiles, "files"), showPG[0]: showWMD(t, showPG, "postgres")}
}

func writeSample(t *testing.T, m backupdoc.Manifest, bcd string, wmds map[uuid.UUID]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "srv.lvss.tar")
	if err := backupdoc.WriteFile(path, m, bcd, wmds); err != nil {
		t.Fatal(err)
	}
	return path
}

// inOrder checks that each of want is a whole line of out, in this order:
// the lines that matter, without pinning every blank and space.
func inOrder(t *testing.T, out string, want ...string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	i := 0
	for _, w := range want {
		for i < len(lines) && lines[i] != w {
			i++
		}
		if i == len(lines) {
			t.Errorf("output lacks the line %q (or has it out of order):\n%s", w, out)
			return
		}
		i++
	}
}

func TestBackupShowText(t *testing.T) {
	m, bcd, wmds := showSample(t)
	path := writeSample(t, m, bcd, wmds)
	code, out, errOut := runBackupShow(t, path)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	inOrder(t, out,
		"Backup archive "+path,
		"   Snapshot set: "+showSet.String(),
		"   Stage: backup complete (BackupComplete was sent)",
		"   Time: 2026-11-25T01:12:40Z",
		"   Host: db1",
		"   lvss version: 0.9.0",
		"   Context: VSS_CTX_BACKUP",
		"   Backup type: VSS_BT_FULL",
		"   Command: tar -cf '/backup/my srv.tar' -C /srv/.lvss-snapshots/"+showSnap.String()+" .",
		"   Exit status: 2",
		"   Writers held frozen: 4.25ms",
		"   Filesystems held frozen: 1.5ms",
		"Snapshots:",
		"   Shadow Copy ID: "+showSnap.String(),
		"      Original Volume: /srv",
		"      Shadow Copy Volume: /srv/.lvss-snapshots/"+showSnap.String(),
		"      Provider: 'btrfs' ("+showProv.String()+")",
		"      Consistency: crash (writer postgres: VSS_WS_FAILED_AT_FREEZE)",
		"Writers:",
		"   Writer name: 'files'",
		"      Writer Instance Id: "+showFiles[0].String(),
		"      Instance name: main",
		"      State: VSS_WS_STABLE (1)",
		"      Last error: S_OK (0x00000000)",
		"         files\\data (VSS_CT_FILEGROUP): backup succeeded: yes",
		"   Writer name: 'postgres'",
		"      Writer Id: "+showPG[1].String(),
		"      Writer Instance Id: "+showPG[0].String(),
		"      State: VSS_WS_FAILED_AT_FREEZE (9)",
		"      Last error: VSS_E_WRITERERROR_TIMEOUT (0x800423F2)",
		"      Application: E_FAIL (0x80004005): checkpoint took too long",
		"         postgres\\data (VSS_CT_FILEGROUP): backup succeeded: no",
		"            Failure: VSS_E_WRITERERROR_TIMEOUT (0x800423F2): checkpoint took too long",
	)
	if strings.Contains(out, "Metadata: not in the archive") || strings.Contains(out, "Application: S_OK") {
		t.Errorf("lines for what is not the case:\n%s", out)
	}
}

// TestBackupShowSnapshotStage: the first of the two archives of a backup,
// whose command has not ended, and a writer the BCD has but the manifest
// does not list.
func TestBackupShowSnapshotStage(t *testing.T) {
	m, bcd, wmds := showSample(t)
	m.Stage, m.ExitStatus, m.FreezeHeld, m.WritersFrozen, m.Host = backupdoc.StageSnapshot, nil, 0, 0, ""
	m.Writers = m.Writers[:1]
	code, out, errOut := runBackupShow(t, writeSample(t, m, bcd, wmds))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	inOrder(t, out,
		"   Stage: snapshot taken (written before the backup command ended and before BackupComplete)",
		"   Host: unknown",
		"   Exit status: not known (the command had not ended when the archive was written)",
		"   Writers held frozen: none recorded",
		"   Filesystems held frozen: none recorded",
		"   Writer name: 'files'",
		"   Writer name: 'postgres'",
		"      State: not known (the manifest does not list this writer)",
		"         postgres\\data (VSS_CT_FILEGROUP): backup succeeded: no",
	)
}

func TestBackupShowJSON(t *testing.T) {
	m, bcd, wmds := showSample(t)
	path := writeSample(t, m, bcd, wmds)
	code, out, errOut := runBackupShow(t, path, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got := jsonObject(t, out)
	if len(got) != 2 {
		t.Errorf("want manifest and components, got %v", got)
	}
	// The manifest is manifest.json as the archive holds it.
	var stored map[string]any
	if err := json.Unmarshal([]byte(tarFile(t, path, "manifest.json")), &stored); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got["manifest"], stored) {
		t.Errorf("manifest differs from manifest.json:\n got %v\nwant %v", got["manifest"], stored)
	}
	comps, _ := got["components"].([]any)
	if len(comps) != 2 {
		t.Fatalf("components: %v", got["components"])
	}
	files, pg := comps[0].(map[string]any), comps[1].(map[string]any)
	for k, v := range map[string]any{"instance_id": showFiles[0].String(), "writer_id": showFiles[1].String(), "writer": "files",
		"component": `files\data`, "logical_path": "files", "name": "data", "type": "VSS_CT_FILEGROUP",
		"backup_succeeded": true, "backup_stamp": "stamp-1", "failure": "S_OK", "failure_hresult": "0x00000000"} {
		if files[k] != v {
			t.Errorf("files component %s = %v, want %v", k, files[k], v)
		}
	}
	for k, v := range map[string]any{"writer": "postgres", "backup_succeeded": false, "failure": "VSS_E_WRITERERROR_TIMEOUT",
		"failure_hresult": "0x800423F2", "failure_message": "checkpoint took too long"} {
		if pg[k] != v {
			t.Errorf("postgres component %s = %v, want %v", k, pg[k], v)
		}
	}
	for _, k := range []string{"previous_backup_stamp", "backup_options", "prepare_for_backup_failure_msg", "post_snapshot_failure_msg"} {
		if _, ok := files[k]; !ok {
			t.Errorf("component lacks %q", k)
		}
	}
	if m := got["manifest"].(map[string]any); m["format"] != "lvss-backup-archive" || m["exit_status"] != 2.0 ||
		m["command"].([]any)[2] != "/backup/my srv.tar" {
		t.Errorf("manifest: %v", m)
	}
}

func tarFile(t *testing.T, path, name string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s has no %s: %v", path, name, err)
		}
		if h.Name == name {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}

func TestBackupShowBadFile(t *testing.T) {
	dir := t.TempDir()
	m, bcd, wmds := showSample(t)
	notTar := filepath.Join(dir, "notes.txt")
	os.WriteFile(notTar, []byte(strings.Repeat("not an archive\n", 100)), 0o644)
	// An archive whose bcd.xml was cut short after it was written.
	good, _ := os.ReadFile(writeSample(t, m, bcd, wmds))
	damaged := filepath.Join(dir, "damaged.tar")
	os.WriteFile(damaged, bytes.Replace(good, []byte("</BACKUP_COMPONENTS>"), []byte("</BACKUP_COMPONENTZ>"), 1), 0o644)
	missing := filepath.Join(dir, "missing.tar")

	for _, tc := range []struct {
		path, first, hint string
	}{
		{missing, "lvss: VSS_E_OBJECT_NOT_FOUND (0x80042308): " + missing + ": open: no such file or directory",
			"hint: give the path of the archive 'lvss backup --bcd FILE' wrote"},
		{notTar, "lvss: E_INVALIDARG (0x80070057): " + notTar + ": not a tar archive",
			"hint: FILE must be an archive written by 'lvss backup --bcd FILE' or 'lvss cluster backup --bcd FILE', as it wrote it (see docs/backup-archive.md)"},
		{damaged, "lvss: VSS_E_CORRUPT_XML_DOCUMENT (0x80042310): " + damaged + ": bcd.xml: line ",
			"hint: a document in the archive is damaged or was changed after 'lvss backup' wrote it: restore cannot use this copy of the archive"},
	} {
		code, out, errOut := runBackupShow(t, tc.path)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		if code != 1 || out != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], tc.first) || lines[1] != tc.hint {
			t.Errorf("%s: exit %d, stdout %q, stderr:\n%s\nwant a first line starting %q and the hint %q", filepath.Base(tc.path), code, out, errOut, tc.first, tc.hint)
		}
	}
	if code, _, errOut := runBackupShow(t); code != 2 || !strings.Contains(errOut, "accepts 1 arg") {
		t.Errorf("no FILE: exit %d, %s", code, errOut)
	}
}

func TestBackupShowHelp(t *testing.T) {
	cmd := newBackupShowCommand(&globalOptions{})
	if cmd.Long == "" || !strings.Contains(cmd.Example, "lvss backup show ") {
		t.Errorf("--help lacks a long text or an example")
	}
	code, out, _ := runBackupShow(t, "--help")
	if code != 0 || !strings.Contains(out, "Examples:\n  lvss backup show /backup/srv.lvss.tar") || !strings.Contains(out, "--json") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestArchiveConversions(t *testing.T) {
	created := time.Date(2026, 11, 25, 1, 10, 3, 0, time.UTC)
	snaps := archiveSnapshots([]client.SnapshotProp{{SnapshotID: showSnap, SnapshotSetID: showSet, OriginalVolume: "/srv",
		DevicePath: "/snap", ProviderName: "btrfs", ProviderID: showProv, Created: created, Consistency: "crash",
		ConsistencyReason: "why", ExposedName: "/mnt/x"}})
	wantSnap := backupdoc.Snapshot{SnapshotID: showSnap, OriginalVolume: "/srv", DevicePath: "/snap", ProviderName: "btrfs",
		ProviderID: showProv, Created: created, Consistency: "crash", ConsistencyReason: "why"}
	if len(snaps) != 1 || snaps[0] != wantSnap {
		t.Errorf("snapshots %+v", snaps)
	}
	ws := archiveWriters([]client.WriterStatus{{InstanceID: showPG[0], WriterID: showPG[1], Name: "postgres", InstanceName: "main",
		State: vss.WSFailedAtFreeze, Failure: vsserr.WriterErrorTimeout, ApplicationHRESULT: vsserr.Fail, ApplicationMessage: "slow"}})
	wantW := backupdoc.Writer{InstanceID: showPG[0], WriterID: showPG[1], Name: "postgres", InstanceName: "main",
		State: vss.WSFailedAtFreeze, Failure: vsserr.WriterErrorTimeout, ApplicationHRESULT: vsserr.Fail, ApplicationMessage: "slow"}
	if len(ws) != 1 || ws[0] != wantW {
		t.Errorf("writers %+v", ws)
	}
	if archiveSnapshots(nil) == nil || archiveWriters(nil) == nil {
		t.Errorf("empty lists should be empty, not nil")
	}

	events := []client.LogEvent{
		{Message: "filesystems held frozen", Fields: map[string]string{"set": uuid.New().String(), "held": "9s"}},
		{Message: "snapshot created", Fields: map[string]string{"set": showSet.String()}},
		{Message: "filesystems held frozen", Fields: map[string]string{"set": showSet.String(), "held": "12.345ms"}},
	}
	events = append(events, client.LogEvent{Message: "writers held frozen", Fields: map[string]string{"set": showSet.String(), "held": "20ms"}})
	if d := heldFor(events, showSet, "filesystems held frozen"); d != 12345*time.Microsecond {
		t.Errorf("filesystems held = %v", d)
	}
	if d := heldFor(events, showSet, "writers held frozen"); d != 20*time.Millisecond {
		t.Errorf("writers held = %v", d)
	}
	if d := heldFor(events[:2], showSet, "filesystems held frozen"); d != 0 {
		t.Errorf("filesystems held without the entry = %v", d)
	}
}

func TestShellJoin(t *testing.T) {
	for in, want := range map[string]string{
		"restic":            "restic",
		"/srv/a-b_c.d:e=1,": "/srv/a-b_c.d:e=1,",
		"my file":           "'my file'",
		"":                  "''",
		"it's":              `'it'\''s'`,
		"$HOME":             "'$HOME'",
		"a*":                "'a*'",
	} {
		if got := shellJoin([]string{in}); got != want {
			t.Errorf("shellJoin(%q) = %s, want %s", in, got, want)
		}
	}
}
