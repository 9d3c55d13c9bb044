//go:build !linux

package exec

import "errors"

// The provider needs process groups, mountinfo and FIFREEZE: Linux only.
// These stubs keep the package building elsewhere; New refuses to run.
const supported = false

func mountOf(string) (mount, error) { return mount{}, errors.New("exec provider: Linux only") }
