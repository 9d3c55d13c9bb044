package writertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// ComponentRef names one of the writer's components.
type ComponentRef struct {
	LogicalPath, Name string
}

// Options tune Run. Every field is optional.
type Options struct {
	// CheckFrozen is called while the writer must hold its application
	// frozen: after Freeze succeeded and before Thaw or Abort is sent
	// (except in FreezeWindowExpiry, where the window is too short to
	// check in). It should fail t if the application can still write.
	CheckFrozen func(t *testing.T)
	// CheckThawed is called after every release (Thaw, Abort, the end of
	// a session, a dropped stream, a cancelled Run). It should fail t if
	// the application is still frozen or holds what PrepareSnapshot took.
	CheckThawed func(t *testing.T)
	// Components are the components the requester includes in backups.
	// Default: every component the writer's Identify lists that is not
	// implicitly included through a selectable ancestor.
	Components []ComponentRef
	// FreezeTimeout is the window the coordinator grants in
	// FreezeWindowExpiry; default 1 s. Keep it short: the subtest waits it
	// out.
	FreezeTimeout time.Duration
	// EventTimeout is the timeout_ms of every event; default 30 s.
	EventTimeout time.Duration
	// ReleaseWithin bounds how long the writer may take to release after a
	// dropped stream or a cancelled Run; default 1 s.
	ReleaseWithin time.Duration

	// The restore subtests run only for writers whose restore setting is
	// not VSS_WRE_NEVER (the coordinator sends the others no restore
	// event). Each backs up, then restores the backed-up components:
	// PreRestore, Restore, PostRestore with one file restore status.

	// NoRestore skips the restore subtests of a writer that takes part in
	// restores: for a further configuration of the suite whose restore
	// does not differ from one that runs them (they stop and restart the
	// application, which is slow to repeat).
	NoRestore bool
	// PrepareRestore is called after the backup and before the restore
	// session starts (before its Identify and PreRestore): what the
	// writer's restore procedure asks of the requester or operator
	// first, such as stopping a server the writer does not stop itself.
	// Default: nothing.
	PrepareRestore func(t *testing.T)
	// CheckPreRestored is called after PreRestore succeeded: the
	// application must be ready for its files to be put back (stopped, or
	// detached from them), as the writer documents.
	CheckPreRestored func(t *testing.T)
	// Restore puts the files back between PreRestore and PostRestore as
	// status says: all of them (VSS_RS_ALL), none (VSS_RS_NONE), some
	// (VSS_RS_FAILED, the component is damaged); VSS_RS_UNDEFINED means the
	// requester never said. Default: nothing.
	Restore func(t *testing.T, status vss.FileRestoreStatus)
	// CheckRestored is called after PostRestore was answered: the
	// application must be in the state the writer documents for status.
	CheckRestored func(t *testing.T, status vss.FileRestoreStatus)
}

func (o Options) withDefaults() Options {
	if o.CheckFrozen == nil {
		o.CheckFrozen = func(*testing.T) {}
	}
	if o.CheckThawed == nil {
		o.CheckThawed = func(*testing.T) {}
	}
	if o.FreezeTimeout <= 0 {
		o.FreezeTimeout = time.Second
	}
	if o.EventTimeout <= 0 {
		o.EventTimeout = 30 * time.Second
	}
	if o.ReleaseWithin <= 0 {
		o.ReleaseWithin = time.Second
	}
	if o.PrepareRestore == nil {
		o.PrepareRestore = func(*testing.T) {}
	}
	if o.CheckPreRestored == nil {
		o.CheckPreRestored = func(*testing.T) {}
	}
	if o.Restore == nil {
		o.Restore = func(*testing.T, vss.FileRestoreStatus) {}
	}
	if o.CheckRestored == nil {
		o.CheckRestored = func(*testing.T, vss.FileRestoreStatus) {}
	}
	return o
}

