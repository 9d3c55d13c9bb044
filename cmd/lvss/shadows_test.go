package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/client/clienttest"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

var (
	btrfsID = uuid.MustParse("3f1e7a52-9c4d-4b8e-a1f0-6d2c5b7e9a13")
	t0      = time.Date(2026, 11, 25, 1, 10, 3, 0, time.UTC)
)

// shadow is a catalog entry for the fake daemon.
func shadow(set uuid.UUID, vol string, created time.Time, c vss.Context) *v1.SnapshotProp {
	id := uuid.New()
	return &v1.SnapshotProp{SnapshotId: id.String(), SnapshotSetId: set.String(), SnapshotsCount: 1,
		OriginalVolume: vol, DevicePath: vol + "/.lvss-snapshots/" + id.String(), ProviderId: btrfsID.String(),
		ProviderName: "btrfs", Attributes: uint32(c) | uint32(vss.AttrNotSurfaced), Context: int32(c),
		AutoRelease: c.AutoRelease(), Consistency: "crash", ConsistencyReason: "no application was frozen",
		SessionId: uuid.NewString(), CreatedUnixNano: created.UnixNano(), Status: int32(vss.SnapshotCreated)}
}

func startWithProvider(t *testing.T) *clienttest.Server {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) {
		s.Providers = []*v1.ProviderProp{{ProviderId: btrfsID.String(), Name: "btrfs", Type: int32(vss.ProvSoftware), Version: "1.0"}}
	})
	return srv
}

func jsonArray(t *testing.T, out string) []map[string]any {
	t.Helper()
	var a []map[string]any
	if err := json.Unmarshal([]byte(out), &a); err != nil || a == nil {
		t.Fatalf("not a JSON array: %v\n%s", err, out)
	}
	return a
}

func jsonObject(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, out)
	}
	return m
}

// shadowFields are the fields every snapshot object has (docs/cli.md).
var shadowFields = []string{"snapshot_id", "snapshot_set_id", "snapshots_count", "original_volume", "snapshot_path",
	"provider", "provider_id", "context", "attributes", "attributes_value", "auto_release", "live_session",
	"session_id", "created", "consistency", "consistency_reason", "exposed_path"}

func checkShadowFields(t *testing.T, m map[string]any) {
	t.Helper()
	for _, k := range shadowFields {
		if _, ok := m[k]; !ok {
			t.Errorf("snapshot object lacks %q: %v", k, m)
		}
	}
	if len(m) != len(shadowFields) {
		t.Errorf("snapshot object has %d fields, want %d: %v", len(m), len(shadowFields), m)
	}
	if _, ok := m["attributes"].([]any); !ok {
		t.Errorf("attributes is not a list: %v", m["attributes"])
	}
}

// callsOf is the fake daemon's call list without the Wait calls that
// follow every async method, which say nothing about the sequence.
func callsOf(srv *clienttest.Server) []string {
	return slices.DeleteFunc(srv.Calls(), func(c string) bool { return c == "Wait" })
}

func requestsOf[T any](srv *clienttest.Server, get func(*v1.SessionRequest) T) []T {
	var out []T
	var zero T
	for _, r := range srv.Requests() {
		if v := get(r); any(v) != any(zero) {
			out = append(out, v)
		}
	}
	return out
}

func TestListShadowsEmpty(t *testing.T) {
	srv := clienttest.Start(t)
	code, out, _ := runLvss(t, srv.Socket, "", "list", "shadows", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("exit %d, out %q; want []", code, out)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "list", "shadows")
	if code != 0 || out != "No shadow copies found.\n" {
		t.Fatalf("exit %d, out %q", code, out)
	}
	if got := srv.Calls(); len(got) != 0 {
		t.Fatalf("list shadows made session calls: %v", got)
	}
}

