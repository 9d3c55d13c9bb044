package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// These tests run the built lvssd and lvss binaries (lvssdtest) in
// temporary directories: nothing here needs root or touches the system's
// /run/lvss. They are skipped with -short because building takes a while.
// The other tests of this package run the CLI in the test process against
// the real coordinator (lvssdtest.StartInProcess).

func TestMain(m *testing.M) { lvssdtest.Main(m) }

// daemon is a running lvssd binary.
type daemon struct {
	*lvssdtest.Daemon
	socket string
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	testenv.SkipIfShort(t, "builds and starts lvssd")
	d := lvssdtest.StartDaemon(t, lvssdtest.DaemonOptions{})
	return &daemon{Daemon: d, socket: d.Socket}
}

// call runs the lvss binary's `call --json` with a script and returns its
// exit status and parsed results.
func (d *daemon) call(t *testing.T, script string, flags ...string) (int, []map[string]any) {
	t.Helper()
	r := d.Lvss(t, script, append([]string{"call", "--json"}, flags...)...)
	res := jsonLines(t, r.Stdout)
	if len(res) > 0 && res[0]["name"] == "E_ACCESSDENIED" && os.Geteuid() != 0 {
		testenv.Missing(t, fmt.Sprintf("root: lvssd refuses requesters that are not root here (%v)", res[0]["message"]))
	}
	return r.Code, res
}

// run runs the lvss binary against the daemon and returns its exit
// status, standard output and standard error.
func (d *daemon) run(t *testing.T, argv ...string) (int, string, string) {
	t.Helper()
	r := d.Lvss(t, "", argv...)
	return r.Code, r.Stdout, r.Stderr
}

func TestIntegrationWriterlessBackup(t *testing.T) {
	d := startDaemon(t)
	vol := t.TempDir()
	script := `# a crash-consistent backup without writers
InitializeForBackup
SetContext VSS_CTX_FILE_SHARE_BACKUP
SetBackupState false false VSS_BT_FULL
GetSessionId
StartSnapshotSet
IsVolumeSupported GUID_NULL ` + vol + `
DoSnapshotSet
GatherWriterStatus
GetWriterStatusEx
GetWriterComponentsCount
SaveAsXML
Query
`
	code, res := d.call(t, script)
	want := []string{"InitializeForBackup", "SetContext", "SetBackupState", "GetSessionId", "StartSnapshotSet",
		"IsVolumeSupported", "DoSnapshotSet", "GatherWriterStatus", "GetWriterStatusEx", "GetWriterComponentsCount",
		"SaveAsXML", "Query", "Release"}
	if got := calls(res); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	for _, r := range res {
		want := "S_OK"
		if r["call"] == "Query" {
			want = "S_FALSE" // the set has no volume, so nothing matches (D20)
		}
		if r["name"] != want {
			t.Errorf("line %v %s: %s (%s) %v, want %s", r["line"], r["call"], r["name"], r["hresult"], r["message"], want)
		}
	}
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	setID, _ := res[4]["snapshot_set_id"].(string)
	if _, err := uuid.Parse(setID); err != nil {
		t.Fatalf("snapshot_set_id %q", setID)
	}
	if _, err := uuid.Parse(res[3]["session_id"].(string)); err != nil {
		t.Errorf("session_id: %v", res[3])
	}
	if _, ok := res[5]["supported"].(bool); !ok {
		t.Errorf("IsVolumeSupported: %v", res[5])
	}
	for _, i := range []int{6, 7} {
		if res[i]["async_status"] != "VSS_S_ASYNC_FINISHED" || res[i]["hresult"] != "0x00000000" {
			t.Errorf("%s: %v", res[i]["call"], res[i])
		}
	}
	if res[8]["count"] != 0.0 || res[9]["count"] != 0.0 {
		t.Errorf("writerless session has writers: %v %v", res[8], res[9])
	}
	if x, _ := res[10]["xml"].(string); !strings.Contains(x, "BACKUP_COMPONENTS") || !strings.Contains(x, setID) {
		t.Errorf("SaveAsXML: %q", x)
	}
	rel := res[12]
	if rel["aborted"] != false {
		t.Errorf("Release after a created set: %v", rel)
	}
}

