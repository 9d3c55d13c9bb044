package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vsserr"
)

// This file replays the call sequences of two real requesters as
// `lvss call --json` scripts against the real lvssd, with real writer
// processes (examples/logwriter) and the copy provider on two directories:
// vshadow.exe, Microsoft's VSS sample requester
// (microsoft/Windows-classic-samples, Samples/VShadowVolumeShadowCopy/cpp),
// and restic's VSS requester (restic/restic, internal/fs/vss_windows.go).
//
// Each line of a script carries what the requester needs Windows to answer
// to go on: the HRESULT, the async status of async calls, Wait and
// QueryStatus, and at every GetWriterStatus the state and failure of the
// writer it returns. After the run each writer's own event log says which
// events it got, and the Release result which writers got BackupShutdown
// and which snapshots went with the session.
//
// The sequences, transcribed from the sources (function names are theirs):
//
// vshadow [-p] [-nw] [-bc=F] [-wi=W] [-wx=W] [-exec=C] VOLUME... (shadow.cpp
// MainRoutine; the context is UpdateFinalContext's: BACKUP, -p
// APP_ROLLBACK, -nw FILE_SHARE_BACKUP, -p -nw NAS_ROLLBACK):
//
//	Initialize (vssclient.cpp): InitializeForBackup; SetContext(ctx) unless
//	  ctx is VSS_CTX_BACKUP; SetBackupState(true, true, VSS_BT_FULL, false)
//	CreateSnapshotSet (create.cpp), "with writers" unless the context has
//	  NO_WRITERS:
//	  with writers: GatherWriterMetadata (writer.cpp: the call, then
//	    WaitAndCheckForAsyncOperation = Wait + QueryStatus; then
//	    GetWriterMetadataCount and GetWriterMetadata(i) for each i)
//	  with writers: SelectComponentsForBackup (select.cpp): -wx exclusions,
//	    components with files outside the set excluded, -wi checks (a
//	    failed one throws E_INVALIDARG here, before any AddComponent), then
//	    AddComponent per explicitly included component
//	  StartSnapshotSet; AddToSnapshotSet(volume, GUID_NULL) per volume
//	  with writers: PrepareForBackup + Wait + QueryStatus, then
//	    CheckSelectedWriterStatus (select.cpp: GatherWriterStatus + Wait +
//	    QueryStatus, GetWriterStatusCount, GetWriterStatus(i) for each i)
//	  DoSnapshotSet + Wait + QueryStatus; CheckSelectedWriterStatus (a
//	    no-op without writers)
//	  -bc: SaveAsXML
//	  QuerySnapshotSet (query.cpp): Query(GUID_NULL, VSS_OBJECT_NONE,
//	    VSS_OBJECT_SNAPSHOT), S_FALSE meaning "none"
//	-exec: the command runs; if it fails, BackupComplete(false) and exit,
//	  else BackupComplete(true) (both only with writers)
//	BackupComplete(ok) (create.cpp): GetWriterComponentsCount, nothing more
//	  if 0; SetBackupSucceeded(ok) per explicitly included component;
//	  BackupComplete + Wait + QueryStatus; CheckSelectedWriterStatus
//	release
//
// vshadow's admin modes (shadow.cpp; Initialize as above):
//
//	-q        Initialize(VSS_CTX_ALL); Query (query.cpp)
//	-qx=SET   Initialize(VSS_CTX_ALL); Query; the set's snapshots are
//	          picked out of the list by the client
//	-s=ID     Initialize(VSS_CTX_ALL); GetSnapshotProperties(ID)
//	-el=ID,D  Initialize(VSS_CTX_ALL); GetSnapshotProperties(ID);
//	          ExposeSnapshot(ID, NULL, EXPOSED_LOCALLY, D) (expose.cpp)
//	-da       Initialize(VSS_CTX_ALL); Query; DeleteSnapshots(id,
//	          VSS_OBJECT_SNAPSHOT, FALSE) per snapshot (delete.cpp)
//	-dx=SET   Initialize(VSS_CTX_ALL); DeleteSnapshots(SET,
//	          VSS_OBJECT_SNAPSHOT_SET, FALSE)
//	-ds=ID    Initialize(VSS_CTX_ALL); DeleteSnapshots(ID, VSS_OBJECT_SNAPSHOT, FALSE)
//	-do=VOL   Initialize(VSS_CTX_ALL); Query; DeleteSnapshots(oldest of
//	          VOL by creation time, VSS_OBJECT_SNAPSHOT, FALSE)
//	-wm       Initialize(final context); GatherWriterMetadata (as above)
//	-ws       Initialize(final context); GatherWriterMetadata;
//	          GatherWriterStatus + Wait + QueryStatus; GetWriterStatusCount;
//	          GetWriterStatus(i) for each i (writer.cpp ListWriterStatus)
//
// restic (vss_windows.go NewVssSnapshot and Delete; every async call goes
// through callAsyncFunctionAndWait: the call, Wait(timeout), QueryStatus):
//
//	InitializeForBackup; SetContext(VSS_CTX_BACKUP);
//	SetBackupState(false, false, VSS_BT_COPY, false); GatherWriterMetadata;
//	IsVolumeSupported(provider, volume); StartSnapshotSet;
//	AddToSnapshotSet(volume, provider); PrepareForBackup; DoSnapshotSet;
//	GetSnapshotProperties(snapshot); ... the backup reads the snapshot ...;
//	BackupComplete; DeleteSnapshots(snapshot, VSS_OBJECT_SNAPSHOT, TRUE);
//	release
//
// restic keeps the ID AddToSnapshotSet returns in a variable it calls
// snapshotSetID, so GetSnapshotProperties and DeleteSnapshots get the
// snapshot's ID, as below; with the default provider it passes GUID_NULL.
// When an async operation fails (Wait's or QueryStatus's own HRESULT, or
// the status QueryStatus reports), restic gives up: after PrepareForBackup,
// DoSnapshotSet or GetSnapshotProperties it calls AbortBackup, then
// releases the session.
//
// `go test -v` shows each script with what every line needs and got.

// Writer states and results the sequences meet.
const (
	sOK        = "S_OK"
	sFalse     = "S_FALSE"
	pending    = "VSS_S_ASYNC_PENDING"
	finished   = "VSS_S_ASYNC_FINISHED"
	wsStable   = "VSS_WS_STABLE"
	wsWaitBC   = "VSS_WS_WAITING_FOR_BACKUP_COMPLETE"
	wsFailedID = "VSS_WS_FAILED_AT_IDENTIFY"
	queryAll   = "Query GUID_NULL VSS_OBJECT_NONE VSS_OBJECT_SNAPSHOT"
	guidNull   = "00000000-0000-0000-0000-000000000000"
)

