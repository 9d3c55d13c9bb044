package coordinator

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// TestWriterFailureAtEachPhase injects a veto (and, separately, silence) at
// every backup event and checks the state, the code, and exactly who gets
// Abort: only a Freeze or Thaw failure sends Abort, to that writer (D9).
func TestWriterFailureAtEachPhase(t *testing.T) {
	cases := []struct {
		ev        EventType
		state     vss.WriterState
		abort     bool        // the failing writer gets Abort
		reachPost bool        // the failing writer still gets PostSnapshot
		consist   Consistency // consistency of the snapshot holding its component
	}{
		{EvPrepareBackup, vss.WSFailedAtPrepareBackup, false, false, "crash"},
		{EvPrepareSnapshot, vss.WSFailedAtPrepareSnapshot, false, false, "crash"},
		{EvFreeze, vss.WSFailedAtFreeze, true, false, "crash"},
		{EvThaw, vss.WSFailedAtThaw, true, false, "crash"},
		{EvPostSnapshot, vss.WSFailedAtPostSnapshot, false, true, "application"},
		{EvBackupComplete, vss.WSFailedAtBackupComplete, false, true, "application"},
	}
	for _, silent := range []bool{false, true} {
		for _, tc := range cases {
			name := tc.ev.String()
			if silent {
				name += "/not-responding"
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, func(o *Options) {
					o.Timeouts.PrepareBackup, o.Timeouts.PrepareSnapshot, o.Timeouts.Thaw = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
					o.Timeouts.PostSnapshot, o.Timeouts.BackupComplete = 300*time.Millisecond, 300*time.Millisecond
				})
				bad := e.writer("bad", vss.LevelFrontEnd, 300*time.Millisecond)
				good := e.writer("good", vss.LevelBackEnd, 0)
				want := vsserr.WriterErrorRetryable
				if silent {
					bad.silentAt(tc.ev)
					want = vsserr.WriterNotResponding
				} else {
					bad.failAt(tc.ev, want)
				}
				s, snap := e.toSnapped()
				if tc.ev == EvBackupComplete {
					must(t, e.wait(s.BackupComplete()))
				}
				st := e.status(s, "bad")
				if st.State != tc.state || st.Failure != want {
					t.Fatalf("bad writer: %s / %s, want %s / %s", st.State, st.Failure, tc.state, want)
				}
				if !silent && (st.AppHRESULT != vsserr.Fail || !strings.Contains(st.AppMessage, "says no")) {
					t.Fatalf("application error not kept: %+v", st)
				}
				if g := e.status(s, "good"); g.State.Failed() {
					t.Fatalf("the other writer failed too: %+v", g)
				}
				if silent {
					// A writer that misses a deadline has its stream ended
					// (L29): it gets nothing more from this session, and is
					// no longer subscribed.
					if err := bad.ended(); err == nil || vsserr.Code(err) != vsserr.WriterNotResponding {
						t.Fatalf("the silent writer's stream was not ended: %v", err)
					}
					for _, w := range e.c.ListWriters() {
						if w.InstanceID == bad.h.InstanceID {
							t.Fatal("a writer whose stream was ended is still listed")
						}
					}
					tc.abort = false
				}
				if got := bad.count(EvAbort) == 1; got != tc.abort {
					t.Fatalf("bad writer Abort=%v, want %v: %v", got, tc.abort, bad.events())
				}
				if good.count(EvAbort) != 0 {
					t.Fatalf("good writer got Abort: %v", good.events())
				}
				if got := bad.count(EvPostSnapshot) == 1; got != tc.reachPost {
					t.Fatalf("bad writer PostSnapshot=%v, want %v: %v", got, tc.reachPost, bad.events())
				}
				sn, err := s.GetSnapshotProperties(snap)
				must(t, err)
				if sn.Consistency != tc.consist {
					t.Fatalf("consistency %s (%s), want %s", sn.Consistency, sn.ConsistencyReason, tc.consist)
				}
				if tc.consist == "crash" && !strings.Contains(sn.ConsistencyReason, `"bad"`) {
					t.Fatalf("reason does not name the writer: %s", sn.ConsistencyReason)
				}
				s.Release(context.Background())
				wantShutdown := 1
				if silent {
					wantShutdown = 0
				}
				if bad.count(EvBackupShutdown) != wantShutdown || good.count(EvBackupShutdown) != 1 {
					t.Fatalf("BackupShutdown: bad %v good %v", bad.events(), good.events())
				}
			})
		}
	}
}

