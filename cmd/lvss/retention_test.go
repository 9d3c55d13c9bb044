package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
)

// These test selectRetention, the pure rule behind --keep and
// --older-than, on made-up listings.

var retNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// snap is a snapshot of vol in c (persistent unless the test says
// otherwise), created age before retNow. name (up to 6 bytes) becomes the
// last bytes of its ID, so that tests can name it and ties in creation
// time are broken by name.
func snap(name, vol string, c vss.Context, age time.Duration) client.SnapshotProp {
	id := uuid.MustParse(fmt.Sprintf("00000000-0000-4000-8000-%012x", []byte(name + "\x00\x00\x00\x00\x00\x00")[:6]))
	return client.SnapshotProp{SnapshotID: id, SnapshotSetID: uuid.New(), SnapshotsCount: 1, OriginalVolume: vol,
		Context: c, Created: retNow.Add(-age), SessionID: uuid.New()}
}

// verdicts maps each snapshot's name to "verdict/code".
func verdicts(ds []decision) map[string]string {
	out := map[string]string{}
	for _, d := range ds {
		out[p2name(d.snap)] = d.verdict + "/" + d.code
	}
	return out
}

// p2name is the name snap gave the snapshot.
func p2name(p client.SnapshotProp) string {
	return strings.TrimRight(string(p.SnapshotID[10:]), "\x00")
}

func checkVerdicts(t *testing.T, ds []decision, want map[string]string) {
	t.Helper()
	got := verdicts(ds)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %q, want no decision", k, v)
		}
	}
}

const day = 24 * time.Hour