// Run is the conformance suite. newWriter is called once per subtest and
// returns a fresh writer (and its application, if the test starts one)
// with its identity; the subtest runs it with writer.Run against its own
// Coordinator.
func Run(t *testing.T, newWriter func(t *testing.T) (writer.Identity, writer.Writer), opts Options) {
	opts = opts.withDefaults()
	// Whether the writer takes part in restores, from its Identify: the
	// restore subtests run only then.
	restores := false
	t.Run("Identify", func(t *testing.T) {
		r := newRig(t, newWriter, opts, 0)
		testIdentify(t, r)
		restores = r.wmd != nil && r.wmd.RestoreMethod.WriterRestore != vss.WRENever
	})
	t.Run("FullBackup", func(t *testing.T) { testFullBackup(t, newRig(t, newWriter, opts, 0)) })
	for _, phase := range []v1.EventType{v1.EventType_EVENT_PREPARE_BACKUP, v1.EventType_EVENT_PREPARE_SNAPSHOT, v1.EventType_EVENT_FREEZE} {
		t.Run("AbortAfter"+writer.EventType(phase).String(), func(t *testing.T) {
			testAbortAfter(t, newRig(t, newWriter, opts, 0), phase, 1)
		})
	}
	t.Run("AbortTwice", func(t *testing.T) {
		testAbortAfter(t, newRig(t, newWriter, opts, 0), v1.EventType_EVENT_FREEZE, 2)
	})
	t.Run("ShutdownWithoutComplete", func(t *testing.T) { testShutdownWithoutComplete(t, newRig(t, newWriter, opts, 0)) })
	t.Run("FreezeWindowExpiry", func(t *testing.T) {
		testFreezeWindowExpiry(t, newRig(t, newWriter, opts, opts.FreezeTimeout))
	})
	t.Run("StreamDropWhileFrozen", func(t *testing.T) { testStreamDrop(t, newRig(t, newWriter, opts, 0)) })
	t.Run("CancelWhileFrozen", func(t *testing.T) { testCancel(t, newRig(t, newWriter, opts, 0)) })
	if !restores {
		t.Logf("the writer's restore setting is %s (or Identify failed): lvssd sends it no restore event; no restore subtest", vss.WRENever)
		return
	}
	if opts.NoRestore {
		t.Log("Options.NoRestore: no restore subtest")
		return
	}
	for _, st := range []vss.FileRestoreStatus{vss.RSAll, vss.RSNone, vss.RSFailed, vss.RSUndefined} {
		t.Run("Restore/"+st.String(), func(t *testing.T) { testRestore(t, newRig(t, newWriter, opts, 0), st) })
	}
	t.Run("RestoreEndsBeforePostRestore", func(t *testing.T) { testRestoreCut(t, newRig(t, newWriter, opts, 0)) })
}

// rig is one writer under test, its coordinator, and one requester
// session's worth of state.
type rig struct {
	t    *testing.T
	opts Options
	co   *Coordinator
	wc   *WriterConn
	rec  *recorder
	id   writer.Identity

	cancel context.CancelFunc
	done   chan struct{} // closed when writer.Run returned
	runErr error         // valid after done

	nextID  uint64
	session uuid.UUID
	set     uuid.UUID
	snap    uuid.UUID
	wmd     *document.WriterMetadata
	bcd     *document.BackupComponents // the requester's document, with the writer's edits merged
	foreign uuid.UUID                  // another writer instance in the document
	// restoring: the rig's session is a restore session.
	restoring bool
}

func newRig(t *testing.T, newWriter func(t *testing.T) (writer.Identity, writer.Writer), opts Options, window time.Duration) *rig {
	t.Helper()
	co := NewCoordinator(t)
	co.SetFreezeTimeout(window)
	id, w := newWriter(t)
	r := &rig{
		t: t, opts: opts, co: co, rec: newRecorder(t, w), id: id, done: make(chan struct{}),
		session: uuid.New(), set: uuid.New(), snap: uuid.New(), foreign: uuid.New(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() {
		defer close(r.done)
		r.runErr = writer.Run(ctx, writer.Options{Socket: co.Socket(), Logger: log}, id, r.rec)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(WaitTimeout):
			t.Errorf("writer.Run did not return within %s of its context's end", WaitTimeout)
		}
	})
	co.WaitWriters(1)
	r.wc = co.Writer(0)
	return r
}

