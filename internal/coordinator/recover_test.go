package coordinator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// restart stops e's coordinator and starts another over the same catalog
// and provider (which, like a real one, keeps its snapshots), as lvssd
// does when it starts again.
func (e *env) restart(mod func(*Options)) *env {
	e.t.Helper()
	opt := e.c.opt
	e.c.Close(context.Background())
	opt.ThawedAtStart, opt.AdoptSnapshots = nil, false
	if mod != nil {
		mod(&opt)
	}
	c, err := New(context.Background(), opt)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return &env{t: e.t, c: c, tl: e.tl, prov: e.prov, vol: e.vol, cat: e.cat}
}

func (e *env) held() map[uuid.UUID]bool {
	e.t.Helper()
	snaps, err := e.prov.Query(context.Background())
	must(e.t, err)
	out := map[uuid.UUID]bool{}
	for _, s := range snaps {
		out[s.ID] = true
	}
	return out
}

func actions(rec Recovery, what string) []RecoveryAction {
	var out []RecoveryAction
	for _, a := range rec.Actions {
		if a.What == what {
			out = append(out, a)
		}
	}
	return out
}

// A set whose provider committed and whose catalog record never came (lvssd
// killed in between) is deleted at the next start, and the event log and
// the recovery report say so. A persistent snapshot recorded before it is
// untouched.
func TestRecoveryDeletesCutSet(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RunDir = t.TempDir() })
	_, kept := e.persistentSet(false)
	_, cut := e.persistentSet(false)
	sn, err := e.cat.GetSnapshot(cut)
	must(t, err)
	// What a kill between the commit and RecordSet leaves: the journal
	// entry and the provider's snapshot, no record.
	must(t, e.cat.DeleteSnapshot(cut))
	must(t, e.cat.PutJournal(catalog.JournalEntry{Kind: catalog.JournalCreate, ID: sn.SetID, SetID: sn.SetID, SessionID: sn.SessionID,
		Snapshots: []catalog.JournalSnapshot{{ID: cut, Volume: sn.OriginalVolume, ProviderID: sn.ProviderID}}, Step: "start"}))
	steps := filepath.Join(e.c.opt.RunDir, stepsDir, sn.SetID.String()+".steps")
	must(t, os.MkdirAll(filepath.Dir(steps), 0o700))
	must(t, os.WriteFile(steps, []byte("2026-01-01T00:00:00Z freeze\n2026-01-01T00:00:01Z commit\n"), 0o600))

	e2 := e.restart(nil)
	held := e2.held()
	if held[cut] {
		t.Fatal("the cut set's snapshot is still held by the provider")
	}
	if !held[kept] {
		t.Fatal("recovery deleted a recorded persistent snapshot")
	}
	rec := e2.c.Recovery()
	ab := actions(rec, RecSetAborted)
	if len(ab) != 1 || ab[0].Object != sn.SetID.String() {
		t.Fatalf("set-aborted actions %+v", rec.Actions)
	}
	if !strings.Contains(ab[0].Detail, `"commit"`) {
		t.Errorf("the report does not name the step the set was cut at: %q", ab[0].Detail)
	}
	if del := actions(rec, RecSnapshotDelete); len(del) != 1 || del[0].Object != cut.String() || del[0].Err != nil {
		t.Fatalf("snapshot-deleted actions %+v", del)
	}
	j, err := e.cat.Journal()
	must(t, err)
	if len(j) != 0 {
		t.Fatalf("journal not empty after recovery: %+v", j)
	}
	if _, err := os.Stat(steps); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("step file left: %v", err)
	}
	evs, err := e2.c.Events(0, 1000)
	must(t, err)
	found := false
	for _, ev := range evs {
		if ev.Fields["action"] == RecSnapshotDelete && ev.Fields["snapshot"] == cut.String() {
			found = true
		}
	}
	if !found {
		t.Fatal("the deletion is not in the event log")
	}
}

