package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// logWriter is the writer. Its "application" is nothing but a log file:
// Freeze and Thaw only record that they happened.
type logWriter struct {
	name, path, failAt string
	restore            vss.WriterRestore
	sleepAt            string         // event to dawdle in
	sleep              time.Duration  // how long (the handler's ctx or wake cuts it short)
	wake               chan os.Signal // SIGUSR1: end the dawdling now

	mu      sync.Mutex
	out     *os.File
	entered *os.File // nil: not asked for
}

func (w *logWriter) record(ctx context.Context, ev string, e *writer.Event) error {
	return w.recordWith(ctx, ev, e, "")
}

// recordWith logs extra after the event's usual fields (restore events
// log the components they were shown).
func (w *logWriter) recordWith(ctx context.Context, ev string, e *writer.Event, extra string) error {
	set := ""
	if e != nil {
		set = e.SnapshotSetID.String()
	}
	if extra != "" {
		set += " " + extra
	}
	dawdle := strings.EqualFold(ev, w.sleepAt)
	if dawdle {
		// A SIGUSR1 that came before is not for this handler: one sent
		// after the line below is.
		for len(w.wake) > 0 {
			<-w.wake
		}
	}
	if w.entered != nil {
		w.mu.Lock()
		fmt.Fprintf(w.entered, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), ev, set)
		w.mu.Unlock()
	}
	if dawdle {
		select {
		case <-time.After(w.sleep):
		case <-ctx.Done():
		case <-w.wake:
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(w.out, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), ev, set)
	if strings.EqualFold(ev, w.failAt) {
		return writer.Fail(vsserr.WriterErrorRetryable, vsserr.Fail, "%s was told to fail at %s", w.name, ev)
	}
	return nil
}

// Identify declares one recursive file group for the directory.
func (w *logWriter) Identify(_ context.Context, md *writer.Metadata) error {
	md.SetRestoreMethod(vss.RMERestoreIfCanReplace, "", "", w.restore, false)
	// A requester may restore its files elsewhere (AddNewTarget): the
	// log shows where.
	md.SetBackupSchema(vss.SchemaWriterSupportsNewTarget)
	if err := md.AddComponent(document.Component{Type: vss.ComponentFileGroup, Name: "data", Caption: w.name + " data", Selectable: true}); err != nil {
		return err
	}
	return md.AddFiles("", "data", w.path, "*", true, "", 0)
}

func (w *logWriter) Freeze(ctx context.Context, e *writer.Event) error {
	return w.record(ctx, "Freeze", e)
}
func (w *logWriter) Thaw(ctx context.Context, e *writer.Event) error { return w.record(ctx, "Thaw", e) }
func (w *logWriter) Abort(ctx context.Context, e *writer.Event) error {
	return w.record(ctx, "Abort", e)
}

func (w *logWriter) PrepareBackup(ctx context.Context, e *writer.Event, c *writer.Components) error {
	for _, comp := range c.List() {
		comp.BackupStamp = w.name + "-stamp"
	}
	return w.record(ctx, "PrepareForBackup", e)
}

func (w *logWriter) PrepareSnapshot(ctx context.Context, e *writer.Event) error {
	return w.record(ctx, "PrepareForSnapshot", e)
}

func (w *logWriter) PostSnapshot(ctx context.Context, e *writer.Event, c *writer.Components) error {
	for _, comp := range c.List() {
		m := w.name + "-metadata"
		comp.BackupMetadata = &m
	}
	return w.record(ctx, "PostSnapshot", e)
}

func (w *logWriter) BackupComplete(ctx context.Context, e *writer.Event, _ *writer.Components) error {
	return w.record(ctx, "BackupComplete", e)
}

func (w *logWriter) BackupShutdown(ctx context.Context, e *writer.Event) error {
	return w.record(ctx, "BackupShutdown", e)
}

// restoreView sums up what a restore event shows the writer: the restore
// type, and per component whether it is selected, its restore target and
// file restore status, as NAME:selected|unselected:TARGET:STATUS; then,
// when the requester gave them, the component's restore options (each
// KEY=VALUE line as options=LINE, its spaces as '+') and new targets
// (newtarget=PATH->ALTERNATE), and additional=true for more restores to
// follow.
func restoreView(e *writer.Event, c *writer.Components) string {
	parts := []string{"type=" + e.RestoreType.String()}
	for _, comp := range c.List() {
		sel := "unselected"
		if comp.SelectedForRestore {
			sel = "selected"
		}
		parts = append(parts, fmt.Sprintf("%s:%s:%s:%s", comp.Name, sel, comp.RestoreTarget, comp.FileRestoreStatus))
		for _, o := range strings.Split(comp.RestoreOptions, "\n") {
			if o != "" {
				parts = append(parts, "options="+strings.ReplaceAll(o, " ", "+"))
			}
		}
		for _, nt := range comp.NewTargets {
			parts = append(parts, "newtarget="+nt.Path+"->"+nt.AlternatePath)
		}
		if comp.AdditionalRestores {
			parts = append(parts, "additional=true")
		}
	}
	return strings.Join(parts, " ")
}

