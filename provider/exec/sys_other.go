//go:build !linux

package exec

import (
	"errors"
	"syscall"
)

// The provider needs process groups, mountinfo and FIFREEZE: Linux only.
// These stubs keep the package building elsewhere; New refuses to run.
const supported = false

func procAttr() *syscall.SysProcAttr { return nil }

func killGroup(int) {}

func mountOf(string) (mount, error) { return mount{}, errors.New("exec provider: Linux only") }

func onTmpfs(string) bool { return false }
