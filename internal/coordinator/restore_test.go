package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// expectedRestore transcribes vss-reference §2.3's restore rows with D21's
// additions, independently of the coordinator's table: whether m is
// allowed in restore state st.
func expectedRestore(m Method, st State) bool {
	in := func(ss ...State) bool { return slices.Contains(ss, st) }
	gathered := in(StRestoreMeta, StRestorePre, StRestorePost)
	switch m {
	case MSetBackupState, MSetRestoreState:
		return in(StRestoreInit, StRestoreMeta)
	case MGatherWriterMetadata:
		return in(StRestoreInit)
	case MGetWriterMetadata, MFreeWriterMetadata, MGatherWriterStatus, MGetWriterStatus, MFreeWriterStatus:
		return gathered
	case MSetSelectedForRestore, MAddRestoreSubcomponent, MSetRestoreOptions, MAddNewTarget, MSetAuthoritativeRestore,
		MSetRollForward, MSetRestoreName, MPreRestore:
		return in(StRestoreMeta)
	case MSetAdditionalRestores:
		return in(StRestoreMeta, StRestorePre)
	case MSetFileRestoreStatus, MAddAlternativeLocationMapping, MSetRangesFilePath, MPostRestore:
		return in(StRestorePre)
	case MSaveAsXML, MGetWriterComponents, MQuery, MGetSnapshotProperties, MIsVolumeSupported, MGetSessionID,
		MDeleteSnapshots, MExposeSnapshot, MUnexposeSnapshot, MRevertToSnapshot, MQueryRevertStatus:
		return true // D1, D21 and the administrative calls
	}
	return false // backup-only calls (D21)
}

func expectedRestoreTarget(m Method, st State) State {
	switch m {
	case MGatherWriterMetadata:
		return StRestoreMeta
	case MPreRestore:
		return StRestorePre
	case MPostRestore:
		return StRestorePost
	}
	return st
}

// restoreWriter is a fake writer that takes part in restores.
func restoreWriter(e *env, name string, wre vss.WriterRestore, method vss.RestoreMethod) *fakeWriter {
	e.t.Helper()
	return e.writerWith(name, vss.LevelFrontEnd, 0, func(f *fakeWriter) {
		f.rm = &document.RestoreMethod{Method: method, WriterRestore: wre}
		if method == vss.RMEStopRestoreStart {
			f.rm.Service = name + ".service"
		}
	})
}

// backupBCD backs up every component of every writer and returns the
// saved document, as a requester stores it.
func backupBCD(e *env) string {
	e.t.Helper()
	s, _ := e.toSnapped()
	must(e.t, e.wait(s.BackupComplete()))
	x, err := s.SaveAsXML()
	must(e.t, err)
	s.Release(context.Background())
	return x
}

// buildRestoreState drives a restore session of one writer "w" (always
// restored) into st.
func buildRestoreState(t *testing.T, st State) *cell {
	e := newEnv(t, nil)
	c := &cell{e: e, w: restoreWriter(e, "w", vss.WREAlways, vss.RMERestoreIfCanReplace)}
	bcd := backupBCD(e)
	s := e.c.NewSession(Peer{})
	c.s = s
	must(t, s.InitializeForRestore(bcd))
	if st == StRestoreInit {
		return c
	}
	must(t, s.SetBackupState(true, true, vss.BackupFull, false))
	must(t, e.wait(s.GatherWriterMetadata()))
	if st == StRestoreMeta {
		return c
	}
	must(t, s.SetSelectedForRestore(uuid.Nil, c.w.h.Identity.ClassID, vss.ComponentFileGroup, "", "c0", true))
	must(t, e.wait(s.PreRestore()))
	if st == StRestorePre {
		return c
	}
	must(t, e.wait(s.PostRestore()))
	return c
}

// TestRestoreTableEveryStateAndMethod checks every call in every restore
// state against the transcription above: refused calls are
// VSS_E_BAD_STATE and move nothing; allowed ones lead where the table says.
func TestRestoreTableEveryStateAndMethod(t *testing.T) {
	for _, st := range []State{StRestoreInit, StRestoreMeta, StRestorePre, StRestorePost} {
		for _, m := range AllMethods() {
			t.Run(fmt.Sprintf("%s/%s", st, m), func(t *testing.T) {
				c := buildRestoreState(t, st)
				if got := c.s.State(); got != st {
					t.Fatalf("setup reached %s, want %s", got, st)
				}
				err := c.invoke(m)
				if !expectedRestore(m, st) {
					if !errors.Is(err, vsserr.BadState) {
						t.Fatalf("want VSS_E_BAD_STATE, got %v", err)
					}
					if got := c.s.State(); got != st {
						t.Fatalf("a refused call moved the session from %s to %s", st, got)
					}
					return
				}
				if errors.Is(err, vsserr.BadState) {
					t.Fatalf("allowed call refused: %v", err)
				}
				to := st
				if err == nil {
					to = expectedRestoreTarget(m, st)
				}
				if got := c.s.State(); got != to {
					t.Fatalf("%s in %s (error %v) led to %s, want %s", m, st, err, got, to)
				}
			})
		}
	}
}

