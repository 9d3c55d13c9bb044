package freeze

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/vsserr"
)

// beforeFreezeHook lets this package's tests look at the guard between a
// record's write and its FIFREEZE (the rule "record first" is otherwise
// unobservable) and make a freeze fail half-way. Nil outside tests.
var beforeFreezeHook func(recordPath string, index int) error

// Exit codes of GuardMain.
const (
	exitOK        = 0 // every filesystem it froze is thawed
	exitThawError = 1 // a FITHAW failed; its record is left for Recover
	exitUsage     = 2 // bad arguments or protocol version
)

// GuardMain runs the guard process (see the package comment) and returns
// its exit code. args are the arguments after GuardArg, as Start passes
// them. It talks only over fd 3 (requests) and fd 4 (events) and writes
// only its records under the run dir.
func GuardMain(args []string) int {
	// A write to lvssd's closed pipe must be an error we can ignore, not a
	// death before the thaw.
	signal.Ignore(syscall.SIGPIPE)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM)

	in, out := inheritedFile(3, "lvss-freeze-control"), inheritedFile(4, "lvss-freeze-events")
	if in == nil || out == nil {
		return exitUsage
	}
	g := &guardProc{out: out, ended: make(chan struct{}), pid: os.Getpid()}

	fl := flag.NewFlagSet(GuardArg, flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	version := fl.Int("v", 0, "protocol version")
	runDir := fl.String("run-dir", "", "lvssd's run dir (records go to its freeze/ subdirectory)")
	hold := fl.Duration("hold", DefaultHold, "hold window")
	parent := fl.Int("parent", 0, "pid of lvssd, watched through a pidfd")
	usage := func(format string, a ...any) int {
		g.send(event{Ev: evEnded, Why: whyProtocol, Code: uint32(vsserr.InvalidArg), Msg: fmt.Sprintf(format, a...)})
		return exitUsage
	}
	if err := fl.Parse(args); err != nil {
		return usage("guard arguments: %v", err)
	}
	switch {
	case *version != ProtocolVersion:
		return usage("guard speaks protocol %d, was asked for %d", ProtocolVersion, *version)
	case !filepath.IsAbs(*runDir):
		return usage("-run-dir %q is not absolute", *runDir)
	case *hold <= 0:
		return usage("-hold %s is not positive", *hold)
	}
	g.runDir, g.dir, g.hold = *runDir, recordDir(*runDir), *hold
	if err := os.MkdirAll(g.dir, 0o700); err != nil {
		return usage("record directory: %v", err)
	}

	go func() {
		s := <-sigs
		name := s.String()
		if n, ok := s.(syscall.Signal); ok {
			name = unix.SignalName(n)
		}
		g.end(whySignal + " " + name)
	}()
	if *parent > 0 {
		go g.watchParent(*parent)
	}
	g.send(event{Ev: evReady, Pid: g.pid})
	go g.readControl(in)

	<-g.ended
	ev, thawFailed := g.endedEvent()
	g.send(ev)
	if thawFailed {
		return exitThawError
	}
	return exitOK
}

// inheritedFile wraps a descriptor Start passed, or returns nil if it is
// not open (the binary was run as a guard by hand).
func inheritedFile(fd int, name string) *os.File {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), name)
}

// guardProc is the guard's state. mu serialises every FIFREEZE with the
// thaw: end() cannot run while a FIFREEZE is in flight, and once end() has
// run no FIFREEZE can start. That one rule is what makes every way of
// ending (request, timer, signal, lost parent, failure) safe to race.
type guardProc struct {
	pid         int
	runDir, dir string
	hold        time.Duration

	outMu sync.Mutex
	out   *os.File

	mu          sync.Mutex
	ending      bool
	why         string
	failure     *event // code, message, busy of a failed freeze
	freezeAsked bool
	frozenAll   bool
	targets     []*target // registered after the flush; frozen ones in order
	timer       *time.Timer
	heldFrom    time.Time
	heldTo      time.Time
	resolveD    time.Duration
	syncD       time.Duration
	freezeD     time.Duration
	thawD       time.Duration
	ended       chan struct{}
}

