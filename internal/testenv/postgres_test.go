package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// pgExec runs stmt and returns its one text value, if it is a SELECT.
func pgExec(t *testing.T, dsn, stmt string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if !strings.HasPrefix(stmt, "SELECT") {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		return ""
	}
	var s string
	if err := conn.QueryRow(ctx, stmt).Scan(&s); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	return s
}

// TestPostgresAndACopy: a cluster with its WAL elsewhere answers on its
// socket and on TCP with durability on; a copy of a cluster stopped as in
// a crash starts as a second server and recovers.
func TestPostgresAndACopy(t *testing.T) {
	walDir := filepath.Join(t.TempDir(), "wal")
	p := StartPostgres(t, PostgresOptions{DataDir: filepath.Join(t.TempDir(), "data"), WALDir: walDir,
		Settings: map[string]string{"work_mem": "'8MB'"}})
	if got := pgExec(t, p.TCPDSN("postgres"), "SELECT current_setting('fsync') || ' ' || current_setting('work_mem')"); got != "on 8MB" {
		t.Errorf("fsync, work_mem = %q", got)
	}
	if link, err := os.Readlink(filepath.Join(p.DataDir, "pg_wal")); err != nil || link != walDir {
		t.Errorf("pg_wal links to %q (%v), want %s", link, err, walDir)
	}

	q := StartPostgres(t, PostgresOptions{DataDir: filepath.Join(t.TempDir(), "data")})
	pgExec(t, q.DSN("postgres"), "CREATE TABLE t AS SELECT 42 AS x")
	q.Stop() // immediate: the copy must recover
	if q.Running() {
		t.Fatal("Stop returned with the server running")
	}
	copyDir := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", q.DataDir, copyDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	c := StartPostgresCopy(t, copyDir)
	if c.Port == q.Port {
		t.Error("the copy reuses the original's port")
	}
	if got := pgExec(t, c.DSN("postgres"), "SELECT x::text FROM t"); got != "42" {
		t.Errorf("the copy holds %q", got)
	}
	if !strings.Contains(c.Log(), "automatic recovery in progress") {
		t.Errorf("the copy did not run crash recovery:\n%s", c.Log())
	}
}
