package coordinator

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// expected transcribes the D2 table of vss-reference §12 (plus its notes:
// once-only calls, writer context, component mode) for a session built the
// way buildState builds it. It is written from that document,
// independently of the coordinator's own table, so that a drift between
// the two fails here.
func expected(m Method, st State, writers bool) bool {
	after := st != StNew
	metaLater := st >= StMeta && st <= StComplete
	in := func(ss ...State) bool {
		for _, s := range ss {
			if s == st {
				return true
			}
		}
		return false
	}
	switch m {
	case MInitializeForBackup, MInitializeForRestore:
		return in(StNew)
	case MSetContext:
		return in(StInit) && writers // the writerless sessions here already called it once
	case MEnableWriterClasses, MDisableWriterClasses, MDisableWriterInstances:
		return in(StInit)
	case MSetBackupState:
		return in(StInit, StMeta, StSet)
	case MGatherWriterMetadata:
		return in(StInit)
	case MGetWriterMetadata, MFreeWriterMetadata, MGatherWriterStatus, MGetWriterStatus, MFreeWriterStatus:
		return metaLater
	case MAddComponent, MSetBackupOptions, MSetPreviousBackupStamp:
		return writers && in(StMeta, StSet)
	case MStartSnapshotSet:
		if writers {
			return in(StMeta)
		}
		return in(StInit, StMeta)
	case MAddToSnapshotSet:
		return in(StSet, StPrepared)
	case MPrepareForBackup:
		return writers && in(StSet)
	case MDoSnapshotSet:
		if writers {
			return in(StPrepared)
		}
		return in(StSet)
	case MSetBackupSucceeded:
		return in(StSnapped)
	case MBackupComplete:
		return writers && in(StSnapped)
	case MAbortBackup, MSaveAsXML, MGetWriterComponents, MQuery, MGetSnapshotProperties, MDeleteSnapshots,
		MIsVolumeSupported, MExposeSnapshot, MUnexposeSnapshot, MRevertToSnapshot, MQueryRevertStatus:
		return after
	case MGetSessionID:
		return true
	case MSetRestoreState, MSetSelectedForRestore, MAddRestoreSubcomponent, MSetRestoreOptions, MSetAdditionalRestores,
		MAddNewTarget, MSetAuthoritativeRestore, MSetRollForward, MSetRestoreName, MPreRestore, MSetFileRestoreStatus,
		MAddAlternativeLocationMapping, MSetRangesFilePath, MPostRestore:
		return false // restore-only (D21)
	}
	panic("no expectation for " + m)
}

// expectedTarget is where an allowed call that succeeds leads (the D2
// table's notes and D4), again transcribed from the spec.
func expectedTarget(m Method, st State) State {
	switch m {
	case MInitializeForBackup:
		return StInit
	case MInitializeForRestore:
		return StRestoreInit
	case MGatherWriterMetadata:
		return StMeta
	case MStartSnapshotSet:
		return StSet
	case MPrepareForBackup:
		return StPrepared
	case MDoSnapshotSet:
		return StSnapped
	case MBackupComplete:
		return StComplete
	case MAbortBackup:
		if st == StSet || st == StPrepared || st == StSnapped {
			return StAborted
		}
	}
	return st
}

type cell struct {
	e    *env
	s    *Session
	w    *fakeWriter
	snap uuid.UUID
}

// buildState drives a fresh session into st by the normal sequence.
func buildState(t *testing.T, st State, writers bool) *cell {
	e := newEnv(t, nil)
	c := &cell{e: e, w: e.writer("w", vss.LevelFrontEnd, 0)}
	s := e.c.NewSession(Peer{})
	c.s = s
	if st == StNew {
		return c
	}
	must(t, s.InitializeForBackup(""))
	if !writers {
		must(t, s.SetContext(vss.CtxFileShareBackup))
	}
	if st == StInit {
		return c
	}
	must(t, s.SetBackupState(true, false, vss.BackupFull, false))
	must(t, e.wait(s.GatherWriterMetadata()))
	if writers {
		must(t, s.AddComponent(c.w.h.InstanceID, c.w.h.Identity.ClassID, vss.ComponentFileGroup, "", "c0"))
	}
	if st == StMeta {
		return c
	}
	c.snap = e.toSet(s)
	if st == StAborted {
		must(t, s.AbortBackup(context.Background()))
		return c
	}
	if st == StSet {
		return c
	}
	if writers {
		must(t, e.wait(s.PrepareForBackup()))
	}
	if st == StPrepared {
		return c
	}
	if st == StFailed {
		e.prov.FailAt("CommitSnapshots", vsserr.New(vsserr.ProviderVeto, "injected"))
		if err := e.wait(s.DoSnapshotSet()); !errors.Is(err, vsserr.ProviderVeto) {
			t.Fatalf("DoSnapshotSet should fail: %v", err)
		}
		return c
	}
	must(t, e.wait(s.DoSnapshotSet()))
	if st == StSnapped {
		return c
	}
	must(t, e.wait(s.BackupComplete()))
	return c
}

