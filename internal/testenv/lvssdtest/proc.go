package lvssdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// StopTimeout is how long a process gets to exit after SIGTERM before it
// is killed. lvssd uses it to end its sessions (Abort, BackupShutdown to
// writers), which is quick unless something is already wrong; the bound
// is there so that a hung process fails its test instead of the suite's
// timeout.
const StopTimeout = 10 * time.Second

// Proc is a process a test started, with its output in a file.
type Proc struct {
	// Name is what the test called it (the output file is Name + ".out").
	Name string
	// Cmd is the started command. Do not call its Wait: the harness
	// waits for it (Wait, Done).
	Cmd *exec.Cmd
	// Out is the file holding its standard output and error.
	Out string

	done chan struct{}
	err  error
}

// Start starts cmd in its own process group (so that a signal meant for
// the test does not reach it, and it can be killed with what it started),
// with standard output and error appended to dir/name.out. Cleanup stops
// it if it still runs (SIGTERM, then SIGKILL to its group after
// StopTimeout) and shows its output if the test failed.
func Start(t testing.TB, dir, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	out := filepath.Join(dir, name+".out")
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			// Logged, not failed: the test is over, and what it checked
			// does not depend on how its helpers shut down.
			if err := p.terminate(); err != nil {
				t.Logf("%s: %v", name, err)
			}
		}
		f.Close()
		if t.Failed() {
			t.Logf("--- %s output (%s):\n%s", name, out, p.Output())
		}
	})
	return p
}

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit and returns what exec.Cmd.Wait
// returned (the same each time it is called).
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Output returns what the process printed so far.
func (p *Proc) Output() string {
	b, err := os.ReadFile(p.Out)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// terminate sends SIGTERM and waits StopTimeout for the exit, then kills
// the process group. It returns an error when SIGKILL was needed.
func (p *Proc) terminate() error {
	_ = p.Signal(syscall.SIGTERM)
	t := time.NewTimer(StopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	// The group, not only the process: whatever it started goes too.
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("did not exit within %s of SIGTERM; killed", StopTimeout)
}

// Stop ends the process with SIGTERM and fails t unless it exits cleanly
// (status 0) within StopTimeout.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	if err := p.terminate(); err != nil {
		t.Fatalf("%s: %v\n%s", p.Name, err, p.Output())
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", p.Name, err, p.Output())
	}
}
