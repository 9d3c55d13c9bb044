package prevver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// events records what a keeper writes to the event log.
type events struct {
	mu  sync.Mutex
	got []string // "level: message"
}

func (e *events) add(level string, _ vsserr.HRESULT, msg string, _ ...string) {
	e.mu.Lock()
	e.got = append(e.got, level+": "+msg)
	e.mu.Unlock()
}

func (e *events) has(s string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, g := range e.got {
		if strings.Contains(g, s) {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// keeperEnv is a catalog, a volume with a share directory, and snapshots
// of it as directories.
type keeperEnv struct {
	t     *testing.T
	top   string
	cat   *catalog.DB
	share Share
}

func newKeeperEnv(t *testing.T) *keeperEnv {
	top := dirs(t, "vol/share", "run")
	cat, err := catalog.Open(filepath.Join(top, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	share := filepath.Join(top, "vol/share")
	return &keeperEnv{t: t, top: top, cat: cat, share: Share{Path: share, Dir: Snapdir(filepath.Join(top, "run"), share)}}
}

// snapshot records a client-accessible snapshot of the volume, created at
// created, whose copy is a directory of its own.
func (e *keeperEnv) snapshot(created time.Time) catalog.Snapshot {
	e.t.Helper()
	id := uuid.New()
	dev := filepath.Join(e.top, "snaps", id.String())
	if err := os.MkdirAll(filepath.Join(dev, "share"), 0o755); err != nil {
		e.t.Fatal(err)
	}
	sn := catalog.Snapshot{ID: id, SetID: uuid.New(), OriginalVolume: filepath.Join(e.top, "vol"), DevicePath: dev,
		Created: created, Context: int32(vss.CtxClientAccessible), Attributes: uint32(vss.CtxClientAccessible)}
	if err := e.cat.PutSnapshots(sn); err != nil {
		e.t.Fatal(err)
	}
	return sn
}

func (e *keeperEnv) keeper() *Keeper {
	return New(Options{Shares: []Share{e.share}, Root: filepath.Dir(e.share.Dir), Catalog: e.cat})
}

// linksTo is the snapdir as name → snapshot ID (the target's parent's
// name).
func (e *keeperEnv) links() map[string]string {
	out := map[string]string{}
	for n, target := range readLinks(e.t, e.share.Dir) {
		out[n] = filepath.Base(filepath.Dir(target))
	}
	return out
}

// The keeper follows the catalog: a reconcile at Start, and one after
// each Trigger (which the coordinator's SnapshotsChanged is), for
// snapshots added and deleted; it reports in its status what it did.
func TestKeeperFollowsTheCatalog(t *testing.T) {
	e := newKeeperEnv(t)
	a := e.snapshot(t0)
	k := e.keeper()
	ev := &events{}
	e.cat.OnSnapshotsChanged(k.Trigger)
	k.Start(ev.add)
	defer k.Stop()
	waitFor(t, "the reconcile at start", func() bool { return e.links()[Token(t0)] == a.ID.String() })
	b := e.snapshot(t0.Add(5 * time.Hour))
	waitFor(t, "the new snapshot's entry", func() bool { return len(e.links()) == 2 && e.links()[Token(b.Created)] == b.ID.String() })
	if err := e.cat.DeleteSnapshot(a.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted snapshot's entry to go", func() bool { _, ok := e.links()[Token(t0)]; return !ok && len(e.links()) == 1 })
	waitFor(t, "the status", func() bool {
		st := k.Statuses()
		return len(st) == 1 && len(st[0].Entries) == 1 && st[0].Entries[0].Snapshot == b.ID && st[0].Err == nil && !st[0].Reconciled.IsZero()
	})
	if !ev.has("info: previous versions: snapdir updated") {
		t.Errorf("events: %v", ev.got)
	}
}

// A reconcile that fails is written to the event log and done again at the
// next change; the other shares are not held up by it. A snapshot that
// cannot be shown is reported once.
func TestKeeperFailureRetriedAtNextChange(t *testing.T) {
	e := newKeeperEnv(t)
	e.snapshot(t0)
	broken := e.share
	broken.Path = filepath.Join(e.top, "vol")
	blocker := filepath.Join(e.top, "blocker")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	broken.Dir = filepath.Join(blocker, "vol") // its parent is a file: Apply fails
	k := New(Options{Shares: []Share{broken, e.share}, Catalog: e.cat})
	ev := &events{}
	e.cat.OnSnapshotsChanged(k.Trigger)
	k.Start(ev.add)
	defer k.Stop()
	waitFor(t, "the good share's entry", func() bool { return len(e.links()) == 1 })
	waitFor(t, "the failure in the event log", func() bool { return ev.has("error: previous versions: could not update the snapdir") })
	st := k.Statuses()
	if st[0].Err == nil || st[1].Err != nil {
		t.Fatalf("statuses: %+v", st)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	// A snapshot whose copy cannot be reached: skipped, and said once.
	gone := catalog.Snapshot{ID: uuid.New(), SetID: uuid.New(), OriginalVolume: filepath.Join(e.top, "vol"),
		DevicePath: filepath.Join(e.top, "snaps", "unreachable"), Created: t0.Add(time.Hour), Context: int32(vss.CtxClientAccessible)}
	if err := e.cat.PutSnapshots(gone); err != nil {
		t.Fatal(err)
	}
	e.snapshot(t0.Add(2 * time.Hour)) // a change: the broken share is tried again
	waitFor(t, "the broken share to recover", func() bool {
		st := k.Statuses()
		return st[0].Err == nil && len(st[0].Entries) == 2 && len(st[1].Entries) == 2 && len(st[1].Skipped) == 1
	})
	if len(readLinks(t, broken.Dir)) != 2 {
		t.Errorf("the recovered snapdir holds %v", readLinks(t, broken.Dir))
	}
	if st := k.Statuses(); len(st[1].Skipped) != 1 || st[1].Skipped[0].Snapshot != gone.ID {
		t.Errorf("skipped: %+v", st[1].Skipped)
	}
	k.Trigger()
	e.snapshot(t0.Add(3 * time.Hour))
	waitFor(t, "the last snapshot", func() bool { return len(e.links()) == 3 })
	n := 0
	ev.mu.Lock()
	for _, g := range ev.got {
		if strings.Contains(g, "a snapshot is not shown") {
			n++
		}
	}
	ev.mu.Unlock()
	if n != 2 { // once for each share
		t.Errorf("a snapshot that cannot be shown was reported %d times, want once per share", n)
	}
}

// What lvssd finds in its run directory at start is made right: a stray
// entry removed, a missing one made again, the snapdir of a path no longer
// configured removed.
func TestKeeperRepairsAtStart(t *testing.T) {
	e := newKeeperEnv(t)
	a, b := e.snapshot(t0), e.snapshot(t0.Add(time.Hour))
	if err := e.keeper().Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(e.share.Dir, Token(a.Created))); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(e.top, filepath.Join(e.share.Dir, "@GMT-2001.01.01-00.00.00")); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(filepath.Dir(e.share.Dir), "srv-old")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(e.top, filepath.Join(old, "@GMT-2001.01.01-00.00.00")); err != nil {
		t.Fatal(err)
	}
	if err := e.keeper().Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.links(); len(got) != 2 || got[Token(a.Created)] != a.ID.String() || got[Token(b.Created)] != b.ID.String() {
		t.Errorf("the snapdir after the repair: %v", got)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the snapdir of a path no longer configured is still there: %v", err)
	}
	if _, err := os.Stat(e.top); err != nil {
		t.Errorf("the stray entries' target went with them: %v", err)
	}
}

// Check refuses, at lvssd's start, a path no previous version could ever
// come from, with the VSS error and a hint.
func TestCheck(t *testing.T) {
	top := dirs(t, "vol/share", "elsewhere")
	if err := os.WriteFile(filepath.Join(top, "vol/file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(top, "vol/share"), filepath.Join(top, "link")); err != nil {
		t.Fatal(err)
	}
	provs := []provider.Provider{fake.New(filepath.Join(top, "vol"))}
	ctx := context.Background()
	got, err := Check(ctx, "previous_versions[0].path", filepath.Join(top, "link"), provs)
	if err != nil || got != filepath.Join(top, "vol/share") {
		t.Fatalf("a share on a supported volume, through a link: %q, %v", got, err)
	}
	for _, tc := range []struct {
		path string
		code vsserr.HRESULT
		msg  string
		hint string
	}{
		{"vol/none", vsserr.ObjectNotFound, "does not exist", "RequiresMountsFor="},
		{"vol/file", vsserr.InvalidArg, "not a directory", "the directory the Samba share serves"},
		{"elsewhere", vsserr.VolumeNotSupported, "no provider can snapshot it", "lvss doctor shows which provider"},
	} {
		_, err := Check(ctx, "previous_versions[0].path", filepath.Join(top, tc.path), provs)
		var se *StartError
		if !errors.As(err, &se) || vsserr.Code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) ||
			!strings.Contains(err.Error(), "previous_versions[0].path") || !strings.Contains(se.Hint(), tc.hint) {
			t.Errorf("%s: %v (hint %q)", tc.path, err, func() string {
				if se != nil {
					return se.Hint()
				}
				return ""
			}())
		}
	}
}
