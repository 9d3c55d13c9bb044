package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
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
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// These tests run the shadow-copy verbs against the real coordinator with
// the fake provider (startLvssd); the snapshots they list, delete and
// expose are made by real sessions (makeSet, holdSet).

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
	"session_id", "created", "consistency", "consistency_reason", "exposed_path", "exposed_share", "exposed_share_path"}

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

// setSequence runs the requester sequence that makes a snapshot set of vols in
// context c (with the writer steps a writer context needs) and returns the
// set's ID and the snapshot IDs, in the order of vols.
func setSequence(ctx context.Context, bc *client.BackupComponents, c vss.Context, vols []string) (uuid.UUID, []uuid.UUID, error) {
	wait := func(op func(context.Context) (*client.Async, error)) error {
		a, err := op(ctx)
		if err == nil {
			err = a.Wait(ctx)
		}
		return err
	}
	if err := bc.InitializeForBackup(ctx, ""); err != nil {
		return uuid.Nil, nil, err
	}
	if err := bc.SetContext(ctx, c); err != nil {
		return uuid.Nil, nil, err
	}
	if c.Writers() {
		if err := bc.SetBackupState(ctx, false, false, vss.BackupFull, false); err != nil {
			return uuid.Nil, nil, err
		}
		if err := wait(bc.GatherWriterMetadata); err != nil {
			return uuid.Nil, nil, err
		}
	}
	set, err := bc.StartSnapshotSet(ctx)
	if err != nil {
		return uuid.Nil, nil, err
	}
	var ids []uuid.UUID
	for _, v := range vols {
		id, err := bc.AddToSnapshotSet(ctx, v, uuid.Nil)
		if err != nil {
			return uuid.Nil, nil, err
		}
		ids = append(ids, id)
	}
	if c.Writers() {
		if err := wait(bc.PrepareForBackup); err != nil {
			return uuid.Nil, nil, err
		}
	}
	return set, ids, wait(bc.DoSnapshotSet)
}

// makeSet makes a snapshot set of vols in context c in a session of its
// own, which ends before it returns.
func makeSet(t *testing.T, socket string, c vss.Context, vols ...string) (uuid.UUID, []uuid.UUID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var set uuid.UUID
	var ids []uuid.UUID
	err := client.Run(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		var err error
		set, ids, err = setSequence(ctx, bc, c, vols)
		return err
	})
	if err != nil {
		t.Fatalf("create a %s set of %v: %v", c, vols, err)
	}
	return set, ids
}

// heldSet is a snapshot set made by a session that is still running, as a
// backup application's would be while it copies from the snapshots.
type heldSet struct {
	bc      *client.BackupComponents
	session uuid.UUID
	set     uuid.UUID
	ids     []uuid.UUID
}