// invoke calls m with plausible arguments and returns its error (for async
// calls, the error of starting it or else the operation's own).
func (c *cell) invoke(m Method) error {
	s, ctx := c.s, context.Background()
	cls, inst := c.w.h.Identity.ClassID, c.w.h.InstanceID
	snap := c.snap
	if snap == uuid.Nil {
		snap = uuid.New()
	}
	async := func(a *Async, err error) error {
		if err != nil {
			return err
		}
		a.Wait(ctx, -1)
		return a.Err()
	}
	switch m {
	case MInitializeForBackup:
		return s.InitializeForBackup("")
	case MInitializeForRestore:
		return s.InitializeForRestore(`<BACKUP_COMPONENTS xmlns="x-schema:#VssComponentMetadata" version="1.2" selectComponents="no" bootableSystemStateBackup="no" backupType="full" partialFileSupport="no"/>`)
	case MSetContext:
		return s.SetContext(vss.CtxAppRollback)
	case MEnableWriterClasses:
		return s.EnableWriterClasses([]uuid.UUID{cls})
	case MDisableWriterClasses:
		return s.DisableWriterClasses([]uuid.UUID{uuid.New()})
	case MDisableWriterInstances:
		return s.DisableWriterInstances([]uuid.UUID{uuid.New()})
	case MSetBackupState:
		return s.SetBackupState(true, false, vss.BackupFull, false)
	case MGatherWriterMetadata:
		return async(s.GatherWriterMetadata())
	case MGetWriterMetadata:
		_, err := s.GetWriterMetadata()
		return err
	case MFreeWriterMetadata:
		return s.FreeWriterMetadata()
	case MAddComponent:
		return s.AddComponent(inst, cls, vss.ComponentFileGroup, "", "c0")
	case MSetBackupOptions:
		return s.SetBackupOptions(cls, vss.ComponentFileGroup, "", "c0", "x")
	case MSetPreviousBackupStamp:
		return s.SetPreviousBackupStamp(cls, vss.ComponentFileGroup, "", "c0", "x")
	case MStartSnapshotSet:
		_, err := s.StartSnapshotSet()
		return err
	case MAddToSnapshotSet:
		d := c.e.vol + "/extra"
		_ = mkdir(d)
		_, err := s.AddToSnapshotSet(ctx, d, uuid.Nil)
		return err
	case MPrepareForBackup:
		return async(s.PrepareForBackup())
	case MDoSnapshotSet:
		return async(s.DoSnapshotSet())
	case MGatherWriterStatus:
		return async(s.GatherWriterStatus())
	case MGetWriterStatus:
		_, err := s.GetWriterStatus()
		return err
	case MFreeWriterStatus:
		return s.FreeWriterStatus()
	case MSetBackupSucceeded:
		return s.SetBackupSucceeded(inst, cls, vss.ComponentFileGroup, "", "c0", true)
	case MBackupComplete:
		return async(s.BackupComplete())
	case MAbortBackup:
		return s.AbortBackup(ctx)
	case MSaveAsXML:
		_, err := s.SaveAsXML()
		return err
	case MGetWriterComponents:
		_, err := s.GetWriterComponents()
		return err
	case MQuery:
		_, _, err := s.Query(uuid.Nil, vss.ObjectNone, vss.ObjectSnapshot)
		return err
	case MGetSnapshotProperties:
		_, err := s.GetSnapshotProperties(snap)
		return err
	case MDeleteSnapshots:
		_, _, err := s.DeleteSnapshots(ctx, uuid.New(), vss.ObjectSnapshot, false)
		return err
	case MIsVolumeSupported:
		_, err := s.IsVolumeSupported(ctx, uuid.Nil, c.e.vol)
		return err
	case MExposeSnapshot:
		_, err := s.ExposeSnapshot(ctx, uuid.New(), "", vss.AttrExposedLocally, "/mnt/x")
		return err
	case MUnexposeSnapshot:
		return s.UnexposeSnapshot(ctx, uuid.New())
	case MRevertToSnapshot:
		return s.RevertToSnapshot(ctx, uuid.New(), false)
	case MQueryRevertStatus:
		_, err := s.QueryRevertStatus(c.e.vol)
		return err
	case MGetSessionID:
		return nil
	case MSetRestoreState:
		return s.SetRestoreState(vss.RestoreByCopy)
	case MSetSelectedForRestore:
		return s.SetSelectedForRestore(uuid.Nil, cls, vss.ComponentFileGroup, "", "c0", true)
	case MAddRestoreSubcomponent:
		return s.AddRestoreSubcomponent(cls, vss.ComponentFileGroup, "", "c0", `c0`, "sub", false)
	case MSetRestoreOptions:
		return s.SetRestoreOptions(cls, vss.ComponentFileGroup, "", "c0", "opts")
	case MSetAdditionalRestores:
		return s.SetAdditionalRestores(cls, vss.ComponentFileGroup, "", "c0", true)
	case MAddNewTarget:
		return s.AddNewTarget(cls, vss.ComponentFileGroup, "", "c0", c.e.vol+"/w", "*", true, "/elsewhere")
	case MSetAuthoritativeRestore:
		return s.SetAuthoritativeRestore(cls, vss.ComponentFileGroup, "", "c0", false)
	case MSetRollForward:
		return s.SetRollForward(cls, vss.ComponentFileGroup, "", "c0", vss.RFNone, "")
	case MSetRestoreName:
		return s.SetRestoreName(cls, vss.ComponentFileGroup, "", "c0", "renamed")
	case MPreRestore:
		return async(s.PreRestore())
	case MSetFileRestoreStatus:
		return s.SetFileRestoreStatus(cls, vss.ComponentFileGroup, "", "c0", vss.RSAll)
	case MAddAlternativeLocationMapping:
		return s.AddAlternativeLocationMapping(cls, vss.ComponentFileGroup, "", "c0", c.e.vol+"/w", "*", true, "/elsewhere")
	case MSetRangesFilePath:
		return s.SetRangesFilePath(cls, vss.ComponentFileGroup, "", "c0", 0, "/ranges")
	case MPostRestore:
		return async(s.PostRestore())
	}
	panic("no invocation for " + m)
}

