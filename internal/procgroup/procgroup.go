package procgroup

import "time"

// KillGrace is how long a command killed at its deadline has to
// disappear before it is abandoned (and reaped whenever it ends). SIGKILL
// takes effect at once unless the process sleeps uninterruptibly in the
// kernel (a write to a frozen filesystem); then no amount of waiting helps
// until the thaw, and the caller, possibly inside the hold window, must
// not wait for it.
const KillGrace = 250 * time.Millisecond