func TestListShadows(t *testing.T) {
	srv := clienttest.Start(t)
	setA, setB := uuid.New(), uuid.New()
	a1 := shadow(setA, "/srv", t0.Add(time.Hour), vss.CtxClientAccessible)
	a2 := shadow(setA, "/home", t0.Add(time.Hour), vss.CtxClientAccessible)
	a1.SnapshotsCount, a2.SnapshotsCount = 2, 2
	a2.ExposedName = "/mnt/home-monday"
	// Another session's auto-release snapshot, older, listed first.
	b1 := shadow(setB, "/srv", t0, vss.CtxBackup)
	b1.LiveSession = true
	srv.Set(func(s *clienttest.Server) { s.Shadows = []*v1.SnapshotProp{a1, a2, b1} })

	code, out, errOut := runLvss(t, srv.Socket, "", "list", "shadows", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	ss := jsonArray(t, out)
	if len(ss) != 3 {
		t.Fatalf("%d snapshots", len(ss))
	}
	for _, s := range ss {
		checkShadowFields(t, s)
	}
	// Sets in creation order, snapshots of a set by volume.
	if ss[0]["snapshot_id"] != b1.SnapshotId || ss[1]["snapshot_id"] != a2.SnapshotId || ss[2]["snapshot_id"] != a1.SnapshotId {
		t.Errorf("order: %v %v %v", ss[0]["original_volume"], ss[1]["original_volume"], ss[2]["original_volume"])
	}
	for k, want := range map[string]any{
		"snapshot_set_id": setB.String(), "original_volume": "/srv", "snapshot_path": b1.DevicePath,
		"provider": "btrfs", "provider_id": btrfsID.String(), "context": "VSS_CTX_BACKUP", "auto_release": true,
		"live_session": true, "session_id": b1.SessionId, "created": "2026-11-25T01:10:03Z", "consistency": "crash",
		"consistency_reason": "no application was frozen", "exposed_path": "", "snapshots_count": 1.0,
	} {
		if ss[0][k] != want {
			t.Errorf("%s = %v, want %v", k, ss[0][k], want)
		}
	}
	if ss[1]["context"] != "VSS_CTX_CLIENT_ACCESSIBLE" || ss[1]["exposed_path"] != "/mnt/home-monday" || ss[1]["auto_release"] != false {
		t.Errorf("client-accessible snapshot: %v", ss[1])
	}
	attrs := ss[1]["attributes"].([]any)
	if !slices.Contains(attrs, any("VSS_VOLSNAP_ATTR_PERSISTENT")) || !slices.Contains(attrs, any("VSS_VOLSNAP_ATTR_NO_WRITERS")) {
		t.Errorf("attributes: %v", attrs)
	}

	code, out, _ = runLvss(t, srv.Socket, "", "list", "shadows")
	for _, want := range []string{
		"Contents of shadow copy set ID: " + setB.String() + "\n   Contained 1 shadow copy at creation time: 2026-11-25T01:10:03Z\n",
		"Contents of shadow copy set ID: " + setA.String() + "\n   Contained 2 shadow copies at creation time: 2026-11-25T02:10:03Z\n",
		"      Shadow Copy ID: " + a1.SnapshotId + "\n         Original Volume: /srv\n         Shadow Copy Volume: " + a1.DevicePath + "\n",
		"         Provider: 'btrfs' (" + btrfsID.String() + ")\n         Type: VSS_CTX_CLIENT_ACCESSIBLE\n",
		"         Attributes: Persistent, Client accessible, No auto release, No writers, Not surfaced\n",
		"         Consistency: crash (no application was frozen)\n",
		"         Auto-release: yes, with session " + b1.SessionId + " (still running)\n",
		"         Exposed at: /mnt/home-monday\n", "         Exposed at: not exposed\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}

	// Filters.
	_, out, _ = runLvss(t, srv.Socket, "", "list", "shadows", "--set", setA.String(), "--json")
	if ss := jsonArray(t, out); len(ss) != 2 {
		t.Errorf("--set: %d snapshots", len(ss))
	}
	_, out, _ = runLvss(t, srv.Socket, "", "list", "shadows", "--for", "/srv/", "--json")
	if ss := jsonArray(t, out); len(ss) != 2 || ss[0]["original_volume"] != "/srv" || ss[1]["original_volume"] != "/srv" {
		t.Errorf("--for: %v", ss)
	}
	if code, _, _ := runLvss(t, srv.Socket, "", "list", "shadows", "--set", "nope"); code != 2 {
		t.Errorf("bad --set: exit %d", code)
	}
}

func TestListShadowsForRelativePath(t *testing.T) {
	srv := clienttest.Start(t)
	wd, _ := os.Getwd()
	srv.Set(func(s *clienttest.Server) {
		s.Shadows = []*v1.SnapshotProp{shadow(uuid.New(), wd, t0, vss.CtxNASRollback)}
	})
	_, out, _ := runLvss(t, srv.Socket, "", "list", "shadows", "--for", ".", "--json")
	if ss := jsonArray(t, out); len(ss) != 1 {
		t.Errorf("--for . did not find the snapshot of %s: %v", wd, ss)
	}
}

func TestListProvidersJSON(t *testing.T) {
	srv := startWithProvider(t)
	_, out, _ := runLvss(t, srv.Socket, "", "list", "providers", "--json")
	ps := jsonArray(t, out)
	if len(ps) != 1 {
		t.Fatalf("%v", ps)
	}
	for k, want := range map[string]any{"provider_id": btrfsID.String(), "name": "btrfs", "type": "VSS_PROV_SOFTWARE",
		"type_value": 2.0, "version": "1.0"} {
		if ps[0][k] != want {
			t.Errorf("%s = %v, want %v", k, ps[0][k], want)
		}
	}
}

func TestCreateShadowDefault(t *testing.T) {
	srv := startWithProvider(t)
	code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", "/srv", "--for", "/home", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := []string{"InitializeForBackup", "SetContext", "StartSnapshotSet", "AddToSnapshotSet", "AddToSnapshotSet",
		"DoSnapshotSet", "GetSnapshotProperties", "GetSnapshotProperties"}
	if got := callsOf(srv); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	ctxs := requestsOf(srv, func(r *v1.SessionRequest) *v1.SetContext { return r.GetSetContext() })
	if len(ctxs) != 1 || vss.Context(ctxs[0].Context) != vss.CtxClientAccessible {
		t.Errorf("SetContext: %v", ctxs)
	}
	m := jsonObject(t, out)
	snaps, _ := m["snapshots"].([]any)
	if len(snaps) != 2 || m["context"] != "VSS_CTX_CLIENT_ACCESSIBLE" {
		t.Fatalf("%v", m)
	}
	if _, err := uuid.Parse(m["snapshot_set_id"].(string)); err != nil {
		t.Errorf("snapshot_set_id: %v", m["snapshot_set_id"])
	}
	for i, vol := range []string{"/srv", "/home"} {
		s := snaps[i].(map[string]any)
		checkShadowFields(t, s)
		if s["original_volume"] != vol || s["snapshot_set_id"] != m["snapshot_set_id"] || s["auto_release"] != false ||
			s["provider"] != "btrfs" || s["snapshot_path"] == "" {
			t.Errorf("snapshot %d: %v", i, s)
		}
	}
	if w := m["writers"].([]any); len(w) != 0 {
		t.Errorf("writers in a writerless context: %v", w)
	}
	if w := m["warnings"].([]any); len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}
	// The session ended, and the snapshots outlived it.
	rels := srv.Releases()
	if len(rels) != 1 || len(rels[0].DeletedSnapshots) != 0 || rels[0].Aborted {
		t.Errorf("release: %v", rels)
	}
	_, out, _ = runLvss(t, srv.Socket, "", "list", "shadows", "--json")
	if ss := jsonArray(t, out); len(ss) != 2 || ss[0]["live_session"] != false {
		t.Errorf("after create: %v", ss)
	}

	// Text.
	code, out, _ = runLvss(t, srv.Socket, "", "create", "shadow", "--for", "/data")
	if code != 0 || !strings.HasPrefix(out, "Successfully created shadow copy set ") ||
		!strings.Contains(out, "   Shadow Copy ID: ") || !strings.Contains(out, "      Original Volume: /data\n") ||
		!strings.Contains(out, "      Shadow Copy Volume: /run/lvss/snap//data\n") ||
		!strings.Contains(out, "      Consistency: crash (no application was frozen)\n") || strings.Contains(out, "Writers") {
		t.Errorf("exit %d, text:\n%s", code, out)
	}
}

