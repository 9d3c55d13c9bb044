package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/failpoint"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// baseEvent fills the session facts every event carries. Caller holds s.mu
// or is the only goroutine touching the fields read.
func (s *Session) baseEvent(t EventType, timeout time.Duration) *Event {
	ev := &Event{Type: t, SessionID: s.id, SnapshotSetID: s.setID, Context: s.context, Timeout: timeout}
	if s.bcd != nil {
		ev.BackupType, ev.SelectComponents = s.bcd.BackupType, s.bcd.SelectComponents
		ev.BootableSystemState, ev.PartialFileSupport = s.bcd.BootableSystemStateBackup, s.bcd.PartialFileSupport
		ev.RestoreType = s.bcd.RestoreType
	}
	for _, v := range s.volumes {
		ev.Volumes = append(ev.Volumes, v.volume)
	}
	return ev
}

// fanOut sends one event to writers in parallel and records the outcome;
// it returns the writers that answered with success. phase says whether
// (and how) the writer may edit its BCD components; the BCD is sent with
// the event when phase is not PhaseNone. decorate may adjust each
// writer's event (placements).
func (s *Session) fanOut(ctx context.Context, ws []*sessionWriter, t EventType, timeout time.Duration, phase document.Phase, decorate func(*sessionWriter, *Event)) []*sessionWriter {
	var wg sync.WaitGroup
	ok := make([]bool, len(ws))
	for i, sw := range ws {
		s.mu.Lock()
		ev := s.baseEvent(t, timeout)
		if phase != PhaseNone {
			view := s.writerView(sw)
			x, err := view.Marshal()
			if err != nil {
				s.mu.Unlock()
				sw.fail(t, vsserr.WriterErrorNonRetryable, vsserr.Unexpected, "lvssd could not render the writer's components: "+err.Error())
				continue
			}
			ev.BCD = x
		}
		s.mu.Unlock()
		if decorate != nil {
			decorate(sw, ev)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok[i] = s.deliver(ctx, sw, ev, phase)
		}()
	}
	wg.Wait()
	var out []*sessionWriter
	for i, sw := range ws {
		if ok[i] {
			out = append(out, sw)
		}
	}
	return out
}

// eventFailpoints are each event's failpoints, writer.EVENT before it is
// sent to a writer and writer.EVENT.done after the answer: an error at
// either is that writer's failure to answer; hang lasts as long as the
// event's context (a Cancel, a release, the creation's end).
var eventFailpoints = func() (fp [len(eventNames)][2]string) {
	for i, n := range eventNames {
		fp[i] = [2]string{"writer." + n, "writer." + n + ".done"}
	}
	return fp
}()

// hitEvent is the event's failpoint before (0) or after (1) its call to
// one writer: writer.EVENT (whichever writer gets there first), then
// writer.EVENT@NAME (that writer: which one of a parallel fan-out comes
// first is chance, and a test acting on a writer must know which). A hang
// there lasts at most the event's timeout, as a writer that does not
// answer would (after the commit the event's context never ends), and is
// then that writer's VSS_E_WRITERERROR_TIMEOUT.
func hitEvent(ctx context.Context, sw *sessionWriter, ev *Event, after int) error {
	if !failpoint.Enabled {
		return nil
	}
	c, cancel := context.WithTimeout(ctx, ev.Timeout)
	defer cancel()
	name := eventFailpoints[ev.Type][after]
	err := failpoint.HitCtx(c, name)
	if err == nil {
		name += "@" + sw.w.Identity.Name
		err = failpoint.HitCtx(c, name)
	}
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return vsserr.Wrap(vsserr.WriterErrorTimeout, err, "failpoint %s", name)
	}
	return err
}

// PhaseNone marks events that carry no BCD.
const PhaseNone document.Phase = -1

// deliver sends one event and applies the result to the writer's status
// (and, in editable phases, its BCD edits). It returns whether the writer
// succeeded.
func (s *Session) deliver(ctx context.Context, sw *sessionWriter, ev *Event, phase document.Phase) bool {
	err := hitEvent(ctx, sw, ev, 0)
	var res Result
	if err == nil {
		res, err = sw.w.call(ctx, ev)
	}
	if err == nil {
		err = hitEvent(ctx, sw, ev, 1)
	}
	if err != nil {
		if cancelled(err) {
			// The requester cancelled the operation; the writer did
			// nothing wrong and keeps its state (D17).
			return false
		}
		sw.fail(ev.Type, vsserr.Code(err), 0, vsserr.Message(err))
		s.c.event(ctx, LevelWarn, vsserr.Code(err), s.id, "writer did not answer", "writer", sw.w.Identity.Name, "event", ev.Type.String())
		return false
	}
	if phase != PhaseNone && phase != document.PhaseReadOnly && len(res.BCD) > 0 {
		if err := s.applyEdits(phase, sw, res.BCD); err != nil {
			sw.fail(ev.Type, vsserr.WriterErrorNonRetryable, vsserr.Code(err), "lvssd refused the writer's document edits: "+vsserr.Message(err))
			if vsserr.Code(err) == vsserr.AccessDenied {
				s.c.event(ctx, LevelWarn, vsserr.AccessDenied, s.id, "writer tried to change another writer's components", "writer", sw.w.Identity.Name,
					"instance", sw.w.InstanceID.String(), "uid", fmt.Sprint(sw.w.Peer.UID), "pid", fmt.Sprint(sw.w.Peer.PID), "event", ev.Type.String(),
					"reason", vsserr.Message(err))
			}
			return false
		}
	}
	if res.Failure.Failed() {
		sw.fail(ev.Type, res.Failure, res.ApplicationHRESULT, res.ApplicationMessage)
		s.c.event(ctx, LevelWarn, res.Failure, s.id, "writer failed "+ev.Type.String(), "writer", sw.w.Identity.Name,
			"application_hresult", res.ApplicationHRESULT.Hex(), "message", res.ApplicationMessage)
		return false
	}
	return true
}

// sendAbort sends Abort to each writer taking part that has not had it in
// this session. A writer that was aborted only because of someone else's
// failure returns to STABLE (vss-reference §3.3); a failed writer keeps its failure.
func (s *Session) sendAbort(ctx context.Context, ws []*sessionWriter) {
	var wg sync.WaitGroup
	for _, sw := range ws {
		if !sw.toAborted() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.abortOne(ctx, sw)
		}()
	}
	wg.Wait()
}

// abortOne sends Abort to a writer already moved to phAborted.
func (s *Session) abortOne(ctx context.Context, sw *sessionWriter) {
	s.mu.Lock()
	ev := s.baseEvent(EvAbort, s.c.opt.Timeouts.Abort)
	s.mu.Unlock()
	err := hitEvent(ctx, sw, ev, 0)
	if err == nil {
		_, err = sw.w.call(ctx, ev)
	}
	if err == nil {
		err = hitEvent(ctx, sw, ev, 1)
	}
	if err != nil {
		s.c.event(ctx, LevelWarn, vsserr.Code(err), s.id, "writer did not answer Abort", "writer", sw.w.Identity.Name, "error", err.Error())
	}
	sw.setState(vss.WSStable)
}
