package postgres

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

func TestParseRestoreOptions(t *testing.T) {
	// lvss's format (package restoreopts): what lvss restore writes from
	// --recovery-target and --restore-option. Other writers' keys are
	// ignored: every component gets the same options.
	o, err := parseRestoreOptions("recovery_target_action=pause\nrecovery_target_time=2026-12-06 13:56:59.288343+00\n" +
		"postgres.restore_command=cp /a'b/%f %p\nmysql.something=else")
	if err != nil {
		t.Fatal(err)
	}
	if o.target != "recovery_target_time" || o.value != "2026-12-06 13:56:59.288343+00" || o.restoreCommand != "cp /a'b/%f %p" || o.action != "pause" {
		t.Errorf("%+v", o)
	}
	if o, err := parseRestoreOptions(""); err != nil || o != (restoreOptions{}) {
		t.Errorf("empty options: %+v %v", o, err)
	}
	for in, want := range map[string]string{
		"recovery_target_lsn=0/3000060\nrecovery_target_name=x": "name one recovery target",
		"recovery_target_lsn=3000060":                           "is not an LSN",
		"recovery_target_time=yesterday":                        "is not a timestamp",
		"recovery_target=latest":                                "immediate",
		"recovery_target_action=stop":                           "promote, pause or shutdown",
		"recovery_target_name":                                  "is not KEY=VALUE",
		"recovery_target_end=x":                                 `unknown restore option "recovery_target_end"`,
		"postgres.archive_command=x":                            `unknown restore option "postgres.archive_command"`,
		"recovery_target_xid=1\nrecovery_target_xid=2":          "given twice",
		"restore_command=cp a\npostgres.restore_command=cp b":   "both given",
	} {
		if _, err := parseRestoreOptions(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseRestoreOptions(%q) = %v, want an error about %q", in, err, want)
		}
	}
}

// TestPlanChecksTheOptionsAgainstTheBackup: a recovery target needs a
// pitr backup; a pitr backup needs a restore_command, from the options or
// the writer's configuration.
func TestPlanChecksTheOptionsAgainstTheBackup(t *testing.T) {
	meta := func(mode Mode) *string {
		b, _ := json.Marshal(backupInfo{Mode: mode, DataDirectory: "/srv/pg", Extra: map[string]string{"backup_label": "START WAL LOCATION: 0/2000028"}})
		s := string(b)
		return &s
	}
	_, w := mustNew(t, Config{})
	_, err := w.plan(&document.ComponentState{BackupMetadata: meta(ModeSnapshot), RestoreOptions: "recovery_target_lsn=0/1"})
	if f := writertest.AsFailure(t, err); f.Code != vsserr.WriterErrorNonRetryable || !strings.Contains(f.Message, "snapshot mode") {
		t.Errorf("a target for a snapshot-mode backup: %v", err)
	}
	_, err = w.plan(&document.ComponentState{BackupMetadata: meta(ModePITR)})
	if err == nil || !strings.Contains(err.Error(), "--restore-command") {
		t.Errorf("a pitr backup without restore_command: %v", err)
	}
	p, err := w.plan(&document.ComponentState{BackupMetadata: meta(ModePITR), RestoreOptions: "restore_command=cp /x/%f %p",
		NewTargets: []document.FileDesc{{Path: "/srv/pg", Filespec: "*", Recursive: true, AlternatePath: "/srv/pg2"}}})
	if err != nil || p.restoreCommand != "cp /x/%f %p" || p.dataDir != "/srv/pg2" {
		t.Errorf("plan %+v, %v", p, err)
	}
	_, w = mustNew(t, Config{RestoreCommand: "cp /archive/%f %p"})
	p, err = w.plan(&document.ComponentState{BackupMetadata: meta(ModePITR), RestoreOptions: "recovery_target_name=before_upgrade"})
	if err != nil || p.restoreCommand != "cp /archive/%f %p" || p.dataDir != "/srv/pg" {
		t.Fatalf("plan %+v, %v", p, err)
	}
	conf := p.recoverySettings()
	for _, want := range []string{"restore_command = 'cp /archive/%f %p'\n", "recovery_target_name = 'before_upgrade'\n",
		"recovery_target_time = ''\n", "recovery_target_action = 'promote'\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("recovery settings lack %q:\n%s", want, conf)
		}
	}
}

// restoreSession drives a restore session of one backed-up document over
// the wire, as lvssd would.
type restoreSession struct {
	t     *testing.T
	co    *writertest.Coordinator
	inst  uuid.UUID
	id    uuid.UUID
	bcd   *document.BackupComponents
	next  uint64
	which int // the writer's index at the coordinator
	// timeoutMs is each event's time; 0 = 30 s.
	timeoutMs int64
}

