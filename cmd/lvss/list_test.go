package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/client/clienttest"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

func TestListWritersEmpty(t *testing.T) {
	srv := clienttest.Start(t)
	code, out, _ := runLvss(t, srv.Socket, "", "list", "writers", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("exit %d, out %q; want []", code, out)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "list", "writers")
	if code != 0 || !strings.Contains(out, "No writers") {
		t.Fatalf("exit %d, out %q", code, out)
	}
	if got := srv.Calls(); len(got) != 0 {
		t.Fatalf("list writers made session calls: %v", got)
	}
}

func TestListWriters(t *testing.T) {
	wid, iid, sid := uuid.New(), uuid.New(), uuid.New()
	wmd := &document.WriterMetadata{
		Identity: document.Identity{WriterID: wid, InstanceID: iid, FriendlyName: "postgres", InstanceName: "main",
			Usage: vss.UsageUserData, Source: vss.SourceTransactedDB},
		RestoreMethod: document.RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WRENever},
		Components: []document.Component{
			{Type: vss.ComponentFileGroup, LogicalPath: "pg", Name: "data", Selectable: true,
				Files: []document.FileDesc{{Path: "/var/lib/postgresql", Filespec: "*", Recursive: true}}},
			{Type: vss.ComponentFileGroup, Name: "wal",
				Files: []document.FileDesc{{Path: "/var/lib/pg_wal/", Filespec: "*.wal"}}},
		},
	}
	x, err := wmd.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	srv := clienttest.Start(t)
	srv.Set(func(s *clienttest.Server) {
		s.Writers = []*v1.WriterInfo{
			{InstanceId: iid.String(), WriterId: wid.String(), Name: "postgres", InstanceName: "main", Level: 2,
				WmdXml: string(x), LastSessionId: sid.String(), State: int32(vss.WSFailedAtFreeze),
				Failure: uint32(vsserr.WriterErrorTimeout), ApplicationHresult: uint32(vsserr.Fail),
				ApplicationMessage: "checkpoint took too long", Pid: 99},
			{InstanceId: uuid.NewString(), WriterId: uuid.NewString(), Name: "broken", WmdXml: "<nope", State: 1},
		}
	})
	code, out, _ := runLvss(t, srv.Socket, "", "list", "writers", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var ws []map[string]any
	if err := json.Unmarshal([]byte(out), &ws); err != nil || len(ws) != 2 {
		t.Fatalf("not a JSON array of 2: %v\n%s", err, out)
	}
	w := ws[0]
	for k, want := range map[string]any{
		"name": "postgres", "writer_id": wid.String(), "instance_id": iid.String(), "instance_name": "main",
		"state": "VSS_WS_FAILED_AT_FREEZE", "state_value": 9.0, "last_error": "VSS_E_WRITERERROR_TIMEOUT",
		"last_error_hresult": "0x800423F2", "application_message": "checkpoint took too long",
		"last_session_id": sid.String(), "level": "VSS_APP_BACK_END",
	} {
		if w[k] != want {
			t.Errorf("%s = %v, want %v", k, w[k], want)
		}
	}
	comps := w["components"].([]any)
	c0, c1 := comps[0].(map[string]any), comps[1].(map[string]any)
	if c0["component"] != `pg\data` || c0["paths"].([]any)[0] != "/var/lib/postgresql/* (recursive)" ||
		c1["component"] != "wal" || c1["paths"].([]any)[0] != "/var/lib/pg_wal/*.wal" {
		t.Errorf("components: %v", comps)
	}
	if ws[1]["metadata_error"] == nil || len(ws[1]["components"].([]any)) != 0 {
		t.Errorf("a writer with a bad WMD: %v", ws[1])
	}

	code, out, _ = runLvss(t, srv.Socket, "", "list", "writers")
	for _, want := range []string{
		"Writer name: 'postgres'\n", "   Writer Id: " + wid.String() + "\n",
		"   State: VSS_WS_FAILED_AT_FREEZE (9)\n", "   Last error: VSS_E_WRITERERROR_TIMEOUT (0x800423F2)\n",
		"   Last session: " + sid.String() + "\n", "      pg\\data (VSS_CT_FILEGROUP)\n         /var/lib/postgresql/* (recursive)\n",
		"Writer name: 'broken'\n", "   Components: none\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
}

func TestListProviders(t *testing.T) {
	srv := clienttest.Start(t)
	pid := uuid.New()
	srv.Set(func(s *clienttest.Server) {
		s.Providers = []*v1.ProviderProp{{ProviderId: pid.String(), Name: "btrfs", Type: int32(vss.ProvSoftware), Version: "1.0"}}
	})
	code, out, _ := runLvss(t, srv.Socket, "", "list", "providers", "--json")
	var ps []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 1 || ps[0]["provider_id"] != pid.String() || ps[0]["type"] != "VSS_PROV_SOFTWARE" {
		t.Fatalf("exit %d: %s", code, out)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "list", "providers")
	if code != 0 || !strings.Contains(out, "Provider name: 'btrfs'") {
		t.Fatalf("exit %d: %s", code, out)
	}
}
