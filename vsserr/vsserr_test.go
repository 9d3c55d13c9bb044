package vsserr

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorText(t *testing.T) {
	err := New(BadState, "PrepareForBackup before SetBackupState")
	want := "VSS_E_BAD_STATE (0x80042301): PrepareForBackup before SetBackupState"
	if err.Error() != want {
		t.Fatalf("got %q, want %q", err.Error(), want)
	}
}

func TestIsThroughWrapping(t *testing.T) {
	base := New(SnapshotSetInProgress, "session 1 holds the creation lock")
	wrapped := fmt.Errorf("start set: %w", fmt.Errorf("coordinator: %w", base))
	if !errors.Is(wrapped, SnapshotSetInProgress) {
		t.Fatal("errors.Is did not find the HRESULT through two wraps")
	}
	if errors.Is(wrapped, BadState) {
		t.Fatal("errors.Is matched a different HRESULT")
	}
	if Code(wrapped) != SnapshotSetInProgress {
		t.Fatalf("Code = %v", Code(wrapped))
	}
	if !errors.Is(fmt.Errorf("x: %w", BadState), BadState) {
		t.Fatal("bare HRESULT not matched")
	}
	if Code(errors.New("plain")) != Unexpected {
		t.Fatal("plain error must map to VSS_E_UNEXPECTED")
	}
	if Code(nil) != OK {
		t.Fatal("nil must map to S_OK")
	}
}

func TestCatalogue(t *testing.T) {
	cases := map[string]HRESULT{
		"VSS_E_BAD_STATE":                         0x80042301,
		"VSS_S_ASYNC_PENDING":                     0x00042309,
		"VSS_E_WRITERERROR_TIMEOUT":               0x800423F2,
		"VSS_E_WRITER_NOT_RESPONDING":             0x80042319,
		"VSS_E_FSS_TIMEOUT":                       0x80042417,
		"E_ACCESSDENIED":                          0x80070005,
		"VSS_E_ASRERROR_SYSTEM_PARTITION_HIDDEN":  0x80042416,
		"VSS_S_SOME_SNAPSHOTS_NOT_IMPORTED":       0x00042321,
		"VSS_E_SOME_SNAPSHOTS_NOT_IMPORTED":       0x80042321,
		"VSS_E_WRITERERROR_PARTIAL_FAILURE":       0x80042336,
		"VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED": 0x80042312,
	}
	for name, v := range cases {
		h, ok := Lookup(name)
		if !ok || h != v || h.Name() != name {
			t.Errorf("%s: lookup %v %v, name %q", name, h, ok, h.Name())
		}
	}
	if h, ok := Lookup("0x80042301"); !ok || h != BadState {
		t.Error("numeric lookup failed")
	}
	if False.Failed() || AsyncFinished.Failed() || !BadState.Failed() {
		t.Error("Failed() wrong")
	}
	if HRESULT(0x80042305).Known() {
		t.Error("0x80042305 is unassigned")
	}
	seen := map[string]bool{}
	for _, h := range All() {
		if seen[h.Name()] {
			t.Errorf("duplicate name %s", h.Name())
		}
		seen[h.Name()] = true
	}
	if BadState.Hex() != "0x80042301" || HRESULT(0x4230a).Hex() != "0x0004230A" {
		t.Error("Hex format")
	}
}