// target is one distinct filesystem (one superblock).
type target struct {
	dev, mnt, fstype string
	mntID            uint64
	fd               int
	paths            []string
	record           string // path of its record while one exists
	frozen           bool
	gone             bool // FITHAW said it was not frozen any more
	thawErr          error
	sync             time.Duration
	syncErr          error
	freeze, thaw     time.Duration
}

func (g *guardProc) send(e event) {
	e.V = ProtocolVersion
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	g.outMu.Lock()
	defer g.outMu.Unlock()
	// An error means lvssd is gone; the end of the control pipe tells the
	// reader that too, and the thaw does not depend on this write.
	_, _ = g.out.Write(append(b, '\n'))
}

// readControl serves requests until lvssd closes the pipe or dies; either
// way the hold ends.
func (g *guardProc) readControl(in io.Reader) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var r request
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.V != ProtocolVersion {
			g.fail(whyProtocol, vsserr.InvalidArg, false, "unreadable request (protocol %d): %.200q", ProtocolVersion, sc.Bytes())
			return
		}
		switch r.Op {
		case opFreeze:
			g.mu.Lock()
			again := g.freezeAsked
			g.freezeAsked = true
			g.mu.Unlock()
			if again {
				g.fail(whyProtocol, vsserr.BadState, false, "a guard holds once: second freeze request")
				return
			}
			go g.freeze(r.Paths)
		case opThaw:
			g.end(whyThaw)
		default:
			g.fail(whyProtocol, vsserr.InvalidArg, false, "unknown request %q", r.Op)
			return
		}
	}
	g.end(whyParent)
}

// watchParent ends the hold when lvssd exits. The control pipe's EOF
// already says so; the pidfd covers a write end that leaked into another
// process (a fork without exec), which would keep the pipe open.
func (g *guardProc) watchParent(pid int) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			g.end(whyParent)
		}
		return // no pidfd (kernel < 5.3): the pipe alone tells
	}
	defer unix.Close(pfd)
	// The pid may have been reused before pidfd_open: if lvssd is no
	// longer our parent, it is gone.
	if os.Getppid() != pid {
		g.end(whyParent)
		return
	}
	fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		if n > 0 {
			g.end(whyParent)
			return
		}
	}
}

// fail records why the hold failed (first reason wins) and ends it.
func (g *guardProc) fail(why string, code vsserr.HRESULT, busy bool, format string, a ...any) {
	g.mu.Lock()
	if !g.ending && g.failure == nil {
		g.failure = &event{Code: uint32(code), Msg: fmt.Sprintf(format, a...), Busy: busy}
	}
	g.mu.Unlock()
	g.end(why)
}

func (g *guardProc) failWith(err error) {
	var ve *vsserr.Error
	if errors.As(err, &ve) {
		g.fail(whyFailed, ve.Code, false, "%s", vsserr.Message(err))
		return
	}
	g.fail(whyFailed, vsserr.Unexpected, false, "%v", err)
}

// freeze flushes, then freezes each filesystem in the order the paths
// first name them, writing its record before its FIFREEZE.
func (g *guardProc) freeze(paths []string) {
	t0 := time.Now()
	targets, err := g.resolve(paths)
	resolveD := time.Since(t0)
	if err != nil {
		g.mu.Lock()
		g.resolveD = resolveD
		g.mu.Unlock()
		g.failWith(err)
		return
	}

	// syncfs first, in parallel: the flush is almost all of a freeze's
	// cost, and done here it happens before the hold starts, while
	// applications can still write.
	t0 = time.Now()
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			t.syncErr = unix.Syncfs(t.fd)
			t.sync = time.Since(s)
		}()
	}
	wg.Wait()
	syncD := time.Since(t0)

	g.mu.Lock()
	g.resolveD, g.syncD = resolveD, syncD
	if g.ending {
		// Aborted during the flush: nothing is frozen.
		g.mu.Unlock()
		for _, t := range targets {
			unix.Close(t.fd)
		}
		return
	}
	g.targets = targets // from here on end() owns closing them
	g.mu.Unlock()
	for _, t := range targets {
		if t.syncErr != nil {
			g.fail(whyFailed, vsserr.Unexpected, false, "syncfs %s (%s): %v", t.mnt, t.dev, t.syncErr)
			return
		}
	}

	for i, t := range targets {
		if !g.freezeOne(i, t) {
			return
		}
	}

	g.mu.Lock()
	if g.ending {
		g.mu.Unlock()
		return
	}
	g.frozenAll = true
	if !g.heldFrom.IsZero() {
		g.freezeD = time.Since(g.heldFrom)
	}
	ev := event{Ev: evFrozen, ResolveNs: int64(g.resolveD), SyncNs: int64(g.syncD), FreezeNs: int64(g.freezeD), FS: g.reports()}
	g.mu.Unlock()
	g.send(ev)
}

