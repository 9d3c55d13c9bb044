//go:build !linux

package inplace

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
)

// errNotSupported: mount namespaces are Linux's.
var errNotSupported = errors.New("--in-place needs Linux mount namespaces")

func Check() error { return errNotSupported }

func Command(context.Context, []Mount, string, []string, []string) (*exec.Cmd, error) {
	return nil, errNotSupported
}

func Signal(*exec.Cmd, syscall.Signal) error { return errNotSupported }

// Direct runs argv as it is; without process groups' rules here.
func Direct(ctx context.Context, argv []string, env []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	return cmd
}

// MaybeRunChild does nothing: Command never starts the hidden mode here.
func MaybeRunChild() {}
