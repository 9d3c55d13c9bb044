package e2e

import (
	"context"
	"encoding/json"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// TestRestoreRoundTripPostgresPITR is the round trip a user makes, with the
// real tools: a PostgreSQL cluster (archiving its WAL, `lvss-writer
// postgres --mode pitr`) is backed up with `lvss backup --type full --bcd
// -- restic backup`; more rows are committed; the server is stopped and
// its data directory emptied; `lvss restore --bcd --recovery-target
// time:T -- restic restore` puts the files back while the writer refuses
// nothing (the server is down) and prepares recovery at PostRestore; the
// server started on the restored directory recovers from the archive to
// exactly T. A restore while the server runs is refused by the writer at
// PreRestore, before restic runs.
func TestRestoreRoundTripPostgresPITR(t *testing.T) {
	needTool(t, "restic", "restic")
	fs := testenv.LoopFS(t, "btrfs", 512<<20)
	dataDir := filepath.Join(fs.Mount, "pg", "data")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	arch := testenv.NewWALArchive(t, filepath.Join(fs.Mount, "archive"))
	p := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: dataDir, Settings: arch.Settings()})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	must(err)
	defer conn.Close(ctx)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE TABLE rt (id int PRIMARY KEY)")
	for i := 1; i <= 10; i++ {
		exec("INSERT INTO rt VALUES ($1)", i)
	}
	// The write load: a connection of its own inserting rows one
	// transaction each, from before the backup until after the target,
	// recording when each began and when its commit was acknowledged.
	exec("CREATE TABLE load (id int PRIMARY KEY)")
	type loadRow struct {
		began, acked time.Time
	}
	var (
		loadMu   sync.Mutex
		loadRows []loadRow
		loadErr  error
	)
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	lc, err := pgx.Connect(ctx, p.DSN("postgres"))
	must(err)
	go func() {
		defer close(loadDone)
		defer lc.Close(ctx)
		for id := 0; ; id++ {
			select {
			case <-stopLoad:
				return
			default:
			}
			began := time.Now()
			if _, err := lc.Exec(ctx, "INSERT INTO load VALUES ($1)", id); err != nil {
				loadMu.Lock()
				loadErr = err
				loadMu.Unlock()
				return
			}
			loadMu.Lock()
			loadRows = append(loadRows, loadRow{began, time.Now()})
			loadMu.Unlock()
		}
	}()
	loaded := func() int { loadMu.Lock(); defer loadMu.Unlock(); return len(loadRows) }
	eventually(t, liveness, "the load's first commits", func() bool { return loaded() >= 20 })

	d := startDaemon(t, shortTimeouts)
	work := t.TempDir()
	startPostgresWriter(t, d.socket, work, p.DSN("postgres"), "--mode", "pitr",
		"--restore-command", arch.RestoreCommand())
	d.waitWriters(t, 1)
	password := filepath.Join(work, "password")
	must(os.WriteFile(password, []byte("round trip\n"), 0o600))
	t.Setenv("RESTIC_REPOSITORY", filepath.Join(work, "restic"))
	t.Setenv("RESTIC_PASSWORD_FILE", password)
	t.Setenv("RESTIC_CACHE_DIR", filepath.Join(work, "cache"))
	toolOutput(t, "restic", "init")
	bcd := filepath.Join(work, "pg.lvss")
	r := lvssdtest.Lvss(t, d.socket, "", "backup", "--writer", "postgres", "--type", "full", "--in-place", "--bcd", bcd, "--json", "--",
		"sh", "-c", `restic backup --exclude-file "${LVSS_EXCLUDE_FILE:-/dev/null}" `+dataDir)
	if r.Code != 0 {
		t.Fatalf("lvss backup: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}

	for i := 11; i <= 15; i++ {
		exec("INSERT INTO rt VALUES ($1)", i)
	}
	var target, walFile string
	var targetAt time.Time
	must(conn.QueryRow(ctx, "SELECT clock_timestamp()::text, clock_timestamp()").Scan(&target, &targetAt))
	for i := 16; i <= 20; i++ {
		exec("INSERT INTO rt VALUES ($1)", i)
	}
	// The load goes on past the target, then stops.
	atTarget := loaded()
	eventually(t, liveness, "the load to commit past the target", func() bool { return loaded() >= atTarget+20 })
	close(stopLoad)
	<-loadDone
	if loadErr != nil {
		t.Fatalf("the load: %v", loadErr)
	}
	must(conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&walFile))
	arch.WaitArchived(t, walFile)

	restore := func(args ...string) lvssdtest.Result {
		return lvssdtest.Lvss(t, d.socket, "", append([]string{"restore", "--bcd", bcd, "--json"}, args...)...)
	}
	restic := []string{"--", "sh", "-c", `restic restore latest --target "$LVSS_RESTORE_ROOT"`}

	// With the server running, the writer refuses PreRestore and restic
	// never runs: the live cluster is untouched.
	r = restore(append([]string{"--recovery-target", "time:" + target}, restic...)...)
	if r.Code != 3 || !strings.Contains(r.Stdout+r.Stderr, "postmaster.pid") {
		t.Fatalf("lvss restore over a running server: exit %d, want 3 naming the server\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	var n int
	must(conn.QueryRow(ctx, "SELECT count(*) FROM rt").Scan(&n))
	if n != 20 {
		t.Fatalf("the refused restore changed the live cluster: %d rows", n)
	}

	// The disaster: the server down, its data gone.
	conn.Close(ctx)
	p.Stop()
	ents, err := os.ReadDir(dataDir)
	must(err)
	for _, e := range ents {
		must(os.RemoveAll(filepath.Join(dataDir, e.Name())))
	}
	// A restore whose COMMAND fails half-way: the writer is told
	// VSS_RS_FAILED, fails PostRestore saying not to start the server, and
	// prepares no recovery (docs/writer-postgres.md, "Restore").
	r = restore("--recovery-target", "time:"+target, "--", "sh", "-c", `restic restore latest --target "$LVSS_RESTORE_ROOT" && exit 7`)
	var failedRep struct {
		FileRestoreStatus *string `json:"file_restore_status"`
		Writers           []struct {
			State   string `json:"state"`
			Failure string `json:"failure"`
		} `json:"writers"`
	}
	if r.Code != 7 || json.Unmarshal([]byte(r.Stdout), &failedRep) != nil || failedRep.FileRestoreStatus == nil ||
		*failedRep.FileRestoreStatus != "VSS_RS_FAILED" || len(failedRep.Writers) != 1 ||
		failedRep.Writers[0].Failure != "VSS_E_WRITERERROR_NONRETRYABLE" {
		t.Fatalf("a failed restore COMMAND: exit %d, want 7, VSS_RS_FAILED and the writer failing PostRestore\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "recovery.signal")); !os.IsNotExist(err) {
		t.Fatalf("recovery was prepared after a failed restore: %v", err)
	}

	r = restore(append([]string{"--recovery-target", "time:" + target}, restic...)...)
	if r.Code != 0 {
		t.Fatalf("lvss restore: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	var rep struct {
		FileRestoreStatus *string `json:"file_restore_status"`
		Writers           []struct {
			Name    string `json:"name"`
			State   string `json:"state"`
			Failure string `json:"failure"`
		} `json:"writers"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || rep.FileRestoreStatus == nil || *rep.FileRestoreStatus != "VSS_RS_ALL" ||
		len(rep.Writers) != 1 || rep.Writers[0].Failure != "S_OK" {
		t.Fatalf("lvss restore's report: %v\n%s", err, r.Stdout)
	}
	for _, f := range []string{"backup_label", "recovery.signal"} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
			t.Fatalf("PostRestore did not prepare %s: %v", f, err)
		}
	}

	cp := testenv.StartPostgresCopy(t, dataDir)
	cc, err := pgx.Connect(ctx, cp.DSN("postgres"))
	must(err)
	defer cc.Close(ctx)
	eventually(t, liveness, "the restored cluster to finish recovery and promote", func() bool {
		var inRecovery bool
		return cc.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery) == nil && !inRecovery
	})
	var maxID int
	must(cc.QueryRow(ctx, "SELECT count(*), max(id) FROM rt").Scan(&n, &maxID))
	if n != 15 || maxID != 15 {
		t.Fatalf("restored to %s: %d rows up to %d, want the 15 committed before it\n%s", target, n, maxID, cp.Log())
	}
	// Under load: every row acknowledged before the target is there, and
	// none begun after it (the load's ids are consecutive, one per
	// transaction).
	var loadN int
	must(cc.QueryRow(ctx, "SELECT count(*) FROM load").Scan(&loadN))
	for id, row := range loadRows {
		switch present := id < loadN; {
		case row.acked.Before(targetAt) && !present:
			t.Fatalf("load row %d, acknowledged at %s before the target %s, is missing (%d rows restored)", id, row.acked, targetAt, loadN)
		case row.began.After(targetAt) && present:
			t.Fatalf("load row %d, begun at %s after the target %s, is there (%d rows restored)", id, row.began, targetAt, loadN)
		}
	}
	var maxLoad int
	must(cc.QueryRow(ctx, "SELECT coalesce(max(id), -1) FROM load").Scan(&maxLoad))
	if maxLoad != loadN-1 {
		t.Fatalf("the restored load rows are not 0..%d: max id %d", loadN-1, maxLoad)
	}
	t.Logf("the load committed %d rows, %d of them before the target: all restored, none after", len(loadRows), loadN)
	t.Logf("restored through lvss restore to %s: %s", target,
		strings.Join(pgLogLines(cp.Log(), "starting point-in-time", "recovery stopping", "archive recovery complete"), " | "))
}

// TestRestoreRoundTripSQLite: the SQLite application (examples/bankapp)
// under load, `lvss-writer sqlite`, `lvss backup --type full --bcd --
// restic backup`; the writer refuses a restore while the application has
// the database open; the application stopped and the database deleted,
// `lvss restore -- restic restore` brings back a database whose integrity
// check passes, whose transfers kept their sum, and whose counter lies
// between the commits acknowledged before and after the backup.
func TestRestoreRoundTripSQLite(t *testing.T) {
	needTool(t, "restic", "restic")
	fs := testenv.LoopFS(t, "btrfs", 256<<20)
	dir := filepath.Join(fs.Mount, "bank")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "bank.db")
	d := startDaemon(t, shortTimeouts)
	work := t.TempDir()
	app := startBankApp(t, work, db)
	startSQLiteWriter(t, work, d.socket, db)
	d.waitWriters(t, 1)
	password := filepath.Join(work, "password")
	if err := os.WriteFile(password, []byte("round trip\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RESTIC_REPOSITORY", filepath.Join(work, "restic"))
	t.Setenv("RESTIC_PASSWORD_FILE", password)
	t.Setenv("RESTIC_CACHE_DIR", filepath.Join(work, "cache"))
	toolOutput(t, "restic", "init")
	bcd := filepath.Join(work, "bank.lvss")
	before := 0
	for _, a := range app.read(t) {
		before = max(before, a.n)
	}
	r := lvssdtest.Lvss(t, d.socket, "", "backup", "--writer", "sqlite", "--type", "full", "--in-place", "--bcd", bcd, "--",
		"sh", "-c", `restic backup --exclude-file "${LVSS_EXCLUDE_FILE:-/dev/null}" `+dir)
	if r.Code != 0 {
		t.Fatalf("lvss backup: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	after := app.read(t)
	restic := []string{"restore", "--bcd", bcd, "--", "sh", "-c", `restic restore latest --target "$LVSS_RESTORE_ROOT"`}
	if r := lvssdtest.Lvss(t, d.socket, "", restic...); r.Code != 3 || !strings.Contains(r.Stdout+r.Stderr, db) {
		t.Fatalf("lvss restore while the application runs: exit %d, want 3\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}

	app.proc.Stop(t)
	for _, f := range []string{"", "-wal", "-shm", "-journal"} {
		if err := os.Remove(db + f); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if r := lvssdtest.Lvss(t, d.socket, "", restic...); r.Code != 0 {
		t.Fatalf("lvss restore: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	b, err := osexec.Command(filepath.Join(binaries(t), "bankapp"), "check", "--db", db).CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("the restored database: %v\n%s", err, out)
	}
	f := strings.Fields(out)
	counter, _ := strconv.Atoi(f[len(f)-1])
	last := 0
	for _, a := range after {
		last = max(last, a.n)
	}
	if counter < before || counter > last {
		t.Fatalf("restored counter %d, want between %d (acknowledged before the backup) and %d (after it): %s", counter, before, last, out)
	}
	t.Logf("restored: %s", strings.TrimSpace(out))
}