func TestCreateShadowWithWriters(t *testing.T) {
	srv := startWithProvider(t)
	good, bad := uuid.New(), uuid.New()
	srv.Set(func(s *clienttest.Server) {
		s.Status = []*v1.WriterStatus{
			{InstanceId: good.String(), WriterId: uuid.NewString(), Name: "files", InstanceName: "main", State: int32(vss.WSStable)},
			{InstanceId: bad.String(), WriterId: uuid.NewString(), Name: "pg", State: int32(vss.WSFailedAtFreeze),
				Failure: uint32(vsserr.WriterErrorTimeout), ApplicationMessage: "checkpoint took too long"},
		}
		s.Consistency, s.ConsistencyReason = "crash", "writer pg: VSS_WS_FAILED_AT_FREEZE"
	})
	for _, c := range []string{"VSS_CTX_APP_ROLLBACK", "client_accessible_writers"} {
		srv.Set(func(s *clienttest.Server) { s.Shadows = nil })
		before := len(srv.Calls())
		code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", "/srv", "--context", c, "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c, code, errOut)
		}
		want := []string{"InitializeForBackup", "SetContext", "SetBackupState", "GatherWriterMetadata", "StartSnapshotSet",
			"AddToSnapshotSet", "PrepareForBackup", "DoSnapshotSet", "GatherWriterStatus", "GetWriterStatus",
			"GetWriterStatus", "GetWriterStatus", "BackupComplete", "GetSnapshotProperties"}
		if got := slices.DeleteFunc(srv.Calls()[before:], func(c string) bool { return c == "Wait" }); !slices.Equal(got, want) {
			t.Fatalf("%s: calls %v, want %v", c, got, want)
		}
		m := jsonObject(t, out)
		snap := m["snapshots"].([]any)[0].(map[string]any)
		if snap["consistency"] != "crash" || !strings.Contains(snap["consistency_reason"].(string), "pg") {
			t.Errorf("%s: snapshot %v", c, snap)
		}
		ws := m["writers"].([]any)
		if len(ws) != 2 || ws[1].(map[string]any)["state"] != "VSS_WS_FAILED_AT_FREEZE" ||
			ws[1].(map[string]any)["failure"] != "VSS_E_WRITERERROR_TIMEOUT" {
			t.Errorf("%s: writers %v", c, ws)
		}
		warns := m["warnings"].([]any)
		if len(warns) != 1 || !strings.Contains(warns[0].(string), "writer 'pg'") ||
			!strings.Contains(errOut, "lvss: warning: writer 'pg'") || !strings.Contains(errOut, "checkpoint took too long") {
			t.Errorf("%s: warnings %v, stderr %q", c, warns, errOut)
		}
	}
	states := requestsOf(srv, func(r *v1.SessionRequest) *v1.SetBackupState { return r.GetSetBackupState() })
	ctxs := requestsOf(srv, func(r *v1.SessionRequest) *v1.SetContext { return r.GetSetContext() })
	if len(states) != 2 || len(ctxs) != 2 {
		t.Fatalf("SetBackupState %v, SetContext %v", states, ctxs)
	}
	for _, st := range states {
		if vss.BackupType(st.BackupType) != vss.BackupCopy || st.SelectComponents || st.BootableSystemState || st.PartialFileSupport {
			t.Errorf("SetBackupState %v, want (false, false, VSS_BT_COPY, false)", st)
		}
	}
	if vss.Context(ctxs[0].Context) != vss.CtxAppRollback || vss.Context(ctxs[1].Context) != vss.CtxClientAccessibleWriters {
		t.Errorf("contexts %v", ctxs)
	}

	code, out, _ := runLvss(t, srv.Socket, "", "create", "shadow", "--for", "/srv", "--context", "APP_ROLLBACK")
	if code != 0 || !strings.Contains(out, "Writers:\n   'files (main)': VSS_WS_STABLE, last error S_OK (0x00000000)\n") ||
		!strings.Contains(out, "   'pg': VSS_WS_FAILED_AT_FREEZE, last error VSS_E_WRITERERROR_TIMEOUT (0x800423F2)\n") {
		t.Errorf("exit %d, text:\n%s", code, out)
	}
}

