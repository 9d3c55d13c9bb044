package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/procgroup"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// Writer is the exec writer: it implements writer.Writer and every
// optional event interface of the SDK, each by running the configured
// hook (no hook: success).
type Writer struct {
	s   *settings
	log *slog.Logger

	mu       sync.Mutex
	sessions map[uuid.UUID]*session
	warned   map[string]bool // events whose deadline warning was logged
}

// session is what the writer remembers of one requester session between
// its events.
type session struct {
	tmpdir   string   // the session's TMPDIR, made on first use
	selected []string // the components the requester included, "LOGICAL\NAME"
	// frozen are the hook-dir scripts called with "freeze" whose "thaw" has
	// not succeeded yet, in the order they were frozen.
	frozen []string
	// freezeCmd: the freeze command ran (whatever it returned: a failed
	// freeze may have frozen part of the application) and neither a
	// successful thaw nor an abort hook has released it.
	freezeCmd bool
}

// New checks cfg and returns the identity to give writer.Run and the
// writer. Nothing runs until the first event.
func New(cfg Config) (writer.Identity, *Writer, error) {
	if !procgroup.Supported {
		return writer.Identity{}, nil, errors.New("exec writer: Linux only")
	}
	s, err := cfg.settle()
	if err != nil {
		return writer.Identity{}, nil, err
	}
	id := writer.Identity{
		ClassID: s.ClassID, Name: s.Name, InstanceName: s.InstanceName,
		Usage: s.Usage, Source: s.Source, Level: s.Level, FreezeTimeout: s.window,
	}
	w := &Writer{s: s, log: s.Logger.With("writer", s.Name), sessions: map[uuid.UUID]*session{}, warned: map[string]bool{}}
	return id, w, nil
}

// Timeout returns the timeout the hooks of event get.
func (w *Writer) Timeout(event string) time.Duration { return w.s.timeouts[event] }

// TmpDir returns the directory the hooks' TMPDIRs are made in.
func (w *Writer) TmpDir() string { return w.s.TmpDir }

// sessionOf returns the state of ev's session, creating it.
func (w *Writer) sessionOf(ev *writer.Event) *session {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sessions[ev.SessionID]
	if s == nil {
		s = &session{}
		w.sessions[ev.SessionID] = s
	}
	return s
}

// endSession forgets a session and removes its TMPDIR.
func (w *Writer) endSession(id uuid.UUID) {
	w.mu.Lock()
	s := w.sessions[id]
	delete(w.sessions, id)
	w.mu.Unlock()
	if s != nil && s.tmpdir != "" {
		if err := os.RemoveAll(s.tmpdir); err != nil {
			w.log.Warn("session TMPDIR not removed", "dir", s.tmpdir, "err", err)
		}
	}
}

// tmpdirOf returns the session's TMPDIR, made on first use. One directory
// serves all of a session's hooks, so a freeze hook can leave a note (a
// pid file, a fifo) for the thaw hook.
func (w *Writer) tmpdirOf(s *session) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.tmpdir == "" {
		dir, err := os.MkdirTemp(w.s.TmpDir, "session-")
		if err != nil {
			return "", fmt.Errorf("hook TMPDIR: %w", err)
		}
		s.tmpdir = dir
	}
	return s.tmpdir, nil
}

// selectFrom remembers the components the requester included, for the
// session's events that carry no document.
func (w *Writer) selectFrom(s *session, c *writer.Components) {
	if c.Document() == nil {
		return
	}
	var names []string
	for _, comp := range c.List() {
		names = append(names, componentPath(comp.LogicalPath, comp.Name))
	}
	w.mu.Lock()
	s.selected = names
	w.mu.Unlock()
}

