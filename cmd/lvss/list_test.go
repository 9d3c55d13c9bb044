package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

func TestListWritersEmpty(t *testing.T) {
	srv := startLvssd(t)
	code, out, _ := runLvss(t, srv.Socket, "", "list", "writers", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("exit %d, out %q; want []", code, out)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "list", "writers")
	if code != 0 || !strings.Contains(out, "No writers") {
		t.Fatalf("exit %d, out %q", code, out)
	}
	if got := released(t, srv.Socket); len(got) != 0 {
		t.Fatalf("list writers started sessions: %v", got)
	}
}

func TestListWriters(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "pg")
	pg := newTestWriter(vol)
	pg.identify = func(md *writer.Metadata) error {
		if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, LogicalPath: "pg", Name: "data",
			Selectable: true}); err != nil {
			return err
		}
		if err := md.AddFiles("pg", "data", "/var/lib/postgresql", "*", true, "", 0); err != nil {
			return err
		}
		if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, Name: "wal"}); err != nil {
			return err
		}
		return md.AddFiles("", "wal", "/var/lib/pg_wal/", "*.wal", false, "", 0)
	}
	pg.failAt(writer.EventFreeze, writer.Fail(vsserr.WriterErrorTimeout, vsserr.Fail, "checkpoint took too long"))
	id := runTestWriter(t, srv.Socket, "postgres", "main", vss.LevelBackEnd, pg)
	// A writer whose Identify fails is listed, without components.
	broken := newTestWriter(t.TempDir())
	broken.failAt(writer.EventIdentify, writer.Fail(vsserr.WriterErrorRetryable, 0, "not ready"))
	lvssdtest.SubscribeWriter(t, srv.Socket, writer.Identity{ClassID: uuid.New(), Name: "broken"}, broken)

	// A session in which the postgres writer vetoes Freeze: its state and
	// error are what the listing shows.
	var sid uuid.UUID
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := client.Run(ctx, srv.Socket, func(ctx context.Context, bc *client.BackupComponents) error {
		var err error
		if _, _, err = setSequence(ctx, bc, vss.CtxBackup, []string{vol}); err != nil {
			return err
		}
		sid, err = bc.GetSessionID(ctx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	code, out, _ := runLvss(t, srv.Socket, "", "list", "writers", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var ws []map[string]any
	if err := json.Unmarshal([]byte(out), &ws); err != nil || len(ws) != 2 {
		t.Fatalf("not a JSON array of 2: %v\n%s", err, out)
	}
	// By name: broken, postgres.
	w := ws[1]
	for k, want := range map[string]any{
		"name": "postgres", "writer_id": id.ClassID.String(), "instance_name": "main",
		"state": "VSS_WS_FAILED_AT_FREEZE", "state_value": 9.0, "last_error": "VSS_E_WRITERERROR_TIMEOUT",
		"last_error_hresult": "0x800423F2", "application_message": "checkpoint took too long",
		"application_hresult": "0x80004005", "last_session_id": sid.String(), "level": "VSS_APP_BACK_END",
	} {
		if w[k] != want {
			t.Errorf("%s = %v, want %v", k, w[k], want)
		}
	}
	if _, err := uuid.Parse(w["instance_id"].(string)); err != nil {
		t.Errorf("instance_id %v", w["instance_id"])
	}
	comps := w["components"].([]any)
	c0, c1 := comps[0].(map[string]any), comps[1].(map[string]any)
	if c0["component"] != `pg\data` || c0["paths"].([]any)[0] != "/var/lib/postgresql/* (recursive)" ||
		c1["component"] != "wal" || c1["paths"].([]any)[0] != "/var/lib/pg_wal/*.wal" {
		t.Errorf("components: %v", comps)
	}
	if b := ws[0]; b["name"] != "broken" || len(b["components"].([]any)) != 0 || b["metadata_error"] != nil {
		t.Errorf("a writer whose Identify failed: %v", b)
	}

	code, out, _ = runLvss(t, srv.Socket, "", "list", "writers")
	for _, want := range []string{
		"Writer name: 'postgres'\n", "   Writer Id: " + id.ClassID.String() + "\n",
		"   State: VSS_WS_FAILED_AT_FREEZE (9)\n", "   Last error: VSS_E_WRITERERROR_TIMEOUT (0x800423F2)\n",
		"   Application: E_FAIL (0x80004005): checkpoint took too long\n",
		"   Last session: " + sid.String() + "\n", "      pg\\data (VSS_CT_FILEGROUP)\n         /var/lib/postgresql/* (recursive)\n",
		"Writer name: 'broken'\n", "   Components: none\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
}

// TestListWritersBadMetadata: a Writer Metadata Document that does not
// parse does not hide the writer. lvssd keeps only documents it parsed,
// so this formats a listing by hand.
func TestListWritersBadMetadata(t *testing.T) {
	o := writerInfoObj(client.WriterInfo{InstanceID: uuid.New(), WriterID: uuid.New(), Name: "broken", WMD: "<nope", State: vss.WSStable})
	if e, ok := o.get("metadata_error"); !ok || !strings.HasPrefix(e.(string), "VSS_E_") {
		t.Errorf("metadata_error: %v", o)
	}
	var b strings.Builder
	if err := writeWritersText(&b, []obj{o}); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "Writer name: 'broken'\n") || !strings.Contains(out, "   Metadata: ") ||
		!strings.Contains(out, "   Components: none\n") {
		t.Errorf("text:\n%s", out)
	}
}

func TestListProviders(t *testing.T) {
	srv := startLvssd(t)
	code, out, _ := runLvss(t, srv.Socket, "", "list", "providers", "--json")
	var ps []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 1 || ps[0]["provider_id"] != srv.Fake.Info().ID.String() || ps[0]["type"] != "VSS_PROV_SOFTWARE" {
		t.Fatalf("exit %d: %s", code, out)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "list", "providers")
	if code != 0 || !strings.Contains(out, "Provider name: 'fake'") {
		t.Fatalf("exit %d: %s", code, out)
	}
}