// testWriter sends the SDK's log to the test log, shown on failure or -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// event builds an event of the rig's session with what a coordinator
// would put in it for that type.
func (r *rig) event(typ v1.EventType) *v1.Event {
	r.nextID++
	ev := &v1.Event{
		Id: r.nextID, Type: typ, SessionId: r.session.String(), SnapshotSetId: r.set.String(),
		Context: int32(vss.CtxBackup), BackupType: int32(vss.BackupFull), SelectComponents: true,
		TimeoutMs: r.opts.EventTimeout.Milliseconds(),
	}
	switch typ {
	case v1.EventType_EVENT_IDENTIFY:
		ev.SnapshotSetId = ""
	case v1.EventType_EVENT_PREPARE_SNAPSHOT:
		ev.Volumes = []string{"/"}
		ev.Placements = r.placements("")
	case v1.EventType_EVENT_FREEZE, v1.EventType_EVENT_THAW:
		ev.Volumes = []string{"/"}
	case v1.EventType_EVENT_POST_SNAPSHOT:
		ev.Volumes = []string{"/"}
		// No real snapshot exists; an empty directory stands for its device.
		ev.Placements = r.placements(r.t.TempDir())
	case v1.EventType_EVENT_PRE_RESTORE, v1.EventType_EVENT_POST_RESTORE:
		// A restore session makes no snapshot set.
		ev.SnapshotSetId = uuid.Nil.String()
		ev.RestoreType = int32(vss.RestoreByCopy)
	}
	if r.restoring && typ == v1.EventType_EVENT_BACKUP_SHUTDOWN {
		ev.SnapshotSetId = uuid.Nil.String()
	}
	return ev
}

// placements puts every file path of the writer's components in one
// snapshot of "/", captured at one instant.
func (r *rig) placements(device string) []*v1.PathPlacement {
	var out []*v1.PathPlacement
	seen := map[string]bool{}
	if r.wmd == nil {
		return nil
	}
	for _, c := range r.wmd.Components {
		for _, list := range [][]document.FileDesc{c.Files, c.DatabaseFiles, c.DatabaseLogFiles} {
			for _, f := range list {
				if seen[f.Path] {
					continue
				}
				seen[f.Path] = true
				out = append(out, &v1.PathPlacement{Path: f.Path, SnapshotId: r.snap.String(), OriginalVolume: "/", Instant: 1, DevicePath: device})
			}
		}
	}
	return out
}

// send delivers ev and returns the answer, failing the test if there is
// none or it carries another id.
func (r *rig) send(ev *v1.Event) *v1.EventResult {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.EventTimeout+5*time.Second)
	defer cancel()
	res, err := r.co.Send(ctx, 0, ev)
	if err != nil {
		r.t.Fatalf("%s: %v", writer.EventType(ev.Type), err)
	}
	if res.GetId() != ev.Id {
		r.t.Fatalf("%s: answer carries id %d, want %d", writer.EventType(ev.Type), res.GetId(), ev.Id)
	}
	return res
}

// ok sends ev and requires success.
func (r *rig) ok(ev *v1.Event) *v1.EventResult {
	r.t.Helper()
	res := r.send(ev)
	if res.GetFailure() != 0 {
		r.t.Fatalf("%s failed: %s [application 0x%08X] %s", writer.EventType(ev.Type),
			vsserr.HRESULT(res.GetFailure()), res.GetApplicationHresult(), res.GetApplicationMessage())
	}
	return res
}

// identify sends Identify and returns the parsed, checked document.
func (r *rig) identify() (*document.WriterMetadata, string) {
	r.t.Helper()
	res := r.ok(r.event(v1.EventType_EVENT_IDENTIFY))
	if res.GetWmdXml() == "" {
		r.t.Fatal("Identify: the answer carries no Writer Metadata Document")
	}
	wmd, err := document.ParseWriterMetadata([]byte(res.GetWmdXml()))
	if err != nil {
		r.t.Fatalf("Identify: the Writer Metadata Document does not parse: %v", err)
	}
	if err := wmd.Validate(); err != nil {
		r.t.Fatalf("Identify: the Writer Metadata Document is not valid: %v", err)
	}
	r.wmd = wmd
	return wmd, res.GetWmdXml()
}