// TestRestoreSequenceEvents runs §2.2 with four writers: one restored
// always, one never (VSS_WRE_NEVER), one only if the replace fails, and
// one with no component selected. Only the writers the rules name get
// PreRestore and PostRestore, with their own components and the
// requester's restore settings, and BackupShutdown at the end.
func TestRestoreSequenceEvents(t *testing.T) {
	e := newEnv(t, nil)
	always := restoreWriter(e, "always", vss.WREAlways, vss.RMERestoreIfCanReplace)
	never := restoreWriter(e, "never", vss.WRENever, vss.RMERestoreIfCanReplace)
	ifFails := restoreWriter(e, "iffails", vss.WREIfReplaceFails, vss.RMERestoreIfCanReplace)
	unselected := restoreWriter(e, "unselected", vss.WREAlways, vss.RMERestoreIfCanReplace)
	bcd := backupBCD(e)

	// The writer sets its restore target and restore metadata in PreRestore.
	always.mu.Lock()
	always.edit[EvPreRestore] = func(b *document.BackupComponents, inst uuid.UUID) {
		c := b.Writer(inst).Component("", "c0")
		c.RestoreTarget = vss.RTAlternate
		md := "restore-md"
		c.RestoreMetadata = &md
	}
	always.mu.Unlock()

	s := e.c.NewSession(Peer{})
	must(t, s.InitializeForRestore(bcd))
	must(t, s.SetBackupState(true, true, vss.BackupFull, false))
	must(t, s.SetRestoreState(vss.RestoreByCopy))
	must(t, e.wait(s.GatherWriterMetadata()))
	for _, w := range []*fakeWriter{always, never, ifFails} {
		must(t, s.SetSelectedForRestore(uuid.Nil, w.h.Identity.ClassID, vss.ComponentFileGroup, "", "c0", true))
	}
	cls := always.h.Identity.ClassID
	must(t, s.SetRestoreOptions(cls, vss.ComponentFileGroup, "", "c0", "opt=1"))
	must(t, s.SetAdditionalRestores(cls, vss.ComponentFileGroup, "", "c0", true))
	must(t, e.wait(s.PreRestore()))
	if got := always.lastEvent(EvPreRestore); got == nil || got.RestoreType != vss.RestoreByCopy {
		t.Fatalf("PreRestore to the restored writer: %+v", got)
	}
	view, err := document.ParseBackupComponents(always.lastEvent(EvPreRestore).BCD)
	must(t, err)
	if len(view.Writers) != 1 || view.Writers[0].InstanceID != always.h.InstanceID {
		t.Fatalf("PreRestore view: %+v, want only the writer's own entry under its instance", view.Writers)
	}
	c := view.Writers[0].Component("", "c0")
	if !c.SelectedForRestore || c.RestoreOptions != "opt=1" || !c.AdditionalRestores || c.RestoreTarget != vss.RTOriginal {
		t.Fatalf("PreRestore component view: %+v", c)
	}
	must(t, s.SetFileRestoreStatus(cls, vss.ComponentFileGroup, "", "c0", vss.RSAll))
	must(t, s.SetFileRestoreStatus(ifFails.h.Identity.ClassID, vss.ComponentFileGroup, "", "c0", vss.RSAll))
	must(t, e.wait(s.PostRestore()))
	view, err = document.ParseBackupComponents(always.lastEvent(EvPostRestore).BCD)
	must(t, err)
	c = view.Writers[0].Component("", "c0")
	if c.RestoreTarget != vss.RTAlternate || c.RestoreMetadata == nil || *c.RestoreMetadata != "restore-md" || c.FileRestoreStatus != vss.RSAll {
		t.Fatalf("PostRestore component view lacks the writer's PreRestore edits or the status: %+v", c)
	}
	want := map[*fakeWriter][]EventType{
		always:     {EvIdentify, EvPreRestore, EvPostRestore},
		never:      {EvIdentify},
		ifFails:    {EvIdentify, EvPreRestore}, // the replace did not fail
		unselected: {EvIdentify},
	}
	for w, evs := range want {
		got := slices.DeleteFunc(w.events(), func(t EventType) bool {
			return t != EvIdentify && t != EvPreRestore && t != EvPostRestore
		})
		// Identify: once at subscription, once per GatherWriterMetadata
		// of the backup and of the restore.
		got = slices.Compact(got)
		if !slices.Equal(got, evs) {
			t.Errorf("writer %s got %v, want %v", w.name, got, evs)
		}
	}
	x, err := s.SaveAsXML()
	must(t, err)
	saved, err := document.ParseBackupComponents([]byte(x))
	must(t, err)
	if saved.RestoreType != vss.RestoreByCopy {
		t.Errorf("SaveAsXML restoreType %s", saved.RestoreType)
	}
	rel := s.Release(context.Background())
	if !slices.Equal(rel.ShutdownWriters, sortedIDs(always.h.InstanceID, ifFails.h.InstanceID)) {
		t.Errorf("BackupShutdown to %v, want the writers that got PreRestore", rel.ShutdownWriters)
	}
}

