package coordinator

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

func TestFullBackupSequence(t *testing.T) {
	e := newEnv(t, nil)
	front := e.writer("front", vss.LevelFrontEnd, 0)
	back := e.writer("back", vss.LevelBackEnd, 0)
	stamp := "stamp-42"
	meta := "private-blob"
	front.edit[EvPrepareBackup] = func(b *document.BackupComponents, inst uuid.UUID) {
		b.Writer(inst).Components[0].BackupStamp = stamp
	}
	front.edit[EvPostSnapshot] = func(b *document.BackupComponents, inst uuid.UUID) {
		b.Writer(inst).Components[0].BackupMetadata = &meta
	}

	s, snap := e.toSnapped()
	// SaveAsXML carries both writers' edits made in PrepareForBackup and PostSnapshot.
	x, err := s.SaveAsXML()
	must(t, err)
	bcd, err := document.ParseBackupComponents([]byte(x))
	must(t, err)
	wc := bcd.Writer(front.h.InstanceID)
	if wc == nil || wc.Components[0].BackupStamp != stamp || wc.Components[0].BackupMetadata == nil || *wc.Components[0].BackupMetadata != meta {
		t.Fatalf("writer edits missing from SaveAsXML: %s", x)
	}
	if bcd.SnapshotSet == nil || len(bcd.SnapshotSet.Snapshots) != 1 || bcd.SnapshotSet.Snapshots[0].ID != snap {
		t.Fatalf("BCD lacks the snapshot set record: %s", x)
	}
	for _, w := range []*fakeWriter{front, back} {
		if st := e.status(s, w.name); st.State != vss.WSWaitingForBackupComplete {
			t.Fatalf("%s: state %s, want WAITING_FOR_BACKUP_COMPLETE", w.name, st.State)
		}
	}
	sn, err := s.GetSnapshotProperties(snap)
	must(t, err)
	if sn.Consistency != "application" || !strings.Contains(sn.ConsistencyReason, "front") || !strings.Contains(sn.ConsistencyReason, "back") {
		t.Fatalf("consistency %q (%s)", sn.Consistency, sn.ConsistencyReason)
	}
	must(t, s.SetBackupSucceeded(front.h.InstanceID, front.h.Identity.ClassID, vss.ComponentFileGroup, "", "c0", true))
	must(t, e.wait(s.BackupComplete()))
	if st := e.status(s, "front"); st.State != vss.WSStable {
		t.Fatalf("after BackupComplete: %s", st.State)
	}
	rel := s.Release(context.Background())
	if rel.Aborted || len(rel.ShutdownWriters) != 2 || len(rel.DeletedSnapshots) != 1 {
		t.Fatalf("release: %+v", rel)
	}

	want := []EventType{EvPrepareBackup, EvPrepareSnapshot, EvFreeze, EvThaw, EvPostSnapshot, EvBackupComplete, EvBackupShutdown}
	for _, w := range []*fakeWriter{front, back} {
		got := slices.DeleteFunc(w.events(), func(e EventType) bool { return e == EvIdentify })
		if !slices.Equal(got, want) {
			t.Errorf("%s events %v, want %v", w.name, got, want)
		}
	}
	// Freeze front-end before back-end, Commit inside, Thaw the other way (D5).
	order := []string{"front:Freeze", "back:Freeze", "provider:CommitSnapshots", "back:Thaw", "front:Thaw", "front:PostSnapshot"}
	last := -1
	for _, o := range order {
		i := e.tl.index(o)
		if i <= last {
			t.Fatalf("%s out of order in %v", o, e.tl.all())
		}
		last = i
	}
	calls := e.prov.Calls()
	wantCalls := []string{"BeginPrepareSnapshot", "EndPrepareSnapshots", "PreCommitSnapshots", "CommitSnapshots",
		"PostCommitSnapshots", "PreFinalCommitSnapshots", "PostFinalCommitSnapshots", "DeleteSnapshot"}
	// Query is recovery's, at start.
	calls = slices.DeleteFunc(calls, func(c string) bool { return c == "IsVolumeSupported" || c == "Query" })
	if !slices.Equal(calls, wantCalls) {
		t.Fatalf("provider calls %v, want %v", calls, wantCalls)
	}
	if _, err := e.cat.GetSnapshot(snap); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("auto-release snapshot still in the catalog: %v", err)
	}
}

