package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runWriter(argv ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), argv, &out, &errb)
	return code, out.String(), errb.String()
}

// A bad command line is 2 and only that, with the usage hint; with
// --log-format json (before or after the mistake) it is one JSON object.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		hint string
	}{
		{[]string{"exec", "--nope"}, "run 'lvss-writer exec --help'"},
		{[]string{"bogus"}, "run 'lvss-writer --help'"},
		{[]string{"sqlite", "extra"}, "run 'lvss-writer sqlite --help'"},
		{[]string{"sqlite"}, "run 'lvss-writer sqlite --help'"}, // --db is required
		{[]string{"sqlite", "--db", "/a.db", "--level", "system-rm"}, "run 'lvss-writer sqlite --help'"},
		{[]string{"redis", "--log-level", "loud"}, "run 'lvss-writer redis --help'"},
	} {
		code, out, errOut := runWriter(tc.argv...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errOut, "lvss-writer: ") ||
			!strings.HasSuffix(errOut, "\nhint: "+tc.hint+"\n") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.argv, code, out, errOut)
		}
		for _, jsonFlag := range [][]string{{"--log-format", "json"}, {"--log-format=json"}} {
			argv := append(append([]string{}, tc.argv...), jsonFlag...)
			code, _, errOut = runWriter(argv...)
			var v struct {
				Error map[string]string `json:"error"`
			}
			if code != exitUsage || strings.Count(errOut, "\n") != 1 || json.Unmarshal([]byte(errOut), &v) != nil ||
				len(v.Error) != 4 || v.Error["name"] != "E_INVALIDARG" || v.Error["hresult"] != "0x80070057" ||
				v.Error["message"] == "" || v.Error["hint"] != tc.hint {
				t.Errorf("%v: exit %d, stderr %q", argv, code, errOut)
			}
		}
	}
}

// A writer left out of the build by its lvss_no<name> tag is named as
// such, as VSS_E_NOT_SUPPORTED with how to get it, not as an unknown
// command; --help lists what the build leaves out.
func TestOmittedWriter(t *testing.T) {
	saved := omittedWriters
	t.Cleanup(func() { omittedWriters = saved })
	omittedWriters = append(append([]string{}, saved...), "nosuch")

	code, out, errOut := runWriter("nosuch", "--db", "x")
	if code != exitFailed || out != "" ||
		errOut != "lvss-writer: VSS_E_NOT_SUPPORTED (0x8004232F): this lvss-writer was built without the nosuch writer (build tag lvss_nonosuch)\n"+
			"hint: build lvss-writer without -tags lvss_nonosuch ('make build' builds every writer)\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runWriter("--help")
	if code != exitOK || !strings.Contains(out, "This build leaves out the writers: ") || !strings.Contains(out, "nosuch.") ||
		strings.Contains(out, "  nosuch ") {
		t.Errorf("--help: exit %d, stdout %q", code, out)
	}
}

func TestVersionFlag(t *testing.T) {
	code, out, _ := runWriter("--version")
	if code != exitOK || !strings.HasPrefix(out, "lvss-writer ") || !strings.Contains(out, "(commit ") {
		t.Fatalf("--version: exit %d, %q", code, out)
	}
}

// --args-file (lvss-writer@.service) reads the arguments from a file, one
// per line; a file that cannot be read is a usage error naming it.
func TestArgsFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "w.conf")
	if err := os.WriteFile(f, []byte("# the instance's arguments\nexec\n--name\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// "exec --name" lacks the name's value: the file's arguments reached
	// the exec writer's flag parsing.
	code, _, errOut := runWriter("--args-file", f)
	if code != exitUsage || !strings.Contains(errOut, "flag needs an argument: --name") ||
		!strings.Contains(errOut, "hint: run 'lvss-writer exec --help'") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runWriter("--args-file", f+".missing")
	if code != exitUsage || !strings.Contains(errOut, "--args-file: open "+f+".missing") {
		t.Fatalf("missing file: exit %d, stderr %q", code, errOut)
	}
}
