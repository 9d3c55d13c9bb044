//go:build !lvss_failpoints

package failpoint

import "context"

// Enabled reports whether this build acts on failpoints.
const Enabled = false

// Hit does nothing in this build.
func Hit(string) error { return nil }

// HitCtx does nothing in this build.
func HitCtx(context.Context, string) error { return nil }
