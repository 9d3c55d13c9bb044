package writer

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnavailableHint checks that the advice logged while lvssd cannot be
// reached matches what is wrong with the socket.
func TestUnavailableHint(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "lvssd.sock")
	if h := unavailableHint(sock); !strings.Contains(h, "no socket at "+sock) || !strings.Contains(h, "$LVSS_SOCKET") ||
		!strings.HasSuffix(h, "as soon as lvssd answers") {
		t.Errorf("missing socket: %q", h)
	}

	// A socket left by an lvssd that died: the file is there, nobody accepts.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if h := unavailableHint(sock); !strings.Contains(h, "lvssd does not answer at "+sock) || strings.Contains(h, "no socket") {
		t.Errorf("stale socket: %q", h)
	}
}
