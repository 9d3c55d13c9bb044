package coordinator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/fake"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// fakeFreezer records guard calls on the timeline.
type fakeFreezer struct {
	tl        *timeline
	freezeErr error
	thawErr   error
	mu        sync.Mutex
	paths     []string
	closed    int
}

func (f *fakeFreezer) Start(context.Context, time.Duration) (Hold, error) {
	f.tl.add("guard:Start")
	return f, nil
}

func (f *fakeFreezer) Freeze(_ context.Context, paths []string) error {
	f.tl.add("guard:Freeze")
	f.mu.Lock()
	f.paths = append(f.paths, paths...)
	f.mu.Unlock()
	return f.freezeErr
}

func (f *fakeFreezer) Thaw() (time.Duration, error) {
	f.tl.add("guard:Thaw")
	return time.Millisecond, f.thawErr
}

func (f *fakeFreezer) Close() error { f.mu.Lock(); f.closed++; f.mu.Unlock(); return nil }

// freezeEnv has an atomic provider ("plain", the env's volume) and a
// provider that needs a freeze ("outside", its own volume).
type freezeEnv struct {
	*env
	outside    *fake.Provider
	outsideVol string
	guard      *fakeFreezer
}

func newFreezeEnv(t *testing.T, mod func(*Options)) *freezeEnv {
	var fe freezeEnv
	fe.outsideVol, _ = filepath.EvalSymlinks(t.TempDir())
	fe.outside = fake.New(fe.outsideVol).WithInfo(provider.Info{ID: uuid.New(), Name: "outside", Type: vss.ProvHardware,
		Version: "1", Atomic: true, SetAtomic: true, NeedsFreeze: true})
	fe.env = newEnv(t, func(o *Options) {
		fe.guard = &fakeFreezer{}
		o.Freezer = fe.guard
		if mod != nil {
			mod(o)
		}
	})
	fe.guard.tl = fe.tl
	plain := fe.c.opt.Providers.All()[0]
	fe.c.opt.Providers = provider.NewRegistry(plain, recProvider{fe.outside, fe.tl})
	return &fe
}

func (fe *freezeEnv) session(t *testing.T) *Session {
	s := fe.toMeta(vss.CtxBackup, false)
	fe.toSet(s)
	_, err := s.AddToSnapshotSet(context.Background(), fe.outsideVol, uuid.Nil)
	must(t, err)
	must(t, fe.wait(s.PrepareForBackup()))
	return s
}

func TestFreezeOnlyAroundProvidersThatNeedIt(t *testing.T) {
	fe := newFreezeEnv(t, nil)
	fe.writer("w", vss.LevelFrontEnd, 0)
	s := fe.session(t)
	must(t, fe.wait(s.DoSnapshotSet()))
	log := fe.tl.all()
	// The atomic provider commits before the freeze (a btrfs snapshot
	// would block on a frozen btrfs); the outside one between Freeze and
	// Thaw; all of it while the writer is frozen.
	order := []string{"guard:Start", "w:Freeze", "provider:CommitSnapshots", "guard:Freeze", "provider:CommitSnapshots", "guard:Thaw", "w:Thaw"}
	i := 0
	for _, e := range log {
		if i < len(order) && e == order[i] {
			i++
		}
	}
	if i != len(order) {
		t.Fatalf("order %v, want the subsequence %v", log, order)
	}
	if len(fe.guard.paths) != 1 || fe.guard.paths[0] != fe.outsideVol {
		t.Fatalf("froze %v, want only %s", fe.guard.paths, fe.outsideVol)
	}
	if fe.guard.closed == 0 {
		t.Fatal("guard not closed")
	}
}

func TestNoGuardStartedWithoutFreezeProviders(t *testing.T) {
	fe := newFreezeEnv(t, nil)
	s := fe.toMeta(vss.CtxFileShareBackup, false)
	fe.toSet(s)
	must(t, fe.wait(s.DoSnapshotSet()))
	if fe.tl.index("guard:Start") >= 0 {
		t.Fatalf("a guard was started for a set that needs no freeze: %v", fe.tl.all())
	}
}

