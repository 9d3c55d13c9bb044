package main

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// testWriter is an SDK writer run inside the test process against the
// real coordinator (lvssdtest.RunWriter): it records the events it gets
// and can be told to fail or hang at one. Its components are a file group
// over a directory unless identify says otherwise.
type testWriter struct {
	dir      string
	identify func(md *writer.Metadata) error // nil: one file group "files\docs" over dir

	mu       sync.Mutex
	events   []*writer.Event
	fail     map[writer.EventType]error
	hang     map[writer.EventType]bool // until the handler's context ends
	identifs int
	onEvent  func(ev *writer.Event)
}

func newTestWriter(dir string) *testWriter {
	return &testWriter{dir: dir, fail: map[writer.EventType]error{}, hang: map[writer.EventType]bool{}}
}

// failAt makes the writer's handler of t return err (writer.Fail: a veto).
func (w *testWriter) failAt(t writer.EventType, err error) {
	w.mu.Lock()
	w.fail[t] = err
	w.mu.Unlock()
}

// hangAt makes the writer's handler of t wait until its context ends (the
// coordinator cancels it or gives up on it): a writer that does not answer.
func (w *testWriter) hangAt(t writer.EventType) { w.mu.Lock(); w.hang[t] = true; w.mu.Unlock() }

// on makes the writer call f with each event (Identify aside) as it
// arrives, before its handler fails or hangs as told.
func (w *testWriter) on(f func(ev *writer.Event)) { w.mu.Lock(); w.onEvent = f; w.mu.Unlock() }

// seen returns the types of the events the writer got, in order, Identify
// left out (lvssd sends it whenever it likes).
func (w *testWriter) seen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, e := range w.events {
		out = append(out, e.Type.String())
	}
	return out
}

// eventsOf returns the events of type t the writer got.
func (w *testWriter) eventsOf(t writer.EventType) []*writer.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(w.events), func(e *writer.Event) bool { return e.Type != t })
}

func (w *testWriter) handle(ctx context.Context, ev *writer.Event) error {
	w.mu.Lock()
	w.events = append(w.events, ev)
	err, hang, on := w.fail[ev.Type], w.hang[ev.Type], w.onEvent
	w.mu.Unlock()
	if on != nil {
		on(ev)
	}
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (w *testWriter) Identify(ctx context.Context, md *writer.Metadata) error {
	w.mu.Lock()
	w.identifs++
	err, hang := w.fail[writer.EventIdentify], w.hang[writer.EventIdentify]
	w.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	if w.identify != nil {
		return w.identify(md)
	}
	if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, LogicalPath: "files", Name: "docs",
		Caption: "documents", Selectable: true}); err != nil {
		return err
	}
	return md.AddFiles("files", "docs", w.dir, "*", true, "", 0)
}

func (w *testWriter) PrepareBackup(ctx context.Context, ev *writer.Event, _ *writer.Components) error {
	return w.handle(ctx, ev)
}
func (w *testWriter) PrepareSnapshot(ctx context.Context, ev *writer.Event) error {
	return w.handle(ctx, ev)
}
func (w *testWriter) Freeze(ctx context.Context, ev *writer.Event) error { return w.handle(ctx, ev) }
func (w *testWriter) Thaw(ctx context.Context, ev *writer.Event) error   { return w.handle(ctx, ev) }
func (w *testWriter) Abort(ctx context.Context, ev *writer.Event) error  { return w.handle(ctx, ev) }
func (w *testWriter) PostSnapshot(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	for _, comp := range c.List() {
		comp.BackupStamp = "stamp-1"
	}
	return w.handle(ctx, ev)
}
func (w *testWriter) BackupComplete(ctx context.Context, ev *writer.Event, _ *writer.Components) error {
	return w.handle(ctx, ev)
}
func (w *testWriter) BackupShutdown(ctx context.Context, ev *writer.Event) error {
	return w.handle(ctx, ev)
}

var fileWriterClass = uuid.MustParse("0c6f3a52-8e1d-4b7a-9d25-6f4e3b2a1c0d")

// runTestWriter subscribes w to lvssd at socket under a class ID derived
// from name and returns once lvssd lists it with its metadata.
func runTestWriter(t *testing.T, socket, name, instance string, level vss.AppLevel, w *testWriter) writer.Identity {
	t.Helper()
	id := writer.Identity{ClassID: uuid.NewSHA1(fileWriterClass, []byte(name)), Name: name, InstanceName: instance, Level: level}
	lvssdtest.RunWriter(t, socket, id, w)
	return id
}
