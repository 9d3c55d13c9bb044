//go:build soak

package soak

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// host is one writer host process (the test binary run with hostArg).
// The harness's lvssdtest.Start is not used for it: hosts are restarted
// from the churn goroutine, where a t.Fatal is not allowed.
type host struct {
	idx   int
	cmd   *exec.Cmd
	out   *os.File
	done  chan struct{}
	err   error
	mu    sync.Mutex // serialises writes to stdin
	stdin io.WriteCloser
	away  map[int]bool // writers told to leave and not yet to join
}

// hostStopTimeout bounds a host's exit after SIGTERM or the end of its
// standard input: its writers end their streams, which is quick.
const hostStopTimeout = 30 * time.Second

func (s *soak) startHost(idx int) (*host, error) {
	out, err := os.OpenFile(filepath.Join(s.dir, fmt.Sprintf("writers-%d.out", idx)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0], hostArg, "--socket", s.socket, "--proc", strconv.Itoa(idx),
		"--count", strconv.Itoa(s.cfg.perProc), "--vols", strings.Join(s.vols, ","))
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that Ctrl-C reaches only the test, which
	// stops it; and it dies with the test process if that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		out.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start writer host %d: %w", idx, err)
	}
	h := &host{idx: idx, cmd: cmd, out: out, done: make(chan struct{}), stdin: stdin, away: map[int]bool{}}
	go func() {
		h.err = cmd.Wait()
		out.Close()
		close(h.done)
	}()
	return h, nil
}

func (h *host) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// send writes one command line; a host that has exited is not an error
// here (the churn restarts hosts on its own schedule).
func (h *host) send(line string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, _ = io.WriteString(h.stdin, line+"\n")
}

// stop ends the host with sig (SIGTERM: its writers unsubscribe; SIGKILL:
// a crash) and waits for it; after SIGTERM it must exit cleanly.
func (h *host) stop(sig syscall.Signal) error {
	_ = h.cmd.Process.Signal(sig)
	t := time.NewTimer(hostStopTimeout)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
		_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		<-h.done
		return fmt.Errorf("writer host %d did not exit within %s of %v; killed", h.idx, hostStopTimeout, sig)
	}
	if sig == syscall.SIGTERM && h.err != nil {
		return fmt.Errorf("writer host %d after SIGTERM: %v", h.idx, h.err)
	}
	return nil
}

// stopHosts is the hosts' cleanup: SIGTERM, then SIGKILL.
func (s *soak) stopHosts() {
	s.hostsMu.Lock()
	defer s.hostsMu.Unlock()
	for _, h := range s.hosts {
		if !h.exited() {
			if err := h.stop(syscall.SIGTERM); err != nil {
				s.t.Log(err)
			}
		}
	}
	if s.t.Failed() {
		for i := range s.hosts {
			b, _ := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("writers-%d.out", i)))
			if len(b) > 0 {
				s.t.Logf("--- writer host %d output:\n%s", i, b)
			}
		}
	}
}
