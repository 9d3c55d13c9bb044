package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/lvss/lvss"

// A layer is a set of packages and the layers they may import from.
// Patterns are module-relative: "x" is package x, "x/..." is x and every
// package under it. A package belongs to the layer of its most specific
// pattern, so provider/confval is a leaf although provider/... is not.
type layer struct {
	name string
	why  string
	pkgs []string
	// may lists the layers whose packages these may import. A layer is
	// in its own list when its packages may import one another (leaves
	// may not); a package's tests may import from its own layer anyway.
	may []string
}

// layers is the rule, bottom up. Data flows one way: requester →
// coordinator → (writers, providers) → catalog, and the requester side
// (client, writer SDK, CLI, shipped writers) reaches the daemon over the
// socket only. Two branches stand on the shared base: the daemon's
// (provider → resources → coordinator → server → lvssd) and the clients'.
var layers = []layer{
	{name: "leaf", why: "small helpers any layer may use; they import nothing of lvss, so using one links nothing more",
		pkgs: []string{"provider/confval", "internal/mountinfo", "internal/cmdout", "internal/procgroup", "internal/outbox", "internal/inplace", "internal/testenv", "internal/version", "internal/argsfile", "internal/benchreport"}},
	// backupdoc is here, not with the clients: the backup archive is the
	// documents plus a manifest, it needs nothing but the spec, and both
	// the CLI and a future daemon-side export or restore must read it.
	{name: "spec", why: "the spec's vocabulary: HRESULTs, enumerations, the XML documents and the backup archive that carries them",
		pkgs: []string{"vsserr", "vss", "document", "backupdoc", "restoreopts"},
		may:  []string{"spec", "leaf"}},
	{name: "wire", why: "the gRPC contract and its one translation point, shared by the daemon and its clients",
		pkgs: []string{"api/...", "internal/wire"},
		may:  []string{"wire", "spec", "leaf"}},
	{name: "provider", why: "the provider contract, the providers and their configuration types; they know nothing of the daemon",
		pkgs: []string{"provider/..."},
		may:  []string{"provider", "spec", "leaf"}},
	{name: "resources", why: "what the coordinator uses besides providers: the bbolt catalog, the freeze guard, the failpoints of test builds",
		pkgs: []string{"internal/catalog", "internal/freeze", "internal/failpoint"},
		may:  []string{"spec", "leaf"}},
	{name: "coordinator", why: "sessions, writers, snapshot sets, and the daemon's preflight of its host (lvss doctor): no gRPC, no configuration file",
		pkgs: []string{"internal/coordinator", "internal/preflight"},
		may:  []string{"resources", "provider", "spec", "leaf"}},
	{name: "server", why: "gRPC services and access control over the coordinator",
		pkgs: []string{"internal/server"},
		may:  []string{"coordinator", "resources", "provider", "wire", "spec", "leaf"}},
	{name: "metrics", why: "lvssd's Prometheus metrics: an Observer of the coordinator, which itself links no metrics library",
		pkgs: []string{"internal/metrics"},
		may:  []string{"coordinator", "spec", "leaf"}},
	{name: "cluster", why: "the protocol of cluster snapshot sets in etcd (keys, records, barriers) and its requester: shared by lvssd and lvss, linking no daemon internals",
		pkgs: []string{"internal/cluster"},
		may:  []string{"spec", "leaf"}},
	{name: "clusteragent", why: "a host's side of cluster snapshot sets: runs its part in lvssd's coordinator",
		pkgs: []string{"internal/cluster/agent"},
		may:  []string{"cluster", "coordinator", "resources", "provider", "spec", "leaf"}},
	{name: "config", why: "lvssd's configuration file, composed of the providers' own sections; only lvssd's main reads it",
		pkgs: []string{"internal/config"},
		may:  []string{"cluster", "provider", "spec", "leaf"}},
	{name: "daemon", why: "lvssd, which wires the daemon's branch together",
		pkgs: []string{"cmd/lvssd"},
		may:  []string{"config", "metrics", "server", "clusteragent", "cluster", "coordinator", "resources", "provider", "wire", "spec", "leaf"}},
	{name: "harness", why: "the test harness (test-only): builds the binaries and starts lvssd, as a process or in the test's own",
		pkgs: []string{"internal/testenv/lvssdtest"},
		may:  []string{"client", "server", "coordinator", "resources", "provider", "wire", "spec", "leaf"}},
	{name: "clusterharness", why: "the cluster mode's test ground (test-only): hosts as network namespaces, an etcd cluster across them, an lvssd per host",
		pkgs: []string{"internal/testenv/cluster"},
		may:  []string{"harness", "client", "spec", "leaf"}},
	{name: "client", why: "requesters, writers and their tools: other processes, which reach lvssd over its socket only",
		pkgs: []string{"client/...", "writer/...", "writers/...", "cmd/lvss", "cmd/lvss-writer", "internal/clierr", "examples/..."},
		may:  []string{"client", "harness", "cluster", "wire", "spec", "leaf"}},
	{name: "tests", why: "whole-system tests and benchmarks, which assemble daemons and clients",
		pkgs: []string{"test/...", "internal/layering"},
		may:  []string{"client", "harness", "clusterharness", "daemon", "config", "metrics", "server", "clusteragent", "cluster", "coordinator", "resources", "provider", "wire", "spec", "leaf"}},
}