// PreRestore records what it was shown and leaves the restore metadata
// the PostRestore log line then shows it got back.
func (w *logWriter) PreRestore(ctx context.Context, e *writer.Event, c *writer.Components) error {
	view := restoreView(e, c)
	for _, comp := range c.List() {
		if comp.SelectedForRestore {
			m := w.name + "-restore"
			comp.RestoreMetadata = &m
		}
	}
	return w.recordWith(ctx, "PreRestore", e, view)
}

func (w *logWriter) PostRestore(ctx context.Context, e *writer.Event, c *writer.Components) error {
	view := restoreView(e, c)
	for _, comp := range c.List() {
		if comp.RestoreMetadata != nil {
			view += " metadata=" + *comp.RestoreMetadata
		}
	}
	return w.recordWith(ctx, "PostRestore", e, view)
}

func main() {
	name := flag.String("name", "logwriter", "writer name (the class ID is derived from it)")
	path := flag.String("path", "", "directory the writer's component covers (required)")
	level := flag.String("level", "front-end", "application level: front-end, back-end or system")
	logPath := flag.String("log", "", "file to append one line per event to (default stdout)")
	failAt := flag.String("fail-at", "", "event name to veto with VSS_E_WRITERERROR_RETRYABLE (e.g. Freeze)")
	sleepAt := flag.String("sleep-at", "", "EVENT=DURATION: take that long in the event's handler (e.g. PrepareForSnapshot=3s); a SIGUSR1 sent once the handler started ends it early")
	enteredPath := flag.String("entered", "", "file to append one line per event to when its handler starts, before any --sleep-at (tests wait on it)")
	socket := flag.String("socket", "", "lvssd socket (default $LVSS_SOCKET, else /run/lvss/lvssd.sock)")
	restore := flag.String("restore", "never", "writer restore setting: never, if-replace-fails or always (whether it gets restore events)")
	flag.Parse()
	wre, ok := map[string]vss.WriterRestore{"never": vss.WRENever, "if-replace-fails": vss.WREIfReplaceFails, "always": vss.WREAlways}[*restore]
	if !ok {
		fmt.Fprintln(os.Stderr, "logwriter: --restore must be never, if-replace-fails or always")
		os.Exit(2)
	}
	if *path == "" {
		fmt.Fprintln(os.Stderr, "logwriter: --path is required")
		os.Exit(2)
	}
	lv := map[string]vss.AppLevel{"front-end": vss.LevelFrontEnd, "back-end": vss.LevelBackEnd, "system": vss.LevelSystem}[*level]
	if lv == 0 {
		fmt.Fprintln(os.Stderr, "logwriter: --level must be front-end, back-end or system")
		os.Exit(2)
	}
	out := os.Stdout
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "logwriter:", err)
			os.Exit(1)
		}
		out = f
	}
	w := &logWriter{name: *name, path: *path, failAt: *failAt, restore: wre, out: out, wake: make(chan os.Signal, 1)}
	signal.Notify(w.wake, syscall.SIGUSR1)
	if *enteredPath != "" {
		f, err := os.OpenFile(*enteredPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "logwriter:", err)
			os.Exit(1)
		}
		w.entered = f
	}
	if *sleepAt != "" {
		ev, d, ok := strings.Cut(*sleepAt, "=")
		dur, err := time.ParseDuration(d)
		if !ok || err != nil {
			fmt.Fprintln(os.Stderr, "logwriter: --sleep-at wants EVENT=DURATION")
			os.Exit(2)
		}
		w.sleepAt, w.sleep = ev, dur
	}
	id := writer.Identity{
		ClassID: uuid.NewSHA1(uuid.NameSpaceURL, []byte("lvss:example:logwriter:"+*name)),
		Name:    *name, Level: lv, Usage: vss.UsageUserData, Source: vss.SourceOther,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	err := writer.Run(ctx, writer.Options{Socket: *socket, Logger: log, Retry: true}, id, w)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "logwriter:", err)
		os.Exit(1)
	}
}
