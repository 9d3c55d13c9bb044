//go:build soak

package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

const (
	// callTimeout is a session's deadline for each of its calls (an async
	// one until its Wait returns). lvssd's writer deadlines (30 s,
	// daemonConfig) end any writer's part well before it, so a call that
	// reaches it is a session that would never have ended.
	callTimeout = 2 * time.Minute
	// lockWait bounds how long a session retries StartSnapshotSet. With N
	// sessions queueing for one creation at a time a session waits about N
	// creations; this is many times that.
	lockWait = 10 * time.Minute
	// cliTimeout bounds one run of the lvss binary.
	cliTimeout = time.Minute
)

// runLoad runs the load (requester sessions, writer churn, admin work)
// until the time given, then lets what it started finish: sessions still
// waiting for the creation lock give up, the others complete.
func (s *soak) runLoad(until time.Time) {
	s.setPhase("load")
	stop, cancel := context.WithDeadline(s.hard, until)
	defer cancel()
	var wg sync.WaitGroup
	for range s.cfg.sessions {
		wg.Go(func() {
			for stop.Err() == nil {
				s.session(stop, rand.IntN(2) == 0)
			}
		})
	}
	wg.Go(func() { s.adminLoop(stop) })
	wg.Go(func() { s.churn(stop) })
	wg.Wait()
}

// pause waits about d (jittered) or until ctx ends; it reports whether
// ctx is still live. It paces the load; no check depends on it.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d/2 + rand.N(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// session runs one whole backup as a requester does: Gather, then
// StartSnapshotSet (retried with backoff while another session creates),
// AddToSnapshotSet of one or both volumes, PrepareForBackup,
// DoSnapshotSet, GatherWriterStatus, BackupComplete, release. persistent
// picks VSS_CTX_APP_ROLLBACK (the snapshots stay) over VSS_CTX_BACKUP
// (auto-release: deleted at release). Once stop has ended, a session
// still waiting for the lock gives up.
func (s *soak) session(stop context.Context, persistent bool) {
	vols := s.vols
	if rand.IntN(3) != 0 {
		vols = []string{s.vols[rand.IntN(len(s.vols))]}
	}
	start := time.Now()
	var (
		step      = "connect"
		set       uuid.UUID
		ids       []uuid.UUID
		created   bool
		abandoned bool
		released  client.Released
		locked    time.Time
	)
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(s.hard, callTimeout) }
	wait := func(name string, op func(context.Context) (*client.Async, error)) error {
		step = name
		ctx, cancel := call()
		defer cancel()
		a, err := op(ctx)
		if err == nil {
			err = a.Wait(ctx)
		}
		return err
	}
	do := func(name string, f func(ctx context.Context) error) error {
		step = name
		ctx, cancel := call()
		defer cancel()
		return f(ctx)
	}
	err := client.Run(s.hard, s.socket, func(_ context.Context, bc *client.BackupComponents) error {
		if err := do("InitializeForBackup", func(ctx context.Context) error { return bc.InitializeForBackup(ctx, "") }); err != nil {
			return err
		}
		if persistent {
			if err := do("SetContext", func(ctx context.Context) error { return bc.SetContext(ctx, vss.CtxAppRollback) }); err != nil {
				return err
			}
		}
		if err := do("SetBackupState", func(ctx context.Context) error {
			return bc.SetBackupState(ctx, false, false, vss.BackupFull, false)
		}); err != nil {
			return err
		}
		if err := wait("GatherWriterMetadata", bc.GatherWriterMetadata); err != nil {
			return err
		}
		for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
			err := do("StartSnapshotSet", func(ctx context.Context) (err error) { set, err = bc.StartSnapshotSet(ctx); return err })
			if err == nil {
				locked = time.Now()
				s.stats.longestWait.note(locked.Sub(start))
				break
			}
			if !errors.Is(err, vsserr.SnapshotSetInProgress) {
				return err
			}
			s.stats.retries.Add(1)
			if time.Since(start) > lockWait {
				return fmt.Errorf("still VSS_E_SNAPSHOT_SET_IN_PROGRESS after %s: %w", lockWait, err)
			}
			if !pause(stop, backoff) {
				abandoned = true
				return nil
			}
		}
		for _, v := range vols {
			var id uuid.UUID
			if err := do("AddToSnapshotSet", func(ctx context.Context) (err error) { id, err = bc.AddToSnapshotSet(ctx, v, uuid.Nil); return err }); err != nil {
				return err
			}
			s.track.add(id, set, v, persistent)
			ids = append(ids, id)
		}
		if err := wait("PrepareForBackup", bc.PrepareForBackup); err != nil {
			return err
		}
		if err := wait("DoSnapshotSet", bc.DoSnapshotSet); err != nil {
			return err
		}
		created = true
		if err := wait("GatherWriterStatus", bc.GatherWriterStatus); err != nil {
			return err
		}
		if err := do("GetWriterStatus", func(ctx context.Context) error {
			n, err := bc.GetWriterStatusCount(ctx)
			for i := 0; err == nil && i < n; i++ {
				var ws client.WriterStatus
				if ws, err = bc.GetWriterStatus(ctx, i); err == nil && ws.Failure != vsserr.OK {
					s.stats.writerFailure(ws.Failure.Name())
					// The soak's writers answer everything at once and
					// never veto: the one failure they may have is that
					// of a writer that left during the session.
					if ws.Failure != vsserr.WriterNotResponding {
						s.errorf("writer %s in set %s: %s (state %v, %q)", ws.Name, set, ws.Failure, ws.State, ws.ApplicationMessage)
					}
				}
			}
			return err
		}); err != nil {
			return err
		}
		if err := wait("BackupComplete", bc.BackupComplete); err != nil {
			return err
		}
		return do("release", func(ctx context.Context) (err error) { released, err = bc.Release(ctx); return err })
	})
	switch {
	case err != nil:
		s.errorf("session (%s, %d volumes, set %s) at %s: %v", ctxName(persistent), len(vols), set, step, err)
	case abandoned:
		s.stats.abandoned.Add(1)
	case persistent:
		s.stats.sessionsPersistent.Add(1)
	default:
		s.stats.sessionsAuto.Add(1)
	}
	if err == nil && !abandoned {
		s.stats.longestRest.note(time.Since(locked))
	}
	if len(ids) == 0 {
		return
	}
	// The session has ended (Run released it): what its snapshots must
	// be now, checked at once and from now on by every check.
	keep := persistent && created
	for _, id := range ids {
		if keep {
			s.track.set(id, kept)
		} else {
			s.track.set(id, gone)
		}
	}
	if err == nil {
		s.checkReleased(set, ids, keep, released)
	}
}

