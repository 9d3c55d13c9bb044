package providertest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Setup is one fresh provider with the volumes a test may use.
type Setup struct {
	Provider provider.Provider
	// Volume is a volume the provider supports.
	Volume string
	// Second is another supported volume, for multi-volume sets ("" skips
	// those checks).
	Second string
	// Unsupported is an existing path the provider must refuse.
	Unsupported string
	// ReadSnapshot reads a file from a snapshot, by its path relative to
	// the original volume. Nil for providers whose content cannot be read
	// here (the content checks are then not run).
	ReadSnapshot func(t *testing.T, s provider.Snapshot, rel string) []byte
	// ExposeDir is a directory the provider may expose snapshots under
	// ("" skips exposure checks even for an Exposer).
	ExposeDir string
}

// Harness makes a fresh Setup for each subtest; it registers its own cleanup.
type Harness struct {
	New func(t *testing.T) Setup
	// Context is the snapshot context to use (default VSS_CTX_BACKUP).
	Context vss.Context
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"Info", testInfo},
		{"IsVolumeSupported", testSupported},
		{"Lifecycle", testLifecycle},
		{"ContentFrozenAtCommit", testContent},
		{"MultiVolumeSet", testMultiVolume},
		{"AbortIsIdempotent", testAbort},
		{"AbandonedSetDoesNotBlock", testAbandoned},
		{"UnsupportedVolumeRefused", testUnsupported},
		{"DeleteIsIdempotent", testDelete},
		{"ExposeUnexpose", testExpose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// create runs the full §7.3 sequence for the volumes and returns the
// snapshots PostCommitSnapshots reported, in volume order.
func create(t *testing.T, h Harness, p provider.Provider, vols ...string) []provider.Snapshot {
	t.Helper()
	c := ctx(t)
	set := uuid.New()
	ids := make([]uuid.UUID, len(vols))
	for i, v := range vols {
		ids[i] = uuid.New()
		if err := p.BeginPrepareSnapshot(c, set, ids[i], v, h.Context); err != nil {
			t.Fatalf("BeginPrepareSnapshot(%s): %v", v, err)
		}
	}
	step := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	step("EndPrepareSnapshots", p.EndPrepareSnapshots(c, set))
	step("PreCommitSnapshots", p.PreCommitSnapshots(c, set))
	step("CommitSnapshots", p.CommitSnapshots(c, set))
	snaps, err := p.PostCommitSnapshots(c, set, len(vols))
	step("PostCommitSnapshots", err)
	step("PreFinalCommitSnapshots", p.PreFinalCommitSnapshots(c, set))
	step("PostFinalCommitSnapshots", p.PostFinalCommitSnapshots(c, set))
	if len(snaps) != len(vols) {
		t.Fatalf("PostCommitSnapshots reported %d snapshots for %d volumes", len(snaps), len(vols))
	}
	out := make([]provider.Snapshot, len(vols))
	for i, id := range ids {
		found := false
		for _, s := range snaps {
			if s.ID == id {
				out[i], found = s, true
			}
		}
		if !found {
			t.Fatalf("no snapshot reported with ID %s", id)
		}
		s := out[i]
		if s.SetID != set || s.OriginalVolume != vols[i] || s.DevicePath == "" || s.Handle == "" || s.Created.IsZero() {
			t.Fatalf("snapshot %d is incomplete: %+v", i, s)
		}
	}
	t.Cleanup(func() {
		for _, s := range out {
			_ = p.DeleteSnapshot(context.Background(), s)
		}
	})
	return out
}

func queried(t *testing.T, p provider.Provider, id uuid.UUID) bool {
	t.Helper()
	all, err := p.Query(ctx(t))
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	for _, s := range all {
		if s.ID == id {
			return true
		}
	}
	return false
}

func testInfo(t *testing.T, h Harness) {
	i := h.New(t).Provider.Info()
	if i.ID == uuid.Nil || i.Name == "" || i.Version == "" {
		t.Fatalf("Info lacks ID, name or version: %+v", i)
	}
}

func testSupported(t *testing.T, h Harness) {
	s := h.New(t)
	ok, err := s.Provider.IsVolumeSupported(ctx(t), s.Volume)
	if err != nil || !ok {
		t.Fatalf("supported volume %s: %v %v", s.Volume, ok, err)
	}
	if s.Unsupported != "" {
		ok, err = s.Provider.IsVolumeSupported(ctx(t), s.Unsupported)
		if err != nil || ok {
			t.Fatalf("unsupported path %s: %v %v", s.Unsupported, ok, err)
		}
	}
}

func testLifecycle(t *testing.T, h Harness) {
	s := h.New(t)
	snap := create(t, h, s.Provider, s.Volume)[0]
	if !queried(t, s.Provider, snap.ID) {
		t.Fatal("Query does not list the new snapshot")
	}
	if err := s.Provider.DeleteSnapshot(ctx(t), snap); err != nil {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	if queried(t, s.Provider, snap.ID) {
		t.Fatal("Query still lists a deleted snapshot")
	}
}

func testContent(t *testing.T, h Harness) {
	s := h.New(t)
	if s.ReadSnapshot == nil {
		t.Log("provider content is not readable here; content check not applicable")
		return
	}
	file := filepath.Join(s.Volume, "providertest-content")
	if err := os.WriteFile(file, []byte("before commit"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap := create(t, h, s.Provider, s.Volume)[0]
	if err := os.WriteFile(file, []byte("after commit, must not be in the snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := s.ReadSnapshot(t, snap, "providertest-content"); !bytes.Equal(got, []byte("before commit")) {
		t.Fatalf("snapshot holds %q, want the content at commit", got)
	}
}

func testMultiVolume(t *testing.T, h Harness) {
	s := h.New(t)
	if s.Second == "" {
		t.Log("no second volume in this harness; multi-volume check not applicable")
		return
	}
	snaps := create(t, h, s.Provider, s.Volume, s.Second)
	if snaps[0].DevicePath == snaps[1].DevicePath {
		t.Fatalf("two volumes, one device path: %s", snaps[0].DevicePath)
	}
}

func testAbort(t *testing.T, h Harness) {
	s := h.New(t)
	c := ctx(t)
	set := uuid.New()
	id := uuid.New()
	if err := s.Provider.BeginPrepareSnapshot(c, set, id, s.Volume, h.Context); err != nil {
		t.Fatal(err)
	}
	if err := s.Provider.EndPrepareSnapshots(c, set); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Provider.AbortSnapshots(c, set); err != nil {
			t.Fatalf("AbortSnapshots #%d: %v", i+1, err)
		}
	}
	if err := s.Provider.AbortSnapshots(c, uuid.New()); err != nil {
		t.Fatalf("AbortSnapshots of an unknown set: %v", err)
	}
	if queried(t, s.Provider, id) {
		t.Fatal("an aborted set left a snapshot")
	}
}

func testAbandoned(t *testing.T, h Harness) {
	s := h.New(t)
	// A requester that gives up before DoSnapshotSet produces no callback;
	// the next set must work regardless (§7.3).
	if err := s.Provider.BeginPrepareSnapshot(ctx(t), uuid.New(), uuid.New(), s.Volume, h.Context); err != nil {
		t.Fatal(err)
	}
	create(t, h, s.Provider, s.Volume)
}

func testUnsupported(t *testing.T, h Harness) {
	s := h.New(t)
	if s.Unsupported == "" {
		t.Log("no unsupported path in this harness")
		return
	}
	err := s.Provider.BeginPrepareSnapshot(ctx(t), uuid.New(), uuid.New(), s.Unsupported, h.Context)
	if !errors.Is(err, vsserr.VolumeNotSupportedByProvider) && !errors.Is(err, vsserr.VolumeNotSupported) {
		t.Fatalf("BeginPrepareSnapshot on %s: want VSS_E_VOLUME_NOT_SUPPORTED(_BY_PROVIDER), got %v", s.Unsupported, err)
	}
}

func testDelete(t *testing.T, h Harness) {
	s := h.New(t)
	snap := create(t, h, s.Provider, s.Volume)[0]
	for i := range 2 {
		if err := s.Provider.DeleteSnapshot(ctx(t), snap); err != nil {
			t.Fatalf("DeleteSnapshot #%d: %v", i+1, err)
		}
	}
}

func testExpose(t *testing.T, h Harness) {
	s := h.New(t)
	ex, ok := s.Provider.(provider.Exposer)
	if !ok || s.ExposeDir == "" {
		t.Log("provider does not expose snapshots here")
		return
	}
	// With readable content, the exposed path must show the snapshot.
	marker := filepath.Join(s.Volume, "providertest-expose")
	if s.ReadSnapshot != nil {
		if err := os.WriteFile(marker, []byte("exposed"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	snap := create(t, h, s.Provider, s.Volume)[0]
	target := filepath.Join(s.ExposeDir, "exposed")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	name, err := ex.Expose(ctx(t), snap, target)
	if err != nil || name == "" {
		t.Fatalf("Expose: %q %v", name, err)
	}
	if s.ReadSnapshot != nil {
		if got, err := os.ReadFile(filepath.Join(name, "providertest-expose")); err != nil || string(got) != "exposed" {
			t.Fatalf("exposed path %s does not show the snapshot: %q %v", name, got, err)
		}
	}
	for i := range 2 {
		if err := ex.Unexpose(ctx(t), snap, name); err != nil {
			t.Fatalf("Unexpose #%d: %v", i+1, err)
		}
	}
	if s.ReadSnapshot != nil {
		if _, err := os.Stat(filepath.Join(name, "providertest-expose")); err == nil {
			t.Fatalf("%s still shows the snapshot after Unexpose", name)
		}
	}
}