func TestIdentifyFailureLeavesWriterOut(t *testing.T) {
	e := newEnv(t, nil)
	e.writer("ok", vss.LevelFrontEnd, 0)
	bad := e.writer("bad", vss.LevelFrontEnd, 0)
	bad.failAt(EvIdentify, vsserr.WriterErrorNonRetryable)
	s := e.toMeta(vss.CtxBackup, false)
	mds, err := s.GetWriterMetadata()
	must(t, err)
	if len(mds) != 1 {
		t.Fatalf("a writer failing Identify must not appear; got %d writers", len(mds))
	}
}

func TestFreezeWindowExpiry(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writer("w", vss.LevelFrontEnd, 200*time.Millisecond)
	release := e.prov.HangAt("CommitSnapshots")
	// Commit is held until the window has expired and Abort reached the
	// writer; the deadline only bounds a broken test.
	go func() {
		defer release()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if w.count(EvAbort) > 0 {
				return
			}
		}
	}()
	s, snap := e.toSnapped()
	st := e.status(s, "w")
	if st.State != vss.WSFailedAtFreeze || st.Failure != vsserr.WriterErrorTimeout {
		t.Fatalf("status %+v", st)
	}
	if w.count(EvAbort) != 1 || w.count(EvThaw) != 0 {
		t.Fatalf("window expiry must send Abort instead of Thaw: %v", w.events())
	}
	// Abort came while the provider was still committing.
	if i := e.tl.index("w:Abort"); i < e.tl.index("provider:CommitSnapshots") {
		t.Fatalf("order %v", e.tl.all())
	}
	sn, _ := s.GetSnapshotProperties(snap)
	if sn.Consistency != "crash" {
		t.Fatalf("consistency %s", sn.Consistency)
	}
}

func TestProviderFailureAbortsEveryone(t *testing.T) {
	for _, step := range []string{"EndPrepareSnapshots", "PreCommitSnapshots", "CommitSnapshots", "PostCommitSnapshots", "PreFinalCommitSnapshots"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t, nil)
			a := e.writer("a", vss.LevelFrontEnd, 0)
			b := e.writer("b", vss.LevelBackEnd, 0)
			e.prov.FailAt(step, vsserr.New(vsserr.ProviderVeto, "no space in the pool"))
			s := e.toMeta(vss.CtxBackup, false)
			e.toSet(s)
			must(t, e.wait(s.PrepareForBackup()))
			err := e.wait(s.DoSnapshotSet())
			if !errors.Is(err, vsserr.ProviderVeto) {
				t.Fatalf("DoSnapshotSet: %v", err)
			}
			if s.State() != StFailed {
				t.Fatalf("state %s", s.State())
			}
			for _, w := range []*fakeWriter{a, b} {
				if w.count(EvAbort) != 1 || w.count(EvPostSnapshot) != 0 {
					t.Fatalf("%s: %v", w.name, w.events())
				}
				if st := e.status(s, w.name); st.State != vss.WSStable {
					t.Fatalf("%s aborted for someone else's failure should be STABLE, is %s", w.name, st.State)
				}
			}
			if e.tl.index("provider:AbortSnapshots") < 0 {
				t.Fatal("provider got no AbortSnapshots")
			}
			if _, err := s.BackupComplete(); !errors.Is(err, vsserr.BadState) {
				t.Fatalf("BackupComplete after failed creation: %v", err)
			}
			must(t, s.AbortBackup(context.Background()))
			// The creation lock is free for the next session.
			s2 := e.toMeta(vss.CtxBackup, false)
			if _, err := s2.StartSnapshotSet(); err != nil {
				t.Fatalf("lock not released: %v", err)
			}
		})
	}
}