// testOnly packages import package testing: only tests may import them,
// so that no binary carries it.
var testOnly = []string{"internal/testenv", "internal/testenv/lvssdtest", "internal/testenv/cluster", "provider/providertest", "writer/writertest", "client/clienttest"}

// links are the guarantees the architecture states about what a binary or
// SDK carries. They follow from the layers for lvss's own packages; they
// are checked on their own because they also cover external modules, and
// because a failure here shows the chain that pulls the package in.
var links = []struct {
	who, what []string // patterns; a pattern whose first element has a dot is a full import path
	why       string
}{
	{who: layerByName("client").pkgs,
		what: []string{"go.etcd.io/bbolt/...", "provider/...", "internal/catalog", "internal/coordinator", "internal/server", "internal/config", "internal/freeze"},
		why:  "requesters and writers reach lvssd over its socket; its storage, providers and internals stay in the daemon"},
	{who: []string{"provider/..."},
		what: []string{"internal/config", "internal/catalog", "internal/coordinator", "internal/server"},
		why:  "a provider is driven by the coordinator and depends on nothing of the daemon; it owns its configuration type"},
	{who: []string{"internal/coordinator"},
		what: []string{"internal/server", "internal/config", "internal/metrics", "github.com/prometheus/...", "cmd/..."},
		why:  "the coordinator is driven by the server and configured through its Options by lvssd's main; metrics observe it through its Observer interface"},
	{who: layerByName("client").pkgs,
		what: []string{"github.com/prometheus/..."},
		why:  "metrics are lvssd's; requesters and writers carry no metrics library"},
}

// TestLayers checks every import of every file against the table.
func TestLayers(t *testing.T) {
	pkgs := listPackages(t)
	var bad []string
	for _, p := range modulePackages(pkgs) {
		l := layerOf(p.ImportPath)
		if l == nil {
			bad = append(bad, fmt.Sprintf("%s is in no layer: add it to the table in internal/layering/layering_test.go", rel(p.ImportPath)))
			continue
		}
		files := map[string][]string{} // forbidden import → files importing it
		for _, imp := range fileImports(t, p) {
			to := layerOf(imp.path)
			if !isModule(imp.path) || imp.path == p.ImportPath || to == nil {
				continue // not ours, itself, or reported as in no layer
			}
			if slices.Contains(l.may, to.name) || imp.test && to == l {
				continue
			}
			files[imp.path] = append(files[imp.path], imp.file)
		}
		for imp, in := range files {
			to := layerOf(imp)
			may := "nothing of lvss"
			if len(l.may) > 0 {
				may = "only from " + strings.Join(l.may, ", ")
			}
			bad = append(bad, fmt.Sprintf("%s imports %s, a layer above or beside its own:\n\tlayer %q (%s) may import %s;\n\t%s is in layer %q (%s)\n\tchain: %s → %s, in %s",
				rel(p.ImportPath), rel(imp), l.name, rel(p.ImportPath), may, rel(imp), to.name, to.why,
				rel(p.ImportPath), rel(imp), strings.Join(in, ", ")))
		}
	}
	report(t, bad)
}

// TestTestOnly keeps package testing out of everything but tests.
func TestTestOnly(t *testing.T) {
	pkgs := listPackages(t)
	var bad []string
	for _, p := range modulePackages(pkgs) {
		if matchAny(testOnly, p.ImportPath) {
			continue // suites may build on each other
		}
		for _, imp := range fileImports(t, p) {
			if !imp.test && matchAny(testOnly, imp.path) {
				bad = append(bad, fmt.Sprintf("%s imports %s (%s), which only tests may import: it links package testing into whatever uses %s\n\tchain: %s → %s",
					rel(p.ImportPath), rel(imp.path), imp.file, rel(p.ImportPath), rel(p.ImportPath), rel(imp.path)))
			}
		}
	}
	report(t, bad)
}