// freezeOne records, then freezes one filesystem; false means the hold is
// over (ended meanwhile, or this step failed and ended it).
func (g *guardProc) freezeOne(i int, t *target) bool {
	g.mu.Lock()
	if g.ending {
		g.mu.Unlock()
		return false
	}
	path, err := writeRecord(g.dir, record{
		V: ProtocolVersion, Pid: g.pid, Dev: t.dev, Mnt: t.mnt, MntID: t.mntID, Type: t.fstype, Paths: t.paths, At: time.Now(),
	})
	if err != nil {
		g.mu.Unlock()
		g.fail(whyFailed, vsserr.Unexpected, false, "record %s before freezing it: %v", t.mnt, err)
		return false
	}
	t.record = path
	if beforeFreezeHook != nil {
		if err := beforeFreezeHook(path, i); err != nil {
			os.Remove(path)
			t.record = ""
			g.mu.Unlock()
			g.fail(whyFailed, vsserr.Unexpected, false, "freeze %s: %v", t.mnt, err)
			return false
		}
	}
	start := time.Now()
	if g.heldFrom.IsZero() {
		// The hold window counts from the first FIFREEZE: from then on
		// some application may be blocked.
		g.heldFrom = start
		g.timer = time.AfterFunc(g.hold, func() { g.end(whyExpired) })
	}
	err = fifreeze(t.fd)
	t.freeze = time.Since(start)
	if err != nil {
		// Not frozen by us: its record must not make Recover thaw it.
		os.Remove(path)
		t.record = ""
		g.mu.Unlock()
		code, busy := vsserr.Unexpected, false
		switch {
		case errors.Is(err, unix.EBUSY):
			code, busy = vsserr.VolumeInUse, true
		case errors.Is(err, unix.EOPNOTSUPP):
			code = vsserr.VolumeNotSupported
		case errors.Is(err, unix.EPERM):
			code = vsserr.AccessDenied
		}
		msg := fmt.Sprintf("freeze %s (%s, %s): %s", t.mnt, t.fstype, t.dev, errnoText("FIFREEZE", err))
		if busy {
			msg += "; left frozen for its owner to thaw"
		}
		g.fail(whyFailed, code, busy, "%s", msg)
		return false
	}
	t.frozen = true
	g.mu.Unlock()
	return true
}

// end thaws everything this guard froze, newest first, removes the records
// of what is thawed, and closes the descriptors. The first caller's reason
// wins; later calls return at once.
func (g *guardProc) end(why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ending {
		return
	}
	g.ending = true
	if why == whyThaw && g.freezeAsked && !g.frozenAll {
		why = whyAborted
	}
	g.why = why
	if g.timer != nil {
		g.timer.Stop()
	}
	start := time.Now()
	for i := len(g.targets) - 1; i >= 0; i-- {
		t := g.targets[i]
		if t.frozen {
			s := time.Now()
			err := fithaw(t.fd)
			t.thaw = time.Since(s)
			switch {
			case err == nil:
				t.frozen = false
			case errors.Is(err, unix.EINVAL):
				// Someone thawed it under us; it is not frozen now.
				t.frozen, t.gone = false, true
			default:
				t.thawErr = err
			}
			if t.thawErr == nil && t.record != "" {
				os.Remove(t.record)
				t.record = ""
			}
		}
		unix.Close(t.fd)
	}
	if !g.heldFrom.IsZero() {
		g.heldTo = time.Now()
		g.thawD = g.heldTo.Sub(start)
	}
	close(g.ended)
}