func ctxName(persistent bool) string {
	if persistent {
		return "VSS_CTX_APP_ROLLBACK"
	}
	return "VSS_CTX_BACKUP"
}

// checkReleased checks a whole session's snapshots right after its
// release: an auto-release set is reported deleted, is no longer listed
// and is off the disk; a persistent one is reported kept, listed and on
// disk.
func (s *soak) checkReleased(set uuid.UUID, ids []uuid.UUID, persistent bool, rel client.Released) {
	ctx, cancel := context.WithTimeout(s.hard, callTimeout)
	defer cancel()
	want := ids
	if persistent {
		want = nil
	}
	if !sameIDs(rel.DeletedSnapshots, want) {
		s.errorf("set %s (%s): release reported deleting %v, want %v", set, ctxName(persistent), rel.DeletedSnapshots, want)
	}
	list, err := s.admin.ListShadows(ctx, set, "")
	if err != nil {
		s.errorf("ListShadows of set %s: %v", set, err)
		return
	}
	var listed []uuid.UUID
	for _, p := range list {
		listed = append(listed, p.SnapshotID)
	}
	if want = nil; persistent {
		want = ids
	}
	if !sameIDs(listed, want) {
		s.errorf("set %s (%s) after its release: lvssd lists %v, want %v", set, ctxName(persistent), listed, want)
	}
	recs, _ := s.track.copyAll()
	for _, id := range ids {
		_, err := os.Stat(filepath.Join(snapshotDir(recs[id].vol), id.String()))
		if on := err == nil; on != persistent {
			s.errorf("set %s (%s) after its release: snapshot %s on disk %v, want %v", set, ctxName(persistent), id, on, persistent)
		}
	}
}

func sameIDs(a, b []uuid.UUID) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	cmp := func(x, y uuid.UUID) int { return bytes.Compare(x[:], y[:]) }
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}

