package coordinator

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/fake"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// These tests pin the behaviours where lvss used to differ from Windows
// (the coordinator-hardening issue's divergences 1, 3–8; 2 is the CLI's).

// D17: Cancel of an operation that already failed returns its error.
func TestCancelAfterFailureReturnsTheError(t *testing.T) {
	e := newEnv(t, nil)
	e.prov.FailAt("CommitSnapshots", vsserr.New(vsserr.ProviderVeto, "injected"))
	s := e.toMeta(vss.CtxFileShareBackup, false)
	e.toSet(s)
	a, err := s.DoSnapshotSet()
	must(t, err)
	if st, _ := a.Wait(context.Background(), 20*time.Second); st != vsserr.ProviderVeto {
		t.Fatalf("Wait: %s", st)
	}
	if got, msg := a.Cancel(context.Background()); got != vsserr.ProviderVeto || !strings.Contains(msg, "injected") {
		t.Fatalf("Cancel after a failure: %s %q, want VSS_E_PROVIDER_VETO with its message", got, msg)
	}
	if st, _ := a.Status(); st != vsserr.ProviderVeto {
		t.Fatalf("QueryStatus after a failure: %s", st)
	}
}

// D17, divergences 5 and 6: a cancelled BackupComplete moves no state and
// marks no writer failed; it can be called again.
func TestCancelledBackupCompleteCanBeRetried(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writer("w", vss.LevelFrontEnd, 0)
	s, _ := e.toSnapped()
	held, release := w.holdAt(EvBackupComplete)
	defer release()
	a, err := s.BackupComplete()
	must(t, err)
	<-held
	if got, _ := a.Cancel(context.Background()); got != vsserr.OK {
		t.Fatalf("Cancel: %s", got)
	}
	if st, _ := a.Wait(context.Background(), 20*time.Second); st != vsserr.AsyncCancelled {
		t.Fatalf("after Cancel: %s", st)
	}
	if s.State() != StSnapped {
		t.Fatalf("a cancelled BackupComplete moved the session to %s", s.State())
	}
	if st := e.status(s, "w"); st.State != vss.WSWaitingForBackupComplete || st.Failure != 0 {
		t.Fatalf("a writer that was answering in time: %s / %s, want WAITING_FOR_BACKUP_COMPLETE and no failure", st.State, st.Failure)
	}
	release()
	must(t, e.wait(s.BackupComplete()))
	if s.State() != StComplete {
		t.Fatalf("BackupComplete again: %s", s.State())
	}
	if st := e.status(s, "w"); st.State != vss.WSStable || st.Failure != 0 {
		t.Fatalf("after BackupComplete: %s / %s", st.State, st.Failure)
	}
}

// Divergence 6 at PrepareForBackup: a cancelled PrepareForBackup leaves
// the session in set and its writers not failed.
func TestCancelledPrepareForBackupFailsNoWriter(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writer("w", vss.LevelFrontEnd, 0)
	s := e.toMeta(vss.CtxBackup, true)
	e.addAll(s)
	e.toSet(s)
	held, release := w.holdAt(EvPrepareBackup)
	defer release()
	a, err := s.PrepareForBackup()
	must(t, err)
	<-held
	if got, _ := a.Cancel(context.Background()); got != vsserr.OK {
		t.Fatalf("Cancel: %s", got)
	}
	// Stopped when Cancel returns: AbortBackup, restic's next call, is
	// admitted at once.
	if st, _ := a.Status(); st != vsserr.AsyncCancelled {
		t.Fatalf("QueryStatus right after Cancel returned S_OK: %s", st)
	}
	if st, _ := a.Wait(context.Background(), 20*time.Second); st != vsserr.AsyncCancelled {
		t.Fatalf("after Cancel: %s", st)
	}
	if s.State() != StSet {
		t.Fatalf("state %s", s.State())
	}
	if st := e.status(s, "w"); st.State.Failed() {
		t.Fatalf("a cancelled PrepareForBackup failed the writer: %+v", st)
	}
}

// D18, divergence 3: a provider's E_ACCESSDENIED at commit reaches the
// requester as VSS_E_UNEXPECTED_PROVIDER_ERROR, with its message.
func TestProviderAccessDeniedIsUnexpectedProviderError(t *testing.T) {
	e := newEnv(t, nil)
	e.prov.FailAt("CommitSnapshots", vsserr.New(vsserr.AccessDenied, "snapshot ioctl: operation not permitted"))
	s := e.toMeta(vss.CtxFileShareBackup, false)
	e.toSet(s)
	err := e.wait(s.DoSnapshotSet())
	if vsserr.Code(err) != vsserr.UnexpectedProviderError || !strings.Contains(err.Error(), "operation not permitted") {
		t.Fatalf("DoSnapshotSet: %v", err)
	}
	if s.State() != StFailed {
		t.Fatalf("state %s", s.State())
	}
}

