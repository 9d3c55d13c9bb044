package lvssdtest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lvssTimeout bounds one run of the lvss binary, so that a hang fails its
// test rather than the whole suite at go test's timeout.
const lvssTimeout = time.Minute

// Result is what one run of the lvss binary did.
type Result struct {
	Code           int // exit status
	Stdout, Stderr string
}

// Lvss runs the built lvss binary with --socket socket and args, stdin as
// its standard input, and returns its exit status and output. It fails t
// if the binary cannot be run or does not end within a minute.
func Lvss(t testing.TB, socket, stdin string, args ...string) Result {
	t.Helper()
	return LvssAs(t, nil, socket, stdin, args...)
}

// LvssAs is Lvss run under cred (nil: as the test), for the access tests:
// a uid and groups of their own, which need no passwd entry. The binary's
// directory is readable by every uid; the socket's must be too
// (DaemonOptions.Reachable).
func LvssAs(t testing.TB, cred *syscall.Credential, socket, stdin string, args ...string) Result {
	t.Helper()
	bin := Bin(t, "lvss")
	ctx, cancel := context.WithTimeout(context.Background(), lvssTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--socket", socket}, args...)...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		// A working directory and HOME the uid may enter.
		cmd.Dir, cmd.Env = "/", append(os.Environ(), "HOME=/")
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("lvss %v: did not end within %s\n%s", args, lvssTimeout, errb.String())
	case errors.As(err, &ee):
		return Result{Code: ee.ExitCode(), Stdout: out.String(), Stderr: errb.String()}
	case err != nil:
		t.Fatalf("lvss %v: %v", args, err)
	}
	return Result{Stdout: out.String(), Stderr: errb.String()}
}
