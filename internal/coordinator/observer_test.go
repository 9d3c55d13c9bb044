package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// recObserver records every Observer call as a line ("WriterThawed a"),
// and the durations reported, by line.
type recObserver struct {
	mu    sync.Mutex
	calls []string
	took  map[string][]time.Duration
}

func (o *recObserver) add(d time.Duration, format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	call := fmt.Sprintf(format, args...)
	o.calls = append(o.calls, call)
	if o.took == nil {
		o.took = map[string][]time.Duration{}
	}
	o.took[call] = append(o.took[call], d)
}

func (o *recObserver) SessionOpened() { o.add(0, "SessionOpened") }
func (o *recObserver) SessionClosed() { o.add(0, "SessionClosed") }
func (o *recObserver) CreationLockRefused(first bool) {
	o.add(0, "CreationLockRefused first=%v", first)
}
func (o *recObserver) CreationLockWaited(d time.Duration, acquired bool) {
	o.add(d, "CreationLockWaited acquired=%v", acquired)
}
func (o *recObserver) SnapshotSetCreated(d time.Duration) { o.add(d, "SnapshotSetCreated") }
func (o *recObserver) SnapshotSetFailed(d time.Duration, f vsserr.HRESULT) {
	o.add(d, "SnapshotSetFailed %s", f.Name())
}
func (o *recObserver) WriterThawed(w string, d time.Duration) { o.add(d, "WriterThawed %s", w) }
func (o *recObserver) FilesystemsHeld(d time.Duration)        { o.add(d, "FilesystemsHeld") }
func (o *recObserver) WriterFailed(w, ev string, f vsserr.HRESULT) {
	o.add(0, "WriterFailed %s %s %s", w, ev, f.Name())
}
func (o *recObserver) WriterSubscribed(w string)   { o.add(0, "WriterSubscribed %s", w) }
func (o *recObserver) WriterUnsubscribed(w string) { o.add(0, "WriterUnsubscribed %s", w) }
func (o *recObserver) EventDropped(l string)       { o.add(0, "EventDropped %s", l) }

// count is how many calls were exactly call.
func (o *recObserver) count(call string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.calls {
		if c == call {
			n++
		}
	}
	return n
}

// durations are the durations reported with call.
func (o *recObserver) durations(call string) []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.took[call])
}

