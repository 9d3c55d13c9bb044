package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// stallTimeouts: every writer deadline is 2 s, so a stopped writer costs
// each test a few seconds, not minutes.
const stallTimeouts = `
[timeouts]
identify = "2s"
prepare_backup = "2s"
prepare_snapshot = "2s"
freeze = "2s"
thaw = "2s"
post_snapshot = "2s"
backup_complete = "2s"
backup_shutdown = "2s"
abort = "2s"
hold = "1s"
`

// liveness is how long past a deadline a call may take on a loaded CI
// machine before the test calls lvssd stalled. It bounds a wait that used
// to be forever; it is not a speed goal.
const liveness = 30 * time.Second

// TestStoppedWriterAtEachPhase stops a real writer process (SIGSTOP) at
// each event of a backup. The call that sent the event ends at the
// event's deadline with the writer VSS_E_WRITER_NOT_RESPONDING; while the
// writer is still stopped another session can start a snapshot set and
// `lvss list writers` answers; after SIGCONT the writer subscribes again
// (L29).
func TestStoppedWriterAtEachPhase(t *testing.T) {
	for _, tc := range []struct {
		phase string          // the exec writer's hook name; "identify": stopped by the test
		state vss.WriterState // its state in the stalled session
	}{
		{"identify", vss.WSFailedAtIdentify},
		{"prepare-backup", vss.WSFailedAtPrepareBackup},
		{"prepare-snapshot", vss.WSFailedAtPrepareSnapshot},
		{"freeze", vss.WSFailedAtFreeze},
		{"thaw", vss.WSFailedAtThaw},
		{"post-snapshot", vss.WSFailedAtPostSnapshot},
		{"backup-complete", vss.WSFailedAtBackupComplete},
		{"backup-shutdown", 0},
	} {
		t.Run(tc.phase, func(t *testing.T) {
			d := startDaemon(t, stallTimeouts)
			data := filepath.Join(d.dir, "data")
			if err := os.MkdirAll(data, 0o755); err != nil {
				t.Fatal(err)
			}
			args := []string{"--socket", d.socket, "exec", "--name", "stopme", "--component", "data=" + data, "--tmpdir", "/dev/shm"}
			if tc.phase != "identify" {
				// The hook stops the writer process that runs it, in the
				// middle of the event, and exits only once every thread
				// of it has stopped: a stop signal takes effect
				// asynchronously, and on a busy machine the writer could
				// otherwise still see the hook end and answer.
				hook := filepath.Join(d.dir, "stop-parent")
				script := `#!/bin/sh
kill -STOP "$PPID"
while :; do
	running=
	for f in /proc/"$PPID"/task/*/status; do
		grep -q '^State:[[:space:]]*T' "$f" || running=yes
	done
	[ -z "$running" ] && exit 0
	sleep 0.01
done
`
				if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
				// exec: the script must be the writer's own child, so that
				// $PPID is the writer.
				args = append(args, "--on-"+tc.phase, "exec "+hook)
			}
			w := start(t, d.dir, "lvss-writer", args...)
			pid := w.Cmd.Process.Pid
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
			d.waitWriters(t, 1)
			// Identified at subscription: from here on, what it misses
			// is the phase under test.
			eventually(t, liveness, "the writer's first Identify", func() bool {
				_, ok := findWriter(d.socket, "stopme")
				return ok
			})
			first := writerInstance(t, d.socket, "stopme")

			ctx, cancel := context.WithTimeout(context.Background(), 2*liveness)
			defer cancel()
			conn, err := client.Dial(ctx, d.socket)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			bc, err := conn.NewBackupComponents(ctx)
			if err != nil {
				t.Fatal(err)
			}
			must := func(what string, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}
			// step runs one async call and requires that it ends, within
			// the liveness bound, with success: a stopped writer fails
			// itself, not the call (D9, L29).
			step := func(name string, start func(context.Context) (*client.Async, error)) {
				t.Helper()
				a, err := start(ctx)
				must(name, err)
				h, msg, err := a.WaitTimeout(ctx, liveness)
				must(name+" Wait", err)
				if h != vsserr.AsyncFinished {
					t.Fatalf("%s ended %s: %s", name, h, msg)
				}
			}
			must("InitializeForBackup", bc.InitializeForBackup(ctx, ""))
			must("SetBackupState", bc.SetBackupState(ctx, false, false, vss.BackupFull, false))
			if tc.phase == "identify" {
				must("SIGSTOP", syscall.Kill(pid, syscall.SIGSTOP))
				waitStopped(t, pid) // the signal takes effect asynchronously
			}
			step("GatherWriterMetadata", bc.GatherWriterMetadata)
			_, err = bc.StartSnapshotSet(ctx)
			must("StartSnapshotSet", err)
			step("PrepareForBackup", bc.PrepareForBackup)
			step("DoSnapshotSet", bc.DoSnapshotSet)
			step("GatherWriterStatus", bc.GatherWriterStatus)
			if tc.phase != "backup-complete" && tc.phase != "backup-shutdown" {
				st := writerStatus(t, ctx, bc, "stopme")
				if st.State != tc.state || st.Failure != vsserr.WriterNotResponding {
					t.Fatalf("writer status %s / %s (%s), want %s / VSS_E_WRITER_NOT_RESPONDING", st.State, st.Failure, st.ApplicationMessage, tc.state)
				}
			}
			if tc.phase == "backup-complete" || tc.phase == "backup-shutdown" {
				step("BackupComplete", bc.BackupComplete)
			}
			if tc.phase == "backup-complete" {
				step("GatherWriterStatus", bc.GatherWriterStatus)
				if st := writerStatus(t, ctx, bc, "stopme"); st.State != tc.state || st.Failure != vsserr.WriterNotResponding {
					t.Fatalf("writer status after BackupComplete %s / %s", st.State, st.Failure)
				}
			}
			_, err = bc.Release(ctx)
			must("Release", err)

			// The writer really is stopped, still.
			waitStopped(t, pid)

			// lvssd answers and serves other sessions while it is.
			lctx, lcancel := context.WithTimeout(context.Background(), liveness)
			defer lcancel()
			if _, err := conn.ListWriters(lctx); err != nil {
				t.Fatalf("list writers while a writer is stopped: %v", err)
			}
			other, err := conn.NewBackupComponents(lctx)
			must("second session", err)
			must("InitializeForBackup", other.InitializeForBackup(lctx, ""))
			must("SetContext", other.SetContext(lctx, vss.CtxFileShareBackup))
			if _, err := other.StartSnapshotSet(lctx); err != nil {
				t.Fatalf("another session cannot start a snapshot set while a writer is stopped: %v", err)
			}
			if _, err := other.Release(lctx); err != nil {
				t.Fatal(err)
			}

			// Resumed, it finds its stream ended and subscribes again, as
			// a new instance.
			must("SIGCONT", syscall.Kill(pid, syscall.SIGCONT))
			eventually(t, liveness, "the writer to subscribe again", func() bool {
				id, ok := findWriter(d.socket, "stopme")
				return ok && id != first
			})
		})
	}
}

