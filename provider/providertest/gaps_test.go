package providertest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvss/lvss/provider/fake"
	"github.com/lvss/lvss/provider/providertest"
)

// gapCase is the harness the child process runs, chosen by name.
const gapCaseEnv = "PROVIDERTEST_GAP_CASE"

// fakeSetup is a fake provider's Setup with without as its Without.
func fakeSetup(t *testing.T, without map[string]string) providertest.Setup {
	root, _ := filepath.EvalSymlinks(t.TempDir())
	vol, second := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, d := range []string{vol, second} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := fake.New(vol, second)
	return providertest.Setup{Provider: p, Volume: vol, Second: second, Without: without}
}

// TestGapCase is run only as the child of TestGaps, with one broken harness.
func TestGapCase(t *testing.T) {
	var without map[string]string
	switch os.Getenv(gapCaseEnv) {
	case "":
		return // not a child: TestGaps runs the cases
	case "undeclared":
		// Unsupported, ReadSnapshot, ExposeDir, Restart, Residue and Hold
		// are missing with no reason.
		without = map[string]string{}
	case "stale":
		without = map[string]string{"Second": "claims there is none"}
	}
	providertest.Run(t, providertest.Harness{New: func(t *testing.T) providertest.Setup { return fakeSetup(t, without) }})
}

// TestGaps checks that the suite cannot be skipped by oversight: a Setup
// that lacks an ability without saying why in Without fails the checks
// needing it, and one that gives a reason for what it has fails too.
func TestGaps(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"undeclared", "the Setup has no ReadSnapshot, and Setup.Without does not say why"},
		{"stale", `Setup.Without["Second"] says why the Setup lacks what it has`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestGapCase$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), gapCaseEnv+"="+c.name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a harness with an unexplained gap:\n%s", out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("the failure does not say %q:\n%s", c.want, out)
			}
		})
	}
}