// with returns the calls that start with prefix.
func (o *recObserver) with(prefix string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, c := range o.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func observed(t *testing.T) (*recObserver, func(*Options)) {
	o := &recObserver{}
	return o, func(opt *Options) { opt.Observer = o }
}

// A backup, as the Observer sees it: the session, the writers'
// subscriptions, one window per writer that froze, nested as the levels
// are (front-end frozen first and thawed last), the filesystem hold, the
// set created; and the session's end.
func TestObserverSeesABackup(t *testing.T) {
	o, opt := observed(t)
	fe := newFreezeEnv(t, opt)
	fe.writer("front", vss.LevelFrontEnd, 0)
	fe.writer("back", vss.LevelBackEnd, 0)
	s := fe.session(t)
	must(t, fe.wait(s.DoSnapshotSet()))

	for call, n := range map[string]int{
		"SessionOpened": 1, "WriterSubscribed front": 1, "WriterSubscribed back": 1,
		"WriterThawed front": 1, "WriterThawed back": 1, "FilesystemsHeld": 1, "SnapshotSetCreated": 1,
		"SessionClosed": 0,
	} {
		if got := o.count(call); got != n {
			t.Errorf("%s: %d calls, want %d; calls: %v", call, got, n, o.calls)
		}
	}
	if f := o.with("WriterFailed"); len(f) != 0 {
		t.Errorf("failures reported for a clean backup: %v", f)
	}
	front, back := o.durations("WriterThawed front")[0], o.durations("WriterThawed back")[0]
	if back <= 0 || front < back {
		t.Errorf("windows: front-end %v, back-end %v; the back-end's lies inside the front-end's", front, back)
	}
	if held := o.durations("FilesystemsHeld")[0]; held != time.Millisecond {
		t.Errorf("hold %v, want the guard's 1ms", held)
	}
	if took := o.durations("SnapshotSetCreated")[0]; took < front {
		t.Errorf("DoSnapshotSet took %v, less than the front-end window %v inside it", took, front)
	}
	s.Release(context.Background())
	s.Release(context.Background())
	if got := o.count("SessionClosed"); got != 1 {
		t.Errorf("SessionClosed %d times after two Releases, want 1", got)
	}
}

// Writer failures are reported with the event and the failure recorded,
// once per writer and session; a writer that vetoed has no window.
func TestObserverSeesWriterFailures(t *testing.T) {
	o, opt := observed(t)
	e := newEnv(t, opt)
	veto := e.writer("veto", vss.LevelFrontEnd, 0)
	e.writer("ok", vss.LevelFrontEnd, 0)
	veto.failAt(EvFreeze, vsserr.WriterErrorRetryable)
	veto.failAt(EvBackupShutdown, vsserr.WriterErrorNonRetryable) // a second failure is not recorded
	s, _ := e.toSnapped()
	s.Release(context.Background())

	if got := o.with("WriterFailed"); !slices.Equal(got, []string{"WriterFailed veto Freeze VSS_E_WRITERERROR_RETRYABLE"}) {
		t.Errorf("failures %v", got)
	}
	if o.count("WriterThawed veto") != 0 || o.count("WriterThawed ok") != 1 {
		t.Errorf("windows: %v", o.with("WriterThawed"))
	}
	// The set is created all the same (D9).
	if o.count("SnapshotSetCreated") != 1 {
		t.Errorf("calls: %v", o.calls)
	}

	// Identify: in a session, and at subscription.
	veto.failAt(EvIdentify, vsserr.WriterErrorRetryable)
	s2 := e.toMeta(vss.CtxBackup, true)
	s2.Release(context.Background())
	if got := o.count("WriterFailed veto Identify VSS_E_WRITERERROR_RETRYABLE"); got != 1 {
		t.Errorf("Identify failure in a session reported %d times: %v", got, o.with("WriterFailed"))
	}
	e.c.IdentifyNew(context.Background(), veto.h) // what the server runs when a writer subscribes
	if got := o.count("WriterFailed veto Identify VSS_E_WRITERERROR_RETRYABLE"); got != 2 {
		t.Errorf("Identify failure at subscription not reported: %v", o.with("WriterFailed"))
	}
}

// A window that expires is a failure at Freeze with
// VSS_E_WRITERERROR_TIMEOUT, and no window is observed for it.
func TestObserverSeesWindowExpiry(t *testing.T) {
	o, opt := observed(t)
	e := newEnv(t, opt)
	w := e.writer("w", vss.LevelFrontEnd, 200*time.Millisecond)
	release := e.prov.HangAt("CommitSnapshots")
	go func() {
		defer release()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if w.count(EvAbort) > 0 {
				return
			}
		}
	}()
	e.toSnapped()
	if got := o.with("WriterFailed"); !slices.Equal(got, []string{"WriterFailed w Freeze VSS_E_WRITERERROR_TIMEOUT"}) {
		t.Errorf("failures %v", got)
	}
	if got := o.with("WriterThawed"); len(got) != 0 {
		t.Errorf("a window that expired was observed: %v", got)
	}
}

