package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

func runLvss(t *testing.T, socket, stdin string, argv ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"--socket", socket}, argv...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// jsonLines parses `lvss call --json` output and checks the fields every
// result must have.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	hexRE := regexp.MustCompile(`^0x[0-9A-F]{8}$`)
	var res []map[string]any
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", l, err)
		}
		for _, k := range []string{"call", "hresult", "name", "message"} {
			if _, ok := m[k]; !ok {
				t.Errorf("result %q has no %q", l, k)
			}
		}
		if h, _ := m["hresult"].(string); !hexRE.MatchString(h) {
			t.Errorf("hresult %q is not 0x + 8 uppercase hex digits", h)
		}
		if h, ok := vsserr.Lookup(m["hresult"].(string)); !ok || h.Name() != m["name"] {
			t.Errorf("name %v does not match hresult %v", m["name"], m["hresult"])
		}
		res = append(res, m)
	}
	return res
}

func calls(res []map[string]any) []string {
	var out []string
	for _, r := range res {
		out = append(out, r["call"].(string))
	}
	return out
}

// startLvssd starts the real coordinator, catalog and gRPC server of lvssd
// in the test process, with the fake provider, for `lvss` to run against.
func startLvssd(t *testing.T) *lvssdtest.InProcess {
	t.Helper()
	return lvssdtest.StartInProcess(t, lvssdtest.InProcessOptions{})
}

// released returns the fields of lvssd's "session released" log entries,
// oldest first: what ending each session did (aborted, shutdown_writers,
// deleted_snapshots).
func released(t *testing.T, socket string) []map[string]string {
	t.Helper()
	var out []map[string]string
	for _, e := range lvssdtest.Events(t, socket) {
		if e.Message == "session released" {
			out = append(out, e.Fields)
		}
	}
	return out
}

func TestCallJSONBackup(t *testing.T) {
	srv := startLvssd(t)
	vol1, vol2 := srv.Volume(t, "srv"), srv.Volume(t, "home")
	pg := newTestWriter(t.TempDir())
	pg.failAt(writer.EventFreeze, writer.Fail(vsserr.WriterErrorRetryable, 0, "checkpoint in progress"))
	id := runTestWriter(t, srv.Socket, "pg", "", vss.LevelBackEnd, pg)
	script := `# a full backup with a writer that vetoes
InitializeForBackup
SetBackupState false false VSS_BT_FULL
GatherWriterMetadata
GetSessionId
StartSnapshotSet
AddToSnapshotSet ` + vol1 + `
AddToSnapshotSet ` + vol2 + `
PrepareForBackup
DoSnapshotSet
GatherWriterStatus
GetWriterStatusEx
GetWriterStatus 0
GetSnapshotProperties $SNAPSHOT_ID_1
Query
`
	code, out, errOut := runLvss(t, srv.Socket, script, "call", "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q, out:\n%s", code, errOut, out)
	}
	res := jsonLines(t, out)
	want := []string{"InitializeForBackup", "SetBackupState", "GatherWriterMetadata", "GetSessionId", "StartSnapshotSet",
		"AddToSnapshotSet", "AddToSnapshotSet", "PrepareForBackup", "DoSnapshotSet", "GatherWriterStatus",
		"GetWriterStatusEx", "GetWriterStatus", "GetSnapshotProperties", "Query", "Release"}
	if got := calls(res); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	for _, r := range res {
		if r["hresult"] != "0x00000000" || r["name"] != "S_OK" {
			t.Errorf("%v: %v %v", r["call"], r["name"], r["message"])
		}
	}
	if _, err := uuid.Parse(res[4]["snapshot_set_id"].(string)); err != nil {
		t.Errorf("snapshot_set_id: %v", res[4])
	}
	snap1 := res[5]["snapshot_id"].(string)
	if res[12]["snapshot"].(map[string]any)["snapshot_id"] != snap1 {
		t.Errorf("$SNAPSHOT_ID_1 did not bind the first snapshot: %v", res[12])
	}
	if res[8]["async_status"] != "VSS_S_ASYNC_FINISHED" || res[8]["async_id"] == nil {
		t.Errorf("DoSnapshotSet: %v", res[8])
	}
	// A writer's veto is in the status list, not the call's HRESULT.
	ws := res[10]["writers"].([]any)
	w := ws[0].(map[string]any)
	if res[10]["count"] != 1.0 || w["state"] != "VSS_WS_FAILED_AT_FREEZE" || w["state_value"] != 9.0 ||
		w["failure"] != "VSS_E_WRITERERROR_RETRYABLE" || w["failure_hresult"] != "0x800423F3" ||
		w["application_hresult"] != "0x00000000" || w["writer_id"] != id.ClassID.String() {
		t.Errorf("GetWriterStatusEx: %v", res[10])
	}
	if one := res[11]["writer"].(map[string]any); one["index"] != 0.0 || one["application_hresult"] != nil {
		t.Errorf("GetWriterStatus 0 (not Ex): %v", res[11])
	}
	if q := res[13]; q["count"] != 2.0 || len(q["snapshots"].([]any)) != 2 {
		t.Errorf("Query: %v", q)
	}
	// VSS_CTX_BACKUP snapshots are auto-release: the session's end deletes
	// them, and the writer that took part gets BackupShutdown.
	rel := res[14]
	if rel["aborted"] != false || len(rel["deleted_snapshots"].([]any)) != 2 || len(rel["shutdown_writers"].([]any)) != 1 {
		t.Errorf("Release: %v", rel)
	}
}

