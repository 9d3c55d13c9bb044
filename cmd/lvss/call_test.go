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

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/client/clienttest"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
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

func TestCallJSONBackup(t *testing.T) {
	srv := clienttest.Start(t)
	writerID, instanceID := uuid.New(), uuid.New()
	srv.Set(func(s *clienttest.Server) {
		s.Status = []*v1.WriterStatus{{InstanceId: instanceID.String(), WriterId: writerID.String(), Name: "pg",
			State: int32(vss.WSFailedAtFreeze), Failure: uint32(vsserr.WriterErrorRetryable)}}
	})
	script := `# a full writerless sequence
InitializeForBackup
SetContext VSS_CTX_FILE_SHARE_BACKUP
GetSessionId
StartSnapshotSet
AddToSnapshotSet /srv
AddToSnapshotSet /home
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
	want := []string{"InitializeForBackup", "SetContext", "GetSessionId", "StartSnapshotSet", "AddToSnapshotSet",
		"AddToSnapshotSet", "DoSnapshotSet", "GatherWriterStatus", "GetWriterStatusEx", "GetWriterStatus",
		"GetSnapshotProperties", "Query", "Release"}
	if got := calls(res); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	for _, r := range res {
		if r["hresult"] != "0x00000000" || r["name"] != "S_OK" {
			t.Errorf("%v: %v %v", r["call"], r["name"], r["message"])
		}
	}
	if _, err := uuid.Parse(res[3]["snapshot_set_id"].(string)); err != nil {
		t.Errorf("snapshot_set_id: %v", res[3])
	}
	snap1 := res[4]["snapshot_id"].(string)
	if res[10]["snapshot"].(map[string]any)["snapshot_id"] != snap1 {
		t.Errorf("$SNAPSHOT_ID_1 did not bind the first snapshot: %v", res[10])
	}
	if res[6]["async_status"] != "VSS_S_ASYNC_FINISHED" || res[6]["async_id"] == nil {
		t.Errorf("DoSnapshotSet: %v", res[6])
	}
	// A writer's veto is in the status list, not the call's HRESULT.
	ws := res[8]["writers"].([]any)
	w := ws[0].(map[string]any)
	if res[8]["count"] != 1.0 || w["state"] != "VSS_WS_FAILED_AT_FREEZE" || w["state_value"] != 9.0 ||
		w["failure"] != "VSS_E_WRITERERROR_RETRYABLE" || w["failure_hresult"] != "0x800423F3" ||
		w["application_hresult"] != "0x00000000" || w["writer_id"] != writerID.String() {
		t.Errorf("GetWriterStatusEx: %v", res[8])
	}
	if one := res[9]["writer"].(map[string]any); one["index"] != 0.0 || one["application_hresult"] != nil {
		t.Errorf("GetWriterStatus 0 (not Ex): %v", res[9])
	}
	if q := res[11]; q["count"] != 2.0 || len(q["snapshots"].([]any)) != 2 {
		t.Errorf("Query: %v", q)
	}
	rel := res[12]
	if rel["aborted"] != false || len(rel["deleted_snapshots"].([]any)) != 2 || rel["shutdown_writers"] == nil {
		t.Errorf("Release: %v", rel)
	}
}

func TestCallStopsOnFailure(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) { s.Fail["PrepareForBackup"] = vsserr.BadState })
	script := "InitializeForBackup\nStartSnapshotSet\nPrepareForBackup\nDoSnapshotSet\n"
	code, out, _ := runLvss(t, srv.Socket, script, "call", "--json")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	res := jsonLines(t, out)
	if got := calls(res); !slices.Equal(got, []string{"InitializeForBackup", "StartSnapshotSet", "PrepareForBackup", "Release"}) {
		t.Fatalf("calls %v", got)
	}
	p := res[2]
	if p["hresult"] != "0x80042301" || p["name"] != "VSS_E_BAD_STATE" || p["message"] != "fake lvssd fails PrepareForBackup" || p["line"] != 3.0 {
		t.Errorf("PrepareForBackup: %v", p)
	}
	if slices.Contains(srv.Calls(), "DoSnapshotSet") {
		t.Error("the run went on after a failure")
	}
	if res[3]["aborted"] != true {
		t.Errorf("Release after a started set: %v", res[3])
	}
}

func TestCallKeepGoing(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) {
		s.Async["DoSnapshotSet"] = clienttest.AsyncPlan{Result: vsserr.FlushWritesTimeout, Message: "fsfreeze took too long"}
	})
	script := "Bogus\nGetSnapshotProperties $SNAPSHOT_ID\nStartSnapshotSet\nDoSnapshotSet\nAbortBackup\n"
	code, out, _ := runLvss(t, srv.Socket, script, "call", "--json", "--keep-going")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (some calls failed)", code)
	}
	res := jsonLines(t, out)
	if got := calls(res); !slices.Equal(got, []string{"Bogus", "GetSnapshotProperties", "StartSnapshotSet", "DoSnapshotSet", "AbortBackup", "Release"}) {
		t.Fatalf("calls %v", got)
	}
	for _, i := range []int{0, 1} {
		if res[i]["name"] != "E_INVALIDARG" {
			t.Errorf("line %d: %v", i+1, res[i])
		}
	}
	// Lines that do not parse never reach the daemon.
	if got := srv.Calls(); !slices.Equal(got, []string{"StartSnapshotSet", "DoSnapshotSet", "Wait", "AbortBackup"}) {
		t.Errorf("daemon saw %v", got)
	}
	d := res[3]
	if d["name"] != "VSS_E_FLUSH_WRITES_TIMEOUT" || d["async_status"] != "VSS_S_ASYNC_FINISHED" || d["message"] != "fsfreeze took too long" {
		t.Errorf("failed DoSnapshotSet: %v", d)
	}
}

func TestCallSuccessCodesAreNotFailures(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) {
		s.Fail["SetContext"] = vsserr.False // a success code in the call's status
		s.Async["GatherWriterMetadata"] = clienttest.AsyncPlan{Hold: true}
	})
	script := "SetContext VSS_CTX_BACKUP\nGatherWriterMetadata &\nCancel $ASYNC\nWait $ASYNC\nGetSessionId\n"
	code, out, _ := runLvss(t, srv.Socket, script, "call", "--json")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	res := jsonLines(t, out)
	if res[3]["name"] != "VSS_S_ASYNC_CANCELLED" || res[3]["async_status"] != "VSS_S_ASYNC_CANCELLED" {
		t.Errorf("Wait on a cancelled operation: %v", res[3])
	}
	if res[4]["call"] != "GetSessionId" {
		t.Errorf("the run stopped on a success code: %v", calls(res))
	}
}

func TestCallAsyncHandles(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) { s.Async["DoSnapshotSet"] = clienttest.AsyncPlan{Hold: true} })
	script := `StartSnapshotSet
DoSnapshotSet &
QueryStatus $ASYNC
Wait $ASYNC 10
Cancel $ASYNC
QueryStatus $ASYNC
Cancel $ASYNC
GatherWriterMetadata
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
	check(1, "S_OK", "VSS_S_ASYNC_PENDING")
	check(2, "S_OK", "VSS_S_ASYNC_PENDING")
	check(3, "S_OK", "VSS_S_ASYNC_PENDING")
	check(4, "S_OK", "")
	check(5, "VSS_S_ASYNC_CANCELLED", "VSS_S_ASYNC_CANCELLED")
	check(6, "VSS_S_ASYNC_CANCELLED", "")
	check(7, "S_OK", "VSS_S_ASYNC_FINISHED")
	check(8, "VSS_S_ASYNC_FINISHED", "")
	if res[2]["operation"] != "DoSnapshotSet" || res[1]["async_id"] != res[2]["async_id"] {
		t.Errorf("QueryStatus does not name its operation: %v", res[2])
	}
	if res[8]["async_id"] == res[1]["async_id"] {
		t.Error("$ASYNC did not move to the last async call")
	}
}

