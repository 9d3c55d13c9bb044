package exec

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/procgroup"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// FIFREEZE, _IOWR('X', 119, int); x/sys/unix has no name for it.
const fifreeze = 0xC0045877

// The reason TMPDIR is on a tmpfs: a hook that writes to a frozen
// filesystem blocks in the kernel, where even SIGKILL does not reach it.
// The writer must still answer at the hook's timeout (abandoning the
// process) and not hang with it.
func TestHookBlockedOnFrozenFilesystem(t *testing.T) {
	fs := testenv.LoopFS(t, "ext4", 64<<20)
	cfg := baseConfig(t)
	cfg.Hooks = map[string]string{EventPostSnapshot: fmt.Sprintf("echo writing >&2; echo x > %s/f; sync", sq(fs.Mount))}
	cfg.Timeouts = map[string]time.Duration{EventPostSnapshot: 300 * time.Millisecond}
	_, w := mustNew(t, cfg)

	f, err := os.Open(fs.Mount)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetInt(int(f.Fd()), fifreeze, 0); err != nil {
		t.Fatalf("FIFREEZE: %v", err)
	}
	f.Close()
	t.Cleanup(fs.Thaw)

	start := time.Now()
	err = w.PostSnapshot(context.Background(), event(writer.EventPostSnapshot, uuid.New()), nil)
	took := time.Since(start)
	fs.Thaw()
	ff := writertest.AsFailure(t, err)
	if ff.Code != vsserr.WriterErrorTimeout || !strings.Contains(ff.Message, "abandoned") || !strings.Contains(ff.Message, "writing") {
		t.Errorf("got %s %q, want a timeout naming the abandoned hook and its last stderr line", ff.Code, ff.Message)
	}
	if took > 300*time.Millisecond+procgroup.KillGrace+time.Second {
		t.Errorf("the writer waited %s for a hook blocked on a frozen filesystem", took)
	}
}