func TestWriterEditsOnlyItsOwnComponents(t *testing.T) {
	e := newEnv(t, nil)
	a := e.writer("a", vss.LevelFrontEnd, 0)
	b := e.writer("b", vss.LevelFrontEnd, 0)
	// b tries to write into a's component: the coordinator keeps only b's
	// own WRITER_COMPONENTS from b's answer.
	b.edit[EvPrepareBackup] = func(doc *document.BackupComponents, _ uuid.UUID) {
		for i := range doc.Writers {
			doc.Writers[i].Components[0].BackupStamp = "forged"
		}
	}
	s := e.toMeta(vss.CtxBackup, true)
	e.addAll(s)
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	x, err := s.GetWriterComponents()
	must(t, err)
	bcd, err := document.ParseBackupComponents([]byte(x))
	must(t, err)
	if got := bcd.Writer(a.h.InstanceID).Components[0].BackupStamp; got != "" {
		t.Fatalf("writer b changed writer a's stamp to %q", got)
	}
	if got := bcd.Writer(b.h.InstanceID).Components[0].BackupStamp; got != "forged" {
		t.Fatalf("writer b's own edit lost: %q", got)
	}
}

func TestPrepareForBackupNeedsBackupStateAndSet(t *testing.T) {
	e := newEnv(t, nil)
	e.writer("w", vss.LevelFrontEnd, 0)
	s := e.c.NewSession(Peer{})
	if _, err := s.PrepareForBackup(); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("before InitializeForBackup: %v", err)
	}
	must(t, s.InitializeForBackup(""))
	must(t, e.wait(s.GatherWriterMetadata()))
	_, err := s.StartSnapshotSet()
	must(t, err)
	_, err = s.PrepareForBackup()
	if !errors.Is(err, vsserr.BadState) || !strings.Contains(err.Error(), "PrepareForBackup before SetBackupState") {
		t.Fatalf("without SetBackupState: %v", err)
	}
	must(t, s.SetBackupState(false, false, vss.BackupFull, false))
	must(t, e.wait(s.PrepareForBackup()))

	r := e.c.NewSession(Peer{})
	must(t, r.InitializeForRestore(`<BACKUP_COMPONENTS xmlns="x-schema:#VssComponentMetadata" version="1.2" selectComponents="no" bootableSystemStateBackup="no" backupType="full" partialFileSupport="no"/>`))
	if _, err := r.PrepareForBackup(); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("in a restore session: %v", err)
	}
}

func TestNonComponentModeAllWritersTakePart(t *testing.T) {
	e := newEnv(t, nil)
	a := e.writer("a", vss.LevelFrontEnd, 0)
	b := e.writer("b", vss.LevelBackEnd, 0)
	s := e.toMeta(vss.CtxBackup, false)
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	must(t, e.wait(s.DoSnapshotSet()))
	for _, w := range []*fakeWriter{a, b} {
		if w.count(EvFreeze) != 1 || w.count(EvThaw) != 1 {
			t.Fatalf("%s: %v", w.name, w.events())
		}
	}
}

func TestComponentModeOnlySelectedWritersTakePart(t *testing.T) {
	e := newEnv(t, nil)
	a := e.writer("a", vss.LevelFrontEnd, 0)
	b := e.writer("b", vss.LevelFrontEnd, 0)
	s := e.toMeta(vss.CtxBackup, true)
	must(t, s.AddComponent(a.h.InstanceID, a.h.Identity.ClassID, vss.ComponentFileGroup, "", "c0"))
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	must(t, e.wait(s.DoSnapshotSet()))
	s.Release(context.Background())
	if a.count(EvFreeze) != 1 || a.count(EvBackupShutdown) != 1 {
		t.Fatalf("a: %v", a.events())
	}
	// b answered Identify only: no other event, not even BackupShutdown (D14).
	for _, ev := range b.events() {
		if ev != EvIdentify {
			t.Fatalf("b got %s: %v", ev, b.events())
		}
	}
}