func TestCallWriterMetadataVariables(t *testing.T) {
	var wmds []string
	var ids [2][2]uuid.UUID
	for i := range 2 {
		ids[i] = [2]uuid.UUID{uuid.New(), uuid.New()}
		w := &document.WriterMetadata{
			Identity: document.Identity{WriterID: ids[i][0], InstanceID: ids[i][1], FriendlyName: "w" + string(rune('0'+i)),
				Usage: vss.UsageUserData, Source: vss.SourceOther},
			RestoreMethod: document.RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WRENever},
			Components: []document.Component{{Type: vss.ComponentFileGroup, LogicalPath: `db\main`, Name: "data",
				Files: []document.FileDesc{{Path: "/var/lib/db", Filespec: "*", Recursive: true}}}},
		}
		b, err := w.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		wmds = append(wmds, string(b))
	}
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) { s.WMDs = wmds })
	script := `GatherWriterMetadata
GetWriterMetadataCount
GetWriterMetadata
AddComponent $INSTANCE_ID_2 $WRITER_ID_2 VSS_CT_FILEGROUP "db\main" data
GetWriterMetadata 0
DisableWriterClasses $WRITER_ID
`
	code, out, _ := runLvss(t, srv.Socket, script, "call", "--json")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	res := jsonLines(t, out)
	if res[1]["count"] != 2.0 || res[2]["count"] != 2.0 || len(res[2]["writers"].([]any)) != 2 {
		t.Fatalf("counts: %v / %v", res[1], res[2])
	}
	w := res[2]["writers"].([]any)[1].(map[string]any)
	c := w["components"].([]any)[0].(map[string]any)
	if w["writer_id"] != ids[1][0].String() || w["name"] != "w1" || c["component"] != `db\main\data` ||
		c["type"] != "VSS_CT_FILEGROUP" || !strings.Contains(w["xml"].(string), "WRITER_METADATA") {
		t.Errorf("writer 1: %v", w)
	}
	if res[4]["writer"].(map[string]any)["writer_id"] != ids[0][0].String() {
		t.Errorf("GetWriterMetadata 0: %v", res[4])
	}
	// $WRITER_ID follows the last writer shown (index 0 here).
	if res[5]["name"] != "S_OK" {
		t.Errorf("DisableWriterClasses $WRITER_ID: %v", res[5])
	}
}

