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

// MaybeRunChild does nothing: Command never starts the hidden mode here.
func MaybeRunChild() {}