// fullSequence is what a writer taking part in a whole backup gets after
// Identify, in order (vss-reference §2.1, vss-reference §3.2).
var fullSequence = []string{"PrepareForBackup", "PrepareForSnapshot", "Freeze", "Thaw", "PostSnapshot", "BackupComplete", "BackupShutdown"}

// wantWriter is a writer's expected status at a GetWriterStatus.
type wantWriter struct {
	state, failure string
}

// A step is one line of an `lvss call` script and what the requester needs
// lvssd to answer, as Windows does.
type step struct {
	line  string
	hr    string                // the HRESULT's name
	async string                // async_status, for async calls, Wait and QueryStatus
	state map[string]wantWriter // GetWriterStatus i: the status of each gathered writer, by name
	// check looks at the rest of the result; r holds what the script's
	// earlier lines returned.
	check func(t checkT, r *scriptRun, res result)
}

// result is one JSON object `lvss call --json` printed.
type result map[string]any

func (r result) str(k string) string { s, _ := r[k].(string); return s }
func (r result) num(k string) int    { n, _ := r[k].(float64); return int(n) }
func (r result) obj(k string) result { o, _ := r[k].(map[string]any); return o }

func (r result) list(k string) []result {
	var out []result
	l, _ := r[k].([]any)
	for _, e := range l {
		o, _ := e.(map[string]any)
		out = append(out, o)
	}
	return out
}

