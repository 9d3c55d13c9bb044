package prevver

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
)

var t0 = time.Date(2026, 3, 2, 7, 0, 0, 0, time.UTC)

func TestToken(t *testing.T) {
	at := time.Date(2026, 3, 2, 8, 4, 5, 999_000_000, time.FixedZone("CET", 3600))
	if got := Token(at); got != "@GMT-2026.03.02-07.04.05" {
		t.Errorf("Token(%v) = %s: want UTC, to the second", at, got)
	}
	back, ok := ParseToken(Token(at))
	if !ok || !back.Equal(at.Truncate(time.Second)) {
		t.Errorf("ParseToken(Token(t)) = %v, %v", back, ok)
	}
	for _, bad := range []string{"@GMT-2026.03.02-07.04", ".lvss-tmp-00", "2026.03.02-07.04.05", "@GMT-2026.13.02-07.04.05"} {
		if _, ok := ParseToken(bad); ok {
			t.Errorf("ParseToken(%q) accepted it", bad)
		}
	}
}

// Escape is systemd-escape --path, so that a snapdir and the
// lvss-previous-versions@.timer of one path have the same name.
func TestEscape(t *testing.T) {
	cases := map[string]string{
		"/":                   "-",
		"/srv/share":          "srv-share",
		"/srv/share/":         "srv-share",
		"//srv//share":        "srv-share",
		"/srv/my-share":       `srv-my\x2dshare`,
		"/srv/my share":       `srv-my\x20share`,
		"/.hidden/x":          `\x2ehidden-x`,
		"/srv/.hidden":        "srv-.hidden",
		"/srv/Ünïcode":        `srv-\xc3\x9cn\xc3\xafcode`,
		"/srv/a:b_c.d":        "srv-a:b_c.d",
		`/srv/back\slash`:     `srv-back\x5cslash`,
		"/home/Projects 2026": `home-Projects\x202026`,
	}
	for in, want := range cases {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := exec.LookPath("systemd-escape"); err != nil {
		testenv.Missing(t, "systemd-escape (apt-get install systemd)")
	}
	for in := range cases {
		out, err := exec.Command("systemd-escape", "--path", in).Output()
		if err != nil {
			t.Fatalf("systemd-escape --path %q: %v", in, err)
		}
		if got, want := Escape(in), strings.TrimSpace(string(out)); got != want {
			t.Errorf("Escape(%q) = %q, systemd-escape --path says %q", in, got, want)
		}
	}
	if got := Snapdir("/run/lvss", "/srv/share"); got != "/run/lvss/previous-versions/srv-share" {
		t.Errorf("Snapdir = %s", got)
	}
}

func TestVolumes(t *testing.T) {
	if got := Volumes("/srv/share/docs"); !slices.Equal(got, []string{"/srv/share/docs", "/srv/share", "/srv", "/"}) {
		t.Errorf("Volumes = %v", got)
	}
	if got := Volumes("/"); !slices.Equal(got, []string{"/"}) {
		t.Errorf("Volumes(/) = %v", got)
	}
}

func snapAt(created time.Time, id string) catalog.Snapshot {
	return catalog.Snapshot{ID: uuid.MustParse(id), Created: created, Context: int32(vss.CtxClientAccessible),
		Attributes: uint32(vss.CtxClientAccessible)}
}

func names(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

// The same-second rule (L56): snapshots of one second take that second
// and the free seconds after it, in order of creation and then ID; the
// rule is a function of the set, so the names are the same at every
// reconcile, and they move back when an earlier snapshot goes.
func TestSameSecondRule(t *testing.T) {
	a := snapAt(t0.Add(100*time.Millisecond), "00000000-0000-0000-0000-00000000000a")
	b := snapAt(t0.Add(900*time.Millisecond), "00000000-0000-0000-0000-00000000000b")
	// c is made at the same instant as b: the ID orders them.
	c := snapAt(t0.Add(900*time.Millisecond), "00000000-0000-0000-0000-00000000000c")
	// d is in the next second, which b took: it moves on too.
	d := snapAt(t0.Add(1500*time.Millisecond), "00000000-0000-0000-0000-00000000000d")
	// e is well after: its own second.
	e := snapAt(t0.Add(time.Hour), "00000000-0000-0000-0000-00000000000e")
	entries := func(snaps ...catalog.Snapshot) []Entry {
		var es []Entry
		for _, s := range snaps {
			es = append(es, Entry{Snapshot: s.ID, Created: s.Created})
		}
		return nameEntries(es)
	}
	got := entries(e, d, c, b, a)
	want := []string{"@GMT-2026.03.02-07.00.00", "@GMT-2026.03.02-07.00.01", "@GMT-2026.03.02-07.00.02",
		"@GMT-2026.03.02-07.00.03", "@GMT-2026.03.02-08.00.00"}
	if !slices.Equal(names(got), want) {
		t.Fatalf("names %v, want %v", names(got), want)
	}
	for i, id := range []catalog.Snapshot{a, b, c, d, e} {
		if got[i].Snapshot != id.ID {
			t.Errorf("entry %d is snapshot %s, want %s", i, got[i].Snapshot, id.ID)
		}
	}
	if again := entries(a, b, c, d, e); !slices.Equal(names(again), want) {
		t.Errorf("the names depend on the order given: %v", names(again))
	}
	// a deleted: b takes its own second, the others move back.
	if got := entries(b, c, d, e); !slices.Equal(names(got), []string{"@GMT-2026.03.02-07.00.00", "@GMT-2026.03.02-07.00.01",
		"@GMT-2026.03.02-07.00.02", "@GMT-2026.03.02-08.00.00"}) {
		t.Errorf("after a is gone: %v", names(got))
	}
}

// dirs makes directories under a temp dir.
func dirs(t *testing.T, paths ...string) string {
	t.Helper()
	top, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Join(top, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return top
}

// Plan shows client-accessible persistent snapshots, and every persistent
// one with all_persistent; auto-release ones never.
func TestPlanKinds(t *testing.T) {
	top := dirs(t, "vol/share", "snap/share")
	share := Share{Path: filepath.Join(top, "vol/share")}
	mk := func(c vss.Context, autoRelease bool) catalog.Snapshot {
		return catalog.Snapshot{ID: uuid.New(), Created: t0, Context: int32(c), Attributes: uint32(c), AutoRelease: autoRelease,
			DevicePath: filepath.Join(top, "snap")}
	}
	ca, caw := mk(vss.CtxClientAccessible, false), mk(vss.CtxClientAccessibleWriters, false)
	app, nas := mk(vss.CtxAppRollback, false), mk(vss.CtxNASRollback, false)
	backup, fsb := mk(vss.CtxBackup, true), mk(vss.CtxFileShareBackup, true)
	// An extra attribute a requester may add keeps the kind.
	extra := mk(vss.CtxClientAccessible|vss.Context(vss.AttrNoAutoRecovery), false)
	byVolume := map[string][]catalog.Snapshot{filepath.Join(top, "vol"): {ca, caw, app, nas, backup, fsb, extra}}
	shown := func(all bool) map[uuid.UUID]bool {
		share.AllPersistent = all
		es, skips := Plan(share, byVolume, nil)
		if len(skips) != 0 {
			t.Fatalf("skips: %+v", skips)
		}
		out := map[uuid.UUID]bool{}
		for _, e := range es {
			out[e.Snapshot] = true
		}
		return out
	}
	got := shown(false)
	if len(got) != 3 || !got[ca.ID] || !got[caw.ID] || !got[extra.ID] {
		t.Errorf("client-accessible only: shown %v", got)
	}
	got = shown(true)
	if len(got) != 5 || got[backup.ID] || got[fsb.ID] {
		t.Errorf("all_persistent: shown %d, auto-release among them: %v", len(got), got[backup.ID] || got[fsb.ID])
	}
}

// fakeInfo is an os.FileInfo for a stat that tests make up.
type fakeInfo struct {
	os.FileInfo
	dev  uint64
	dir  bool
	mode os.FileMode // 0: the real one
}

func (f fakeInfo) IsDir() bool { return f.dir }
func (f fakeInfo) Sys() any    { return &syscall.Stat_t{Dev: f.dev} }

func (f fakeInfo) Mode() os.FileMode {
	if f.mode != 0 {
		return os.ModeDir | f.mode
	}
	return f.FileInfo.Mode()
}

// Plan finds the share's directory in the snapshots of the volume holding
// it (the share's own, or a directory above it on the same filesystem),
// and skips, with the reason, what it cannot link to.
func TestPlanTargets(t *testing.T) {
	top := dirs(t, "vol/share/docs", "s1/share/docs", "s2/docs", "s3", "s5/share")
	if err := os.WriteFile(filepath.Join(top, "s5/share/docs"), []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	vol, share := filepath.Join(top, "vol"), Share{Path: filepath.Join(top, "vol/share/docs")}
	s1 := snapAt(t0, "00000000-0000-0000-0000-000000000001")
	s1.DevicePath = filepath.Join(top, "s1") // a snapshot of vol
	s2 := snapAt(t0.Add(time.Minute), "00000000-0000-0000-0000-000000000002")
	s2.DevicePath = filepath.Join(top, "s2") // a snapshot of vol/share
	s3 := snapAt(t0.Add(2*time.Minute), "00000000-0000-0000-0000-000000000003")
	s3.DevicePath = filepath.Join(top, "s3") // its copy lacks the share's directory
	s4 := snapAt(t0.Add(3*time.Minute), "00000000-0000-0000-0000-000000000004")
	s4.DevicePath, s4.ProviderName = "san://lun7/snap4", "san" // an exec provider's handle
	s5 := snapAt(t0.Add(4*time.Minute), "00000000-0000-0000-0000-000000000005")
	s5.DevicePath = filepath.Join(top, "s5") // the share's directory is a file there
	byVolume := map[string][]catalog.Snapshot{vol: {s1, s3, s4, s5}, filepath.Join(vol, "share"): {s2}}
	es, skips := Plan(share, byVolume, nil)
	if len(es) != 2 || es[0].Snapshot != s1.ID || es[0].Target != filepath.Join(top, "s1/share/docs") ||
		es[1].Snapshot != s2.ID || es[1].Target != filepath.Join(top, "s2/docs") {
		t.Fatalf("entries %+v", es)
	}
	if es[0].Name != "@GMT-2026.03.02-07.00.00" || es[1].Name != "@GMT-2026.03.02-07.01.00" {
		t.Errorf("names %v", names(es))
	}
	reasons := map[uuid.UUID]string{}
	for _, s := range skips {
		reasons[s.Snapshot] = s.Reason
	}
	if len(reasons) != 3 || !strings.Contains(reasons[s3.ID], "cannot be reached") ||
		!strings.Contains(reasons[s4.ID], `"san://lun7/snap4" (provider san) is not a directory`) ||
		!strings.Contains(reasons[s5.ID], "is not a directory") {
		t.Errorf("skips: %+v", skips)
	}

	// A volume above the share on another filesystem (a snapshot of /
	// when the share is on a btrfs mounted at /srv) holds no copy of it:
	// its snapshots are not the share's, and nothing is said of them.
	stat := func(p string) (os.FileInfo, error) {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		dev := uint64(1)
		if p == vol {
			dev = 2
		}
		return fakeInfo{FileInfo: fi, dev: dev, dir: fi.IsDir()}, nil
	}
	es, skips = Plan(share, byVolume, stat)
	if len(es) != 1 || es[0].Snapshot != s2.ID || len(skips) != 0 {
		t.Errorf("with %s on another filesystem: entries %+v, skips %+v", vol, es, skips)
	}
}

// Shut names the directory on the way to the versions that other users
// may not search, when they may search the way to the share: smbd opens
// the versions as the connected user.
func TestShut(t *testing.T) {
	top := dirs(t, "vol/share", "vol/.lvss-snapshots/s1/share", "vol/.lvss-snapshots/s2/share")
	for _, d := range []string{top, filepath.Join(top, "vol"), filepath.Join(top, "vol/share")} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The test's temp dirs above top may be shut: they stand for the
	// machine's own directories here.
	stat := func(p string) (os.FileInfo, error) {
		fi, err := os.Stat(p)
		if err != nil || strings.HasPrefix(top, p+"/") || p == "/" {
			return fakeInfo{FileInfo: fi, dir: true, mode: 0o755}, err
		}
		return fi, err
	}
	snaps := filepath.Join(top, "vol/.lvss-snapshots")
	share := Share{Path: filepath.Join(top, "vol/share")}
	entries := []Entry{{Target: filepath.Join(snaps, "s1/share")}, {Target: filepath.Join(snaps, "s2/share")}}
	if err := os.Chmod(snaps, 0o700); err != nil {
		t.Fatal(err)
	}
	if dir, mode := Shut(share, entries, stat); dir != snaps || mode != 0o700 {
		t.Errorf("Shut = %s %o, want %s 0700", dir, mode, snaps)
	}
	if err := os.Chmod(snaps, 0o711); err != nil {
		t.Fatal(err)
	}
	if dir, _ := Shut(share, entries, stat); dir != "" {
		t.Errorf("with %s 0711: %s", snaps, dir)
	}
	if err := os.Chmod(filepath.Join(snaps, "s2"), 0o750); err != nil {
		t.Fatal(err)
	}
	if dir, mode := Shut(share, entries, stat); dir != filepath.Join(snaps, "s2") || mode != 0o750 {
		t.Errorf("a snapshot's root shut: %s %o", dir, mode)
	}
	// The share itself reached by owner or group only: not second-guessed.
	if err := os.Chmod(filepath.Join(top, "vol"), 0o750); err != nil {
		t.Fatal(err)
	}
	if dir, _ := Shut(share, entries, stat); dir != "" {
		t.Errorf("a share shut to others: %s", dir)
	}
}
