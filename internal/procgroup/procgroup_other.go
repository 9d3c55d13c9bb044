//go:build !linux

package procgroup

import "syscall"

// Supported is false: the runners refuse to start without process groups.
const Supported = false

func Attr() *syscall.SysProcAttr { return nil }

func Kill(int) {}

func OnTmpfs(string) bool { return false }