func (r result) strs(k string) []string {
	out := []string{}
	l, _ := r[k].([]any)
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// scriptRun is one run of a script: the results by line, and what the
// session's own lines created.
type scriptRun struct {
	release   result
	setID     string   // StartSnapshotSet's
	snapshots []string // AddToSnapshotSet's, in order
}

// runScript runs steps as one `lvss call --json` session against lvssd
// at socket, as the requester would: it stops at the first failing call
// (the requester gives up there; args "--keep-going" for a requester that
// goes on to its own clean-up calls) and releases the session. Every line
// must answer as its step says; a line after a failure that did not run is
// an error too.
func runScript(t *testing.T, socket string, steps []step, args ...string) *scriptRun {
	t.Helper()
	var script strings.Builder
	wantCode := 0
	for _, s := range steps {
		script.WriteString(s.line + "\n")
		if h, _ := vsserr.Lookup(s.hr); h.Failed() {
			wantCode = 1
		}
	}
	out := lvssdtest.Lvss(t, socket, script.String(), append([]string{"call", "--json"}, args...)...)
	byLine := map[int]result{}
	r := &scriptRun{}
	// st counts this script's own failures, so that the transcript is
	// shown for it alone.
	st := &countingT{T: t}
	for _, l := range strings.Split(strings.TrimSpace(out.Stdout), "\n") {
		if l == "" {
			continue
		}
		var res result
		if err := json.Unmarshal([]byte(l), &res); err != nil {
			t.Fatalf("lvss call printed a line that is not JSON: %q: %v\n%s", l, err, out.Stderr)
		}
		if res.str("call") == "Release" {
			r.release = res
			continue
		}
		byLine[res.num("line")] = res
	}
	for i, s := range steps {
		n := i + 1
		res, ok := byLine[n]
		if !ok {
			st.Errorf("line %d %q did not run (lvss call stopped before it)", n, s.line)
			continue
		}
		if res.str("name") != s.hr {
			st.Errorf("line %d %q: %s (%s), want %s", n, s.line, res.str("name"), res.str("message"), s.hr)
		}
		if s.async != "" && res.str("async_status") != s.async {
			st.Errorf("line %d %q: async_status %q, want %s", n, s.line, res.str("async_status"), s.async)
		}
		if s.state != nil {
			w := res.obj("writer")
			want, ok := s.state[w.str("name")]
			switch {
			case !ok:
				st.Errorf("line %d %q: status of writer %q, which is not among %v", n, s.line, w.str("name"), s.state)
			case w.str("state") != want.state || w.str("failure") != want.failure:
				st.Errorf("line %d %q: writer %s is %s (failure %s), want %s (failure %s)",
					n, s.line, w.str("name"), w.str("state"), w.str("failure"), want.state, want.failure)
			}
		}
		switch res.str("call") {
		case "StartSnapshotSet":
			r.setID = res.str("snapshot_set_id")
		case "AddToSnapshotSet":
			if id := res.str("snapshot_id"); id != "" {
				r.snapshots = append(r.snapshots, id)
			}
		}
		if s.check != nil && res.str("name") == s.hr {
			s.check(st, r, res)
		}
	}
	if r.release == nil {
		st.Errorf("lvss call printed no Release result (exit %d)", out.Code)
	}
	if st.failed || testing.Verbose() {
		var tr strings.Builder
		for i, s := range steps {
			res := byLine[i+1]
			want := s.hr
			if s.async != "" {
				want += " " + s.async
			}
			fmt.Fprintf(&tr, "%3d %s\n      want %s%s\n      got  %s %s %s%s\n", i+1, s.line, want, wantStates(s.state),
				res.str("name"), res.str("async_status"), answer(res), res.str("message"))
		}
		t.Logf("lvss call --json (exit %d): each line, what the requester needs, what lvssd answered:\n%s\nstderr:\n%s", out.Code, tr.String(), out.Stderr)
	}
	if st.failed {
		return r
	}
	if out.Code != wantCode {
		t.Errorf("lvss call exit status %d, want %d, with every line answered as expected:\n%s", out.Code, wantCode, out.Stderr)
	}
	return r
}

// checkT is what a step's check reports through.
type checkT interface {
	Helper()
	Errorf(format string, args ...any)
}

// countingT remembers whether it reported a failure.
type countingT struct {
	*testing.T
	failed bool
}

func (c *countingT) Errorf(format string, args ...any) {
	c.T.Helper()
	c.failed = true
	c.T.Errorf(format, args...)
}

// wantStates writes a step's writer states for a transcript.
func wantStates(m map[string]wantWriter) string {
	if m == nil {
		return ""
	}
	var w []string
	for name, st := range m {
		w = append(w, name+"="+st.state+"/"+st.failure)
	}
	slices.Sort(w)
	return " [" + strings.Join(w, " ") + "]"
}

// answer sums up a result for a transcript: a count, a writer's name and
// state, a set or snapshot ID.
func answer(res result) string {
	var a []string
	if _, ok := res["count"]; ok {
		a = append(a, fmt.Sprintf("count=%d", res.num("count")))
	}
	if w := res.obj("writer"); w != nil {
		a = append(a, "writer="+w.str("name"))
		if st := w.str("state"); st != "" {
			a = append(a, st, w.str("failure"))
		}
	}
	for _, k := range []string{"snapshot_set_id", "snapshot_id", "exposed_name"} {
		if v := res.str(k); v != "" {
			a = append(a, k+"="+v)
		}
	}
	if _, ok := res["deleted"]; ok {
		a = append(a, fmt.Sprintf("deleted=%d", res.num("deleted")))
	}
	if len(a) == 0 {
		return ""
	}
	return "[" + strings.Join(a, " ") + "] "
}

// okLine is a step expecting S_OK.
func okLine(line string) step { return step{line: line, hr: sOK} }

// waitAndCheck is an async call as both requesters make it: started, then
// Wait (vshadow: INFINITE; restic: its remaining time, given as timeout),
// then QueryStatus, each reporting the operation finished.
func waitAndCheck(call, timeout string) []step {
	wait := "Wait $ASYNC"
	if timeout != "" {
		wait += " " + timeout
	}
	return []step{
		{line: call + " &", hr: sOK, async: pending},
		{line: wait, hr: sOK, async: finished},
		{line: "QueryStatus $ASYNC", hr: sOK, async: finished},
	}
}

// count checks a result's count.
func count(n int) func(checkT, *scriptRun, result) {
	return func(t checkT, _ *scriptRun, res result) {
		t.Helper()
		if res.num("count") != n {
			t.Errorf("%s: count %d, want %d", res.str("call"), res.num("count"), n)
		}
	}
}

// seqRig is lvssd with the copy provider on two directories, vol1 and
// vol2, and three logwriter processes: alpha and beta with their data on
// vol1, gamma with its data on vol2. Each writer has one selectable
// file-group component, "data", at the root logical path.
type seqRig struct {
	d          *daemon
	vol1, vol2 string
	writers    []*seqWriter // in GetWriterMetadata's order (by name)
}

type seqWriter struct {
	name, vol, data string
	lw              *lvssdtest.LogWriter
	instance        string
}

func newSeqRig(t *testing.T) *seqRig {
	t.Helper()
	return newSeqRigWith(t, shortTimeouts, "")
}

// newSeqRigWith is newSeqRig with lvssd's [timeouts] section and more keys
// for [providers.copy].
func newSeqRigWith(t *testing.T, timeouts, copyKeys string) *seqRig {
	t.Helper()
	return newSeqRigArgs(t, timeouts, copyKeys, nil)
}

// newSeqRigArgs is newSeqRigWith with more logwriter arguments per writer
// name.
func newSeqRigArgs(t *testing.T, timeouts, copyKeys string, extra map[string][]string) *seqRig {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &seqRig{vol1: filepath.Join(base, "vol1"), vol2: filepath.Join(base, "vol2")}
	r.d = startDaemon(t, timeouts+fmt.Sprintf("\n[providers.copy]\nvolumes = [%q, %q]\n", r.vol1, r.vol2)+copyKeys)
	for _, w := range []struct{ name, vol string }{{"alpha", r.vol1}, {"beta", r.vol1}, {"gamma", r.vol2}} {
		sw := &seqWriter{name: w.name, vol: w.vol, data: filepath.Join(w.vol, w.name)}
		if err := os.MkdirAll(sw.data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sw.data, "file-"+w.name), []byte(w.name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		log := filepath.Join(r.d.dir, w.name+".events")
		args := append([]string{"--socket", r.d.socket, "--name", w.name, "--level", "front-end",
			"--path", sw.data, "--log", log}, extra[w.name]...)
		p := start(t, r.d.dir, "logwriter "+w.name, args...)
		sw.lw = &lvssdtest.LogWriter{Name: w.name, Log: log, Proc: p}
		r.writers = append(r.writers, sw)
	}
	r.d.waitWriters(t, len(r.writers))
	for _, l := range r.listWriters(t) {
		if w := r.writer(l.Name); w != nil {
			w.instance = l.InstanceID.String()
		}
	}
	return r
}

func (r *seqRig) listWriters(t *testing.T) []client.WriterInfo {
	t.Helper()
	ctx := context.Background()
	conn, err := client.Dial(ctx, r.d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ws, err := conn.ListWriters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func (r *seqRig) writer(name string) *seqWriter {
	for _, w := range r.writers {
		if w.name == name {
			return w
		}
	}
	return nil
}

func (r *seqRig) names() []string {
	var n []string
	for _, w := range r.writers {
		n = append(n, w.name)
	}
	return n
}

// component names w's component for AddComponent and SetBackupSucceeded,
// with the variables GetWriterMetadata(i) bound for it.
func (r *seqRig) component(w *seqWriter) string {
	n := slices.Index(r.writers, w) + 1
	return fmt.Sprintf(`$INSTANCE_ID_%d $WRITER_ID_%d VSS_CT_FILEGROUP "" data`, n, n)
}

// states is every writer's status: state for the selected ones, STABLE
// for the others, none failed.
func (r *seqRig) states(selected []*seqWriter, state string) map[string]wantWriter {
	m := map[string]wantWriter{}
	for _, w := range r.writers {
		m[w.name] = wantWriter{wsStable, sOK}
		if slices.Contains(selected, w) {
			m[w.name] = wantWriter{state, sOK}
		}
	}
	return m
}

// checkEvents compares each writer's event log with what it must have got
// (nothing for writers not named). The run's Release result came after
// lvssd released the session, which it does once the writers it sent
// anything have answered, so the logs are complete.
func (r *seqRig) checkEvents(t *testing.T, want map[string][]string) {
	t.Helper()
	for _, w := range r.writers {
		if got := w.lw.Events(t); !slices.Equal(got, want[w.name]) {
			t.Errorf("writer %s got events %v, want %v", w.name, got, want[w.name])
		}
	}
}

// checkRelease compares what the Release result says with the writers
// that took part (BackupShutdown), the snapshots that go with the session
// (auto-release), and whether the writers got Abort because the creation
// ended without a set.
func (r *seqRig) checkRelease(t *testing.T, run *scriptRun, shutdown []*seqWriter, deleted []string, aborted bool) {
	t.Helper()
	if run.release == nil {
		return
	}
	var want []string
	for _, w := range shutdown {
		want = append(want, w.instance)
	}
	got := run.release.strs("shutdown_writers")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Release: BackupShutdown to %v, want %v (the writers that took part)", got, want)
	}
	gotDel := run.release.strs("deleted_snapshots")
	slices.Sort(gotDel)
	wantDel := slices.Clone(deleted)
	slices.Sort(wantDel)
	if !slices.Equal(gotDel, wantDel) {
		t.Errorf("Release: deleted snapshots %v, want %v", gotDel, wantDel)
	}
	if run.release["aborted"] != aborted {
		t.Errorf("Release: aborted %v, want %t", run.release["aborted"], aborted)
	}
}

// vshadow holds the vshadow.exe options that decide its calls.
type vshadow struct {
	p, nw  bool     // -p, -nw
	bc     bool     // -bc=FILE
	wi, wx []string // -wi=WRITER[:COMPONENT], -wx=...
	// execFails: -exec=CMD is given and CMD fails.
	execFails bool
}

// context is shadow.cpp's UpdateFinalContext.
func (o vshadow) context() string {
	switch {
	case o.p && o.nw:
		return "VSS_CTX_NAS_ROLLBACK"
	case o.p:
		return "VSS_CTX_APP_ROLLBACK"
	case o.nw:
		return "VSS_CTX_FILE_SHARE_BACKUP"
	}
	return "VSS_CTX_BACKUP"
}

// initialize is vssclient.cpp's VssClient::Initialize for a backup.
func initialize(ctx string) []step {
	s := []step{okLine("InitializeForBackup")}
	if ctx != "VSS_CTX_BACKUP" {
		s = append(s, okLine("SetContext "+ctx))
	}
	return append(s, okLine("SetBackupState true true VSS_BT_FULL false"))
}

// gatherWriterMetadata is writer.cpp's GatherWriterMetadata with
// InitializeWriterMetadata: every writer that answers Identify, by name.
func gatherWriterMetadata(names []string) []step {
	s := waitAndCheck("GatherWriterMetadata", "")
	s = append(s, step{line: "GetWriterMetadataCount", hr: sOK, check: count(len(names))})
	for i, name := range names {
		s = append(s, step{line: fmt.Sprintf("GetWriterMetadata %d", i), hr: sOK,
			check: func(t checkT, _ *scriptRun, res result) {
				t.Helper()
				if got := res.obj("writer").str("name"); got != name {
					t.Errorf("GetWriterMetadata %d: writer %q, want %q (by name)", i, got, name)
				}
			}})
	}
	return s
}

// gatherWriterStatus is GatherWriterStatus (writer.cpp) followed by the status
// list CheckSelectedWriterStatus (select.cpp) and ListWriterStatus
// (writer.cpp) read: every gathered writer's status is want[its name].
func gatherWriterStatus(want map[string]wantWriter) []step {
	s := waitAndCheck("GatherWriterStatus", "")
	s = append(s, step{line: "GetWriterStatusCount", hr: sOK, check: count(len(want))})
	seen := map[string]int{}
	for i := range len(want) {
		s = append(s, step{line: fmt.Sprintf("GetWriterStatus %d", i), hr: sOK, state: want,
			check: func(t checkT, _ *scriptRun, res result) {
				t.Helper()
				name := res.obj("writer").str("name")
				if j, dup := seen[name]; dup && j != i {
					t.Errorf("GetWriterStatus %d and %d both return writer %s", j, i, name)
				}
				seen[name] = i
			}})
	}
	return s
}

// plan is a script with what it must leave behind.
type plan struct {
	steps    []step
	selected []*seqWriter // writers whose component is added
	// abandoned: vshadow gives up after these steps (a -wi check failed).
	abandoned bool
}

// selectComponents is select.cpp's SelectComponentsForBackup for the rig,
// whose writers each have one selectable top-level component "data": a
// writer is excluded when -wx names it or its component ("name:\data"),
// or when its component's files lie on a volume outside the set
// (DiscoverNonShadowedExcludedComponents); every other writer's component
// is explicitly included. A -wi naming an excluded writer or its component
// finds nothing and throws E_INVALIDARG (VerifyExplicitelyIncludedWriter /
// ...Component): ok is false.
func (o vshadow) selectComponents(r *seqRig, volumes []string) (selected []*seqWriter, ok bool) {
	for _, w := range r.writers {
		if slices.Contains(o.wx, w.name) || slices.Contains(o.wx, w.name+`:\data`) || !slices.Contains(volumes, w.vol) {
			continue
		}
		selected = append(selected, w)
	}
	for _, wi := range o.wi {
		name, _, _ := strings.Cut(wi, ":")
		if !slices.ContainsFunc(selected, func(w *seqWriter) bool { return w.name == name }) {
			return nil, false
		}
	}
	return selected, true
}

// create is vshadow's create path (shadow.cpp, create.cpp) for volumes.
func (o vshadow) create(r *seqRig, volumes ...string) plan {
	ctx := o.context()
	withWriters := !o.nw
	s := initialize(ctx)
	var sel []*seqWriter
	if withWriters {
		s = append(s, gatherWriterMetadata(r.names())...)
		var ok bool
		if sel, ok = o.selectComponents(r, volumes); !ok {
			return plan{steps: s, abandoned: true}
		}
		for _, w := range sel {
			s = append(s, step{line: "AddComponent " + r.component(w), hr: sOK})
		}
	}
	s = append(s, step{line: "StartSnapshotSet", hr: sOK})
	for _, v := range volumes {
		s = append(s, step{line: "AddToSnapshotSet " + v + " GUID_NULL", hr: sOK})
	}
	if withWriters {
		s = append(s, waitAndCheck("PrepareForBackup", "")...)
		s = append(s, gatherWriterStatus(r.states(sel, wsStable))...)
	}
	s = append(s, waitAndCheck("DoSnapshotSet", "")...)
	if withWriters {
		s = append(s, gatherWriterStatus(r.states(sel, wsWaitBC))...)
	}
	if o.bc {
		s = append(s, step{line: "SaveAsXML", hr: sOK, check: bcdOf(r, sel)})
	}
	s = append(s, step{line: queryAll, hr: sOK, check: querySessionSet(ctx)})
	if withWriters {
		// -exec: the command runs here, between Query and BackupComplete.
		s = append(s, step{line: "GetWriterComponentsCount", hr: sOK, check: count(len(sel))})
		if len(sel) > 0 {
			for _, w := range sel {
				s = append(s, step{line: fmt.Sprintf("SetBackupSucceeded %s %t", r.component(w), !o.execFails), hr: sOK})
			}
			s = append(s, waitAndCheck("BackupComplete", "")...)
			s = append(s, gatherWriterStatus(r.states(sel, wsStable))...)
		}
	}
	return plan{steps: s, selected: sel}
}

// querySessionSet checks vshadow's QuerySnapshotSet right after creation:
// Query in the session's context lists the set's snapshots, made in that
// context.
func querySessionSet(ctx string) func(checkT, *scriptRun, result) {
	return func(t checkT, r *scriptRun, res result) {
		t.Helper()
		var got []string
		for _, sn := range res.list("snapshots") {
			if sn.str("context") != ctx {
				t.Errorf("Query in %s lists snapshot %s of context %s", ctx, sn.str("snapshot_id"), sn.str("context"))
			}
			checkAttributes(t, sn)
			if sn.str("snapshot_set_id") == r.setID {
				got = append(got, sn.str("snapshot_id"))
				if sn.num("snapshots_count") != len(r.snapshots) {
					t.Errorf("Query: snapshot %s: snapshots_count %d, want %d", sn.str("snapshot_id"), sn.num("snapshots_count"), len(r.snapshots))
				}
			}
		}
		if !sameSet(got, r.snapshots) {
			t.Errorf("Query lists %v of set %s, want the snapshots added: %v", got, r.setID, r.snapshots)
		}
	}
}

// bcdOf checks the Backup Components Document vshadow -bc saves after
// DoSnapshotSet: the backup state, the set, and the components of the
// selected writers with what those writers wrote into them (logwriter's
// stamp and metadata), and nothing of the other writers.
func bcdOf(r *seqRig, selected []*seqWriter) func(checkT, *scriptRun, result) {
	return func(t checkT, run *scriptRun, res result) {
		t.Helper()
		x := res.str("xml")
		// Initialize's SetBackupState(true, true, VSS_BT_FULL, false), and
		// the set.
		for _, a := range []string{`selectComponents="yes"`, `bootableSystemStateBackup="yes"`, `backupType="full"`,
			`partialFileSupport="no"`, `snapshotSetId="` + run.setID + `"`} {
			if !strings.Contains(x, a) {
				t.Errorf("SaveAsXML lacks %s:\n%s", a, x)
			}
		}
		for _, w := range r.writers {
			in := slices.Contains(selected, w)
			for _, edit := range []string{`instanceId="` + w.instance + `"`, w.name + "-stamp", w.name + "-metadata"} {
				if strings.Contains(x, edit) != in {
					t.Errorf("SaveAsXML: %q present %t, want %t (writer %s selected: %t):\n%s", edit, !in, in, w.name, in, x)
				}
			}
		}
	}
}

// unmountIfMounted undoes an exposure a failed test left behind, so
// that the temporary directory can be removed.
func unmountIfMounted(dir string) {
	_ = syscall.Unmount(dir, syscall.MNT_DETACH)
}

// contextBits are the attribute bits of each context the sequences use
// (vss-reference §1.4), which vshadow prints from each snapshot's attributes.
var contextBits = map[string]uint64{
	"VSS_CTX_BACKUP":            0,
	"VSS_CTX_FILE_SHARE_BACKUP": 0x10, // NO_WRITERS
	"VSS_CTX_NAS_ROLLBACK":      0x19, // PERSISTENT, NO_AUTO_RELEASE, NO_WRITERS
	"VSS_CTX_APP_ROLLBACK":      0x09, // PERSISTENT, NO_AUTO_RELEASE
}

// checkAttributes checks that a snapshot (as Query or GetSnapshotProperties
// shows it) carries its context's attribute bits, and is auto-release
// exactly when NO_AUTO_RELEASE is not among them.
func checkAttributes(t checkT, sn result) {
	t.Helper()
	bits, known := contextBits[sn.str("context")]
	var attrs uint64
	if _, err := fmt.Sscanf(sn.str("attributes_value"), "0x%x", &attrs); err != nil || !known {
		t.Errorf("snapshot %s: context %q, attributes %q", sn.str("snapshot_id"), sn.str("context"), sn.str("attributes_value"))
		return
	}
	if attrs&bits != bits || attrs&0x19 != bits&0x19 {
		t.Errorf("snapshot %s of %s: attributes %s (%s), want the context's bits %#x", sn.str("snapshot_id"), sn.str("context"),
			sn.str("attributes_value"), sn.str("attributes"), bits)
	}
	if sn["auto_release"] != (bits&0x8 == 0) {
		t.Errorf("snapshot %s of %s: auto_release %v", sn.str("snapshot_id"), sn.str("context"), sn["auto_release"])
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// createEvents is what each writer gets from a vshadow create: the whole
// sequence for the selected writers (BackupComplete(false) sends
// BackupComplete too), nothing for the others.
func createEvents(p plan) map[string][]string {
	m := map[string][]string{}
	for _, w := range p.selected {
		m[w.name] = fullSequence
	}
	return m
}

// TestVshadowCreate runs vshadow's create path with writers (VSS_CTX_BACKUP,
// component mode) for its options: the volume list, -wi, -wx, -bc and
// -exec with a command that succeeds and one that fails.
func TestVshadowCreate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  vshadow
		vols func(*seqRig) []string
	}{
		// alpha and beta selected, gamma excluded: its data is on vol2.
		{"vol1", vshadow{}, func(r *seqRig) []string { return []string{r.vol1} }},
		{"vol1 vol2", vshadow{}, func(r *seqRig) []string { return []string{r.vol1, r.vol2} }},
		{"-wi=alpha", vshadow{wi: []string{"alpha"}}, func(r *seqRig) []string { return []string{r.vol1} }},
		{`-wi=beta:\data`, vshadow{wi: []string{`beta:\data`}}, func(r *seqRig) []string { return []string{r.vol1} }},
		// gamma is not included (its data is outside the set): vshadow
		// gives up after reading the metadata.
		{"-wi=gamma", vshadow{wi: []string{"gamma"}}, func(r *seqRig) []string { return []string{r.vol1} }},
		{"-wx=beta", vshadow{wx: []string{"beta"}}, func(r *seqRig) []string { return []string{r.vol1} }},
		// Nothing selected: GetWriterComponentsCount is 0, no BackupComplete.
		{`-wx=alpha:\data -wx=beta`, vshadow{wx: []string{`alpha:\data`, "beta"}}, func(r *seqRig) []string { return []string{r.vol1} }},
		{"-bc", vshadow{bc: true}, func(r *seqRig) []string { return []string{r.vol1} }},
		{"-exec succeeds", vshadow{}, func(r *seqRig) []string { return []string{r.vol1} }},
		{"-exec fails", vshadow{execFails: true}, func(r *seqRig) []string { return []string{r.vol1} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSeqRig(t)
			p := tc.opt.create(r, tc.vols(r)...)
			run := runScript(t, r.d.socket, p.steps)
			r.checkEvents(t, createEvents(p))
			// Auto-release: the set goes with the session.
			r.checkRelease(t, run, p.selected, run.snapshots, false)
			if p.abandoned && run.setID != "" {
				t.Errorf("vshadow gave up before StartSnapshotSet, yet a set %s was started", run.setID)
			}
		})
	}
}

// TestVshadowPersistent runs vshadow -p (VSS_CTX_APP_ROLLBACK: persistent,
// with writers): the set survives the session, and vshadow -q in a new
// session lists it.
func TestVshadowPersistent(t *testing.T) {
	r := newSeqRig(t)
	p := vshadow{p: true}.create(r, r.vol1)
	run := runScript(t, r.d.socket, p.steps)
	r.checkEvents(t, createEvents(p))
	r.checkRelease(t, run, p.selected, nil, false)
	q := runScript(t, r.d.socket, vshadowQuery(run.snapshots, "VSS_CTX_APP_ROLLBACK"))
	r.checkRelease(t, q, nil, nil, false)
}

// TestVshadowNoWriters runs vshadow -nw (VSS_CTX_FILE_SHARE_BACKUP) and
// vshadow -p -nw (VSS_CTX_NAS_ROLLBACK): no writer call, no writer event;
// the first set goes with its session, the second survives it.
func TestVshadowNoWriters(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  vshadow
	}{
		{"-nw -bc", vshadow{nw: true, bc: true}},
		{"-p -nw -bc", vshadow{p: true, nw: true, bc: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSeqRig(t)
			p := tc.opt.create(r, r.vol1, r.vol2)
			run := runScript(t, r.d.socket, p.steps)
			r.checkEvents(t, nil)
			var deleted, left []string
			if tc.opt.p {
				left = run.snapshots
			} else {
				deleted = run.snapshots
			}
			r.checkRelease(t, run, nil, deleted, false)
			q := runScript(t, r.d.socket, vshadowQuery(left, tc.opt.context()))
			r.checkRelease(t, q, nil, nil, false)
		})
	}
}

// vshadowQuery is vshadow -q: every snapshot of the system (VSS_CTX_ALL);
// S_FALSE and an empty list when there is none (D20). want are the
// snapshots there must be; ctx, if set, the context each was made in.
func vshadowQuery(want []string, ctx string) []step {
	s := initialize("VSS_CTX_ALL")
	if len(want) == 0 {
		return append(s, step{line: queryAll, hr: sFalse, check: count(0)})
	}
	return append(s, step{line: queryAll, hr: sOK, check: func(t checkT, _ *scriptRun, res result) {
		t.Helper()
		var got []string
		for _, sn := range res.list("snapshots") {
			got = append(got, sn.str("snapshot_id"))
			checkAttributes(t, sn)
			if ctx != "" && sn.str("context") != ctx {
				t.Errorf("Query: snapshot %s has context %s, want %s", sn.str("snapshot_id"), sn.str("context"), ctx)
			}
		}
		if !sameSet(got, want) || res.num("count") != len(want) {
			t.Errorf("Query in VSS_CTX_ALL: count %d, snapshots %v, want %v", res.num("count"), got, want)
		}
	}})
}

// vshadowDelete is vshadow -ds (one snapshot) or -dx (a set): one
// DeleteSnapshots that deletes n snapshots.
func vshadowDelete(id, objectType string, n int) []step {
	return append(initialize("VSS_CTX_ALL"), step{line: fmt.Sprintf("DeleteSnapshots %s %s false", id, objectType), hr: sOK, check: deleted(n)})
}

// deleted checks a DeleteSnapshots result: n deleted, none left.
func deleted(n int) func(checkT, *scriptRun, result) {
	return func(t checkT, _ *scriptRun, res result) {
		t.Helper()
		if res.num("deleted") != n || res.str("non_deleted_snapshot_id") != guidNull {
			t.Errorf("DeleteSnapshots: deleted %d, non-deleted %s; want %d and GUID_NULL", res.num("deleted"), res.str("non_deleted_snapshot_id"), n)
		}
	}
}

// TestVshadowAdmin runs vshadow's administrative modes against sets made by
// vshadow -p -nw and -p: -q with nothing there (S_FALSE) and with
// snapshots, -qx, -s, -el, -wm, -ws (with a writer that fails Identify,
// L30), -do, -ds, -dx and -da, and -q once more.
func TestVshadowAdmin(t *testing.T) {
	r := newSeqRig(t)
	runScript(t, r.d.socket, vshadowQuery(nil, ""))

	create := func(o vshadow, vols ...string) *scriptRun {
		t.Helper()
		p := o.create(r, vols...)
		run := runScript(t, r.d.socket, p.steps)
		r.checkRelease(t, run, p.selected, nil, false)
		if len(run.snapshots) != len(vols) {
			t.Fatalf("vshadow %+v: %d snapshots made, want %d", o, len(run.snapshots), len(vols))
		}
		return run
	}
	a := create(vshadow{p: true, nw: true}, r.vol1)         // a1 on vol1: the oldest of vol1
	b := create(vshadow{p: true, nw: true}, r.vol1, r.vol2) // b1 on vol1, b2 on vol2
	c := create(vshadow{p: true}, r.vol2)                   // c1 on vol2, gamma takes part
	all := slices.Concat(a.snapshots, b.snapshots, c.snapshots)

	// -q, and -qx=B: the same Query; vshadow picks the set out itself.
	runScript(t, r.d.socket, vshadowQuery(all, ""))
	qx := initialize("VSS_CTX_ALL")
	qx = append(qx, step{line: queryAll, hr: sOK, check: func(t checkT, _ *scriptRun, res result) {
		t.Helper()
		var got []string
		for _, sn := range res.list("snapshots") {
			if sn.str("snapshot_set_id") == b.setID {
				got = append(got, sn.str("snapshot_id"))
			}
		}
		if !sameSet(got, b.snapshots) {
			t.Errorf("Query: set %s holds %v, want %v", b.setID, got, b.snapshots)
		}
	}})
	runScript(t, r.d.socket, qx)

	// -s=b2
	runScript(t, r.d.socket, append(initialize("VSS_CTX_ALL"), step{line: "GetSnapshotProperties " + b.snapshots[1], hr: sOK,
		check: func(t checkT, _ *scriptRun, res result) {
			t.Helper()
			sn := res.obj("snapshot")
			checkAttributes(t, sn)
			if sn.str("snapshot_id") != b.snapshots[1] || sn.str("snapshot_set_id") != b.setID ||
				sn.str("original_volume") != r.vol2 || sn.str("context") != "VSS_CTX_NAS_ROLLBACK" || sn.num("snapshots_count") != 2 {
				t.Errorf("GetSnapshotProperties %s: %v", b.snapshots[1], sn)
			}
		}}))

	// -el=a1,DIR: GetSnapshotProperties, then ExposeSnapshot at an empty
	// directory. The copy provider exposes with a bind mount (root only).
	t.Run("-el", func(t *testing.T) {
		testenv.RequireRoot(t)
		dir := filepath.Join(r.d.dir, "exposed")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unmountIfMounted(dir) })
		el := append(initialize("VSS_CTX_ALL"),
			step{line: "GetSnapshotProperties " + a.snapshots[0], hr: sOK},
			step{line: fmt.Sprintf(`ExposeSnapshot %s "" VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY %s`, a.snapshots[0], dir), hr: sOK,
				check: func(t checkT, _ *scriptRun, res result) {
					t.Helper()
					if res.str("exposed_name") != dir {
						t.Errorf("ExposeSnapshot: exposed_name %q, want %q", res.str("exposed_name"), dir)
					}
				}})
		runScript(t, r.d.socket, el)
		if content, err := os.ReadFile(filepath.Join(dir, "alpha", "file-alpha")); err != nil || string(content) != "alpha\n" {
			t.Errorf("the exposed snapshot does not show alpha's file: %q %v", content, err)
		}
	})

	// -wm and -ws (VSS_CTX_BACKUP). A fourth writer, an exec writer whose
	// component does not exist, fails every Identify: GatherWriterMetadata
	// leaves it out, GatherWriterStatus shows it FAILED_AT_IDENTIFY with
	// its failure (L30; the SDK makes a plain error NONRETRYABLE, vss-reference §3.4).
	runScript(t, r.d.socket, append(initialize("VSS_CTX_BACKUP"), gatherWriterMetadata(r.names())...))
	start(t, r.d.dir, "lvss-writer delta", "--socket", r.d.socket, "exec", "--name", "delta",
		"--component", "data="+filepath.Join(r.vol1, "missing"), "--tmpdir", "/dev/shm")
	eventually(t, 15*time.Second, "writer delta to subscribe", func() bool { return len(r.listWriters(t)) == 4 })
	ws := append(initialize("VSS_CTX_BACKUP"), gatherWriterMetadata(r.names())...)
	states := r.states(nil, wsStable)
	states["delta"] = wantWriter{wsFailedID, "VSS_E_WRITERERROR_NONRETRYABLE"}
	ws = append(ws, gatherWriterStatus(states)...)
	r.checkRelease(t, runScript(t, r.d.socket, ws), nil, nil, false)

	// -do=vol1: the oldest snapshot of vol1 is a1 (exposed: deleting it
	// unexposes it).
	do := append(initialize("VSS_CTX_ALL"), step{line: queryAll, hr: sOK, check: func(t checkT, _ *scriptRun, res result) {
		t.Helper()
		oldest, at := "", time.Time{}
		for _, sn := range res.list("snapshots") {
			ts, err := time.Parse(time.RFC3339Nano, sn.str("created"))
			if err != nil {
				t.Errorf("snapshot %s: created %q: %v", sn.str("snapshot_id"), sn.str("created"), err)
			}
			if sn.str("original_volume") == r.vol1 && (oldest == "" || ts.Before(at)) {
				oldest, at = sn.str("snapshot_id"), ts
			}
		}
		if oldest != a.snapshots[0] {
			t.Errorf("Query: the oldest snapshot of %s is %s, want %s", r.vol1, oldest, a.snapshots[0])
		}
	}}, step{line: "DeleteSnapshots " + a.snapshots[0] + " VSS_OBJECT_SNAPSHOT false", hr: sOK, check: deleted(1)})
	runScript(t, r.d.socket, do)

	// -ds=b2, then -dx=B deletes what is left of B (b1).
	runScript(t, r.d.socket, vshadowDelete(b.snapshots[1], "VSS_OBJECT_SNAPSHOT", 1))
	runScript(t, r.d.socket, vshadowDelete(b.setID, "VSS_OBJECT_SNAPSHOT_SET", 1))

	// -da, with one more set there: Query, then one DeleteSnapshots per
	// snapshot listed.
	d := create(vshadow{p: true, nw: true}, r.vol1, r.vol2)
	left := slices.Concat(c.snapshots, d.snapshots)
	da := vshadowQuery(left, "")
	for _, id := range left {
		da = append(da, step{line: "DeleteSnapshots " + id + " VSS_OBJECT_SNAPSHOT false", hr: sOK, check: deleted(1)})
	}
	runScript(t, r.d.socket, da)
	runScript(t, r.d.socket, vshadowQuery(nil, ""))

	// Only c took writers: gamma, the whole sequence.
	r.checkEvents(t, map[string][]string{"gamma": fullSequence})
}

