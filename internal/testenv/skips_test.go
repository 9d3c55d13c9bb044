package testenv

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// skipFunnels are the only functions of the module that may skip a test.
// Missing and SkipIfShort fail instead on CI; providertest's notChecked
// skips only for a gap its harness explains and fails for one it does
// not. A t.Skip anywhere else could skip a suite on CI without anyone
// noticing, so it fails this test: call one of these instead.
var skipFunnels = []string{
	"internal/testenv/testenv.go:Missing",
	"internal/testenv/testenv.go:SkipIfShort",
	"provider/providertest/providertest.go:notChecked",
}

func TestSkipsGoThroughFunnels(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", root, err)
	}
	var bad, found []string
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Skip" && sel.Sel.Name != "Skipf" && sel.Sel.Name != "SkipNow") {
					return true
				}
				where := rel + ":" + fn.Name.Name
				found = append(found, where)
				if !slices.Contains(skipFunnels, where) {
					bad = append(bad, fset.Position(call.Pos()).String()+" in "+fn.Name.Name)
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Errorf("%s skips a test directly: call testenv.Missing (fails on CI), testenv.SkipIfShort, or explain a harness gap in providertest's Setup.Without", b)
	}
	// The list above is checked against the code, so that a funnel that
	// is renamed or removed does not leave the test looking at nothing.
	for _, f := range skipFunnels {
		if !slices.Contains(found, f) {
			t.Errorf("skip funnel %s no longer skips: update skipFunnels", f)
		}
	}
}