// holdSet makes a snapshot set of vols in context c in a session that
// stays open until the test ends (or its bc is released).
func holdSet(t *testing.T, socket string, c vss.Context, vols ...string) *heldSet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := client.Dial(context.Background(), socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := &heldSet{}
	if h.bc, err = conn.NewBackupComponents(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.set, h.ids, err = setSequence(ctx, h.bc, c, vols); err != nil {
		t.Fatalf("create a %s set of %v: %v", c, vols, err)
	}
	if h.session, err = h.bc.GetSessionID(ctx); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestListShadowsEmpty(t *testing.T) {
	srv := startLvssd(t)
	code, out, _ := runLvss(t, srv.Socket, "", "list", "shadows", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("exit %d, out %q; want []", code, out)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "list", "shadows")
	if code != 0 || out != "No shadow copies found.\n" {
		t.Fatalf("exit %d, out %q", code, out)
	}
	if got := released(t, srv.Socket); len(got) != 0 {
		t.Fatalf("list shadows started sessions: %v", got)
	}
}

func TestListShadows(t *testing.T) {
	srv := startLvssd(t)
	srvVol, homeVol := srv.Volume(t, "srv"), srv.Volume(t, "home")
	// Another session's auto-release snapshot, older, listed first.
	b := holdSet(t, srv.Socket, vss.CtxBackup, srvVol)
	b1 := b.ids[0].String()
	setA, a := makeSet(t, srv.Socket, vss.CtxClientAccessible, srvVol, homeVol)
	a1, a2 := a[0].String(), a[1].String()
	if code, _, errOut := runLvss(t, srv.Socket, "", "expose", a2, "/mnt/home-monday"); code != 0 {
		t.Fatalf("expose: exit %d: %s", code, errOut)
	}

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
	if ss[0]["snapshot_id"] != b1 || ss[1]["snapshot_id"] != a2 || ss[2]["snapshot_id"] != a1 {
		t.Errorf("order: %v %v %v", ss[0]["original_volume"], ss[1]["original_volume"], ss[2]["original_volume"])
	}
	for k, want := range map[string]any{
		"snapshot_set_id": b.set.String(), "original_volume": srvVol, "snapshot_path": "/fake-snapshots/" + b1,
		"provider": "fake", "provider_id": srv.Fake.Info().ID.String(), "context": "VSS_CTX_BACKUP", "auto_release": true,
		"live_session": true, "session_id": b.session.String(), "consistency": "crash",
		"consistency_reason": "no writer taking part has components on this volume", "exposed_path": "", "snapshots_count": 1.0,
	} {
		if ss[0][k] != want {
			t.Errorf("%s = %v, want %v", k, ss[0][k], want)
		}
	}
	// The text shows creation times to the second.
	var createdB, createdA string
	for i, c := range []*string{&createdB, &createdA} {
		ts, err := time.Parse(time.RFC3339Nano, ss[i]["created"].(string))
		if err != nil {
			t.Errorf("created %q: %v", ss[i]["created"], err)
		}
		*c = ts.UTC().Format(time.RFC3339)
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
		"Contents of shadow copy set ID: " + b.set.String() + "\n   Contained 1 shadow copy at creation time: " + createdB + "\n",
		"Contents of shadow copy set ID: " + setA.String() + "\n   Contained 2 shadow copies at creation time: " + createdA + "\n",
		"      Shadow Copy ID: " + a1 + "\n         Original Volume: " + srvVol + "\n         Shadow Copy Volume: /fake-snapshots/" + a1 + "\n",
		"         Provider: 'fake' (" + srv.Fake.Info().ID.String() + ")\n         Type: VSS_CTX_CLIENT_ACCESSIBLE\n",
		"         Attributes: Persistent, Client accessible, No auto release, No writers, Not surfaced, Differential\n",
		"         Consistency: crash (writerless context VSS_CTX_CLIENT_ACCESSIBLE: no application was frozen)\n",
		"         Auto-release: yes, with session " + b.session.String() + " (still running)\n",
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
	_, out, _ = runLvss(t, srv.Socket, "", "list", "shadows", "--for", srvVol+"/", "--json")
	if ss := jsonArray(t, out); len(ss) != 2 || ss[0]["original_volume"] != srvVol || ss[1]["original_volume"] != srvVol {
		t.Errorf("--for: %v", ss)
	}
	if code, _, _ := runLvss(t, srv.Socket, "", "list", "shadows", "--set", "nope"); code != 2 {
		t.Errorf("bad --set: exit %d", code)
	}
}

// --limit and --after page through the listing: the pages put together
// are the whole listing, in its order (sets whole, in creation order).
func TestListShadowsPages(t *testing.T) {
	srv := startLvssd(t)
	srvVol, homeVol := srv.Volume(t, "srv"), srv.Volume(t, "home")
	makeSet(t, srv.Socket, vss.CtxClientAccessible, srvVol)
	makeSet(t, srv.Socket, vss.CtxClientAccessible, srvVol, homeVol)
	makeSet(t, srv.Socket, vss.CtxAppRollback, homeVol)
	makeSet(t, srv.Socket, vss.CtxClientAccessible, srvVol)
	code, out, errOut := runLvss(t, srv.Socket, "", "list", "shadows", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	all := jsonArray(t, out)
	if len(all) != 5 {
		t.Fatalf("%d snapshots", len(all))
	}
	var paged []map[string]any
	after := ""
	for pages := 0; ; pages++ {
		args := []string{"list", "shadows", "--limit", "2", "--json"}
		if after != "" {
			args = append(args, "--after", after)
		}
		code, out, errOut := runLvss(t, srv.Socket, "", args...)
		if code != 0 || pages > 5 {
			t.Fatalf("page %d: exit %d: %s", pages, code, errOut)
		}
		page := jsonArray(t, out)
		if len(page) > 2 {
			t.Fatalf("--limit 2 printed %d", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1]["snapshot_id"].(string)
	}
	if !reflect.DeepEqual(paged, all) {
		t.Errorf("pages put together:\n%v\nthe whole listing:\n%v", paged, all)
	}
	// The text of a page continues the listing: a set cut by the page
	// boundary gets its header again.
	_, out, _ = runLvss(t, srv.Socket, "", "list", "shadows", "--limit", "1", "--after", all[1]["snapshot_id"].(string))
	if !strings.HasPrefix(out, "Contents of shadow copy set ID: "+all[2]["snapshot_set_id"].(string)+"\n") ||
		strings.Count(out, "Shadow Copy ID: ") != 1 {
		t.Errorf("a page of text:\n%s", out)
	}

	// After a snapshot that is gone: the error, and nothing on stdout.
	gone := all[0]["snapshot_id"].(string)
	if code, _, errOut := runLvss(t, srv.Socket, "", "delete", "shadows", "--shadow", gone); code != 0 {
		t.Fatalf("delete: exit %d: %s", code, errOut)
	}
	code, out, errOut = runLvss(t, srv.Socket, "", "list", "shadows", "--after", gone, "--json")
	if e := errorObject(t, errOut); code != 1 || e["name"] != "VSS_E_OBJECT_NOT_FOUND" || out != "" {
		t.Errorf("--after a deleted snapshot: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, bad := range [][]string{{"--limit", "-1"}, {"--after", "nope"}} {
		if code, _, _ := runLvss(t, srv.Socket, "", append([]string{"list", "shadows"}, bad...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}

// The listing arrives in batches (the fake daemon sends two snapshots at
// a time): a set cut between two batches is printed as one set, and the
// JSON is one array.
func TestListShadowsAcrossBatches(t *testing.T) {
	srv := clienttest.Start(t)
	set, other := uuid.NewString(), uuid.NewString()
	t0 := time.Date(2026, 11, 25, 1, 10, 3, 0, time.UTC)
	var shadows []*v1.SnapshotProp
	for i, vol := range []string{"/a", "/b", "/c"} {
		shadows = append(shadows, &v1.SnapshotProp{SnapshotId: uuid.NewString(), SnapshotSetId: set, SnapshotsCount: 3,
			OriginalVolume: vol, ProviderId: uuid.NewString(), Context: int32(vss.CtxClientAccessible),
			CreatedUnixNano: t0.Add(time.Duration(i) * time.Millisecond).UnixNano()})
	}
	shadows = append(shadows, &v1.SnapshotProp{SnapshotId: uuid.NewString(), SnapshotSetId: other, SnapshotsCount: 1,
		OriginalVolume: "/a", ProviderId: uuid.NewString(), Context: int32(vss.CtxClientAccessible),
		CreatedUnixNano: t0.Add(time.Hour).UnixNano()})
	srv.Set(func(s *clienttest.Server) { s.Shadows = shadows })
	code, out, errOut := runLvss(t, srv.Socket, "", "list", "shadows")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Count(out, "Contents of shadow copy set ID: "+set+"\n") != 1 || strings.Count(out, "Contents of shadow copy set ID: ") != 2 ||
		strings.Count(out, "Shadow Copy ID: ") != 4 || !strings.Contains(out, "         Exposed at: not exposed\n\nContents of shadow copy set ID: "+other) {
		t.Errorf("text:\n%s", out)
	}
	_, out, _ = runLvss(t, srv.Socket, "", "list", "shadows", "--json")
	ss := jsonArray(t, out)
	if len(ss) != 4 || ss[0]["original_volume"] != "/a" || ss[2]["original_volume"] != "/c" || ss[3]["snapshot_set_id"] != other {
		t.Errorf("JSON: %v", ss)
	}
}

func TestListShadowsForRelativePath(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "srv")
	makeSet(t, srv.Socket, vss.CtxNASRollback, vol)
	t.Chdir(vol)
	_, out, _ := runLvss(t, srv.Socket, "", "list", "shadows", "--for", ".", "--json")
	if ss := jsonArray(t, out); len(ss) != 1 {
		t.Errorf("--for . did not find the snapshot of %s: %v", vol, ss)
	}
}

func TestListProvidersJSON(t *testing.T) {
	srv := startLvssd(t)
	_, out, _ := runLvss(t, srv.Socket, "", "list", "providers", "--json")
	ps := jsonArray(t, out)
	if len(ps) != 1 {
		t.Fatalf("%v", ps)
	}
	for k, want := range map[string]any{"provider_id": srv.Fake.Info().ID.String(), "name": "fake", "type": "VSS_PROV_SOFTWARE",
		"type_value": 2.0, "version": "1.0"} {
		if ps[0][k] != want {
			t.Errorf("%s = %v, want %v", k, ps[0][k], want)
		}
	}
}

func TestCreateShadowDefault(t *testing.T) {
	srv := startLvssd(t)
	srvVol, homeVol, dataVol := srv.Volume(t, "srv"), srv.Volume(t, "home"), srv.Volume(t, "data")
	code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", srvVol, "--for", homeVol, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	m := jsonObject(t, out)
	snaps, _ := m["snapshots"].([]any)
	if len(snaps) != 2 || m["context"] != "VSS_CTX_CLIENT_ACCESSIBLE" {
		t.Fatalf("%v", m)
	}
	if _, err := uuid.Parse(m["snapshot_set_id"].(string)); err != nil {
		t.Errorf("snapshot_set_id: %v", m["snapshot_set_id"])
	}
	for i, vol := range []string{srvVol, homeVol} {
		s := snaps[i].(map[string]any)
		checkShadowFields(t, s)
		if s["original_volume"] != vol || s["snapshot_set_id"] != m["snapshot_set_id"] || s["auto_release"] != false ||
			s["provider"] != "fake" || s["snapshot_path"] == "" || s["context"] != "VSS_CTX_CLIENT_ACCESSIBLE" {
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
	if rels := released(t, srv.Socket); len(rels) != 1 || rels[0]["deleted_snapshots"] != "0" || rels[0]["aborted"] != "false" {
		t.Errorf("release: %v", rels)
	}
	_, out, _ = runLvss(t, srv.Socket, "", "list", "shadows", "--json")
	if ss := jsonArray(t, out); len(ss) != 2 || ss[0]["live_session"] != false {
		t.Errorf("after create: %v", ss)
	}

	// Text.
	code, out, _ = runLvss(t, srv.Socket, "", "create", "shadow", "--for", dataVol)
	if code != 0 || !strings.HasPrefix(out, "Successfully created shadow copy set ") ||
		!strings.Contains(out, "   Shadow Copy ID: ") || !strings.Contains(out, "      Original Volume: "+dataVol+"\n") ||
		!strings.Contains(out, "      Shadow Copy Volume: /fake-snapshots/") ||
		!strings.Contains(out, "      Consistency: crash (writerless context VSS_CTX_CLIENT_ACCESSIBLE: no application was frozen)\n") ||
		strings.Contains(out, "Writers") {
		t.Errorf("exit %d, text:\n%s", code, out)
	}
}

func TestCreateShadowWithWriters(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "srv")
	files := newTestWriter(srv.Volume(t, "srv/files"))
	runTestWriter(t, srv.Socket, "files", "main", vss.LevelFrontEnd, files)
	pg := newTestWriter(srv.Volume(t, "srv/pg"))
	pg.failAt(writer.EventFreeze, writer.Fail(vsserr.WriterErrorTimeout, vsserr.Fail, "checkpoint took too long"))
	runTestWriter(t, srv.Socket, "pg", "", vss.LevelBackEnd, pg)

	contexts := []struct {
		flag string
		want vss.Context
	}{{"VSS_CTX_APP_ROLLBACK", vss.CtxAppRollback}, {"client_accessible_writers", vss.CtxClientAccessibleWriters}}
	for i, c := range contexts {
		code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol, "--context", c.flag, "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.flag, code, errOut)
		}
		m := jsonObject(t, out)
		snap := m["snapshots"].([]any)[0].(map[string]any)
		if snap["consistency"] != "crash" || !strings.Contains(snap["consistency_reason"].(string), `writer "pg"`) {
			t.Errorf("%s: snapshot %v", c.flag, snap)
		}
		ws := m["writers"].([]any)
		if len(ws) != 2 || ws[1].(map[string]any)["state"] != "VSS_WS_FAILED_AT_FREEZE" ||
			ws[1].(map[string]any)["failure"] != "VSS_E_WRITERERROR_TIMEOUT" {
			t.Errorf("%s: writers %v", c.flag, ws)
		}
		warns := m["warnings"].([]any)
		if len(warns) != 1 || !strings.Contains(warns[0].(string), "writer 'pg'") ||
			!strings.Contains(warns[0].(string), "checkpoint took too long") || errOut != "" {
			// With --json the warnings are in the result only.
			t.Errorf("%s: warnings %v, stderr %q", c.flag, warns, errOut)
		}
		// The whole writer sequence ran in the context asked for, as a
		// copy backup (non-component mode, VSS_BT_COPY), and the healthy
		// writer got BackupComplete; the vetoing one got Abort instead.
		want := slices.Repeat([]string{"PrepareBackup", "PrepareSnapshot", "Freeze", "Thaw", "PostSnapshot", "BackupComplete", "BackupShutdown"}, i+1)
		if got := files.seen(); !slices.Equal(got, want) {
			t.Errorf("%s: files writer saw %v, want %v", c.flag, got, want)
		}
		if got := pg.seen(); !slices.Contains(got, "Abort") || slices.Contains(got, "BackupComplete") {
			t.Errorf("%s: vetoing writer saw %v", c.flag, got)
		}
		prep := files.eventsOf(writer.EventPrepareSnapshot)
		ev := prep[len(prep)-1]
		if ev.Context != c.want || ev.BackupType != vss.BackupCopy || ev.SelectComponents || ev.BootableSystemState || ev.PartialFileSupport {
			t.Errorf("%s: PrepareSnapshot %+v, want %s with (false, false, VSS_BT_COPY, false)", c.flag, ev, c.want)
		}
	}

	code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol, "--context", "APP_ROLLBACK")
	// The status is gathered before BackupComplete (which is sent after it).
	if code != 0 || !strings.Contains(out, "Writers:\n   'files (main)': VSS_WS_WAITING_FOR_BACKUP_COMPLETE, last error S_OK (0x00000000)\n") ||
		!strings.Contains(out, "   'pg': VSS_WS_FAILED_AT_FREEZE, last error VSS_E_WRITERERROR_TIMEOUT (0x800423F2)\n") {
		t.Errorf("exit %d, text:\n%s", code, out)
	}
	// In text mode the vetoing writer is a warning on standard error, once,
	// and the result on standard output carries no warning line.
	if n := strings.Count(errOut, "lvss: warning: "); n != 1 || !strings.Contains(errOut, "writer 'pg'") ||
		!strings.Contains(errOut, "checkpoint took too long") || strings.Contains(out, "warning") {
		t.Errorf("text-mode warnings: stderr %q", errOut)
	}
}

func TestCreateShadowRefusesAutoRelease(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "srv")
	for _, c := range []string{"VSS_CTX_BACKUP", "VSS_CTX_FILE_SHARE_BACKUP", "file_share_backup"} {
		code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol, "--context", c)
		if code != 2 || out != "" || !strings.Contains(errOut, "auto-release") || !strings.Contains(errOut, "lvss call") {
			t.Errorf("%s: exit %d, out %q, stderr %q", c, code, out, errOut)
		}
	}
	for _, argv := range [][]string{
		{"create", "shadow", "--for", vol, "--context", "VSS_CTX_ALL"},
		{"create", "shadow", "--for", vol, "--context", "VSS_CTX_NOPE"},
		{"create", "shadow", "--for", vol, "--context", ""},
		{"create", "shadow"},
		{"create", "shadow", vol},
	} {
		if code, _, errOut := runLvss(t, srv.Socket, "", argv...); code != 2 {
			t.Errorf("%v: exit %d, stderr %q", argv, code, errOut)
		}
	}
	if got := released(t, srv.Socket); len(got) != 0 {
		t.Errorf("refused creations started sessions: %v", got)
	}
}

func TestCreateShadowProvider(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "srv")
	for _, p := range []string{"FAKE", srv.Fake.Info().ID.String()} {
		code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol, "--provider", p, "--json")
		if code != 0 {
			t.Fatalf("--provider %s: exit %d: %s", p, code, errOut)
		}
		if s := jsonObject(t, out)["snapshots"].([]any)[0].(map[string]any); s["provider_id"] != srv.Fake.Info().ID.String() {
			t.Errorf("--provider %s: snapshot %v", p, s)
		}
	}
	code, _, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol, "--provider", "zfs")
	if code != 1 || !strings.Contains(errOut, "VSS_E_PROVIDER_NOT_REGISTERED (0x80042304)") || !strings.Contains(errOut, "fake") {
		t.Errorf("unknown provider: exit %d, stderr %q", code, errOut)
	}
}

func TestCreateShadowFailure(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "srv")
	srv.Fake.FailAt("CommitSnapshots", vsserr.New(vsserr.ProviderVeto, "the array refused %s", vol))
	code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol, "--json")
	if code != 1 || out != "" {
		t.Fatalf("exit %d, out %q, stderr %q", code, out, errOut)
	}
	if e := errorObject(t, errOut); e["name"] != "VSS_E_PROVIDER_VETO" || !strings.HasPrefix(e["message"], "DoSnapshotSet") ||
		!strings.Contains(e["message"], "the array refused "+vol) {
		t.Fatalf("stderr %q", errOut)
	}
	// The failed set is undone and the session released, which frees the
	// creation lock: the next creation succeeds.
	if got := srv.Fake.Calls(); !slices.Contains(got, "AbortSnapshots") {
		t.Errorf("the provider saw %v", got)
	}
	if rels := released(t, srv.Socket); len(rels) != 1 {
		t.Errorf("releases %v", rels)
	}
	srv.Fake.FailAt("CommitSnapshots", nil)
	if code, _, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol); code != 0 {
		t.Errorf("create after a failed one: exit %d: %s", code, errOut)
	}

	// No provider for the path.
	code, _, errOut = runLvss(t, srv.Socket, "", "create", "shadow", "--for", t.TempDir())
	if code != 1 || !strings.HasPrefix(errOut, "lvss: VSS_E_VOLUME_NOT_SUPPORTED (0x8004230C): AddToSnapshotSet /") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestCreateShadowNoDaemon(t *testing.T) {
	code, _, errOut := runLvss(t, "/nonexistent/lvssd.sock", "", "create", "shadow", "--for", "/srv")
	if code != exitUnreachable || !strings.HasPrefix(errOut, "lvss: VSS_E_UNEXPECTED (0x80042302): ") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestDeleteSelectors(t *testing.T) {
	srv := startLvssd(t)
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
		if code != 2 || !strings.HasSuffix(errOut, "\nhint: run 'lvss delete shadows --help'\n") {
			t.Errorf("%v: exit %d, stderr %q", argv, code, errOut)
		}
	}
	if got := released(t, srv.Socket); len(got) != 0 {
		t.Errorf("bad command lines started sessions: %v", got)
	}
}