// D19, divergence 4: a kind of snapshot no provider makes is refused at
// AddToSnapshotSet; one the provider makes is honoured and labelled.
func TestSnapshotKinds(t *testing.T) {
	e := newEnv(t, nil) // the fake provider makes differential snapshots
	for _, tc := range []struct {
		kind     vss.Attributes
		provider uuid.UUID
		want     vsserr.HRESULT
	}{
		{vss.AttrTransportable, uuid.Nil, vsserr.VolumeNotSupported},
		{vss.AttrPlex, uuid.Nil, vsserr.VolumeNotSupported},
		{vss.AttrPlex, e.prov.Info().ID, vsserr.VolumeNotSupportedByProvider},
		{vss.AttrTransportable, e.prov.Info().ID, vsserr.VolumeNotSupportedByProvider},
	} {
		s := e.c.NewSession(Peer{})
		must(t, s.InitializeForBackup(""))
		must(t, s.SetContext(vss.CtxFileShareBackup|vss.Context(tc.kind)))
		_, err := s.StartSnapshotSet()
		must(t, err)
		if _, err := s.AddToSnapshotSet(context.Background(), e.vol, tc.provider); vsserr.Code(err) != tc.want {
			t.Fatalf("%s with provider %s: %v, want %s", tc.kind, tc.provider, err, tc.want)
		}
		s.Release(context.Background())
	}
	s := e.c.NewSession(Peer{})
	defer s.Release(context.Background())
	must(t, s.InitializeForBackup(""))
	must(t, s.SetContext(vss.CtxFileShareBackup|vss.Context(vss.AttrDifferential)))
	snap := e.toSet(s)
	must(t, e.wait(s.DoSnapshotSet()))
	sn, err := s.GetSnapshotProperties(snap)
	must(t, err)
	if sn.Attributes&vss.AttrDifferential == 0 || sn.Attributes&(vss.AttrPlex|vss.AttrTransportable) != 0 {
		t.Fatalf("attributes %s", sn.Attributes)
	}
}

// Without a request, a snapshot is labelled with its provider's kind and
// nothing it lacks.
func TestSnapshotLabelledWithItsKindOnly(t *testing.T) {
	e := newEnv(t, nil)
	s := e.toMeta(vss.CtxFileShareBackup, false)
	snap := e.toSet(s)
	must(t, e.wait(s.DoSnapshotSet()))
	sn, err := s.GetSnapshotProperties(snap)
	must(t, err)
	if sn.Attributes&vss.SnapshotKinds != vss.AttrDifferential {
		t.Fatalf("attributes %s", sn.Attributes)
	}
}

// Divergence 7: snapshots DeleteSnapshots removed are not deleted again,
// nor reported, when the session is released (restic's pattern), and each
// deletion is logged once.
func TestReleaseAfterDeleteSnapshots(t *testing.T) {
	e := newEnv(t, nil)
	s := e.toMeta(vss.CtxFileShareBackup, false)
	snap := e.toSet(s)
	must(t, e.wait(s.DoSnapshotSet()))
	setID := s.setIDForLock()
	n, _, err := s.DeleteSnapshots(context.Background(), setID, vss.ObjectSnapshotSet, true)
	if err != nil || n != 1 {
		t.Fatalf("DeleteSnapshots: %d %v", n, err)
	}
	r := s.Release(context.Background())
	if len(r.DeletedSnapshots) != 0 {
		t.Fatalf("Release reports snapshots DeleteSnapshots had deleted: %v", r.DeletedSnapshots)
	}
	evs, err := e.c.Events(0, 0)
	must(t, err)
	deletions := 0
	for _, ev := range evs {
		if ev.Fields["snapshot"] == snap.String() && strings.Contains(ev.Message, "deleted") {
			deletions++
		}
	}
	if deletions != 1 {
		t.Fatalf("the deletion is logged %d times: %+v", deletions, evs)
	}
	if left, _ := e.cat.ListSnapshots(catalog.Filter{}); len(left) != 0 || e.prov.Live() != 0 {
		t.Fatalf("left: catalog %d, provider %d", len(left), e.prov.Live())
	}
}

// L30: a writer that does not answer Identify is not in the metadata, but
// its status says it failed at Identify and why.
func TestUnidentifiedWriterInStatus(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Timeouts.Identify = 200 * time.Millisecond })
	e.writer("ok", vss.LevelFrontEnd, 0)
	mute := e.writer("mute", vss.LevelFrontEnd, 0)
	mute.silentAt(EvIdentify)
	s := e.toMeta(vss.CtxBackup, false)
	mds, err := s.GetWriterMetadata()
	must(t, err)
	if len(mds) != 1 {
		t.Fatalf("%d writers in the metadata, want 1", len(mds))
	}
	st := e.status(s, "mute")
	if st.State != vss.WSFailedAtIdentify || st.Failure != vsserr.WriterNotResponding {
		t.Fatalf("mute writer: %s / %s", st.State, st.Failure)
	}
}