func TestCallStopsOnFailure(t *testing.T) {
	srv := startLvssd(t)
	// PrepareForBackup a second time is VSS_E_BAD_STATE (D2).
	script := "InitializeForBackup\nSetBackupState false false VSS_BT_FULL\nGatherWriterMetadata\nStartSnapshotSet\n" +
		"AddToSnapshotSet " + srv.Volume(t, "srv") + "\nPrepareForBackup\nPrepareForBackup\nDoSnapshotSet\n"
	code, out, _ := runLvss(t, srv.Socket, script, "call", "--json")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	res := jsonLines(t, out)
	if got := calls(res); !slices.Equal(got, []string{"InitializeForBackup", "SetBackupState", "GatherWriterMetadata",
		"StartSnapshotSet", "AddToSnapshotSet", "PrepareForBackup", "PrepareForBackup", "Release"}) {
		t.Fatalf("calls %v", got)
	}
	p := res[6]
	if p["hresult"] != "0x80042301" || p["name"] != "VSS_E_BAD_STATE" || p["message"] == "" || p["line"] != 7.0 {
		t.Errorf("PrepareForBackup: %v", p)
	}
	if got := srv.Fake.Calls(); slices.Contains(got, "EndPrepareSnapshots") {
		t.Errorf("the run went on after a failure: the provider saw %v", got)
	}
	// Ending the session aborted the prepared backup.
	if res[7]["aborted"] != true {
		t.Errorf("Release after a prepared set: %v", res[7])
	}
}

func TestCallKeepGoing(t *testing.T) {
	srv := startLvssd(t)
	srv.Fake.FailAt("CommitSnapshots", vsserr.New(vsserr.ProviderVeto, "the array said no"))
	script := "Bogus\nGetSnapshotProperties $SNAPSHOT_ID\nInitializeForBackup\nSetContext VSS_CTX_FILE_SHARE_BACKUP\n" +
		"StartSnapshotSet\nAddToSnapshotSet " + srv.Volume(t, "srv") + "\nDoSnapshotSet\nAbortBackup\n"
	code, out, _ := runLvss(t, srv.Socket, script, "call", "--json", "--keep-going")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (some calls failed)", code)
	}
	res := jsonLines(t, out)
	if got := calls(res); !slices.Equal(got, []string{"Bogus", "GetSnapshotProperties", "InitializeForBackup", "SetContext",
		"StartSnapshotSet", "AddToSnapshotSet", "DoSnapshotSet", "AbortBackup", "Release"}) {
		t.Fatalf("calls %v", got)
	}
	// Lines that do not parse never reach the daemon: lvss refuses them
	// (lvssd would have answered an unknown snapshot with
	// VSS_E_OBJECT_NOT_FOUND), and the run goes on.
	for _, i := range []int{0, 1} {
		if res[i]["name"] != "E_INVALIDARG" {
			t.Errorf("line %d: %v", i+1, res[i])
		}
	}
	// A failed operation's async status is its error, never
	// VSS_S_ASYNC_FINISHED (D17).
	d := res[6]
	if d["name"] != "VSS_E_PROVIDER_VETO" || d["async_status"] != "VSS_E_PROVIDER_VETO" ||
		!strings.Contains(d["message"].(string), "the array said no") {
		t.Errorf("failed DoSnapshotSet: %v", d)
	}
	if got := srv.Fake.Calls(); !slices.Contains(got, "AbortSnapshots") {
		t.Errorf("the failed set was not aborted in the provider: %v", got)
	}
}