// TestLinks checks what each binary and SDK carries, transitively.
func TestLinks(t *testing.T) {
	pkgs := listPackages(t)
	var bad []string
	for _, rule := range links {
		for _, p := range modulePackages(pkgs) {
			if !matchAny(rule.who, p.ImportPath) {
				continue
			}
			chains := forbiddenChains(pkgs, p.ImportPath, rule.what)
			if len(chains) == 0 {
				continue
			}
			var also []string
			for _, c := range chains[1:] {
				also = append(also, rel(c[len(c)-1]))
			}
			msg := fmt.Sprintf("%s links %s: %s\n\tchain: %s",
				rel(p.ImportPath), rel(chains[0][len(chains[0])-1]), rule.why, relChain(chains[0]))
			if len(also) > 0 {
				msg += "\n\talso links: " + strings.Join(also, ", ")
			}
			bad = append(bad, msg)
		}
	}
	report(t, bad)
}

// TestTable keeps the table honest: names it uses exist, each pattern
// still matches a package, and no package is claimed by two layers.
func TestTable(t *testing.T) {
	names := map[string]bool{}
	for _, l := range layers {
		if names[l.name] {
			t.Errorf("layer %q is in the table twice", l.name)
		}
		names[l.name] = true
	}
	for _, l := range layers {
		for _, m := range l.may {
			if !names[m] {
				t.Errorf("layer %q may import from %q, which is no layer", l.name, m)
			}
		}
	}
	mods := modulePackages(listPackages(t))
	for _, l := range layers {
		for _, pat := range l.pkgs {
			if !slices.ContainsFunc(mods, func(p *pkg) bool { return match(pat, p.ImportPath) }) {
				t.Errorf("layer %q names %s, which matches no package", l.name, pat)
			}
		}
	}
	for _, p := range mods {
		var in []string
		best := -1
		for _, l := range layers {
			for _, pat := range l.pkgs {
				switch s := specificity(pat); {
				case !match(pat, p.ImportPath) || s < best:
				case s > best:
					best, in = s, []string{l.name}
				default:
					in = append(in, l.name)
				}
			}
		}
		if len(in) > 1 {
			t.Errorf("%s is claimed by layers %s alike: give it a more specific pattern", rel(p.ImportPath), strings.Join(in, " and "))
		}
	}
	for _, pat := range testOnly {
		if !slices.ContainsFunc(mods, func(p *pkg) bool { return match(pat, p.ImportPath) }) {
			t.Errorf("test-only package %s does not exist", pat)
		}
	}
}

// pkg is what the tests need of `go list -json` output.
type pkg struct {
	ImportPath string
	Dir        string
	Standard   bool
	Module     *struct{ Path string }
	Imports    []string // non-test imports of the files built here

	GoFiles, CgoFiles, IgnoredGoFiles, TestGoFiles, XTestGoFiles []string

	Error *struct{ Err string }
}

// listPackages runs go list once for all the tests of the package: it
// takes a few seconds on a loaded machine, and the answer cannot change
// while they run.
func listPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	pkgs, err := loadOnce()
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

var loadOnce = sync.OnceValues(func() (map[string]*pkg, error) {
	gomod, err := goCmd("", "env", "GOMOD")
	if err != nil {
		return nil, err
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if err := touchTree(root); err != nil {
		return nil, err
	}
	// -e: list what can be listed even if some package is broken, and
	// say which; -deps: the whole graph, external modules included.
	out, err := goCmd(root, "list", "-e", "-deps", "-json", "./...")
	if err != nil {
		return nil, err
	}
	pkgs := map[string]*pkg{}
	var broken []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		pkgs[p.ImportPath] = p
		if p.Error != nil {
			broken = append(broken, p.ImportPath+": "+p.Error.Err)
		}
	}
	if len(broken) > 0 {
		// An import graph with holes would pass rules it breaks.
		return nil, fmt.Errorf("go list could not load every package:\n%s", strings.Join(broken, "\n"))
	}
	return pkgs, nil
})

// touchTree reads go.mod and every directory of the module in this
// process. go test caches a passing result until a file or directory the
// test itself opened changes; what go list reads in its own process does
// not count. Without this, a new import in a new file would leave
// `go test ./...` reporting the cached pass.
func touchTree(root string) error {
	if _, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil {
		return err
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// The go command ignores these, and .git is large.
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		return nil
	})
}