func sortedIDs(ids ...uuid.UUID) []uuid.UUID {
	slices.SortFunc(ids, func(a, b uuid.UUID) int {
		if a.String() < b.String() {
			return -1
		}
		return 1
	})
	return ids
}

// TestRestoreIfReplaceFails: a VSS_WRE_IF_REPLACE_FAILS writer gets
// PostRestore when its files could not all go back in place (L37).
func TestRestoreIfReplaceFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(s *Session, cls uuid.UUID) error
	}{
		{"status none", func(s *Session, cls uuid.UUID) error {
			return s.SetFileRestoreStatus(cls, vss.ComponentFileGroup, "", "c0", vss.RSNone)
		}},
		{"alternate location", func(s *Session, cls uuid.UUID) error {
			if err := s.SetFileRestoreStatus(cls, vss.ComponentFileGroup, "", "c0", vss.RSAll); err != nil {
				return err
			}
			return s.AddAlternativeLocationMapping(cls, vss.ComponentFileGroup, "", "c0", "/data", "*", true, "/alt")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			w := restoreWriter(e, "iffails", vss.WREIfReplaceFails, vss.RMERestoreIfNotThere)
			bcd := backupBCD(e)
			s := e.c.NewSession(Peer{})
			must(t, s.InitializeForRestore(bcd))
			must(t, e.wait(s.GatherWriterMetadata()))
			must(t, s.SetSelectedForRestore(uuid.Nil, w.h.Identity.ClassID, vss.ComponentFileGroup, "", "c0", true))
			must(t, e.wait(s.PreRestore()))
			must(t, tc.set(s, w.h.Identity.ClassID))
			must(t, e.wait(s.PostRestore()))
			if w.count(EvPostRestore) != 1 {
				t.Fatalf("events %v: want PostRestore", w.events())
			}
		})
	}
}

// TestRestoreWriterNotRunning: a component whose writer does not run now
// cannot be selected (vss-reference §2.2); a writer of the same class and
// instance name that subscribed since restores it.
func TestRestoreWriterNotRunning(t *testing.T) {
	e := newEnv(t, nil)
	w := restoreWriter(e, "gone", vss.WREAlways, vss.RMERestoreIfCanReplace)
	bcd := backupBCD(e)
	cls := w.h.Identity.ClassID
	e.c.RemoveWriter(context.Background(), w.h)

	s := e.c.NewSession(Peer{})
	must(t, s.InitializeForRestore(bcd))
	must(t, e.wait(s.GatherWriterMetadata()))
	err := s.SetSelectedForRestore(uuid.Nil, cls, vss.ComponentFileGroup, "", "c0", true)
	if !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("selecting a component of a writer that is not running: %v, want VSS_E_OBJECT_NOT_FOUND", err)
	}
	if err := s.SetSelectedForRestore(uuid.Nil, cls, vss.ComponentFileGroup, "", "nope", true); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("selecting a component the backup lacks: %v", err)
	}
	s.Release(context.Background())

	// The writer comes back: a new instance, same class and name.
	back := restoreWriter(e, "gone", vss.WREAlways, vss.RMERestoreIfCanReplace)
	s = e.c.NewSession(Peer{})
	must(t, s.InitializeForRestore(bcd))
	must(t, e.wait(s.GatherWriterMetadata()))
	must(t, s.SetSelectedForRestore(uuid.Nil, cls, vss.ComponentFileGroup, "", "c0", true))
	back.mu.Lock()
	back.edit[EvPreRestore] = func(b *document.BackupComponents, inst uuid.UUID) {
		b.Writer(inst).Component("", "c0").PreRestoreFailureMsg = "seen"
	}
	back.mu.Unlock()
	must(t, e.wait(s.PreRestore()))
	ev := back.lastEvent(EvPreRestore)
	if ev == nil {
		t.Fatal("the running writer of the class got no PreRestore")
	}
	view, err := document.ParseBackupComponents(ev.BCD)
	must(t, err)
	if view.Writer(back.h.InstanceID) == nil {
		t.Fatalf("PreRestore view is not under the running instance: %+v", view.Writers)
	}
	// Its edit lands on the backed-up entry.
	x, err := s.SaveAsXML()
	must(t, err)
	saved, err := document.ParseBackupComponents([]byte(x))
	must(t, err)
	if c := saved.Writer(w.h.InstanceID).Component("", "c0"); c.PreRestoreFailureMsg != "seen" {
		t.Fatalf("the writer's edit did not reach the backed-up entry: %+v", c)
	}
}

