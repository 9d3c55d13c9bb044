package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
)

// lvss expose --smb against an lvssd whose [samba] is a throwaway smbd
// with registry shares: the JSON and text of expose, list shadows and
// unexpose, the share in Samba's listing, and the refusals with their
// hints. (test/e2e reads files through such shares of real btrfs and
// image snapshots.)
func TestExposeSMB(t *testing.T) {
	testenv.SkipIfShort(t, "starts smbd")
	smb := testenv.StartSamba(t, testenv.SambaOptions{RegistryShares: true, Shares: []testenv.SambaShare{{Name: "infile", Path: t.TempDir()}}})
	srv := lvssdtest.StartInProcess(t, lvssdtest.InProcessOptions{SambaConf: smb.Conf})
	_, ids := makeSet(t, srv.Socket, vss.CtxClientAccessible, srv.Volume(t, "srv"))
	sn := ids[0].String()

	code, out, errOut := runLvss(t, srv.Socket, "", "expose", "--smb", "monday", sn, "--json")
	if code != 0 {
		t.Fatalf("expose --smb: exit %d: %s", code, errOut)
	}
	if m := jsonObject(t, out); m["snapshot_id"] != sn || m["exposed_share"] != "monday" || m["exposed_share_path"] != "" || len(m) != 3 {
		t.Errorf("expose --smb --json: %v", m)
	}
	if shares := smb.Shares(t); !slices.Contains(shares, "monday") {
		t.Fatalf("smbclient -L lists %v", shares)
	}
	_, out, _ = runLvss(t, srv.Socket, "", "list", "shadows", "--json")
	if ss := jsonArray(t, out); ss[0]["exposed_share"] != "monday" || ss[0]["exposed_path"] != "" ||
		!slices.Contains(ss[0]["attributes"].([]any), any("VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY")) {
		t.Errorf("list shadows --json after expose --smb: %v", ss[0])
	}
	_, out, _ = runLvss(t, srv.Socket, "", "list", "shadows")
	if !strings.Contains(out, "         Exposed remotely as: SMB share monday\n") || !strings.Contains(out, "Exposed remotely") {
		t.Errorf("list shadows:\n%s", out)
	}

	// Refusals, each with the advice of remote exposure.
	_, ids2 := makeSet(t, srv.Socket, vss.CtxClientAccessible, srv.Volume(t, "srv"))
	for _, c := range []struct {
		argv       []string
		name, hint string
	}{
		{[]string{"expose", "--smb", "MONDAY", ids2[0].String()}, "VSS_E_OBJECT_ALREADY_EXISTS", "choose another share name"},
		{[]string{"expose", "--smb", "infile", ids2[0].String()}, "VSS_E_OBJECT_ALREADY_EXISTS", "choose another share name"},
		{[]string{"expose", "--smb", "tues:day", ids2[0].String()}, "E_INVALIDARG", "at most 80 characters"},
		{[]string{"expose", "--smb", "x", "--path-from-root", "/nothere", ids2[0].String()}, "E_INVALIDARG", "--path-from-root names a directory"},
		{[]string{"expose", "--smb", "again", sn}, "VSS_E_OBJECT_ALREADY_EXISTS", "lvss unexpose ID"},
	} {
		code, _, errOut := runLvss(t, srv.Socket, "", append(c.argv, "--json")...)
		if e := errorObject(t, errOut); code != 1 || e["name"] != c.name || !strings.Contains(e["hint"], c.hint) {
			t.Errorf("%v: exit %d, %v; want %s with a hint saying %q", c.argv, code, e, c.name, c.hint)
		}
	}
	for _, argv := range [][]string{{"expose", "--smb", "x"}, {"expose", "--smb", "x", sn, "/mnt"}, {"expose", "--path-from-root", "/d", sn, "/mnt"},
		{"expose", "--smb", "", sn}} {
		if code, _, _ := runLvss(t, srv.Socket, "", argv...); code != 2 {
			t.Errorf("%v: exit %d, want 2", argv, code)
		}
	}

	code, out, _ = runLvss(t, srv.Socket, "", "unexpose", sn, "--json")
	if m := jsonObject(t, out); code != 0 || m["previous_exposed_share"] != "monday" || m["previous_exposed_path"] != "" || m["exposed_share"] != "" {
		t.Errorf("unexpose --json: exit %d, %v", code, m)
	}
	if shares := smb.Shares(t); slices.Contains(shares, "monday") {
		t.Fatalf("the share is still listed after unexpose: %v", shares)
	}
	host, _ := os.Hostname()
	code, out, _ = runLvss(t, srv.Socket, "", "expose", "--smb", "tuesday", sn)
	if want := "Shadow copy " + sn + " is shared read-only as SMB share tuesday (\\\\" + host + "\\tuesday)\n"; code != 0 || out != want {
		t.Errorf("expose --smb text: exit %d, %q, want %q", code, out, want)
	}
	code, out, _ = runLvss(t, srv.Socket, "", "unexpose", sn)
	if code != 0 || out != "Shadow copy "+sn+" is no longer shared as SMB share tuesday\n" {
		t.Errorf("unexpose text: exit %d, %q", code, out)
	}

	// Remote exposure off: VSS_E_NOT_SUPPORTED, and the hint says what to do.
	bare := startLvssd(t)
	_, ids3 := makeSet(t, bare.Socket, vss.CtxClientAccessible, bare.Volume(t, "srv"))
	code, _, errOut = runLvss(t, bare.Socket, "", "expose", "--smb", "x", ids3[0].String())
	if code != 1 || !strings.HasPrefix(errOut, "lvss: VSS_E_NOT_SUPPORTED (0x8004232F): ExposeSnapshot ") ||
		!strings.Contains(errOut, "hint: sharing snapshots needs Samba: apt-get install samba; 'registry shares = yes'") {
		t.Errorf("remote exposure off: exit %d:\n%s", code, errOut)
	}
}