// A delete that fails leaves the journal entry, so the next start retries.
func TestRecoveryRetriesFailedDelete(t *testing.T) {
	e := newEnv(t, nil)
	_, cut := e.persistentSet(false)
	sn, err := e.cat.GetSnapshot(cut)
	must(t, err)
	must(t, e.cat.DeleteSnapshot(cut))
	must(t, e.cat.PutJournal(catalog.JournalEntry{Kind: catalog.JournalCreate, ID: sn.SetID, SetID: sn.SetID,
		Snapshots: []catalog.JournalSnapshot{{ID: cut, Volume: sn.OriginalVolume, ProviderID: sn.ProviderID}}}))
	e.prov.FailAt("DeleteSnapshot", vsserr.New(vsserr.ProviderVeto, "busy"))
	e2 := e.restart(nil)
	if d := actions(e2.c.Recovery(), RecSnapshotDelete); len(d) != 1 || d[0].Err == nil {
		t.Fatalf("want one failed deletion, got %+v", d)
	}
	if j, _ := e.cat.Journal(); len(j) != 1 {
		t.Fatalf("journal after a failed recovery: %+v", j)
	}
	e.prov.FailAt("DeleteSnapshot", nil)
	e3 := e2.restart(nil)
	if e3.held()[cut] {
		t.Fatal("the second start did not delete the snapshot")
	}
	if j, _ := e.cat.Journal(); len(j) != 0 {
		t.Fatalf("journal after the second start: %+v", j)
	}
}

// A catalog entry whose snapshot the provider no longer holds is removed;
// one whose volume the provider does not answer for now is kept.
func TestRecoveryRemovesStaleEntries(t *testing.T) {
	e := newEnv(t, nil)
	_, gone := e.persistentSet(false)
	_, ok := e.persistentSet(false)
	sn, err := e.cat.GetSnapshot(gone)
	must(t, err)
	must(t, e.prov.DeleteSnapshot(context.Background(), toProviderSnapshot(sn)))
	// An entry of a volume not mounted now: the provider neither lists
	// nor supports it.
	away := sn
	away.ID, away.SetID, away.OriginalVolume = uuid.New(), uuid.New(), "/not/mounted/now"
	must(t, e.cat.PutSnapshots(away))

	e2 := e.restart(nil)
	if _, err := e.cat.GetSnapshot(gone); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("stale entry kept: %v", err)
	}
	if _, err := e.cat.GetSnapshot(ok); err != nil {
		t.Fatalf("live entry removed: %v", err)
	}
	if _, err := e.cat.GetSnapshot(away.ID); err != nil {
		t.Fatalf("entry of an unmounted volume removed: %v", err)
	}
	rec := e2.c.Recovery()
	if r := actions(rec, RecEntryRemoved); len(r) != 1 || r[0].Object != gone.String() {
		t.Fatalf("entry-removed %+v", rec.Actions)
	}
	if k := actions(rec, RecEntryKept); len(k) != 1 || k[0].Object != away.ID.String() {
		t.Fatalf("entry-kept %+v", rec.Actions)
	}
}

// A snapshot the catalog lacks is reported; --adopt-snapshots adopts it,
// as persistent, with consistency "none".
func TestRecoveryReportsThenAdoptsUnknown(t *testing.T) {
	e := newEnv(t, nil)
	_, known := e.persistentSet(false)
	_, lost := e.persistentSet(false)
	must(t, e.cat.DeleteSnapshot(lost))
	e2 := e.restart(nil)
	if u := actions(e2.c.Recovery(), RecUnknown); len(u) != 1 || u[0].Object != lost.String() {
		t.Fatalf("snapshot-unknown %+v", e2.c.Recovery().Actions)
	}
	if !e2.held()[lost] {
		t.Fatal("an unknown snapshot was deleted; it must only be reported")
	}
	e3 := e2.restart(func(o *Options) { o.AdoptSnapshots = true })
	if a := actions(e3.c.Recovery(), RecAdopted); len(a) != 1 || a[0].Object != lost.String() {
		t.Fatalf("snapshot-adopted %+v", e3.c.Recovery().Actions)
	}
	got, err := e.cat.GetSnapshot(lost)
	must(t, err)
	if got.Consistency != string(ConsistencyNone) || got.AutoRelease || vss.Context(got.Context).AutoRelease() {
		t.Fatalf("adopted as %+v", got)
	}
	if _, err := e.cat.GetSnapshot(known); err != nil {
		t.Fatal(err)
	}
	// Adopted once: the next start has nothing to do.
	e4 := e3.restart(nil)
	if n := len(e4.c.Recovery().Actions); n != 0 {
		t.Fatalf("a clean start did %d things: %+v", n, e4.c.Recovery().Actions)
	}
}

