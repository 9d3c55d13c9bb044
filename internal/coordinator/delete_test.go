package coordinator

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// persistentSet makes a VSS_CTX_CLIENT_ACCESSIBLE snapshot of the volume
// in a session of its own; the session is released unless keep, and
// returned either way.
func (e *env) persistentSet(keep bool) (*Session, uuid.UUID) {
	e.t.Helper()
	s := e.toMeta(vss.CtxClientAccessible, false)
	snap := e.toSet(s)
	must(e.t, e.wait(s.DoSnapshotSet()))
	if !keep {
		s.Release(context.Background())
	}
	return s, snap
}

func (e *env) admin() *Session {
	e.t.Helper()
	s := e.c.NewSession(Peer{})
	must(e.t, s.InitializeForBackup(""))
	must(e.t, s.SetContext(vss.CtxAll))
	e.t.Cleanup(func() { s.Release(context.Background()) })
	return s
}

// lockWaiters is how many calls hold or wait for the snapshot's lock.
func (c *Coordinator) lockWaiters(id uuid.UUID) int {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	if l := c.snapLocks[id]; l != nil {
		return l.refs
	}
	return 0
}

// TestDeleteIfUnusedRefusesExposed: the lvss addition refuses an exposed
// snapshot with VSS_E_VOLUME_IN_USE and leaves it exposed; plain
// DeleteSnapshots unexposes and deletes it, as before.
func TestDeleteIfUnusedRefusesExposed(t *testing.T) {
	e := newEnv(t, nil)
	_, snap := e.persistentSet(false)
	admin := e.admin()
	dir := filepath.Join(t.TempDir(), "x")
	if _, err := admin.ExposeSnapshot(context.Background(), snap, "", vss.AttrExposedLocally, dir); err != nil {
		t.Fatal(err)
	}
	n, non, err := admin.DeleteSnapshotsIfUnused(context.Background(), snap, vss.ObjectSnapshot, false)
	if !errors.Is(err, vsserr.VolumeInUse) || n != 0 || non != snap {
		t.Fatalf("delete of an exposed snapshot: %d %v %v", n, non, err)
	}
	sn, err := admin.GetSnapshotProperties(snap)
	if err != nil || sn.ExposedName != dir || e.prov.Deleted(snap) {
		t.Fatalf("after the refusal: %+v %v, deleted %v", sn, err, e.prov.Deleted(snap))
	}
	// The same refusal for the set.
	if n, non, err := admin.DeleteSnapshotsIfUnused(context.Background(), sn.SetID, vss.ObjectSnapshotSet, true); !errors.Is(err, vsserr.VolumeInUse) || n != 0 || non != snap {
		t.Fatalf("delete of the set: %d %v %v", n, non, err)
	}
	if n, _, err := admin.DeleteSnapshots(context.Background(), snap, vss.ObjectSnapshot, false); err != nil || n != 1 || !e.prov.Deleted(snap) {
		t.Fatalf("plain delete: %d %v, deleted %v", n, err, e.prov.Deleted(snap))
	}
	if res := e.prov.Residue(); len(res) != 0 {
		t.Errorf("the provider still holds %v", res)
	}
}

// TestDeleteIfUnusedRefusesLiveSession: a persistent snapshot whose
// session still runs (a backup reading it, or a set not yet complete) is
// refused to others, but not to its own session; once that session ended
// it may go.
func TestDeleteIfUnusedRefusesLiveSession(t *testing.T) {
	e := newEnv(t, nil)
	owner, snap := e.persistentSet(true)
	admin := e.admin()
	if _, _, err := admin.DeleteSnapshotsIfUnused(context.Background(), snap, vss.ObjectSnapshot, false); !errors.Is(err, vsserr.VolumeInUse) || e.prov.Deleted(snap) {
		t.Fatalf("delete of a live session's snapshot: %v, deleted %v", err, e.prov.Deleted(snap))
	}
	owner.Release(context.Background())
	if n, _, err := admin.DeleteSnapshotsIfUnused(context.Background(), snap, vss.ObjectSnapshot, false); err != nil || n != 1 || !e.prov.Deleted(snap) {
		t.Fatalf("after its session ended: %d %v", n, err)
	}

	owner, snap = e.persistentSet(true)
	if n, _, err := owner.DeleteSnapshotsIfUnused(context.Background(), snap, vss.ObjectSnapshot, false); err != nil || n != 1 {
		t.Fatalf("its own session: %d %v", n, err)
	}
	if rel := owner.Release(context.Background()); len(rel.DeletedSnapshots) != 0 {
		t.Errorf("release deleted %v again", rel.DeletedSnapshots)
	}
}