func TestCreateShadowRefusesAutoRelease(t *testing.T) {
	srv := startWithProvider(t)
	for _, c := range []string{"VSS_CTX_BACKUP", "VSS_CTX_FILE_SHARE_BACKUP", "file_share_backup"} {
		code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", "/srv", "--context", c)
		if code != 2 || out != "" || !strings.Contains(errOut, "auto-release") || !strings.Contains(errOut, "lvss call") {
			t.Errorf("%s: exit %d, out %q, stderr %q", c, code, out, errOut)
		}
	}
	for _, argv := range [][]string{
		{"create", "shadow", "--for", "/srv", "--context", "VSS_CTX_ALL"},
		{"create", "shadow", "--for", "/srv", "--context", "VSS_CTX_NOPE"},
		{"create", "shadow", "--for", "/srv", "--context", ""},
		{"create", "shadow"},
		{"create", "shadow", "/srv"},
	} {
		if code, _, errOut := runLvss(t, srv.Socket, "", argv...); code != 2 {
			t.Errorf("%v: exit %d, stderr %q", argv, code, errOut)
		}
	}
	if got := srv.Calls(); len(got) != 0 {
		t.Errorf("refused creations reached the daemon: %v", got)
	}
}

func TestCreateShadowProvider(t *testing.T) {
	srv := startWithProvider(t)
	for _, p := range []string{"BTRFS", btrfsID.String()} {
		if code, _, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", "/srv", "--provider", p); code != 0 {
			t.Fatalf("--provider %s: exit %d: %s", p, code, errOut)
		}
	}
	adds := requestsOf(srv, func(r *v1.SessionRequest) *v1.AddToSnapshotSet { return r.GetAddToSnapshotSet() })
	if len(adds) != 2 || adds[0].ProviderId != btrfsID.String() || adds[1].ProviderId != btrfsID.String() {
		t.Errorf("AddToSnapshotSet: %v", adds)
	}
	code, _, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", "/srv", "--provider", "zfs")
	if code != 1 || !strings.Contains(errOut, "VSS_E_PROVIDER_NOT_REGISTERED (0x80042304)") || !strings.Contains(errOut, "btrfs") {
		t.Errorf("unknown provider: exit %d, stderr %q", code, errOut)
	}
}

