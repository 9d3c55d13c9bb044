package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

func TestRevertToSnapshot(t *testing.T) {
	e := newEnv(t, nil)
	_, snap := e.persistentSet(false)
	admin := e.admin()
	ctx := context.Background()
	if _, err := admin.QueryRevertStatus(e.vol); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("QueryRevertStatus before any revert: %v", err)
	}
	must(t, admin.RevertToSnapshot(ctx, snap, false))
	if got := e.prov.Reverted(e.vol); got != snap {
		t.Fatalf("provider reverted %s to %s, want %s", e.vol, got, snap)
	}
	a, err := admin.QueryRevertStatus(e.vol)
	must(t, err)
	if hr, _ := a.Wait(ctx, -1); hr != vsserr.AsyncFinished {
		t.Fatalf("revert status %s, want VSS_S_ASYNC_FINISHED", hr)
	}
	// Finished: Cancel reports it, as for any async.
	if hr, _ := a.Cancel(ctx); hr != vsserr.AsyncFinished {
		t.Fatalf("Cancel after the revert: %s", hr)
	}
	// The snapshot stays (L38).
	if _, err := admin.GetSnapshotProperties(snap); err != nil {
		t.Fatalf("snapshot gone after revert: %v", err)
	}
}

func TestRevertRefusals(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	admin := e.admin()

	if err := admin.RevertToSnapshot(ctx, uuid.New(), false); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("unknown snapshot: %v", err)
	}

	// A non-persistent snapshot (VSS_CTX_BACKUP, kept by its live session).
	_, backup := e.toSnapped()
	if err := admin.RevertToSnapshot(ctx, backup, true); !errors.Is(err, vsserr.UnsupportedContext) {
		t.Fatalf("non-persistent snapshot: %v", err)
	}

	_, snap := e.persistentSet(false)
	// The provider's own refusals pass through.
	e.prov.FailAt("Revert", vsserr.New(vsserr.VolumeNotSupported, "fake: cannot swap this one"))
	err := admin.RevertToSnapshot(ctx, snap, false)
	if !errors.Is(err, vsserr.VolumeNotSupported) {
		t.Fatalf("provider refusal: %v", err)
	}
	a, err := admin.QueryRevertStatus(e.vol)
	must(t, err)
	if hr, _ := a.Wait(ctx, -1); hr != vsserr.VolumeNotSupported {
		t.Fatalf("status of the failed revert: %s", hr)
	}
	// A code RevertToSnapshot may not return becomes
	// VSS_E_UNEXPECTED_PROVIDER_ERROR (D18).
	e.prov.FailAt("Revert", vsserr.New(vsserr.ProviderVeto, "fake: veto"))
	if err := admin.RevertToSnapshot(ctx, snap, false); !errors.Is(err, vsserr.UnexpectedProviderError) {
		t.Fatalf("veto: %v", err)
	}
	e.prov.FailAt("Revert", nil)

	// A volume already reverting.
	release := e.prov.HangAt("Revert")
	done := make(chan error, 1)
	go func() { done <- admin.RevertToSnapshot(ctx, snap, false) }()
	e.until("the first revert to reach the provider", func() bool {
		n := 0
		for _, c := range e.prov.Calls() {
			if c == "Revert" {
				n++
			}
		}
		return n == 3
	})
	other := e.admin()
	if err := other.RevertToSnapshot(ctx, snap, false); !errors.Is(err, vsserr.RevertInProgress) {
		t.Fatalf("second revert: %v", err)
	}
	a, err = other.QueryRevertStatus(e.vol)
	must(t, err)
	if hr, _ := a.Status(); hr != vsserr.AsyncPending {
		t.Fatalf("status while reverting: %s", hr)
	}
	if hr, _ := a.Cancel(ctx); hr != vsserr.Unexpected {
		t.Fatalf("Cancel of a revert: %s, want a refusal", hr)
	}
	release()
	must(t, <-done)
	if hr, _ := a.Wait(ctx, -1); hr != vsserr.AsyncFinished {
		t.Fatalf("status after the revert: %s", hr)
	}
}

// TestRevertRefusedWhileWriterRuns: D10, a running writer with components
// on the volume blocks the revert unless forced; the writer gets no event.
func TestRevertRefusedWhileWriterRuns(t *testing.T) {
	e := newEnv(t, nil)
	_, snap := e.persistentSet(false)
	w := e.writer("db", vss.LevelFrontEnd, 0)
	admin := e.admin()
	ctx := context.Background()
	err := admin.RevertToSnapshot(ctx, snap, false)
	if !errors.Is(err, vsserr.VolumeInUse) || !strings.Contains(err.Error(), `writer "db"`) {
		t.Fatalf("revert under a running writer: %v", err)
	}
	if got := e.prov.Reverted(e.vol); got != uuid.Nil {
		t.Fatal("the provider was called")
	}
	must(t, admin.RevertToSnapshot(ctx, snap, true))
	if got := e.prov.Reverted(e.vol); got != snap {
		t.Fatal("forced revert did not reach the provider")
	}
	for _, ev := range []EventType{EvPrepareBackup, EvFreeze, EvPreRestore, EvPostRestore} {
		if w.lastEvent(ev) != nil {
			t.Fatalf("writer got %s on a revert", ev)
		}
	}
}

