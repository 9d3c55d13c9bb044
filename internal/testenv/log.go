package testenv

import (
	"log/slog"
	"strings"
	"testing"
)

// LogHandler is a slog handler writing every record, debug included, to
// t's log, so that a failing test shows what the code under test logged.
func LogHandler(t testing.TB) slog.Handler {
	return slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug})
}

// Logger is a logger on LogHandler.
func Logger(t testing.TB) *slog.Logger { return slog.New(LogHandler(t)) }

type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
