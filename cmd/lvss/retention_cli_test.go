package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/client/clienttest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// These run delete shadows --keep / --older-than against the real
// coordinator with the fake provider (startLvssd), and against the
// scripted daemon for what the real one cannot be made to do on cue.

// retentionResult is delete shadows --json.
type retentionResult struct {
	DryRun     bool             `json:"dry_run"`
	Rule       map[string]any   `json:"rule"`
	Selected   []map[string]any `json:"selected"`
	Deleted    []string         `json:"deleted"`
	NotDeleted []string         `json:"not_deleted"`
	Kept       []map[string]any `json:"kept"`
	Skipped    []map[string]any `json:"skipped"`
	Failed     map[string]any   `json:"failed"`
	Failures   []map[string]any `json:"failures"`
}

// decisionFields are the fields of every selected, kept and skipped entry.
var decisionFields = []string{"snapshot_id", "snapshot_set_id", "original_volume", "context", "created", "session_id",
	"exposed_path", "exposed_share", "reason_code", "reason"}

// codes maps each snapshot ID to "list/reason_code". A selected snapshot
// lvssd refused at deletion is in skipped too, and that is its final word.
func (r retentionResult) codes(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range []struct {
		name    string
		entries []map[string]any
	}{{"selected", r.Selected}, {"kept", r.Kept}, {"skipped", r.Skipped}} {
		list := l.name
		for _, e := range l.entries {
			if len(e) != len(decisionFields) {
				t.Errorf("%s entry has %d fields, want %v: %v", list, len(e), decisionFields, e)
			}
			for _, k := range decisionFields {
				if _, ok := e[k]; !ok {
					t.Errorf("%s entry lacks %q: %v", list, k, e)
				}
			}
			id := e["snapshot_id"].(string)
			if prev, dup := out[id]; dup && (!strings.HasPrefix(prev, "selected/") || list != "skipped" ||
				(e["reason_code"] != "in_use" && e["reason_code"] != "gone")) {
				t.Errorf("%s is listed as %s and as %s/%s", id, prev, list, e["reason_code"])
			}
			out[id] = list + "/" + e["reason_code"].(string)
		}
	}
	return out
}

func decodeJSON(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
}

func runRetention(t *testing.T, socket string, wantCode int, argv ...string) retentionResult {
	t.Helper()
	code, out, errOut := runLvss(t, socket, "", append([]string{"delete", "shadows", "--json"}, argv...)...)
	if code != wantCode {
		t.Fatalf("%v: exit %d, want %d: %s\n%s", argv, code, wantCode, errOut, out)
	}
	var r retentionResult
	decodeJSON(t, out, &r)
	return r
}

func TestDeleteRetentionUsage(t *testing.T) {
	srv := startLvssd(t)
	id := uuid.NewString()
	const mixHint = "\nhint: narrow retention with --for PATH and --context NAME; see 'lvss delete shadows --help'\n"
	const helpHint = "\nhint: run 'lvss delete shadows --help'\n"
	for _, c := range []struct {
		argv []string
		hint string
	}{
		{[]string{"--keep", "2", "--shadow", id}, mixHint},
		{[]string{"--keep", "2", "--set", id}, mixHint},
		{[]string{"--older-than", "1d", "--all"}, mixHint},
		{[]string{"--keep", "1", "--for", "/srv", "--oldest"}, mixHint},
		{[]string{"--keep", "-1"}, helpHint},
		{[]string{"--keep", "x"}, helpHint},
		{[]string{"--older-than", "30"}, helpHint},
		{[]string{"--older-than", "0d"}, helpHint},
		{[]string{"--older-than", "-3d"}, helpHint},
		{[]string{"--context", "client_accessible", "--all"}, helpHint},
		{[]string{"--keep", "1", "--context", "backup"}, helpHint},
		{[]string{"--keep", "1", "--context", "all"}, helpHint},
		{[]string{"--keep", "1", "--context", "nonsense"}, helpHint},
		{[]string{"--keep", "1", "--for", ""}, helpHint},
		{[]string{"--dry-run"}, helpHint},
		{[]string{"--max-per-volume", "0"}, helpHint},
		{[]string{"--max-per-volume", "3", "--all"}, mixHint},
	} {
		code, _, errOut := runLvss(t, srv.Socket, "", append([]string{"delete", "shadows"}, c.argv...)...)
		if code != 2 || !strings.HasSuffix(errOut, c.hint) {
			t.Errorf("%v: exit %d, stderr %q", c.argv, code, errOut)
		}
	}
	code, _, errOut := runLvss(t, srv.Socket, "", "delete", "shadows", "--keep", "2", "--all", "--json")
	if e := errorObject(t, errOut); code != 2 || e["name"] != "E_INVALIDARG" || !strings.Contains(e["message"], "do not go with --shadow, --set, --all or --oldest") ||
		!strings.HasPrefix(e["hint"], "narrow retention") {
		t.Errorf("--json: exit %d, %v", code, e)
	}
	if got := released(t, srv.Socket); len(got) != 0 {
		t.Errorf("bad command lines started sessions: %v", got)
	}
}

