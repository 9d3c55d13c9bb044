package exec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/procgroup"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// markerChecks are CheckFrozen/CheckThawed for hooks that keep a "frozen"
// marker file while the application is frozen. The path is read when the
// check runs: each subtest makes its own.
func markerChecks(marker *string) writertest.Options {
	return writertest.Options{
		CheckFrozen: func(t *testing.T) {
			if !exists(*marker) {
				t.Errorf("frozen, but the freeze marker %s is missing", *marker)
			}
		},
		CheckThawed: func(t *testing.T) {
			if exists(*marker) {
				t.Errorf("released, but the freeze marker %s is still there", *marker)
			}
		},
	}
}

// The conformance suite, once per way of configuring the release: freeze,
// thaw and abort hooks; freeze and thaw hooks only (Abort falls back to the
// thaw hook); and a hook directory only.
func TestConformance(t *testing.T) {
	t.Run("Hooks", func(t *testing.T) {
		var marker string
		writertest.Run(t, func(t *testing.T) (writer.Identity, writer.Writer) {
			cfg := baseConfig(t)
			marker = filepath.Join(t.TempDir(), "frozen")
			cfg.Hooks = map[string]string{
				EventFreeze: "touch " + sq(marker),
				EventThaw:   "rm -f " + sq(marker),
				EventAbort:  "rm -f " + sq(marker),
			}
			return mustNew(t, cfg)
		}, markerChecks(&marker))
	})
	t.Run("FreezeThawOnly", func(t *testing.T) {
		var marker string
		writertest.Run(t, func(t *testing.T) (writer.Identity, writer.Writer) {
			cfg := baseConfig(t)
			marker = filepath.Join(t.TempDir(), "frozen")
			cfg.Hooks = map[string]string{EventFreeze: "touch " + sq(marker), EventThaw: "rm -f " + sq(marker)}
			return mustNew(t, cfg)
		}, markerChecks(&marker))
	})
	t.Run("HookDir", func(t *testing.T) {
		var marker string
		writertest.Run(t, func(t *testing.T) (writer.Identity, writer.Writer) {
			cfg := baseConfig(t)
			marker = filepath.Join(t.TempDir(), "frozen")
			cfg.HookDir = t.TempDir()
			script := fmt.Sprintf("#!/bin/sh\ncase \"$1\" in freeze) touch %s;; thaw) rm -f %s;; esac\n", sq(marker), sq(marker))
			if err := os.WriteFile(filepath.Join(cfg.HookDir, "50-app"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			return mustNew(t, cfg)
		}, markerChecks(&marker))
	})
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		code         vsserr.HRESULT
		msg          string
	}{
		{"success", "echo fine; echo noise >&2; exit 0", vsserr.OK, ""},
		{"retryable", "echo context >&2; echo 'database busy, try later' >&2; echo >&2; exit 75", vsserr.WriterErrorRetryable, "database busy, try later"},
		{"nonretryable", "echo 'no such table' >&2; exit 1", vsserr.WriterErrorNonRetryable, "no such table"},
		{"other status", "exit 3", vsserr.WriterErrorNonRetryable, "prepare-snapshot hook failed (exit status 3) and printed nothing on stderr"},
		{"killed by a signal", "echo dying >&2; kill -TERM $$", vsserr.WriterErrorNonRetryable, "dying"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(t)
			cfg.Hooks = map[string]string{EventPrepareSnapshot: tc.script}
			_, w := mustNew(t, cfg)
			err := w.PrepareSnapshot(context.Background(), event(writer.EventPrepareSnapshot, uuid.New()))
			if tc.code == vsserr.OK {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			f := writertest.AsFailure(t, err)
			if f.Code != tc.code || f.Message != tc.msg {
				t.Errorf("got %s %q, want %s %q", f.Code, f.Message, tc.code, tc.msg)
			}
		})
	}
}

// What lvssd receives: the code and the application message.
func TestExitCodeOnTheWire(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Hooks = map[string]string{EventPrepareBackup: "echo 'replica lagging' >&2; exit 75"}
	r := startRig(t, cfg)
	res := r.send(r.withBCD(r.ev(v1.EventType_EVENT_PREPARE_BACKUP), false, "data"))
	if got := vsserr.HRESULT(res.GetFailure()); got != vsserr.WriterErrorRetryable || res.GetApplicationMessage() != "replica lagging" {
		t.Errorf("PrepareBackup answered %s %q, want %s %q", got, res.GetApplicationMessage(), vsserr.WriterErrorRetryable, "replica lagging")
	}
}

func TestHookTimeoutKillsTheGroup(t *testing.T) {
	cfg := baseConfig(t)
	dir := t.TempDir()
	cfg.Hooks = map[string]string{EventPrepareSnapshot: fmt.Sprintf(
		"echo $$ > %s; sleep 60 & echo $! > %s; echo 'still checkpointing' >&2; wait", sq(dir+"/pgid"), sq(dir+"/bg"))}
	cfg.Timeouts = map[string]time.Duration{EventPrepareSnapshot: 300 * time.Millisecond}
	_, w := mustNew(t, cfg)
	start := time.Now()
	err := w.PrepareSnapshot(context.Background(), event(writer.EventPrepareSnapshot, uuid.New()))
	took := time.Since(start)
	f := writertest.AsFailure(t, err)
	if f.Code != vsserr.WriterErrorTimeout {
		t.Errorf("code %s, want %s", f.Code, vsserr.WriterErrorTimeout)
	}
	for _, want := range []string{"prepare-snapshot hook did not finish within 300ms", "process group was killed", "still checkpointing"} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message %q lacks %q", f.Message, want)
		}
	}
	if took > 300*time.Millisecond+procgroup.KillGrace+time.Second {
		t.Errorf("the timed-out hook took %s to be reported", took)
	}
	var pgid int
	if _, err := fmt.Sscan(readFile(t, dir+"/pgid"), &pgid); err != nil || pgid <= 1 {
		t.Fatalf("pgid %q: %v", readFile(t, dir+"/pgid"), err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for live := liveInGroup(pgid); len(live) > 0; live = liveInGroup(pgid) {
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has live processes %v (the background sleep was %s)", pgid, live, strings.TrimSpace(readFile(t, dir+"/bg")))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A freeze hook may leave a process running that holds the application
// (a lock holder); the hook's answer must not wait for it, and it must not
// die of SIGPIPE when it writes to its inherited stdout or stderr later.
func TestBackgroundHolderSurvives(t *testing.T) {
	cfg := baseConfig(t)
	dir := t.TempDir()
	// The holder writes once the test lets it, after Freeze returned.
	cfg.Hooks = map[string]string{EventFreeze: fmt.Sprintf(
		"(while [ ! -e %s ]; do sleep 0.01; done; echo late; echo late >&2; touch %s) & echo frozen",
		sq(dir+"/go"), sq(dir+"/holder-done"))}
	letGo := func() {
		if err := os.WriteFile(dir+"/go", nil, 0o644); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(letGo) // also when the test failed: the holder ends
	_, w := mustNew(t, cfg)
	frozen := make(chan error, 1)
	go func() { frozen <- w.Freeze(context.Background(), event(writer.EventFreeze, uuid.New())) }()
	select {
	case err := <-frozen:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Freeze waits for the hook's background process")
	}
	letGo()
	waitFile(t, dir+"/holder-done", 30*time.Second)
}

func TestEnvironment(t *testing.T) {
	cfg := baseConfig(t)
	cfg.InstanceName = "main"
	dir := t.TempDir()
	// env -0: values hold newlines.
	dump := fmt.Sprintf("env -0 > %s/$LVSS_EVENT.env && pwd > %s/$LVSS_EVENT.pwd", sq(dir), sq(dir))
	cfg.Hooks = map[string]string{}
	for _, ev := range Events() {
		cfg.Hooks[ev] = dump
	}
	t.Setenv("LVSS_SOCKET", "/leaked/socket")
	leaked := t.TempDir()
	t.Setenv("TMPDIR", leaked)
	r := startRig(t, cfg)
	envOf := func(ev string) map[string]string {
		t.Helper()
		m := map[string]string{}
		for _, kv := range strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(dir, ev+".env")), "\x00"), "\x00") {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		if pwd := strings.TrimSpace(readFile(t, filepath.Join(dir, ev+".pwd"))); pwd != "/" {
			t.Errorf("%s hook ran in %q, want /", ev, pwd)
		}
		return m
	}

	r.ok(r.ev(v1.EventType_EVENT_IDENTIFY))
	id := envOf(EventIdentify)
	want := map[string]string{
		"LVSS_EVENT": "identify", "LVSS_WRITER_NAME": cfg.Name, "LVSS_WRITER_CLASS_ID": ClassIDFor(cfg.Name).String(),
		"LVSS_WRITER_INSTANCE_NAME": "main",
	}
	for k, v := range want {
		if id[k] != v {
			t.Errorf("identify: %s=%q, want %q", k, id[k], v)
		}
	}
	if _, ok := id["LVSS_SESSION_ID"]; ok {
		t.Error("identify: LVSS_SESSION_ID is set, but Identify belongs to no session")
	}

	r.ok(r.withBCD(r.ev(v1.EventType_EVENT_PREPARE_BACKUP), false, "data", "logs"))
	r.ok(r.ev(v1.EventType_EVENT_PREPARE_SNAPSHOT))
	r.ok(r.ev(v1.EventType_EVENT_FREEZE))
	r.ok(r.ev(v1.EventType_EVENT_THAW))
	r.ok(r.withBCD(r.ev(v1.EventType_EVENT_POST_SNAPSHOT), false, "data", "logs"))
	r.ok(r.withBCD(r.ev(v1.EventType_EVENT_BACKUP_COMPLETE), true, "data", "logs"))

	freeze := envOf(EventFreeze)
	want = map[string]string{
		"LVSS_EVENT": "freeze", "LVSS_WRITER_NAME": cfg.Name, "LVSS_WRITER_INSTANCE_NAME": "main",
		"LVSS_INSTANCE_ID": r.wc.InstanceID.String(), "LVSS_SESSION_ID": r.session.String(),
		"LVSS_SNAPSHOT_SET_ID": r.set.String(), "LVSS_CONTEXT": "VSS_CTX_BACKUP", "LVSS_BACKUP_TYPE": "VSS_BT_FULL",
		"LVSS_SELECT_COMPONENTS": "1", "LVSS_SELECTED_COMPONENTS": "data\nlogs", "LVSS_VOLUMES": "/",
		"LVSS_PATH_INSTANTS": "/srv/data\t" + r.snap.String() + "\t1", "LVSS_SHARED_INSTANT": "1",
		"LVSS_POINT_IN_TIME": "1", "LVSS_SELF_RAISED": "0",
	}
	for k, v := range want {
		if freeze[k] != v {
			t.Errorf("freeze: %s=%q, want %q", k, freeze[k], v)
		}
	}
	if _, ok := freeze["LVSS_SOCKET"]; ok {
		t.Error("the writer's own LVSS_SOCKET reached the hook")
	}
	tmp := freeze["TMPDIR"]
	if !strings.HasPrefix(tmp, cfg.TmpDir+"/") || !procgroup.OnTmpfs(tmp) {
		t.Errorf("TMPDIR %q is not a directory on the configured tmpfs %s", tmp, cfg.TmpDir)
	}
	if envOf(EventThaw)["TMPDIR"] != tmp || envOf(EventPrepareBackup)["TMPDIR"] != tmp {
		t.Error("the hooks of one session got different TMPDIRs")
	}
	if got := envOf(EventPostSnapshot)["LVSS_DEVICE_PATHS"]; got != "/srv/data\t/run/lvss/snap/1" {
		t.Errorf("post-snapshot: LVSS_DEVICE_PATHS=%q", got)
	}
	if got := envOf(EventBackupComplete)["LVSS_BACKUP_SUCCEEDED"]; got != "1" {
		t.Errorf("backup-complete: LVSS_BACKUP_SUCCEEDED=%q, want 1", got)
	}

	r.ok(r.ev(v1.EventType_EVENT_BACKUP_SHUTDOWN))
	if got := envOf(EventBackupShutdown)["LVSS_SELECTED_COMPONENTS"]; got != "data\nlogs" {
		t.Errorf("backup-shutdown: LVSS_SELECTED_COMPONENTS=%q", got)
	}
	if exists(tmp) {
		t.Errorf("the session's TMPDIR %s is still there after BackupShutdown", tmp)
	}
	if ents, _ := os.ReadDir(cfg.TmpDir); len(ents) != 0 {
		t.Errorf("%s still holds %v", cfg.TmpDir, ents)
	}
}

func TestHookDir(t *testing.T) {
	setup := func(t *testing.T, failing string) (*Writer, string) {
		t.Helper()
		cfg := baseConfig(t)
		cfg.HookDir = t.TempDir()
		log := filepath.Join(t.TempDir(), "log")
		cfg.Hooks = map[string]string{
			EventFreeze: "echo 'cmd freeze' >> " + sq(log),
			EventThaw:   "echo 'cmd thaw' >> " + sq(log),
			EventAbort:  "echo \"cmd abort\" >> " + sq(log),
		}
		// No "#!" line in 10-a: qemu-guest-agent's dispatcher runs such a
		// script with sh, and so does the writer.
		for name, mode := range map[string]os.FileMode{"10-a": 0o755, "20-b": 0o755, "30-c": 0o755,
			"15-notexec": 0o644, "25-old~": 0o755, ".hidden": 0o755, "35-x.dpkg-old": 0o755} {
			body := fmt.Sprintf("echo \"%s $1 $LVSS_EVENT\" >> %s\n", name, sq(log))
			if name == failing {
				body += "[ \"$1\" = freeze ] && { echo \"" + name + " cannot freeze\" >&2; exit 1; }\nexit 0\n"
			}
			if name != "10-a" {
				body = "#!/bin/sh\n" + body
			}
			if err := os.WriteFile(filepath.Join(cfg.HookDir, name), []byte(body), mode); err != nil {
				t.Fatal(err)
			}
		}
		_, w := mustNew(t, cfg)
		return w, log
	}
	lines := func(t *testing.T, log string) []string {
		t.Helper()
		if !exists(log) {
			return nil
		}
		return strings.Split(strings.TrimSpace(readFile(t, log)), "\n")
	}
	ctx := context.Background()

	t.Run("FreezeThaw", func(t *testing.T) {
		w, log := setup(t, "")
		sid := uuid.New()
		if err := w.Freeze(ctx, event(writer.EventFreeze, sid)); err != nil {
			t.Fatal(err)
		}
		if err := w.Thaw(ctx, event(writer.EventThaw, sid)); err != nil {
			t.Fatal(err)
		}
		want := []string{"cmd freeze", "10-a freeze freeze", "20-b freeze freeze", "30-c freeze freeze",
			"30-c thaw thaw", "20-b thaw thaw", "10-a thaw thaw", "cmd thaw"}
		if got := lines(t, log); !slices.Equal(got, want) {
			t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("AbortThawsTwiceSafe", func(t *testing.T) {
		w, log := setup(t, "")
		sid := uuid.New()
		if err := w.Freeze(ctx, event(writer.EventFreeze, sid)); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := w.Abort(ctx, event(writer.EventAbort, sid)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.BackupShutdown(ctx, event(writer.EventBackupShutdown, sid)); err != nil {
			t.Fatal(err)
		}
		// The scripts are thawed once; the abort hook runs at every Abort.
		want := []string{"cmd freeze", "10-a freeze freeze", "20-b freeze freeze", "30-c freeze freeze",
			"30-c thaw abort", "20-b thaw abort", "10-a thaw abort", "cmd abort", "cmd abort"}
		if got := lines(t, log); !slices.Equal(got, want) {
			t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("PartialFreezeFailure", func(t *testing.T) {
		w, log := setup(t, "20-b")
		sid := uuid.New()
		err := w.Freeze(ctx, event(writer.EventFreeze, sid))
		f := writertest.AsFailure(t, err)
		if f.Code != vsserr.WriterErrorNonRetryable || f.Message != "20-b cannot freeze" {
			t.Errorf("Freeze: %s %q", f.Code, f.Message)
		}
		// 30-c never froze; 20-b, which failed, and 10-a are thawed at
		// once, last first. The Abort that follows a failed Freeze has
		// no script left to thaw.
		if err := w.Abort(ctx, event(writer.EventAbort, sid)); err != nil {
			t.Fatal(err)
		}
		want := []string{"cmd freeze", "10-a freeze freeze", "20-b freeze freeze",
			"20-b thaw freeze", "10-a thaw freeze", "cmd abort"}
		if got := lines(t, log); !slices.Equal(got, want) {
			t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("AbortBeforeFreeze", func(t *testing.T) {
		w, log := setup(t, "")
		if err := w.Abort(ctx, event(writer.EventAbort, uuid.New())); err != nil {
			t.Fatal(err)
		}
		if got := lines(t, log); !slices.Equal(got, []string{"cmd abort"}) {
			t.Errorf("calls %q, want only the abort hook: no script was frozen", got)
		}
	})
}

// A thaw script that fails stays frozen, and the next release tries again.
func TestHookDirThawRetried(t *testing.T) {
	cfg := baseConfig(t)
	cfg.HookDir = t.TempDir()
	flag := filepath.Join(t.TempDir(), "thaw-fails")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = thaw ] && [ -e %s ] && { echo 'thaw refused' >&2; exit 1; }\nexit 0\n", sq(flag))
	if err := os.WriteFile(filepath.Join(cfg.HookDir, "app"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, w := mustNew(t, cfg)
	ctx, sid := context.Background(), uuid.New()
	if err := w.Freeze(ctx, event(writer.EventFreeze, sid)); err != nil {
		t.Fatal(err)
	}
	if f := writertest.AsFailure(t, w.Thaw(ctx, event(writer.EventThaw, sid))); f.Message != "thaw refused" {
		t.Errorf("Thaw: %q", f.Message)
	}
	os.Remove(flag)
	if err := w.Abort(ctx, event(writer.EventAbort, sid)); err != nil {
		t.Fatalf("the Abort after a failed Thaw: %v", err)
	}
	w.mu.Lock()
	left := len(w.sessions[sid].frozen)
	w.mu.Unlock()
	if left != 0 {
		t.Errorf("%d scripts still frozen after a successful thaw", left)
	}
}

func TestAbortFallsBackToThawHook(t *testing.T) {
	cfg := baseConfig(t)
	log := filepath.Join(t.TempDir(), "log")
	cfg.Hooks = map[string]string{
		EventFreeze: "echo \"freeze\" >> " + sq(log),
		EventThaw:   "echo \"thaw as $LVSS_EVENT\" >> " + sq(log),
	}
	_, w := mustNew(t, cfg)
	ctx := context.Background()
	// Abort before any Freeze: nothing to release, nothing runs.
	if err := w.Abort(ctx, event(writer.EventAbort, uuid.New())); err != nil {
		t.Fatal(err)
	}
	if exists(log) {
		t.Fatalf("Abort of an unfrozen session ran a hook: %q", readFile(t, log))
	}
	sid := uuid.New()
	if err := w.Freeze(ctx, event(writer.EventFreeze, sid)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := w.Abort(ctx, event(writer.EventAbort, sid)); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFile(t, log); got != "freeze\nthaw as abort\n" {
		t.Errorf("hooks ran %q; want the thaw hook once, standing in for abort", got)
	}
}

func TestIdentify(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"db", "logs"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "app.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	identify := func(t *testing.T, cfg Config) (*document.WriterMetadata, *v1.EventResult) {
		t.Helper()
		r := startRig(t, cfg)
		res := r.send(r.ev(v1.EventType_EVENT_IDENTIFY))
		if res.GetFailure() != 0 {
			return nil, res
		}
		wmd, err := document.ParseWriterMetadata([]byte(res.GetWmdXml()))
		if err != nil {
			t.Fatal(err)
		}
		if wmd.Identity.WriterID != r.id.ClassID || wmd.Identity.InstanceID != r.wc.InstanceID {
			t.Errorf("identity %+v not filled in by the SDK", wmd.Identity)
		}
		return wmd, res
	}

	t.Run("FromComponents", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.Components = []Component{
			{Name: "db", Path: filepath.Join(root, "db")},
			{Name: "db", Path: filepath.Join(root, "logs", "*.wal")},
			{Name: "conf", Path: filepath.Join(root, "app.conf")},
		}
		wmd, _ := identify(t, cfg)
		if len(wmd.Components) != 2 {
			t.Fatalf("components %+v, want db and conf", wmd.Components)
		}
		db, conf := wmd.Component("", "db"), wmd.Component("", "conf")
		if db == nil || conf == nil || db.Type != vss.ComponentFileGroup || !db.Selectable {
			t.Fatalf("components %+v", wmd.Components)
		}
		wantDB := []document.FileDesc{
			{Path: filepath.Join(root, "db"), Filespec: "*", Recursive: true, BackupTypeMask: writer.DefaultBackupTypeMask},
			{Path: filepath.Join(root, "logs"), Filespec: "*.wal", BackupTypeMask: writer.DefaultBackupTypeMask},
		}
		if !slices.Equal(db.Files, wantDB) {
			t.Errorf("db files %+v, want %+v", db.Files, wantDB)
		}
		wantConf := []document.FileDesc{{Path: root, Filespec: "app.conf", BackupTypeMask: writer.DefaultBackupTypeMask}}
		if !slices.Equal(conf.Files, wantConf) {
			t.Errorf("conf files %+v, want %+v", conf.Files, wantConf)
		}
		if wmd.RestoreMethod.Method != vss.RMERestoreIfCanReplace || wmd.RestoreMethod.WriterRestore != vss.WRENever {
			t.Errorf("restore method %+v", wmd.RestoreMethod)
		}
	})
	t.Run("RestoreHooksMeanWriterRestore", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.RestoreMethod = vss.RMERestoreIfNotThere
		cfg.Hooks = map[string]string{EventPostRestore: "true"}
		wmd, _ := identify(t, cfg)
		if wmd.RestoreMethod.Method != vss.RMERestoreIfNotThere || wmd.RestoreMethod.WriterRestore != vss.WREAlways {
			t.Errorf("restore method %+v", wmd.RestoreMethod)
		}
	})
	t.Run("MissingPath", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.Components = []Component{{Name: "gone", Path: filepath.Join(root, "nope")}}
		_, res := identify(t, cfg)
		if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorNonRetryable || !strings.Contains(res.GetApplicationMessage(), "nope") {
			t.Errorf("Identify answered %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
		}
	})
	t.Run("HookPrintsWMD", func(t *testing.T) {
		doc := document.WriterMetadata{
			Identity:      document.Identity{WriterID: uuid.New(), InstanceID: uuid.New(), FriendlyName: "ignored", Usage: vss.UsageUserData, Source: vss.SourceOther},
			RestoreMethod: document.RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WRENever},
			Components: []document.Component{{Type: vss.ComponentDatabase, LogicalPath: "pg", Name: "main", Selectable: true,
				DatabaseFiles:    []document.FileDesc{{Path: "/srv/pg/data", Filespec: "*", BackupTypeMask: 0xF0F}},
				DatabaseLogFiles: []document.FileDesc{{Path: "/srv/pg/wal", Filespec: "0*", BackupTypeMask: 0xF0F}}}},
			ExcludeFiles: []document.FileSpec{{Path: "/srv/pg/data", Filespec: "postmaster.pid"}},
		}
		b, err := doc.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "wmd.xml")
		if err := os.WriteFile(file, append([]byte("\n  "), b...), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := baseConfig(t) // its "data" component must not appear
		cfg.Hooks = map[string]string{EventIdentify: "cat " + sq(file)}
		wmd, _ := identify(t, cfg)
		if len(wmd.Components) != 1 || wmd.Component("pg", "main") == nil || !slices.Equal(wmd.ExcludeFiles, doc.ExcludeFiles) {
			t.Errorf("the printed document was not used as is: components %+v, excludes %+v", wmd.Components, wmd.ExcludeFiles)
		}
		if wmd.Identity.FriendlyName != cfg.Name {
			t.Errorf("friendly name %q: the identity is the writer's, not the document's", wmd.Identity.FriendlyName)
		}
	})
	t.Run("HookPrintsOtherOutput", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.Hooks = map[string]string{EventIdentify: "echo 'checked the service'"}
		wmd, _ := identify(t, cfg)
		if wmd.Component("", "data") == nil {
			t.Errorf("components %+v, want the configured one", wmd.Components)
		}
	})
	t.Run("HookPrintsBrokenWMD", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.Hooks = map[string]string{EventIdentify: "echo '<WRITER_METADATA'"}
		_, res := identify(t, cfg)
		if res.GetFailure() == 0 || !strings.Contains(res.GetApplicationMessage(), "does not parse") {
			t.Errorf("Identify answered %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
		}
	})
	t.Run("HookFails", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.Hooks = map[string]string{EventIdentify: "echo 'service down' >&2; exit 75"}
		_, res := identify(t, cfg)
		if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorRetryable || res.GetApplicationMessage() != "service down" {
			t.Errorf("Identify answered %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
		}
	})
}

// An Abort that arrives while the freeze hook runs stops it (the SDK
// cancels the handler); the abort hook then runs.
func TestAbortDuringFreezeHook(t *testing.T) {
	cfg := baseConfig(t)
	dir := t.TempDir()
	cfg.Hooks = map[string]string{
		EventFreeze: "echo $$ > " + sq(dir+"/pgid") + "; sleep 60",
		EventAbort:  "touch " + sq(dir+"/aborted"),
	}
	r := startRig(t, cfg)
	r.ok(r.withBCD(r.ev(v1.EventType_EVENT_PREPARE_BACKUP), false, "data"))
	r.ok(r.ev(v1.EventType_EVENT_PREPARE_SNAPSHOT))
	freeze := make(chan *v1.EventResult, 1)
	fev := r.ev(v1.EventType_EVENT_FREEZE)
	go func() {
		res, err := r.co.Send(context.Background(), 0, fev)
		if err != nil {
			t.Error(err)
		}
		freeze <- res
	}()
	waitFile(t, dir+"/pgid", 5*time.Second)
	r.ok(r.ev(v1.EventType_EVENT_ABORT))
	res := <-freeze
	if res == nil {
		t.FailNow()
	}
	if got := vsserr.HRESULT(res.GetFailure()); got != vsserr.WriterErrorRetryable || !strings.Contains(res.GetApplicationMessage(), "Abort arrived") {
		t.Errorf("the interrupted Freeze answered %s %q", got, res.GetApplicationMessage())
	}
	if !exists(dir + "/aborted") {
		t.Error("the abort hook did not run")
	}
	var pgid int
	fmt.Sscan(readFile(t, dir+"/pgid"), &pgid)
	if live := liveInGroup(pgid); len(live) > 0 {
		t.Errorf("the freeze hook's group still has %v", live)
	}
}

// The releases the SDK raises itself: BackupShutdown while prepared or
// frozen (D14), writer.Run's context ending (SIGTERM), lvssd dying. Each
// must run the abort hook, bounded by its timeout.
func TestSDKRaisedReleases(t *testing.T) {
	setup := func(t *testing.T, abortHook string) (*rig, string) {
		cfg := baseConfig(t)
		dir := t.TempDir()
		cfg.Hooks = map[string]string{
			EventFreeze: "touch " + sq(dir+"/frozen"),
			EventAbort:  "rm -f " + sq(dir+"/frozen") + "; echo \"$LVSS_SELF_RAISED\" >> " + sq(dir+"/aborts") + "; " + abortHook,
		}
		cfg.Timeouts = map[string]time.Duration{EventAbort: 500 * time.Millisecond}
		return startRig(t, cfg), dir
	}
	until := func(r *rig, phase v1.EventType) {
		r.ok(r.withBCD(r.ev(v1.EventType_EVENT_PREPARE_BACKUP), false, "data"))
		r.ok(r.ev(v1.EventType_EVENT_PREPARE_SNAPSHOT))
		if phase == v1.EventType_EVENT_FREEZE {
			r.ok(r.ev(v1.EventType_EVENT_FREEZE))
		}
	}
	t.Run("ShutdownWhilePrepared", func(t *testing.T) {
		r, dir := setup(t, "")
		until(r, v1.EventType_EVENT_PREPARE_SNAPSHOT)
		r.ok(r.ev(v1.EventType_EVENT_BACKUP_SHUTDOWN))
		if got := readFile(t, dir+"/aborts"); got != "1\n" {
			t.Errorf("aborts %q, want one self-raised", got)
		}
	})
	t.Run("ShutdownWhileFrozen", func(t *testing.T) {
		r, dir := setup(t, "")
		until(r, v1.EventType_EVENT_FREEZE)
		r.ok(r.ev(v1.EventType_EVENT_BACKUP_SHUTDOWN))
		if exists(dir + "/frozen") {
			t.Error("still frozen after BackupShutdown")
		}
	})
	t.Run("SIGTERM", func(t *testing.T) {
		// The abort hook hangs: its timeout, not the SDK, ends it.
		r, dir := setup(t, "sleep 60")
		until(r, v1.EventType_EVENT_FREEZE)
		start := time.Now()
		r.cancel()
		if err := r.waitRun(5 * time.Second); err != nil {
			t.Errorf("writer.Run returned %v", err)
		}
		if took := time.Since(start); took > 500*time.Millisecond+procgroup.KillGrace+time.Second {
			t.Errorf("release took %s with a 500ms abort timeout", took)
		}
		if exists(dir+"/frozen") || readFile(t, dir+"/aborts") != "1\n" {
			t.Error("the abort hook did not release on SIGTERM")
		}
	})
	t.Run("LvssdDies", func(t *testing.T) {
		r, dir := setup(t, "")
		until(r, v1.EventType_EVENT_FREEZE)
		r.co.Close()
		r.waitRun(5 * time.Second)
		if exists(dir+"/frozen") || readFile(t, dir+"/aborts") != "1\n" {
			t.Error("the abort hook did not release when lvssd died")
		}
	})
}

func TestDeadlineWarning(t *testing.T) {
	cfg := baseConfig(t)
	var buf logBuffer
	cfg.Logger = slogTo(&buf)
	cfg.Hooks = map[string]string{EventPrepareSnapshot: "true"}
	_, w := mustNew(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 2 {
		if err := w.PrepareSnapshot(ctx, event(writer.EventPrepareSnapshot, uuid.New())); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(buf.String(), "hook timeout is longer"); n != 1 {
		t.Errorf("%d deadline warnings, want 1:\n%s", n, buf.String())
	}
}

// The hooks' LVSS_POINT_IN_TIME follows the placements: 0 as soon as one
// of the writer's paths is in a snapshot copied file by file.
func TestEnvPointInTime(t *testing.T) {
	_, w := mustNew(t, baseConfig(t))
	for _, tc := range []struct {
		fileByFile bool
		want       string
	}{{false, "1"}, {true, "0"}} {
		ev := &writer.Event{SessionID: uuid.New(), Placements: []writer.Placement{
			{Path: "/srv/data", SnapshotID: uuid.New(), OriginalVolume: "/srv", Instant: 1},
			{Path: "/srv/logs", SnapshotID: uuid.New(), OriginalVolume: "/srv/logs", Instant: 1, FileByFile: tc.fileByFile},
		}}
		env := w.env("prepare-snapshot", ev, &session{})
		if !slices.Contains(env, "LVSS_POINT_IN_TIME="+tc.want) || !slices.Contains(env, "LVSS_SHARED_INSTANT=1") {
			t.Errorf("file by file %v: environment %q, want LVSS_POINT_IN_TIME=%s and LVSS_SHARED_INSTANT=1", tc.fileByFile, env, tc.want)
		}
	}
}