func TestCallTextOutput(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) { s.Fail["PrepareForBackup"] = vsserr.BadState })
	code, out, _ := runLvss(t, srv.Socket, "StartSnapshotSet\nDoSnapshotSet\nPrepareForBackup\n", "call")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "StartSnapshotSet: S_OK (0x00000000)") || !strings.HasPrefix(lines[1], "  snapshot_set_id: ") {
		t.Errorf("StartSnapshotSet:\n%s", out)
	}
	if !strings.Contains(out, "DoSnapshotSet: S_OK (0x00000000)\n  async_status: VSS_S_ASYNC_FINISHED\n") {
		t.Errorf("DoSnapshotSet:\n%s", out)
	}
	if !strings.Contains(out, "PrepareForBackup: VSS_E_BAD_STATE (0x80042301): fake lvssd fails PrepareForBackup\n") {
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
	srv := clienttest.Start(t)
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
	for _, l := range []string{"InitializeForBackup", "StartSnapshotSet", "GetSnapshotProperties $SNAPSHOT_SET_ID"} {
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
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) { s.Async["DoSnapshotSet"] = clienttest.AsyncPlan{Hold: true} })
	inR, inW := io.Pipe()
	defer inW.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--socket", srv.Socket, "call", "--json"}, inR, &out, io.Discard) }()
	io.WriteString(inW, "StartSnapshotSet\nDoSnapshotSet\n")
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case code := <-done:
		if code != 130 {
			t.Fatalf("exit %d, want 130", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("interrupt did not end the run")
	}
	if n := len(srv.Releases()); n != 1 {
		t.Fatalf("%d releases", n)
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
	code, out, _ := runLvss(t, "/nonexistent/lvssd.sock", "InitializeForBackup\n", "call", "--json")
	if code != 1 {
		t.Fatalf("exit %d", code)
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