// TestDeleteRetention: per volume and context, a dry run first, then the
// real run; the exposed snapshot, the auto-release one and the persistent
// one of a running session stay.
func TestDeleteRetention(t *testing.T) {
	srv := startLvssd(t)
	srvVol, homeVol := srv.Volume(t, "srv"), srv.Volume(t, "home")
	ca, ar := vss.CtxClientAccessible, vss.CtxAppRollback
	mk := func(c vss.Context, vol string) uuid.UUID { _, ids := makeSet(t, srv.Socket, c, vol); return ids[0] }
	// Made in this order, so created in it: srv/ca s1..s4 (s1 exposed),
	// srv/ar a1..a2, home/ca h1..h3.
	s1, a1, h1 := mk(ca, srvVol), mk(ar, srvVol), mk(ca, homeVol)
	s2, h2, s3, a2, h3, s4 := mk(ca, srvVol), mk(ca, homeVol), mk(ca, srvVol), mk(ar, srvVol), mk(ca, homeVol), mk(ca, srvVol)
	if code, _, errOut := runLvss(t, srv.Socket, "", "expose", s1.String(), "/mnt/s1"); code != 0 {
		t.Fatalf("expose: %s", errOut)
	}
	// A backup running now: an auto-release snapshot of srv, and a
	// persistent set being made (its session has not ended).
	live := holdSet(t, srv.Socket, vss.CtxFileShareBackup, srvVol)
	making := holdSet(t, srv.Socket, ca, srvVol)

	var list []map[string]any
	_, out, _ := runLvss(t, srv.Socket, "", "list", "shadows", "--json")
	decodeJSON(t, out, &list)
	if len(list) != 11 {
		t.Fatalf("listed %d snapshots", len(list))
	}
	want := map[string]string{
		s1.String(): "skipped/exposed", s2.String(): "selected/beyond_keep", s3.String(): "kept/newest", s4.String(): "kept/newest",
		a1.String(): "kept/newest", a2.String(): "kept/newest",
		h1.String(): "selected/beyond_keep", h2.String(): "kept/newest", h3.String(): "kept/newest",
		live.ids[0].String(): "skipped/auto_release", making.ids[0].String(): "skipped/session_running",
	}

	dry := runRetention(t, srv.Socket, 0, "--keep", "2", "--dry-run")
	if !dry.DryRun || len(dry.Deleted) != 0 || dry.Failed != nil || len(dry.Failures) != 0 || len(dry.Rule) != 5 ||
		dry.Rule["keep"] != 2.0 || dry.Rule["older_than"] != nil || dry.Rule["cutoff"] != nil || dry.Rule["context"] != nil {
		t.Fatalf("dry run: %+v", dry)
	}
	if got := dry.codes(t); !mapsEqual(got, want) {
		t.Errorf("dry run decided\n%v\nwant\n%v", got, want)
	}
	// Oldest first (h1 was made before s2), and nothing deleted.
	if got := []any{dry.Selected[0]["snapshot_id"], dry.Selected[1]["snapshot_id"]}; len(dry.Selected) != 2 ||
		!slices.Equal(got, []any{h1.String(), s2.String()}) || !slices.Equal(dry.NotDeleted, []string{h1.String(), s2.String()}) {
		t.Errorf("selected %v, not deleted %v", dry.Selected, dry.NotDeleted)
	}
	if n := srv.Fake.Live(); n != 11 || srv.Fake.Deleted(s2) || srv.Fake.Deleted(h1) {
		t.Fatalf("the dry run deleted: %d left", n)
	}
	// The text of a dry run.
	code, text, _ := runLvss(t, srv.Socket, "", "delete", "shadows", "--keep", "2", "--dry-run", "--for", homeVol)
	wantText := "Would delete shadow copy " + h1.String() + " (" + homeVol + ", VSS_CTX_CLIENT_ACCESSIBLE, created "
	if code != 0 || !strings.HasPrefix(text, wantText) || !strings.Contains(text, "): not one of the newest 2\n") ||
		!strings.HasSuffix(text, "\nDry run: 1 would be deleted, 2 kept, 0 skipped; nothing deleted.\n") || strings.Count(text, "\n") != 4 {
		t.Errorf("dry run text: exit %d\n%s", code, text)
	}

	// The real run: --for limits it to srv, --context to client-accessible.
	r := runRetention(t, srv.Socket, 0, "--keep", "2", "--for", srvVol, "--context", "client_accessible")
	if !slices.Equal(r.Deleted, []string{s2.String()}) || len(r.NotDeleted) != 0 || r.Failed != nil || r.DryRun ||
		r.Rule["context"] != "VSS_CTX_CLIENT_ACCESSIBLE" {
		t.Fatalf("run: %+v", r)
	}
	wantSrv := map[string]string{}
	// The auto-release snapshot is of another context, so not mentioned.
	for _, id := range []uuid.UUID{s1, s2, s3, s4, making.ids[0]} {
		wantSrv[id.String()] = want[id.String()]
	}
	if got := r.codes(t); !mapsEqual(got, wantSrv) {
		t.Errorf("run decided\n%v\nwant\n%v", got, wantSrv)
	}
	if !srv.Fake.Deleted(s2) || srv.Fake.Deleted(s1) || srv.Fake.Deleted(h1) || srv.Fake.Live() != 10 {
		t.Errorf("the provider: s2 deleted %v, s1 %v, h1 %v, %d left", srv.Fake.Deleted(s2), srv.Fake.Deleted(s1), srv.Fake.Deleted(h1), srv.Fake.Live())
	}
	// Nothing left to do there: no session is opened for nothing.
	sessions := len(released(t, srv.Socket))
	r = runRetention(t, srv.Socket, 0, "--keep", "2", "--for", srvVol, "--context", "client_accessible")
	if len(r.Selected) != 0 || len(r.Kept) != 2 || len(r.Skipped) != 2 {
		t.Errorf("again: %+v", r)
	}
	if got := released(t, srv.Socket); len(got) != sessions {
		t.Errorf("a session for nothing: %v", got[sessions:])
	}

	// Once the making session ended, its snapshot counts: with --keep 2 it
	// and s4 stay, and s3 goes. Text this time.
	if _, err := making.bc.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	code, text, errOut := runLvss(t, srv.Socket, "", "delete", "shadows", "--keep", "2", "--for", srvVol, "--context", "VSS_CTX_CLIENT_ACCESSIBLE")
	if code != 0 || !strings.Contains(text, "Deleted shadow copy "+s3.String()+" ("+srvVol+", VSS_CTX_CLIENT_ACCESSIBLE, created ") ||
		!strings.Contains(text, "Skipped shadow copy "+s1.String()) || !strings.HasSuffix(text, "\n1 deleted, 2 kept, 1 skipped.\n") {
		t.Errorf("text run: exit %d, stderr %q\n%s", code, errOut, text)
	}
	if !srv.Fake.Deleted(s3) || srv.Fake.Deleted(making.ids[0]) || srv.Fake.Deleted(s1) {
		t.Errorf("the provider: s3 deleted %v", srv.Fake.Deleted(s3))
	}

	// --older-than with an age this test cannot outlast: everything is
	// newer than the cutoff, which the rule reports.
	before := time.Now()
	r = runRetention(t, srv.Socket, 0, "--older-than", "1w", "--for", homeVol)
	cutoff, err := time.Parse(time.RFC3339Nano, r.Rule["cutoff"].(string))
	if err != nil || cutoff.Before(before.Add(-7*24*time.Hour)) || cutoff.After(time.Now().Add(-7*24*time.Hour)) ||
		r.Rule["older_than"] != "1w" || r.Rule["keep"] != nil || len(r.Selected) != 0 || len(r.Kept) != 3 {
		t.Errorf("--older-than 1w: %v: %+v", err, r)
	}
	for _, k := range r.Kept {
		if k["reason_code"] != "newer" || !strings.HasPrefix(k["reason"].(string), "created after the cutoff ") {
			t.Errorf("kept %v", k)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDeleteRetentionRefusedAndFailed stays on the scripted daemon: a
// snapshot exposed between the listing and its deletion (lvssd refuses it,
// VSS_E_VOLUME_IN_USE) cannot be timed with the real one, nor a provider
// that fails one deletion of several. The refused one is skipped, not
// failed; the failure is reported and the next snapshot still goes.
func TestDeleteRetentionRefusedAndFailed(t *testing.T) {
	srv := clienttest.Start(t)
	now := time.Now()
	mk := func(age time.Duration) *v1.SnapshotProp {
		return &v1.SnapshotProp{SnapshotId: uuid.NewString(), SnapshotSetId: uuid.NewString(), SnapshotsCount: 1,
			OriginalVolume: "/srv", ProviderId: uuid.NewString(), Context: int32(vss.CtxClientAccessible),
			Status: int32(vss.SnapshotCreated), CreatedUnixNano: now.Add(-age).UnixNano(), SessionId: uuid.NewString()}
	}
	refused, failing, goes, kept := mk(4*time.Hour), mk(3*time.Hour), mk(2*time.Hour), mk(time.Hour)
	srv.Set(func(s *clienttest.Server) {
		s.Shadows = []*v1.SnapshotProp{kept, goes, failing, refused}
		s.DeleteFail = map[string]vsserr.HRESULT{refused.SnapshotId: vsserr.VolumeInUse, failing.SnapshotId: vsserr.ProviderVeto}
	})
	code, out, errOut := runLvss(t, srv.Socket, "", "delete", "shadows", "--keep", "1", "--json")
	if e := errorObject(t, errOut); code != 1 || e["name"] != "VSS_E_PROVIDER_VETO" || !strings.HasPrefix(e["message"], "DeleteSnapshots "+failing.SnapshotId) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var r retentionResult
	decodeJSON(t, out, &r)
	if !slices.Equal(r.Deleted, []string{goes.SnapshotId}) || !slices.Equal(r.NotDeleted, []string{refused.SnapshotId, failing.SnapshotId}) {
		t.Errorf("deleted %v, not deleted %v", r.Deleted, r.NotDeleted)
	}
	if len(r.Failures) != 1 || r.Failed == nil || r.Failed["snapshot_id"] != failing.SnapshotId || r.Failed["hresult"] != "0x80042306" ||
		r.Failures[0]["name"] != "VSS_E_PROVIDER_VETO" {
		t.Errorf("failed %v, failures %v", r.Failed, r.Failures)
	}
	if got := r.codes(t); got[refused.SnapshotId] != "skipped/in_use" || got[kept.SnapshotId] != "kept/newest" || len(r.Selected) != 3 {
		t.Errorf("decided %v", got)
	}
	if sk := r.Skipped[0]; !strings.Contains(sk["reason"].(string), "lvssd refused to delete it") {
		t.Errorf("skipped %v", sk)
	}
	// The selected list says what was chosen, in the order tried.
	if got := []any{r.Selected[0]["snapshot_id"], r.Selected[1]["snapshot_id"], r.Selected[2]["snapshot_id"]}; !slices.Equal(got,
		[]any{refused.SnapshotId, failing.SnapshotId, goes.SnapshotId}) {
		t.Errorf("selected %v", got)
	}
	if !slices.Equal(srv.Deleted(), []string{goes.SnapshotId}) {
		t.Errorf("the daemon deleted %v", srv.Deleted())
	}
	// Text: each outcome on its line.
	srv.Set(func(s *clienttest.Server) { s.Shadows = []*v1.SnapshotProp{kept, failing, refused} })
	code, out, _ = runLvss(t, srv.Socket, "", "delete", "shadows", "--keep", "1")
	if code != 1 || !strings.Contains(out, "Skipped shadow copy "+refused.SnapshotId) ||
		!strings.Contains(out, "Failed to delete shadow copy "+failing.SnapshotId) || !strings.Contains(out, "VSS_E_PROVIDER_VETO (0x80042306): fake lvssd fails") ||
		!strings.HasSuffix(out, "0 deleted, 1 kept, 1 skipped, 1 not deleted.\n") {
		t.Errorf("text: exit %d\n%s", code, out)
	}
}

// --max-per-volume bounds each volume's snapshots of every kind, deleting
// the oldest of the context retention looks at; a bound at or above
// lvssd's cap is lowered to the cap less one, and the report says so.
func TestDeleteMaxPerVolume(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "share")
	mk := func(c vss.Context) uuid.UUID { _, ids := makeSet(t, srv.Socket, c, vol); return ids[0] }
	c1, a1, c2, c3 := mk(vss.CtxClientAccessible), mk(vss.CtxAppRollback), mk(vss.CtxClientAccessible), mk(vss.CtxClientAccessible)
	r := runRetention(t, srv.Socket, 0, "--for", vol, "--context", "client_accessible", "--keep", "3", "--max-per-volume", "2")
	if !slices.Equal(r.Deleted, []string{c1.String(), c2.String()}) || r.Rule["max_per_volume"] != 2.0 || r.Rule["keep"] != 3.0 {
		t.Fatalf("run: %+v", r)
	}
	want := map[string]string{c1.String(): "selected/beyond_max_per_volume", c2.String(): "selected/beyond_max_per_volume",
		c3.String(): "kept/newest"}
	if got := r.codes(t); !mapsEqual(got, want) {
		t.Errorf("decided %v, want %v", got, want)
	}
	if srv.Fake.Deleted(a1) || !srv.Fake.Deleted(c1) {
		t.Errorf("the provider: the app-rollback snapshot deleted %v, c1 %v", srv.Fake.Deleted(a1), srv.Fake.Deleted(c1))
	}
	r = runRetention(t, srv.Socket, 0, "--for", vol, "--max-per-volume", "600", "--dry-run")
	if r.Rule["max_per_volume"] != 511.0 || len(r.Selected) != 0 {
		t.Errorf("a bound above the cap: %+v", r.Rule)
	}
	code, text, _ := runLvss(t, srv.Socket, "", "delete", "shadows", "--for", vol, "--max-per-volume", "512", "--dry-run")
	if code != 0 || !strings.HasPrefix(text, "--max-per-volume 512 is not below lvssd's cap (limits.max_snapshots_per_volume): 511 is used.\n") ||
		!strings.Contains(text, "holds at most 511 snapshots (--max-per-volume)") {
		t.Errorf("text: exit %d\n%s", code, text)
	}
}