// resticTimeout is restic's default VSS timeout (2 minutes), what its
// Wait calls get at most.
const resticTimeout = "120000"

// restic is restic's NewVssSnapshot (vss_windows.go) for one volume, up
// to and including DoSnapshotSet. If the DoSnapshotSet operation fails
// with doFails, Wait and QueryStatus report that failure (D17: `lvss call`
// gives a waited operation's error as the line's HRESULT and async_status,
// where Windows' Wait returns S_OK and QueryStatus S_OK with the error as
// its status; restic treats both alike) and restic calls AbortBackup before
// it releases the session.
func restic(r *seqRig, doFails string) []step {
	s := resticStart(r)
	s = append(s, waitAndCheck("PrepareForBackup", resticTimeout)...)
	if doFails == "" {
		return append(s, waitAndCheck("DoSnapshotSet", resticTimeout)...)
	}
	return append(s,
		step{line: "DoSnapshotSet &", hr: sOK, async: pending},
		step{line: "Wait $ASYNC " + resticTimeout, hr: doFails, async: doFails},
		step{line: "QueryStatus $ASYNC", hr: doFails, async: doFails},
		okLine("AbortBackup"))
}

// resticStart is restic's NewVssSnapshot up to AddToSnapshotSet.
func resticStart(r *seqRig) []step {
	s := []step{okLine("InitializeForBackup"), okLine("SetContext VSS_CTX_BACKUP"), okLine("SetBackupState false false VSS_BT_COPY false")}
	s = append(s, waitAndCheck("GatherWriterMetadata", resticTimeout)...)
	s = append(s, step{line: "IsVolumeSupported GUID_NULL " + r.vol1, hr: sOK, check: func(t checkT, _ *scriptRun, res result) {
		t.Helper()
		if res["supported"] != true {
			t.Errorf("IsVolumeSupported: supported %v, want true", res["supported"])
		}
	}})
	return append(s, okLine("StartSnapshotSet"), okLine("AddToSnapshotSet "+r.vol1+" GUID_NULL"))
}

