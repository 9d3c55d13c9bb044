// Package benchreport is the format of `make bench`'s figures: each
// benchmark of test/perf writes a Report (tables of medians and spreads,
// peers to compare with, targets, plots) as JSON, and test/perf/report
// turns one run's reports into the Markdown tables of BENCHMARKS.md and
// gnuplot pictures. It imports nothing of lvss, so the benchmarks and the
// report program share it without depending on each other.
package benchreport
