package coordinator

import (
	"context"
	"sync"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// WriterStatus is one writer's status in a session (GetWriterStatusEx).
type WriterStatus struct {
	InstanceID   uuid.UUID
	ClassID      uuid.UUID
	Name         string
	InstanceName string
	State        vss.WriterState
	Failure      vsserr.HRESULT
	AppHRESULT   vsserr.HRESULT
	AppMessage   string
}

// phase is how far a writer has come in its session: what it may be
// holding, and what it must still be told.
type phase int

const (
	phIdle       phase = iota // gathered, not taking part
	phTakingPart              // from PrepareForBackup on (D14): gets BackupShutdown
	phPrepared                // PrepareForSnapshot succeeded: waits for Freeze, may hold locks
	phFrozen                  // Freeze succeeded: its Freeze→Thaw window runs
	phThawing                 // Thaw sent, not yet answered
	phThawed                  // thawed inside its window: its snapshots are application-consistent
	phDone                    // PostSnapshot delivered: the creation is over for it, no Abort any more
	phAborted                 // got Abort: its own veto, its window, or the end of the creation
)

var phaseNames = [...]string{"idle", "taking part", "prepared", "frozen", "thawing", "thawed", "done", "aborted"}

func (p phase) String() string { return phaseNames[p] }

// sessionWriter is a writer as one session sees it: the VSS writer state
// the requester reads (st) and the phase lvss acts on.
type sessionWriter struct {
	w   *WriterHandle
	wmd *document.WriterMetadata
	obs Observer // told of the writer's failure
	// restoreOf is the backed-up writer instance (a BCD entry) it restores
	// in a restore session; GUID_NULL when none. Guarded by the session's mu.
	restoreOf uuid.UUID

	mu    sync.Mutex
	st    WriterStatus
	phase phase
	// wmdXML is wmd rendered once: a session hands it out (the requester's
	// GetWriterMetadata, the catalog's record of the set, twice) and wmd
	// does not change after the gather.
	wmdXML []byte
}

// wmdBytes renders the writer's metadata, once per session.
func (sw *sessionWriter) wmdBytes() ([]byte, error) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.wmdXML == nil {
		x, err := sw.wmd.Marshal()
		if err != nil {
			return nil, err
		}
		sw.wmdXML = x
	}
	return sw.wmdXML, nil
}

func (sw *sessionWriter) status() WriterStatus { sw.mu.Lock(); defer sw.mu.Unlock(); return sw.st }

func (sw *sessionWriter) setState(s vss.WriterState) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if !sw.st.State.Failed() { // a failed writer stays failed for the session (vss-reference §3.3)
		sw.st.State = s
	}
}

// fail records a writer failure at an event, unless it already failed.
func (sw *sessionWriter) fail(ev EventType, code, appHR vsserr.HRESULT, msg string) {
	sw.mu.Lock()
	if sw.st.State.Failed() {
		sw.mu.Unlock()
		return
	}
	sw.st.State = ev.failedState()
	sw.st.Failure, sw.st.AppHRESULT, sw.st.AppMessage = code, appHR, msg
	sw.mu.Unlock()
	if sw.obs != nil {
		sw.obs.WriterFailed(sw.w.Identity.Name, ev.String(), code)
	}
}

func (sw *sessionWriter) failed() bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.st.State.Failed()
}

func (sw *sessionWriter) is(p phase) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.phase == p
}

// advance moves the writer from one phase to the next, if it is in from.
func (sw *sessionWriter) advance(from, to phase) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.phase != from {
		return false
	}
	sw.phase = to
	return true
}

// toAborted moves a writer taking part to phAborted and reports whether
// it must be sent Abort now (once per session).
func (sw *sessionWriter) toAborted() bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.phase == phIdle || sw.phase == phAborted {
		return false
	}
	sw.phase = phAborted
	return true
}

// takesPart: from PrepareForBackup on.
func (sw *sessionWriter) takesPart() bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.phase != phIdle
}

// consistent: it froze and thawed inside its window. A later failure
// (PostSnapshot) does not spoil the image.
func (sw *sessionWriter) consistent() bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.phase == phThawed || sw.phase == phDone
}

