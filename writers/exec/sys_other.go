//go:build !linux

package exec

import "syscall"

// The writer needs Linux process groups and statfs; these stubs keep the
// package building elsewhere, and New refuses to run.
const supported = false

func procAttr() *syscall.SysProcAttr { return nil }

func killGroup(int) {}

func onTmpfs(string) bool { return false }
