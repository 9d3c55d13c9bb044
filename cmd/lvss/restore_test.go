package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// The archive of these tests is backupshow_test.go's sample: a full backup
// with the component files\data of writer "files" (instance name "main"),
// backed up, and postgres\data of writer "postgres", whose backup failed.

func pickNames(ps []*pick) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.name())
	}
	return out
}

func TestRestoreSelection(t *testing.T) {
	m, bcd, wmds := showSample(t)
	a, err := backupdoc.ReadFile(writeSample(t, m, bcd, wmds))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		specs      []string
		incomplete bool
		want       []string
		skipped    int
		code       vsserr.HRESULT // 0: selected
	}{
		// By default: what was backed up successfully; the rest is
		// skipped, and said so.
		{nil, false, []string{`files:files\data`}, 1, 0},
		{nil, true, []string{`files:files\data`, `postgres:postgres\data`}, 0, 0},
		// A writer by name, instance name or class ID (with or without
		// braces), alone or with its component, '\' or '/' between.
		{[]string{"files"}, false, []string{`files:files\data`}, 0, 0},
		{[]string{"FILES"}, false, []string{`files:files\data`}, 0, 0},
		{[]string{"main"}, false, []string{`files:files\data`}, 0, 0},
		{[]string{showFiles[1].String()}, false, []string{`files:files\data`}, 0, 0},
		{[]string{"{" + showFiles[1].String() + "}"}, false, []string{`files:files\data`}, 0, 0},
		{[]string{`files:files\data`}, false, []string{`files:files\data`}, 0, 0},
		{[]string{`files\files\data`}, false, []string{`files:files\data`}, 0, 0},
		{[]string{"files:files/data"}, false, []string{`files:files\data`}, 0, 0},
		{[]string{showFiles[1].String() + ":files/data"}, false, []string{`files:files\data`}, 0, 0},
		// Named twice, selected once.
		{[]string{"files", "files:files/data"}, false, []string{`files:files\data`}, 0, 0},
		// A component whose backup failed only with --allow-incomplete.
		{[]string{"postgres"}, false, nil, 0, vsserr.InvalidArg},
		{[]string{"postgres"}, true, []string{`postgres:postgres\data`}, 0, 0},
		// What the backup does not hold.
		{[]string{"nosuch"}, false, nil, 0, vsserr.ObjectNotFound},
		{[]string{"files:other"}, false, nil, 0, vsserr.ObjectNotFound},
		{[]string{"files:"}, false, nil, 0, vsserr.ObjectNotFound},
	} {
		picks, skipped, err := selectComponents(a, tc.specs, tc.incomplete)
		if tc.code != 0 {
			var se selectionError
			if !errors.Is(err, tc.code) || !errors.As(err, &se) {
				t.Errorf("%q: %v, want %s with a hint", tc.specs, err, tc.code.Name())
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.specs, err)
			continue
		}
		if got := pickNames(picks); !slices.Equal(got, tc.want) || len(skipped) != tc.skipped {
			t.Errorf("%q (incomplete %v): %v skipping %v, want %v skipping %d", tc.specs, tc.incomplete, got, skipped, tc.want, tc.skipped)
		}
	}
	picks, _, _ := selectComponents(a, nil, false)
	if !slices.Equal(picks[0].paths, []string{"/srv/files"}) {
		t.Errorf("paths of files:files\\data: %v", picks[0].paths)
	}
	// An archive where nothing succeeded: nothing to restore by default.
	m.Stage = backupdoc.StageSnapshot
	doc, _ := document.ParseBackupComponents([]byte(bcd))
	doc.Writers[0].Components[0].BackupSucceeded = false
	x, _ := doc.Marshal()
	a, err = backupdoc.ReadFile(writeSample(t, m, string(x), wmds))
	if err != nil {
		t.Fatal(err)
	}
	if _, skipped, err := selectComponents(a, nil, false); !errors.Is(err, vsserr.InvalidArg) || len(skipped) != 2 {
		t.Errorf("nothing succeeded: %v, %v", err, skipped)
	}
}

