package benchreport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{5, 1, 4, 2, 3, 10, 6, 7, 9, 8})
	if s.N != 10 || s.Median != 5.5 || s.Min != 1 || s.Max != 10 || s.P10 != 1 || s.P90 != 9 {
		t.Fatalf("Summarize = %+v", s)
	}
	if s := Summarize([]float64{3, 1, 2}); s.Median != 2 {
		t.Fatalf("odd median = %v", s.Median)
	}
	if s := Summarize(nil); s.N != 0 {
		t.Fatalf("empty = %+v", s)
	}
}

func TestMarkdownRatiosAndTargets(t *testing.T) {
	tab := Table{ID: "lat", Title: "Latency", Rows: []Row{
		{Name: "raw ioctl", Peer: true, Unit: "ms", Stats: Summarize([]float64{2, 2, 2})},
		{Name: "lvss", Unit: "ms", Stats: Summarize([]float64{3, 3, 3}), Target: 2.5},
		{Name: "lvss fast", Unit: "ms", Stats: Summarize([]float64{2.2}), Target: 2.5},
	}}
	md := Markdown([]Report{{Suite: "x", Tables: []Table{tab}}}, "img")
	for _, want := range []string{"| ÷ raw ioctl |", "| 1.50× |", "missed by 20%", "≤ 2.50 met", "| **3.00 ms** |"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestMarkdownDifferences(t *testing.T) {
	tab := Table{ID: "excess", Title: "Excess", Diff: true, Rows: []Row{
		{Name: "raw ioctl", Peer: true, Unit: "ms", Stats: Summarize([]float64{0, 0, 0})},
		{Name: "lvss", Unit: "ms", Stats: Summarize([]float64{1.5, 1.5})},
		{Name: "lvss fast", Unit: "ms", Stats: Summarize([]float64{-0.25})},
	}}
	md := Markdown([]Report{{Suite: "x", Tables: []Table{tab}}}, "img")
	for _, want := range []string{"| − raw ioctl |", "| +1.50 ms |", "| −0.25 ms |", "| **−0.25 ms** |"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "×") {
		t.Errorf("a Diff table shows ratios:\n%s", md)
	}
}

func TestGnuplotNegativeBars(t *testing.T) {
	tab := Table{ID: "e", Title: "E", Plot: &Plot{File: "e", Bars: true}, Rows: []Row{
		{Name: "a", Unit: "ms", Stats: Summarize([]float64{-1, 2, 3})},
	}}
	script, _ := gnuplotScript(tab, t.TempDir())
	if !strings.Contains(script, "set yrange [*:*]") || strings.Contains(script, "[0:*]") {
		t.Errorf("bars below zero are clipped:\n%s", script)
	}
	tab.Rows[0].Stats = Summarize([]float64{1, 2, 3})
	if script, _ := gnuplotScript(tab, t.TempDir()); !strings.Contains(script, "set yrange [0:*]") {
		t.Errorf("positive bars do not start at zero:\n%s", script)
	}
}

func TestReportRoundTrip(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LVSS_BENCH_DIR", dir)
	a := Report{Suite: "b", Order: 2, Tables: []Table{{ID: "t", Rows: []Row{{Name: "r", Unit: "ms", Stats: One(4)}}}}}
	b := Report{Suite: "a", Order: 1}
	for _, r := range []Report{a, b} {
		if err := r.Write(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "machine.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Suite != "a" || got[1].Tables[0].Rows[0].Median != 4 {
		t.Fatalf("ReadDir = %+v", got)
	}
}
