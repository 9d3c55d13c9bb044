package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/writers/postgres"
)

// TestPostgresPITR: `lvss-writer postgres --mode pitr` makes the snapshot
// a base backup. A server that archives its WAL is backed up through
// lvssd; more rows are committed; a copy of the snapshot's data
// directory, given the backup_label the writer put in the component's
// backup metadata, recovery.signal and a recovery target time between two
// of those commits, recovers from the archive to exactly that point: every
// row committed before the target, none after.
func TestPostgresPITR(t *testing.T) {
	fs := testenv.LoopFS(t, "btrfs", 512<<20)
	dataDir := filepath.Join(fs.Mount, "pg", "data")
	arch := testenv.NewWALArchive(t, filepath.Join(fs.Mount, "archive"))
	p := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dataDir, Settings: arch.Settings()})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE TABLE pitr (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
	for i := 1; i <= 10; i++ {
		exec("INSERT INTO pitr (id) VALUES ($1)", i)
	}

	d := startDaemon(t, shortTimeouts)
	work := t.TempDir()
	w := startPostgresWriter(t, d.socket, work, p.DSN("postgres"), "--mode", "pitr")
	d.waitWriters(t, 1)
	copyDir := filepath.Join(work, "copy", "data")
	res, err := componentBackup(t, d.socket, componentBackupSpec{
		classID: postgres.ClassID,
		volumes: []string{fs.Mount},
		copyOut: func(devices map[string]string, comps []*document.Component) error {
			return copyTree(devices[fs.Mount], fs.Mount, comps[0].Files[0].Path, copyDir)
		},
	})
	if err != nil {
		t.Fatalf("backup: %v (writer log:\n%s)", err, w.proc.Output())
	}
	if len(res.written.Components) != 1 || res.written.Components[0].BackupMetadata == nil {
		t.Fatalf("the writer wrote no backup metadata: %+v", res.written)
	}
	var info struct {
		Mode  string            `json:"mode"`
		Extra map[string]string `json:"extra"`
	}
	if err := json.Unmarshal([]byte(*res.written.Components[0].BackupMetadata), &info); err != nil {
		t.Fatal(err)
	}
	label := info.Extra["backup_label"]
	if info.Mode != "pitr" || !strings.Contains(label, "START WAL LOCATION:") || info.Extra["start_lsn"] == "" || info.Extra["stop_lsn"] == "" {
		t.Fatalf("backup metadata: %s", *res.written.Components[0].BackupMetadata)
	}
	// The snapshot holds no backup_label of its own: a non-exclusive
	// backup's label exists only in what pg_backup_stop returned.
	if _, err := os.Stat(filepath.Join(copyDir, "backup_label")); !os.IsNotExist(err) {
		t.Fatalf("the snapshot has a backup_label: %v", err)
	}

	// After the backup: rows 11..15, the target, rows 16..20.
	for i := 11; i <= 15; i++ {
		exec("INSERT INTO pitr (id) VALUES ($1)", i)
	}
	var target string
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()::text").Scan(&target); err != nil {
		t.Fatal(err)
	}
	for i := 16; i <= 20; i++ {
		exec("INSERT INTO pitr (id) VALUES ($1)", i)
	}
	// Everything up to now reaches the archive.
	var walFile string
	if err := conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&walFile); err != nil {
		t.Fatal(err)
	}
	arch.WaitArchived(t, walFile)

	// The restore, by hand as a writer's PostRestore will do it.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(copyDir, "backup_label"), []byte(label), 0o600))
	if m := info.Extra["tablespace_map"]; m != "" {
		must(os.WriteFile(filepath.Join(copyDir, "tablespace_map"), []byte(m), 0o600))
	}
	must(os.WriteFile(filepath.Join(copyDir, "recovery.signal"), nil, 0o600))
	auto, err := os.OpenFile(filepath.Join(copyDir, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	must(err)
	_, err = fmt.Fprintf(auto, "restore_command = '%s'\nrecovery_target_time = '%s'\nrecovery_target_action = 'promote'\narchive_mode = off\n", arch.RestoreCommand(), target)
	must(err)
	must(auto.Close())
	cp := testenv.StartPostgresCopy(t, copyDir)
	cc, err := pgx.Connect(ctx, cp.DSN("postgres"))
	must(err)
	defer cc.Close(ctx)
	eventually(t, liveness, "the copy to finish recovery and promote", func() bool {
		var inRecovery bool
		return cc.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery) == nil && !inRecovery
	})
	var n, maxID int
	must(cc.QueryRow(ctx, "SELECT count(*), max(id) FROM pitr").Scan(&n, &maxID))
	if n != 15 || maxID != 15 {
		t.Fatalf("recovered to %s: %d rows up to id %d, want the 15 committed before the target\n%s", target, n, maxID, cp.Log())
	}
	if log := cp.Log(); !strings.Contains(log, "starting point-in-time recovery to") || !strings.Contains(log, "recovery stopping before commit") {
		t.Fatalf("the copy did not recover to the target time:\n%s", log)
	}
	t.Logf("recovered to %s: %s", target, strings.Join(pgLogLines(cp.Log(), "starting point-in-time", "recovery stopping", "archive recovery complete"), " | "))
}