func TestD2TableEveryStateAndMethod(t *testing.T) {
	backupStates := []State{StNew, StInit, StMeta, StSet, StPrepared, StSnapped, StFailed, StAborted, StComplete}
	for _, writers := range []bool{true, false} {
		kind := "writer-context"
		if !writers {
			kind = "writerless"
		}
		for _, st := range backupStates {
			if !writers && (st == StPrepared || st == StComplete) {
				continue // unreachable without writers
			}
			for _, m := range AllMethods() {
				t.Run(fmt.Sprintf("%s/%s/%s", kind, st, m), func(t *testing.T) {
					c := buildState(t, st, writers)
					if got := c.s.State(); got != st {
						t.Fatalf("setup reached %s, want %s", got, st)
					}
					err := c.invoke(m)
					want := expected(m, st, writers)
					if !want {
						if !errors.Is(err, vsserr.BadState) {
							t.Fatalf("want VSS_E_BAD_STATE, got %v", err)
						}
						if got := c.s.State(); got != st {
							t.Fatalf("a refused call moved the session from %s to %s", st, got)
						}
						// The session stays usable.
						if st == StNew {
							must(t, c.s.InitializeForBackup(""))
						} else if _, err := c.s.SaveAsXML(); err != nil {
							t.Fatalf("session unusable after a refused call: %v", err)
						}
						return
					}
					if errors.Is(err, vsserr.BadState) {
						t.Fatalf("allowed call refused: %v", err)
					}
					// A success leads where the table says; a failure
					// leaves the session where it was (D3).
					to := st
					if err == nil {
						to = expectedTarget(m, st)
					}
					if got := c.s.State(); got != to {
						t.Fatalf("%s in %s (error %v) led to %s, want %s", m, st, err, got, to)
					}
					if err == nil && st != StNew {
						if gotTo, ok := Next(m, st, writers); !ok || gotTo != to {
							t.Fatalf("Next(%s, %s) = %s, %v; the table disagrees with the spec", m, st, gotTo, ok)
						}
					}
				})
			}
		}
	}
}

// TestRestoreSessionRows checks D21's rows: a restore session may set its
// backup state, gather writers once and read their status and snapshots;
// every backup-only call is VSS_E_BAD_STATE.
func TestRestoreSessionRows(t *testing.T) {
	c := buildState(t, StNew, true)
	s := c.s
	must(t, c.invoke(MInitializeForRestore))
	if s.State() != StRestoreInit {
		t.Fatalf("InitializeForRestore led to %s", s.State())
	}
	must(t, c.invoke(MSetBackupState))
	for _, m := range []Method{MGatherWriterStatus, MStartSnapshotSet, MAddComponent, MPrepareForBackup} {
		if err := c.invoke(m); !errors.Is(err, vsserr.BadState) {
			t.Fatalf("%s in restore-init: %v", m, err)
		}
	}
	must(t, c.invoke(MGatherWriterMetadata))
	if s.State() != StRestoreMeta {
		t.Fatalf("GatherWriterMetadata in restore-init led to %s", s.State())
	}
	if err := c.invoke(MGatherWriterMetadata); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("a second GatherWriterMetadata: %v", err)
	}
	for _, m := range []Method{MSetBackupState, MGatherWriterStatus, MGetWriterStatus, MGetWriterMetadata, MQuery, MIsVolumeSupported, MSaveAsXML} {
		if err := c.invoke(m); err != nil {
			t.Fatalf("%s in restore-meta: %v", m, err)
		}
	}
	for _, m := range []Method{MStartSnapshotSet, MAddToSnapshotSet, MPrepareForBackup, MDoSnapshotSet, MBackupComplete,
		MAbortBackup, MSetBackupSucceeded, MAddComponent, MSetContext} {
		if err := c.invoke(m); !errors.Is(err, vsserr.BadState) {
			t.Fatalf("%s in restore-meta: %v", m, err)
		}
		if s.State() != StRestoreMeta {
			t.Fatalf("a refused %s moved the session to %s", m, s.State())
		}
	}
}
