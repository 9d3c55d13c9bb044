package lvssdtest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// LogWriter is an examples/logwriter process: a writer that logs one line
// per event it handles ("TIMESTAMP EVENT ...") and can be told to fail or
// take long at an event (its --fail-at and --sleep-at flags).
type LogWriter struct {
	Name string
	// Log is the file it logs its events to.
	Log  string
	Proc *Proc
}

// StartLogWriter starts logwriter named name at the given level
// (front-end, back-end or system) subscribed to lvssd at socket, its
// component over dir/data-NAME and its event log at dir/NAME.events. It
// does not wait for the subscription (WaitWriters does).
func StartLogWriter(t testing.TB, socket, dir, name, level string, extra ...string) *LogWriter {
	t.Helper()
	bin := Bin(t, "logwriter")
	data := filepath.Join(dir, "data-"+name)
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &LogWriter{Name: name, Log: filepath.Join(dir, name+".events")}
	args := append([]string{"--socket", socket, "--name", name, "--level", level, "--path", data, "--log", w.Log}, extra...)
	w.Proc = Start(t, dir, "logwriter "+name, exec.Command(bin, args...))
	return w
}

// Events returns the names of the events the writer logged, in order.
func (w *LogWriter) Events(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(w.Log)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 2 {
			out = append(out, fs[1])
		}
	}
	return out
}

// EventTime returns the time the writer logged its first event of that
// name, failing t if it logged none.
func (w *LogWriter) EventTime(t testing.TB, name string) time.Time {
	t.Helper()
	b, err := os.ReadFile(w.Log)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if fs := strings.Fields(l); len(fs) >= 2 && fs[1] == name {
			ts, err := time.Parse(time.RFC3339Nano, fs[0])
			if err != nil {
				t.Fatal(err)
			}
			return ts
		}
	}
	t.Fatalf("%s never logged %s: %v", w.Name, name, w.Events(t))
	return time.Time{}
}
