package writer_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// app stands in for an application that writes a data file. Writes hold
// the lock; a freeze holds it from Freeze to Thaw, so that no write reaches
// the file while the snapshot is taken.
type app struct {
	dir  string
	lock chan struct{} // a mutex whose acquisition can give up on a context

	mu     sync.Mutex
	frozen bool
}

func newApp(dir string) *app { return &app{dir: dir, lock: make(chan struct{}, 1)} }

// Write appends to the data file, waiting at most until ctx ends.
func (a *app) Write(ctx context.Context, b []byte) error {
	select {
	case a.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-a.lock }()
	f, err := os.OpenFile(filepath.Join(a.dir, "app.db"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (a *app) freeze(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.frozen {
		return nil
	}
	select {
	case a.lock <- struct{}{}:
		a.frozen = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// thaw is idempotent: Abort may come more than once, or after Thaw.
func (a *app) thaw() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.frozen {
		a.frozen = false
		<-a.lock
	}
}

// appWriter makes app VSS-aware.
type appWriter struct{ app *app }

var appClass = uuid.MustParse("5d2a7f4e-3c1b-4e8a-9f60-1a2b3c4d5e6f")

func (w *appWriter) Identify(_ context.Context, md *writer.Metadata) error {
	// The writer takes part in restores: it stops the application for the
	// copy and brings it back afterwards.
	md.SetRestoreMethod(vss.RMERestoreIfCanReplace, "", "", vss.WREAlways, false)
	if err := md.AddComponent(document.Component{
		Type: vss.ComponentFileGroup, Name: "data", Caption: "application data", Selectable: true,
	}); err != nil {
		return err
	}
	return md.AddFiles("", "data", w.app.dir, "*.db", false, "", 0)
}

func (w *appWriter) PrepareBackup(_ context.Context, _ *writer.Event, c *writer.Components) error {
	for _, comp := range c.List() {
		if comp.BackupMetadata == nil {
			meta := "format=1"
			comp.BackupMetadata = &meta
		}
	}
	return nil
}

func (w *appWriter) PrepareSnapshot(_ context.Context, ev *writer.Event) error {
	return ev.SharedInstant(w.app.dir)
}

func (w *appWriter) Freeze(ctx context.Context, _ *writer.Event) error { return w.app.freeze(ctx) }

func (w *appWriter) Thaw(context.Context, *writer.Event) error {
	w.app.thaw()
	return nil
}

func (w *appWriter) Abort(context.Context, *writer.Event) error {
	w.app.thaw()
	return nil
}

func (w *appWriter) PostSnapshot(_ context.Context, _ *writer.Event, c *writer.Components) error {
	for _, comp := range c.List() {
		comp.BackupStamp = "generation-1"
	}
	return nil
}

// PreRestore takes the application offline so that the files can be
// replaced: it holds the write lock, as a freeze does.
func (w *appWriter) PreRestore(ctx context.Context, _ *writer.Event, c *writer.Components) error {
	for _, comp := range c.List() {
		if comp.SelectedForRestore {
			meta := "restored-by=example"
			comp.RestoreMetadata = &meta
		}
	}
	return w.app.freeze(ctx)
}

// PostRestore brings the application back when its files are whole: all
// restored (VSS_RS_ALL) or none touched (VSS_RS_NONE, the old ones are
// still there). After a partial copy (VSS_RS_FAILED) or without a status
// it stays offline and says why.
func (w *appWriter) PostRestore(_ context.Context, _ *writer.Event, c *writer.Components) error {
	for _, comp := range c.List() {
		if comp.SelectedForRestore && comp.FileRestoreStatus != vss.RSAll && comp.FileRestoreStatus != vss.RSNone {
			comp.PostRestoreFailureMsg = "the data files are incomplete; restore them again"
			return writer.Fail(vsserr.WriterErrorNonRetryable, vsserr.Fail, "%s: restore status %s", comp.Name, comp.FileRestoreStatus)
		}
	}
	w.app.thaw()
	return nil
}

func TestConformance(t *testing.T) {
	var a *app
	writertest.Run(t, func(t *testing.T) (writer.Identity, writer.Writer) {
		a = newApp(t.TempDir())
		return writer.Identity{ClassID: appClass, Name: "example app", InstanceName: "main"}, &appWriter{app: a}
	}, writertest.Options{
		CheckFrozen: func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := a.Write(ctx, []byte("x")); err == nil {
				t.Error("the application wrote while frozen")
			}
		},
		CheckThawed: func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := a.Write(ctx, []byte("x")); err != nil {
				t.Errorf("the application cannot write after release: %v", err)
			}
		},
		CheckPreRestored: func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := a.Write(ctx, []byte("x")); err == nil {
				t.Error("the application wrote while its files were being restored")
			}
		},
		CheckRestored: func(t *testing.T, st vss.FileRestoreStatus) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			err := a.Write(ctx, []byte("x"))
			if online := st == vss.RSAll || st == vss.RSNone; online != (err == nil) {
				t.Errorf("after a restore with %s the application is online=%t, want %t", st, err == nil, online)
			}
		},
	})
}

// Example shows the smallest complete writer process.
func Example() {
	a := newApp("/srv/app")
	ctx, stop := context.WithCancel(context.Background()) // signal.NotifyContext in a real main
	defer stop()
	id := writer.Identity{ClassID: appClass, Name: "example app"}
	if err := writer.Run(ctx, writer.Options{Retry: true}, id, &appWriter{app: a}); err != nil {
		panic(err)
	}
}
