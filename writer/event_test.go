package writer_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

func TestIsPathAffected(t *testing.T) {
	snap := uuid.New()
	ev := &writer.Event{
		Volumes: []string{"/srv", "/var/lib/pg/"},
		Placements: []writer.Placement{
			{Path: "/srv/db", SnapshotID: snap, OriginalVolume: "/srv", Instant: 1},
			// A filesystem mounted inside /srv that the set does not hold.
			{Path: "/srv/nested"},
		},
	}
	for path, want := range map[string]bool{
		"/srv":                 true,
		"/srv/file":            true,
		"/srv/db/base/1":       true,
		"/srv/nested/x":        false,
		"/srvx":                false,
		"/var/lib/pg":          true,
		"/var/lib/pg/data/../": true,
		"/var/lib":             false,
		"/home/user":           false,
	} {
		if got := ev.IsPathAffected(path); got != want {
			t.Errorf("IsPathAffected(%q) = %v, want %v", path, got, want)
		}
	}
	root := &writer.Event{Volumes: []string{"/"}}
	if !root.IsPathAffected("/anything/at/all") {
		t.Error("a set holding / does not affect every path")
	}
}

func TestSharedInstant(t *testing.T) {
	s1, s2 := uuid.New(), uuid.New()
	ev := &writer.Event{Placements: []writer.Placement{
		{Path: "/pg/data", SnapshotID: s1, OriginalVolume: "/pg", Instant: 1},
		{Path: "/pg/wal", SnapshotID: s1, OriginalVolume: "/pg", Instant: 1},
		{Path: "/logs", SnapshotID: s2, OriginalVolume: "/logs", Instant: 2},
		{Path: "/scratch"},
	}}

	if err := ev.SharedInstant("/pg/data", "/pg/wal/000001", "/pg/data/base"); err != nil {
		t.Errorf("paths of one instant: %v", err)
	}
	if err := ev.SharedInstant(); err != nil {
		t.Errorf("no paths: %v", err)
	}

	err := ev.SharedInstant("/pg/data", "/logs")
	if !errors.Is(err, vsserr.WriterErrorInconsistentSnapshot) {
		t.Fatalf("paths of two instants: %v, want %s", err, vsserr.WriterErrorInconsistentSnapshot)
	}
	for _, want := range []string{`"/pg/data" is in snapshot ` + s1.String() + ` of "/pg" (instant 1)`, `"/logs" is in snapshot ` + s2.String() + ` of "/logs" (instant 2)`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}

	for _, missing := range []string{"/scratch/tmp", "/elsewhere"} {
		err = ev.SharedInstant("/pg/data", missing)
		if !errors.Is(err, vsserr.WriterErrorInconsistentSnapshot) || !strings.Contains(err.Error(), `"`+missing+`" is in no snapshot of the set`) {
			t.Errorf("path %s in no snapshot: %v", missing, err)
		}
	}
}

func TestPointInTime(t *testing.T) {
	s1, s2 := uuid.New(), uuid.New()
	ev := &writer.Event{Placements: []writer.Placement{
		{Path: "/pg/data", SnapshotID: s1, OriginalVolume: "/pg", Instant: 1},
		{Path: "/copied", SnapshotID: s2, OriginalVolume: "/copied", Instant: 2, FileByFile: true},
		{Path: "/scratch"},
	}}
	if err := ev.PointInTime("/pg/data", "/pg/data/base"); err != nil {
		t.Errorf("paths in a point-in-time snapshot: %v", err)
	}
	if err := ev.PointInTime("/scratch", "/elsewhere"); err != nil {
		t.Errorf("paths in no snapshot are SharedInstant's to report: %v", err)
	}
	err := ev.PointInTime("/pg/data", "/copied/db")
	if !errors.Is(err, vsserr.WriterErrorInconsistentSnapshot) {
		t.Fatalf("a path copied file by file: %v, want %s", err, vsserr.WriterErrorInconsistentSnapshot)
	}
	if want := `"/copied/db" (snapshot ` + s2.String() + ` of "/copied")`; !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "/pg/data") {
		t.Errorf("message %q should name %s and only it", err, want)
	}
}