func TestIntegrationErrors(t *testing.T) {
	d := startDaemon(t)
	script := `InitializeForBackup
SetContext VSS_CTX_FILE_SHARE_BACKUP
PrepareForBackup
SetContext NOT_A_CONTEXT
StartSnapshotSet
AddToSnapshotSet /nonexistent/lvss-integration
SetContext VSS_CTX_BACKUP
GetWriterStatus 5
`
	code, res := d.call(t, script, "--keep-going")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := []struct{ call, name string }{
		{"InitializeForBackup", "S_OK"},
		{"SetContext", "S_OK"},
		{"PrepareForBackup", "VSS_E_BAD_STATE"}, // writerless context (D2)
		{"SetContext", "E_INVALIDARG"},          // refused by lvss before the daemon
		{"StartSnapshotSet", "S_OK"},
		{"AddToSnapshotSet", ""},          // a failure; which one is the daemon's choice
		{"SetContext", "VSS_E_BAD_STATE"}, // once, and only in init
		{"GetWriterStatus", ""},
		{"Release", "S_OK"},
	}
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d: %v", len(res), len(want), calls(res))
	}
	for i, w := range want {
		r := res[i]
		if r["call"] != w.call || (w.name != "" && r["name"] != w.name) {
			t.Errorf("line %d: %s %s (%v), want %s %s", i+1, r["call"], r["name"], r["message"], w.call, w.name)
		}
		if w.name == "" && !strings.HasPrefix(r["hresult"].(string), "0x8") {
			t.Errorf("line %d: %s should fail, got %s", i+1, r["call"], r["name"])
		}
	}

	// Stopping at the first failure still releases the session.
	code, res = d.call(t, "InitializeForBackup\nPrepareForBackup\nStartSnapshotSet\n")
	if code != 1 || !slices.Equal(calls(res), []string{"InitializeForBackup", "PrepareForBackup", "Release"}) {
		t.Fatalf("exit %d, calls %v", code, calls(res))
	}
}

func TestIntegrationListWriters(t *testing.T) {
	d := startDaemon(t)
	code, out, errOut := d.run(t, "list", "writers", "--json")
	if code != 0 {
		t.Fatalf("lvss list writers: exit %d: %s", code, errOut)
	}
	var ws []any
	if err := json.Unmarshal([]byte(out), &ws); err != nil || ws == nil {
		t.Fatalf("not a JSON array: %q %v", out, err)
	}
}

// startWriter subscribes a writer of one file-group component ("files",
// instance "main") to the daemon and returns once lvssd lists it. It makes
// sessions writer sessions, so that the tests see the whole
// IVssBackupComponents sequence.
func (d *daemon) startWriter(t *testing.T) writer.Identity {
	t.Helper()
	return runTestWriter(t, d.socket, "files", "main", vss.LevelFrontEnd, newTestWriter(t.TempDir()))
}