func TestCallSuccessCodesAreNotFailures(t *testing.T) {
	srv := startLvssd(t)
	// A writer that stops answering Identify after its first one keeps a
	// metadata gathering pending until it is cancelled.
	w := newTestWriter(t.TempDir())
	runTestWriter(t, srv.Socket, "files", "", vss.LevelFrontEnd, w)
	w.hangAt(writer.EventIdentify)
	script := "InitializeForBackup\nSetContext VSS_CTX_BACKUP\nGatherWriterMetadata &\nCancel $ASYNC\nWait $ASYNC\nCancel $ASYNC\nGetSessionId\n"
	code, out, _ := runLvss(t, srv.Socket, script, "call", "--json")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	res := jsonLines(t, out)
	if res[3]["name"] != "S_OK" {
		t.Errorf("Cancel of a pending operation: %v", res[3])
	}
	if res[4]["name"] != "VSS_S_ASYNC_CANCELLED" || res[4]["async_status"] != "VSS_S_ASYNC_CANCELLED" {
		t.Errorf("Wait on a cancelled operation: %v", res[4])
	}
	// Cancel's own status, a success code, is not a failure either.
	if res[5]["name"] != "VSS_S_ASYNC_CANCELLED" || res[5]["hresult"] != "0x0004230B" {
		t.Errorf("Cancel of a cancelled operation: %v", res[5])
	}
	if res[6]["call"] != "GetSessionId" {
		t.Errorf("the run stopped on a success code: %v", calls(res))
	}
}

func TestCallAsyncHandles(t *testing.T) {
	srv := startLvssd(t)
	// The provider holds DoSnapshotSet until it is cancelled.
	release := srv.Fake.HangAt("EndPrepareSnapshots")
	t.Cleanup(release)
	script := `InitializeForBackup
SetContext VSS_CTX_FILE_SHARE_BACKUP
GatherWriterMetadata
Cancel $ASYNC
StartSnapshotSet
AddToSnapshotSet ` + srv.Volume(t, "srv") + `
DoSnapshotSet &
QueryStatus $ASYNC
Wait $ASYNC 10
Cancel $ASYNC
Wait $ASYNC
QueryStatus $ASYNC
Cancel $ASYNC
`
	code, out, _ := runLvss(t, srv.Socket, script, "call", "--json")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	res := jsonLines(t, out)
	check := func(i int, name, status string) {
		t.Helper()
		r := res[i]
		if r["name"] != name || (status != "" && r["async_status"] != status) {
			t.Errorf("%s (line %d): %v", r["call"], i+1, r)
		}
	}
	check(2, "S_OK", "VSS_S_ASYNC_FINISHED")
	check(3, "VSS_S_ASYNC_FINISHED", "")
	check(6, "S_OK", "VSS_S_ASYNC_PENDING")
	check(7, "S_OK", "VSS_S_ASYNC_PENDING")
	check(8, "S_OK", "VSS_S_ASYNC_PENDING")
	check(9, "S_OK", "")
	check(10, "VSS_S_ASYNC_CANCELLED", "VSS_S_ASYNC_CANCELLED")
	check(11, "VSS_S_ASYNC_CANCELLED", "VSS_S_ASYNC_CANCELLED")
	check(12, "VSS_S_ASYNC_CANCELLED", "")
	if res[7]["operation"] != "DoSnapshotSet" || res[6]["async_id"] != res[7]["async_id"] {
		t.Errorf("QueryStatus does not name its operation: %v", res[7])
	}
	if res[3]["operation"] != "GatherWriterMetadata" || res[6]["async_id"] == res[3]["async_id"] {
		t.Errorf("$ASYNC did not move to the last async call: %v / %v", res[3], res[6])
	}
}

