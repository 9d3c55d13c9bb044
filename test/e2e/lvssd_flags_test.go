package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// runLvssd runs the lvssd binary with args and returns its exit status and
// output.
func runLvssd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(lvssdtest.Bin(t, "lvssd"), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// --check-config validates without starting: file, line and reason, exit
// 1; a valid file, exit 0; a missing file named explicitly is an error,
// the missing default file is not.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(bad, []byte("[timeouts]\nfreeze = \"10s\"\nbogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte("[limits]\nmax_snapshots_per_volume = 64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args         []string
		code         int
		stdout, says string
	}{
		{[]string{"--check-config", bad}, 1, "", bad + `:3:1: unknown key "timeouts.bogus"`},
		{[]string{"--config", bad, "--check-config"}, 1, "", bad + ":3:1:"},
		{[]string{"--check-config", good}, 0, good + ": valid", ""},
		{[]string{"--check-config", filepath.Join(dir, "missing.toml")}, 1, "", "no such file"},
		{[]string{"--config", filepath.Join(dir, "absent-default.toml"), "--check-config"}, 1, "", "no such file"},
		{[]string{"--check-config", good, bad}, 2, "", "at most one FILE"},
		{[]string{"--nope"}, 2, "", "hint: run 'lvssd --help'"},
		{[]string{"stray"}, 2, "", `unexpected argument "stray"`},
	} {
		code, out, errOut := runLvssd(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.says) {
			t.Errorf("lvssd %v: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out, errOut, tc.code, tc.stdout, tc.says)
		}
	}
}

// --version names the binary, the version, the commit and the build date.
func TestVersion(t *testing.T) {
	code, out, _ := runLvssd(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "lvssd ") || !strings.Contains(out, "(commit ") || !strings.Contains(out, ", built ") {
		t.Fatalf("lvssd --version: exit %d, %q", code, out)
	}
}