// TestRestoreWriterFailures: a writer failing PreRestore or PostRestore is
// VSS_WS_FAILED_AT_PRE_RESTORE / _POST_RESTORE with its code; one that
// does not answer within timeouts.restore is VSS_E_WRITER_NOT_RESPONDING.
// The operations themselves succeed (the status tells).
func TestRestoreWriterFailures(t *testing.T) {
	for _, tc := range []struct {
		ev     EventType
		silent bool
		state  vss.WriterState
		code   vsserr.HRESULT
	}{
		{EvPreRestore, false, vss.WSFailedAtPreRestore, vsserr.WriterErrorRetryable},
		{EvPostRestore, false, vss.WSFailedAtPostRestore, vsserr.WriterErrorNonRetryable},
		{EvPreRestore, true, vss.WSFailedAtPreRestore, vsserr.WriterNotResponding},
		{EvPostRestore, true, vss.WSFailedAtPostRestore, vsserr.WriterNotResponding},
	} {
		t.Run(fmt.Sprintf("%s/silent=%t", tc.ev, tc.silent), func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Timeouts.Restore = 300 * time.Millisecond })
			w := restoreWriter(e, "w", vss.WREAlways, vss.RMERestoreIfCanReplace)
			bcd := backupBCD(e)
			if tc.silent {
				w.silentAt(tc.ev)
			} else {
				w.failAt(tc.ev, tc.code)
			}
			s := e.c.NewSession(Peer{})
			must(t, s.InitializeForRestore(bcd))
			must(t, e.wait(s.GatherWriterMetadata()))
			must(t, s.SetSelectedForRestore(uuid.Nil, w.h.Identity.ClassID, vss.ComponentFileGroup, "", "c0", true))
			must(t, e.wait(s.PreRestore()))
			if tc.ev == EvPostRestore {
				if st := e.status(s, "w"); st.State != vss.WSStable {
					t.Fatalf("after PreRestore: %+v", st)
				}
				must(t, s.SetFileRestoreStatus(w.h.Identity.ClassID, vss.ComponentFileGroup, "", "c0", vss.RSAll))
				must(t, e.wait(s.PostRestore()))
			}
			st := e.status(s, "w")
			if st.State != tc.state || st.Failure != tc.code {
				t.Fatalf("status %s / %s, want %s / %s", st.State, st.Failure, tc.state, tc.code)
			}
		})
	}
}

