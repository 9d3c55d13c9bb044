package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
)

// TestHelperRequester is a requester process: it runs the backup sequence
// up to LVSS_E2E_PHASE, prints READY and waits to be killed.
func TestHelperRequester(t *testing.T) {
	phase := os.Getenv("LVSS_E2E_PHASE")
	if phase == "" {
		return // only meaningful as a child process of the real test
	}
	ctx := context.Background()
	fail := func(err error) {
		fmt.Println("ERROR", err)
		os.Exit(3)
	}
	conn, err := client.Dial(ctx, os.Getenv("LVSS_SOCKET"))
	if err != nil {
		fail(err)
	}
	bc, err := conn.NewBackupComponents(ctx)
	if err != nil {
		fail(err)
	}
	run := func(a *client.Async, err error) {
		if err == nil {
			err = a.Wait(ctx)
		}
		if err != nil {
			fail(err)
		}
	}
	if err := bc.InitializeForBackup(ctx, ""); err != nil {
		fail(err)
	}
	if err := bc.SetBackupState(ctx, false, false, vss.BackupFull, false); err != nil {
		fail(err)
	}
	run(bc.GatherWriterMetadata(ctx))
	if phase != "meta" {
		if _, err := bc.StartSnapshotSet(ctx); err != nil {
			fail(err)
		}
		run(bc.PrepareForBackup(ctx))
	}
	switch phase {
	case "during-DoSnapshotSet":
		// The test waits for the writer to be inside PrepareForSnapshot.
		if _, err := bc.DoSnapshotSet(ctx); err != nil {
			fail(err)
		}
	case "snapped", "complete":
		run(bc.DoSnapshotSet(ctx))
		if phase == "complete" {
			run(bc.BackupComplete(ctx))
		}
	}
	id, err := bc.GetSessionID(ctx)
	if err != nil {
		fail(err)
	}
	fmt.Println("READY", id)
	select {}
}

// TestRequesterKilledAtEachPhase kills a requester process with SIGKILL at
// each phase: writers get Abort only between PrepareForBackup and the end
// of DoSnapshotSet, BackupShutdown only if they took part (D11, D14),
// and the next session can create a set.
func TestRequesterKilledAtEachPhase(t *testing.T) {
	cases := []struct {
		phase string
		want  []string
	}{
		{"meta", nil},
		{"prepared", []string{"PrepareForBackup", "Abort", "BackupShutdown"}},
		{"during-DoSnapshotSet", []string{"PrepareForBackup", "PrepareForSnapshot", "Abort", "BackupShutdown"}},
		{"snapped", []string{"PrepareForBackup", "PrepareForSnapshot", "Freeze", "Thaw", "PostSnapshot", "BackupShutdown"}},
		{"complete", []string{"PrepareForBackup", "PrepareForSnapshot", "Freeze", "Thaw", "PostSnapshot", "BackupComplete", "BackupShutdown"}},
	}
	// PrepareForSnapshot may take long: only the requester's death, not
	// the daemon's timeout, ends the one the writer dawdles in.
	config := withTimeout(t, shortTimeouts, "prepare_snapshot", "5m")
	for _, tc := range cases {
		t.Run(tc.phase, func(t *testing.T) {
			d := startDaemon(t, config)
			var extra []string
			if tc.phase == "during-DoSnapshotSet" {
				// Until the Abort that follows the requester's death
				// cancels the handler.
				extra = []string{"--sleep-at", "PrepareForSnapshot=1h"}
			}
			w := d.startWriter(t, "w", "front-end", extra...)
			d.waitWriters(t, 1)

			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRequester$", "-test.count=1")
			cmd.Env = append(os.Environ(), "LVSS_E2E_PHASE="+tc.phase, "LVSS_SOCKET="+d.socket)
			req := startCmd(t, d.dir, "requester", cmd)
			var session string
			eventually(t, 20*time.Second, "the requester to reach "+tc.phase, func() bool {
				out := req.Output()
				if strings.Contains(out, "ERROR") || req.Exited() {
					t.Fatalf("requester did not reach %s: %q", tc.phase, out)
				}
				_, after, ok := strings.Cut(out, "READY ")
				session = strings.TrimSpace(after)
				return ok && strings.Contains(after, "\n")
			})
			if tc.phase == "during-DoSnapshotSet" {
				w.lw.WaitEntered(t, "PrepareForSnapshot", 1)
			}
			if err := req.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = req.Wait()

			// lvssd logs the release once the writer has answered all it
			// sent it, so what the writer logged is complete then: also
			// when it was sent nothing.
			rel := d.waitReleased(t, session)
			if got := w.events(t); !slices.Equal(got, tc.want) {
				t.Fatalf("writer saw %v, want %v (release: %v)", got, tc.want, rel)
			}
			// The creation lock was released with the dead session.
			ctx := context.Background()
			err := client.Run(ctx, d.socket, func(ctx context.Context, bc *client.BackupComponents) error {
				if err := bc.InitializeForBackup(ctx, ""); err != nil {
					return err
				}
				if err := bc.SetContext(ctx, vss.CtxFileShareBackup); err != nil {
					return err
				}
				_, err := bc.StartSnapshotSet(ctx)
				return err
			})
			if err != nil {
				t.Fatalf("next session: %v", err)
			}
		})
	}
}
