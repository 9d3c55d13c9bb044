package exec

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// TestConformanceWithRestoreHooks: with restore hooks the writer declares
// VSS_WRE_ALWAYS, so the suite runs its restore subtests: a pre-restore
// hook that "stops" the application (a marker) and a post-restore hook
// that starts it again unless nothing usable was restored.
func TestConformanceWithRestoreHooks(t *testing.T) {
	var marker, stopped string
	opts := markerChecks(&marker)
	opts.CheckPreRestored = func(t *testing.T) {
		if !exists(stopped) {
			t.Errorf("after pre-restore the application is not stopped (no %s)", stopped)
		}
	}
	opts.CheckRestored = func(t *testing.T, status vss.FileRestoreStatus) {
		if want := status == vss.RSFailed; exists(stopped) != want {
			t.Errorf("after post-restore with %s: stopped=%v, want %v", status, exists(stopped), want)
		}
	}
	writertest.Run(t, func(t *testing.T) (writer.Identity, writer.Writer) {
		cfg := baseConfig(t)
		marker = filepath.Join(t.TempDir(), "frozen")
		stopped = filepath.Join(t.TempDir(), "stopped")
		cfg.Hooks = map[string]string{
			EventFreeze:      "touch " + sq(marker),
			EventThaw:        "rm -f " + sq(marker),
			EventPreRestore:  "touch " + sq(stopped),
			EventPostRestore: fmt.Sprintf(`[ "$LVSS_FILE_RESTORE_STATUS" = VSS_RS_FAILED ] && { echo "data damaged, not started" >&2; exit 1; }; rm -f %s`, sq(stopped)),
		}
		return mustNew(t, cfg)
	}, opts)
}

// TestRestoreEnvironment: the pre-restore and post-restore hooks get the
// restore facts of the components selected for restore (and of no
// other): target, file restore status, additional restores, options, new
// targets and, after the copy, the alternate locations used.
func TestRestoreEnvironment(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Components = append(cfg.Components, Component{Name: "logs", Path: t.TempDir()}, Component{Name: "cache", Path: t.TempDir()})
	dir := t.TempDir()
	dump := fmt.Sprintf("env -0 > %s/$LVSS_EVENT.env", sq(dir))
	cfg.Hooks = map[string]string{EventPreRestore: dump, EventPostRestore: dump}
	r := startRig(t, cfg)
	r.ok(r.ev(v1.EventType_EVENT_IDENTIFY))
	envOf := func(ev string) map[string]string {
		t.Helper()
		m := map[string]string{}
		for _, kv := range strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(dir, ev+".env")), "\x00"), "\x00") {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		return m
	}

	bcd := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull, RestoreType: vss.RestoreByCopy}
	for _, n := range []string{"data", "logs", "cache"} {
		if err := bcd.AddComponent(r.wc.InstanceID, r.id.ClassID, r.id.InstanceName, 0, vss.ComponentFileGroup, "", n); err != nil {
			t.Fatal(err)
		}
	}
	own := bcd.Writer(r.wc.InstanceID)
	data, logs := own.Component("", "data"), own.Component("", "logs")
	data.SelectedForRestore, data.RestoreTarget, data.RestoreOptions = true, vss.RTOriginal, "mode=fast\nverify=1"
	data.NewTargets = []document.FileDesc{{Path: "/srv/data", Filespec: "*", Recursive: true, AlternatePath: "/srv/data.new"}}
	logs.SelectedForRestore, logs.RestoreTarget, logs.AdditionalRestores = true, vss.RTAlternate, true
	send := func(typ v1.EventType) {
		t.Helper()
		b, err := bcd.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		e := r.ev(typ)
		e.SnapshotSetId, e.RestoreType, e.BcdXml = uuid.Nil.String(), int32(vss.RestoreByCopy), string(b)
		r.ok(e)
	}
	send(v1.EventType_EVENT_PRE_RESTORE)
	pre := envOf(EventPreRestore)
	for k, v := range map[string]string{
		"LVSS_EVENT":               "pre-restore",
		"LVSS_RESTORE_TYPE":        "VSS_RTYPE_BY_COPY",
		"LVSS_SELECTED_COMPONENTS": "data\nlogs",
		"LVSS_RESTORE_COMPONENTS":  "data\tVSS_RT_ORIGINAL\tVSS_RS_UNDEFINED\t0\nlogs\tVSS_RT_ALTERNATE\tVSS_RS_UNDEFINED\t1",
		"LVSS_RESTORE_OPTIONS":     "data\tmode=fast verify=1",
		"LVSS_NEW_TARGETS":         "data\t/srv/data\t*\t1\t/srv/data.new",
	} {
		if pre[k] != v {
			t.Errorf("pre-restore: %s=%q, want %q", k, pre[k], v)
		}
	}
	if _, ok := pre["LVSS_FILE_RESTORE_STATUS"]; ok {
		t.Error("pre-restore: LVSS_FILE_RESTORE_STATUS is set before the requester could say")
	}

	data.FileRestoreStatus, logs.FileRestoreStatus = vss.RSAll, vss.RSAll
	logs.AlternateLocationMappings = []document.AlternateMapping{{Path: "/srv/logs", Filespec: "*.log", Destination: "/restore/logs"}}
	send(v1.EventType_EVENT_POST_RESTORE)
	post := envOf(EventPostRestore)
	for k, v := range map[string]string{
		"LVSS_EVENT":               "post-restore",
		"LVSS_RESTORE_COMPONENTS":  "data\tVSS_RT_ORIGINAL\tVSS_RS_ALL\t0\nlogs\tVSS_RT_ALTERNATE\tVSS_RS_ALL\t1",
		"LVSS_FILE_RESTORE_STATUS": "VSS_RS_ALL",
		"LVSS_ALTERNATE_LOCATIONS": "logs\t/srv/logs\t*.log\t0\t/restore/logs",
	} {
		if post[k] != v {
			t.Errorf("post-restore: %s=%q, want %q", k, post[k], v)
		}
	}
	logs.FileRestoreStatus = vss.RSFailed
	send(v1.EventType_EVENT_POST_RESTORE)
	if got := envOf(EventPostRestore)["LVSS_FILE_RESTORE_STATUS"]; got != "mixed" {
		t.Errorf("post-restore with VSS_RS_ALL and VSS_RS_FAILED: LVSS_FILE_RESTORE_STATUS=%q, want mixed", got)
	}
}

// TestPreRestoreHookVetoes: a pre-restore hook that fails (the
// application cannot be stopped) fails PreRestore with its last stderr
// line, as every hook does.
func TestPreRestoreHookVetoes(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Hooks = map[string]string{EventPreRestore: "echo 'app still running (pid 42); stop it first' >&2; exit 75"}
	_, w := mustNew(t, cfg)
	err := w.PreRestore(t.Context(), event(writer.EventPreRestore, uuid.New()), nil)
	f := writertest.AsFailure(t, err)
	if f.Code != vsserr.WriterErrorRetryable || f.Message != "app still running (pid 42); stop it first" {
		t.Fatalf("PreRestore: %v", err)
	}
}
