//go:build !linux

package exec

import (
	"testing"
	"time"
)

func TestNewRefusesOffLinux(t *testing.T) {
	cfg := Config{Name: "x", Volumes: []string{"/srv"}, Commit: "true", Delete: "true"}
	if _, err := New(cfg, 10*time.Second, t.TempDir(), t.TempDir(), nil); err == nil {
		t.Fatal("New works where process groups and FIFREEZE do not")
	}
}