func TestDeleteNothingMatched(t *testing.T) {
	srv := startLvssd(t)
	makeSet(t, srv.Socket, vss.CtxNASRollback, srv.Volume(t, "home"))
	sessions := len(released(t, srv.Socket))
	code, out, _ := runLvss(t, srv.Socket, "", "delete", "shadows", "--for", srv.Volume(t, "srv"))
	if code != 0 || out != "No shadow copies matched.\n" {
		t.Errorf("exit %d, out %q", code, out)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "delete", "shadows", "--shadow", uuid.NewString(), "--json")
	m := jsonObject(t, out)
	if code != 0 || len(m["deleted"].([]any)) != 0 || len(m["skipped"].([]any)) != 0 || m["failed"] != nil ||
		len(m["not_deleted"].([]any)) != 0 || len(m["selected"].([]any)) != 0 || len(m["kept"].([]any)) != 0 ||
		len(m["failures"].([]any)) != 0 || m["dry_run"] != false || m["rule"] != nil || len(m) != 9 {
		t.Errorf("exit %d, %v", code, m)
	}
	if got := released(t, srv.Socket); len(got) != sessions {
		t.Errorf("a session for nothing: %v", got[sessions:])
	}
}

func TestDeleteLeavesLiveAutoRelease(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "srv")
	_, ids := makeSet(t, srv.Socket, vss.CtxClientAccessible, vol)
	persistent := ids[0]
	// An auto-release snapshot whose session ended but could not delete
	// it (here the provider failed; also lvssd crashing first) may go.
	srv.Fake.FailAt("DeleteSnapshot", vsserr.New(vsserr.BadState, "fake: the disk is busy"))
	_, ids = makeSet(t, srv.Socket, vss.CtxFileShareBackup, vol)
	orphan := ids[0]
	srv.Fake.FailAt("DeleteSnapshot", nil)
	// A backup holds a session with an auto-release snapshot of vol.
	h := holdSet(t, srv.Socket, vss.CtxFileShareBackup, vol)
	live := h.ids[0]

	code, out, errOut := runLvss(t, srv.Socket, "", "delete", "shadows", "--all", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	m := jsonObject(t, out)
	deleted := m["deleted"].([]any)
	if len(deleted) != 2 || !slices.Contains(deleted, any(persistent.String())) || !slices.Contains(deleted, any(orphan.String())) {
		t.Errorf("deleted %v", deleted)
	}
	skipped := m["skipped"].([]any)
	if len(skipped) != 1 {
		t.Fatalf("skipped %v", skipped)
	}
	sk := skipped[0].(map[string]any)
	if sk["snapshot_id"] != live.String() || sk["session_id"] != h.session.String() || !strings.Contains(sk["reason"].(string), "still running") {
		t.Errorf("skipped %v", sk)
	}
	// One snapshot at a time, not the sets they belong to.
	if srv.Fake.Deleted(live) || !srv.Fake.Deleted(persistent) || !srv.Fake.Deleted(orphan) {
		t.Errorf("the provider deleted persistent %v, orphan %v, live %v", srv.Fake.Deleted(persistent),
			srv.Fake.Deleted(orphan), srv.Fake.Deleted(live))
	}

	// Text, and a delete aimed at the live snapshot only.
	code, out, _ = runLvss(t, srv.Socket, "", "delete", "shadows", "--shadow", live.String())
	if code != 0 || !strings.HasPrefix(out, "Skipped shadow copy "+live.String()+" ("+vol+"): auto-release snapshot of session "+h.session.String()) {
		t.Errorf("exit %d, out %q", code, out)
	}
	rel, err := h.bc.Release(context.Background())
	if err != nil || !slices.Contains(rel.DeletedSnapshots, live) {
		t.Fatalf("release: %+v %v", rel, err)
	}
}