func writerStatus(t *testing.T, ctx context.Context, bc *client.BackupComponents, name string) client.WriterStatus {
	t.Helper()
	n, err := bc.GetWriterStatusCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		st, err := bc.GetWriterStatus(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no status for writer %s", name)
	return client.WriterStatus{}
}

// findWriter finds a subscribed writer that has answered an Identify.
func findWriter(socket, name string) (uuid.UUID, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return uuid.Nil, false
	}
	defer conn.Close()
	ws, err := conn.ListWriters(ctx)
	if err != nil {
		return uuid.Nil, false
	}
	for _, w := range ws {
		if w.Name == name && w.WMD != "" {
			return w.InstanceID, true
		}
	}
	return uuid.Nil, false
}

func writerInstance(t *testing.T, socket, name string) uuid.UUID {
	t.Helper()
	id, ok := findWriter(socket, name)
	if !ok {
		t.Fatalf("writer %s is not subscribed", name)
	}
	return id
}

// waitStopped waits until every thread of the process is stopped.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	eventually(t, liveness, fmt.Sprintf("process %d to be stopped", pid), func() bool {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			return false
		}
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				return false
			}
			// pid (comm) state ...: comm may hold spaces, so read after ')'.
			s := string(b)
			i := strings.LastIndexByte(s, ')')
			if i < 0 || i+2 >= len(s) || s[i+2] != 'T' {
				return false
			}
		}
		return true
	})
}
