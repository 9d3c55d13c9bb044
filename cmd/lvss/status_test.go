package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// holdCreation opens a session that starts a snapshot set with vol in it
// and keeps it open (holding the creation lock) until the test ends or
// the returned func is called. It returns the session's ID.
func holdCreation(t *testing.T, socket, vol string) (uuid.UUID, func()) {
	t.Helper()
	ids := make(chan uuid.UUID, 1)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- client.Run(context.Background(), socket, func(ctx context.Context, bc *client.BackupComponents) error {
			if err := bc.InitializeForBackup(ctx, ""); err != nil {
				return err
			}
			if err := bc.SetContext(ctx, vss.CtxFileShareBackup); err != nil {
				return err
			}
			if _, err := bc.StartSnapshotSet(ctx); err != nil {
				return err
			}
			if _, err := bc.AddToSnapshotSet(ctx, vol, uuid.Nil); err != nil {
				return err
			}
			id, err := bc.GetSessionID(ctx)
			if err != nil {
				return err
			}
			ids <- id
			<-stop
			return nil
		})
	}()
	var once bool
	end := func() {
		if !once {
			once = true
			close(stop)
			if err := <-done; err != nil {
				t.Errorf("the holding session: %v", err)
			}
		}
	}
	t.Cleanup(end)
	select {
	case id := <-ids:
		return id, end
	case err := <-done:
		t.Fatalf("the holding session ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the holding session did not start its set")
	}
	return uuid.Nil, nil
}