// TestResticBackup runs restic's VSS sequence: non-component mode, so every
// writer takes part, whatever volume its data is on; the snapshot is
// deleted by the requester before it releases the session.
func TestResticBackup(t *testing.T) {
	r := newSeqRig(t)
	s := restic(r, "")
	s = append(s, step{line: "GetSnapshotProperties $SNAPSHOT_ID", hr: sOK, check: func(t checkT, run *scriptRun, res result) {
		t.Helper()
		sn := res.obj("snapshot")
		checkAttributes(t, sn)
		if sn.str("snapshot_id") != run.snapshots[0] || sn.str("original_volume") != r.vol1 ||
			sn.str("device_path") == "" || sn.str("context") != "VSS_CTX_BACKUP" || sn["auto_release"] != true {
			t.Errorf("GetSnapshotProperties: %v", sn)
		}
	}})
	// (restic backs the files up here.) Then VssSnapshot.Delete:
	s = append(s, waitAndCheck("BackupComplete", resticTimeout)...)
	s = append(s, step{line: "DeleteSnapshots $SNAPSHOT_ID VSS_OBJECT_SNAPSHOT true", hr: sOK, check: deleted(1)})
	run := runScript(t, r.d.socket, s)

	r.checkEvents(t, map[string][]string{"alpha": fullSequence, "beta": fullSequence, "gamma": fullSequence})
	// Deleted already: nothing goes with the session.
	r.checkRelease(t, run, r.writers, nil, false)
	// After BackupComplete every writer is STABLE again (lvss list writers
	// shows the state of the last session it took part in, D16).
	r.checkListedStable(t)
	runScript(t, r.d.socket, vshadowQuery(nil, ""))
}