func TestRetentionKeepPerVolumeAndContext(t *testing.T) {
	ca, ar := vss.CtxClientAccessible, vss.CtxAppRollback
	snaps := []client.SnapshotProp{
		// /srv, client-accessible: four, the newest two stay.
		snap("s1", "/srv", ca, 4*day), snap("s2", "/srv", ca, 3*day), snap("s3", "/srv", ca, 2*day), snap("s4", "/srv", ca, day),
		// /srv, app rollback (an extra attribute is the same context):
		// three hourly ones, which do not push out the others.
		snap("a1", "/srv", ar|vss.Context(vss.AttrDifferential), 3*time.Hour), snap("a2", "/srv", ar, 2*time.Hour),
		snap("a3", "/srv", ar, time.Hour),
		// /home: one, kept.
		snap("h1", "/home", ca, 10*day),
	}
	ds := selectRetention(snaps, retNow, retention{keep: 2})
	checkVerdicts(t, ds, map[string]string{
		"s1": "delete/beyond_keep", "s2": "delete/beyond_keep", "s3": "keep/newest", "s4": "keep/newest",
		"a1": "delete/beyond_keep", "a2": "keep/newest", "a3": "keep/newest",
		"h1": "keep/newest",
	})
	// Ordered by volume, context, oldest first.
	var order []string
	for _, d := range ds {
		order = append(order, p2name(d.snap))
	}
	if want := []string{"h1", "a1", "a2", "a3", "s1", "s2", "s3", "s4"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	for _, d := range ds {
		if d.code == reasonBeyondKeep && d.reason != "not one of the newest 2" || d.code == reasonNewest && d.reason != "one of the newest 2" {
			t.Errorf("reason %q", d.reason)
		}
	}
	// --keep 0 deletes every persistent snapshot in scope.
	checkVerdicts(t, selectRetention(snaps[7:], retNow, retention{keep: 0}), map[string]string{"h1": "delete/beyond_keep"})
}

func TestRetentionContextFilter(t *testing.T) {
	ca, ar := vss.CtxClientAccessible, vss.CtxAppRollback
	snaps := []client.SnapshotProp{snap("c1", "/srv", ca, 3*day), snap("c2", "/srv", ca, 2*day), snap("r1", "/srv", ar, 5*day)}
	// Only app rollback is looked at; client-accessible ones are not
	// even mentioned.
	checkVerdicts(t, selectRetention(snaps, retNow, retention{keep: 0, context: ar, hasContext: true}),
		map[string]string{"r1": "delete/beyond_keep"})
}

func TestRetentionTies(t *testing.T) {
	// Three snapshots made at the same instant: the ranking goes by ID
	// (the greater one counts as newer), the same way every time.
	ca := vss.CtxClientAccessible
	snaps := []client.SnapshotProp{snap("t2", "/srv", ca, day), snap("t3", "/srv", ca, day), snap("t1", "/srv", ca, day)}
	want := map[string]string{"t3": "keep/newest", "t2": "delete/beyond_keep", "t1": "delete/beyond_keep"}
	for range 3 {
		checkVerdicts(t, selectRetention(snaps, retNow, retention{keep: 1}), want)
		slices.Reverse(snaps)
		snaps[0], snaps[1] = snaps[1], snaps[0]
	}
	// A snapshot created exactly at the cutoff is not older than it.
	at := snap("at", "/srv", ca, 2*day)
	checkVerdicts(t, selectRetention([]client.SnapshotProp{at}, retNow, retention{keep: -1, olderThan: 2 * day, olderThanText: "2d"}),
		map[string]string{"at": "keep/newer"})
	at.Created = at.Created.Add(-time.Nanosecond)
	checkVerdicts(t, selectRetention([]client.SnapshotProp{at}, retNow, retention{keep: -1, olderThan: 2 * day, olderThanText: "2d"}),
		map[string]string{"at": "delete/older_than"})
}

func TestRetentionOlderThanAndBoth(t *testing.T) {
	ca := vss.CtxClientAccessible
	snaps := []client.SnapshotProp{snap("d40", "/srv", ca, 40*day), snap("d35", "/srv", ca, 35*day), snap("d31", "/srv", ca, 31*day),
		snap("d10", "/srv", ca, 10*day), snap("d1", "/srv", ca, day)}
	checkVerdicts(t, selectRetention(snaps, retNow, retention{keep: -1, olderThan: 30 * day, olderThanText: "30d"}), map[string]string{
		"d40": "delete/older_than", "d35": "delete/older_than", "d31": "delete/older_than", "d10": "keep/newer", "d1": "keep/newer"})
	// Both: the newest 4 stay whatever their age; of the rest only what
	// is older than 30 days goes.
	checkVerdicts(t, selectRetention(snaps, retNow, retention{keep: 4, olderThan: 30 * day, olderThanText: "30d"}), map[string]string{
		"d40": "delete/beyond_keep_and_older_than", "d35": "keep/newest", "d31": "keep/newest", "d10": "keep/newest", "d1": "keep/newest"})
	// Both, the other way round: beyond the newest 1, but young.
	checkVerdicts(t, selectRetention(snaps, retNow, retention{keep: 1, olderThan: 36 * day, olderThanText: "36d"}), map[string]string{
		"d40": "delete/beyond_keep_and_older_than", "d35": "keep/newer", "d31": "keep/newer", "d10": "keep/newer", "d1": "keep/newest"})
	ds := selectRetention(snaps[:1], retNow, retention{keep: 0, olderThan: 30 * day, olderThanText: "30d"})
	if want := "not one of the newest 0, and created before the cutoff 2026-10-26T12:00:00Z (--older-than 30d)"; ds[0].reason != want {
		t.Errorf("reason %q\nwant   %q", ds[0].reason, want)
	}
}

func TestRetentionNeverDeletes(t *testing.T) {
	ca := vss.CtxClientAccessible
	exposed := snap("exp", "/srv", ca, 5*day)
	exposed.ExposedName = "/mnt/monday"
	running := snap("run", "/srv", ca, 4*day) // persistent, its session still runs
	running.LiveSession = true
	auto := snap("auto", "/srv", vss.CtxBackup, 6*day) // a backup's auto-release snapshot
	auto.AutoRelease, auto.LiveSession = true, true
	orphan := snap("orph", "/srv", vss.CtxFileShareBackup, 7*day) // auto-release, its session ended
	orphan.AutoRelease = true
	old := snap("old", "/srv", ca, 3*day)
	newest := snap("new", "/srv", ca, day)
	snaps := []client.SnapshotProp{exposed, running, auto, orphan, old, newest}
	want := map[string]string{"exp": "skip/exposed", "run": "skip/session_running", "auto": "skip/auto_release",
		"orph": "skip/auto_release", "old": "delete/beyond_keep", "new": "keep/newest"}
	checkVerdicts(t, selectRetention(snaps, retNow, retention{keep: 1}), want)
	// The running session's snapshot is not counted among the newest: with
	// --keep 2 the two kept are new and old, and the exposed one, third,
	// would go.
	want["old"] = "keep/newest"
	checkVerdicts(t, selectRetention(snaps, retNow, retention{keep: 2}), want)
	// An exposed snapshot among the newest is simply kept.
	want["exp"], want["old"] = "keep/newest", "keep/newest"
	checkVerdicts(t, selectRetention(snaps, retNow, retention{keep: 3}), want)
	for _, d := range selectRetention(snaps, retNow, retention{keep: 0}) {
		switch p2name(d.snap) {
		case "exp":
			if !strings.Contains(d.reason, "exposed at /mnt/monday") || !strings.Contains(d.reason, "lvss unexpose "+d.snap.SnapshotID.String()) {
				t.Errorf("exposed: %q", d.reason)
			}
		case "auto":
			if !strings.Contains(d.reason, "still running") {
				t.Errorf("auto-release: %q", d.reason)
			}
		case "orph":
			if !strings.Contains(d.reason, "has ended") {
				t.Errorf("orphan: %q", d.reason)
			}
		}
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30d": 30 * day, "12h": 12 * time.Hour, "90m": 90 * time.Minute, "1w": 7 * day, "1d12h": 36 * time.Hour,
		"1.5d": 36 * time.Hour, "2w3d": 17 * day, "45s": 45 * time.Second, "1h30m": 90 * time.Minute, ".5d": 12 * time.Hour,
	} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "30", "d", "-1d", "+1d", "0d", "0s", " 1d", "1y", "3dd", "1d-2h", "1.2.3d", "1.2.3h", "9999999999d", ".d", "1d 2h"} {
		if got, err := parseAge(in); err == nil {
			t.Errorf("%q: %v, want an error", in, got)
		}
	}
}

