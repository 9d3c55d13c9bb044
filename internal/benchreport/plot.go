package benchreport

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Gnuplot draws every plotted table of reports as outDir/FILE.svg with
// gnuplot (Debian's gnuplot-nox), through a script and data file it leaves
// beside the picture so that a figure can be redrawn or inspected.
func Gnuplot(reports []Report, outDir string) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	for _, r := range reports {
		for _, t := range r.Tables {
			if t.Plot == nil {
				continue
			}
			script, data := gnuplotScript(t, outDir)
			base := filepath.Join(outDir, t.Plot.File)
			if err := os.WriteFile(base+".dat", []byte(data), 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(base+".gp", []byte(script), 0o644); err != nil {
				return err
			}
			cmd := exec.Command("gnuplot", base+".gp")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("gnuplot %s.gp: %w: %s", base, err, stderr.String())
			}
		}
	}
	return nil
}

// gnuplotScript returns the script and its data: one data block per series
// (lines), or one line per row (bars), each with the median and spread.
func gnuplotScript(t Table, outDir string) (script, data string) {
	p := t.Plot
	base := filepath.Join(outDir, p.File)
	var s, d strings.Builder
	fmt.Fprintf(&s, "set terminal svg size 760,480 dynamic font 'sans,11' background '#ffffff'\n")
	fmt.Fprintf(&s, "set output %q\n", base+".svg")
	fmt.Fprintf(&s, "set title %q noenhanced\n", t.Title)
	fmt.Fprintf(&s, "set xlabel %q noenhanced\nset ylabel %q noenhanced\n", p.XLabel, p.YLabel)
	s.WriteString("set grid ytics lc rgb '#dddddd'\nset key top left noenhanced\nset border 3\nset tics nomirror\n")
	if p.LogX {
		s.WriteString("set logscale x\n")
	}
	if p.LogY {
		s.WriteString("set logscale y\n")
	}
	if p.Bars {
		// Labels are wrapped under their bar rather than rotated: rotated
		// SVG text is drawn differently by different viewers.
		s.WriteString("set style fill solid 0.6 border -1\nset boxwidth 0.6\nset xtics noenhanced font ',9'\nset bmargin 7\nunset key\n")
		// Bars start at zero; a figure that can go below it (an excess
		// over a baseline) gets a zero line instead of a clipped axis.
		negative := false
		for _, r := range t.Rows {
			negative = negative || r.P10 < 0 || r.Median < 0
		}
		if negative {
			s.WriteString("set yrange [*:*]\nset xzeroaxis lt -1\n")
		} else {
			s.WriteString("set yrange [0:*]\n")
		}
		width := max(8, 110/max(1, len(t.Rows)))
		for i, r := range t.Rows {
			fmt.Fprintf(&d, "%d %q %g %g %g\n", i, wrap(strings.ReplaceAll(r.Name, "`", ""), width), r.Median, r.P10, r.P90)
		}
		fmt.Fprintf(&s, "plot %q using 1:3:xtic(2) with boxes lc rgb '#4a7fb0', '' using 1:3:4:5 with yerrorbars lc rgb '#333333' pt -1\n", base+".dat")
		return s.String(), d.String()
	}
	var series []string
	for _, r := range t.Rows {
		if !slices.Contains(series, r.Series) {
			series = append(series, r.Series)
		}
	}
	var plots []string
	for i, name := range series {
		if i > 0 {
			d.WriteString("\n\n") // a new gnuplot data block (index i)
		}
		for _, r := range t.Rows {
			if r.Series == name {
				fmt.Fprintf(&d, "%g %g %g %g\n", r.X, r.Median, r.P10, r.P90)
			}
		}
		title := name
		if title == "" {
			title = t.Title
		}
		plots = append(plots, fmt.Sprintf("%q index %d using 1:2:3:4 with yerrorlines title %q", base+".dat", i, title))
	}
	s.WriteString("plot " + strings.Join(plots, ", \\\n     ") + "\n")
	return s.String(), d.String()
}

// wrap breaks a label into lines of about width characters at spaces.
func wrap(label string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(label) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\n")
}
