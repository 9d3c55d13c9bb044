package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// TestDebugEndpointServesProfiles: with [debug] listen on a Unix socket,
// lvssd serves Go's profiles there to root alone, nothing else, and
// removes the socket when it stops; without it nothing listens.
func TestDebugEndpointServesProfiles(t *testing.T) {
	runDir := t.TempDir()
	sock := filepath.Join(runDir, "debug.sock")
	d := startDaemonWith(t, lvssdtest.DaemonOptions{RunDir: runDir, Config: "[debug]\nlisten = \"unix:" + sock + "\"\n"})
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("debug socket mode %v, want 0600 (root only)", fi.Mode().Perm())
	}
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	get := func(path string) (int, []byte) {
		t.Helper()
		resp, err := c.Get("http://lvssd" + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	// The profile itself (gzipped protobuf, what go tool pprof reads) and
	// its text form, which names lvssd's functions.
	if code, body := get("/debug/pprof/heap"); code != http.StatusOK || len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		t.Fatalf("heap profile: HTTP %d, want a gzipped profile: %.200q", code, body)
	}
	if code, body := get("/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(string(body), "# runtime.MemStats") {
		t.Errorf("heap profile (text): HTTP %d, lacks the runtime's memory statistics:\n%.2000s", code, body)
	}
	if code, body := get("/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(string(body), "internal/server") {
		t.Errorf("goroutine dump: HTTP %d, lacks lvssd's server:\n%.2000s", code, body)
	}
	if code, _ := get("/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the debug endpoint: HTTP %d, want 404 (it serves profiles only)", code)
	}
	d.proc.Stop(t)
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the debug socket outlived lvssd: %v", err)
	}
}
