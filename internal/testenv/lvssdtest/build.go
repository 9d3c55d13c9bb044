package lvssdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// packages are the binaries the harness can build, by the name of the
// built file, with their package path relative to the module root.
var packages = map[string]string{
	"lvssd":       "./cmd/lvssd",
	"lvss":        "./cmd/lvss",
	"lvss-writer": "./cmd/lvss-writer",
	"logwriter":   "./examples/logwriter",
	"bankapp":     "./examples/bankapp",
	// lvssd built with the lvss_failpoints tag (internal/failpoint), for
	// the fault matrix: built on its own, never with the others.
	"lvssd-failpoints": "./cmd/lvssd",
	// lvss with its cluster verbs, which 'lvss cluster' runs from beside
	// lvss (cmd/lvss/cluster_exec.go): built with every lvss.
	"lvss-cluster": "./cmd/lvss",
}

// tagged are the binaries built with build tags, each in a go build of
// its own.
var tagged = map[string]string{"lvssd-failpoints": "lvss_failpoints", "lvss-cluster": "lvss_cluster"}

// allBinaries is the order Binaries builds them in (one go build).
var allBinaries = []string{"lvssd", "lvss", "lvss-writer", "logwriter", "bankapp"}

// bins is the per-process cache of built binaries. A failed build is
// remembered too: every later test would fail the same way, and building
// again for each would only make the failure slower.
var bins struct {
	mu     sync.Mutex
	dir    string
	built  map[string]bool
	failed map[string]error
}

// Bin returns the path of the named binary (a key of the harness's list:
// lvssd, lvss, lvss-writer, logwriter, bankapp; lvss comes with
// lvss-cluster beside it), building it first if no
// test of this process has yet. It fails t if the build fails.
func Bin(t testing.TB, name string) string {
	t.Helper()
	dir, err := build(name)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// Binaries builds every binary the harness knows (in one go build, which
// compiles them in parallel) and returns the directory holding them.
func Binaries(t testing.TB) string {
	t.Helper()
	dir, err := build(allBinaries...)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func build(names ...string) (string, error) {
	dir, err := buildNamed(names...)
	if err == nil && slices.Contains(names, "lvss") {
		// 'lvss cluster' runs lvss-cluster from lvss's own directory.
		_, err = buildNamed("lvss-cluster")
	}
	return dir, err
}

func buildNamed(names ...string) (string, error) {
	bins.mu.Lock()
	defer bins.mu.Unlock()
	if bins.dir == "" {
		d, err := os.MkdirTemp("", "lvss-bin-")
		if err != nil {
			return "", err
		}
		// Runnable by every uid: the access tests run lvss and the
		// writers as users of their own.
		if err := os.Chmod(d, 0o755); err != nil {
			return "", err
		}
		bins.dir, bins.built, bins.failed = d, map[string]bool{}, map[string]error{}
	}
	var pkgs, missing []string
	if len(names) == 1 && tagged[names[0]] != "" {
		return buildTagged(names[0])
	}
	for _, n := range names {
		if tagged[n] != "" {
			return "", fmt.Errorf("lvssdtest: build %s on its own", n)
		}
		pkg, ok := packages[n]
		switch {
		case !ok:
			return "", fmt.Errorf("lvssdtest: no binary %q (known: %v)", n, allBinaries)
		case bins.failed[n] != nil:
			return "", bins.failed[n]
		case !bins.built[n]:
			pkgs, missing = append(pkgs, pkg), append(missing, n)
		}
	}
	if len(pkgs) == 0 {
		return bins.dir, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", append([]string{"build", "-o", bins.dir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir, cmd.Env = root, buildEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		err = fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
		for _, n := range missing {
			bins.failed[n] = err
		}
		return "", err
	}
	for _, n := range missing {
		bins.built[n] = true
	}
	return bins.dir, nil
}

// buildEnv builds the binaries as the package does (make deb): static,
// without cgo, so that the tests and the benchmarks run what users
// install (a dynamically linked lvss, for one, takes about 1 ms longer to
// start).
func buildEnv() []string { return append(os.Environ(), "CGO_ENABLED=0") }

// buildTagged builds one binary with its tags. Caller holds bins.mu.
func buildTagged(name string) (string, error) {
	if err := bins.failed[name]; err != nil {
		return "", err
	}
	if bins.built[name] {
		return bins.dir, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-tags", tagged[name], "-o", filepath.Join(bins.dir, name), packages[name])
	cmd.Dir, cmd.Env = root, buildEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		bins.failed[name] = fmt.Errorf("go build -tags %s %s: %v\n%s", tagged[name], packages[name], err, out)
		return "", bins.failed[name]
	}
	bins.built[name] = true
	return bins.dir, nil
}

// moduleRoot finds the directory of the module's go.mod: first as the go
// command sees it from the test's working directory (its package
// directory), else from where this file was compiled.
func moduleRoot() (string, error) {
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if mod := strings.TrimSpace(string(out)); mod != "" && mod != os.DevNull {
			return filepath.Dir(mod), nil
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Join(filepath.Dir(file), "..", "..", "..")
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root, nil
		}
	}
	return "", fmt.Errorf("lvssdtest: cannot find the module root (go env GOMOD says none)")
}

// RemoveBinaries deletes the binaries built so far. Call it once, after
// m.Run, from TestMain (Main does).
func RemoveBinaries() {
	bins.mu.Lock()
	defer bins.mu.Unlock()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
		bins.dir, bins.built, bins.failed = "", nil, nil
	}
}

// Main runs the tests, removes the binaries they built and exits with
// their status: the whole TestMain of a package that uses Bin. It keeps
// the machine's /etc/lvss/writers from the tests (LVSS_WRITERS_DIR).
func Main(m *testing.M) {
	// The machine's own lvss configuration must not reach a test: lvss
	// doctor reads the writer units' files from $LVSS_WRITERS_DIR, else
	// /etc/lvss/writers; a directory that does not exist is none.
	os.Setenv("LVSS_WRITERS_DIR", filepath.Join(os.TempDir(), fmt.Sprintf("lvss-no-writers-%d", os.Getpid())))
	code := m.Run()
	RemoveBinaries()
	os.Exit(code)
}