func statusJSON(t *testing.T, socket string, args ...string) map[string]any {
	t.Helper()
	code, out, errOut := runLvss(t, socket, "", append([]string{"status", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// TestStatusShowsSessionAndLock: a session holding the creation lock is
// listed with its requester, state and set, and holds the lock; after it
// ends the lock is free.
func TestStatusShowsSessionAndLock(t *testing.T) {
	srv := startLvssd(t)
	runTestWriter(t, srv.Socket, "files", "main", vss.LevelFrontEnd, newTestWriter(srv.Volume(t, "files")))
	lvssdtest.WaitWriters(t, srv.Socket, 1)
	vol := srv.Volume(t, "data")
	id, end := holdCreation(t, srv.Socket, vol)

	st := statusJSON(t, srv.Socket)
	ss := st["sessions"].([]any)
	if len(ss) != 1 {
		t.Fatalf("sessions: %v", ss)
	}
	s := ss[0].(map[string]any)
	if s["session_id"] != id.String() || s["state"] != "set" || s["context"] != "VSS_CTX_FILE_SHARE_BACKUP" || s["volumes"] != 1.0 ||
		s["pid"] != float64(os.Getpid()) || s["snapshot_set_id"] == "" || s["age_ms"].(float64) < 0 || s["command"] == "" {
		t.Errorf("session: %v", s)
	}
	lock, ok := st["creation_lock"].(map[string]any)
	if !ok || lock["session_id"] != id.String() || lock["snapshot_set_id"] != s["snapshot_set_id"] || lock["lease_remaining_ms"].(float64) <= 0 {
		t.Errorf("lock: %v", st["creation_lock"])
	}
	ws := st["writers"].(map[string]any)
	if ws["subscribed"] != 1.0 || ws["failing"] != 0.0 || ws["list"].([]any)[0].(map[string]any)["name"] != "files" {
		t.Errorf("writers: %v", ws)
	}
	d := st["daemon"].(map[string]any)
	if d["version"] == "" || d["pid"] != float64(os.Getpid()) || d["uptime_ms"].(float64) < 0 {
		t.Errorf("daemon: %v", d)
	}
	if st["max_snapshots_per_volume"] != 512.0 || len(st["frozen"].([]any)) != 0 {
		t.Errorf("status: %v", st)
	}
	code, text, _ := runLvss(t, srv.Socket, "", "status")
	if code != 0 || !strings.Contains(text, "Creation lock: session "+id.String()) || !strings.Contains(text, "Sessions: 1\n") ||
		!strings.Contains(text, "Writers: 1 subscribed, 0 failing") {
		t.Errorf("text:\n%s", text)
	}

	end()
	st = statusJSON(t, srv.Socket)
	if st["creation_lock"] != nil || len(st["sessions"].([]any)) != 0 {
		t.Errorf("after the session: lock %v, sessions %v", st["creation_lock"], st["sessions"])
	}
}

// TestStatusRecentErrors: the latest errors of the event log, as many as
// --errors says, and the snapshots per volume against the cap.
func TestStatusRecentErrors(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "data")
	if code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol); code != 0 {
		t.Fatalf("create shadow: %d %s %s", code, out, errOut)
	}
	srv.Fake.FailAt("CommitSnapshots", vsserr.New(vsserr.ProviderVeto, "the array is busy"))
	for range 2 {
		if code, _, _ := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol); code != exitFailed {
			t.Fatalf("create shadow with a vetoing provider: exit %d", code)
		}
	}
	st := statusJSON(t, srv.Socket, "--errors", "1")
	errs := st["recent_errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["level"] != "error" || errs[0].(map[string]any)["name"] != "VSS_E_PROVIDER_VETO" {
		t.Fatalf("recent errors: %v", errs)
	}
	if errs := statusJSON(t, srv.Socket, "--errors", "0")["recent_errors"].([]any); len(errs) != 0 {
		t.Fatalf("--errors 0: %v", errs)
	}
	if errs := statusJSON(t, srv.Socket)["recent_errors"].([]any); len(errs) != 2 {
		t.Fatalf("default: %v", errs)
	}
	vols := st["volumes"].([]any)
	if len(vols) != 1 || vols[0].(map[string]any)["volume"] != vol || vols[0].(map[string]any)["snapshots"] != 1.0 ||
		vols[0].(map[string]any)["max_snapshots"] != 512.0 || vols[0].(map[string]any)["provider"] != "fake" {
		t.Fatalf("volumes: %v", vols)
	}
	code, text, _ := runLvss(t, srv.Socket, "", "status", "--errors", "1")
	if code != 0 || !strings.Contains(text, "Recent errors: 1\n") || !strings.Contains(text, vol+": 1 of 512 (fake)") {
		t.Errorf("text:\n%s", text)
	}
	if code, _, errOut := runLvss(t, srv.Socket, "", "status", "--errors", "-1"); code != exitUsage {
		t.Errorf("--errors -1: exit %d %s", code, errOut)
	}
}

// TestStatusText: what each part of a status looks like in text.
func TestStatusText(t *testing.T) {
	now := time.Date(2026, 11, 25, 1, 10, 3, 0, time.UTC)
	sid, set := uuid.MustParse("3b2b4ce3-cbad-42b9-9cdb-5f0595bf0d98"), uuid.MustParse("0b2f6c1e-5d7a-4e21-9f3c-8a4b2d1e6f70")
	st := &client.Status{
		Daemon: client.DaemonInfo{Version: "1.2.3", Commit: "0441b12aabbccddeeff", PID: 42, Started: now.Add(-3 * time.Hour), Now: now,
			Socket: "/run/lvss/lvssd.sock", StateDir: "/var/lib/lvss", RunDir: "/run/lvss"},
		Sessions: []client.SessionInfo{{SessionID: sid, PID: 4242, UID: 0, Command: "restic backup /srv", State: "prepared",
			Context: vss.CtxBackup, SetID: set, Operation: "DoSnapshotSet", Started: now.Add(-12 * time.Second), Volumes: 1}},
		CreationLock: &client.CreationLock{SessionID: sid, SetID: set, Since: now.Add(-11 * time.Second), LeaseExpiry: now.Add(9*time.Minute + 49*time.Second)},
		Frozen: []client.FrozenFilesystem{{MountPoint: "/srv", Device: "7:0", Type: "ext4", Paths: []string{"/srv"}, Since: now.Add(-1200 * time.Millisecond),
			GuardPID: 99, GuardRunning: true}, {MountPoint: "/old", Device: "7:1", Type: "xfs", Since: now.Add(-time.Hour), GuardPID: 98}},
		Writers: []client.WriterInfo{{Name: "pg", InstanceName: "main", PID: 100, State: vss.WSFailedAtFreeze, Failure: vsserr.WriterErrorTimeout,
			ApplicationMessage: "checkpoint took too long"}},
		MaxSnapshotsPerVolume: 512,
		Volumes:               []client.VolumeSnapshots{{Volume: "/srv", Snapshots: 3, Provider: "btrfs", SnapshotDir: "/srv/.lvss-snapshots", FreeBytes: 3 << 29, TotalBytes: 4 << 30}},
		Providers: []client.ProviderStorage{{Name: "btrfs"}, {Name: "san", NeedsFreeze: true},
			{Name: "copy", SnapshotDir: "/var/lib/lvss/copies", SpaceError: "statfs: permission denied"}},
		RecentErrors: []client.LogEvent{{Seq: 7, Time: now, Level: "error", HRESULT: vsserr.ProviderVeto, Message: "DoSnapshotSet failed"}},
	}
	text := statusText(st)
	for _, want := range []string{
		"lvssd 1.2.3 (commit 0441b12aabbc), pid 42, up 3h0m (since 2026-11-24T22:10:03Z)\n",
		"   Config file: none (defaults)\n",
		"Sessions: 1\n   3b2b4ce3-cbad-42b9-9cdb-5f0595bf0d98 (pid 4242, uid 0: restic backup /srv)\n      DoSnapshotSet running; state prepared, VSS_CTX_BACKUP, age 12s\n",
		"      Snapshot set 0b2f6c1e-5d7a-4e21-9f3c-8a4b2d1e6f70, 1 volume\n",
		"Creation lock: session 3b2b4ce3-cbad-42b9-9cdb-5f0595bf0d98 (set 0b2f6c1e-5d7a-4e21-9f3c-8a4b2d1e6f70), held 11s, lease ends in 9m49s\n",
		"Frozen filesystems: 2\n   /srv (ext4, 7:0) frozen for 1.2s by guard pid 99; for /srv\n",
		"   /old (xfs, 7:1) frozen for 1h0m by guard pid 98, which is gone: lvssd thaws it when it reaps the guard or restarts\n",
		"Writers: 1 subscribed, 1 failing\n   'pg (main)' pid 100: VSS_WS_FAILED_AT_FREEZE, last error VSS_E_WRITERERROR_TIMEOUT (0x800423F2): checkpoint took too long\n",
		"Snapshots (limit 512 per volume): 1 volume\n   /srv: 3 of 512 (btrfs), kept in /srv/.lvss-snapshots: 1.5 GiB free of 4.0 GiB\n",
		"   btrfs: snapshots kept per volume (above)\n   san: snapshots where its commands put them; commits inside a filesystem freeze\n",
		"   copy: snapshots in /var/lib/lvss/copies: free space unknown: statfs: permission denied\n",
		"Recent errors: 1\n       7 2026-11-25T01:10:03Z error DoSnapshotSet failed [VSS_E_PROVIDER_VETO (0x80042306)]\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in:\n%s", want, text)
		}
	}
	o := statusObj(st)
	b, err := marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	lock := m["creation_lock"].(map[string]any)
	frozen := m["frozen"].([]any)[0].(map[string]any)
	if lock["held_ms"] != 11000.0 || lock["lease_remaining_ms"] != 589000.0 || frozen["frozen_ms"] != 1200.0 ||
		m["writers"].(map[string]any)["failing"] != 1.0 || m["daemon"].(map[string]any)["uptime_ms"] != float64(3*time.Hour/time.Millisecond) {
		t.Errorf("json: %s", b)
	}
}

// TestUnreachableStatusAndEvents: status and events follow every verb's
// convention when lvssd is not there.
func TestUnreachableStatusAndEvents(t *testing.T) {
	sock := t.TempDir() + "/nothing.sock"
	for _, argv := range [][]string{{"status"}, {"events"}, {"events", "--follow"}} {
		code, out, errOut := runLvss(t, sock, "", argv...)
		if code != exitUnreachable || out != "" || !strings.Contains(errOut, "hint: start lvssd") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", argv, code, out, errOut)
		}
	}
	if !errors.Is(&reportedError{client.ErrUnreachable}, client.ErrUnreachable) || exitCode(&reportedError{client.ErrUnreachable}) != exitUnreachable ||
		exitCode(&reportedError{errDoctorFound}) != exitFailed {
		t.Error("a reported error does not keep its exit status")
	}
}
