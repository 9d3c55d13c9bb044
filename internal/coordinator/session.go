package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Session is one IVssBackupComponents object. Its state changes only
// through transition (states.go), following the table there.
type Session struct {
	c       *Coordinator
	id      uuid.UUID
	peer    Peer
	started time.Time

	mu      sync.Mutex
	state   State
	context vss.Context
	// called records the calls that succeeded in this session, for the
	// table's once-only and must-come-first conditions.
	called        map[Method]bool
	bcd           *document.BackupComponents
	allowMode     bool
	allowClasses  map[uuid.UUID]bool
	denyClasses   map[uuid.UUID]bool
	denyInstances map[uuid.UUID]bool
	gathered      []*sessionWriter
	// unidentified are writers that failed or missed Identify in this
	// session: not in the metadata, but in the status (L30).
	unidentified []WriterStatus
	statusList   []WriterStatus
	setID        uuid.UUID
	volumes      []volumeEntry
	// abortSent records that the writers taking part got Abort because
	// the creation ended without a snapshot set, whenever that was
	// (Released.Aborted).
	abortSent bool
	// restoreJournaled: PreRestore was recorded in the journal; Release
	// removes the entry.
	restoreJournaled bool
	snapshots        []catalog.Snapshot // the set's snapshots, while they exist
	asyncs           map[uint64]*Async
	nextAsync        uint64
	pending          *Async // running async op
	opCancel         context.CancelCauseFunc
	opDone           chan struct{}
	releasing        chan struct{} // closed when Release has finished
	// barrier holds the creation at the points where the hosts of a
	// cluster set wait for one another (barrier.go).
	barrier barrierState

	// lockWaitSince is when StartSnapshotSet was first refused because
	// another session held the creation lock, until this session gets it
	// or ends (zero: not waiting). Guarded by c.mu, not mu: it belongs
	// to the lock.
	lockWaitSince time.Time
}

func newSession(c *Coordinator, peer Peer) *Session {
	return &Session{c: c, id: uuid.New(), peer: peer, started: time.Now(), asyncs: map[uint64]*Async{}, called: map[Method]bool{},
		allowClasses: map[uuid.UUID]bool{}, denyClasses: map[uuid.UUID]bool{}, denyInstances: map[uuid.UUID]bool{}}
}

// ID is the session's GUID (GetSessionId).
func (s *Session) ID() uuid.UUID { return s.id }

// State reports the current state.
func (s *Session) State() State { s.mu.Lock(); defer s.mu.Unlock(); return s.state }

func (s *Session) setIDForLock() uuid.UUID { s.mu.Lock(); defer s.mu.Unlock(); return s.setID }

func badState(format string, args ...any) error { return vsserr.New(vsserr.BadState, format, args...) }

// InitializeForBackup starts a backup session with an empty BCD, or with a
// saved one (bcdXML non-empty).
func (s *Session) InitializeForBackup(bcdXML string) error {
	return s.do(MInitializeForBackup, func() error {
		bcd := &document.BackupComponents{Version: "1.2"}
		if strings.TrimSpace(bcdXML) != "" {
			b, err := document.ParseBackupComponents([]byte(bcdXML))
			if err != nil {
				return err
			}
			bcd = b
		}
		s.bcd, s.context = bcd, vss.CtxBackup
		return nil
	})
}

// InitializeForRestore loads a saved BCD for a restore session. The
// restore calls themselves come with the restore work; backup-only calls
// are VSS_E_BAD_STATE in a restore session (D21).
func (s *Session) InitializeForRestore(bcdXML string) error {
	return s.do(MInitializeForRestore, func() error {
		b, err := document.ParseBackupComponents([]byte(bcdXML))
		if err != nil {
			return err
		}
		s.bcd = b
		return nil
	})
}

// SetContext chooses the context once (vss-reference §1.4).
func (s *Session) SetContext(c vss.Context) error {
	return s.do(MSetContext, func() error {
		// VSS_CTX_ALL is valid here: it is how administrative calls
		// (Query, DeleteSnapshots) see every context. Creation refuses it.
		if !c.Valid() {
			return vsserr.New(vsserr.InvalidArg, "context %s (0x%X) is not a snapshot context", c, uint32(c))
		}
		s.context = c
		return nil
	})
}

// SetBackupState records the backup's settings in the BCD.
func (s *Session) SetBackupState(selectComponents, bootable bool, bt vss.BackupType, partial bool) error {
	return s.do(MSetBackupState, func() error {
		if !bt.Valid() {
			return vsserr.New(vsserr.InvalidArg, "backup type %d is not a VSS_BACKUP_TYPE", bt)
		}
		s.bcd.SelectComponents, s.bcd.BootableSystemStateBackup, s.bcd.BackupType, s.bcd.PartialFileSupport = selectComponents, bootable, bt, partial
		return nil
	})
}

