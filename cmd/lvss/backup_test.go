package main

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
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