// A DoSnapshotSet that fails is reported with the error its requester
// sees: the provider's, VSS_S_ASYNC_CANCELLED for a Cancel, and
// VSS_E_BAD_STATE when the creation lease ended it.
func TestObserverSeesFailedSets(t *testing.T) {
	t.Run("provider", func(t *testing.T) {
		o, opt := observed(t)
		e := newEnv(t, opt)
		e.writer("w", vss.LevelFrontEnd, 0)
		e.prov.FailAt("CommitSnapshots", vsserr.New(vsserr.ProviderVeto, "injected"))
		s := e.toMeta(vss.CtxBackup, true)
		e.addAll(s)
		e.toSet(s)
		must(t, e.wait(s.PrepareForBackup()))
		if err := e.wait(s.DoSnapshotSet()); vsserr.Code(err) != vsserr.ProviderVeto {
			t.Fatalf("DoSnapshotSet: %v", err)
		}
		if got := o.with("SnapshotSet"); !slices.Equal(got, []string{"SnapshotSetFailed VSS_E_PROVIDER_VETO"}) {
			t.Errorf("sets: %v", got)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		o, opt := observed(t)
		e := newEnv(t, opt)
		w := e.writer("w", vss.LevelFrontEnd, 0)
		s := e.toMeta(vss.CtxBackup, true)
		e.addAll(s)
		e.toSet(s)
		must(t, e.wait(s.PrepareForBackup()))
		held, release := w.holdAt(EvFreeze)
		defer release()
		a, err := s.DoSnapshotSet()
		must(t, err)
		<-held
		if got, _ := a.Cancel(context.Background()); got != vsserr.OK {
			t.Fatalf("Cancel: %s", got)
		}
		if got := o.with("SnapshotSet"); !slices.Equal(got, []string{"SnapshotSetFailed VSS_S_ASYNC_CANCELLED"}) {
			t.Errorf("sets: %v", got)
		}
		// A requester's Cancel is not the writer's failure.
		if got := o.with("WriterFailed"); len(got) != 0 {
			t.Errorf("failures: %v", got)
		}
	})
	t.Run("lease", func(t *testing.T) {
		o, opt := observed(t)
		e := newEnv(t, func(o *Options) { opt(o); o.Timeouts.CreationLease = 300 * time.Millisecond })
		w := e.writer("w", vss.LevelFrontEnd, 0)
		s := e.toMeta(vss.CtxBackup, true)
		e.addAll(s)
		e.toSet(s)
		must(t, e.wait(s.PrepareForBackup()))
		held, release := w.holdAt(EvFreeze)
		defer release()
		a, err := s.DoSnapshotSet()
		must(t, err)
		<-held
		if st, _ := a.Wait(context.Background(), 20*time.Second); st != vsserr.BadState {
			t.Fatalf("DoSnapshotSet when the lease ended: %s", st)
		}
		if got := o.with("SnapshotSet"); !slices.Equal(got, []string{"SnapshotSetFailed VSS_E_BAD_STATE"}) {
			t.Errorf("sets: %v", got)
		}
	})
}

// StartSnapshotSet refused while another session creates: each refusal
// is reported, the first one starts the session's wait, and the wait
// ends when the session gets the lock or ends without it.
func TestObserverSeesCreationLockWaits(t *testing.T) {
	o, opt := observed(t)
	e := newEnv(t, opt)
	start := func() *Session {
		s := e.c.NewSession(Peer{})
		must(t, s.InitializeForBackup(""))
		must(t, s.SetContext(vss.CtxFileShareBackup))
		return s
	}
	holder, waiter, quitter := start(), start(), start()
	_, err := holder.StartSnapshotSet()
	must(t, err)
	for range 2 {
		if _, err := waiter.StartSnapshotSet(); vsserr.Code(err) != vsserr.SnapshotSetInProgress {
			t.Fatalf("StartSnapshotSet while another session creates: %v", err)
		}
	}
	if _, err := quitter.StartSnapshotSet(); vsserr.Code(err) != vsserr.SnapshotSetInProgress {
		t.Fatalf("StartSnapshotSet while another session creates: %v", err)
	}
	want := []string{"CreationLockRefused first=true", "CreationLockRefused first=false", "CreationLockRefused first=true"}
	if got := o.with("CreationLock"); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	quitter.Release(context.Background())
	must(t, holder.AbortBackup(context.Background()))
	_, err = waiter.StartSnapshotSet()
	must(t, err)
	want = append(want, "CreationLockWaited acquired=false", "CreationLockWaited acquired=true")
	if got := o.with("CreationLock"); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	// The holder never waited: its release reports no wait.
	holder.Release(context.Background())
	waiter.Release(context.Background())
	if got := o.with("CreationLock"); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	if o.count("SessionOpened") != 3 || o.count("SessionClosed") != 3 {
		t.Errorf("sessions: %v", o.calls)
	}
}

// A writer's subscription is reported when it subscribes and when it
// leaves, however it leaves.
func TestObserverSeesSubscriptions(t *testing.T) {
	o, opt := observed(t)
	e := newEnv(t, opt)
	w := e.writer("w", vss.LevelFrontEnd, 0)
	e.c.RemoveWriter(context.Background(), w.h)
	e.c.RemoveWriter(context.Background(), w.h)
	e.until("the writer to leave", func() bool { return o.count("WriterUnsubscribed w") > 0 })
	if got := o.with("Writer"); !slices.Equal(got, []string{"WriterSubscribed w", "WriterUnsubscribed w"}) {
		t.Errorf("calls %v", got)
	}
}
