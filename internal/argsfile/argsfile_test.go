package argsfile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pg.conf")
	content := "# the writer for the main cluster\n\npostgres\n  --dsn=host=/run/postgresql user=postgres  \n--instance-name\n15/main\n#--checkpoint=false\n"
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []string{"postgres", "--dsn=host=/run/postgresql user=postgres", "--instance-name", "15/main", "--log-level", "debug"}
	for _, argv := range [][]string{{Flag, f, "--log-level", "debug"}, {Flag + "=" + f, "--log-level", "debug"}} {
		got, err := Expand(argv)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Expand(%q) = %q, %v; want %q", argv, got, err, want)
		}
	}
	if got, err := Expand([]string{"list", Flag, f}); err != nil || !slices.Equal(got, []string{"list", Flag, f}) {
		t.Errorf("not first: %q %v", got, err)
	}
	for argv, says := range map[string]string{
		Flag:                                  "needs a FILE",
		Flag + "=":                            "needs a FILE",
		Flag + " " + filepath.Join(dir, "no"): "no such file",
	} {
		if _, err := Expand(strings.Fields(argv)); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("Expand(%q): %v, want %q", argv, err, says)
		}
	}
	nested := filepath.Join(dir, "nested.conf")
	if err := os.WriteFile(nested, []byte("backup\n"+Flag+"=x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Expand([]string{Flag, nested}); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("nested: %v", err)
	}
}
