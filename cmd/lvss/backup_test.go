package main

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/vss"
)

func TestOutermost(t *testing.T) {
	got := outermost([]string{"/srv/db/wal", "/srv/db", "/srv/dbx", "/var/lib", "/srv/db/"})
	if want := []string{"/srv/db", "/srv/dbx", "/var/lib"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestTopComponents(t *testing.T) {
	md := &document.WriterMetadata{Components: []document.Component{
		{Name: "db", Type: vss.ComponentFileGroup},
		{LogicalPath: `db`, Name: "wal", Type: vss.ComponentFileGroup},
		{LogicalPath: `db\wal`, Name: "old", Type: vss.ComponentFileGroup},
		{LogicalPath: `dbx`, Name: "other", Type: vss.ComponentFileGroup},
	}}
	var names []string
	for _, c := range topComponents(md) {
		names = append(names, joinLogical(c.LogicalPath, c.Name))
	}
	if want := []string{"db", `dbx\other`}; !slices.Equal(names, want) {
		t.Fatalf("got %v, want %v", names, want)
	}
}

func TestExcludeLines(t *testing.T) {
	md := &document.WriterMetadata{ExcludeFiles: []document.FileSpec{
		{Path: "/srv/db", Filespec: "*.tmp", Recursive: true},
		{Path: "/srv/db/", Filespec: "lock?", Recursive: false},
	}}
	wmds := map[uuid.UUID]*document.WriterMetadata{uuid.New(): md}
	snaps := []client.SnapshotProp{{OriginalVolume: "/srv", DevicePath: "/srv/.lvss-snapshots/s1"}}
	where := func(dir string) string { return inSnapshot(dir, snaps) }
	for _, tc := range []struct {
		format string
		want   []string
	}{
		{"restic", []string{"/srv/.lvss-snapshots/s1/db/**/*.tmp", "/srv/.lvss-snapshots/s1/db/*.tmp", "/srv/.lvss-snapshots/s1/db/lock?"}},
		{"borg", []string{`re:^srv/\.lvss-snapshots/s1/db/(.*/)?[^/]*\.tmp$`, `re:^srv/\.lvss-snapshots/s1/db/lock[^/]$`}},
		{"tar", []string{"/srv/.lvss-snapshots/s1/db/*.tmp", "/srv/.lvss-snapshots/s1/db/lock?"}},
		{"rsync", []string{"/srv/.lvss-snapshots/s1/db/**/*.tmp", "/srv/.lvss-snapshots/s1/db/*.tmp", "/srv/.lvss-snapshots/s1/db/lock?"}},
	} {
		if got := excludeLines(tc.format, wmds, where); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.format, got, tc.want)
		}
	}
	// Outside every snapshot, a path stays as it is.
	if got := inSnapshot("/home/x", snaps); got != "/home/x" {
		t.Fatalf("inSnapshot outside: %s", got)
	}
}

// The characters a glob or a tool's file syntax gives a meaning to are
// literal in a directory name and in a filespec (but for the filespec's
// own wildcards). This quoting was tried by hand with the real tools
// (restic 0.14, GNU tar 1.34, rsync 3.5, borg 1.2): each pattern excludes its
// file and not one in a look-alike directory ("a 1" for "a [1]").
func TestExcludeQuoting(t *testing.T) {
	for _, tc := range []struct {
		dir, spec, format string
		want              []string
	}{
		{"/d/a [1]", "lock", "restic", []string{"/d/a [[]1]/lock"}},
		{"/d/a [1]", "lock", "tar", []string{"/d/a [[]1]/lock"}},
		{"/d/a [1]", "lock", "rsync", []string{"/d/a [[]1]/lock"}},
		{"/d/a*b", "*.tmp", "tar", []string{"/d/a[*]b/*.tmp"}},
		{"/d/a?b", "x", "rsync", []string{"/d/a[?]b/x"}},
		{`/d/a\b`, "x", "restic", []string{`/d/a[\\]b/x`}},
		{"/d/x]y", "x", "restic", []string{"/d/x]y/x"}},
		// restic expands $NAME in its exclude file; $$ is a '$'.
		{"/d/$HOME", "*", "restic", []string{"/d/$$HOME/*"}},
		{"/d/$HOME", "*", "rsync", []string{"/d/$HOME/*"}},
		// A filespec's '[' is literal: only '*' and '?' are wildcards in VSS.
		{"/d", "f[1].log", "tar", []string{"/d/f[[]1].log"}},
		{"/d/a [1]", "*.tmp", "borg", []string{`re:^d/a \[1\]/[^/]*\.tmp$`}},
		{"/d/$HOME", "f[1]", "borg", []string{`re:^d/\$HOME/f\[1\]$`}},
		// The root: one '/', and borg's paths have none.
		{"/", "*.tmp", "restic", []string{"/*.tmp"}},
		{"/", "*.tmp", "tar", []string{"/*.tmp"}},
		{"/", "*.tmp", "borg", []string{`re:^[^/]*\.tmp$`}},
	} {
		if got := excludeFormats[tc.format](tc.dir, tc.spec, false); !slices.Equal(got, tc.want) {
			t.Errorf("%s %q %q: got %q, want %q", tc.format, tc.dir, tc.spec, got, tc.want)
		}
	}
	for _, tc := range []struct {
		format string
		want   []string
	}{
		{"rsync", []string{"/*.tmp", "/**/*.tmp"}},
		{"borg", []string{`re:^(.*/)?[^/]*\.tmp$`}},
	} {
		if got := excludeFormats[tc.format]("/", "*.tmp", true); !slices.Equal(got, tc.want) {
			t.Errorf("%s / *.tmp recursive: got %q, want %q", tc.format, got, tc.want)
		}
	}
}

func TestWriterMatches(t *testing.T) {
	class := uuid.New()
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"PostgreSQL", true}, {"postgresql", true}, {"main", true}, {class.String(), true},
		{"{" + class.String() + "}", true}, {"mysql", false}, {uuid.NewString(), false},
	} {
		if got := writerMatches(tc.name, "PostgreSQL", "main", class); got != tc.want {
			t.Errorf("%q: %v", tc.name, got)
		}
	}
}

func TestCommandExitHints(t *testing.T) {
	for status, want := range map[int]string{125: "could not be started", 126: "could not be run", 127: "was not found", 7: ""} {
		r := clierr.New(commandExit{status: status, err: errors.New("x")}, clierr.Command, "lvss backup")
		if want == "" && r.Hint != "" || !strings.Contains(r.Hint, want) {
			t.Errorf("status %d: hint %q, want %q", status, r.Hint, want)
		}
	}
}

// lvss backup reports how long its writers were held frozen, read from
// the event log entries its own session logged since DoSnapshotSet began
// (not from the whole log, which may hold 100,000 entries).
func TestBackupReportsWritersHeldFrozen(t *testing.T) {
	srv := startLvssd(t)
	vol := srv.Volume(t, "srv")
	runTestWriter(t, srv.Socket, "files", "", vss.LevelFrontEnd, newTestWriter(vol))
	// An earlier backup's entries are in the log too.
	for range 2 {
		code, out, errOut := runLvss(t, srv.Socket, "", "--json", "backup", "--writer", "files", "--", "true")
		if code != 0 {
			t.Fatalf("exit %d: %s\n%s", code, errOut, out)
		}
		var sum struct {
			WritersFrozen *float64 `json:"writers_frozen_ms"`
		}
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if sum.WritersFrozen == nil || *sum.WritersFrozen <= 0 {
			t.Errorf("writers_frozen_ms = %v in\n%s", sum.WritersFrozen, out)
		}
	}
}