func TestWriterlessContextSendsNoEvents(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writer("w", vss.LevelFrontEnd, 0)
	before := len(w.events())
	s := e.toMeta(vss.CtxFileShareBackup, true)
	if mds, _ := s.GetWriterMetadata(); len(mds) != 1 {
		t.Fatalf("writerless gather should still report the writer's last metadata, got %d", len(mds))
	}
	mds, _ := s.GetWriterMetadata()
	md, err := document.ParseWriterMetadata(mds[0].XML)
	must(t, err)
	if err := s.AddComponent(w.h.InstanceID, w.h.Identity.ClassID, vss.ComponentFileGroup, "", md.Components[0].Name); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("AddComponent in writerless context: %v", err)
	}
	snap := e.toSet(s)
	if _, err := s.PrepareForBackup(); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("PrepareForBackup in writerless context: %v", err)
	}
	must(t, e.wait(s.DoSnapshotSet()))
	if _, err := s.BackupComplete(); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("BackupComplete in writerless context: %v", err)
	}
	sn, err := s.GetSnapshotProperties(snap)
	must(t, err)
	if sn.Consistency != "crash" || sn.Attributes&vss.AttrNoWriters == 0 {
		t.Fatalf("writerless snapshot: %+v", sn)
	}
	s.Release(context.Background())
	if len(w.events()) != before {
		t.Fatalf("writer got events in a writerless session: %v", w.events()[before:])
	}
}

func TestWriterClassFilters(t *testing.T) {
	e := newEnv(t, nil)
	a := e.writer("a", vss.LevelFrontEnd, 0)
	b := e.writer("b", vss.LevelFrontEnd, 0)
	c := e.writer("c", vss.LevelFrontEnd, 0)
	names := func(s *Session) []string {
		mds, err := s.GetWriterMetadata()
		must(t, err)
		var out []string
		for _, m := range mds {
			md, _ := document.ParseWriterMetadata(m.XML)
			out = append(out, md.Identity.FriendlyName)
		}
		return out
	}
	gather := func(setup func(*Session)) []string {
		s := e.c.NewSession(Peer{})
		must(t, s.InitializeForBackup(""))
		setup(s)
		must(t, e.wait(s.GatherWriterMetadata()))
		defer s.Release(context.Background())
		return names(s)
	}
	cls := func(w *fakeWriter) uuid.UUID { return w.h.Identity.ClassID }
	cases := []struct {
		name  string
		setup func(*Session)
		want  []string
	}{
		{"default all", func(*Session) {}, []string{"a", "b", "c"}},
		{"deny b", func(s *Session) { must(t, s.DisableWriterClasses([]uuid.UUID{cls(b)})) }, []string{"a", "c"}},
		{"allow a", func(s *Session) { must(t, s.EnableWriterClasses([]uuid.UUID{cls(a)})) }, []string{"a"}},
		{"allow a,c then disable c", func(s *Session) {
			must(t, s.EnableWriterClasses([]uuid.UUID{cls(a), cls(c)}))
			must(t, s.DisableWriterClasses([]uuid.UUID{cls(c)}))
		}, []string{"a"}},
		{"deny a then enable b discards deny", func(s *Session) {
			must(t, s.DisableWriterClasses([]uuid.UUID{cls(a)}))
			must(t, s.EnableWriterClasses([]uuid.UUID{cls(b)}))
		}, []string{"b"}},
		{"disable instance c", func(s *Session) { must(t, s.DisableWriterInstances([]uuid.UUID{c.h.InstanceID})) }, []string{"a", "b"}},
	}
	for _, tc := range cases {
		if got := gather(tc.setup); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v want %v", tc.name, got, tc.want)
		}
	}
}

func TestSnapshotSetInProgressAndLease(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Timeouts.CreationLease = 300 * time.Millisecond })
	w := e.writer("w", vss.LevelFrontEnd, 0)
	s1 := e.toMeta(vss.CtxBackup, false)
	e.toSet(s1)
	must(t, e.wait(s1.PrepareForBackup()))
	s2 := e.toMeta(vss.CtxBackup, false)
	if _, err := s2.StartSnapshotSet(); !errors.Is(err, vsserr.SnapshotSetInProgress) {
		t.Fatalf("second StartSnapshotSet: %v", err)
	}
	// The idle first session loses the lock when its lease ends (D7).
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := s2.StartSnapshotSet(); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("lock never released: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s1.DoSnapshotSet(); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("creation call after lease expiry: %v", err)
	}
	if w.count(EvAbort) != 1 {
		t.Fatalf("writer should get Abort when the lease ends after PrepareForBackup: %v", w.events())
	}
}