// GatherWriterMetadata sends Identify to every writer not filtered out. In
// a writerless context no event is sent (writerless contexts send writers
// no events, vss-reference §1.4); the metadata of each writer's last Identify is
// returned instead.
func (s *Session) GatherWriterMetadata() (*Async, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, err := s.admit(MGatherWriterMetadata)
	if err != nil {
		return nil, err
	}
	var targets []*WriterHandle
	for _, w := range s.c.subscribed() {
		if !s.excluded(w) {
			targets = append(targets, w)
		}
	}
	writers := s.context.Writers()
	return s.startAsync(MGatherWriterMetadata, from, func(ctx context.Context) error {
		got := make([]*sessionWriter, len(targets))
		missed := make([]*WriterStatus, len(targets))
		var wg sync.WaitGroup
		for i, w := range targets {
			// A writer inside another session's creation (prepared,
			// frozen, thawing) is not sent Identify: it may not answer
			// until it is thawed, and a missed Identify would end its
			// stream and spoil that creation. Its last metadata stands in,
			// as in writerless contexts.
			busy := writers && w.inCreation(s.id)
			if !writers || busy {
				w.mu.Lock()
				md := w.wmd
				w.mu.Unlock()
				if md != nil {
					got[i] = &sessionWriter{w: w, wmd: md.Clone(), obs: s.c.opt.Observer, st: s.initialStatus(w)}
					if busy {
						s.c.event(ctx, LevelInfo, 0, s.id, "writer is in another session's snapshot creation; its last metadata is used",
							"writer", w.Identity.Name)
					}
				} else if busy {
					st := s.initialStatus(w)
					st.State, st.Failure = vss.WSFailedAtIdentify, vsserr.WriterNotResponding
					st.AppMessage = "the writer is in another session's snapshot creation and has never identified"
					missed[i] = &st
				}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				md, err := s.c.identify(ctx, w, s.id)
				if err != nil {
					if cancelled(err) {
						return
					}
					// Writers failing Identify do not appear in the
					// metadata (vss-reference §2.1); their status says why (L30).
					st := s.initialStatus(w)
					st.State, st.Failure, st.AppMessage = vss.WSFailedAtIdentify, vsserr.Code(err), vsserr.Message(err)
					missed[i] = &st
					s.c.opt.Observer.WriterFailed(w.Identity.Name, EvIdentify.String(), st.Failure)
					s.c.event(ctx, LevelWarn, vsserr.Code(err), s.id, "writer failed Identify and is left out", "writer", w.Identity.Name, "error", err.Error())
					return
				}
				got[i] = &sessionWriter{w: w, wmd: md, obs: s.c.opt.Observer, st: s.initialStatus(w)}
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for i := range targets {
			if got[i] != nil {
				s.gathered = append(s.gathered, got[i])
			}
			if missed[i] != nil {
				s.unidentified = append(s.unidentified, *missed[i])
			}
		}
		return nil
	}), nil
}

// inCreation reports whether the writer takes part, in a session other
// than session, in a creation between PrepareForSnapshot and Thaw's answer.
func (w *WriterHandle) inCreation(session uuid.UUID) bool {
	w.mu.Lock()
	last, sid := w.last, w.lastSID
	w.mu.Unlock()
	if last == nil || sid == session {
		return false
	}
	last.mu.Lock()
	defer last.mu.Unlock()
	switch last.phase {
	case phPrepared, phFrozen, phThawing:
		return true
	}
	return false
}

func (s *Session) initialStatus(w *WriterHandle) WriterStatus {
	return WriterStatus{InstanceID: w.InstanceID, ClassID: w.Identity.ClassID, Name: w.Identity.Name,
		InstanceName: w.Identity.InstanceName, State: vss.WSStable}
}

// WriterMetadata is one gathered WMD.
type WriterMetadata struct {
	InstanceID uuid.UUID
	XML        []byte
}

// GetWriterMetadata returns the gathered WMDs in index order.
func (s *Session) GetWriterMetadata() ([]WriterMetadata, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.admit(MGetWriterMetadata); err != nil {
		return nil, err
	}
	if s.called[MFreeWriterMetadata] {
		return nil, nil
	}
	out := make([]WriterMetadata, 0, len(s.gathered))
	for _, sw := range s.gathered {
		x, err := sw.wmdBytes()
		if err != nil {
			return nil, s.c.Unexpected(context.Background(), s.id, "marshal writer metadata", err)
		}
		out = append(out, WriterMetadata{InstanceID: sw.w.InstanceID, XML: x})
	}
	return out, nil
}

// FreeWriterMetadata drops the gathered WMDs for good.
func (s *Session) FreeWriterMetadata() error {
	return s.do(MFreeWriterMetadata, func() error { return nil })
}

func (s *Session) gatheredWriter(instance uuid.UUID) *sessionWriter {
	for _, sw := range s.gathered {
		if sw.w.InstanceID == instance {
			return sw
		}
	}
	return nil
}

// participants are the writers taking part (D14). Caller holds s.mu.
func (s *Session) computeParticipants() []*sessionWriter {
	var out []*sessionWriter
	for _, sw := range s.gathered {
		take := true
		if s.bcd.SelectComponents {
			wc := s.bcd.Writer(sw.w.InstanceID)
			take = wc != nil && len(wc.Components) > 0
		}
		if take {
			out = append(out, sw)
		}
	}
	return out
}

// participantsLocked are the writers that took part. Caller holds s.mu.
func (s *Session) participantsLocked() []*sessionWriter {
	var out []*sessionWriter
	for _, sw := range s.gathered {
		if sw.takesPart() {
			out = append(out, sw)
		}
	}
	return out
}

// GatherWriterStatus captures the status of the gathered writers. The
// coordinator tracks writer state itself, so no event is sent.
func (s *Session) GatherWriterStatus() (*Async, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, err := s.admit(MGatherWriterStatus)
	if err != nil {
		return nil, err
	}
	return s.startAsync(MGatherWriterStatus, from, func(context.Context) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.statusList = s.statusList[:0]
		for _, sw := range s.gathered {
			s.statusList = append(s.statusList, sw.status())
		}
		s.statusList = append(s.statusList, s.unidentified...)
		return nil
	}), nil
}

// GetWriterStatus returns the status captured by the last GatherWriterStatus.
func (s *Session) GetWriterStatus() ([]WriterStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.admit(MGetWriterStatus); err != nil {
		return nil, err
	}
	return append([]WriterStatus(nil), s.statusList...), nil
}

// FreeWriterStatus drops the captured status.
func (s *Session) FreeWriterStatus() error {
	return s.do(MFreeWriterStatus, func() error {
		s.statusList = nil
		return nil
	})
}