// EnableWriterClasses switches to (or extends) the allow list.
func (s *Session) EnableWriterClasses(ids []uuid.UUID) error {
	return s.do(MEnableWriterClasses, func() error {
		if !s.allowMode {
			s.allowMode = true
			s.denyClasses = map[uuid.UUID]bool{} // an Enable after Disables discards the deny list
		}
		for _, id := range ids {
			s.allowClasses[id] = true
		}
		return nil
	})
}

// DisableWriterClasses adds to the deny list, or removes from the allow list.
func (s *Session) DisableWriterClasses(ids []uuid.UUID) error {
	return s.do(MDisableWriterClasses, func() error {
		for _, id := range ids {
			if s.allowMode {
				delete(s.allowClasses, id)
			} else {
				s.denyClasses[id] = true
			}
		}
		return nil
	})
}

// DisableWriterInstances blocks single writer instances.
func (s *Session) DisableWriterInstances(ids []uuid.UUID) error {
	return s.do(MDisableWriterInstances, func() error {
		for _, id := range ids {
			s.denyInstances[id] = true
		}
		return nil
	})
}

func (s *Session) excluded(w *WriterHandle) bool {
	if s.denyInstances[w.InstanceID] {
		return true
	}
	if s.allowMode {
		return !s.allowClasses[w.Identity.ClassID]
	}
	return s.denyClasses[w.Identity.ClassID]
}

// Released says what ending a session did (D11).
type Released struct {
	Aborted          bool
	ShutdownWriters  []uuid.UUID
	DeletedSnapshots []uuid.UUID
}

// Release ends the session, whatever its state: Abort if creation was in
// progress, BackupShutdown to the writers that took part, auto-release
// snapshots deleted. Idempotent.
func (s *Session) Release(ctx context.Context) Released {
	var r Released
	s.mu.Lock()
	if s.releasing != nil {
		// Released already, or being released by someone else (the
		// stream ending while lvssd shuts down): wait for that one.
		ch := s.releasing
		s.mu.Unlock()
		<-ch
		return r
	}
	s.releasing = make(chan struct{})
	defer close(s.releasing)
	cancel, done := s.opCancel, s.opDone
	s.mu.Unlock()
	// A running operation is cancelled and waited for: DoSnapshotSet then
	// aborts the creation itself (or finishes, if past its commit point).
	if cancel != nil {
		cancel(context.Canceled)
		<-done
	}
	s.mu.Lock()
	creating := s.state == StSet || s.state == StPrepared
	s.transition(mRelease, s.state)
	s.mu.Unlock()
	if creating {
		s.abortCreation(ctx, "session released")
	}
	s.mu.Lock()
	r.Aborted = s.abortSent
	parts := s.participantsLocked()
	setID, autoSnaps := s.setID, s.snapshots
	auto := s.context.AutoRelease()
	s.mu.Unlock()
	s.c.releaseCreation(s)

	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, sw := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := &Event{Type: EvBackupShutdown, SessionID: s.id, SnapshotSetID: setID, Context: s.context, Timeout: s.c.opt.Timeouts.BackupShutdown}
			s.deliver(ctx, sw, ev, PhaseNone)
			mu.Lock()
			r.ShutdownWriters = append(r.ShutdownWriters, sw.w.InstanceID)
			mu.Unlock()
		}()
	}
	wg.Wait()
	s.journalRestoreDone(ctx)
	sort.Slice(r.ShutdownWriters, func(i, j int) bool { return r.ShutdownWriters[i].String() < r.ShutdownWriters[j].String() })
	if auto {
		r.DeletedSnapshots = s.c.releaseSnapshots(ctx, s.id, setID, autoSnaps)
	}
	s.c.forgetSession(s)
	s.c.event(ctx, LevelInfo, 0, s.id, "session released", "aborted", fmt.Sprint(r.Aborted),
		"shutdown_writers", fmt.Sprint(len(r.ShutdownWriters)), "deleted_snapshots", fmt.Sprint(len(r.DeletedSnapshots)))
	return r
}

// releaseSnapshots deletes a released session's auto-release snapshots
// that still exist: DeleteSnapshots (of this or any session) may have
// removed some already, and those are neither deleted again nor reported.
// The set's documents go when all of it is gone.
func (c *Coordinator) releaseSnapshots(ctx context.Context, session, setID uuid.UUID, snaps []catalog.Snapshot) []uuid.UUID {
	var deleted []uuid.UUID
	left := 0
	for _, sn := range snaps {
		err := c.deleteSnapshot(ctx, sn, nil)
		if errors.As(err, new(goneError)) {
			continue // deleted already, by DeleteSnapshots
		}
		if err != nil {
			left++
			c.event(ctx, LevelError, vsserr.Code(err), session, "could not delete auto-release snapshot", "snapshot", sn.ID.String(), "error", err.Error())
			continue
		}
		deleted = append(deleted, sn.ID)
		c.event(ctx, LevelInfo, 0, session, "auto-release snapshot deleted", "snapshot", sn.ID.String(), "volume", sn.OriginalVolume)
	}
	if left == 0 && setID != uuid.Nil && c.opt.Catalog != nil {
		_ = c.opt.Catalog.DeleteDocuments(setID)
	}
	return deleted
}
