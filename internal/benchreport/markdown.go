package benchreport

import (
	"fmt"
	"strings"
)

// Markdown renders reports as the Markdown BENCHMARKS.md shows: one table
// per Table, with the median, the spread, the target and a ratio column per
// peer; a picture link under each plotted table (imgDir is the pictures'
// directory relative to the Markdown file).
func Markdown(reports []Report, imgDir string) string {
	var b strings.Builder
	for _, r := range reports {
		for _, t := range r.Tables {
			writeTable(&b, t, imgDir)
		}
	}
	return b.String()
}

func writeTable(b *strings.Builder, t Table, imgDir string) {
	fmt.Fprintf(b, "### %s\n\n", t.Title)
	var peers []Row
	hasTarget, hasNote := false, false
	for _, r := range t.Rows {
		if r.Peer {
			peers = append(peers, r)
		}
		hasTarget = hasTarget || r.Target > 0
		hasNote = hasNote || r.Note != ""
	}
	head := []string{"", "median", "p10–p90", "min–max", "n"}
	for _, p := range peers {
		if t.Diff {
			head = append(head, "− "+p.Name)
		} else {
			head = append(head, "÷ "+p.Name)
		}
	}
	if hasTarget {
		head = append(head, "target")
	}
	if hasNote {
		head = append(head, "note")
	}
	b.WriteString("| " + strings.Join(head, " | ") + " |\n")
	b.WriteString(strings.Repeat("|---", len(head)) + "|\n")
	for _, r := range t.Rows {
		cells := []string{
			r.Name,
			"**" + num(r.Median) + " " + r.Unit + "**",
			num(r.P10) + "–" + num(r.P90),
			num(r.Min) + "–" + num(r.Max),
			fmt.Sprint(r.N),
		}
		if r.N <= 1 {
			cells[2], cells[3] = "—", "—"
		}
		for _, p := range peers {
			switch {
			case r.Peer || p.Unit != r.Unit:
				cells = append(cells, "")
			case t.Diff:
				cells = append(cells, signed(r.Median-p.Median)+" "+r.Unit)
			case p.Median == 0:
				cells = append(cells, "")
			default:
				cells = append(cells, fmt.Sprintf("%.2f×", r.Median/p.Median))
			}
		}
		if hasTarget {
			cells = append(cells, target(r))
		}
		if hasNote {
			cells = append(cells, r.Note)
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	b.WriteString("\n")
	for _, n := range t.Notes {
		b.WriteString(n + "\n\n")
	}
	if t.Plot != nil {
		fmt.Fprintf(b, "![%s](%s/%s.svg)\n\n", t.Title, imgDir, t.Plot.File)
	}
}

func target(r Row) string {
	if r.Target <= 0 {
		return ""
	}
	if r.Median <= r.Target {
		return "≤ " + num(r.Target) + " met"
	}
	return fmt.Sprintf("≤ %s **missed by %.0f%%**", num(r.Target), 100*(r.Median-r.Target)/r.Target)
}

// signed is num with its sign always written.
func signed(v float64) string {
	if v < 0 {
		return num(v)
	}
	return "+" + num(v)
}

// num prints three significant digits, without exponent for everyday
// sizes; a negative number gets a typographic minus, which reads apart
// from the dash of a range ("−1.20–3.40").
func num(v float64) string {
	if v < 0 {
		return "−" + num(-v)
	}
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
