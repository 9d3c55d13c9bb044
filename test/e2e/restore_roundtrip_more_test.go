package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// The MariaDB and Redis round trips are TestRestoreRoundTripSQLite's with
// a server instead of a library: the application commits under load
// through the server, `lvss backup --type full --in-place --bcd --
// restic backup` backs the server's files up, the writer refuses a
// restore while the server runs (L40: it never stops its application),
// and once the server is stopped and its files deleted, `lvss restore --
// restic restore` puts them back; a server started on them must load
// them, keep the application's invariant and hold exactly the commits
// made before the writer held the server.

// resticRepo makes a restic repository in work for the commands lvss
// runs, through the environment they inherit.
func resticRepo(t *testing.T, work string) {
	t.Helper()
	password := filepath.Join(work, "password")
	if err := os.WriteFile(password, []byte("round trip\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RESTIC_REPOSITORY", filepath.Join(work, "restic"))
	t.Setenv("RESTIC_PASSWORD_FILE", password)
	t.Setenv("RESTIC_CACHE_DIR", filepath.Join(work, "cache"))
	toolOutput(t, "restic", "init")
}

// resticBackup runs `lvss backup` of one writer's dir with restic, as
// docs/recipes.md has it.
func resticBackup(t *testing.T, socket, writerName, bcd, dir string) {
	t.Helper()
	r := lvssdtest.Lvss(t, socket, "", "backup", "--writer", writerName, "--type", "full", "--in-place", "--bcd", bcd, "--json", "--",
		"sh", "-c", `restic backup --exclude-file "${LVSS_EXCLUDE_FILE:-/dev/null}" `+dir)
	if r.Code != 0 {
		t.Fatalf("lvss backup: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

// resticRestore runs `lvss restore --json` of bcd with restic. Its
// COMMAND first creates ran, so the test sees whether it ran at all.
func resticRestore(t *testing.T, socket, bcd, ran string) lvssdtest.Result {
	t.Helper()
	return lvssdtest.Lvss(t, socket, "", "restore", "--bcd", bcd, "--json", "--",
		"sh", "-c", `: >'`+ran+`' && restic restore latest --target "$LVSS_RESTORE_ROOT"`)
}

// refusedRestore runs the restore while the server runs: the writer must
// fail PreRestore (exit 3) with a message holding every want, and COMMAND
// must not run.
func refusedRestore(t *testing.T, socket, bcd, ran string, want ...string) {
	t.Helper()
	r := resticRestore(t, socket, bcd, ran)
	out := r.Stdout + r.Stderr
	ok := r.Code == 3
	for _, w := range want {
		ok = ok && strings.Contains(out, w)
	}
	if !ok {
		t.Fatalf("lvss restore over a running server: exit %d, want 3 naming %q\n%s\n%s", r.Code, want, r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(ran); !os.IsNotExist(err) {
		t.Fatalf("lvss restore ran its COMMAND although the writer refused PreRestore (%v)", err)
	}
}

// restoreSucceeds runs the restore of the stopped server's files and
// checks its report: every file restored (VSS_RS_ALL) and the one writer
// content with them (PostRestore checked them).
func restoreSucceeds(t *testing.T, socket, bcd, ran string) {
	t.Helper()
	r := resticRestore(t, socket, bcd, ran)
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
		t.Fatalf("lvss restore's report: %v\n%s\n%s", err, r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(ran); err != nil {
		t.Fatalf("lvss restore succeeded without running its COMMAND: %v", err)
	}
}

// emptyDir deletes what dir holds, leaving dir.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// lastAck is the highest counter acknowledged so far.
func lastAck(acks []ack) int {
	n := 0
	for _, a := range acks {
		n = max(n, a.n)
	}
	return n
}

// onlyRecord returns the one record a writer that took part in one
// backup logged.
func onlyRecord(t *testing.T, recs []holdRecord, what string) holdRecord {
	t.Helper()
	if len(recs) != 1 {
		t.Fatalf("the writer logged %d %q records, want one for the one backup: %+v", len(recs), what, recs)
	}
	if recs[0].By != "Thaw" {
		t.Fatalf("the writer released the server by %s, not Thaw", recs[0].By)
	}
	return recs[0]
}

// TestRestoreRoundTripMariaDB: a MariaDB server with its data directory on
// btrfs, the bank application committing transfers, `lvss-writer mysql`;
// `lvss backup --type full --bcd -- restic backup`; the writer refuses a
// restore while the server runs, naming its PID, and restic never runs;
// the server stopped and its data directory emptied, `lvss restore --
// restic restore` puts the files back and PostRestore checks them; a
// server started on them recovers, its tables check, the transfers kept
// their sum, and the counter is exactly where the writer held the server:
// at least every commit acknowledged before the backup, none acknowledged
// after the writer released it.
func TestRestoreRoundTripMariaDB(t *testing.T) {
	needTool(t, "restic", "restic")
	fs := testenv.LoopFS(t, "btrfs", 512<<20)
	d := startDaemon(t, shortTimeouts)
	work := t.TempDir() // not on the snapshotted volume
	srv, pw := mysqlServer(t, fs.Mount, work)
	dataDir := srv.DataDir
	app := startMySQLBank(t, srv.DSN(srv.OSUser, ""), work)
	w := startMySQLWriter(t, d.socket, work, "mysql", srv.DSN(mysqlUser, ""), "--password-file", pw)
	d.waitWriters(t, 1)
	resticRepo(t, work)
	bcd := filepath.Join(work, "mysql.lvss")
	ran := filepath.Join(work, "ran")

	before := lastAck(app.read(t))
	resticBackup(t, d.socket, "mysql", bcd, dataDir)
	// Commits after the backup: the restored server must have none of them.
	moreCommits(t, app.read, 20)

	pid, err := os.ReadFile(filepath.Join(srv.RunDir, "mysqld.pid"))
	if err != nil {
		t.Fatal(err)
	}
	refusedRestore(t, d.socket, bcd, ran, fmt.Sprintf("the server (PID %s)", strings.TrimSpace(string(pid))))
	moreCommits(t, app.read, 20) // the refused restore left the server at work

	// The disaster: the server down, its data gone.
	app.end(t)
	acks := app.read(t)
	srv.Stop()
	if srv.Running() {
		t.Fatal("the server still runs after its shutdown")
	}
	emptyDir(t, dataDir)
	restoreSucceeds(t, d.socket, bcd, ran)

	c := testenv.StartMariaDBCopy(t, dataDir, testenv.MariaDBOptions{})
	if out := c.MustExec("CHECK TABLE bank.accounts, bank.counter"); strings.Count(out, "status\tOK") != 2 {
		t.Fatalf("CHECK TABLE on the restored server:\n%s", out)
	}
	f := strings.Fields(c.MustExec("SELECT COUNT(*), SUM(balance) FROM bank.accounts"))
	if len(f) != 2 || f[0] != strconv.Itoa(bankAccounts) || f[1] != strconv.Itoa(bankAccounts*bankOpening) {
		t.Fatalf("the restored server has accounts and total %v, want %d holding %d", f, bankAccounts, bankAccounts*bankOpening)
	}
	n, err := strconv.Atoi(c.MustExec("SELECT n FROM bank.counter"))
	if err != nil {
		t.Fatal(err)
	}
	if n < before {
		t.Fatalf("restored counter %d, but %d was acknowledged before the backup began", n, before)
	}
	checkCounter(t, "restored", n, acks, onlyRecord(t, w.records(t, mysqlReleased), mysqlReleased), true)
	var recovery []string
	for _, l := range strings.Split(c.Log(), "\n") {
		for _, what := range []string{"InnoDB: To recover", "rollback of recovered", "Recovering after a crash"} {
			if i := strings.Index(l, what); i >= 0 {
				recovery = append(recovery, strings.TrimSpace(l[i:]))
			}
		}
	}
	t.Logf("restored through lvss restore: counter %d of %d commits (%d acknowledged before the backup); the server: %s",
		n, lastAck(acks), before, strings.Join(recovery, "; "))
}

// TestRestoreRoundTripRedis, with the AOF on and off: a Redis server
// with its dir on btrfs, the bank application transferring under load,
// marker keys written before and after the backup, `lvss-writer redis`;
// `lvss backup --type full --bcd -- restic backup`; the writer refuses a
// restore while the server answers, naming its PID, and restic never
// runs; the server killed and its files deleted, `lvss restore -- restic
// restore` puts them back and PostRestore checks them; a server started
// on them with the same persistence loads every key written before the
// backup and none written after it, the balances keep their sum, and the
// counter is exactly where the writer paused the server.
func TestRestoreRoundTripRedis(t *testing.T) {
	for _, tc := range []struct {
		name string
		aof  bool
	}{{"AOF", true}, {"RDB", false}} {
		t.Run(tc.name, func(t *testing.T) {
			needTool(t, "restic", "restic")
			fs := testenv.LoopFS(t, "btrfs", 256<<20)
			dir := filepath.Join(fs.Mount, "redis")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			srv := testenv.StartRedis(t, testenv.RedisOptions{Dir: dir, AOF: tc.aof})
			d := startDaemon(t, shortTimeouts)
			work := t.TempDir() // not on the snapshotted volume
			app := startRedisApp(t, work, srv)
			w := startRedisWriter(t, work, d.socket, "--socket-path", srv.Socket)
			d.waitWriters(t, 1)
			resticRepo(t, work)
			bcd := filepath.Join(work, "redis.lvss")
			ran := filepath.Join(work, "ran")
			ctx := context.Background()
			c := redisClient(srv, 1)
			defer c.Close()
			const markers = 10
			mark := func(when string) {
				t.Helper()
				for i := range markers {
					if err := c.Set(ctx, fmt.Sprintf("rt:%s:%d", when, i), i, 0).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}

			mark("before")
			before := lastAck(app.read(t))
			resticBackup(t, d.socket, "redis", bcd, dir)
			mark("after")
			moreCommits(t, app.read, 20)

			pid, err := c.Info(ctx, "server").Result()
			if err != nil {
				t.Fatal(err)
			}
			_, pid, _ = strings.Cut(pid, "process_id:")
			pid, _, _ = strings.Cut(pid, "\r\n")
			refusedRestore(t, d.socket, bcd, ran, "the Redis server at unix:"+srv.Socket+" (PID "+pid+")")
			if n, err := c.Exists(ctx, "rt:after:0").Result(); err != nil || n != 1 {
				t.Fatalf("the refused restore changed the live dataset: rt:after:0 exists %d (%v)", n, err)
			}
			moreCommits(t, app.read, 20) // the refused restore left the server at work

			// The disaster: the server gone (killed: it saves nothing), its
			// files deleted.
			if err := app.halt(); err != nil {
				t.Fatalf("a transfer failed: %v", err)
			}
			acks := app.read(t)
			c.Close()
			srv.Stop()
			emptyDir(t, dir)
			restoreSucceeds(t, d.socket, bcd, ran)

			rs := testenv.StartRedis(t, testenv.RedisOptions{Dir: dir, AOF: tc.aof})
			rc := redisClient(rs, 1)
			defer rc.Close()
			if n, err := rc.DBSize(ctx).Result(); err != nil || n != bankAccounts+1+markers {
				t.Fatalf("the restored server holds %d keys (%v), want %d accounts, the counter and %d markers", n, err, bankAccounts, markers)
			}
			for i := range markers {
				if v, err := rc.Get(ctx, fmt.Sprintf("rt:before:%d", i)).Int(); err != nil || v != i {
					t.Fatalf("rt:before:%d, written before the backup, is %d (%v) on the restored server", i, v, err)
				}
			}
			if n, err := rc.Exists(ctx, "rt:after:0").Result(); err != nil || n != 0 {
				t.Fatalf("rt:after:0, written after the backup, exists %d (%v) on the restored server", n, err)
			}
			keys := make([]string, bankAccounts)
			for i := range keys {
				keys[i] = redisAccount(i)
			}
			vals, err := rc.MGet(ctx, keys...).Result()
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for i, v := range vals {
				s, _ := v.(string)
				b, err := strconv.Atoi(s)
				if err != nil {
					t.Fatalf("account %d on the restored server is %v", i, v)
				}
				total += b
			}
			if total != bankAccounts*bankOpening {
				t.Fatalf("the restored server's %d accounts hold %d, want %d", bankAccounts, total, bankAccounts*bankOpening)
			}
			n, err := rc.Get(ctx, redisCounter).Int()
			if err != nil {
				t.Fatalf("the restored server's counter: %v", err)
			}
			if n < before {
				t.Fatalf("restored counter %d, but %d was acknowledged before the backup began", n, before)
			}
			// CLIENT PAUSE WRITE holds every write from LockedAt to
			// ReleaseAt: the backup is the dataset at LockedAt.
			checkCounter(t, tc.name+" restored", n, acks, onlyRecord(t, logRecords(t, w.Out, "redis released"), "redis released"), true)
			t.Logf("%s restored through lvss restore: counter %d of %d transfers (%d acknowledged before the backup)",
				tc.name, n, lastAck(acks), before)
		})
	}
}