// TestDeleteWaitsForExpose: a delete that comes while ExposeSnapshot is
// exposing the snapshot waits for it and then finds it exposed, so the
// check and the deletion cannot straddle an exposure.
func TestDeleteWaitsForExpose(t *testing.T) {
	e := newEnv(t, nil)
	_, snap := e.persistentSet(false)
	admin, other := e.admin(), e.admin()
	held, release := e.prov.HoldAt("Expose")
	defer release()
	dir := filepath.Join(t.TempDir(), "x")
	exposed := make(chan error, 1)
	go func() {
		_, err := admin.ExposeSnapshot(context.Background(), snap, "", vss.AttrExposedLocally, dir)
		exposed <- err
	}()
	<-held
	deleted := make(chan error, 1)
	go func() {
		_, _, err := other.DeleteSnapshotsIfUnused(context.Background(), snap, vss.ObjectSnapshot, false)
		deleted <- err
	}()
	e.until("the delete to wait for the snapshot's lock", func() bool { return e.c.lockWaiters(snap) == 2 })
	release()
	if err := <-exposed; err != nil {
		t.Fatalf("expose: %v", err)
	}
	if err := <-deleted; !errors.Is(err, vsserr.VolumeInUse) || e.prov.Deleted(snap) {
		t.Fatalf("delete during expose: %v, deleted %v", err, e.prov.Deleted(snap))
	}
	if n := e.c.lockWaiters(snap); n != 0 {
		t.Errorf("%d still hold the lock", n)
	}
}

// TestExposeWaitsForDelete: an ExposeSnapshot that comes while the
// snapshot is being deleted waits, then finds it gone; it does not write
// it back into the catalog.
func TestExposeWaitsForDelete(t *testing.T) {
	e := newEnv(t, nil)
	_, snap := e.persistentSet(false)
	admin, other := e.admin(), e.admin()
	held, release := e.prov.HoldAt("DeleteSnapshot")
	defer release()
	deleted := make(chan error, 1)
	go func() {
		_, _, err := admin.DeleteSnapshots(context.Background(), snap, vss.ObjectSnapshot, false)
		deleted <- err
	}()
	<-held
	exposed := make(chan error, 1)
	go func() {
		_, err := other.ExposeSnapshot(context.Background(), snap, "", vss.AttrExposedLocally, filepath.Join(t.TempDir(), "x"))
		exposed <- err
	}()
	e.until("the expose to wait for the snapshot's lock", func() bool { return e.c.lockWaiters(snap) == 2 })
	release()
	if err := <-deleted; err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := <-exposed; !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("expose during delete: %v", err)
	}
	if _, err := e.cat.GetSnapshot(snap); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Errorf("the catalog has the deleted snapshot again: %v", err)
	}
}

// TestSnapshotLockWaitEndsWithContext: a call waiting for a snapshot's
// lock gives up when its context ends, and leaves no lock behind.
func TestSnapshotLockWaitEndsWithContext(t *testing.T) {
	e := newEnv(t, nil)
	id := uuid.New()
	unlock, err := e.c.lockSnapshot(context.Background(), id)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.c.lockSnapshot(ctx, id); err == nil {
		t.Fatal("took a held lock")
	}
	unlock()
	if n := e.c.lockWaiters(id); n != 0 {
		t.Errorf("%d left on the lock", n)
	}
}