func TestCallWriterMetadataVariables(t *testing.T) {
	srv := startLvssd(t)
	var ids [2]writer.Identity
	for i := range 2 {
		w := newTestWriter(t.TempDir())
		w.identify = func(md *writer.Metadata) error {
			if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, LogicalPath: `db\main`, Name: "data",
				Selectable: true}); err != nil {
				return err
			}
			return md.AddFiles(`db\main`, "data", "/var/lib/db", "*", true, "", 0)
		}
		ids[i] = runTestWriter(t, srv.Socket, "w"+string(rune('0'+i)), "", vss.LevelFrontEnd, w)
	}
	script := `InitializeForBackup
SetBackupState true false VSS_BT_FULL
GatherWriterMetadata
GetWriterMetadataCount
GetWriterMetadata
AddComponent $INSTANCE_ID_2 $WRITER_ID_2 VSS_CT_FILEGROUP "db\main" data
GetWriterMetadata 0
AddComponent $INSTANCE_ID $WRITER_ID VSS_CT_FILEGROUP "db\main" data
SaveAsXML
`
	code, out, _ := runLvss(t, srv.Socket, script, "call", "--json")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	res := jsonLines(t, out)
	if res[3]["count"] != 2.0 || res[4]["count"] != 2.0 || len(res[4]["writers"].([]any)) != 2 {
		t.Fatalf("counts: %v / %v", res[3], res[4])
	}
	w := res[4]["writers"].([]any)[1].(map[string]any)
	c := w["components"].([]any)[0].(map[string]any)
	if w["writer_id"] != ids[1].ClassID.String() || w["name"] != "w1" || c["component"] != `db\main\data` ||
		c["type"] != "VSS_CT_FILEGROUP" || !strings.Contains(w["xml"].(string), "WRITER_METADATA") {
		t.Errorf("writer 1: %v", w)
	}
	if res[5]["name"] != "S_OK" {
		t.Errorf("AddComponent $INSTANCE_ID_2 $WRITER_ID_2: %v", res[5])
	}
	if res[6]["writer"].(map[string]any)["writer_id"] != ids[0].ClassID.String() {
		t.Errorf("GetWriterMetadata 0: %v", res[6])
	}
	// $WRITER_ID and $INSTANCE_ID follow the last writer shown (index 0
	// here): lvssd refuses an instance that is not the writer's.
	if res[7]["name"] != "S_OK" {
		t.Errorf("AddComponent $INSTANCE_ID $WRITER_ID: %v", res[7])
	}
	inst0 := res[6]["writer"].(map[string]any)["instance_id"].(string)
	if x, _ := res[8]["xml"].(string); !strings.Contains(x, inst0) {
		t.Errorf("the backup's components do not include writer 0's (%s):\n%s", inst0, x)
	}
}

func TestCallTextOutput(t *testing.T) {
	srv := startLvssd(t)
	// PrepareForBackup after the set was made is VSS_E_BAD_STATE; the
	// context's snapshots are persistent, so the release deletes none.
	script := "InitializeForBackup\nSetContext VSS_CTX_NAS_ROLLBACK\nStartSnapshotSet\nAddToSnapshotSet " + srv.Volume(t, "srv") +
		"\nDoSnapshotSet\nPrepareForBackup\n"
	code, out, _ := runLvss(t, srv.Socket, script, "call")
	if code != 1 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "\nStartSnapshotSet: S_OK (0x00000000)\n  snapshot_set_id: ") {
		t.Errorf("StartSnapshotSet:\n%s", out)
	}
	if !strings.Contains(out, "DoSnapshotSet: S_OK (0x00000000)\n  async_status: VSS_S_ASYNC_FINISHED\n") {
		t.Errorf("DoSnapshotSet:\n%s", out)
	}
	if !strings.Contains(out, "\nPrepareForBackup: VSS_E_BAD_STATE (0x80042301): ") {
		t.Errorf("PrepareForBackup:\n%s", out)
	}
	if !strings.Contains(out, "Release: S_OK (0x00000000)\n  aborted: false\n  shutdown_writers: (none)\n  deleted_snapshots: (none)\n") {
		t.Errorf("Release:\n%s", out)
	}
	if strings.Contains(out, "line:") {
		t.Errorf("text output shows line numbers:\n%s", out)
	}
}