// An exposure made and never recorded is undone at start.
func TestRecoveryUndoesUnrecordedExposure(t *testing.T) {
	e := newEnv(t, nil)
	_, snap := e.persistentSet(false)
	sn, err := e.cat.GetSnapshot(snap)
	must(t, err)
	at := filepath.Join(t.TempDir(), "exposed")
	ex := any(e.prov).(provider.Exposer)
	name, err := ex.Expose(context.Background(), toProviderSnapshot(sn), at)
	must(t, err)
	must(t, e.cat.PutJournal(catalog.JournalEntry{Kind: catalog.JournalExpose, ID: snap, Path: name}))
	e2 := e.restart(nil)
	if u := actions(e2.c.Recovery(), RecExposureUndone); len(u) != 1 || u[0].Err != nil {
		t.Fatalf("exposure-undone %+v", e2.c.Recovery().Actions)
	}
	if !slices.Contains(e.prov.Calls(), "Unexpose") {
		t.Fatalf("Unexpose was not called: %v", e.prov.Calls())
	}
	if j, _ := e.cat.Journal(); len(j) != 0 {
		t.Fatalf("journal %+v", j)
	}
}

// A writer that took part in a creation cut by lvssd's end gets Abort for
// it when it subscribes to the next lvssd, once.
func TestRecoveryAbortsReconnectingWriter(t *testing.T) {
	e := newEnv(t, nil)
	set, session := uuid.New(), uuid.New()
	id := uuid.NewSHA1(uuid.NameSpaceOID, []byte("db"))
	must(t, e.cat.PutJournal(catalog.JournalEntry{Kind: catalog.JournalCreate, ID: set, SetID: set, SessionID: session,
		Writers: []catalog.JournalWriter{{ClassID: id, Name: "db"}}}))
	e2 := e.restart(nil)
	w := e2.writer("db", vss.LevelBackEnd, time.Second)
	e2.until("Abort reaches the writer", func() bool { return w.count(EvAbort) == 1 })
	ev := w.lastEvent(EvAbort)
	if ev.SessionID != session || ev.SnapshotSetID != set {
		t.Fatalf("Abort for session %s set %s, want %s %s", ev.SessionID, ev.SnapshotSetID, session, set)
	}
	e2.until("BackupShutdown ends the cut session for the writer", func() bool { return w.count(EvBackupShutdown) == 1 })
	if sd := w.lastEvent(EvBackupShutdown); sd.SessionID != session {
		t.Fatalf("BackupShutdown for session %s, want %s", sd.SessionID, session)
	}
	other := e2.writer("other", vss.LevelBackEnd, time.Second)
	// A writer subscribing later sees no Abort (Identify is answered
	// after the Abort would have been sent).
	if other.count(EvAbort) != 0 {
		t.Fatal("a writer that took no part got Abort")
	}
}

