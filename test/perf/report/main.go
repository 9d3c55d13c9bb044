package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lvss/lvss/internal/benchreport"
)

const (
	begin = "<!-- bench:begin (make bench writes this part; do not edit) -->"
	end   = "<!-- bench:end -->"
)

func main() {
	in := flag.String("in", "bench-out", "directory of the run's JSON reports")
	svg := flag.String("svg", "docs/bench", "directory for the pictures (SVG)")
	update := flag.String("update", "", "Markdown file whose bench:begin…bench:end part to replace")
	flag.Parse()
	if err := run(*in, *svg, *update); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(in, svg, update string) error {
	reports, err := benchreport.ReadDir(in)
	if err != nil {
		return err
	}
	if len(reports) == 0 {
		return fmt.Errorf("no reports in %s", in)
	}
	if err := benchreport.Gnuplot(reports, svg); err != nil {
		return err
	}
	machine, _ := os.ReadFile(filepath.Join(in, "machine.md"))
	md := string(machine) + "\n" + benchreport.Markdown(reports, relDir(update, svg))
	if err := os.WriteFile(filepath.Join(in, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Println(md)
	if update == "" {
		return nil
	}
	doc, err := os.ReadFile(update)
	if err != nil {
		return err
	}
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q … %q part", update, begin, end)
	}
	var out bytes.Buffer
	out.Write(doc[:i+len(begin)])
	out.WriteString("\n\n" + md)
	out.Write(doc[j:])
	return os.WriteFile(update, out.Bytes(), 0o644)
}

// relDir is the pictures' directory as a link from the Markdown file.
func relDir(mdFile, svgDir string) string {
	if mdFile == "" {
		return svgDir
	}
	rel, err := filepath.Rel(filepath.Dir(mdFile), svgDir)
	if err != nil {
		return svgDir
	}
	return rel
}
