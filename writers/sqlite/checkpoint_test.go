package sqlite

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
)

// TestCheckpointModes measures what PrepareSnapshot's checkpoint costs the
// application, for the default (PASSIVE) and the most thorough mode
// (TRUNCATE), with and without a reader holding an old snapshot of the
// database: an application process commits back to back meanwhile and
// reports its slowest commit. docs/writer-sqlite.md quotes the numbers
// (go test -v -run CheckpointModes).
//
// What is asserted is the reason PASSIVE is the default: it never holds
// the application's writers off, reader or not. TRUNCATE waits for the
// reader (half of PrepareSnapshot's time) with the write lock taken.
func TestCheckpointModes(t *testing.T) {
	for _, tc := range []struct {
		mode   CheckpointMode
		reader bool
	}{
		{CheckpointPassive, false}, {CheckpointPassive, true},
		{CheckpointTruncate, false}, {CheckpointTruncate, true},
	} {
		t.Run(fmt.Sprintf("%s/reader=%v", tc.mode, tc.reader), func(t *testing.T) {
			dir := t.TempDir()
			db := newDB(t, dir, "a.db", true)
			_, w := mustNew(t, Config{Databases: []string{db}, Checkpoint: tc.mode})
			if tc.reader {
				hold(t, "read", db)
			}
			// The application commits until its stdin closes, after
			// PrepareSnapshot: all of the checkpoint runs under its load.
			load := probeCmd("load", db, 30000)
			var out strings.Builder
			load.Stdout, load.Stderr = &out, &out
			stop, err := load.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := load.Start(); err != nil {
				t.Fatal(err)
			}
			waited := false
			t.Cleanup(func() {
				if !waited {
					stop.Close()
					load.Wait()
				}
			})
			// Let the WAL grow: there is something to checkpoint.
			testenv.Eventually(t, 30*time.Second, "the application's WAL to reach 1 MiB", func() bool {
				fi, err := os.Stat(db + "-wal")
				return err == nil && fi.Size() >= 1<<20
			})
			s := newSession(t, w, dir)
			s.timeout = 3 * time.Second // TRUNCATE may wait half of it for the reader
			start := time.Now()
			err = s.prepare()
			took := time.Since(start)
			stop.Close()
			werr := load.Wait()
			waited = true
			if werr != nil {
				t.Fatalf("application: %v: %s", werr, out.String())
			}
			if err != nil {
				t.Fatalf("PrepareSnapshot: %v", err)
			}
			var commits int
			var worst time.Duration
			if _, err := fmt.Sscanf(strings.TrimSpace(out.String()), "commits=%d worst=%s", &commits, new(string)); err != nil {
				t.Fatalf("application said %q", out.String())
			}
			_, ws, _ := strings.Cut(strings.TrimSpace(out.String()), "worst=")
			if worst, err = time.ParseDuration(ws); err != nil {
				t.Fatal(err)
			}
			t.Logf("checkpoint %s, reader holding a snapshot: %v: PrepareSnapshot took %s; application: %d commits, slowest %s",
				tc.mode, tc.reader, took.Round(time.Millisecond), commits, worst.Round(time.Millisecond))
			if tc.mode == CheckpointPassive && (took > time.Second || worst > time.Second) {
				t.Errorf("a PASSIVE checkpoint held things up: PrepareSnapshot %s, slowest commit %s", took, worst)
			}
		})
	}
}