// --max-per-volume bounds a volume's snapshots of every kind: past --keep,
// the oldest of those retention looks at go until the volume is within the
// bound, never one of another context (a backup's), an exposed one
// (skipped), or another volume's.
func TestRetentionMaxPerVolume(t *testing.T) {
	ca, ar := vss.CtxClientAccessible, vss.CtxAppRollback
	live := snap("b1", "/srv", vss.CtxBackup, time.Minute)
	live.AutoRelease, live.LiveSession = true, true
	exposed := snap("c2", "/srv", ca, 3*day)
	exposed.ExposedName = "/mnt/c2"
	snaps := []client.SnapshotProp{
		snap("c1", "/srv", ca, 4*day), exposed, snap("c3", "/srv", ca, 2*day), snap("c4", "/srv", ca, day),
		snap("a1", "/srv", ar, 5*day), snap("a2", "/srv", ar, 2*day), snap("a3", "/srv", ar, time.Hour), live,
		snap("h1", "/home", ca, 10*day), snap("h2", "/home", ca, 9*day),
	}
	// /srv holds 8; --keep 3 drops c1 (7 left); the bound of 5 takes c2
	// (exposed: skipped), then c3 and c4: 5 left. The app-rollback ones
	// and the backup's are not this run's; /home holds 2.
	ds := selectRetention(snaps, retNow, retention{keep: 3, context: ca, hasContext: true, maxPerVolume: 5})
	checkVerdicts(t, ds, map[string]string{
		"c1": "delete/beyond_keep", "c2": "skip/exposed", "c3": "delete/beyond_max_per_volume", "c4": "delete/beyond_max_per_volume",
		"h1": "keep/newest", "h2": "keep/newest",
	})
	for _, d := range ds {
		if d.code == reasonBeyondMax && d.reason != "/srv holds 7 snapshots of every kind, more than --max-per-volume 5" &&
			d.reason != "/srv holds 6 snapshots of every kind, more than --max-per-volume 5" {
			t.Errorf("reason %q", d.reason)
		}
	}
	// Without --context every persistent kind may go, oldest first.
	ds = selectRetention(snaps, retNow, retention{keep: -1, maxPerVolume: 6})
	checkVerdicts(t, ds, map[string]string{
		"a1": "delete/beyond_max_per_volume", "c1": "delete/beyond_max_per_volume", "c2": "keep/within_max_per_volume",
		"c3": "keep/within_max_per_volume", "c4": "keep/within_max_per_volume", "a2": "keep/within_max_per_volume",
		"a3": "keep/within_max_per_volume", "b1": "skip/auto_release", "h1": "keep/within_max_per_volume", "h2": "keep/within_max_per_volume",
	})
}
