package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vsserr"
)

// session multiplexes calls over one Session stream. Every request gets a
// fresh id; one goroutine (read) receives responses and hands each to the
// caller registered under its id. That is what lets Wait block in one
// goroutine while Cancel is sent from another: the daemon answers them in
// whatever order they finish, and the id, not the order, says whose answer
// it is.
type session struct {
	stream v1.Requester_SessionClient
	cancel context.CancelFunc // tears the stream down once it is of no more use

	// sendMu serialises Send and CloseSend (a gRPC stream allows one sender
	// at a time) and makes "not closing yet, register, send" one step, so
	// that no request can slip in after the half-close.
	sendMu sync.Mutex

	mu       sync.Mutex
	nextID   uint64
	pending  map[uint64]chan *v1.SessionResponse
	closing  bool      // Release half-closed the stream
	released *Released // the daemon's final message, once received
	broken   error     // why the stream ended; set before done is closed

	releasedCh chan struct{} // closed when the Released message arrives
	done       chan struct{} // closed when read returns
}

// errReleased is what calls get after Release: the object is gone, which is
// a state error rather than a transport failure.
var errReleased = vsserr.New(vsserr.BadState, "the session has been released")

func newSession(stream v1.Requester_SessionClient, cancel context.CancelFunc) *session {
	s := &session{
		stream:     stream,
		cancel:     cancel,
		pending:    map[uint64]chan *v1.SessionResponse{},
		releasedCh: make(chan struct{}),
		done:       make(chan struct{}),
	}
	go s.read()
	return s
}

func (s *session) read() {
	defer close(s.done)
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			s.fail(err)
			return
		}
		if resp.GetId() == 0 {
			// Id 0 is reserved for the daemon's own message that the
			// session is over; anything else with id 0 is ignored rather
			// than guessed at.
			if r := resp.GetReleased(); r != nil {
				var d decoder
				rel := Released{
					Aborted:          r.GetAborted(),
					ShutdownWriters:  d.guids(r.GetShutdownWriters()),
					DeletedSnapshots: d.guids(r.GetDeletedSnapshots()),
				}
				s.mu.Lock()
				if s.released == nil {
					s.released = &rel
					close(s.releasedCh)
				}
				s.mu.Unlock()
			}
			continue
		}
		s.mu.Lock()
		ch, ok := s.pending[resp.GetId()]
		delete(s.pending, resp.GetId())
		s.mu.Unlock()
		if ok {
			ch <- resp // buffered: the reader never waits for a caller
		}
		// An unknown id is the late answer to a call whose caller gave up
		// (its context ended); dropping it is the point of forgetting it.
	}
}

// fail records why the stream ended. Callers blocked in call see done
// closed and return this error.
func (s *session) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.released != nil:
		err = errReleased
	case errors.Is(err, io.EOF):
		err = vsserr.Wrap(vsserr.Unexpected, err, "lvssd ended the session stream without releasing the session")
	default:
		err = fmt.Errorf("session stream broken: %w", wire.FromGRPC(err))
	}
	s.broken = err
	s.pending = map[uint64]chan *v1.SessionResponse{}
}

// call sends one request and waits for its response. It returns an error
// only when no response can be had (stream broken, session released,
// context ended); the HRESULT inside the response is the caller's to read.
// A call abandoned because ctx ended still runs on the daemon: a session
// call cannot be taken back, only its answer ignored.
func (s *session) call(ctx context.Context, method string, req *v1.SessionRequest) (*v1.SessionResponse, error) {
	ch := make(chan *v1.SessionResponse, 1)

	s.sendMu.Lock()
	s.mu.Lock()
	if s.broken != nil {
		err := s.broken
		s.mu.Unlock()
		s.sendMu.Unlock()
		return nil, err
	}
	if s.closing {
		s.mu.Unlock()
		s.sendMu.Unlock()
		return nil, errReleased
	}
	s.nextID++
	id := s.nextID
	req.Id = id
	s.pending[id] = ch
	s.mu.Unlock()
	err := s.stream.Send(req)
	s.sendMu.Unlock()

	if err != nil {
		// Send reports a broken stream as a bare io.EOF; the real cause
		// is what Recv got, so wait for the reader to record it.
		s.forget(id)
		select {
		case <-s.done:
			return nil, s.brokenErr()
		case <-ctx.Done():
			return nil, ctxErr(ctx, method)
		}
	}
	select {
	case r := <-ch:
		return r, nil
	case <-s.done:
		select {
		case r := <-ch: // answered just before the stream ended
			return r, nil
		default:
			return nil, s.brokenErr()
		}
	case <-ctx.Done():
		s.forget(id)
		return nil, ctxErr(ctx, method)
	}
}

func (s *session) forget(id uint64) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

func (s *session) brokenErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken
}

// release half-closes the stream, which is how a requester releases
// IVssBackupComponents, and waits for the daemon's Released message.
// Repeated calls wait for, and return, the same outcome.
func (s *session) release(ctx context.Context) (Released, error) {
	s.sendMu.Lock()
	s.mu.Lock()
	first := !s.closing && s.broken == nil
	s.closing = true
	s.mu.Unlock()
	if first {
		// An error here means the stream is already gone; the reader has
		// or will have the reason.
		_ = s.stream.CloseSend()
	}
	s.sendMu.Unlock()

	select {
	case <-s.releasedCh:
	case <-s.done:
	case <-ctx.Done():
		return Released{}, ctxErr(ctx, "Release")
	}
	s.mu.Lock()
	rel, broken := s.released, s.broken
	s.mu.Unlock()
	if rel == nil {
		return Released{}, broken
	}
	// The daemon ends the stream right after Released; not waiting for
	// that is fine, but the stream's resources must go.
	s.cancel()
	return *rel, nil
}

func (s *session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func ctxErr(ctx context.Context, method string) error {
	return vsserr.Wrap(vsserr.Unexpected, context.Cause(ctx), "%s: gave up waiting for lvssd", method)
}
