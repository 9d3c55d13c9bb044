package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
)

// errorObject parses stderr as exactly one JSON error object and checks
// that it has the four fields, and only them.
func errorObject(t *testing.T, errOut string) map[string]string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(errOut))
	var v map[string]map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("stderr is not a JSON object: %v\n%s", err, errOut)
	}
	if dec.More() || len(v) != 1 || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("stderr is more than one JSON object: %q", errOut)
	}
	e, ok := v["error"]
	if !ok || len(e) != 4 {
		t.Fatalf("want {\"error\": {4 fields}}: %q", errOut)
	}
	out := map[string]string{}
	for _, k := range []string{"hresult", "name", "message", "hint"} {
		s, ok := e[k].(string)
		if !ok {
			t.Fatalf("%s is not a string: %q", k, errOut)
		}
		out[k] = s
	}
	return out
}

// --json is one flag of the root: before or after the verb it is the
// same, and the verb's output is unchanged by where it is.
func TestJSONFlagAnywhere(t *testing.T) {
	srv := startLvssd(t)
	runTestWriter(t, srv.Socket, "pg", "main", vss.LevelBackEnd, newTestWriter(srv.Volume(t, "pg")))
	for _, verb := range [][]string{{"list", "writers"}, {"list", "providers"}, {"list", "shadows"}} {
		c1, before, _ := runLvss(t, srv.Socket, "", append([]string{"--json"}, verb...)...)
		c2, after, _ := runLvss(t, srv.Socket, "", append(verb, "--json")...)
		if c1 != 0 || c2 != 0 || before != after || !json.Valid([]byte(before)) || !strings.HasPrefix(before, "[") {
			t.Errorf("%v: --json first (exit %d) %q, last (exit %d) %q", verb, c1, before, c2, after)
		}
	}
}

func TestErrorJSON(t *testing.T) {
	srv := startLvssd(t)
	id := uuid.New().String()
	for _, argv := range [][]string{
		{"--json", "expose", id, t.TempDir()},
		{"expose", id, t.TempDir(), "--json"},
	} {
		code, out, errOut := runLvss(t, srv.Socket, "", argv...)
		if code != exitFailed || out != "" {
			t.Fatalf("%v: exit %d, stdout %q", argv, code, out)
		}
		e := errorObject(t, errOut)
		if e["hresult"] != "0x80042308" || e["name"] != "VSS_E_OBJECT_NOT_FOUND" ||
			!strings.HasPrefix(e["message"], "ExposeSnapshot "+id) || !strings.Contains(e["hint"], "lvss list shadows") {
			t.Errorf("%v: %v", argv, e)
		}
	}
	// A usage error, even one that stops the parsing before --json.
	for _, argv := range [][]string{{"--json", "list", "writers", "extra"}, {"list", "writers", "--nope", "--json"}} {
		code, out, errOut := runLvss(t, srv.Socket, "", argv...)
		if code != exitUsage || out != "" {
			t.Fatalf("%v: exit %d, stdout %q", argv, code, out)
		}
		if e := errorObject(t, errOut); e["name"] != "E_INVALIDARG" || e["hint"] != "run 'lvss list writers --help'" {
			t.Errorf("%v: %v", argv, e)
		}
	}
}

func TestErrorTextHint(t *testing.T) {
	srv := startLvssd(t)
	id := uuid.New().String()
	code, out, errOut := runLvss(t, srv.Socket, "", "unexpose", id)
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if code != exitFailed || out != "" || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "lvss: VSS_E_OBJECT_NOT_FOUND (0x80042308): GetSnapshotProperties "+id) ||
		!strings.HasPrefix(lines[1], "hint: check the ID") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = runLvss(t, srv.Socket, "", "delete", "shadows")
	if code != exitUsage || !strings.HasPrefix(errOut, "lvss: delete shadows needs exactly one of") ||
		!strings.HasSuffix(errOut, "\nhint: run 'lvss delete shadows --help'\n") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// lvssd unreachable is 69 for every verb that talks to it, in text with the
// hint, in JSON as the error object.
func TestUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nothing.sock")
	dir := t.TempDir()
	for _, argv := range [][]string{
		{"list", "writers"}, {"list", "providers"}, {"list", "shadows"}, {"list", "events"}, {"events"}, {"status"},
		{"backup", "--for", dir}, {"create", "shadow", "--for", dir},
		{"delete", "shadows", "--all", "--quiet"}, {"expose", uuid.NewString(), dir}, {"unexpose", uuid.NewString()},
	} {
		code, out, errOut := runLvss(t, sock, "", argv...)
		if code != exitUnreachable || out != "" || !strings.HasPrefix(errOut, "lvss: VSS_E_UNEXPECTED (0x80042302): lvssd socket "+sock+": not there") ||
			!strings.HasSuffix(errOut, "\nhint: start lvssd, or point --socket / $LVSS_SOCKET at it\n") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", argv, code, out, errOut)
		}
		code, out, errOut = runLvss(t, sock, "", append(argv, "--json")...)
		if code != exitUnreachable || out != "" {
			t.Errorf("%v --json: exit %d, stdout %q", argv, code, out)
		}
		if e := errorObject(t, errOut); e["name"] != "VSS_E_UNEXPECTED" || !strings.HasPrefix(e["hint"], "start lvssd") {
			t.Errorf("%v --json: %v", argv, e)
		}
	}
	// lvss call: its result is the report, the status is 69.
	code, out, errOut := runLvss(t, sock, "InitializeForBackup\n", "call")
	if code != exitUnreachable || errOut != "" || !strings.HasPrefix(out, "CreateVssBackupComponents: VSS_E_UNEXPECTED") {
		t.Errorf("call: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// A failing call in lvss call is its result on stdout, one per line even
// in JSON mode, with nothing on stderr and exit 1: the global --json and
// the error object do not touch it.
func TestCallFailureIsItsResult(t *testing.T) {
	srv := startLvssd(t)
	for _, argv := range [][]string{{"--json", "call"}, {"call", "--json"}} {
		code, out, errOut := runLvss(t, srv.Socket, "InitializeForBackup\nPrepareForBackup\nStartSnapshotSet\n", argv...)
		res := jsonLines(t, out)
		if code != exitFailed || errOut != "" || len(res) != 3 || res[1]["name"] != "VSS_E_BAD_STATE" || res[2]["call"] != "Release" {
			t.Errorf("%v: exit %d, stderr %q, results %v", argv, code, errOut, res)
		}
	}
}

// --version needs no lvssd: the binary's version, commit and build date.
func TestVersionFlag(t *testing.T) {
	code, out, errOut := runLvss(t, "/nonexistent/lvssd.sock", "", "--version")
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "lvss ") || !strings.Contains(out, "(commit ") || !strings.Contains(out, ", built ") {
		t.Fatalf("lvss --version: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// --args-file (lvss-backup@.service) reads the arguments from a file, one
// per line, a COMMAND with spaces and quotes included.
func TestArgsFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "b.conf")
	if err := os.WriteFile(f, []byte("# nightly\nbackup\n--for\n/srv/data\n--type\nweekly\n--\nsh -c 'echo \"two words\"'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--args-file", f, "--socket", "/nonexistent.sock"}, strings.NewReader(""), &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), `--type "weekly"`) {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	code = run(context.Background(), []string{"--args-file=" + f + ".missing"}, strings.NewReader(""), &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "--args-file: open ") || !strings.Contains(errb.String(), "hint: ") {
		t.Fatalf("missing file: exit %d, stderr %q", code, errb.String())
	}
}