// A journal entry is written before the first provider step of
// DoSnapshotSet and is gone once the set is recorded or aborted.
func TestJournalLifecycle(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RunDir = t.TempDir() })
	held, release := e.prov.HoldAt("EndPrepareSnapshots")
	s := e.toMeta(vss.CtxClientAccessible, false)
	e.toSet(s)
	a, err := s.DoSnapshotSet()
	must(t, err)
	<-held
	j, err := e.cat.Journal()
	must(t, err)
	if len(j) != 1 || j[0].Kind != catalog.JournalCreate || len(j[0].Snapshots) != 1 {
		t.Fatalf("journal during creation: %+v", j)
	}
	release()
	if hr, msg := a.Wait(context.Background(), -1); hr != vsserr.AsyncFinished {
		t.Fatalf("DoSnapshotSet: %s %s", hr, msg)
	}
	if j, _ := e.cat.Journal(); len(j) != 0 {
		t.Fatalf("journal after the set was recorded: %+v", j)
	}
	names, _ := filepath.Glob(filepath.Join(e.c.opt.RunDir, stepsDir, "*"))
	if len(names) != 0 {
		t.Fatalf("step files left: %v", names)
	}
	// An aborted creation closes its entry too.
	e.prov.FailAt("CommitSnapshots", vsserr.New(vsserr.ProviderVeto, "no"))
	s2 := e.toMeta(vss.CtxClientAccessible, false)
	e.toSet(s2)
	if err := e.wait(s2.DoSnapshotSet()); vsserr.Code(err) != vsserr.ProviderVeto {
		t.Fatalf("DoSnapshotSet: %v", err)
	}
	if j, _ := e.cat.Journal(); len(j) != 0 {
		t.Fatalf("journal after an abort: %+v", j)
	}
}

// A GatherWriterMetadata while a writer is frozen in another session's
// creation does not send it Identify (which it may not answer until
// thawed, and whose miss would end its stream): its last metadata is used,
// and the other creation stays application-consistent.
func TestGatherDoesNotIdentifyFrozenWriter(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writer("db", vss.LevelBackEnd, 10*time.Second)
	held, release := w.holdAt(EvFreeze)
	a := e.toMeta(vss.CtxBackup, true)
	e.addAll(a)
	e.toSet(a)
	must(t, e.wait(a.PrepareForBackup()))
	op, err := a.DoSnapshotSet()
	must(t, err)
	<-held
	before := w.count(EvIdentify)
	b := e.toMeta(vss.CtxBackup, true) // Gather, while db is inside Freeze
	mds, err := b.GetWriterMetadata()
	must(t, err)
	if len(mds) != 1 || mds[0].InstanceID != w.h.InstanceID {
		t.Fatalf("metadata %+v, want db's", mds)
	}
	if n := w.count(EvIdentify); n != before {
		t.Fatalf("db got %d Identify while frozen", n-before)
	}
	release()
	if hr, msg := op.Wait(context.Background(), -1); hr != vsserr.AsyncFinished {
		t.Fatalf("DoSnapshotSet: %s %s", hr, msg)
	}
	if err := w.ended(); err != nil {
		t.Fatalf("db's stream was ended: %v", err)
	}
	snaps, err := e.cat.ListSnapshots(catalog.Filter{SessionID: a.ID()})
	must(t, err)
	if len(snaps) != 1 || snaps[0].Consistency != string(ConsistencyApplication) {
		t.Fatalf("snapshots %+v", snaps)
	}
	b.Release(context.Background())
	a.Release(context.Background())
}

// A provider that never answers its Query at start does not keep lvssd
// from starting: recovery bounds each provider call with
// timeouts.provider_call, reports the failure and goes on (the next start
// tries again).
func TestRecoveryBoundsProviderCalls(t *testing.T) {
	e := newEnv(t, nil)
	_, snap := e.persistentSet(false)
	release := e.prov.HangAt("Query")
	defer release()
	e2 := e.restart(func(o *Options) { o.Timeouts.ProviderCall = 200 * time.Millisecond })
	f := actions(e2.c.Recovery(), RecFailed)
	if len(f) != 1 || f[0].Err == nil {
		t.Fatalf("failed actions %+v, want the Query that ran out", e2.c.Recovery().Actions)
	}
	if _, err := e.cat.GetSnapshot(snap); err != nil {
		t.Fatalf("an unchecked entry was removed: %v", err)
	}
}