// TestProviderThatNeverAnswers (L45): a provider call that never returns,
// before the commit and after it (where the creation no longer listens to
// Cancel), fails the set at timeouts.provider_call with
// VSS_E_UNEXPECTED_PROVIDER_ERROR; the writers get Abort, AbortSnapshots
// is bounded the same way, and the creation lock is free again.
func TestProviderThatNeverAnswers(t *testing.T) {
	for _, step := range []string{"EndPrepareSnapshots", "PostCommitSnapshots", "PreFinalCommitSnapshots", "PostFinalCommitSnapshots"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Timeouts.ProviderCall = 300 * time.Millisecond })
			a := e.writer("a", vss.LevelFrontEnd, 0)
			release := e.prov.HangAt(step)
			defer release()
			abort := e.prov.HangAt("AbortSnapshots")
			defer abort()
			s := e.toMeta(vss.CtxBackup, false)
			e.toSet(s)
			must(t, e.wait(s.PrepareForBackup()))
			err := e.wait(s.DoSnapshotSet())
			if vsserr.Code(err) != vsserr.UnexpectedProviderError || !strings.Contains(err.Error(), "timeouts.provider_call") {
				t.Fatalf("DoSnapshotSet: %v", err)
			}
			if step != "PostFinalCommitSnapshots" && a.count(EvAbort) != 1 {
				t.Fatalf("writer: %v", a.events())
			}
			must(t, s.AbortBackup(context.Background()))
			s2 := e.toMeta(vss.CtxBackup, false)
			if _, err := s2.StartSnapshotSet(); err != nil {
				t.Fatalf("lock not released: %v", err)
			}
		})
	}
}

func TestUnpermittedProviderErrorIsTranslated(t *testing.T) {
	e := newEnv(t, nil)
	e.prov.FailAt("CommitSnapshots", errors.New("EIO from the pool"))
	s := e.toMeta(vss.CtxFileShareBackup, false)
	e.toSet(s)
	err := e.wait(s.DoSnapshotSet())
	if !errors.Is(err, vsserr.UnexpectedProviderError) {
		t.Fatalf("got %v", err)
	}
}

func TestHoldWindowTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Timeouts.Hold = 200 * time.Millisecond })
	w := e.writer("w", vss.LevelFrontEnd, 0)
	release := e.prov.HangAt("CommitSnapshots")
	defer release()
	s := e.toMeta(vss.CtxBackup, false)
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	if err := e.wait(s.DoSnapshotSet()); !errors.Is(err, vsserr.HoldWritesTimeout) {
		t.Fatalf("got %v", err)
	}
	if w.count(EvAbort) != 1 {
		t.Fatalf("%v", w.events())
	}
}