func TestDeleteOldest(t *testing.T) {
	srv := startLvssd(t)
	srvVol := srv.Volume(t, "srv")
	// The oldest of all is of another volume; the sets of srv are made
	// oldest first, whatever order the catalog lists them in.
	makeSet(t, srv.Socket, vss.CtxClientAccessible, srv.Volume(t, "home"))
	var made []uuid.UUID
	for _, c := range []vss.Context{vss.CtxAppRollback, vss.CtxClientAccessible, vss.CtxClientAccessible} {
		_, ids := makeSet(t, srv.Socket, c, srvVol)
		made = append(made, ids[0])
	}
	oldest, mid := made[0], made[1]
	code, out, errOut := runLvss(t, srv.Socket, "", "delete", "shadows", "--for", srvVol, "--oldest")
	if code != 0 || out != "Deleted shadow copy "+oldest.String()+" ("+srvVol+")\n" {
		t.Fatalf("exit %d, out %q, stderr %q", code, out, errOut)
	}
	if !srv.Fake.Deleted(oldest) || srv.Fake.Live() != 3 {
		t.Errorf("deleted %v, %d left", srv.Fake.Deleted(oldest), srv.Fake.Live())
	}
	code, _, _ = runLvss(t, srv.Socket, "", "delete", "shadows", "--for", srvVol, "--oldest")
	if code != 0 || !srv.Fake.Deleted(mid) || srv.Fake.Live() != 2 {
		t.Errorf("exit %d, deleted %v, %d left", code, srv.Fake.Deleted(mid), srv.Fake.Live())
	}
}