func (r *restoreSession) send(typ v1.EventType) *v1.EventResult {
	r.t.Helper()
	r.next++
	timeout := r.timeoutMs
	if timeout == 0 {
		timeout = 30000
	}
	ev := &v1.Event{Id: r.next, Type: typ, SessionId: r.id.String(), SnapshotSetId: uuid.Nil.String(), TimeoutMs: timeout,
		SelectComponents: true, RestoreType: int32(vss.RestoreByCopy)}
	if typ == v1.EventType_EVENT_PRE_RESTORE || typ == v1.EventType_EVENT_POST_RESTORE {
		b, err := r.bcd.Marshal()
		if err != nil {
			r.t.Fatal(err)
		}
		ev.BcdXml = string(b)
	}
	res, err := r.co.Send(context.Background(), r.which, ev)
	if err != nil {
		r.t.Fatal(err)
	}
	if x := res.GetBcdXml(); x != "" {
		edited, err := document.ParseBackupComponents([]byte(x))
		if err != nil {
			r.t.Fatal(err)
		}
		if own := edited.Writer(r.inst); own != nil {
			*r.bcd.Writer(r.inst) = *own
		}
	}
	return res
}

// restoreDoc is a restore document for the writer's cluster component,
// selected, with the given backup metadata and restore options.
func restoreDoc(t *testing.T, inst uuid.UUID, meta *string, opts string) *document.BackupComponents {
	t.Helper()
	bcd := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull, RestoreType: vss.RestoreByCopy}
	if err := bcd.AddComponent(inst, ClassID, "main", 0, vss.ComponentFileGroup, "", ComponentName); err != nil {
		t.Fatal(err)
	}
	c := bcd.Writer(inst).Component("", ComponentName)
	c.BackupSucceeded, c.SelectedForRestore, c.RestoreTarget = true, true, vss.RTOriginal
	c.BackupMetadata, c.RestoreOptions = meta, opts
	return bcd
}

