package lvssdtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// LogWriter is an examples/logwriter process: a writer that logs one line
// per event it handles ("TIMESTAMP EVENT ...") and can be told to fail or
// take long at an event (its --fail-at and --sleep-at flags; Wake ends
// the latter).
type LogWriter struct {
	Name string
	// Log is the file it logs its events to, once handled.
	Log string
	// Entered is the file it logs its events to as their handlers start
	// (its --entered flag): the writer is inside the handler, or past it.
	Entered string
	Proc    *Proc
}

// StartLogWriter starts logwriter named name at the given level
// (front-end, back-end or system) subscribed to lvssd at socket, its
// component over dir/data-NAME, its event log at dir/NAME.events and the
// log of the handlers it entered at dir/NAME.entered. It does not wait for
// the subscription (WaitWriters does).
func StartLogWriter(t testing.TB, socket, dir, name, level string, extra ...string) *LogWriter {
	t.Helper()
	bin := Bin(t, "logwriter")
	data := filepath.Join(dir, "data-"+name)
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &LogWriter{Name: name, Log: filepath.Join(dir, name+".events"), Entered: filepath.Join(dir, name+".entered")}
	args := append([]string{"--socket", socket, "--name", name, "--level", level, "--path", data,
		"--log", w.Log, "--entered", w.Entered}, extra...)
	w.Proc = Start(t, dir, "logwriter "+name, exec.Command(bin, args...))
	return w
}

// Events returns the names of the events the writer logged, in order.
func (w *LogWriter) Events(t testing.TB) []string {
	t.Helper()
	return eventNames(t, w.Log)
}

// EnteredEvents returns the names of the events whose handlers the writer
// started, in order.
func (w *LogWriter) EnteredEvents(t testing.TB) []string {
	t.Helper()
	return eventNames(t, w.Entered)
}

// WaitEntered waits until the writer has started its handler of event n
// times in all.
func (w *LogWriter) WaitEntered(t testing.TB, event string, n int) {
	t.Helper()
	Eventually(t, 30*time.Second, fmt.Sprintf("%s to start its %s handler (%d times)", w.Name, event, n), func() bool {
		return count(w.EnteredEvents(t), event) >= n
	})
}

// InHandler reports whether the writer has started a handler of event that
// it has not logged as handled yet.
func (w *LogWriter) InHandler(t testing.TB, event string) bool {
	t.Helper()
	return count(w.EnteredEvents(t), event) > count(w.Events(t), event)
}

func count(events []string, event string) int {
	n := 0
	for _, e := range events {
		if e == event {
			n++
		}
	}
	return n
}

// Wake ends the writer's --sleep-at dawdling now (SIGUSR1); send it once
// the writer has entered the handler (WaitEntered): a wake that comes
// before is forgotten. Wake a writer only once it has subscribed (before,
// SIGUSR1 would end the process).
func (w *LogWriter) Wake(t testing.TB) {
	t.Helper()
	if err := w.Proc.Signal(syscall.SIGUSR1); err != nil {
		t.Fatalf("waking %s: %v", w.Name, err)
	}
}

// eventNames reads a logwriter log: the event names, in order.
func eventNames(t testing.TB, log string) []string {
	t.Helper()
	f, err := os.Open(log)
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
