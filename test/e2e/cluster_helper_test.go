package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// 'lvss cluster' is lvss-cluster run in lvss's place (L69): the verbs, their
// flags, --json and --args-file all reach it, and its exit status is
// lvss's. No etcd is needed to see that: each command below fails before
// it would reach one.
func TestClusterVerbsRunInLvssCluster(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none.sock")

	r := lvssdtest.Lvss(t, socket, "", "cluster", "--help")
	if r.Code != 0 {
		t.Fatalf("lvss cluster --help: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, want := range []string{"lvss cluster [command]", "backup", "status", "list", "delete", "--etcd"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("lvss cluster --help lacks %q:\n%s", want, r.Stdout)
		}
	}

	// A usage error of lvss-cluster's own, in JSON (--json given before
	// 'cluster', to lvss), with the usage exit status.
	r = lvssdtest.Lvss(t, socket, "", "--json", "cluster", "status")
	if r.Code != 2 || r.Stdout != "" {
		t.Fatalf("lvss --json cluster status without etcd: exit %d, stdout %q, want 2 and nothing\n%s", r.Code, r.Stdout, r.Stderr)
	}
	var e struct {
		Error struct{ Name, Message string }
	}
	if err := json.Unmarshal([]byte(r.Stderr), &e); err != nil || e.Error.Name != "E_INVALIDARG" || !strings.Contains(e.Error.Message, "LVSS_ETCD") {
		t.Fatalf("lvss --json cluster status without etcd: stderr %q (%v), want E_INVALIDARG naming $LVSS_ETCD", r.Stderr, err)
	}

	// The same through --args-file: lvss-cluster gets the expanded words.
	args := filepath.Join(t.TempDir(), "args")
	if err := os.WriteFile(args, []byte("# lvss-backup@.service style\ncluster\nlist\n--etcd\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// --args-file comes first, before --socket.
	out, err := exec.Command(lvssdtest.Bin(t, "lvss"), "--args-file", args).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "--etcd") {
		t.Fatalf("lvss --args-file (cluster list --etcd): %v, want exit status 2 with a complaint about --etcd\n%s", err, out)
	}
}

// Without lvss-cluster beside lvss or in its libexec directory, 'lvss
// cluster' says so with a hint, and every other verb still works.
func TestClusterHelperMissing(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "libexec")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "lvss")
	// Built here, to point its libexec directory at an empty one whatever
	// this machine has installed.
	out, err := exec.Command("go", "build", "-ldflags", "-X main.libexecDir="+empty, "-o", bin, "github.com/lvss/lvss/cmd/lvss").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "cluster", "status")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("lvss cluster status without lvss-cluster: %v, want exit status 1\n%s", err, stderr.String())
	}
	for _, want := range []string{"VSS_E_NOT_SUPPORTED", filepath.Join(dir, "lvss-cluster"), filepath.Join(empty, "lvss-cluster"), "hint: install the whole lvss package"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("lvss cluster status without lvss-cluster: stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "lvss ") {
		t.Errorf("lvss --version without lvss-cluster: %v %q", err, out)
	}
}