// componentPath is the spec's "logical path\name" form; a component at the
// root is its name.
func componentPath(logicalPath, name string) string {
	if logicalPath == "" {
		return name
	}
	return logicalPath + `\` + name
}

// command builds the invocation of event's --on-EVENT hook.
func (w *Writer) command(event string, ev *writer.Event, s *session, timeout time.Duration, release bool, extra ...string) (hook, error) {
	dir, err := w.tmpdirOf(s)
	if err != nil {
		return hook{}, err
	}
	return hook{
		event: event, what: event + " hook", args: []string{"-c", w.s.Hooks[event]},
		env: append(w.env(event, ev, s), extra...), tmpdir: dir, timeout: timeout, release: release,
		selfRaised: ev.SelfRaised, outCap: otherOutCap,
	}, nil
}

// runEvent runs event's hook, if there is one.
func (w *Writer) runEvent(ctx context.Context, event string, ev *writer.Event, s *session, extra ...string) error {
	if w.s.Hooks[event] == "" {
		return nil
	}
	h, err := w.command(event, ev, s, w.s.timeouts[event], false, extra...)
	if err != nil {
		return err
	}
	_, err = w.run(ctx, h)
	return err
}

// Identify runs the identify hook at every Identify. If it prints a
// Writer Metadata Document, that document is used as is; otherwise the
// configured components are described.
func (w *Writer) Identify(ctx context.Context, md *writer.Metadata) error {
	if cmd := w.s.Hooks[EventIdentify]; cmd != "" {
		dir, err := os.MkdirTemp(w.s.TmpDir, "identify-")
		if err != nil {
			return fmt.Errorf("hook TMPDIR: %w", err)
		}
		defer os.RemoveAll(dir)
		res, err := w.run(ctx, hook{
			event: EventIdentify, what: "identify hook", args: []string{"-c", cmd},
			env: w.env(EventIdentify, nil, nil), tmpdir: dir, timeout: w.s.timeouts[EventIdentify], outCap: identifyOutCap,
		})
		if err != nil {
			return err
		}
		if doc := bytes.TrimSpace(res.stdout); len(doc) > 0 && doc[0] == '<' {
			if res.over {
				return fmt.Errorf("the identify hook printed more than %d bytes", identifyOutCap)
			}
			if err := md.UseXML(doc); err != nil {
				return fmt.Errorf("the identify hook printed a Writer Metadata Document that does not parse: %w", err)
			}
			return nil
		}
	}
	return w.describe(md)
}

// describe builds the document from the configured components. Whether a
// path is a directory or a file is looked at now, so a path that appears
// after the writer started is picked up by the next Identify.
func (w *Writer) describe(md *writer.Metadata) error {
	// Without restore hooks the writer has nothing to do at restore, and
	// VSS_WRE_NEVER keeps restore events away (vss-reference §3.2).
	wre := vss.WRENever
	if w.s.Hooks[EventPreRestore] != "" || w.s.Hooks[EventPostRestore] != "" {
		wre = vss.WREAlways
	}
	md.SetRestoreMethod(w.s.RestoreMethod, "", "", wre, false)
	for _, c := range w.s.Components {
		if md.Document().Component("", c.Name) == nil {
			if err := md.AddComponent(document.Component{
				Type: vss.ComponentFileGroup, Name: c.Name, Caption: c.Name, Selectable: true,
			}); err != nil {
				return err
			}
		}
		dir, spec, recursive, err := fileSet(c.Path)
		if err != nil {
			return fmt.Errorf("component %q: %w", c.Name, err)
		}
		if err := md.AddFiles("", c.Name, dir, spec, recursive, "", 0); err != nil {
			return err
		}
	}
	return nil
}

// fileSet turns a component path into a file set.
func fileSet(path string) (dir, spec string, recursive bool, err error) {
	if base := filepath.Base(path); hasWildcard(base) {
		dir = filepath.Dir(path)
		st, err := os.Stat(dir)
		if err != nil {
			return "", "", false, err
		}
		if !st.IsDir() {
			return "", "", false, fmt.Errorf("%s is not a directory", dir)
		}
		return dir, base, false, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", "", false, err
	}
	if st.IsDir() {
		return path, "*", true, nil
	}
	return filepath.Dir(path), filepath.Base(path), false, nil
}

// PrepareBackup runs the prepare-backup hook.
func (w *Writer) PrepareBackup(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	s := w.sessionOf(ev)
	w.selectFrom(s, c)
	return w.runEvent(ctx, EventPrepareBackup, ev, s)
}

// PrepareSnapshot runs the prepare-snapshot hook.
func (w *Writer) PrepareSnapshot(ctx context.Context, ev *writer.Event) error {
	return w.runEvent(ctx, EventPrepareSnapshot, ev, w.sessionOf(ev))
}

// Freeze runs the freeze hook, then each hook-dir script with "freeze".
// The freeze timeout bounds all of them together: lvssd's Freeze→Thaw
// window is already running. If a script fails, the scripts this Freeze
// called are thawed at once rather than at the Abort lvssd will send.
func (w *Writer) Freeze(ctx context.Context, ev *writer.Event) error {
	s := w.sessionOf(ev)
	deadline := time.Now().Add(w.s.timeouts[EventFreeze])
	if w.s.Hooks[EventFreeze] != "" {
		w.mu.Lock()
		s.freezeCmd = true
		w.mu.Unlock()
		h, err := w.command(EventFreeze, ev, s, time.Until(deadline), false)
		if err != nil {
			return err
		}
		if _, err := w.run(ctx, h); err != nil {
			return err
		}
	}
	if w.s.HookDir == "" {
		return nil
	}
	scripts, err := listScripts(w.s.HookDir, w.log)
	if err != nil {
		return err
	}
	for _, path := range scripts {
		left := time.Until(deadline)
		if left <= 0 {
			err = writer.Fail(vsserr.WriterErrorTimeout, 0, "the freeze hooks used up the freeze timeout %s before %s could run", w.s.timeouts[EventFreeze], path)
		} else {
			w.mu.Lock()
			s.frozen = append(s.frozen, path)
			w.mu.Unlock()
			var h hook
			if h, err = w.script(EventFreeze, path, "freeze", ev, s, left, false); err == nil {
				_, err = w.run(ctx, h)
			}
		}
		if err != nil {
			if terr := w.thawScripts(ctx, EventFreeze, ev, s, w.s.timeouts[EventThaw]); terr != nil {
				w.log.Warn("thawing the hook scripts after a failed freeze failed", "err", terr)
			}
			return err
		}
	}
	return nil
}

// thawScripts calls "thaw" on the session's frozen hook-dir scripts, last
// frozen first, each with its own timeout: every one of them gets its
// chance to release whatever the others do. A script whose thaw fails
// stays frozen, so that a later Abort or BackupShutdown tries again.
func (w *Writer) thawScripts(ctx context.Context, event string, ev *writer.Event, s *session, timeout time.Duration) error {
	w.mu.Lock()
	list := s.frozen
	s.frozen = nil
	w.mu.Unlock()
	var (
		first  error
		failed []string
	)
	for i := len(list) - 1; i >= 0; i-- {
		h, err := w.script(event, list[i], "thaw", ev, s, timeout, true)
		if err == nil {
			_, err = w.run(ctx, h)
		}
		if err != nil {
			failed = append([]string{list[i]}, failed...)
			if first == nil {
				first = err
			} else {
				w.log.Warn("hook script thaw failed", "script", list[i], "err", err)
			}
		}
	}
	w.mu.Lock()
	s.frozen = append(failed, s.frozen...)
	w.mu.Unlock()
	return first
}

// Thaw calls "thaw" on the hook-dir scripts, then runs the thaw hook: the
// reverse of Freeze's order. Both run even if the first fails.
func (w *Writer) Thaw(ctx context.Context, ev *writer.Event) error {
	s := w.sessionOf(ev)
	err := w.thawScripts(ctx, EventThaw, ev, s, w.s.timeouts[EventThaw])
	if w.s.Hooks[EventThaw] != "" {
		h, herr := w.command(EventThaw, ev, s, w.s.timeouts[EventThaw], true)
		if herr == nil {
			_, herr = w.run(ctx, h)
		}
		if herr == nil {
			w.mu.Lock()
			s.freezeCmd = false
			w.mu.Unlock()
		}
		err = firstErr(w.log, err, herr)
	} else {
		w.mu.Lock()
		s.freezeCmd = false
		w.mu.Unlock()
	}
	return err
}

// Abort calls "thaw" on the hook-dir scripts still frozen, then runs the
// abort hook. Without an abort hook, the thaw hook runs in its place if
// the session's freeze hook ran and was not thawed, so that a writer
// configured with only freeze and thaw hooks is released too. Abort can
// come more than once and in any phase: the abort hook runs every time.
func (w *Writer) Abort(ctx context.Context, ev *writer.Event) error {
	s := w.sessionOf(ev)
	err := w.thawScripts(ctx, EventAbort, ev, s, w.s.timeouts[EventAbort])
	w.mu.Lock()
	frozen := s.freezeCmd
	w.mu.Unlock()
	event := EventAbort
	if w.s.Hooks[EventAbort] == "" {
		if !frozen || w.s.Hooks[EventThaw] == "" {
			return err
		}
		event = EventThaw
	}
	h, herr := w.command(event, ev, s, w.s.timeouts[EventAbort], true)
	if herr == nil {
		// LVSS_EVENT says abort also when the thaw hook stands in.
		h.env = replaceEnv(h.env, "LVSS_EVENT", EventAbort)
		h.event = EventAbort
		if event == EventThaw {
			h.what = "thaw hook (in place of the missing abort hook)"
		}
		_, herr = w.run(ctx, h)
	}
	if herr == nil {
		w.mu.Lock()
		s.freezeCmd = false
		w.mu.Unlock()
	}
	return firstErr(w.log, err, herr)
}

// PostSnapshot runs the post-snapshot hook, with the snapshots' device
// paths.
func (w *Writer) PostSnapshot(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	s := w.sessionOf(ev)
	w.selectFrom(s, c)
	var lines []string
	for _, p := range ev.Placements {
		if p.DevicePath != "" {
			lines = append(lines, p.Path+"\t"+p.DevicePath)
		}
	}
	return w.runEvent(ctx, EventPostSnapshot, ev, s, "LVSS_DEVICE_PATHS="+strings.Join(lines, "\n"))
}

// BackupComplete runs the backup-complete hook, telling it whether the
// requester marked every included component as backed up.
func (w *Writer) BackupComplete(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	s := w.sessionOf(ev)
	w.selectFrom(s, c)
	list := c.List()
	ok := len(list) > 0
	for _, comp := range list {
		ok = ok && comp.BackupSucceeded
	}
	return w.runEvent(ctx, EventBackupComplete, ev, s, "LVSS_BACKUP_SUCCEEDED="+boolEnv(ok))
}

// BackupShutdown runs the backup-shutdown hook and forgets the session,
// removing its TMPDIR. Hook-dir scripts still frozen (a thaw that failed
// at Abort) get one more "thaw" first.
func (w *Writer) BackupShutdown(ctx context.Context, ev *writer.Event) error {
	s := w.sessionOf(ev)
	defer w.endSession(ev.SessionID)
	err := w.thawScripts(ctx, EventBackupShutdown, ev, s, w.s.timeouts[EventBackupShutdown])
	if w.s.Hooks[EventBackupShutdown] != "" {
		h, herr := w.command(EventBackupShutdown, ev, s, w.s.timeouts[EventBackupShutdown], true)
		if herr == nil {
			_, herr = w.run(ctx, h)
		}
		err = firstErr(w.log, err, herr)
	}
	return err
}

// PreRestore runs the pre-restore hook with the restore facts of the
// components selected for restore (restoreEnv).
func (w *Writer) PreRestore(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	s := w.sessionOf(ev)
	w.selectForRestore(s, c)
	return w.runEvent(ctx, EventPreRestore, ev, s, restoreEnv(c, false)...)
}

// PostRestore runs the post-restore hook with the restore facts, now with
// each component's file restore status and the alternate locations the
// requester used.
func (w *Writer) PostRestore(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	s := w.sessionOf(ev)
	w.selectForRestore(s, c)
	return w.runEvent(ctx, EventPostRestore, ev, s, restoreEnv(c, true)...)
}

// selectForRestore remembers the components selected for restore: in a
// restore session the document holds every backed-up component of the
// writer, and only the selected ones are the hooks' business.
func (w *Writer) selectForRestore(s *session, c *writer.Components) {
	if c.Document() == nil {
		return
	}
	var names []string
	for _, comp := range restoring(c) {
		names = append(names, componentPath(comp.LogicalPath, comp.Name))
	}
	w.mu.Lock()
	s.selected = names
	w.mu.Unlock()
}

// restoring returns the writer's components selected for restore.
func restoring(c *writer.Components) []*document.ComponentState {
	var out []*document.ComponentState
	for _, comp := range c.List() {
		if comp.SelectedForRestore {
			out = append(out, comp)
		}
	}
	return out
}

// restoreEnv is the restore part of a pre-restore or post-restore hook's
// environment (docs/writer-exec.md, "Restore"): one line per selected
// component (and per new target or alternate location), fields separated
// by tabs, like the other lists.
func restoreEnv(c *writer.Components, post bool) []string {
	var comps, opts, targets, alternates []string
	status := ""
	for _, comp := range restoring(c) {
		name := componentPath(comp.LogicalPath, comp.Name)
		comps = append(comps, strings.Join([]string{name, comp.RestoreTarget.String(), comp.FileRestoreStatus.String(),
			boolEnv(comp.AdditionalRestores)}, "\t"))
		if comp.RestoreOptions != "" {
			// A line per component: line breaks in the options would
			// start a new one.
			opts = append(opts, name+"\t"+strings.NewReplacer("\n", " ", "\r", " ").Replace(comp.RestoreOptions))
		}
		for _, nt := range comp.NewTargets {
			targets = append(targets, strings.Join([]string{name, nt.Path, nt.Filespec, boolEnv(nt.Recursive), nt.AlternatePath}, "\t"))
		}
		for _, m := range comp.AlternateLocationMappings {
			alternates = append(alternates, strings.Join([]string{name, m.Path, m.Filespec, boolEnv(m.Recursive), m.Destination}, "\t"))
		}
		switch st := comp.FileRestoreStatus.String(); {
		case status == "":
			status = st
		case status != st:
			status = "mixed"
		}
	}
	env := []string{
		"LVSS_RESTORE_COMPONENTS=" + strings.Join(comps, "\n"),
		"LVSS_RESTORE_OPTIONS=" + strings.Join(opts, "\n"),
		"LVSS_NEW_TARGETS=" + strings.Join(targets, "\n"),
	}
	if post {
		env = append(env,
			"LVSS_FILE_RESTORE_STATUS="+status,
			"LVSS_ALTERNATE_LOCATIONS="+strings.Join(alternates, "\n"))
	}
	return env
}

// firstErr returns the first error and logs the second: the SDK reports
// one failure per event.
func firstErr(log *slog.Logger, a, b error) error {
	if a == nil {
		return b
	}
	if b != nil {
		log.Warn("a second release step failed too", "err", b)
	}
	return a
}

// env is the LVSS_* part of a hook's environment (docs/writer-exec.md).
// ev is nil for Identify, which belongs to no session.
func (w *Writer) env(event string, ev *writer.Event, s *session) []string {
	env := []string{
		"LVSS_EVENT=" + event,
		"LVSS_WRITER_NAME=" + w.s.Name,
		"LVSS_WRITER_CLASS_ID=" + w.s.ClassID.String(),
		"LVSS_WRITER_INSTANCE_NAME=" + w.s.InstanceName,
	}
	if ev == nil {
		return env
	}
	w.mu.Lock()
	selected := slices.Clone(s.selected)
	w.mu.Unlock()
	var instants, paths []string
	for _, p := range ev.Placements {
		instants = append(instants, p.Path+"\t"+p.SnapshotID.String()+"\t"+strconv.FormatUint(uint64(p.Instant), 10))
		paths = append(paths, p.Path)
	}
	shared, pointInTime := "", ""
	if len(paths) > 0 {
		shared = boolEnv(ev.SharedInstant(paths...) == nil)
		pointInTime = boolEnv(ev.PointInTime(paths...) == nil)
	}
	return append(env,
		"LVSS_INSTANCE_ID="+ev.InstanceID.String(),
		"LVSS_SESSION_ID="+ev.SessionID.String(),
		"LVSS_SNAPSHOT_SET_ID="+ev.SnapshotSetID.String(),
		"LVSS_CONTEXT="+ev.Context.String(),
		"LVSS_BACKUP_TYPE="+ev.BackupType.String(),
		"LVSS_RESTORE_TYPE="+ev.RestoreType.String(),
		"LVSS_SELECT_COMPONENTS="+boolEnv(ev.SelectComponents),
		"LVSS_SELECTED_COMPONENTS="+strings.Join(selected, "\n"),
		"LVSS_VOLUMES="+strings.Join(ev.Volumes, "\n"),
		"LVSS_PATH_INSTANTS="+strings.Join(instants, "\n"),
		"LVSS_SHARED_INSTANT="+shared,
		"LVSS_POINT_IN_TIME="+pointInTime,
		"LVSS_SELF_RAISED="+boolEnv(ev.SelfRaised),
	)
}

func boolEnv(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// replaceEnv sets key in env, replacing an earlier value.
func replaceEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}