// TestPreRestoreRefusesWhileTheServerRuns: PreRestore fails RETRYABLE,
// naming the postmaster's PID and how to stop it, and puts the message in
// the component's pre-restore failure message; once the server is
// stopped, the same PreRestore succeeds (Identify too, from the data
// directory).
func TestPreRestoreRefusesWhileTheServerRuns(t *testing.T) {
	p := startServer(t, "")
	id, w := mustNew(t, Config{DSN: p.DSN("postgres"), InstanceName: "main"})
	co := writertest.Serve(t, id, w)
	r := &restoreSession{t: t, co: co, inst: co.Writer(0).InstanceID, id: uuid.New()}
	if res := r.send(v1.EventType_EVENT_IDENTIFY); res.GetFailure() != 0 {
		t.Fatalf("Identify: %s", res.GetApplicationMessage())
	}
	r.bcd = restoreDoc(t, r.inst, nil, "")
	pidFile, err := os.ReadFile(filepath.Join(p.DataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.SplitN(string(pidFile), "\n", 2)[0]
	res := r.send(v1.EventType_EVENT_PRE_RESTORE)
	msg := res.GetApplicationMessage()
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorRetryable || !strings.Contains(msg, "PID "+pid) || !strings.Contains(msg, "pg_ctl stop -D "+p.DataDir) {
		t.Fatalf("PreRestore with the server running: %s %q", vsserr.HRESULT(res.GetFailure()), msg)
	}
	if got := r.bcd.Writer(r.inst).Component("", ComponentName).PreRestoreFailureMsg; got != msg {
		t.Errorf("pre-restore failure message %q, want %q", got, msg)
	}
	t.Logf("refused: %s", msg)
	r.send(v1.EventType_EVENT_BACKUP_SHUTDOWN)

	p.Stop()
	r.id = uuid.New()
	if res := r.send(v1.EventType_EVENT_IDENTIFY); res.GetFailure() != 0 {
		t.Fatalf("Identify with the server stopped: %s", res.GetApplicationMessage())
	}
	r.bcd = restoreDoc(t, r.inst, nil, "")
	if res := r.send(v1.EventType_EVENT_PRE_RESTORE); res.GetFailure() != 0 {
		t.Fatalf("PreRestore with the server stopped: %s %s", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
}

// TestIdentifyWhileStopped: a writer started while its server is down
// identifies from --data-dir; without it, Identify fails as before.
func TestIdentifyWhileStopped(t *testing.T) {
	p := startServer(t, "")
	p.Stop()
	_, w := mustNew(t, Config{DSN: p.DSN("postgres"), DataDir: p.DataDir, ConnectTimeout: 2 * time.Second})
	md, err := identify(t, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Components) != 1 || len(md.Components[0].Files) != 1 || md.Components[0].Files[0].Path != p.DataDir ||
		!strings.Contains(md.Components[0].Caption, "server stopped") || md.RestoreMethod.WriterRestore != vss.WREAlways {
		t.Errorf("metadata %+v", md)
	}
	// A lock file whose PID now belongs to another program (PID reuse)
	// does not count as a running server.
	other := exec.Command("sleep", "600")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	if err := os.WriteFile(filepath.Join(p.DataDir, "postmaster.pid"), []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The test binary is not "postgres": a reused PID does not count.
	if _, err := identify(t, w); err != nil {
		t.Errorf("a lock file naming another program: %v", err)
	}
}

// TestRestorePointInTime: a --mode pitr backup (the copy of the data
// directory taken between pg_backup_start and pg_backup_stop is a base
// backup) is restored over the stopped server; PostRestore writes
// backup_label, recovery.signal and the recovery target the requester
// gave in the restore options; the server started on it recovers from
// the archive to exactly that target: every row committed before it, none
// after.
//
// With --stop-command and --start-command the writer stops the server at
// PreRestore and starts it at PostRestore, which returns once the server
// has recovered and promoted.
func TestRestorePointInTime(t *testing.T) {
	testenv.SkipIfShort(t, "replays archived WAL on a real server")
	t.Run("operator", func(t *testing.T) { testRestorePointInTime(t, false) })
	t.Run("commands", func(t *testing.T) { testRestorePointInTime(t, true) })
}

func testRestorePointInTime(t *testing.T, commands bool) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	arch := testenv.NewWALArchive(t, filepath.Join(t.TempDir(), "archive"))
	p := testenv.StartPostgres(t, testenv.PostgresOptions{DataDir: filepath.Join(t.TempDir(), "data"), Settings: arch.Settings()})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	must(err)
	defer conn.Close(ctx)
	run := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	run("CREATE TABLE pitr (id int PRIMARY KEY)")
	for i := 1; i <= 10; i++ {
		run("INSERT INTO pitr VALUES ($1)", i)
	}

	cfg := Config{DSN: p.DSN("postgres"), InstanceName: "main", Mode: ModePITR}
	if commands {
		cfg.StopCommand, cfg.StartCommand = p.StopCommand(), p.StartCommand()
	}
	id, w := mustNew(t, cfg)
	co := writertest.Serve(t, id, w)
	inst := co.Writer(0).InstanceID
	base := filepath.Join(t.TempDir(), "base")
	meta := pitrBackup(t, co, inst, p.DataDir, base)
	var info backupInfo
	must(json.Unmarshal([]byte(meta), &info))

	for i := 11; i <= 15; i++ {
		run("INSERT INTO pitr VALUES ($1)", i)
	}
	var target string
	must(conn.QueryRow(ctx, "SELECT clock_timestamp()::text").Scan(&target))
	for i := 16; i <= 20; i++ {
		run("INSERT INTO pitr VALUES ($1)", i)
	}
	var walFile string
	must(conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&walFile))
	arch.WaitArchived(t, walFile)
	conn.Close(ctx)

	// The restore: the requester stops the server (the writer's restore
	// procedure), or the writer does with its stop command; the files go
	// back, the writer prepares recovery (and starts the server).
	if !commands {
		p.Stop()
	}
	r := &restoreSession{t: t, co: co, inst: inst, id: uuid.New()}
	if res := r.send(v1.EventType_EVENT_IDENTIFY); res.GetFailure() != 0 {
		t.Fatalf("Identify: %s", res.GetApplicationMessage())
	}
	r.bcd = restoreDoc(t, inst, &meta, "recovery_target_time="+target+"\nrestore_command="+arch.RestoreCommand())
	if res := r.send(v1.EventType_EVENT_PRE_RESTORE); res.GetFailure() != 0 {
		t.Fatalf("PreRestore: %s %s", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
	if serverRuns(t, p) {
		t.Fatal("PreRestore succeeded while the server runs")
	}
	must(os.RemoveAll(p.DataDir))
	copyTree(t, base, p.DataDir)
	r.bcd.Writer(inst).Component("", ComponentName).FileRestoreStatus = vss.RSAll
	if res := r.send(v1.EventType_EVENT_POST_RESTORE); res.GetFailure() != 0 {
		t.Fatalf("PostRestore: %s %s", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
	r.send(v1.EventType_EVENT_BACKUP_SHUTDOWN)
	// A server the writer started has used backup_label (renaming it
	// backup_label.old) and recovery.signal (removing it).
	labelFile := "backup_label"
	if commands {
		labelFile += ".old"
	} else if _, err := os.Stat(filepath.Join(p.DataDir, "recovery.signal")); err != nil {
		t.Error(err)
	}
	label, err := os.ReadFile(filepath.Join(p.DataDir, labelFile))
	must(err)
	if string(label) != info.Extra["backup_label"] {
		t.Errorf("%s %q, want the backup's %q", labelFile, label, info.Extra["backup_label"])
	}
	auto, err := os.ReadFile(filepath.Join(p.DataDir, "postgresql.auto.conf"))
	must(err)
	if !strings.Contains(string(auto), "recovery_target_time = '"+target+"'") {
		t.Errorf("postgresql.auto.conf:\n%s", auto)
	}

	// The server, started by the writer or now by the test, recovers.
	srv := p
	if commands {
		cc, err := pgx.Connect(ctx, p.DSN("postgres"))
		must(err)
		defer cc.Close(ctx)
		var inRecovery bool
		must(cc.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
		if inRecovery {
			t.Fatal("PostRestore returned before the started server had promoted")
		}
	} else {
		srv = testenv.StartPostgresCopy(t, p.DataDir)
	}
	cc, err := pgx.Connect(ctx, srv.DSN("postgres"))
	must(err)
	defer cc.Close(ctx)
	end := time.Now().Add(60 * time.Second)
	for {
		var inRecovery bool
		if cc.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery) == nil && !inRecovery {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the restored server did not finish recovery\n%s", srv.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var n, maxID int
	must(cc.QueryRow(ctx, "SELECT count(*), max(id) FROM pitr").Scan(&n, &maxID))
	if n != 15 || maxID != 15 {
		t.Fatalf("recovered to %s: %d rows up to id %d, want the 15 committed before the target\n%s", target, n, maxID, srv.Log())
	}
	log := srv.Log()
	if !strings.Contains(log, "starting point-in-time recovery to") || !strings.Contains(log, "recovery stopping before commit") {
		t.Fatalf("the server did not recover to the target time:\n%s", log)
	}
}

// pitrBackup backs the cluster up in pitr mode over the wire, copying the
// data directory to base between PrepareSnapshot (pg_backup_start) and
// PostSnapshot (pg_backup_stop), which makes the copy a base backup; it
// returns the component's backup metadata.
func pitrBackup(t *testing.T, co *writertest.Coordinator, inst uuid.UUID, dataDir, base string) string {
	t.Helper()
	sid, set, snap := uuid.New(), uuid.New(), uuid.New()
	bcd := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull, SnapshotSetID: set}
	if err := bcd.AddComponent(inst, ClassID, "main", 0, vss.ComponentFileGroup, "", ComponentName); err != nil {
		t.Fatal(err)
	}
	b, err := bcd.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	send := func(typ v1.EventType, withBCD bool) *v1.EventResult {
		t.Helper()
		n++
		ev := &v1.Event{Id: n, Type: typ, SessionId: sid.String(), SnapshotSetId: set.String(), Context: int32(vss.CtxBackup),
			BackupType: int32(vss.BackupFull), SelectComponents: true, TimeoutMs: 60000, Volumes: []string{"/"},
			Placements: []*v1.PathPlacement{{Path: dataDir, SnapshotId: snap.String(), OriginalVolume: "/", Instant: 1, DevicePath: base}}}
		if typ == v1.EventType_EVENT_IDENTIFY {
			ev.SessionId, ev.SnapshotSetId = "", ""
		}
		if withBCD {
			ev.BcdXml = string(b)
		}
		res, err := co.Send(context.Background(), 0, ev)
		if err != nil {
			t.Fatal(err)
		}
		if res.GetFailure() != 0 {
			t.Fatalf("%s: %s %s", writer.EventType(typ), vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
		}
		return res
	}
	send(v1.EventType_EVENT_IDENTIFY, false)
	send(v1.EventType_EVENT_PREPARE_BACKUP, true)
	send(v1.EventType_EVENT_PREPARE_SNAPSHOT, false)
	send(v1.EventType_EVENT_FREEZE, false)
	send(v1.EventType_EVENT_THAW, false)
	copyTree(t, dataDir, base)
	if err := os.Remove(filepath.Join(base, "postmaster.pid")); err != nil {
		t.Fatal(err)
	}
	res := send(v1.EventType_EVENT_POST_SNAPSHOT, true)
	send(v1.EventType_EVENT_BACKUP_SHUTDOWN, false)
	got, err := document.ParseBackupComponents([]byte(res.GetBcdXml()))
	if err != nil {
		t.Fatal(err)
	}
	c := got.Writer(inst).Component("", ComponentName)
	if c == nil || c.BackupMetadata == nil || !strings.Contains(*c.BackupMetadata, `"mode":"pitr"`) {
		t.Fatalf("PostSnapshot's document: %s", res.GetBcdXml())
	}
	return *c.BackupMetadata
}

// copyTree copies a directory tree with its owners and modes (cp -a).
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", from+"/.", to+"/").CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", from, to, err, out)
	}
}