// TestReleaseAtEachPhase is the requester dying at each phase: Abort only
// between PrepareForBackup and the end of DoSnapshotSet, BackupShutdown
// only to writers that took part, auto-release snapshots deleted, and the
// next session can create a set (D11, D14).
func TestReleaseAtEachPhase(t *testing.T) {
	type phase struct {
		name     string
		run      func(e *env, s *Session)
		abort    bool
		shutdown bool
	}
	phases := []phase{
		{"init", func(e *env, s *Session) {}, false, false},
		{"meta", func(e *env, s *Session) { must(e.t, e.wait(s.GatherWriterMetadata())) }, false, false},
		{"set", func(e *env, s *Session) {
			must(e.t, e.wait(s.GatherWriterMetadata()))
			e.toSet(s)
		}, false, false},
		{"prepared", func(e *env, s *Session) {
			must(e.t, e.wait(s.GatherWriterMetadata()))
			e.toSet(s)
			must(e.t, e.wait(s.PrepareForBackup()))
		}, true, true},
		{"during-DoSnapshotSet", func(e *env, s *Session) {
			must(e.t, e.wait(s.GatherWriterMetadata()))
			e.toSet(s)
			must(e.t, e.wait(s.PrepareForBackup()))
			w := e.writers[0]
			w.silentAt(EvPrepareSnapshot) // DoSnapshotSet blocks in PrepareForSnapshot
			_, err := s.DoSnapshotSet()
			must(e.t, err)
			e.until("the writer to get PrepareForSnapshot", func() bool { return w.count(EvPrepareSnapshot) == 1 })
		}, true, true},
		{"snapped", func(e *env, s *Session) {
			must(e.t, e.wait(s.GatherWriterMetadata()))
			e.toSet(s)
			must(e.t, e.wait(s.PrepareForBackup()))
			must(e.t, e.wait(s.DoSnapshotSet()))
		}, false, true},
		{"complete", func(e *env, s *Session) {
			must(e.t, e.wait(s.GatherWriterMetadata()))
			e.toSet(s)
			must(e.t, e.wait(s.PrepareForBackup()))
			must(e.t, e.wait(s.DoSnapshotSet()))
			must(e.t, e.wait(s.BackupComplete()))
		}, false, true},
	}
	for _, ph := range phases {
		t.Run(ph.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Timeouts.PrepareSnapshot = 30 * time.Second })
			w := e.writer("w", vss.LevelFrontEnd, 0)
			e.writers = []*fakeWriter{w}
			s := e.c.NewSession(Peer{})
			must(t, s.InitializeForBackup(""))
			must(t, s.SetBackupState(false, false, vss.BackupFull, false))
			ph.run(e, s)
			done := make(chan Released)
			go func() { done <- s.Release(context.Background()) }()
			var rel Released
			select {
			case rel = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Release hung")
			}
			if got := w.count(EvAbort) == 1; got != ph.abort || rel.Aborted != ph.abort {
				t.Fatalf("Abort sent=%v reported=%v, want %v: %v", got, rel.Aborted, ph.abort, w.events())
			}
			if got := w.count(EvBackupShutdown) == 1; got != ph.shutdown {
				t.Fatalf("BackupShutdown=%v, want %v: %v", got, ph.shutdown, w.events())
			}
			if ph.abort && e.tl.index("w:Abort") > e.tl.index("w:BackupShutdown") {
				t.Fatalf("Abort must come before BackupShutdown: %v", e.tl.all())
			}
			if live, _ := e.cat.ListSnapshots(catalogAutoRelease()); len(live) != 0 || e.prov.Live() != 0 {
				t.Fatalf("auto-release snapshots left: catalog %d, provider %d", len(live), e.prov.Live())
			}
			w.mu.Lock()
			w.silent = map[EventType]bool{}
			w.mu.Unlock()
			s2 := e.toMeta(vss.CtxBackup, false)
			if _, err := s2.StartSnapshotSet(); err != nil {
				t.Fatalf("next session cannot start a set: %v", err)
			}
			if _, err := s.SaveAsXML(); !errors.Is(err, vsserr.BadState) {
				t.Fatalf("a released session must refuse calls: %v", err)
			}
		})
	}
}

func TestAbortBackupIsIdempotent(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writer("w", vss.LevelFrontEnd, 0)
	s := e.c.NewSession(Peer{})
	if err := s.AbortBackup(context.Background()); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("AbortBackup before InitializeForBackup: %v", err)
	}
	must(t, s.InitializeForBackup(""))
	must(t, s.AbortBackup(context.Background())) // nothing in progress: no-op
	must(t, s.SetBackupState(false, false, vss.BackupFull, false))
	must(t, e.wait(s.GatherWriterMetadata()))
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	must(t, s.AbortBackup(context.Background()))
	must(t, s.AbortBackup(context.Background()))
	if w.count(EvAbort) != 1 {
		t.Fatalf("Abort events %v", w.events())
	}
	if _, err := s.DoSnapshotSet(); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("DoSnapshotSet after AbortBackup: %v", err)
	}
}