func goCmd(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

func modulePackages(pkgs map[string]*pkg) []*pkg {
	var out []*pkg
	for _, p := range pkgs {
		if p.Module != nil && p.Module.Path == module {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *pkg) int { return strings.Compare(a.ImportPath, b.ImportPath) })
	return out
}

type fileImport struct {
	path string
	file string // relative to the module root
	test bool
}

// fileImports reads the imports of every Go file of p, including those
// this platform's build leaves out, since go list reports imports for the
// current GOOS only and a file for another one is held to the same rule.
func fileImports(t *testing.T, p *pkg) []fileImport {
	t.Helper()
	var out []fileImport
	fset := token.NewFileSet()
	for _, files := range [][]string{p.GoFiles, p.CgoFiles, p.IgnoredGoFiles, p.TestGoFiles, p.XTestGoFiles} {
		for _, name := range files {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.ImportsOnly)
			if err != nil {
				t.Errorf("%s: %v", rel(p.ImportPath), err)
				continue
			}
			for _, spec := range f.Imports {
				path, err := strconv.Unquote(spec.Path.Value)
				if err != nil {
					continue
				}
				out = append(out, fileImport{path: path, file: rel(p.ImportPath) + "/" + name, test: strings.HasSuffix(name, "_test.go")})
			}
		}
	}
	return out
}

// forbiddenChains finds, for each pattern of what, the nearest package
// matching it that from links, with its shortest import chain; nearest
// first. One per pattern: that bbolt brings its subpackages along is no
// news.
func forbiddenChains(pkgs map[string]*pkg, from string, what []string) [][]string {
	parent := map[string]string{from: ""}
	queue := []string{from}
	var hits []string
	found := map[string]bool{} // patterns
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur != from {
			for _, pat := range what {
				if !found[pat] && match(pat, cur) {
					found[pat] = true
					hits = append(hits, cur)
				}
			}
		}
		p := pkgs[cur]
		if p == nil || p.Standard {
			continue // the standard library imports nothing else
		}
		for _, next := range p.Imports {
			if _, seen := parent[next]; !seen {
				parent[next] = cur
				queue = append(queue, next)
			}
		}
	}
	var chains [][]string
	for _, h := range hits {
		var c []string
		for n := h; n != ""; n = parent[n] {
			c = append(c, n)
		}
		slices.Reverse(c)
		chains = append(chains, c)
	}
	return chains
}

func layerOf(path string) *layer {
	var found *layer
	best := -1
	for i := range layers {
		for _, pat := range layers[i].pkgs {
			if s := specificity(pat); s > best && match(pat, path) {
				found, best = &layers[i], s
			}
		}
	}
	return found
}

func layerByName(name string) layer {
	for _, l := range layers {
		if l.name == name {
			return l
		}
	}
	panic("no layer " + name)
}

// match reports whether the pattern names the package.
func match(pat, path string) bool {
	full := pat
	if first, _, _ := strings.Cut(pat, "/"); !strings.Contains(first, ".") {
		full = module + "/" + pat
	}
	if base, ok := strings.CutSuffix(full, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == full
}

func matchAny(pats []string, path string) bool {
	return slices.ContainsFunc(pats, func(pat string) bool { return match(pat, path) })
}

// specificity ranks patterns: a longer path is more specific, and x is
// more specific than x/....
func specificity(pat string) int {
	if base, ok := strings.CutSuffix(pat, "/..."); ok {
		return 2 * len(base)
	}
	return 2*len(pat) + 1
}

func isModule(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

// rel drops the module path, which every message would otherwise repeat.
func rel(path string) string {
	if r, ok := strings.CutPrefix(path, module+"/"); ok {
		return r
	}
	return path
}

func relChain(c []string) string {
	out := make([]string, len(c))
	for i, p := range c {
		out[i] = rel(p)
	}
	return strings.Join(out, " → ")
}

func report(t *testing.T, bad []string) {
	t.Helper()
	slices.Sort(bad)
	for _, b := range slices.Compact(bad) {
		t.Error(b)
	}
}

// TestDocGo: every package of the module with code of its own says what
// it is for in a doc.go (the project's style): a package comment found
// only in some other file is easy to lose when that file changes.
func TestDocGo(t *testing.T) {
	pkgs := listPackages(t)
	for _, p := range modulePackages(pkgs) {
		if len(p.GoFiles)+len(p.CgoFiles)+len(p.IgnoredGoFiles) == 0 {
			continue // tests only (test/e2e has a doc.go all the same)
		}
		if _, err := os.Stat(filepath.Join(p.Dir, "doc.go")); err != nil {
			t.Errorf("%s has no doc.go: put its package comment there", rel(p.ImportPath))
		}
	}
}
