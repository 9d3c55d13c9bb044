//go:build perf

package perf_test

import (
	"os"
	"testing"

	"github.com/lvss/lvss/internal/freeze"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// The freeze guard of an in-process lvssd is this test binary run again,
// and so are the benchmarks' helper processes (runHelper); binaries built
// for a run (lvssd, lvss, lvss-writer) are removed after it.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == freeze.GuardArg {
		os.Exit(freeze.GuardMain(os.Args[2:]))
	}
	if code, ok := runHelper(os.Args[1:]); ok {
		os.Exit(code)
	}
	lvssdtest.Main(m)
}