func TestIntegrationWriterBackup(t *testing.T) {
	d := startDaemon(t)
	id := d.startWriter(t)
	script := `InitializeForBackup
SetBackupState true false VSS_BT_FULL
GatherWriterMetadata
GetWriterMetadata
AddComponent $INSTANCE_ID_1 $WRITER_ID_1 VSS_CT_FILEGROUP files docs
StartSnapshotSet
PrepareForBackup
DoSnapshotSet
GatherWriterStatus
GetWriterStatusEx
SetBackupSucceeded $INSTANCE_ID_1 $WRITER_ID_1 VSS_CT_FILEGROUP files docs true
GetWriterComponents
BackupComplete
`
	code, res := d.call(t, script)
	for _, r := range res {
		if r["name"] != "S_OK" {
			t.Errorf("line %v %s: %s %v", r["line"], r["call"], r["name"], r["message"])
		}
	}
	if code != 0 || len(res) != 14 {
		t.Fatalf("exit %d, calls %v", code, calls(res))
	}
	w := res[3]["writers"].([]any)[0].(map[string]any)
	if w["writer_id"] != id.ClassID.String() || w["instance_name"] != "main" {
		t.Errorf("GetWriterMetadata: %v", w)
	}
	ws := res[9]["writers"].([]any)[0].(map[string]any)
	if ws["state"] != "VSS_WS_WAITING_FOR_BACKUP_COMPLETE" || ws["failure"] != "S_OK" {
		t.Errorf("writer status after the snapshot: %v", ws)
	}
	comp := res[11]["writers"].([]any)[0].(map[string]any)["components"].([]any)[0].(map[string]any)
	if comp["backup_stamp"] != "stamp-1" || comp["backup_succeeded"] != true {
		t.Errorf("GetWriterComponents: %v", comp)
	}
	rel := res[13]
	if rel["aborted"] != false || len(rel["shutdown_writers"].([]any)) != 1 {
		t.Errorf("Release: %v", rel)
	}
	if code, out, _ := d.run(t, "list", "writers"); code != 0 || !strings.Contains(out, "Writer name: 'files'") ||
		!strings.Contains(out, `files\docs (VSS_CT_FILEGROUP)`) {
		t.Errorf("list writers: exit %d\n%s", code, out)
	}
}

// TestIntegrationRun checks client.Run's end of session against the real
// coordinator: after a successful DoSnapshotSet it sends BackupComplete, so
// the writer ends in STABLE rather than WAITING_FOR_BACKUP_COMPLETE.
func TestIntegrationRun(t *testing.T) {
	d := startDaemon(t)
	d.startWriter(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := client.Run(ctx, d.socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if err := bc.SetBackupState(ctx, false, false, vss.BackupFull, false); err != nil {
			return err
		}
		for _, step := range []func(context.Context) (*client.Async, error){bc.GatherWriterMetadata} {
			a, err := step(ctx)
			if err == nil {
				err = a.Wait(ctx)
			}
			if err != nil {
				return err
			}
		}
		if _, err := bc.StartSnapshotSet(ctx); err != nil {
			return err
		}
		for _, step := range []func(context.Context) (*client.Async, error){bc.PrepareForBackup, bc.DoSnapshotSet} {
			a, err := step(ctx)
			if err == nil {
				err = a.Wait(ctx)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := d.run(t, "list", "writers", "--json")
	var ws []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &ws) != nil || len(ws) != 1 {
		t.Fatalf("list writers: exit %d %s", code, out)
	}
	if ws[0]["state"] != "VSS_WS_STABLE" || ws[0]["last_session_id"] == "" {
		t.Errorf("writer after Run: %v", ws[0])
	}
}

// TestIntegrationListEvents checks that what lvssd records (here a refused
// call's session and a released session) is visible through the CLI.
func TestIntegrationListEvents(t *testing.T) {
	d := startDaemon(t)
	if code, _ := d.call(t, "InitializeForBackup\nSetContext VSS_CTX_FILE_SHARE_BACKUP\n"); code != 0 {
		t.Fatalf("call exit %d", code)
	}
	code, out, errOut := d.run(t, "list", "events", "--json")
	if code != 0 {
		t.Fatalf("list events: exit %d: %s", code, errOut)
	}
	var evs []map[string]any
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var released map[string]any
	for _, e := range evs {
		if e["message"] == "session released" {
			released = e
		}
	}
	if released == nil || released["session_id"] == "" || released["hresult"] != "0x00000000" {
		t.Fatalf("no session release in the event log: %s", out)
	}
	last := uint64(evs[len(evs)-1]["seq"].(float64))
	code, out, _ = d.run(t, "list", "events", "--after", fmt.Sprint(last), "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("--after the last event: exit %d %q", code, out)
	}
	code, text, _ := d.run(t, "list", "events")
	if code != 0 || !strings.Contains(text, "session released") {
		t.Fatalf("text output: exit %d %q", code, text)
	}
}
