package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// shadowInfo is one snapshot of `lvss list shadows --json`.
type shadowInfo struct {
	ID             string `json:"snapshot_id"`
	OriginalVolume string `json:"original_volume"`
	SnapshotPath   string `json:"snapshot_path"`
	Context        string `json:"context"`
	Created        string `json:"created"`
	ExposedPath    string `json:"exposed_path"`
}

func (s shadowInfo) created(t *testing.T) time.Time {
	t.Helper()
	c, err := time.Parse(time.RFC3339Nano, s.Created)
	if err != nil {
		t.Fatalf("created %q: %v", s.Created, err)
	}
	return c
}

// retentionRun is `lvss delete shadows --json` with --keep/--older-than.
type retentionRun struct {
	DryRun bool `json:"dry_run"`
	Rule   struct {
		Cutoff string `json:"cutoff"`
	} `json:"rule"`
	Selected   []retentionEntry `json:"selected"`
	Deleted    []string         `json:"deleted"`
	NotDeleted []string         `json:"not_deleted"`
	Kept       []retentionEntry `json:"kept"`
	Skipped    []retentionEntry `json:"skipped"`
	Failed     any              `json:"failed"`
}

type retentionEntry struct {
	ID     string `json:"snapshot_id"`
	Code   string `json:"reason_code"`
	Reason string `json:"reason"`
}

// verdicts maps each snapshot ID to "list/reason_code".
func (r retentionRun) verdicts() map[string]string {
	out := map[string]string{}
	for _, e := range r.Selected {
		out[e.ID] = "selected/" + e.Code
	}
	for _, e := range r.Kept {
		out[e.ID] = "kept/" + e.Code
	}
	for _, e := range r.Skipped {
		out[e.ID] = "skipped/" + e.Code
	}
	return out
}

func lvssRetention(t *testing.T, socket string, argv ...string) retentionRun {
	t.Helper()
	res := lvssdtest.Lvss(t, socket, "", append([]string{"delete", "shadows", "--json"}, argv...)...)
	if res.Code != 0 {
		t.Fatalf("lvss delete shadows %v: exit %d\n%s\n%s", argv, res.Code, res.Stdout, res.Stderr)
	}
	var r retentionRun
	if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
		t.Fatalf("lvss delete shadows %v: %v\n%s", argv, err, res.Stdout)
	}
	if r.Failed != nil || len(r.NotDeleted) != 0 && !r.DryRun {
		t.Fatalf("lvss delete shadows %v: %s", argv, res.Stdout)
	}
	return r
}

// subvolumes lists the paths of the btrfs's subvolumes, relative to its
// top level, as btrfs-progs sees them (not through lvss).
func subvolumes(t *testing.T, mount string) []string {
	t.Helper()
	out, err := exec.Command("btrfs", "subvolume", "list", mount).CombinedOutput()
	if err != nil {
		t.Fatalf("btrfs subvolume list: %v\n%s", err, out)
	}
	var paths []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			paths = append(paths, f[len(f)-1])
		}
	}
	return paths
}

// holdsSnapshot reports whether a subvolume of the list is the snapshot.
func holdsSnapshot(paths []string, id string) bool {
	return slices.ContainsFunc(paths, func(p string) bool { return filepath.Base(p) == id })
}

