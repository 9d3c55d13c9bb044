//go:build !linux

package exec

import "testing"

func TestNewRefusesOffLinux(t *testing.T) {
	if _, _, err := New(Config{Name: "x", Components: []Component{{Name: "a", Path: "/a"}}}); err == nil {
		t.Fatal("New works where Linux process groups and statfs do not")
	}
}