// TestRestoreRequesterCalls checks the calls' own rules: which arguments
// they refuse and what they write into the BCD.
func TestRestoreRequesterCalls(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writerWith("w", vss.LevelFrontEnd, 0, func(f *fakeWriter) {
		f.rm = &document.RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WREAlways}
		f.schema = vss.SchemaWriterSupportsNewTarget | vss.SchemaRollForwardRestore
	})
	bcd := backupBCD(e)
	cls, ft := w.h.Identity.ClassID, vss.ComponentFileGroup
	s := e.c.NewSession(Peer{})
	must(t, s.InitializeForRestore(bcd))
	if err := s.SetRestoreState(vss.RestoreType(9)); !errors.Is(err, vsserr.InvalidArg) {
		t.Errorf("SetRestoreState(9): %v", err)
	}
	must(t, e.wait(s.GatherWriterMetadata()))
	must(t, s.SetSelectedForRestore(uuid.Nil, cls, ft, "", "c0", true))
	check := func(what string, err error, want vsserr.HRESULT) {
		t.Helper()
		if want == vsserr.OK && err != nil || want != vsserr.OK && !errors.Is(err, want) {
			t.Errorf("%s: %v, want %s", what, err, want)
		}
	}
	check("AddNewTarget of a declared file set", s.AddNewTarget(cls, ft, "", "c0", w.files[0], "*", true, "/new"), vsserr.OK)
	check("AddNewTarget of an undeclared file set", s.AddNewTarget(cls, ft, "", "c0", "/other", "*", true, "/new"), vsserr.ObjectNotFound)
	check("SetRollForward partial without a point", s.SetRollForward(cls, ft, "", "c0", vss.RFPartial, ""), vsserr.InvalidArg)
	check("SetRollForward partial", s.SetRollForward(cls, ft, "", "c0", vss.RFPartial, "lsn:42"), vsserr.OK)
	check("SetRestoreName without VSS_BS_RESTORE_RENAME", s.SetRestoreName(cls, ft, "", "c0", "x"), vsserr.InvalidArg)
	check("SetAuthoritativeRestore without the schema bit", s.SetAuthoritativeRestore(cls, ft, "", "c0", true), vsserr.InvalidArg)
	check("AddRestoreSubcomponent of an undeclared component", s.AddRestoreSubcomponent(cls, ft, "", "c0", "c0", "sub", false), vsserr.ObjectNotFound)
	check("SetRestoreOptions of an unknown component", s.SetRestoreOptions(cls, ft, "", "nope", "x"), vsserr.ObjectNotFound)
	check("SetRestoreOptions of an unknown writer", s.SetRestoreOptions(uuid.New(), ft, "", "c0", "x"), vsserr.ObjectNotFound)
	check("SetRestoreOptions", s.SetRestoreOptions(cls, ft, "", "c0", "o"), vsserr.OK)
	must(t, e.wait(s.PreRestore()))
	check("SetFileRestoreStatus(7)", s.SetFileRestoreStatus(cls, ft, "", "c0", vss.FileRestoreStatus(7)), vsserr.InvalidArg)
	check("SetFileRestoreStatus", s.SetFileRestoreStatus(cls, ft, "", "c0", vss.RSFailed), vsserr.OK)
	check("SetRangesFilePath without partial files", s.SetRangesFilePath(cls, ft, "", "c0", 0, "/r"), vsserr.InvalidArg)
	check("AddAlternativeLocationMapping without a destination", s.AddAlternativeLocationMapping(cls, ft, "", "c0", "/p", "*", false, ""), vsserr.InvalidArg)
	check("AddAlternativeLocationMapping", s.AddAlternativeLocationMapping(cls, ft, "", "c0", "/p", "*", false, "/alt"), vsserr.OK)
	x, err := s.SaveAsXML()
	must(t, err)
	saved, err := document.ParseBackupComponents([]byte(x))
	must(t, err)
	c := saved.Writers[0].Component("", "c0")
	if !c.SelectedForRestore || c.RestoreOptions != "o" || c.RollForwardType != vss.RFPartial || c.RollForwardPoint != "lsn:42" ||
		c.FileRestoreStatus != vss.RSFailed || len(c.NewTargets) != 1 || c.NewTargets[0].AlternatePath != "/new" ||
		len(c.AlternateLocationMappings) != 1 || c.AlternateLocationMappings[0].Destination != "/alt" {
		t.Fatalf("the BCD does not carry the calls: %+v", c)
	}
}

// TestRestoreStopRestoreStart: a VSS_RME_STOP_RESTORE_START writer whose
// service (and so the writer) was stopped for the copy misses PostRestore
// without failing.
func TestRestoreStopRestoreStart(t *testing.T) {
	e := newEnv(t, nil)
	w := restoreWriter(e, "svc", vss.WREAlways, vss.RMEStopRestoreStart)
	bcd := backupBCD(e)
	s := e.c.NewSession(Peer{})
	must(t, s.InitializeForRestore(bcd))
	must(t, e.wait(s.GatherWriterMetadata()))
	must(t, s.SetSelectedForRestore(uuid.Nil, w.h.Identity.ClassID, vss.ComponentFileGroup, "", "c0", true))
	must(t, e.wait(s.PreRestore()))
	e.c.RemoveWriter(context.Background(), w.h) // the requester stops the service
	must(t, e.wait(s.PostRestore()))
	if w.count(EvPostRestore) != 0 {
		t.Fatal("a stopped writer got PostRestore")
	}
	if st := e.status(s, "svc"); st.State != vss.WSStable {
		t.Fatalf("status %+v, want STABLE", st)
	}
}