func TestDeleteStopsAtFirstFailure(t *testing.T) {
	srv := startLvssd(t)
	set, ids := makeSet(t, srv.Socket, vss.CtxNASRollback, srv.Volume(t, "a"), srv.Volume(t, "b"), srv.Volume(t, "c"))
	s1, s2, s3 := ids[0].String(), ids[1].String(), ids[2].String()
	// The provider deletes the first snapshot and fails from the second
	// on: it holds the first delete until the failure is armed.
	release := srv.Fake.HangAt("DeleteSnapshot")
	t.Cleanup(release)
	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := runLvss(t, srv.Socket, "", "delete", "shadows", "--set", set.String(), "--json")
		done <- result{code, out, errOut}
	}()
	lvssdtest.Eventually(t, 10*time.Second, "the first delete to reach the provider", func() bool {
		return slices.Contains(srv.Fake.Calls(), "DeleteSnapshot")
	})
	srv.Fake.FailAt("DeleteSnapshot", vsserr.New(vsserr.ObjectNotFound, "fake: the snapshot is gone"))
	release()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("delete did not end")
	}
	if r.code != 1 {
		t.Fatalf("exit %d, stderr %q", r.code, r.errOut)
	}
	if e := errorObject(t, r.errOut); e["name"] != "VSS_E_OBJECT_NOT_FOUND" || !strings.HasPrefix(e["message"], "DeleteSnapshots "+s2) {
		t.Fatalf("stderr %q", r.errOut)
	}
	m := jsonObject(t, r.out)
	f, _ := m["failed"].(map[string]any)
	if d := m["deleted"].([]any); len(d) != 1 || d[0] != s1 || f == nil || f["snapshot_id"] != s2 ||
		f["name"] != "VSS_E_OBJECT_NOT_FOUND" || f["hresult"] != "0x80042308" {
		t.Errorf("%v", m)
	}
	if nd := m["not_deleted"].([]any); len(nd) != 2 || nd[0] != s2 || nd[1] != s3 {
		t.Errorf("not_deleted %v", nd)
	}
	if !srv.Fake.Deleted(ids[0]) || srv.Fake.Deleted(ids[1]) || srv.Fake.Deleted(ids[2]) {
		t.Errorf("the provider deleted %v %v %v", srv.Fake.Deleted(ids[0]), srv.Fake.Deleted(ids[1]), srv.Fake.Deleted(ids[2]))
	}
	code, out, _ := runLvss(t, srv.Socket, "", "delete", "shadows", "--set", set.String())
	if code != 1 || !strings.Contains(out, "Not deleted: "+s2+", "+s3+"\n") {
		t.Errorf("exit %d, text %q", code, out)
	}
}