func TestCreateShadowFailure(t *testing.T) {
	srv := startWithProvider(t)
	srv.Set(func(s *clienttest.Server) {
		s.Async["DoSnapshotSet"] = clienttest.AsyncPlan{Result: vsserr.FlushWritesTimeout, Message: "fsfreeze /srv took too long"}
	})
	code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", "/srv", "--json")
	if code != 1 || out != "" || !strings.HasPrefix(errOut, "lvss: VSS_E_FLUSH_WRITES_TIMEOUT (0x80042313): DoSnapshotSet") ||
		!strings.Contains(errOut, "fsfreeze /srv took too long") {
		t.Fatalf("exit %d, out %q, stderr %q", code, out, errOut)
	}
	// client.Run ends a failed creation with AbortBackup, then releases.
	if got := callsOf(srv); !slices.Equal(got[len(got)-2:], []string{"DoSnapshotSet", "AbortBackup"}) || len(srv.Releases()) != 1 {
		t.Errorf("calls %v, releases %d", got, len(srv.Releases()))
	}

	srv = startWithProvider(t)
	srv.Set(func(s *clienttest.Server) { s.Fail["AddToSnapshotSet"] = vsserr.VolumeNotSupported })
	code, _, errOut = runLvss(t, srv.Socket, "", "create", "shadow", "--for", "/srv")
	if code != 1 || !strings.HasPrefix(errOut, "lvss: VSS_E_VOLUME_NOT_SUPPORTED (0x8004230C): AddToSnapshotSet /srv: ") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestCreateShadowNoDaemon(t *testing.T) {
	code, _, errOut := runLvss(t, "/nonexistent/lvssd.sock", "", "create", "shadow", "--for", "/srv")
	if code != 1 || !strings.HasPrefix(errOut, "lvss: VSS_E_UNEXPECTED (0x80042302): ") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestDeleteSelectors(t *testing.T) {
	srv := clienttest.Start(t)
	id := uuid.NewString()
	for _, argv := range [][]string{
		{},
		{"--shadow", id, "--all"},
		{"--set", id, "--for", "/srv"},
		{"--oldest", "--all"},
		{"--oldest"},
		{"--shadow", id, "--oldest"},
		{"--set", ""},
		{"--shadow", "GUID_NULL"},
		{"--shadow", "not-a-guid"},
		{"extra", "--all"},
	} {
		code, _, errOut := runLvss(t, srv.Socket, "", append([]string{"delete", "shadows"}, argv...)...)
		if code != 2 || !strings.Contains(errOut, "Run 'lvss --help'") {
			t.Errorf("%v: exit %d, stderr %q", argv, code, errOut)
		}
	}
	if got := srv.Calls(); len(got) != 0 {
		t.Errorf("bad command lines reached the daemon: %v", got)
	}
}

func TestDeleteNothingMatched(t *testing.T) {
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) {
		s.Shadows = []*v1.SnapshotProp{shadow(uuid.New(), "/home", t0, vss.CtxNASRollback)}
	})
	code, out, _ := runLvss(t, srv.Socket, "", "delete", "shadows", "--for", "/srv")
	if code != 0 || out != "No shadow copies matched.\n" {
		t.Errorf("exit %d, out %q", code, out)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "delete", "shadows", "--shadow", uuid.NewString(), "--json")
	m := jsonObject(t, out)
	if code != 0 || len(m["deleted"].([]any)) != 0 || len(m["skipped"].([]any)) != 0 || m["failed"] != nil ||
		len(m["not_deleted"].([]any)) != 0 || len(m) != 4 {
		t.Errorf("exit %d, %v", code, m)
	}
	if got := srv.Calls(); len(got) != 0 {
		t.Errorf("a session for nothing: %v", got)
	}
}