func (g *guardProc) reports() []fsReport {
	out := make([]fsReport, 0, len(g.targets))
	for _, t := range g.targets {
		r := fsReport{
			Dev: t.dev, Mnt: t.mnt, Type: t.fstype, Paths: t.paths,
			SyncNs: int64(t.sync), FreezeNs: int64(t.freeze), ThawNs: int64(t.thaw),
			Frozen: t.frozen || t.thaw > 0, Gone: t.gone,
		}
		if t.thawErr != nil {
			r.ThawErr = errnoText("FITHAW", t.thawErr)
		}
		out = append(out, r)
	}
	return out
}

func (g *guardProc) endedEvent() (event, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ev := event{
		Ev: evEnded, Why: g.why,
		ResolveNs: int64(g.resolveD), SyncNs: int64(g.syncD), FreezeNs: int64(g.freezeD), ThawNs: int64(g.thawD),
		FS: g.reports(),
	}
	if !g.heldFrom.IsZero() {
		ev.HeldNs = int64(g.heldTo.Sub(g.heldFrom))
	}
	if g.failure != nil {
		ev.Code, ev.Msg, ev.Busy = g.failure.Code, g.failure.Msg, g.failure.Busy
	}
	failed := false
	for _, t := range g.targets {
		if t.thawErr != nil {
			failed = true
		}
	}
	return ev, failed
}

// resolve maps paths to distinct filesystems, keyed by the superblock's
// major:minor from mountinfo (st_dev is no key: btrfs gives each subvolume
// its own), with one open descriptor each for syncfs and the ioctls.
func (g *guardProc) resolve(paths []string) ([]*target, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, vsserr.Wrap(vsserr.Unexpected, err, "read mountinfo")
	}
	run, err := mountOfPath(ms, g.runDir)
	if err != nil {
		return nil, vsserr.Wrap(vsserr.Unexpected, err, "find the filesystem of the run dir %s", g.runDir)
	}
	var out []*target
	byDev := map[string]*target{}
	fail := func(err error) ([]*target, error) {
		for _, t := range out {
			unix.Close(t.fd)
		}
		return nil, err
	}
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return fail(vsserr.New(vsserr.InvalidArg, "%q is not an absolute path", p))
		}
		// Look before opening: opening a device node can have effects
		// (a tape rewinds on close).
		var st unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_STATX_SYNC_AS_STAT, unix.STATX_TYPE, &st); err != nil {
			code := vsserr.Unexpected
			if errors.Is(err, unix.ENOENT) {
				code = vsserr.ObjectNotFound
			}
			return fail(vsserr.Wrap(code, err, "%s", p))
		}
		if t := st.Mode & unix.S_IFMT; t != unix.S_IFDIR && t != unix.S_IFREG {
			return fail(vsserr.New(vsserr.InvalidArg, "%s is neither a directory nor a regular file", p))
		}
		fd, err := openNoWrite(p)
		if err != nil {
			return fail(vsserr.Wrap(vsserr.Unexpected, err, "open %s", p))
		}
		fm, err := statFD(fd)
		if err == nil && !fm.regOrDr {
			err = errors.New("changed into something that is neither a directory nor a regular file")
		}
		var m mountinfo.Mount
		if err == nil {
			m, err = mountOf(ms, fm, p)
		}
		if err != nil {
			unix.Close(fd)
			return fail(vsserr.Wrap(vsserr.Unexpected, err, "%s", p))
		}
		dev := m.Device()
		if dev == run.Device() {
			unix.Close(fd)
			return fail(vsserr.New(vsserr.InvalidArg,
				"%s is on %s (%s), which also holds the run dir %s: the guard writes its records there during the hold, and a write to a frozen filesystem never returns; put the run dir on a tmpfs",
				p, m.MountPoint, dev, g.runDir))
		}
		if t := byDev[dev]; t != nil {
			t.paths = append(t.paths, p)
			unix.Close(fd)
			continue
		}
		t := &target{dev: dev, mnt: m.MountPoint, fstype: m.FSType, mntID: uint64(m.ID), fd: fd, paths: []string{p}}
		byDev[dev] = t
		out = append(out, t)
	}
	return out, nil
}
