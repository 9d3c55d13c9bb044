package benchreport

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"
)

// Report is what one benchmark of a run measured: a few tables, each
// becoming a Markdown table (and maybe a picture) in BENCHMARKS.md.
type Report struct {
	// Suite names the benchmark; the report is written to DIR/Suite.json
	// and suites are shown in Order, then by name.
	Suite  string  `json:"suite"`
	Order  int     `json:"order"`
	Tables []Table `json:"tables"`
}

// Table is one table of figures. Rows marked Peer are the tools lvss is
// compared with: every other row gets a column with its ratio to each
// peer's median (lvss ÷ peer), or with Diff its difference (lvss − peer).
type Table struct {
	ID    string   `json:"id"`
	Title string   `json:"title"`
	Notes []string `json:"notes,omitempty"`
	Rows  []Row    `json:"rows"`
	// Plot draws the rows' medians against X, one line per Series, when set.
	Plot *Plot `json:"plot,omitempty"`
	// Diff makes each peer's column the difference (row's median minus
	// the peer's, in the unit) instead of the ratio: for figures that can
	// be near zero or below it (an excess over a baseline), where a ratio
	// says nothing.
	Diff bool `json:"diff,omitempty"`
}

// Row is one measured figure: the statistics of its samples.
type Row struct {
	Name string `json:"name"`
	// Series and X place the row on the table's plot (for example series
	// "DoSnapshotSet", X = 100 writers).
	Series string  `json:"series,omitempty"`
	X      float64 `json:"x,omitempty"`
	Peer   bool    `json:"peer,omitempty"`
	Unit   string  `json:"unit"`
	Stats
	// Target is the goal for this figure in Unit (0: none); the report
	// shows whether the median meets it. Lower is better for every figure.
	Target float64 `json:"target,omitempty"`
	Note   string  `json:"note,omitempty"`
}

// Plot says how to draw a table.
type Plot struct {
	// File is the picture's name without extension (docs/bench/File.svg).
	File   string `json:"file"`
	XLabel string `json:"xlabel"`
	YLabel string `json:"ylabel"`
	LogX   bool   `json:"logx,omitempty"`
	LogY   bool   `json:"logy,omitempty"`
	// Bars draws one bar per row (X ignored) instead of lines.
	Bars bool `json:"bars,omitempty"`
}

// Stats summarize samples: the median and the spread (10th and 90th
// percentiles, minimum, maximum).
type Stats struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	P10    float64 `json:"p10"`
	P90    float64 `json:"p90"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Summarize computes the statistics of samples (nearest-rank percentiles).
func Summarize(samples []float64) Stats {
	if len(samples) == 0 {
		return Stats{}
	}
	s := slices.Clone(samples)
	sort.Float64s(s)
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stats{N: len(s), Median: med, P10: at(0.1), P90: at(0.9), Min: s[0], Max: s[len(s)-1]}
}

// Millis converts durations to milliseconds, the unit of most rows.
func Millis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// One is a row of a single measure (a memory size, a start time).
func One(v float64) Stats { return Summarize([]float64{v}) }

// Write stores r as DIR/Suite.json, DIR being $LVSS_BENCH_DIR (default
// bench-out in the working directory).
func (r *Report) Write() error {
	dir := Dir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, r.Suite+".json"), append(data, '\n'), 0o644)
}

// Dir is where a run's reports go.
func Dir() string {
	if d := os.Getenv("LVSS_BENCH_DIR"); d != "" {
		return d
	}
	return "bench-out"
}

// ReadDir reads every report of a run, in display order.
func ReadDir(dir string) ([]Report, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []Report
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r Report
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if r.Suite == "" {
			continue // machine.json and other run files
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Order != out[j].Order {
			return out[i].Order < out[j].Order
		}
		return out[i].Suite < out[j].Suite
	})
	return out, nil
}