// lvss runs the real lvss binary against the soak's lvssd and returns its
// standard output; a non-zero exit is an error with its standard error.
func (s *soak) lvss(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(s.hard, cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.lvssBin, append([]string{"--socket", s.socket}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("did not end within %s (%w)", cliTimeout, err)
		}
		return out.String(), fmt.Errorf("lvss %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// adminLoop does, between the sessions, what an administrator and a
// retention job do: delete persistent snapshots beyond cfg.keep (oldest
// first; the oldest with lvss delete shadows, the others through the Go
// API in one VSS_CTX_ALL session), expose and unexpose persistent
// snapshots with lvss expose / unexpose, and list them with lvss list
// shadows.
func (s *soak) adminLoop(stop context.Context) {
	for pause(stop, 500*time.Millisecond) {
		ks := s.track.keptSnaps()
		if len(ks) > s.cfg.keep {
			excess := ks[:len(ks)-s.cfg.keep]
			s.deleteCLI(excess[0])
			s.deleteAPI(excess[1:])
			ks = ks[len(excess):]
		}
		var exposed, plain []snap
		for _, sn := range ks {
			if sn.exposed != "" {
				exposed = append(exposed, sn)
			} else {
				plain = append(plain, sn)
			}
		}
		switch rand.IntN(3) {
		case 0:
			if len(plain) > 0 && len(exposed) < 4 {
				s.expose(plain[rand.IntN(len(plain))])
			}
		case 1:
			if len(exposed) > 0 {
				s.unexpose(exposed[rand.IntN(len(exposed))])
			}
		case 2:
			if _, err := s.listShadows(); err != nil {
				s.errorf("%v", err)
			}
		}
	}
}

func (s *soak) setBusy(id uuid.UUID, busy bool) {
	s.track.update(id, func(sn *snap) { sn.busy = busy })
}

// expose exposes a kept snapshot with lvss expose and checks that its
// content is there.
func (s *soak) expose(sn snap) {
	dir := filepath.Join(s.exposeDir, sn.id.String())
	if err := os.Mkdir(dir, 0o755); err != nil {
		s.errorf("expose directory: %v", err)
		return
	}
	s.setBusy(sn.id, true)
	defer s.setBusy(sn.id, false)
	out, err := s.lvss("expose", sn.id.String(), dir, "--json")
	if err != nil {
		s.errorf("%v", err)
		os.Remove(dir)
		return
	}
	s.stats.exposes.Add(1)
	var res struct {
		SnapshotID  uuid.UUID `json:"snapshot_id"`
		ExposedPath string    `json:"exposed_path"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.SnapshotID != sn.id || res.ExposedPath != dir {
		s.errorf("lvss expose %s %s --json printed %q (%v)", sn.id, dir, out, err)
	}
	s.track.update(sn.id, func(r *snap) { r.exposed = dir })
	want := filepath.Base(sn.vol) + "\n"
	if b, err := os.ReadFile(filepath.Join(dir, markerFile)); err != nil || string(b) != want {
		s.errorf("snapshot %s exposed at %s: %s reads %q (%v), want %q", sn.id, dir, markerFile, b, err, want)
	}
}

// unexpose undoes expose with lvss unexpose and checks that the
// snapshot's content is gone from the directory.
func (s *soak) unexpose(sn snap) {
	s.setBusy(sn.id, true)
	defer s.setBusy(sn.id, false)
	if _, err := s.lvss("unexpose", sn.id.String(), "--json"); err != nil {
		s.errorf("%v", err)
		return
	}
	s.stats.unexposes.Add(1)
	s.track.update(sn.id, func(r *snap) { r.exposed = "" })
	s.checkUnexposed(sn)
}

func (s *soak) checkUnexposed(sn snap) {
	if _, err := os.Stat(filepath.Join(sn.exposed, markerFile)); !os.IsNotExist(err) {
		s.errorf("snapshot %s: %s is still readable at %s after it was unexposed (%v)", sn.id, markerFile, sn.exposed, err)
		return
	}
	if err := os.Remove(sn.exposed); err != nil {
		s.errorf("remove the expose directory: %v", err)
	}
}

// deleteCLI deletes a kept snapshot with lvss delete shadows --shadow.
func (s *soak) deleteCLI(sn snap) {
	s.setBusy(sn.id, true)
	defer s.setBusy(sn.id, false)
	if _, err := s.lvss("delete", "shadows", "--shadow", sn.id.String(), "--json"); err != nil {
		s.errorf("%v", err)
		return
	}
	s.stats.deletesCLI.Add(1)
	s.deleted(sn)
}

// deleteAPI deletes kept snapshots with DeleteSnapshots, one call each,
// in one VSS_CTX_ALL session.
func (s *soak) deleteAPI(sns []snap) {
	if len(sns) == 0 {
		return
	}
	for _, sn := range sns {
		s.setBusy(sn.id, true)
		defer s.setBusy(sn.id, false)
	}
	var done []snap
	err := client.Run(s.hard, s.socket, func(ctx context.Context, bc *client.BackupComponents) error {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if err := bc.SetContext(ctx, vss.CtxAll); err != nil {
			return err
		}
		for _, sn := range sns {
			n, nonDeleted, err := bc.DeleteSnapshots(ctx, sn.id, vss.ObjectSnapshot, true)
			if err == nil && (n != 1 || nonDeleted != uuid.Nil) {
				err = fmt.Errorf("deleted %d, not deleted %s", n, nonDeleted)
			}
			if err != nil {
				return fmt.Errorf("DeleteSnapshots %s: %w", sn.id, err)
			}
			done = append(done, sn)
		}
		return nil
	})
	if err != nil {
		s.errorf("delete snapshots: %v", err)
	}
	for _, sn := range done {
		s.stats.deletesAPI.Add(1)
		s.deleted(sn)
	}
}

// deleted records a deletion and checks that the snapshot is off the disk
// and no longer exposed.
func (s *soak) deleted(sn snap) {
	s.track.update(sn.id, func(r *snap) { r.state, r.exposed = gone, "" })
	if _, err := os.Stat(filepath.Join(snapshotDir(sn.vol), sn.id.String())); !os.IsNotExist(err) {
		s.errorf("deleted snapshot %s is still on disk (%v)", sn.id, err)
	}
	if sn.exposed != "" {
		s.checkUnexposed(sn)
	}
}

// churn makes writers come and go: every so often one writer leaves
// (its stream ends) and comes back a little later, and now and then a
// whole host process restarts, by SIGTERM (its writers unsubscribe) or
// SIGKILL (a crash, the streams just break).
func (s *soak) churn(stop context.Context) {
	kill := false
	for pause(stop, 600*time.Millisecond) {
		s.hostsMu.Lock()
		// Writers away come back after a tick or two.
		for _, h := range s.hosts {
			for i := range h.away {
				if rand.IntN(2) == 0 {
					h.send(fmt.Sprintf("join %d", i))
					delete(h.away, i)
					s.stats.joins.Add(1)
				}
			}
		}
		h := s.hosts[rand.IntN(len(s.hosts))]
		if rand.IntN(15) == 0 {
			sig := syscall.SIGTERM
			if kill {
				sig = syscall.SIGKILL
			}
			kill = !kill
			if err := s.restartHost(h.idx, sig); err != nil {
				s.errorf("%v", err)
			}
		} else if i := rand.IntN(s.cfg.perProc); !h.away[i] {
			h.send(fmt.Sprintf("leave %d", i))
			h.away[i] = true
			s.stats.leaves.Add(1)
		}
		s.hostsMu.Unlock()
	}
}

// restartHost stops host idx with sig and starts it again. hostsMu is
// held.
func (s *soak) restartHost(idx int, sig syscall.Signal) error {
	h := s.hosts[idx]
	if h.exited() {
		return fmt.Errorf("writer host %d exited on its own: %v", idx, h.err)
	}
	if err := h.stop(sig); err != nil {
		return err
	}
	nh, err := s.startHost(idx)
	if err != nil {
		return err
	}
	s.hosts[idx] = nh
	if sig == syscall.SIGKILL {
		s.stats.restartsKill.Add(1)
	} else {
		s.stats.restartsTerm.Add(1)
	}
	return nil
}

// restoreWriters brings every writer back: hosts that exited on their own
// (an error) are started again, writers away are told to join.
func (s *soak) restoreWriters() {
	s.hostsMu.Lock()
	defer s.hostsMu.Unlock()
	for i, h := range s.hosts {
		if h.exited() {
			s.errorf("writer host %d exited on its own: %v", i, h.err)
			nh, err := s.startHost(i)
			if err != nil {
				s.errorf("%v", err)
				continue
			}
			s.hosts[i] = nh
			continue
		}
		for w := range h.away {
			h.send(fmt.Sprintf("join %d", w))
			delete(h.away, w)
			s.stats.joins.Add(1)
		}
	}
}

// unmountUnder unmounts whatever is mounted below dir (exposures a failed
// run left), deepest first.
func unmountUnder(t interface{ Logf(string, ...any) }, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mnts []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mnts = append(mnts, f[4])
		}
	}
	slices.SortFunc(mnts, func(a, b string) int { return len(b) - len(a) })
	for _, m := range mnts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", m, err)
		}
	}
}