// TestRetentionBtrfs: persistent snapshots made with `lvss create shadow`
// in two contexts on two btrfs subvolumes, one of them exposed; `lvss
// delete shadows` with --dry-run deletes nothing, --keep 2 keeps the
// newest two of each volume and context and never the exposed one, and
// --older-than deletes by age; btrfs itself no longer has what was
// deleted.
func TestRetentionBtrfs(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("btrfs"); err != nil {
		testenv.Missing(t, "btrfs (apt-get install btrfs-progs)")
	}
	fs := testenv.LoopFS(t, "btrfs", 512<<20)
	vols := map[string]string{}
	for _, name := range []string{"srv", "home"} {
		vols[name] = filepath.Join(fs.Mount, name)
		if out, err := exec.Command("btrfs", "subvolume", "create", vols[name]).CombinedOutput(); err != nil {
			t.Fatalf("btrfs subvolume create: %v\n%s", err, out)
		}
		if err := os.WriteFile(filepath.Join(vols[name], "data"), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, shortTimeouts)

	// Made one after another, so created in this order: per volume, four
	// client-accessible snapshots and three app-rollback ones, interleaved.
	type made struct{ vol, ctx string }
	plan := []made{
		{"srv", "client_accessible"}, {"home", "client_accessible"}, {"srv", "app_rollback"}, {"home", "app_rollback"},
		{"srv", "client_accessible"}, {"home", "client_accessible"}, {"srv", "app_rollback"}, {"home", "app_rollback"},
		{"srv", "client_accessible"}, {"home", "client_accessible"}, {"srv", "app_rollback"}, {"home", "app_rollback"},
		{"srv", "client_accessible"}, {"home", "client_accessible"},
	}
	byKey := map[made][]string{} // IDs of each volume and context, oldest first
	for _, m := range plan {
		res := lvssdtest.Lvss(t, d.socket, "", "create", "shadow", "--for", vols[m.vol], "--context", m.ctx, "--provider", "btrfs", "--json")
		var created struct {
			Snapshots []shadowInfo `json:"snapshots"`
		}
		if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &created) != nil || len(created.Snapshots) != 1 {
			t.Fatalf("lvss create shadow %v: exit %d\n%s\n%s", m, res.Code, res.Stdout, res.Stderr)
		}
		byKey[m] = append(byKey[m], created.Snapshots[0].ID)
	}
	srvCA, homeCA := byKey[made{"srv", "client_accessible"}], byKey[made{"home", "client_accessible"}]
	srvAR, homeAR := byKey[made{"srv", "app_rollback"}], byKey[made{"home", "app_rollback"}]

	// The oldest client-accessible snapshot of srv is exposed (mounted).
	exposeAt, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A failed test must not leave the loop filesystem busy.
		lvssdtest.Lvss(t, d.socket, "", "unexpose", srvCA[0])
		unix.Unmount(exposeAt, unix.MNT_DETACH)
	})
	if res := lvssdtest.Lvss(t, d.socket, "", "expose", srvCA[0], exposeAt); res.Code != 0 {
		t.Fatalf("lvss expose: exit %d\n%s", res.Code, res.Stderr)
	}

	listed := func() map[string]shadowInfo {
		t.Helper()
		res := lvssdtest.Lvss(t, d.socket, "", "list", "shadows", "--json")
		var ss []shadowInfo
		if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &ss) != nil {
			t.Fatalf("lvss list shadows: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		out := map[string]shadowInfo{}
		for _, s := range ss {
			out[s.ID] = s
		}
		return out
	}
	all := listed()
	if len(all) != len(plan) {
		t.Fatalf("listed %d snapshots, made %d", len(all), len(plan))
	}
	// Creation times follow the order of creation (btrfs records them
	// with nanoseconds): the newest two are the last two made.
	for _, ids := range byKey {
		for i := 1; i < len(ids); i++ {
			if !all[ids[i-1]].created(t).Before(all[ids[i]].created(t)) {
				t.Fatalf("%s was made before %s but is not older: %s, %s", ids[i-1], ids[i], all[ids[i-1]].Created, all[ids[i]].Created)
			}
		}
	}
	before := subvolumes(t, fs.Mount)
	for id := range all {
		if !holdsSnapshot(before, id) {
			t.Fatalf("btrfs has no subvolume for snapshot %s: %v", id, before)
		}
	}

	// --keep 2: per volume and context, all but the newest two go; the
	// exposed srv one is skipped instead.
	want := map[string]string{
		srvCA[0]: "skipped/exposed", srvCA[1]: "selected/beyond_keep", srvCA[2]: "kept/newest", srvCA[3]: "kept/newest",
		homeCA[0]: "selected/beyond_keep", homeCA[1]: "selected/beyond_keep", homeCA[2]: "kept/newest", homeCA[3]: "kept/newest",
		srvAR[0]: "selected/beyond_keep", srvAR[1]: "kept/newest", srvAR[2]: "kept/newest",
		homeAR[0]: "selected/beyond_keep", homeAR[1]: "kept/newest", homeAR[2]: "kept/newest",
	}
	dry := lvssRetention(t, d.socket, "--for", vols["srv"], "--for", vols["home"], "--keep", "2", "--dry-run")
	if got := dry.verdicts(); !sameVerdicts(got, want) || !dry.DryRun || len(dry.Deleted) != 0 || len(dry.NotDeleted) != 5 {
		t.Fatalf("dry run: %+v\nwant %v", dry, want)
	}
	if after := subvolumes(t, fs.Mount); !slices.Equal(after, before) || len(listed()) != len(plan) {
		t.Fatalf("the dry run deleted something: btrfs has %v, had %v", after, before)
	}

	run := lvssRetention(t, d.socket, "--for", vols["srv"], "--for", vols["home"], "--keep", "2")
	if got := run.verdicts(); !sameVerdicts(got, want) || run.DryRun || len(run.Deleted) != 5 {
		t.Fatalf("--keep 2: %+v\nwant %v", run, want)
	}
	gone := []string{srvCA[1], homeCA[0], homeCA[1], srvAR[0], homeAR[0]}
	if !sameSet(run.Deleted, gone) {
		t.Errorf("deleted %v, want %v", run.Deleted, gone)
	}
	after := subvolumes(t, fs.Mount)
	now := listed()
	for id, s := range all {
		deleted := slices.Contains(gone, id)
		if holdsSnapshot(after, id) == deleted {
			t.Errorf("snapshot %s (deleted: %v): btrfs subvolume there: %v", id, deleted, !deleted)
		}
		if _, ok := now[id]; ok == deleted {
			t.Errorf("snapshot %s (deleted: %v): listed: %v", id, deleted, ok)
		}
		if _, err := os.Stat(s.SnapshotPath); (err == nil) == deleted {
			t.Errorf("snapshot %s (deleted: %v): %s: %v", id, deleted, s.SnapshotPath, err)
		}
	}
	// The exposed one is still exposed and readable.
	if b, err := os.ReadFile(filepath.Join(exposeAt, "data")); err != nil || string(b) != "srv" || now[srvCA[0]].ExposedPath != exposeAt {
		t.Errorf("the exposed snapshot at %s: %q %v, listed at %q", exposeAt, b, err, now[srvCA[0]].ExposedPath)
	}

	// --older-than: an age the test cannot outlast keeps everything left,
	// the exposed one too (it would be skipped only where it would go).
	young := lvssRetention(t, d.socket, "--older-than", "1h")
	if len(young.Selected) != 0 || len(young.Kept) != len(now) || len(young.Skipped) != 0 {
		t.Fatalf("--older-than 1h: %+v", young)
	}
	// An age chosen from the creation times: everything created up to the
	// second app-rollback snapshot of home (the 8th made) is older than
	// the cutoff,
	// whenever lvss takes its "now" (it is later than this one). What was
	// made after may or may not be, so it is judged by the cutoff lvss
	// reports.
	split := all[homeAR[1]].created(t)
	age := time.Since(split) - time.Nanosecond
	r := lvssRetention(t, d.socket, "--older-than", age.String())
	cutoff, err := time.Parse(time.RFC3339Nano, r.Rule.Cutoff)
	if err != nil || !cutoff.After(split) {
		t.Fatalf("cutoff %q (%v), want after %s", r.Rule.Cutoff, err, split.Format(time.RFC3339Nano))
	}
	verdicts := r.verdicts()
	var deletedByAge []string
	for id, s := range now {
		var want string
		switch {
		case id == srvCA[0]:
			want = "skipped/exposed"
		case s.created(t).Before(cutoff):
			want = "selected/older_than"
			deletedByAge = append(deletedByAge, id)
		default:
			want = "kept/newer"
		}
		if verdicts[id] != want {
			t.Errorf("--older-than %s (cutoff %s): %s created %s is %q, want %q", age, r.Rule.Cutoff, id, s.Created, verdicts[id], want)
		}
	}
	if !slices.Contains(deletedByAge, homeAR[1]) || !slices.Contains(deletedByAge, srvAR[1]) || !sameSet(r.Deleted, deletedByAge) {
		t.Errorf("deleted %v, want %v (at least %s and %s)", r.Deleted, deletedByAge, homeAR[1], srvAR[1])
	}
	t.Logf("--older-than %s (cutoff %s): %d deleted, %d kept", age, r.Rule.Cutoff, len(r.Deleted), len(r.Kept))
	after = subvolumes(t, fs.Mount)
	for id := range now {
		if holdsSnapshot(after, id) == slices.Contains(deletedByAge, id) {
			t.Errorf("snapshot %s: btrfs subvolume there: %v, deleted by age: %v", id, holdsSnapshot(after, id), slices.Contains(deletedByAge, id))
		}
	}
	if !holdsSnapshot(after, srvCA[0]) {
		t.Errorf("the exposed snapshot %s is gone", srvCA[0])
	}
}

func sameVerdicts(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