// selected returns the components a backup includes.
func (r *rig) selected() []*document.Component {
	r.t.Helper()
	var out []*document.Component
	if len(r.opts.Components) > 0 {
		for _, ref := range r.opts.Components {
			c := r.wmd.Component(ref.LogicalPath, ref.Name)
			if c == nil {
				r.t.Fatalf("Options.Components names %q (logical path %q), which Identify does not list", ref.Name, ref.LogicalPath)
			}
			out = append(out, c)
		}
		return out
	}
	for i := range r.wmd.Components {
		c := &r.wmd.Components[i]
		if !implicit(r.wmd, c) {
			out = append(out, c)
		}
	}
	return out
}

// implicit: c lies below a selectable component, so adding that one
// includes c, and c itself is never added (vss-reference §6.1).
func implicit(wmd *document.WriterMetadata, c *document.Component) bool {
	for i := range wmd.Components {
		s := &wmd.Components[i]
		if s == c || !s.Selectable {
			continue
		}
		root := s.Name
		if s.LogicalPath != "" {
			root = s.LogicalPath + `\` + s.Name
		}
		if c.LogicalPath == root || strings.HasPrefix(c.LogicalPath, root+`\`) {
			return true
		}
	}
	return false
}

// startBackup identifies the writer and builds the requester's document:
// the selected components, and one of another writer instance that the
// writer must neither see nor echo.
func (r *rig) startBackup() {
	r.t.Helper()
	r.identify()
	r.bcd = &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull, SnapshotSetID: r.set}
	for _, c := range r.selected() {
		if err := r.bcd.AddComponent(r.wc.InstanceID, r.wmd.Identity.WriterID, r.wmd.Identity.InstanceName,
			r.wmd.BackupSchema, c.Type, c.LogicalPath, c.Name); err != nil {
			r.t.Fatalf("building the BCD: %v", err)
		}
	}
	if err := r.bcd.AddComponent(r.foreign, uuid.New(), "", 0, vss.ComponentFileGroup, "", "not-yours"); err != nil {
		r.t.Fatalf("building the BCD: %v", err)
	}
}

// withBCD attaches the requester's current document to ev.
func (r *rig) withBCD(ev *v1.Event) *v1.Event {
	r.t.Helper()
	b, err := r.bcd.Marshal()
	if err != nil {
		r.t.Fatalf("writing the BCD: %v", err)
	}
	ev.BcdXml = string(b)
	return ev
}

// merge checks the writer's copy of the BCD and merges its edits as the
// coordinator would.
func (r *rig) merge(res *v1.EventResult, phase document.Phase, what string) {
	r.t.Helper()
	if res.GetBcdXml() == "" {
		return
	}
	if phase == document.PhaseReadOnly {
		r.t.Errorf("%s: the answer carries a BCD, but the document is read-only in this event", what)
		return
	}
	got, err := document.ParseBackupComponents([]byte(res.GetBcdXml()))
	if err != nil {
		r.t.Fatalf("%s: the returned BCD does not parse: %v", what, err)
	}
	for _, w := range got.Writers {
		if w.InstanceID != r.wc.InstanceID {
			r.t.Errorf("%s: the returned BCD holds components of writer instance %s, not only the writer's own (%s)", what, w.InstanceID, r.wc.InstanceID)
		}
	}
	own := got.Writer(r.wc.InstanceID)
	if own == nil {
		return
	}
	sent := r.bcd.Writer(r.wc.InstanceID)
	if !slices.Equal(keys(own), keys(sent)) {
		r.t.Errorf("%s: the returned components are %v, the requester included %v", what, keys(own), keys(sent))
	}
	if err := r.bcd.ApplyWriterEdits(phase, r.wc.InstanceID, own); err != nil {
		r.t.Errorf("%s: the coordinator would refuse the writer's edits: %v", what, err)
	}
}

func keys(w *document.WriterComponents) []string {
	if w == nil {
		return nil
	}
	var out []string
	for _, c := range w.Components {
		out = append(out, fmt.Sprintf("%s|%s", c.LogicalPath, c.Name))
	}
	slices.Sort(out)
	return out
}

// backupUntil runs the backup sequence up to and including phase.
func (r *rig) backupUntil(phase v1.EventType) {
	r.t.Helper()
	r.startBackup()
	res := r.ok(r.withBCD(r.event(v1.EventType_EVENT_PREPARE_BACKUP)))
	r.merge(res, document.PhasePrepareBackup, "PrepareBackup")
	if phase == v1.EventType_EVENT_PREPARE_BACKUP {
		return
	}
	r.ok(r.event(v1.EventType_EVENT_PREPARE_SNAPSHOT))
	if phase == v1.EventType_EVENT_PREPARE_SNAPSHOT {
		return
	}
	r.ok(r.event(v1.EventType_EVENT_FREEZE))
}

func testIdentify(t *testing.T, r *rig) {
	wmd, first := r.identify()
	_, second := r.identify()
	if first != second {
		t.Errorf("Identify is not deterministic: two calls gave different documents:\n%s\n---\n%s", first, second)
	}
	id := r.id
	want := document.Identity{
		WriterID: id.ClassID, InstanceID: r.wc.InstanceID, InstanceName: id.InstanceName, FriendlyName: id.Name,
		Usage: id.Usage, Source: id.Source, MajorVersion: id.MajorVersion, MinorVersion: id.MinorVersion,
	}
	if want.Usage == vss.UsageUndefined {
		want.Usage = vss.UsageUserData
	}
	if want.Source == vss.SourceUndefined {
		want.Source = vss.SourceOther
	}
	if wmd.Identity != want {
		t.Errorf("Identify: IDENTIFICATION is %+v, want %+v", wmd.Identity, want)
	}
	if len(wmd.Components) == 0 {
		t.Error("Identify: the writer lists no component; a writer without components has nothing to back up")
	}
	if wmd.RestoreMethod.Method == vss.RMEUndefined {
		t.Error("Identify: no restore method")
	}
	h := r.wc.Hello
	if h.GetWriterId() != id.ClassID.String() || h.GetName() != id.Name || h.GetInstanceName() != id.InstanceName {
		t.Errorf("Hello names writer %s %q %q, want %s %q %q", h.GetWriterId(), h.GetName(), h.GetInstanceName(), id.ClassID, id.Name, id.InstanceName)
	}
	wantLevel := id.Level
	if wantLevel == vss.LevelUnknown {
		wantLevel = vss.LevelFrontEnd
	}
	if vss.AppLevel(h.GetLevel()) != wantLevel {
		t.Errorf("Hello: level %d, want %d", h.GetLevel(), wantLevel)
	}
	for _, c := range r.rec.since(0) {
		if c.Type != writer.EventIdentify {
			t.Errorf("Identify alone led to a %s call", c.Type)
		}
	}
}

func testFullBackup(t *testing.T, r *rig) {
	r.backupUntil(v1.EventType_EVENT_FREEZE)
	r.opts.CheckFrozen(t)
	r.ok(r.event(v1.EventType_EVENT_THAW))
	r.opts.CheckThawed(t)
	res := r.ok(r.withBCD(r.event(v1.EventType_EVENT_POST_SNAPSHOT)))
	r.merge(res, document.PhasePostSnapshot, "PostSnapshot")
	if own := r.bcd.Writer(r.wc.InstanceID); own != nil {
		for i := range own.Components {
			own.Components[i].BackupSucceeded = true // the requester copied everything
		}
	}
	res = r.ok(r.withBCD(r.event(v1.EventType_EVENT_BACKUP_COMPLETE)))
	r.merge(res, document.PhaseReadOnly, "BackupComplete")
	r.ok(r.event(v1.EventType_EVENT_BACKUP_SHUTDOWN))
	r.opts.CheckThawed(t)
	for _, c := range r.rec.since(0) {
		if c.Type == writer.EventAbort {
			t.Errorf("a successful backup led to an Abort (self-raised: %v)", c.SelfRaised)
		}
	}
}

func testAbortAfter(t *testing.T, r *rig, phase v1.EventType, aborts int) {
	r.backupUntil(phase)
	if phase == v1.EventType_EVENT_FREEZE {
		r.opts.CheckFrozen(t)
	}
	for range aborts {
		r.ok(r.event(v1.EventType_EVENT_ABORT))
		r.opts.CheckThawed(t)
	}
	r.ok(r.event(v1.EventType_EVENT_BACKUP_SHUTDOWN))
	r.opts.CheckThawed(t)
}

func testShutdownWithoutComplete(t *testing.T, r *rig) {
	r.backupUntil(v1.EventType_EVENT_FREEZE)
	r.opts.CheckFrozen(t)
	r.ok(r.event(v1.EventType_EVENT_THAW))
	r.opts.CheckThawed(t)
	r.ok(r.event(v1.EventType_EVENT_BACKUP_SHUTDOWN))
	r.opts.CheckThawed(t)
}

func testFreezeWindowExpiry(t *testing.T, r *rig) {
	window := r.wc.FreezeWindow
	if window > r.opts.FreezeTimeout {
		t.Fatalf("Welcome granted a %s window, want at most %s", window, r.opts.FreezeTimeout)
	}
	r.backupUntil(v1.EventType_EVENT_PREPARE_SNAPSHOT)
	mark := r.rec.mark()
	sentAt := time.Now() // the window starts later, when Freeze returns
	r.ok(r.event(v1.EventType_EVENT_FREEZE))
	// No CheckFrozen here: it would race the short window. The other
	// subtests check the frozen state.
	if _, ok := r.rec.waitFor(mark, window+time.Second, func(c call) bool {
		return c.Type == writer.EventAbort && c.SelfRaised
	}); !ok {
		t.Fatalf("no Thaw came, but the SDK did not call Abort within the %s window + 1s", window)
	}
	if took := time.Since(sentAt); took < window {
		t.Errorf("the SDK aborted %s after Freeze, before the %s window ended", took, window)
	}
	r.opts.CheckThawed(t)
	res := r.send(r.event(v1.EventType_EVENT_THAW))
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorTimeout {
		t.Errorf("the late Thaw was answered %s (%s), want %s", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage(), vsserr.WriterErrorTimeout)
	}
	for _, c := range r.rec.since(mark) {
		if c.Type == writer.EventThaw {
			t.Error("the writer's Thaw was called after the SDK had aborted")
		}
	}
	r.ok(r.event(v1.EventType_EVENT_BACKUP_SHUTDOWN))
	r.opts.CheckThawed(t)
}

// waitRun waits for writer.Run to return after the stream ended or its
// context was cancelled.
func (r *rig) waitRun(what string) error {
	r.t.Helper()
	select {
	case <-r.done:
		return r.runErr
	case <-time.After(r.opts.ReleaseWithin):
		r.t.Fatalf("%s: writer.Run did not release and return within %s", what, r.opts.ReleaseWithin)
		return nil
	}
}

// checkReleased checks that the SDK raised Abort, then BackupShutdown, for
// the rig's session after mark.
func (r *rig) checkReleased(mark int, what string) {
	r.t.Helper()
	var got []string
	for _, c := range r.rec.since(mark) {
		if c.Session == r.session {
			got = append(got, fmt.Sprintf("%s(self=%v)", c.Type, c.SelfRaised))
		}
	}
	want := []string{"Abort(self=true)", "BackupShutdown(self=true)"}
	if !slices.Equal(got, want) {
		r.t.Errorf("%s: the SDK called %v, want %v", what, got, want)
	}
}

func testStreamDrop(t *testing.T, r *rig) {
	r.backupUntil(v1.EventType_EVENT_FREEZE)
	r.opts.CheckFrozen(t)
	mark := r.rec.mark()
	r.co.DropWriter(0)
	if err := r.waitRun("stream dropped"); !errors.Is(err, writer.ErrStreamEnded) {
		t.Errorf("writer.Run returned %v, want %v", err, writer.ErrStreamEnded)
	}
	r.checkReleased(mark, "stream dropped while frozen")
	r.opts.CheckThawed(t)
}

func testCancel(t *testing.T, r *rig) {
	r.backupUntil(v1.EventType_EVENT_FREEZE)
	r.opts.CheckFrozen(t)
	mark := r.rec.mark()
	r.cancel()
	if err := r.waitRun("context cancelled"); err != nil {
		t.Errorf("writer.Run returned %v after its context was cancelled, want nil", err)
	}
	r.checkReleased(mark, "Run's context cancelled while frozen")
	r.opts.CheckThawed(t)
}

// backupForRestore backs up the writer's components; the rig then holds
// the saved document.
func (r *rig) backupForRestore() {
	r.t.Helper()
	r.backupUntil(v1.EventType_EVENT_FREEZE)
	r.ok(r.event(v1.EventType_EVENT_THAW))
	r.merge(r.ok(r.withBCD(r.event(v1.EventType_EVENT_POST_SNAPSHOT))), document.PhasePostSnapshot, "PostSnapshot")
	own := r.bcd.Writer(r.wc.InstanceID)
	if own != nil {
		for i := range own.Components {
			own.Components[i].BackupSucceeded = true
		}
	}
	r.ok(r.withBCD(r.event(v1.EventType_EVENT_BACKUP_COMPLETE)))
	r.ok(r.event(v1.EventType_EVENT_BACKUP_SHUTDOWN))
	if own == nil {
		r.t.Fatal("the backup holds none of the writer's components")
	}
}

// startRestore begins a restore session of the saved document: a new
// session, Identify, every backed-up component of the writer selected.
func (r *rig) startRestore() {
	r.t.Helper()
	r.opts.PrepareRestore(r.t)
	r.session, r.restoring = uuid.New(), true
	r.identify()
	r.bcd.RestoreType = vss.RestoreByCopy
	own := r.bcd.Writer(r.wc.InstanceID)
	for i := range own.Components {
		own.Components[i].SelectedForRestore = true
		own.Components[i].RestoreTarget = vss.RTOriginal
	}
}

// preRestore sends PreRestore and checks what the handler saw.
func (r *rig) preRestore() {
	r.t.Helper()
	m := r.rec.mark()
	res := r.ok(r.withBCD(r.event(v1.EventType_EVENT_PRE_RESTORE)))
	r.merge(res, document.PhasePreRestore, "PreRestore")
	if _, ok := r.rec.inner.(writer.PreRestorer); ok {
		c, found := r.rec.waitFor(m, WaitTimeout, func(c call) bool { return c.Type == writer.EventPreRestore })
		switch {
		case !found:
			r.t.Error("PreRestore: the writer's handler was not called")
		case c.Session != r.session:
			r.t.Errorf("PreRestore: the handler saw session %s, want %s", c.Session, r.session)
		}
	}
	r.opts.CheckPreRestored(r.t)
}

// testRestore restores the backed-up components with one file restore
// status: PreRestore, the copy, SetFileRestoreStatus, PostRestore,
// BackupShutdown. A writer may fail PostRestore after VSS_RS_FAILED or
// VSS_RS_UNDEFINED (its files are damaged or unknown) but must answer
// every event, and must succeed otherwise.
func testRestore(t *testing.T, r *rig, status vss.FileRestoreStatus) {
	r.backupForRestore()
	r.startRestore()
	r.preRestore()
	r.opts.Restore(t, status)
	own := r.bcd.Writer(r.wc.InstanceID)
	for i := range own.Components {
		own.Components[i].FileRestoreStatus = status
	}
	ev := r.withBCD(r.event(v1.EventType_EVENT_POST_RESTORE))
	var res *v1.EventResult
	if status == vss.RSAll || status == vss.RSNone {
		res = r.ok(ev)
	} else {
		res = r.send(ev)
		if f := vsserr.HRESULT(res.GetFailure()); f.Failed() {
			t.Logf("PostRestore after %s failed, as a writer may: %s %s", status, f, res.GetApplicationMessage())
		}
	}
	r.merge(res, document.PhasePostRestore, "PostRestore")
	r.opts.CheckRestored(t, status)
	r.ok(r.event(v1.EventType_EVENT_BACKUP_SHUTDOWN))
}

// testRestoreCut ends the restore session after PreRestore: the writer
// gets BackupShutdown without PostRestore (D11) and must answer it.
func testRestoreCut(t *testing.T, r *rig) {
	r.backupForRestore()
	r.startRestore()
	r.preRestore()
	r.ok(r.event(v1.EventType_EVENT_BACKUP_SHUTDOWN))
	for _, c := range r.rec.since(0) {
		if c.Type == writer.EventPostRestore {
			t.Error("the SDK raised PostRestore on its own")
		}
	}
}