func TestRestoreFlags(t *testing.T) {
	m, bcd, wmds := showSample(t)
	file := writeSample(t, m, bcd, wmds)
	m.Stage = backupdoc.StageSnapshot
	early := writeSample(t, m, bcd, wmds)
	dir := t.TempDir()
	base := func() restoreOptions {
		return restoreOptions{bcd: file, target: "original", nothingWritten: defaultNothingWritten, command: []string{"true"}}
	}
	usage := func(o restoreOptions, says string) {
		t.Helper()
		_, err := o.plan()
		if !clierr.IsUsage(err) || !strings.Contains(err.Error(), says) {
			t.Errorf("%+v: %v, want a usage error saying %q", o, err, says)
		}
	}
	o := base()
	o.bcd = ""
	usage(o, "needs --bcd FILE")
	o = base()
	o.command = nil
	usage(o, "give one after --")
	o.dryRun = true
	if _, err := o.plan(); err != nil {
		t.Errorf("--dry-run needs no COMMAND: %v", err)
	}
	for _, tc := range []struct{ target, says string }{
		{"elsewhere", `--target "elsewhere"`},
		{"alternate:", "needs the directory"},
		{"alternate:" + filepath.Join(dir, "missing"), "is not a directory"},
	} {
		o = base()
		o.target = tc.target
		usage(o, tc.says)
	}
	for _, tc := range []struct{ rt, says string }{
		{"yesterday", "say time:TIMESTAMP"},
		{"time:", "give the time after the colon"},
		{"immediate:now", "immediate takes no value"},
	} {
		o = base()
		o.recoveryTarget = tc.rt
		usage(o, tc.says)
	}
	for _, tc := range []struct {
		opts []string
		rt   string
		says string
	}{
		{[]string{"novalue"}, "", "say KEY=VALUE"},
		{[]string{"Key=1"}, "", "lowercase"},
		{[]string{"a=1", "a=2"}, "", "given twice"},
		{[]string{"recovery_target_lsn=0/1"}, "time:x", "one recovery target at most"},
		{[]string{"recovery_target_time=x"}, "time:y", "given twice"},
	} {
		o = base()
		o.options, o.recoveryTarget = tc.opts, tc.rt
		usage(o, tc.says)
	}
	for _, n := range []int{0, 2, 256} {
		o = base()
		o.nothingWritten = n
		usage(o, "--nothing-written-status")
	}

	// What a good command line becomes.
	o = base()
	o.target = "alternate:" + dir
	o.recoveryTarget = "time:2026-12-06 13:56:59+00"
	o.options = []string{"app.mode=fast"}
	p, err := o.plan()
	if err != nil {
		t.Fatal(err)
	}
	if !p.alternate || p.root != dir || p.options != "app.mode=fast\nrecovery_target_time=2026-12-06 13:56:59+00" {
		t.Errorf("plan: alternate %v root %q options %q", p.alternate, p.root, p.options)
	}
	if got := p.targetOf("/srv/files"); got != filepath.Join(dir, "srv/files") {
		t.Errorf("targetOf: %q", got)
	}
	if len(p.warnings) != 1 || !strings.Contains(p.warnings[0], `postgres:postgres\data is not restored: its backup did not succeed`) {
		t.Errorf("warnings: %q", p.warnings)
	}
	env := p.restoreEnv()
	for _, want := range []string{"LVSS_RESTORE_TARGET=alternate", "LVSS_RESTORE_ROOT=" + dir, "LVSS_RESTORE_ARCHIVE=" + file,
		"LVSS_RESTORE_PATH_COUNT=1", "LVSS_RESTORE_PATH_1=/srv/files", "LVSS_RESTORE_PATH_1_TARGET=" + filepath.Join(dir, "srv/files"),
		"LVSS_COMPONENT_COUNT=1", `LVSS_COMPONENT_1=files:files\data`, "LVSS_RESTORE_NOTHING_WRITTEN=99",
		"LVSS_SNAPSHOT_SET_ID=" + showSet.String(), "LVSS_SNAPSHOT_COUNT=1", "LVSS_SNAPSHOT_1_ORIGINAL=/srv", "LVSS_BACKUP_TYPE=full",
		"LVSS_RESTORE_OPTIONS=app.mode=fast\nrecovery_target_time=2026-12-06 13:56:59+00"} {
		if !slices.Contains(env, want) {
			t.Errorf("COMMAND's environment lacks %q:\n%s", want, strings.Join(env, "\n"))
		}
	}

	// An archive of a backup that did not complete: refused unless
	// --allow-incomplete, which says so.
	o = base()
	o.bcd = early
	_, err = o.plan()
	var ia incompleteArchive
	if !errors.As(err, &ia) || !errors.Is(err, vsserr.InvalidArg) {
		t.Errorf("snapshot-stage archive: %v", err)
	}
	o.allowIncomplete = true
	if p, err := o.plan(); err != nil || len(p.picks) != 2 || !strings.Contains(p.warnings[0], `stage "snapshot"`) {
		t.Errorf("--allow-incomplete: %v", err)
	}
	// A file that is not an archive is the archive's error, with its hint.
	o = base()
	o.bcd = filepath.Join(dir, "nothing.lvss")
	if _, err := o.plan(); !errors.As(err, new(archiveError)) {
		t.Errorf("missing archive: %v", err)
	}
}