func TestDeleteConfirmation(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "srv")
	add := func() uuid.UUID {
		_, ids := makeSet(t, srv.Socket, vss.CtxClientAccessible, vol)
		return ids[0]
	}
	const prompt = "Do you really want to delete 1 shadow copy (Y/N): [N]? "

	// Not a terminal: never asked, even with an answer waiting.
	sn := add()
	code, _, errOut := runLvss(t, srv.Socket, "n\n", "delete", "shadows", "--shadow", sn.String())
	if code != 0 || strings.Contains(errOut, "Do you really") || !srv.Fake.Deleted(sn) {
		t.Fatalf("not a terminal: exit %d, stderr %q, deleted %v", code, errOut, srv.Fake.Deleted(sn))
	}

	stdinIsTerminal = func(io.Reader) bool { return true }
	defer func() { stdinIsTerminal = isTerminal }()

	sn = add()
	code, out, errOut := runLvss(t, srv.Socket, "n\n", "delete", "shadows", "--shadow", sn.String())
	if code != 0 || !strings.Contains(errOut, sn.String()) || !strings.HasSuffix(errOut, prompt) ||
		!strings.Contains(out, "Nothing deleted.") || srv.Fake.Deleted(sn) {
		t.Fatalf("declined: exit %d, out %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "delete", "shadows", "--shadow", sn.String(), "--json")
	if m := jsonObject(t, out); code != 0 || len(m["not_deleted"].([]any)) != 1 || len(m["deleted"].([]any)) != 0 {
		t.Fatalf("no answer: exit %d, %v", code, m)
	}
	code, _, errOut = runLvss(t, srv.Socket, "yes\n", "delete", "shadows", "--shadow", sn.String())
	if code != 0 || !strings.HasSuffix(errOut, prompt) || !srv.Fake.Deleted(sn) {
		t.Fatalf("confirmed: exit %d, stderr %q", code, errOut)
	}
	sn = add()
	code, _, errOut = runLvss(t, srv.Socket, "", "delete", "shadows", "--shadow", sn.String(), "--quiet")
	if code != 0 || errOut != "" || !srv.Fake.Deleted(sn) {
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
	srv := startLvssd(t)
	_, ids := makeSet(t, srv.Socket, vss.CtxClientAccessible, srv.Volume(t, "srv"))
	sn := ids[0].String()
	// A relative PATH is taken from the current directory; a private one,
	// since lvssd refuses to expose a volume others cannot reach where
	// everyone can (L53).
	wd, _ := filepath.EvalSymlinks(t.TempDir())
	t.Chdir(wd)
	mnt := filepath.Join(wd, "mnt")

	code, out, errOut := runLvss(t, srv.Socket, "", "expose", sn, "mnt", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if m := jsonObject(t, out); m["snapshot_id"] != sn || m["exposed_path"] != mnt || len(m) != 2 {
		t.Errorf("%v", m)
	}
	// Exposed locally, at the absolute path, the whole snapshot.
	_, out, _ = runLvss(t, srv.Socket, "", "list", "shadows", "--json")
	if ss := jsonArray(t, out); ss[0]["exposed_path"] != mnt ||
		!slices.Contains(ss[0]["attributes"].([]any), any("VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY")) {
		t.Errorf("list after expose: %v", ss[0])
	}

	code, out, _ = runLvss(t, srv.Socket, "", "unexpose", sn)
	if code != 0 || out != "Shadow copy "+sn+" is no longer exposed at "+mnt+"\n" {
		t.Errorf("unexpose: exit %d, %q", code, out)
	}
	code, _, errOut = runLvss(t, srv.Socket, "", "unexpose", sn, "--json")
	if e := errorObject(t, errOut); code != 1 || e["name"] != "VSS_E_OBJECT_NOT_FOUND" || !strings.HasPrefix(e["message"], "UnexposeSnapshot ") {
		t.Errorf("unexpose twice: exit %d, stderr %q", code, errOut)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "expose", sn, "/mnt/x")
	if code != 0 || out != "Shadow copy "+sn+" is exposed at /mnt/x\n" {
		t.Errorf("expose text: exit %d, %q", code, out)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "unexpose", sn, "--json")
	if m := jsonObject(t, out); code != 0 || m["exposed_path"] != "" || m["previous_exposed_path"] != "/mnt/x" {
		t.Errorf("unexpose --json: exit %d, %v", code, m)
	}
	if got := srv.Fake.Calls(); !slices.Equal(slices.DeleteFunc(got, func(c string) bool { return c != "Expose" && c != "Unexpose" }),
		[]string{"Expose", "Unexpose", "Expose", "Unexpose"}) {
		t.Errorf("the provider saw %v", got)
	}

	code, _, errOut = runLvss(t, srv.Socket, "", "expose", uuid.NewString(), "/mnt/x")
	if code != 1 || !strings.HasPrefix(errOut, "lvss: VSS_E_OBJECT_NOT_FOUND (0x80042308): ExposeSnapshot ") {
		t.Errorf("unknown snapshot: exit %d, stderr %q", code, errOut)
	}
	for _, argv := range [][]string{{"expose", "nope", "/mnt"}, {"expose", sn}, {"unexpose"}, {"unexpose", "GUID_NULL"}} {
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
		"## `lvss list shadows [--set ID] [--for PATH] [--after ID] [--limit N] [--json]`\n",
		"## `lvss create shadow --for PATH [--for PATH...] [--provider NAME|ID] [--context NAME] [--json]`\n",
		"## `lvss delete shadows (--shadow ID | --set ID | --for PATH [--oldest] | --all | --keep N | --older-than DURATION) [--dry-run] [--quiet] [--json]`\n",
		"### Retention: `--keep N`, `--older-than DURATION`\n",
		"## `lvss expose ID PATH [--json]`, `lvss expose --smb NAME [--path-from-root DIR] ID [--json]` and `lvss unexpose ID [--json]`\n",
		"## Where snapshots are kept\n",
		"## `lvss samba-config PATH [--name NAME] [--json]`\n",
	} {
		if !strings.Contains(string(b), h) {
			t.Errorf("docs/cli.md has no section %q", h)
		}
	}
}

// TestCreateShadowFailsAfterCreation: once DoSnapshotSet succeeded the set
// exists, so it is printed even when a later step fails, and the failure
// is the exit status. Here lvssd goes away while the writers handle
// BackupComplete (the writer stops the server and does not answer).
func TestCreateShadowFailsAfterCreation(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "srv")
	w := newTestWriter(srv.Volume(t, "srv/files"))
	runTestWriter(t, srv.Socket, "files", "", vss.LevelFrontEnd, w)
	w.hangAt(writer.EventBackupComplete)
	w.on(func(ev *writer.Event) {
		if ev.Type == writer.EventBackupComplete {
			go srv.Stop()
		}
	})
	code, out, errOut := runLvss(t, srv.Socket, "", "create", "shadow", "--for", vol, "--context", "VSS_CTX_APP_ROLLBACK", "--json")
	// The first failure after creation is the exit status; the later ones
	// (the snapshot's properties, lost with the connection) are warnings.
	// With --json they are in the result, and stderr is the error alone.
	if e := errorObject(t, errOut); code != 1 || e["name"] != "VSS_E_UNEXPECTED" ||
		!strings.HasPrefix(e["message"], "BackupComplete: session stream broken") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	m := jsonObject(t, out)
	snaps := m["snapshots"].([]any)
	if len(snaps) != 1 || snaps[0].(map[string]any)["snapshot_id"] == "" || snaps[0].(map[string]any)["snapshot_set_id"] != m["snapshot_set_id"] {
		t.Errorf("snapshots %v", snaps)
	}
	if ws := m["warnings"].([]any); len(ws) == 0 || !strings.Contains(ws[0].(string), "BackupComplete") {
		t.Errorf("warnings %v", ws)
	}
	// No second BackupComplete, no Abort of a created set, and the
	// snapshot (persistent) was not deleted.
	// (The SDK raises a BackupShutdown of its own when the connection is
	// lost; whether it did yet does not matter here.)
	if got := w.seen(); len(got) < 6 || !slices.Equal(got[:6], []string{"PrepareBackup", "PrepareSnapshot", "Freeze", "Thaw",
		"PostSnapshot", "BackupComplete"}) || slices.Contains(got[6:], "BackupComplete") || slices.Contains(got, "Abort") {
		t.Errorf("the writer saw %v", got)
	}
	id, err := uuid.Parse(snaps[0].(map[string]any)["snapshot_id"].(string))
	if err != nil || srv.Fake.Deleted(id) || srv.Fake.Live() != 1 {
		t.Errorf("snapshot %v (%v): deleted %v, %d left", id, err, srv.Fake.Deleted(id), srv.Fake.Live())
	}
}

// TestDeleteSessionFailure stays on client/clienttest's scripted daemon:
// the real coordinator never refuses InitializeForBackup or SetContext
// VSS_CTX_ALL in a fresh session, and nothing can break the connection
// between the listing and the session's first call, so a delete whose
// session fails before any snapshot goes can only be scripted.
func TestDeleteSessionFailure(t *testing.T) {
	srv := clienttest.Start(t)
	sn := &v1.SnapshotProp{SnapshotId: uuid.NewString(), SnapshotSetId: uuid.NewString(), SnapshotsCount: 1,
		OriginalVolume: "/srv", ProviderId: uuid.NewString(), Context: int32(vss.CtxClientAccessible),
		Status: int32(vss.SnapshotCreated)}
	srv.Set(func(s *clienttest.Server) {
		s.Shadows = []*v1.SnapshotProp{sn}
		s.Fail["SetContext"] = vsserr.UnsupportedContext
	})
	code, out, errOut := runLvss(t, srv.Socket, "", "delete", "shadows", "--all", "--json")
	if e := errorObject(t, errOut); code != 1 || e["name"] != "VSS_E_UNSUPPORTED_CONTEXT" || !strings.HasPrefix(e["message"], "SetContext VSS_CTX_ALL") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	m := jsonObject(t, out)
	f, _ := m["failed"].(map[string]any)
	if f == nil || f["snapshot_id"] != "" || f["name"] != "VSS_E_UNSUPPORTED_CONTEXT" || len(m["not_deleted"].([]any)) != 1 ||
		len(m["deleted"].([]any)) != 0 || len(srv.Deleted()) != 0 {
		t.Errorf("%v", m)
	}
}
