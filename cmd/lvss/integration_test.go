package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// These tests build the real lvssd and lvss binaries and run them in
// temporary directories: nothing here needs root or touches the system's
// /run/lvss. They are skipped with -short because building takes a while.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// buildBinaries builds lvssd and lvss once per test run.
func buildBinaries(t *testing.T) string {
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "lvss-bin")
		if buildErr != nil {
			return
		}
		for _, b := range []struct{ name, pkg string }{{"lvssd", "../lvssd"}, {"lvss", "."}} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, b.name), b.pkg).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

type daemon struct {
	socket string
	lvss   string // path of the built lvss binary
	log    *bytes.Buffer
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	if testing.Short() {
		testenv.SkipIfShort(t, "builds and starts lvssd")
	}
	bin := buildBinaries(t)
	// A short directory: Unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "lvss-it")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"state", "run"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	d := &daemon{socket: filepath.Join(dir, "lvssd.sock"), lvss: filepath.Join(bin, "lvss"), log: &bytes.Buffer{}}
	cmd := exec.Command(filepath.Join(bin, "lvssd"), "--socket", d.socket,
		"--state-dir", filepath.Join(dir, "state"), "--run-dir", filepath.Join(dir, "run"))
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("lvssd log:\n%s", d.log)
		}
	})
	deadline := time.After(15 * time.Second)
	for {
		if _, err := os.Stat(d.socket); err == nil {
			return d
		}
		select {
		case err := <-exited:
			t.Fatalf("lvssd exited: %v\n%s", err, d.log)
		case <-deadline:
			t.Fatalf("lvssd did not create %s\n%s", d.socket, d.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// call runs the lvss binary's `call --json` with a script and returns its
// exit status and parsed results.
func (d *daemon) call(t *testing.T, script string, flags ...string) (int, []map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.lvss, append([]string{"--socket", d.socket, "call", "--json"}, flags...)...)
	cmd.Stdin = strings.NewReader(script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("lvss call: %v\n%s", err, stderr.String())
	}
	res := jsonLines(t, string(out))
	if len(res) > 0 && res[0]["name"] == "E_ACCESSDENIED" && os.Geteuid() != 0 {
		testenv.Missing(t, fmt.Sprintf("root: lvssd refuses requesters that are not root here (%v)", res[0]["message"]))
	}
	return code, res
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
		if r["name"] != "S_OK" {
			t.Errorf("line %v %s: %s (%s) %v", r["line"], r["call"], r["name"], r["hresult"], r["message"])
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
		{"PrepareForBackup", "VSS_E_BAD_STATE"}, // writerless context (§12 D2)
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
	out, err := exec.Command(d.lvss, "--socket", d.socket, "list", "writers", "--json").Output()
	if err != nil {
		t.Fatalf("lvss list writers: %v", err)
	}
	var ws []any
	if err := json.Unmarshal(out, &ws); err != nil || ws == nil {
		t.Fatalf("not a JSON array: %q %v", out, err)
	}
}

// fileWriter is the smallest writer: one file-group component over a
// directory, nothing to freeze. It makes the session a writer session, so
// that the test sees the whole IVssBackupComponents sequence.
type fileWriter struct{ dir string }

var fileWriterClass = uuid.MustParse("0c6f3a52-8e1d-4b7a-9d25-6f4e3b2a1c0d")

func (w *fileWriter) Identify(_ context.Context, md *writer.Metadata) error {
	if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, LogicalPath: "files", Name: "docs",
		Caption: "documents", Selectable: true}); err != nil {
		return err
	}
	return md.AddFiles("files", "docs", w.dir, "*", true, "", 0)
}
func (w *fileWriter) Freeze(context.Context, *writer.Event) error { return nil }
func (w *fileWriter) Thaw(context.Context, *writer.Event) error   { return nil }
func (w *fileWriter) Abort(context.Context, *writer.Event) error  { return nil }
func (w *fileWriter) PostSnapshot(_ context.Context, _ *writer.Event, c *writer.Components) error {
	for _, comp := range c.List() {
		comp.BackupStamp = "stamp-1"
	}
	return nil
}

// startWriter subscribes a fileWriter to the daemon and waits until a
// listing shows it.
func (d *daemon) startWriter(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		writer.Run(ctx, writer.Options{Socket: d.socket},
			writer.Identity{ClassID: fileWriterClass, Name: "files", InstanceName: "main"}, &fileWriter{dir: t.TempDir()})
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, err := exec.Command(d.lvss, "--socket", d.socket, "list", "writers", "--json").Output()
		var ws []map[string]any
		if err == nil && json.Unmarshal(out, &ws) == nil && len(ws) == 1 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the writer did not subscribe")
}

func TestIntegrationWriterBackup(t *testing.T) {
	d := startDaemon(t)
	d.startWriter(t)
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
	if w["writer_id"] != fileWriterClass.String() || w["instance_name"] != "main" {
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
	out, err := exec.Command(d.lvss, "--socket", d.socket, "list", "writers").Output()
	if err != nil || !strings.Contains(string(out), "Writer name: 'files'") || !strings.Contains(string(out), `files\docs (VSS_CT_FILEGROUP)`) {
		t.Errorf("list writers: %v\n%s", err, out)
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
	out, err := exec.Command(d.lvss, "--socket", d.socket, "list", "writers", "--json").Output()
	var ws []map[string]any
	if err != nil || json.Unmarshal(out, &ws) != nil || len(ws) != 1 {
		t.Fatalf("list writers: %v %s", err, out)
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
	out, err := exec.Command(d.lvss, "--socket", d.socket, "list", "events", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	if err := json.Unmarshal(out, &evs); err != nil {
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
	out, err = exec.Command(d.lvss, "--socket", d.socket, "list", "events", "--after", fmt.Sprint(last), "--json").Output()
	if err != nil || strings.TrimSpace(string(out)) != "[]" {
		t.Fatalf("--after the last event: %q %v", out, err)
	}
	text, err := exec.Command(d.lvss, "--socket", d.socket, "list", "events").Output()
	if err != nil || !strings.Contains(string(text), "session released") {
		t.Fatalf("text output: %q %v", text, err)
	}
}
