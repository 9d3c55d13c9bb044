package testenv

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStartSamba: the throwaway smbd serves a share whose previous
// versions come from a snapdir of @GMT- links (what lvss keeps), serves
// registry shares added with `net conf` read-only, lists them, and is gone
// after Stop.
func TestStartSamba(t *testing.T) {
	SkipIfShort(t, "starts smbd")
	top := t.TempDir()
	share, old, snapdir := filepath.Join(top, "share"), filepath.Join(top, "old"), filepath.Join(top, "snapdir")
	for _, d := range []string{share, old, snapdir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(share, "f.txt"), "now\n")
	write(filepath.Join(old, "f.txt"), "then\n")
	const token = "@GMT-2026.12.01-10.00.00"
	if err := os.Symlink(old, filepath.Join(snapdir, token)); err != nil {
		t.Fatal(err)
	}
	s := StartSamba(t, SambaOptions{RegistryShares: true, Shares: []SambaShare{{
		Name: "data", Path: share,
		Params: []string{"read only = no", "vfs objects = shadow_copy2", "shadow:snapdir = " + snapdir,
			"shadow:mountpoint = " + share, "shadow:format = @GMT-%Y.%m.%d-%H.%M.%S", "shadow:localtime = no"},
	}}})

	out, err := s.Client("data", "allinfo f.txt")
	if err != nil || !strings.Contains(out, token) {
		t.Fatalf("allinfo lists no previous version %s (%v):\n%s", token, err, out)
	}
	out, err = s.Client("data", `get `+token+`\f.txt `+filepath.Join(top, "got"))
	if err != nil {
		t.Fatalf("get of the previous version: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(top, "got")); string(b) != "then\n" {
		t.Fatalf("the previous version reads %q, want %q", b, "then\n")
	}

	if out, err := s.Net("conf", "addshare", "snap", old, "writeable=n", "guest_ok=n", "a snapshot"); err != nil {
		t.Fatalf("net conf addshare: %v\n%s", err, out)
	}
	if shares := s.Shares(t); !contains(shares, "snap") || !contains(shares, "data") {
		t.Fatalf("shares listed: %v, want data and snap", shares)
	}
	write(filepath.Join(top, "new.txt"), "x")
	out, err = s.Client("snap", "put "+filepath.Join(top, "new.txt")+" new.txt")
	if err == nil || !strings.Contains(out, "NT_STATUS_ACCESS_DENIED") {
		t.Fatalf("a write to the read-only registry share was not refused (%v):\n%s", err, out)
	}
	if out, err := s.Net("conf", "delshare", "snap"); err != nil {
		t.Fatalf("net conf delshare: %v\n%s", err, out)
	}
	if shares := s.Shares(t); contains(shares, "snap") {
		t.Fatalf("the deleted share is still listed: %v", shares)
	}

	s.Stop()
	s.Stop() // idempotent
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), time.Second); err == nil {
		c.Close()
		t.Fatal("the stopped smbd still accepts connections")
	}
}
