package inplace

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// statusText is /proc/self/status around the capability lines; CapEff is
// filled in.
const statusText = `Name:	lvss
Umask:	0022
State:	R (running)
Uid:	0	0	0	0
CapInh:	0000000000000000
CapPrm:	000001ffffffffff
CapEff:	%s
CapBnd:	000001ffffffffff
CapAmb:	0000000000000000
NoNewPrivs:	0
`

func TestCheckStatus(t *testing.T) {
	for _, c := range []struct {
		name, capEff string
		want         error // nil, ErrNoCapability, or errAny
	}{
		{"root", "000001ffffffffff", nil},
		{"only CAP_SYS_ADMIN", "0000000000200000", nil},
		// Docker's default set: root, but no CAP_SYS_ADMIN.
		{"container default", "00000000a80425fb", ErrNoCapability},
		{"everything but CAP_SYS_ADMIN", "000001ffffdfffff", ErrNoCapability},
		{"an ordinary user", "0000000000000000", ErrNoCapability},
		{"garbage", "zz", errAny},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := checkStatus(strings.Replace(statusText, "%s", c.capEff, 1))
			switch {
			case c.want == errAny && err != nil && !errors.Is(err, ErrNoCapability):
			case c.want == errAny:
				t.Fatalf("CapEff %s: %v, want a parse error", c.capEff, err)
			case !errors.Is(err, c.want) || (c.want == nil && err != nil):
				t.Fatalf("CapEff %s: %v, want %v", c.capEff, err, c.want)
			}
		})
	}
	if err := checkStatus("Name:\tlvss\nUid:\t0\n"); err == nil || errors.Is(err, ErrNoCapability) {
		t.Errorf("no CapEff line: %v, want an error saying the line is missing", err)
	}
	// What the user reads says what is missing, why, and what to do.
	msg := checkStatus(strings.Replace(statusText, "%s", "00000000a80425fb", 1)).Error()
	for _, want := range []string{"--in-place", "CAP_SYS_ADMIN", "private mount namespace", "run as root", "drop --in-place", "LVSS_SNAPSHOT_"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
}

var errAny = errors.New("any error")

func TestSpecRejects(t *testing.T) {
	ok := []Mount{{Snapshot: "/srv/.snap/1", Original: "/srv"}}
	for _, c := range []struct {
		name   string
		mounts []Mount
		dir    string
		want   string
	}{
		{"no mounts", nil, "/", "no snapshot"},
		{"relative snapshot", []Mount{{Snapshot: "snap", Original: "/srv"}}, "/", "not an absolute path"},
		{"relative original", []Mount{{Snapshot: "/snap", Original: "srv"}}, "/", "not an absolute path"},
		{"empty original", []Mount{{Snapshot: "/snap", Original: ""}}, "/", "not an absolute path"},
		{"root", []Mount{{Snapshot: "/snap", Original: "/"}}, "/", "over /"},
		{"root, unclean", []Mount{{Snapshot: "/snap", Original: "/srv/.."}}, "/", "over /"},
		{"twice", []Mount{{Snapshot: "/a", Original: "/srv"}, {Snapshot: "/b", Original: "/srv/"}}, "/", "two snapshots for /srv"},
		{"relative dir", ok, "srv", "working directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := newSpec(c.mounts, c.dir, "mnt:[1]")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want an error saying %q", err, c.want)
			}
		})
	}
	if _, err := newSpec(ok, "/", ""); err == nil {
		t.Error("a spec without the parent's namespace was accepted: the child could not tell it is in a new one")
	}
	s, err := newSpec([]Mount{{Snapshot: "/srv//.snap/1/", Original: "/srv/./data/"}}, "/srv/data/", "mnt:[1]")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Mount{Snapshot: "/srv/.snap/1", Original: "/srv/data"}); s.Mounts[0] != want || s.Dir != "/srv/data" {
		t.Errorf("paths not cleaned: %+v, dir %q", s.Mounts[0], s.Dir)
	}
}

func TestMountOrder(t *testing.T) {
	mounts := []Mount{
		{Original: "/srv/data/db"},
		{Original: "/home"},
		{Original: "/srv/data"},
		{Original: "/srv/data/db/wal"},
		{Original: "/srv"},
		{Original: "/var/lib"},
	}
	var got []string
	for _, i := range mountOrder(mounts) {
		got = append(got, mounts[i].Original)
	}
	// Parents first; one depth in the order given.
	want := []string{"/home", "/srv", "/srv/data", "/var/lib", "/srv/data/db", "/srv/data/db/wal"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}