// A lease that ends while PrepareForBackup runs aborts the creation, and
// the PrepareForBackup finishing later does not move the session back.
func TestLeaseDuringPrepareForBackup(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Timeouts.CreationLease = 300 * time.Millisecond })
	w := e.writer("w", vss.LevelFrontEnd, 0)
	s := e.toMeta(vss.CtxBackup, true)
	e.addAll(s)
	e.toSet(s)
	held, release := w.holdAt(EvPrepareBackup)
	defer release()
	a, err := s.PrepareForBackup()
	must(t, err)
	<-held
	if st, msg := a.Wait(context.Background(), 20*time.Second); st != vsserr.BadState || !strings.Contains(msg, "lease") {
		t.Fatalf("PrepareForBackup when the lease ended: %s %q", st, msg)
	}
	if s.State() != StAborted {
		t.Fatalf("state %s, want aborted", s.State())
	}
	if _, err := s.DoSnapshotSet(); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("DoSnapshotSet after the lease: %v", err)
	}
	// The writer finishes its PrepareForBackup, then gets the Abort; the
	// lock is released after that.
	release()
	other := e.c.NewSession(Peer{})
	defer other.Release(context.Background())
	must(t, other.InitializeForBackup(""))
	must(t, other.SetContext(vss.CtxFileShareBackup))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := other.StartSnapshotSet()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lock was not released: %v", err)
		}
	}
	if w.count(EvAbort) != 1 || s.State() != StAborted {
		t.Fatalf("writer events %v, state %s", w.events(), s.State())
	}
}

// A set of two providers whose second fails PostFinalCommit: the first's
// set is already permanent (Abort no longer undoes it), so its snapshot
// is deleted rather than left behind untracked.
func TestPostFinalCommitFailureLeavesNoSnapshot(t *testing.T) {
	var second *fake.Provider
	other := ""
	e := newEnv(t, func(o *Options) {
		dir, err := filepath.EvalSymlinks(t.TempDir())
		must(t, err)
		other = dir
		second = fake.New(dir).WithInfo(provider.Info{ID: uuid.New(), Name: "fake2", Version: "1", Atomic: true, SetAtomic: true})
		o.Providers = provider.NewRegistry(append(o.Providers.All(), second)...)
	})
	second.FailAt("PostFinalCommitSnapshots", vsserr.New(vsserr.ProviderVeto, "injected"))
	s := e.toMeta(vss.CtxFileShareBackup, false)
	e.toSet(s)
	_, err := s.AddToSnapshotSet(context.Background(), other, uuid.Nil)
	must(t, err)
	if err := e.wait(s.DoSnapshotSet()); !errors.Is(err, vsserr.ProviderVeto) {
		t.Fatalf("DoSnapshotSet: %v", err)
	}
	if e.prov.Live() != 0 || second.Live() != 0 {
		t.Fatalf("snapshots left: first provider %d, second %d", e.prov.Live(), second.Live())
	}
	if left, _ := e.cat.ListSnapshots(catalog.Filter{}); len(left) != 0 {
		t.Fatalf("catalog: %d", len(left))
	}
}

// The event log says how long the writers were held frozen, from the
// first Freeze to the last Thaw (lvss backup's summary and manifest read
// it): a span that holds a slow Thaw, counting only the writers that were
// frozen and thawed. A writerless set logs nothing of the kind.
func TestWritersHeldFrozenLogged(t *testing.T) {
	e := newEnv(t, nil)
	e.writer("front", vss.LevelFrontEnd, 0)
	slow := e.writer("slow", vss.LevelBackEnd, 0)
	const thaw = 30 * time.Millisecond
	slow.mu.Lock()
	slow.delay[EvThaw] = thaw
	slow.mu.Unlock()
	e.writer("veto", vss.LevelFrontEnd, 0).failAt(EvFreeze, vsserr.WriterErrorRetryable)
	s, _ := e.toSnapped()
	setID := s.setIDForLock()

	frozen := func(set uuid.UUID) []LogEntry {
		evs, err := e.c.Events(0, 0)
		must(t, err)
		var out []LogEntry
		for _, ev := range evs {
			if ev.Message == "writers held frozen" && ev.Fields["set"] == set.String() {
				out = append(out, ev)
			}
		}
		return out
	}
	got := frozen(setID)
	if len(got) != 1 {
		t.Fatalf("%d 'writers held frozen' events for the set, want 1: %+v", len(got), got)
	}
	held, err := time.ParseDuration(got[0].Fields["held"])
	if err != nil || held < thaw || got[0].Fields["writers"] != "2" || got[0].SessionID != s.id {
		t.Fatalf("event %+v: held %v (%v), want at least the slow Thaw's %v, 2 writers", got[0], held, err, thaw)
	}

	w := e.toMeta(vss.CtxFileShareBackup, false)
	e.toSet(w)
	must(t, e.wait(w.DoSnapshotSet()))
	if got := frozen(w.setIDForLock()); len(got) != 0 {
		t.Fatalf("a writerless set logs writers held frozen: %+v", got)
	}
}