func TestAddToSnapshotSetErrors(t *testing.T) {
	e := newEnv(t, nil)
	s := e.toMeta(vss.CtxFileShareBackup, false)
	_, err := s.StartSnapshotSet()
	must(t, err)
	ctx := context.Background()
	if _, err := s.AddToSnapshotSet(ctx, "relative/path", uuid.Nil); !errors.Is(err, vsserr.InvalidArg) {
		t.Fatalf("relative: %v", err)
	}
	if _, err := s.AddToSnapshotSet(ctx, e.vol+"/does-not-exist", uuid.Nil); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := s.AddToSnapshotSet(ctx, t.TempDir(), uuid.Nil); !errors.Is(err, vsserr.VolumeNotSupported) {
		t.Fatalf("unsupported: %v", err)
	}
	if _, err := s.AddToSnapshotSet(ctx, e.vol, uuid.New()); !errors.Is(err, vsserr.ProviderNotRegistered) {
		t.Fatalf("unknown provider: %v", err)
	}
	_, err = s.AddToSnapshotSet(ctx, e.vol, uuid.Nil)
	must(t, err)
	if _, err := s.AddToSnapshotSet(ctx, e.vol+"/.", uuid.Nil); !errors.Is(err, vsserr.ObjectAlreadyExists) {
		t.Fatalf("duplicate: %v", err)
	}
	for i := 1; i < MaxVolumes; i++ {
		d := e.vol + "/v" + string(rune('a'+i%26)) + uuid.NewString()[:4]
		must(t, mkdir(d))
		_, err = s.AddToSnapshotSet(ctx, d, uuid.Nil)
		must(t, err)
	}
	d := e.vol + "/one-too-many"
	must(t, mkdir(d))
	if _, err := s.AddToSnapshotSet(ctx, d, uuid.Nil); !errors.Is(err, vsserr.MaximumNumberOfVolumesReached) {
		t.Fatalf("65th volume: %v", err)
	}
}

func TestSetBackupSucceededAndComponentLookups(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writer("w", vss.LevelFrontEnd, 0)
	s := e.toMeta(vss.CtxBackup, true)
	cls := w.h.Identity.ClassID
	if err := s.AddComponent(w.h.InstanceID, cls, vss.ComponentFileGroup, "", "nope"); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("unknown component: %v", err)
	}
	must(t, s.AddComponent(w.h.InstanceID, cls, vss.ComponentFileGroup, "", "c0"))
	if err := s.AddComponent(w.h.InstanceID, cls, vss.ComponentFileGroup, "", "c0"); !errors.Is(err, vsserr.ObjectAlreadyExists) {
		t.Fatalf("duplicate component: %v", err)
	}
	must(t, s.SetBackupOptions(cls, vss.ComponentFileGroup, "", "c0", "opt=1"))
	must(t, s.SetPreviousBackupStamp(cls, vss.ComponentFileGroup, "", "c0", "prev"))
	if err := s.SetBackupOptions(cls, vss.ComponentFileGroup, "", "zz", "x"); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("options on unknown component: %v", err)
	}
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	if err := s.SetBackupSucceeded(w.h.InstanceID, cls, vss.ComponentFileGroup, "", "c0", true); !errors.Is(err, vsserr.BadState) {
		t.Fatalf("SetBackupSucceeded before DoSnapshotSet: %v", err)
	}
	must(t, e.wait(s.DoSnapshotSet()))
	must(t, s.SetBackupSucceeded(w.h.InstanceID, cls, vss.ComponentFileGroup, "", "c0", true))
	x, _ := s.SaveAsXML()
	b, err := document.ParseBackupComponents([]byte(x))
	must(t, err)
	c := b.Writer(w.h.InstanceID).Components[0]
	if !c.BackupSucceeded || c.BackupOptions != "opt=1" || c.PreviousBackupStamp != "prev" {
		t.Fatalf("component %+v", c)
	}
}

func TestConcurrentReleaseRunsOnce(t *testing.T) {
	e := newEnv(t, nil)
	w := e.writer("w", vss.LevelFrontEnd, 0)
	s := e.toMeta(vss.CtxBackup, false)
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); s.Release(context.Background()) }()
	}
	wg.Wait()
	if w.count(EvAbort) != 1 || w.count(EvBackupShutdown) != 1 {
		t.Fatalf("three concurrent releases: %v", w.events())
	}
}
