package smbshare

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vsserr"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"snap", "Monday 2026", "x$", "ä-ö", strings.Repeat("a", MaxNameLen), "lvss-6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", " x", "x ", "a/b", `a\b`, "a[b", "a]b", "a:b", "a|b", "a<b", "a>b", "a+b", "a=b", "a;b", "a,b", "a?b", "a*b",
		"a%b", `a"b`, "a\tb", "a\nb", "a\x00b", strings.Repeat("a", MaxNameLen+1), "global", "HOMES", "printers", "IPC$", "\xff"} {
		if err := CheckName(bad); !errors.Is(err, vsserr.InvalidArg) {
			t.Errorf("CheckName(%q) = %v, want E_INVALIDARG", bad, err)
		}
	}
}

func TestParseList(t *testing.T) {
	out := "[global]\n\tworkgroup = X\n\n[snap]\n\tpath = /srv/a b\n\tcomment = lvss snapshot 1\n\tread only = yes\n\n[Other]\n\tpath=/x\n"
	got := parseList([]byte(out))
	want := []Share{{Name: "snap", Path: "/srv/a b", Comment: "lvss snapshot 1"}, {Name: "Other", Path: "/x"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("parseList = %+v, want %+v", got, want)
	}
}

// TestAgainstSamba drives a throwaway smbd's registry: Usable, Defined
// for the file's and the registry's shares, Add (read-only, readable with
// smbclient), a name taken, Remove closing a connection that is open, and
// Remove again.
func TestAgainstSamba(t *testing.T) {
	testenv.SkipIfShort(t, "starts smbd")
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	if err := os.Mkdir(share, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(share, "f.txt"), []byte("content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := testenv.StartSamba(t, testenv.SambaOptions{RegistryShares: true, Shares: []testenv.SambaShare{{Name: "infile", Path: dir}}})
	m := New(Options{Conf: s.Conf})
	ctx := context.Background()
	if err := m.Usable(ctx); err != nil {
		t.Fatalf("Usable: %v", err)
	}
	for name, want := range map[string]bool{"infile": true, "INFILE": true, "snap": false} {
		if got, err := m.Defined(ctx, name); err != nil || got != want {
			t.Errorf("Defined(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	if err := m.Add(ctx, "snap", share, "lvss snapshot x"); err != nil {
		t.Fatalf("Add: %v", err)
	}
	t.Cleanup(func() { m.Remove(context.Background(), "snap") })
	if got, err := m.Defined(ctx, "Snap"); err != nil || !got {
		t.Errorf("Defined(Snap) after Add = %v, %v", got, err)
	}
	list, err := m.List(ctx)
	if err != nil || len(list) != 1 || list[0] != (Share{Name: "snap", Path: share, Comment: "lvss snapshot x"}) {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := m.Add(ctx, "SNAP", share, "lvss snapshot y"); !errors.Is(err, vsserr.ObjectAlreadyExists) {
		t.Errorf("Add of a name in the registry: %v, want VSS_E_OBJECT_ALREADY_EXISTS", err)
	}
	got := filepath.Join(dir, "got")
	if out, err := s.Client("snap", "get f.txt "+got); err != nil {
		t.Fatalf("smbclient get: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(got); string(b) != "content\n" {
		t.Fatalf("read %q through the share", b)
	}
	if out, err := s.Client("snap", "put "+got+" new.txt"); err == nil || !strings.Contains(out, "NT_STATUS_ACCESS_DENIED") {
		t.Fatalf("a write to the share was not refused (%v):\n%s", err, out)
	}

	// A client that has the share open loses it with Remove.
	c := s.Open(t, "snap")
	if out := c.Ls(t); !strings.Contains(out, "f.txt") {
		t.Fatalf("the open client does not list f.txt:\n%s", out)
	}
	if err := m.Remove(ctx, "snap"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if out := c.Ls(t); !strings.Contains(out, "NT_STATUS_NETWORK_NAME_DELETED") {
		t.Fatalf("a client that had the share open is not told it is gone after Remove:\n%s", out)
	}
	if list, err := m.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List after Remove = %+v, %v", list, err)
	}
	if err := m.Remove(ctx, "snap"); err != nil {
		t.Fatalf("Remove of a share that is gone: %v", err)
	}
}

func TestUsableSaysWhatIsMissing(t *testing.T) {
	testenv.SkipIfShort(t, "starts smbd")
	dir := t.TempDir()
	ctx := context.Background()
	if err := New(Options{Conf: filepath.Join(dir, "smb.conf"), Net: filepath.Join(dir, "no-net")}).Usable(ctx); !errors.Is(err, vsserr.NotSupported) ||
		!strings.Contains(err.Error(), "apt-get install samba") {
		t.Errorf("no net: %v, want VSS_E_NOT_SUPPORTED naming the package", err)
	}
	if _, err := exec.LookPath("testparm"); err != nil {
		testenv.Missing(t, "testparm (apt-get install samba)")
	}
	if err := New(Options{Conf: filepath.Join(dir, "missing.conf")}).Usable(ctx); !errors.Is(err, vsserr.NotSupported) ||
		!strings.Contains(err.Error(), "cannot load") {
		t.Errorf("no smb.conf: %v, want VSS_E_NOT_SUPPORTED", err)
	}
	s := testenv.StartSamba(t, testenv.SambaOptions{})
	if err := New(Options{Conf: s.Conf}).Usable(ctx); !errors.Is(err, vsserr.NotSupported) ||
		!strings.Contains(err.Error(), "registry shares = yes") {
		t.Errorf("no registry shares: %v, want VSS_E_NOT_SUPPORTED saying what to set", err)
	}
}

// A net that never answers is killed at the deadline, with what it
// started, and the call fails with VSS_E_UNEXPECTED_PROVIDER_ERROR.
func TestCommandThatHangsIsKilled(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script := "#!/bin/sh\nsleep 1000 &\necho $! > " + pidFile + "\nwait\n"
	net := filepath.Join(dir, "net")
	if err := os.WriteFile(net, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m := New(Options{Conf: filepath.Join(dir, "smb.conf"), Net: net, Timeout: 100 * time.Millisecond})
	err := m.Add(context.Background(), "snap", dir, "c")
	if !errors.Is(err, vsserr.UnexpectedProviderError) || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("Add with a net that hangs: %v", err)
	}
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	testenv.Eventually(t, 10*time.Second, "the hung command's child to be killed", func() bool {
		return syscall.Kill(pid, 0) != nil || zombie(pid)
	})

	// A context that ends first ends the call the same way.
	ctx, cancel := context.WithCancel(context.Background())
	m = New(Options{Conf: filepath.Join(dir, "smb.conf"), Net: net})
	done := make(chan error, 1)
	go func() { done <- m.Add(ctx, "snap", dir, "c") }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Add with a cancelled context: %v", err)
	}
}

// zombie reports whether pid has ended and waits for its parent to reap it.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}