// TestRestoreCommandLine: the verb through the real root: exit statuses
// and error reports, before any daemon is needed.
func TestRestoreCommandLine(t *testing.T) {
	m, bcd, wmds := showSample(t)
	file := writeSample(t, m, bcd, wmds)
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"restore", "--bcd", file}, 2, "give one after --"},
		{[]string{"restore", "--bcd", file, "extra", "--", "true"}, 2, `unexpected argument "extra"`},
		{[]string{"restore", "--bcd", file, "--component", "nosuch", "--", "true"}, 1, "lvss backup show " + file},
		{[]string{"restore", "--bcd", file, "--", "true"}, 69, "not there"},
	} {
		code, _, errOut := runLvss(t, sock, "", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.says) {
			t.Errorf("lvss %q: exit %d, %q; want %d saying %q", tc.args, code, errOut, tc.code, tc.says)
		}
	}
	code, _, errOut := runLvss(t, sock, "", "--json", "restore", "--bcd", file, "--component", "postgres", "--", "true")
	if code != 1 || !strings.Contains(errOut, `"name":"E_INVALIDARG"`) || !strings.Contains(errOut, "--allow-incomplete") {
		t.Errorf("--json, a failed component: exit %d, %s", code, errOut)
	}
}

func TestRestoreFileStatus(t *testing.T) {
	p := &restorePlan{o: restoreOptions{nothingWritten: 42}}
	for _, tc := range []struct {
		res  *commandResult
		err  error
		want vss.FileRestoreStatus
	}{
		{&commandResult{status: 0}, nil, vss.RSAll},
		{&commandResult{status: 42}, commandExit{status: 42}, vss.RSNone},
		{&commandResult{status: -1}, commandExit{status: 125}, vss.RSNone},
		{&commandResult{status: 1}, commandExit{status: 1}, vss.RSFailed},
		{&commandResult{status: 143}, context.Canceled, vss.RSFailed},
		{&commandResult{status: 42}, context.Canceled, vss.RSFailed},
	} {
		if got := p.fileRestoreStatus(tc.res, tc.err); got != tc.want {
			t.Errorf("status %d, %v: %s, want %s", tc.res.status, tc.err, got, tc.want)
		}
	}
}

func TestRestoreTold(t *testing.T) {
	md := func(wre vss.WriterRestore, m vss.RestoreMethod) *document.WriterMetadata {
		return &document.WriterMetadata{RestoreMethod: document.RestoreMethod{Method: m, WriterRestore: wre}}
	}
	yes, no := true, false
	for _, tc := range []struct {
		md   *document.WriterMetadata
		rf   *bool
		want string
	}{
		{md(vss.WRENever, vss.RMERestoreIfCanReplace), nil, ""},
		{md(vss.WREAlways, vss.RMERestoreIfCanReplace), nil, "PreRestore,PostRestore"},
		{md(vss.WREUndefined, vss.RMECustom), nil, "PreRestore,PostRestore"},
		{md(vss.WREIfReplaceFails, vss.RMERestoreIfCanReplace), nil, "PreRestore,PostRestore if the replace fails"},
		{md(vss.WREIfReplaceFails, vss.RMERestoreIfNotThere), &yes, "PreRestore,PostRestore"},
		{md(vss.WREIfReplaceFails, vss.RMERestoreIfNotThere), &no, "PreRestore"},
		{md(vss.WREIfReplaceFails, vss.RMECustom), nil, "PreRestore"},
	} {
		if got := strings.Join(told(tc.md, tc.rf), ","); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.md.RestoreMethod.WriterRestore, tc.md.RestoreMethod.Method, got, tc.want)
		}
	}
}

// TestRestoreDocumented keeps docs/cli.md's section in step with the
// verb's flags and COMMAND's environment.
func TestRestoreDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## `lvss restore`\n")
	if start < 0 {
		t.Fatal("docs/cli.md has no section \"## `lvss restore`\"")
	}
	section := doc[start:]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	cmd := newRestoreCommand(&globalOptions{})
	flags := regexp.MustCompile(`(?m)^\s+(?:-\w, )?(--[a-z-]+)`).FindAllStringSubmatch(cmd.Flags().FlagUsages(), -1)
	if len(flags) < 10 {
		t.Fatalf("found %d flags in the usage:\n%s", len(flags), cmd.Flags().FlagUsages())
	}
	for _, f := range flags {
		if !strings.Contains(section, f[1]) {
			t.Errorf("docs/cli.md's lvss restore section does not mention %s", f[1])
		}
	}
	m, bcd, wmds := showSample(t)
	p, err := restoreOptions{bcd: writeSample(t, m, bcd, wmds), target: "original", nothingWritten: 99, command: []string{"true"}}.plan()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range p.restoreEnv() {
		name, _, _ := strings.Cut(kv, "=")
		generic := regexp.MustCompile(`_[0-9]+(_|$)`).ReplaceAllString(name, "_<n>$1")
		if !strings.Contains(section, "`"+generic+"`") {
			t.Errorf("docs/cli.md's lvss restore section does not list %s", generic)
		}
		if !strings.Contains(cmd.Long, strings.SplitN(generic, "_<n>", 2)[0]) {
			t.Errorf("lvss restore --help does not mention %s", generic)
		}
	}
}