// TestResticDoSnapshotSetFails runs restic's sequence when the provider
// refuses the set (the copy provider's max_bytes, VSS_E_INSUFFICIENT_STORAGE
// at EndPrepareSnapshots, vss-reference §7.3 ②): the failure reaches the requester
// through Wait and QueryStatus (D17), restic calls AbortBackup and
// releases the session. Every writer took part, got Abort after
// PrepareForSnapshot (L4) and BackupShutdown, and is STABLE again (L5).
func TestResticDoSnapshotSetFails(t *testing.T) {
	r := newSeqRigWith(t, shortTimeouts, "max_bytes = \"1\"\n")
	run := runScript(t, r.d.socket, restic(r, "VSS_E_INSUFFICIENT_STORAGE"), "--keep-going")
	aborted := []string{"PrepareForBackup", "PrepareForSnapshot", "Abort", "BackupShutdown"}
	r.checkEvents(t, map[string][]string{"alpha": aborted, "beta": aborted, "gamma": aborted})
	r.checkRelease(t, run, r.writers, nil, true)
	r.checkListedStable(t)
	runScript(t, r.d.socket, vshadowQuery(nil, ""))
}

// TestResticPrepareForBackupCancelled runs restic's sequence when an async
// operation outlasts restic's VSS timeout: Wait returns with the operation
// still pending, QueryStatus says so, restic calls Cancel, then (as for any
// failure of PrepareForBackup) AbortBackup, and releases the session. A
// fourth writer, an exec writer whose prepare-backup hook waits for a file
// the test never creates, keeps PrepareForBackup pending; Cancel is taken
// while it runs (S_OK, L10). Every writer got PrepareForBackup, then Abort
// (AbortBackup in `set`, L2) and BackupShutdown; the exec writer's hook is
// stopped by that Abort.
func TestResticPrepareForBackupCancelled(t *testing.T) {
	// lvssd's own deadline for PrepareForBackup far beyond restic's timeout,
	// so that only Cancel and Abort end the operation.
	r := newSeqRigWith(t, strings.Replace(shortTimeouts, `prepare_backup = "5s"`, `prepare_backup = "60s"`, 1), "")
	data := filepath.Join(r.vol1, "slow")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	log, gate := filepath.Join(r.d.dir, "slow.events"), filepath.Join(r.d.dir, "gate")
	t.Cleanup(func() { _ = os.WriteFile(gate, nil, 0o644) })
	args := []string{"--socket", r.d.socket, "exec", "--name", "slow", "--component", "data=" + data, "--tmpdir", "/dev/shm",
		"--on-prepare-backup", fmt.Sprintf(`echo prepare-backup >> %s; while [ ! -e %s ]; do sleep 0.05; done`, log, gate)}
	for _, ev := range []string{"prepare-snapshot", "freeze", "thaw", "post-snapshot", "abort", "backup-complete", "backup-shutdown"} {
		args = append(args, "--on-"+ev, fmt.Sprintf("echo %s >> %s", ev, log))
	}
	start(t, r.d.dir, "lvss-writer slow", args...)
	r.d.waitWriters(t, 4)
	slow := &seqWriter{name: "slow"}
	for _, w := range r.listWriters(t) {
		if w.Name == "slow" {
			slow.instance = w.InstanceID.String()
		}
	}

	// restic's timeout (200 ms, say, with -o vss.timeout) passes first.
	s := append(resticStart(r),
		step{line: "PrepareForBackup &", hr: sOK, async: pending},
		step{line: "Wait $ASYNC 200", hr: sOK, async: pending},
		step{line: "QueryStatus $ASYNC", hr: sOK, async: pending},
		step{line: "Cancel $ASYNC", hr: sOK},
		okLine("AbortBackup"))
	run := runScript(t, r.d.socket, s)

	aborted := []string{"PrepareForBackup", "Abort", "BackupShutdown"}
	r.checkEvents(t, map[string][]string{"alpha": aborted, "beta": aborted, "gamma": aborted})
	b, _ := os.ReadFile(log)
	if got, want := strings.Fields(string(b)), []string{"prepare-backup", "abort", "backup-shutdown"}; !slices.Equal(got, want) {
		t.Errorf("writer slow ran hooks %v, want %v", got, want)
	}
	r.checkRelease(t, run, append(slices.Clone(r.writers), slow), nil, true)
	runScript(t, r.d.socket, vshadowQuery(nil, ""))
}

// checkListedStable checks that `lvss list writers` (D16: each writer's
// state in the last session it took part in) shows every writer STABLE.
func (r *seqRig) checkListedStable(t *testing.T) {
	t.Helper()
	for _, w := range r.listWriters(t) {
		if w.State.String() != wsStable || w.Failure.Failed() {
			t.Errorf("lvss list writers: %s %s %s, want %s", w.Name, w.State, w.Failure, wsStable)
		}
	}
}