// TestCallInteractive drives `lvss call` through a pipe, writing each line
// only after reading the previous result: it must not wait for more input
// before answering.
func TestCallInteractive(t *testing.T) {
	srv := startLvssd(t)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--socket", srv.Socket, "call", "--json"}, inR, outW, io.Discard)
		outW.Close()
	}()
	results := bufio.NewScanner(outR)
	for _, l := range []string{"InitializeForBackup", "SetContext VSS_CTX_FILE_SHARE_BACKUP", "StartSnapshotSet",
		"GetSnapshotProperties $SNAPSHOT_SET_ID"} {
		if _, err := io.WriteString(inW, l+"\n"); err != nil {
			t.Fatal(err)
		}
		if !results.Scan() {
			t.Fatalf("no result for %q", l)
		}
		var m map[string]any
		json.Unmarshal(results.Bytes(), &m)
		if !strings.HasPrefix(l, m["call"].(string)) {
			t.Fatalf("result %s for line %q", results.Text(), l)
		}
	}
	inW.Close()
	if !results.Scan() || !strings.Contains(results.Text(), `"call":"Release"`) {
		t.Fatalf("no Release at the end of input: %q", results.Text())
	}
	// The last call failed (no such snapshot): exit status 1.
	if code := <-done; code != 1 {
		t.Fatalf("exit %d", code)
	}
}

func TestCallInterrupted(t *testing.T) {
	srv := startLvssd(t)
	// The provider holds DoSnapshotSet until the session ends.
	release := srv.Fake.HangAt("EndPrepareSnapshots")
	t.Cleanup(release)
	inR, inW := io.Pipe()
	defer inW.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--socket", srv.Socket, "call", "--json"}, inR, &out, io.Discard) }()
	io.WriteString(inW, "InitializeForBackup\nSetContext VSS_CTX_FILE_SHARE_BACKUP\nStartSnapshotSet\nAddToSnapshotSet "+
		srv.Volume(t, "srv")+"\nDoSnapshotSet\n")
	lvssdtest.Eventually(t, 10*time.Second, "DoSnapshotSet to reach the provider", func() bool {
		return slices.Contains(srv.Fake.Calls(), "EndPrepareSnapshots")
	})
	cancel()
	select {
	case code := <-done:
		if code != 130 {
			t.Fatalf("exit %d, want 130", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("interrupt did not end the run")
	}
	// The session ended: lvssd released it, which undid the set.
	lvssdtest.Eventually(t, 10*time.Second, "lvssd to release the session", func() bool {
		return len(released(t, srv.Socket)) == 1
	})
	if got := srv.Fake.Calls(); !slices.Contains(got, "AbortSnapshots") {
		t.Errorf("the interrupted set was not aborted in the provider: %v", got)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, argv := range [][]string{{"call", "a", "b"}, {"bogus"}, {"call", "--nope"}, {"list", "writers", "extra"}} {
		if code, _, errOut := runLvss(t, "/nonexistent.sock", "", argv...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q", argv, code, errOut)
		}
	}
}

func TestCallNoDaemon(t *testing.T) {
	code, out, errOut := runLvss(t, "/nonexistent/lvssd.sock", "InitializeForBackup\n", "call", "--json")
	// The result is the report (nothing on stderr); the status says lvssd
	// is unreachable.
	if code != exitUnreachable || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	res := jsonLines(t, out)
	if len(res) != 1 || res[0]["call"] != "CreateVssBackupComponents" || res[0]["name"] != "VSS_E_UNEXPECTED" ||
		!strings.Contains(res[0]["message"].(string), "/nonexistent/lvssd.sock") {
		t.Fatalf("%v", res)
	}
}

func TestHelpHasExamples(t *testing.T) {
	root := newRootCommand()
	for _, c := range append(root.Commands(), root) {
		for _, sub := range append(c.Commands(), c) {
			if sub.Hidden || sub.Name() == "help" || sub == root {
				continue
			}
			if sub.Example == "" || sub.Long == "" {
				t.Errorf("lvss %s: --help lacks a long text or an example", sub.CommandPath())
			}
		}
	}
}