func TestAsyncWaitQueryCancel(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writer("slow", vss.LevelFrontEnd, 0)
	w.silentAt(EvIdentify)
	s := e.c.NewSession(Peer{})
	must(t, s.InitializeForBackup(""))
	a, err := s.GatherWriterMetadata()
	must(t, err)
	if st, _ := a.Wait(context.Background(), 50*time.Millisecond); st != vsserr.AsyncPending {
		t.Fatalf("Wait with timeout: %s", st)
	}
	if st, _ := a.Status(); st != vsserr.AsyncPending {
		t.Fatalf("QueryStatus: %s", st)
	}
	// While it is pending, only read-only calls run (D2).
	if err := s.SetBackupState(false, false, vss.BackupFull, false); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("SetBackupState during pending async: %v", err)
	}
	if _, err := s.SaveAsXML(); err != nil {
		t.Fatalf("SaveAsXML during pending async: %v", err)
	}
	if got, _ := a.Cancel(context.Background()); got != vsserr.OK {
		t.Fatalf("Cancel: %s", got)
	}
	// A taken Cancel returns once the operation has stopped: the next
	// call finds nothing pending (restic calls AbortBackup right away).
	if st, _ := a.Status(); st != vsserr.AsyncCancelled {
		t.Fatalf("QueryStatus right after Cancel returned S_OK: %s, want VSS_S_ASYNC_CANCELLED", st)
	}
	if st, _ := a.Wait(context.Background(), 5*time.Second); st != vsserr.AsyncCancelled {
		t.Fatalf("after Cancel: %s", st)
	}
	if got, _ := a.Cancel(context.Background()); got != vsserr.AsyncCancelled {
		t.Fatalf("second Cancel: %s", got)
	}
	if s.State() != StInit {
		t.Fatalf("a cancelled async must not move the state: %s", s.State())
	}
	w.mu.Lock()
	w.silent = map[EventType]bool{}
	w.mu.Unlock()
	a2, err := s.GatherWriterMetadata()
	must(t, err)
	must(t, e.wait(a2, nil))
	if got, _ := a2.Cancel(context.Background()); got != vsserr.AsyncFinished {
		t.Fatalf("Cancel after finish: %s", got)
	}
}

func TestContextAllIsForAdministrationOnly(t *testing.T) {
	e := newEnv(t, nil)
	mine := e.toMeta(vss.CtxFileShareBackup, false)
	snap := e.toSet(mine)
	must(t, e.wait(mine.DoSnapshotSet()))

	admin := e.c.NewSession(Peer{})
	must(t, admin.InitializeForBackup(""))
	must(t, admin.SetContext(vss.CtxAll))
	objs, code, err := admin.Query(uuid.Nil, vss.ObjectNone, vss.ObjectSnapshot)
	must(t, err)
	if len(objs) != 1 || objs[0].Snapshot.ID != snap || code != vsserr.OK {
		t.Fatalf("VSS_CTX_ALL query: %s %+v", code, objs)
	}
	if _, err := admin.StartSnapshotSet(); !errors.Is(err, vsserr.UnsupportedContext) {
		t.Fatalf("StartSnapshotSet in VSS_CTX_ALL: %v", err)
	}
	backup := e.c.NewSession(Peer{})
	must(t, backup.InitializeForBackup(""))
	objs, code, err = backup.Query(uuid.Nil, vss.ObjectNone, vss.ObjectSnapshot)
	must(t, err)
	if len(objs) != 0 {
		t.Fatalf("a VSS_CTX_BACKUP query must not list VSS_CTX_FILE_SHARE_BACKUP snapshots: %+v", objs)
	}
	if code != vsserr.False {
		t.Fatalf("an empty Query is S_FALSE (D20), got %s", code)
	}
	n, _, err := admin.DeleteSnapshots(context.Background(), snap, vss.ObjectSnapshot, false)
	if err != nil || n != 1 {
		t.Fatalf("delete: %d %v", n, err)
	}
}