func TestFreezeFailures(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(*freezeEnv)
		want   vsserr.HRESULT
		thawed bool
	}{
		{"guard cannot freeze", func(fe *freezeEnv) { fe.guard.freezeErr = vsserr.New(vsserr.VolumeInUse, "frozen by someone else") }, vsserr.VolumeInUse, false},
		{"guard thawed on its own", func(fe *freezeEnv) { fe.guard.thawErr = vsserr.New(vsserr.HoldWritesTimeout, "held 10s") }, vsserr.HoldWritesTimeout, true},
		{"commit fails while frozen", func(fe *freezeEnv) {
			fe.outside.FailAt("CommitSnapshots", vsserr.New(vsserr.ProviderVeto, "array busy"))
		}, vsserr.ProviderVeto, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fe := newFreezeEnv(t, nil)
			w := fe.writer("w", vss.LevelFrontEnd, 0)
			tc.setup(fe)
			s := fe.session(t)
			if err := fe.wait(s.DoSnapshotSet()); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
			if got := fe.tl.index("guard:Thaw") >= 0; got != tc.thawed {
				t.Fatalf("Thaw called=%v, want %v: %v", got, tc.thawed, fe.tl.all())
			}
			if w.count(EvAbort) != 1 {
				t.Fatalf("writer: %v", w.events())
			}
			if fe.guard.closed == 0 {
				t.Fatal("guard not closed after failure")
			}
		})
	}
}

func TestFreezeNeedsAGuard(t *testing.T) {
	fe := newFreezeEnv(t, nil)
	fe.c.opt.Freezer = nil
	s := fe.session(t)
	if err := fe.wait(s.DoSnapshotSet()); !errors.Is(err, vsserr.ProviderVeto) {
		t.Fatalf("got %v", err)
	}
}

func TestLongCommitUsesTheFreezeWindow(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Timeouts.Hold = 100 * time.Millisecond })
	e.prov.WithInfo(provider.Info{ID: fake.ID, Name: "copyish", Version: "1", LongCommit: true})
	release := e.prov.HangAt("CommitSnapshots")
	go func() { time.Sleep(400 * time.Millisecond); release() }()
	s := e.toMeta(vss.CtxFileShareBackup, false)
	e.toSet(s)
	if err := e.wait(s.DoSnapshotSet()); err != nil {
		t.Fatalf("a long commit beyond the hold window but inside the freeze window failed: %v", err)
	}
}

func TestPerVolumeSnapshotCap(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxSnapshotsPerVolume = 2 })
	for range 2 {
		s := e.toMeta(vss.CtxAppRollback, false) // persistent: they stay
		e.toSet(s)
		must(t, e.wait(s.PrepareForBackup()))
		must(t, e.wait(s.DoSnapshotSet()))
		s.Release(context.Background())
	}
	s := e.toMeta(vss.CtxAppRollback, false)
	_, err := s.StartSnapshotSet()
	must(t, err)
	if _, err := s.AddToSnapshotSet(context.Background(), e.vol, uuid.Nil); !errors.Is(err, vsserr.MaximumNumberOfSnapshotsReached) {
		t.Fatalf("third snapshot of the volume: %v", err)
	}
	// Another volume is not affected.
	other := filepath.Join(e.vol, "other")
	must(t, os.Mkdir(other, 0o755))
	if _, err := s.AddToSnapshotSet(context.Background(), other, uuid.Nil); err != nil {
		t.Fatalf("other volume: %v", err)
	}
	// A deleted snapshot no longer counts: the catalog's count of the
	// volume follows deletions, in the transaction that makes them.
	have, err := e.cat.ListSnapshots(catalog.Filter{Volume: e.vol})
	must(t, err)
	if _, _, err := s.DeleteSnapshots(context.Background(), have[0].ID, vss.ObjectSnapshot, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddToSnapshotSet(context.Background(), e.vol, uuid.Nil); err != nil {
		t.Fatalf("after a deletion the volume is under its cap again: %v", err)
	}
}