func TestDeleteLeavesLiveAutoRelease(t *testing.T) {
	srv := startWithProvider(t)
	persistent := shadow(uuid.New(), "/srv", t0, vss.CtxClientAccessible)
	// An auto-release snapshot whose session ended (lvssd crashed before
	// it could delete it) may go.
	orphan := shadow(uuid.New(), "/srv", t0, vss.CtxBackup)
	srv.Set(func(s *clienttest.Server) { s.Shadows = []*v1.SnapshotProp{persistent, orphan} })

	// A backup holds a session with an auto-release snapshot of /srv.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, srv.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bc, err := conn.NewBackupComponents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(bc.InitializeForBackup(ctx, ""))
	must(bc.SetContext(ctx, vss.CtxFileShareBackup))
	_, err = bc.StartSnapshotSet(ctx)
	must(err)
	live, err := bc.AddToSnapshotSet(ctx, "/srv", uuid.Nil)
	must(err)
	a, err := bc.DoSnapshotSet(ctx)
	must(err)
	must(a.Wait(ctx))
	sessionID, err := bc.GetSessionID(ctx)
	must(err)
	sessionCalls := len(srv.Calls())

	code, out, errOut := runLvss(t, srv.Socket, "", "delete", "shadows", "--all", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	m := jsonObject(t, out)
	deleted := m["deleted"].([]any)
	if len(deleted) != 2 || !slices.Contains(deleted, any(persistent.SnapshotId)) || !slices.Contains(deleted, any(orphan.SnapshotId)) {
		t.Errorf("deleted %v", deleted)
	}
	skipped := m["skipped"].([]any)
	if len(skipped) != 1 {
		t.Fatalf("skipped %v", skipped)
	}
	sk := skipped[0].(map[string]any)
	if sk["snapshot_id"] != live.String() || sk["session_id"] != sessionID.String() || !strings.Contains(sk["reason"].(string), "still running") {
		t.Errorf("skipped %v", sk)
	}
	if got := srv.Deleted(); slices.Contains(got, live.String()) || len(got) != 2 {
		t.Errorf("the daemon deleted %v (live one %s)", got, live)
	}
	want := []string{"InitializeForBackup", "SetContext", "DeleteSnapshots", "DeleteSnapshots"}
	if got := srv.Calls()[sessionCalls:]; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	reqs := srv.Requests()[sessionCalls:]
	if c := vss.Context(reqs[1].GetSetContext().Context); c != vss.CtxAll {
		t.Errorf("SetContext %v, want VSS_CTX_ALL", c)
	}
	for _, r := range reqs[2:] {
		if vss.ObjectType(r.GetDeleteSnapshots().SourceObjectType) != vss.ObjectSnapshot {
			t.Errorf("DeleteSnapshots %v, want VSS_OBJECT_SNAPSHOT", r.GetDeleteSnapshots())
		}
	}

	// Text, and a delete aimed at the live snapshot only.
	code, out, _ = runLvss(t, srv.Socket, "", "delete", "shadows", "--shadow", live.String())
	if code != 0 || !strings.HasPrefix(out, "Skipped shadow copy "+live.String()+" (/srv): auto-release snapshot of session "+sessionID.String()) {
		t.Errorf("exit %d, out %q", code, out)
	}
	if _, err := bc.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteOldest(t *testing.T) {
	srv := clienttest.Start(t)
	mid := shadow(uuid.New(), "/srv", t0.Add(time.Hour), vss.CtxClientAccessible)
	oldest := shadow(uuid.New(), "/srv", t0, vss.CtxAppRollback)
	newest := shadow(uuid.New(), "/srv", t0.Add(2*time.Hour), vss.CtxClientAccessible)
	other := shadow(uuid.New(), "/home", t0.Add(-time.Hour), vss.CtxClientAccessible)
	srv.Set(func(s *clienttest.Server) { s.Shadows = []*v1.SnapshotProp{mid, oldest, newest, other} })
	code, out, errOut := runLvss(t, srv.Socket, "", "delete", "shadows", "--for", "/srv", "--oldest")
	if code != 0 || out != "Deleted shadow copy "+oldest.SnapshotId+" (/srv)\n" {
		t.Fatalf("exit %d, out %q, stderr %q", code, out, errOut)
	}
	if got := srv.Deleted(); !slices.Equal(got, []string{oldest.SnapshotId}) {
		t.Errorf("deleted %v", got)
	}
	code, _, _ = runLvss(t, srv.Socket, "", "delete", "shadows", "--for", "/srv", "--oldest")
	if got := srv.Deleted(); code != 0 || !slices.Equal(got, []string{oldest.SnapshotId, mid.SnapshotId}) {
		t.Errorf("exit %d, deleted %v", code, got)
	}
}

func TestDeleteStopsAtFirstFailure(t *testing.T) {
	srv := clienttest.Start(t)
	set := uuid.New()
	s1, s2, s3 := shadow(set, "/a", t0, vss.CtxNASRollback), shadow(set, "/b", t0, vss.CtxNASRollback), shadow(set, "/c", t0, vss.CtxNASRollback)
	srv.Set(func(s *clienttest.Server) {
		s.Shadows = []*v1.SnapshotProp{s1, s2, s3}
		s.DeleteFail[s2.SnapshotId] = vsserr.ObjectNotFound
	})
	code, out, errOut := runLvss(t, srv.Socket, "", "delete", "shadows", "--set", set.String(), "--json")
	if code != 1 || !strings.HasPrefix(errOut, "lvss: VSS_E_OBJECT_NOT_FOUND (0x80042308): DeleteSnapshots "+s2.SnapshotId) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	m := jsonObject(t, out)
	f, _ := m["failed"].(map[string]any)
	if d := m["deleted"].([]any); len(d) != 1 || d[0] != s1.SnapshotId || f == nil || f["snapshot_id"] != s2.SnapshotId ||
		f["name"] != "VSS_E_OBJECT_NOT_FOUND" || f["hresult"] != "0x80042308" {
		t.Errorf("%v", m)
	}
	if nd := m["not_deleted"].([]any); len(nd) != 2 || nd[0] != s2.SnapshotId || nd[1] != s3.SnapshotId {
		t.Errorf("not_deleted %v", nd)
	}
	if got := srv.Deleted(); !slices.Equal(got, []string{s1.SnapshotId}) {
		t.Errorf("deleted %v", got)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "delete", "shadows", "--set", set.String())
	if code != 1 || !strings.Contains(out, "Not deleted: "+s2.SnapshotId+", "+s3.SnapshotId+"\n") {
		t.Errorf("exit %d, text %q", code, out)
	}
}

func TestDeleteConfirmation(t *testing.T) {
	srv := clienttest.Start(t)
	add := func() *v1.SnapshotProp {
		sn := shadow(uuid.New(), "/srv", t0, vss.CtxClientAccessible)
		srv.Set(func(s *clienttest.Server) { s.Shadows = append(s.Shadows, sn) })
		return sn
	}
	const prompt = "Do you really want to delete 1 shadow copy (Y/N): [N]? "

	// Not a terminal: never asked, even with an answer waiting.
	sn := add()
	code, _, errOut := runLvss(t, srv.Socket, "n\n", "delete", "shadows", "--shadow", sn.SnapshotId)
	if code != 0 || strings.Contains(errOut, "Do you really") || !slices.Contains(srv.Deleted(), sn.SnapshotId) {
		t.Fatalf("not a terminal: exit %d, stderr %q, deleted %v", code, errOut, srv.Deleted())
	}

	stdinIsTerminal = func(io.Reader) bool { return true }
	defer func() { stdinIsTerminal = isTerminal }()

	sn = add()
	code, out, errOut := runLvss(t, srv.Socket, "n\n", "delete", "shadows", "--shadow", sn.SnapshotId)
	if code != 0 || !strings.Contains(errOut, sn.SnapshotId) || !strings.HasSuffix(errOut, prompt) ||
		!strings.Contains(out, "Nothing deleted.") || slices.Contains(srv.Deleted(), sn.SnapshotId) {
		t.Fatalf("declined: exit %d, out %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "delete", "shadows", "--shadow", sn.SnapshotId, "--json")
	if m := jsonObject(t, out); code != 0 || len(m["not_deleted"].([]any)) != 1 || len(m["deleted"].([]any)) != 0 {
		t.Fatalf("no answer: exit %d, %v", code, m)
	}
	code, _, errOut = runLvss(t, srv.Socket, "yes\n", "delete", "shadows", "--shadow", sn.SnapshotId)
	if code != 0 || !strings.HasSuffix(errOut, prompt) || !slices.Contains(srv.Deleted(), sn.SnapshotId) {
		t.Fatalf("confirmed: exit %d, stderr %q", code, errOut)
	}
	sn = add()
	code, _, errOut = runLvss(t, srv.Socket, "", "delete", "shadows", "--shadow", sn.SnapshotId, "--quiet")
	if code != 0 || errOut != "" || !slices.Contains(srv.Deleted(), sn.SnapshotId) {
		t.Fatalf("--quiet: exit %d, stderr %q", code, errOut)
	}
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(r) || isTerminal(strings.NewReader("")) {
		t.Error("a pipe or a reader is not a terminal")
	}
	// The master side of a pseudo-terminal has terminal attributes.
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		testenv.Missing(t, "a pseudo-terminal (/dev/ptmx: "+err.Error()+")")
	}
	ptm := os.NewFile(uintptr(fd), "/dev/ptmx")
	defer ptm.Close()
	if !isTerminal(ptm) {
		t.Error("a pseudo-terminal is a terminal")
	}
}

func TestExposeUnexpose(t *testing.T) {
	srv := startWithProvider(t)
	sn := shadow(uuid.New(), "/srv", t0, vss.CtxClientAccessible)
	srv.Set(func(s *clienttest.Server) { s.Shadows = []*v1.SnapshotProp{sn} })
	wd, _ := os.Getwd()
	mnt := filepath.Join(wd, "mnt")

	code, out, errOut := runLvss(t, srv.Socket, "", "expose", sn.SnapshotId, "mnt", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if m := jsonObject(t, out); m["snapshot_id"] != sn.SnapshotId || m["exposed_path"] != mnt || len(m) != 2 {
		t.Errorf("%v", m)
	}
	exps := requestsOf(srv, func(r *v1.SessionRequest) *v1.ExposeSnapshot { return r.GetExposeSnapshot() })
	if len(exps) != 1 || exps[0].Expose != mnt || exps[0].PathFromRoot != "" || vss.Attributes(exps[0].Attributes) != vss.AttrExposedLocally {
		t.Errorf("ExposeSnapshot %v", exps)
	}
	if got := srv.Calls(); !slices.Equal(got, []string{"InitializeForBackup", "SetContext", "ExposeSnapshot"}) {
		t.Errorf("calls %v", got)
	}
	_, out, _ = runLvss(t, srv.Socket, "", "list", "shadows", "--json")
	if ss := jsonArray(t, out); ss[0]["exposed_path"] != mnt {
		t.Errorf("list after expose: %v", ss[0])
	}

	code, out, _ = runLvss(t, srv.Socket, "", "unexpose", sn.SnapshotId)
	if code != 0 || out != "Shadow copy "+sn.SnapshotId+" is no longer exposed at "+mnt+"\n" {
		t.Errorf("unexpose: exit %d, %q", code, out)
	}
	code, _, errOut = runLvss(t, srv.Socket, "", "unexpose", sn.SnapshotId, "--json")
	if code != 1 || !strings.HasPrefix(errOut, "lvss: VSS_E_OBJECT_NOT_FOUND (0x80042308): UnexposeSnapshot ") {
		t.Errorf("unexpose twice: exit %d, stderr %q", code, errOut)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "expose", sn.SnapshotId, "/mnt/x")
	if code != 0 || out != "Shadow copy "+sn.SnapshotId+" is exposed at /mnt/x\n" {
		t.Errorf("expose text: exit %d, %q", code, out)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "unexpose", sn.SnapshotId, "--json")
	if m := jsonObject(t, out); code != 0 || m["exposed_path"] != "" || m["previous_exposed_path"] != "/mnt/x" {
		t.Errorf("unexpose --json: exit %d, %v", code, m)
	}

	code, _, errOut = runLvss(t, srv.Socket, "", "expose", uuid.NewString(), "/mnt/x")
	if code != 1 || !strings.HasPrefix(errOut, "lvss: VSS_E_OBJECT_NOT_FOUND (0x80042308): ExposeSnapshot ") {
		t.Errorf("unknown snapshot: exit %d, stderr %q", code, errOut)
	}
	for _, argv := range [][]string{{"expose", "nope", "/mnt"}, {"expose", sn.SnapshotId}, {"unexpose"}, {"unexpose", "GUID_NULL"}} {
		if code, _, _ := runLvss(t, srv.Socket, "", argv...); code != 2 {
			t.Errorf("%v: exit %d", argv, code)
		}
	}
}

// TestVerbsDocumented keeps docs/cli.md in step with the shadow-copy verbs:
// each has a section headed by its syntax.
func TestVerbsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{
		"## `lvss list shadows [--set ID] [--for PATH] [--json]`\n",
		"## `lvss create shadow --for PATH [--for PATH...] [--provider NAME|ID] [--context NAME] [--json]`\n",
		"## `lvss delete shadows (--shadow ID | --set ID | --for PATH [--oldest] | --all) [--quiet] [--json]`\n",
		"## `lvss expose ID PATH [--json]` and `lvss unexpose ID [--json]`\n",
		"## Where snapshots are kept\n",
	} {
		if !strings.Contains(string(b), h) {
			t.Errorf("docs/cli.md has no section %q", h)
		}
	}
}

// TestCreateShadowFailsAfterCreation: once DoSnapshotSet succeeded the set
// exists, so it is printed even when a later step fails, and the failure
// is the exit status.
func TestCreateShadowFailsAfterCreation(t *testing.T) {
	srv := startWithProvider(t)
	srv.Set(func(s *clienttest.Server) { s.Fail["BackupComplete"] = vsserr.BadState })
	code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", "/srv", "--context", "VSS_CTX_APP_ROLLBACK", "--json")
	if code != 1 || strings.Count(errOut, "VSS_E_BAD_STATE (0x80042301): BackupComplete") != 1 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	m := jsonObject(t, out)
	if snaps := m["snapshots"].([]any); len(snaps) != 1 || snaps[0].(map[string]any)["original_volume"] != "/srv" {
		t.Errorf("snapshots %v", snaps)
	}
	if w := m["warnings"].([]any); len(w) != 1 || !strings.Contains(w[0].(string), "BackupComplete") {
		t.Errorf("warnings %v", w)
	}
	// No second BackupComplete, and no AbortBackup of a created set.
	got := callsOf(srv)
	if n := len(slices.DeleteFunc(slices.Clone(got), func(c string) bool { return c != "BackupComplete" })); n != 1 || slices.Contains(got, "AbortBackup") {
		t.Errorf("calls %v", got)
	}
	if rels := srv.Releases(); len(rels) != 1 || len(rels[0].DeletedSnapshots) != 0 {
		t.Errorf("releases %v", rels)
	}
}

func TestDeleteSessionFailure(t *testing.T) {
	srv := clienttest.Start(t)
	sn := shadow(uuid.New(), "/srv", t0, vss.CtxClientAccessible)
	srv.Set(func(s *clienttest.Server) {
		s.Shadows = []*v1.SnapshotProp{sn}
		s.Fail["SetContext"] = vsserr.UnsupportedContext
	})
	code, out, errOut := runLvss(t, srv.Socket, "", "delete", "shadows", "--all", "--json")
	if code != 1 || !strings.HasPrefix(errOut, "lvss: VSS_E_UNSUPPORTED_CONTEXT (0x8004231B): SetContext VSS_CTX_ALL") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	m := jsonObject(t, out)
	f, _ := m["failed"].(map[string]any)
	if f == nil || f["snapshot_id"] != "" || f["name"] != "VSS_E_UNSUPPORTED_CONTEXT" || len(m["not_deleted"].([]any)) != 1 ||
		len(m["deleted"].([]any)) != 0 || len(srv.Deleted()) != 0 {
		t.Errorf("%v", m)
	}
}