// TestProvidersToldWhenNoWriterFreezes: EndPrepareSnapshots's context
// says when no writer will be frozen for the set (a crash-consistent set,
// or every writer failed before it), so that a provider skips a flush
// ahead that would protect nobody's window (the btrfs provider's sync).
func TestProvidersToldWhenNoWriterFreezes(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writer("w", vss.LevelFrontEnd, 0)
	_, _ = e.toSnapped()
	if e.tl.index("provider:EndPrepareSnapshots") < 0 || e.tl.index("provider:EndPrepareSnapshots(no writers)") >= 0 {
		t.Fatalf("with a writer taking part, EndPrepareSnapshots was told no writer freezes: %v", e.tl.all())
	}

	// The only writer fails PrepareForSnapshot: nobody will be frozen.
	w.failAt(EvPrepareSnapshot, vsserr.WriterErrorRetryable)
	s := e.toMeta(vss.CtxBackup, true)
	e.addAll(s)
	_ = e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	_ = e.wait(s.DoSnapshotSet())
	if e.tl.index("provider:EndPrepareSnapshots(no writers)") < 0 {
		t.Fatalf("with its only writer failed, EndPrepareSnapshots was not told no writer freezes: %v", e.tl.all())
	}
}

// TestProvidersToldOfAWriterlessContext: in a context without writers
// BeginPrepareSnapshot is told at AddToSnapshotSet that nobody will be
// frozen, so that the btrfs provider starts no sync ahead (one more
// transaction commit beside the snapshot's, holding up applications'
// fsyncs for nothing); in a writer context it is not.
func TestProvidersToldOfAWriterlessContext(t *testing.T) {
	e := newEnv(t, nil)
	e.writer("w", vss.LevelFrontEnd, 0)
	for _, tc := range []struct {
		ctx  vss.Context
		want string
	}{
		{vss.CtxClientAccessible, "provider:BeginPrepareSnapshot(no writers)"},
		{vss.CtxFileShareBackup, "provider:BeginPrepareSnapshot(no writers)"},
		{vss.CtxBackup, "provider:BeginPrepareSnapshot"},
	} {
		var s *Session
		if tc.ctx.Writers() {
			s = e.toMeta(tc.ctx, false)
		} else {
			s = e.c.NewSession(Peer{})
			must(t, s.InitializeForBackup(""))
			must(t, s.SetContext(tc.ctx))
		}
		e.tl.reset()
		e.toSet(s)
		if got := e.tl.all(); !slices.Contains(got, tc.want) || len(got) != 1 {
			t.Errorf("%s: AddToSnapshotSet told the provider %v, want %s", tc.ctx, got, tc.want)
		}
		s.Release(context.Background())
	}
}

// TestGatherSeesChangedMetadata: lvssd keeps the document a writer sent
// and reuses what it parsed while the writer sends the same one; a writer
// whose metadata changed is seen with its new components at the next
// gather, and the unchanged one is not shared between sessions (each gets
// its own copy to edit).
func TestGatherSeesChangedMetadata(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writer("w", vss.LevelFrontEnd, 0)
	components := func(s *Session) int {
		mds, err := s.GetWriterMetadata()
		must(t, err)
		if len(mds) != 1 {
			t.Fatalf("%d writers gathered, want 1", len(mds))
		}
		md, err := document.ParseWriterMetadata(mds[0].XML)
		must(t, err)
		return len(md.Components)
	}
	s1 := e.toMeta(vss.CtxBackup, true)
	if n := components(s1); n != 1 {
		t.Fatalf("first gather: %d components, want 1", n)
	}
	s1.Release(context.Background())
	s2 := e.toMeta(vss.CtxBackup, true)
	if n := components(s2); n != 1 {
		t.Fatalf("same metadata again: %d components, want 1", n)
	}
	s2.Release(context.Background())
	w.mu.Lock()
	w.files = append(w.files, filepath.Join(e.vol, "w", "more"))
	w.mu.Unlock()
	s3 := e.toMeta(vss.CtxBackup, true)
	if n := components(s3); n != 2 {
		t.Fatalf("after the writer's metadata changed: %d components, want 2", n)
	}
}