// TestRevertRecoveredAtStart: what the providers finish at start is the
// volume's revert status and is in the event log.
func TestRevertRecoveredAtStart(t *testing.T) {
	var fp interface {
		SetRecoveries(...provider.RevertOutcome)
	}
	id := uuid.New()
	e := newEnv(t, func(o *Options) {
		p := o.Providers.All()[0]
		fp = p.(recProvider).Provider
		fp.SetRecoveries(provider.RevertOutcome{SnapshotID: id, Volume: "/srv/data", Completed: true})
	})
	a, err := e.admin().QueryRevertStatus("/srv/data")
	must(t, err)
	if hr, _ := a.Wait(context.Background(), -1); hr != vsserr.AsyncFinished {
		t.Fatalf("recovered revert status: %s", hr)
	}
	evs, err := e.c.Events(0, 100)
	must(t, err)
	found := false
	for _, ev := range evs {
		if strings.Contains(ev.Message, "finished a revert") && ev.Fields["snapshot"] == id.String() {
			found = true
		}
	}
	if !found {
		t.Fatal("recovery not in the event log")
	}
}

// A revert and a creation of the same volume exclude each other: the
// revert is refused while a set of the volume is being created, and the
// volume cannot join a set while it is being reverted.
func TestRevertAndCreationExclude(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	_, snap := e.persistentSet(false)
	admin := e.admin()

	s := e.toMeta(vss.CtxClientAccessible, false)
	e.toSet(s)
	if err := admin.RevertToSnapshot(ctx, snap, true); !errors.Is(err, vsserr.VolumeInUse) || !strings.Contains(err.Error(), "being created") {
		t.Fatalf("revert during a creation of the volume: %v", err)
	}
	s.Release(ctx)
	// The creation ended: the revert may go, and while it runs the volume
	// cannot be added to a set.
	held, release := e.prov.HoldAt("Revert")
	done := make(chan error, 1)
	go func() { done <- admin.RevertToSnapshot(ctx, snap, true) }()
	<-held
	s2 := e.toMeta(vss.CtxClientAccessible, false)
	_, err := s2.StartSnapshotSet()
	must(t, err)
	if _, err := s2.AddToSnapshotSet(ctx, e.vol, uuid.Nil); !errors.Is(err, vsserr.ProviderVeto) || !strings.Contains(err.Error(), "being reverted") {
		t.Fatalf("AddToSnapshotSet during a revert of the volume: %v", err)
	}
	release()
	must(t, <-done)
	if _, err := s2.AddToSnapshotSet(ctx, e.vol, uuid.Nil); err != nil {
		t.Fatalf("AddToSnapshotSet after the revert: %v", err)
	}
	s2.Release(ctx)
}

// The creator adding volumes while other sessions keep asking for the
// creation lock must not deadlock: StartSnapshotSet holds the
// coordinator's lock while it reads the creator's set ID under the
// creator's own lock, so AddToSnapshotSet may not take them the other way
// round (the soak test found it so).
func TestAddToSnapshotSetWhileOthersWaitForTheLock(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	var vols []string
	for i := range 40 {
		v := filepath.Join(e.vol, fmt.Sprintf("v%02d", i))
		must(t, os.Mkdir(v, 0o755))
		vols = append(vols, v)
	}
	stop := make(chan struct{})
	waiters := make(chan struct{})
	go func() {
		defer close(waiters)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b := e.c.NewSession(Peer{})
			if err := b.InitializeForBackup(""); err == nil {
				if err := b.SetContext(vss.CtxClientAccessible); err == nil {
					_, _ = b.StartSnapshotSet()
				}
			}
			b.Release(ctx)
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			a := e.c.NewSession(Peer{})
			must(t, a.InitializeForBackup(""))
			must(t, a.SetContext(vss.CtxClientAccessible))
			for {
				if _, err := a.StartSnapshotSet(); err == nil {
					break
				}
			}
			for _, v := range vols {
				if _, err := a.AddToSnapshotSet(ctx, v, uuid.Nil); err != nil {
					t.Errorf("AddToSnapshotSet %s: %v", v, err)
				}
			}
			a.Release(ctx)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		// Not t.Fatal, nor a panic: the test's cleanup (the coordinator's
		// Close) would wait on the same locks, and the failure would show
		// only at go test's -timeout. Say it, with who holds what, and end.
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "--- FAIL: %s: AddToSnapshotSet and StartSnapshotSet deadlocked\n%s\n", t.Name(), buf[:runtime.Stack(buf, true)])
		os.Exit(1)
	}
	close(stop)
	<-waiters
}
