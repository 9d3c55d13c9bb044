// Command report turns the reports one run of `make bench` wrote (JSON,
// package internal/benchreport) into Markdown tables and gnuplot
// pictures, and puts the tables into BENCHMARKS.md between its
// "bench:begin" and "bench:end" markers, so that the published figures
// are always one run's.
//
//	go run ./test/perf/report -in bench-out -svg docs/bench -update BENCHMARKS.md
package main
