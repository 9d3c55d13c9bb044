package providertest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Setup is one fresh provider with the volumes a test may use. Only
// Provider and Volume are required; every other field is an ability of the
// provider or the harness, and a check that needs one that is missing is
// skipped, saying which (go test -v shows what was not checked).
type Setup struct {
	Provider provider.Provider
	// Volume is a volume the provider supports. The suite writes files
	// into it (names starting with "providertest-").
	Volume string
	// Second is another supported volume, for multi-volume sets.
	Second string
	// Unsupported is an existing path the provider must refuse.
	Unsupported string
	// ReadSnapshot reads a file from a snapshot, by its path relative to
	// the original volume. Nil for providers whose content cannot be read
	// here.
	ReadSnapshot func(t *testing.T, s provider.Snapshot, rel string) []byte
	// ExposeDir is a directory the provider may expose snapshots under.
	ExposeDir string
	// Restart makes a new provider value over this Setup's configuration
	// and state, as lvssd does at every start. The suite then calls only
	// the new value (the old one again only in clean-ups, to delete what
	// it made); the Setup's other fields stay valid.
	Restart func(t *testing.T) provider.Provider
	// Residue lists what the provider keeps for snapshots and sets of this
	// Setup, one string per thing: files and directories in its snapshot
	// store, temporary directories, mounts under ExposeDir. Not what any
	// provider needs before its first snapshot (an empty snapshot
	// directory). The suite calls it where nothing of the kind may exist:
	// after an abort, a delete, a refused or cancelled call.
	Residue func(t *testing.T) []string
	// Hold arranges for the provider's next call of method
	// ("EndPrepareSnapshots", "CommitSnapshots" or "DeleteSnapshot") to
	// block inside its real work (a command waiting, a copy stalled after
	// a file) until its context ends or release is called; held is closed
	// once the call is blocked there. It reports ok false when the
	// provider has no such point in method. The suite writes a file into
	// Volume first, so that a copying provider has something to copy;
	// after held it cancels the call's context and then calls release,
	// which must let a hold that does not watch the context go on without
	// finishing the call's work by itself. The harness registers its own
	// cleanup.
	Hold func(t *testing.T, method string) (held <-chan struct{}, release func(), ok bool)
	// Without says why the Setup lacks an ability, keyed by the ability:
	// a field above left empty ("Second", "Unsupported", "ReadSnapshot",
	// "ExposeDir", "Restart", "Residue", "Hold"), "Exposer" for a provider
	// that does not implement provider.Exposer, and "Hold METHOD" for a
	// method Hold reports it cannot hold. A check that needs a missing
	// ability is skipped with the reason given here. An ability missing
	// without a reason, or a reason for one the Setup has, fails the
	// check: no check goes unrun by oversight, on CI or anywhere.
	Without map[string]string
}

// abilities are the keys Setup.Without may use besides "Hold METHOD", each
// with whether a Setup has it.
var abilities = map[string]func(Setup) bool{
	"Second":       func(s Setup) bool { return s.Second != "" },
	"Unsupported":  func(s Setup) bool { return s.Unsupported != "" },
	"ReadSnapshot": func(s Setup) bool { return s.ReadSnapshot != nil },
	"ExposeDir":    func(s Setup) bool { return s.ExposeDir != "" },
	"Restart":      func(s Setup) bool { return s.Restart != nil },
	"Residue":      func(s Setup) bool { return s.Residue != nil },
	"Hold":         func(s Setup) bool { return s.Hold != nil },
	"Exposer":      func(s Setup) bool { _, ok := s.Provider.(provider.Exposer); return ok },
}

// holdMethods are the methods Hold may be asked for.
var holdMethods = []string{"EndPrepareSnapshots", "CommitSnapshots", "DeleteSnapshot"}

// setup makes a fresh Setup and checks that Without explains exactly what
// it lacks.
func setup(t *testing.T, h Harness) Setup {
	t.Helper()
	s := h.New(t)
	for key, why := range s.Without {
		if method, ok := strings.CutPrefix(key, "Hold "); ok {
			if !slices.Contains(holdMethods, method) {
				t.Fatalf("Setup.Without[%q]: Hold is asked only for %v", key, holdMethods)
			}
			if s.Hold == nil {
				t.Fatalf("Setup.Without[%q] explains a method of a Hold the Setup does not have; explain \"Hold\" instead", key)
			}
		} else if has, known := abilities[key]; !known {
			t.Fatalf("Setup.Without[%q]: not an ability of a Setup", key)
		} else if has(s) {
			t.Fatalf("Setup.Without[%q] says why the Setup lacks what it has: %s", key, why)
		}
		if why == "" {
			t.Fatalf("Setup.Without[%q] gives no reason", key)
		}
	}
	return s
}

// HoldOnce is the usual way to implement Setup.Hold: install hook where
// the provider's method works (a test hook of the provider). The first
// time hook runs it closes held and blocks until release. It does not see
// the call's context: release lets the call go on to look at it. The
// cleanup releases a hold never reached.
func HoldOnce(t *testing.T) (hook func(), held <-chan struct{}, release func()) {
	h, proceed := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	hook = func() {
		once.Do(func() {
			close(h)
			<-proceed
		})
	}
	release = func() { released.Do(func() { close(proceed) }) }
	t.Cleanup(release)
	return hook, h, release
}

// notChecked ends t because the Setup lacks ability: a skip naming what is
// not checked and the harness's reason, or a failure when the harness
// gives none. It is the suite's only way to skip.
func notChecked(t *testing.T, s Setup, ability, what string) {
	t.Helper()
	why := s.Without[ability]
	if why == "" {
		t.Fatalf("%s: the Setup has no %s, and Setup.Without does not say why", what, ability)
	}
	t.Skipf("not checked: %s (no %s: %s)", what, ability, why)
}

// Harness makes a fresh Setup for each subtest; it registers its own cleanup.
type Harness struct {
	New func(t *testing.T) Setup
	// Context is the snapshot context to use (default VSS_CTX_BACKUP).
	Context vss.Context
	// Serial, when not empty, says why this provider's subtests cannot run
	// in parallel (each with its own Setup, as they do by default); they
	// then run one after another.
	Serial string
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
		{"StepsOutOfOrderRefused", testOutOfOrder},
		{"UnknownSetRefused", testUnknownSet},
		{"AbortUndoesUnfinishedSet", testAbortUndoes},
		{"FinishedSetIsClosed", testFinished},
		{"SnapshotsSurviveRestart", testRestart},
		{"CancelledEndPrepare", testCancelledEndPrepare},
		{"CancelledCommit", testCancelledCommit},
		{"CancelledDelete", testCancelledDelete},
		{"CancelInFlight", testCancelInFlight},
	}
	if h.Serial != "" {
		t.Logf("subtests run one at a time: %s", h.Serial)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if h.Serial == "" {
				t.Parallel()
			}
			tc.fn(t, h)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// prompt bounds how long a call may take to return once its context is
// done. It is a liveness bound, with room for a loaded machine, not a
// measure of speed: the contract asks for the time it takes to kill a
// command or finish the file in hand.
const prompt = 30 * time.Second

// cancelled is a context that is already done.
func cancelled() context.Context {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	return c
}

// create runs the full vss-reference §7.3 sequence for the volumes and returns the
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

// listed returns the snapshot with the given ID as Query reports it.
func listed(t *testing.T, p provider.Provider, id uuid.UUID) (provider.Snapshot, bool) {
	t.Helper()
	all, err := p.Query(ctx(t))
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	for _, s := range all {
		if s.ID == id {
			return s, true
		}
	}
	return provider.Snapshot{}, false
}

func queried(t *testing.T, p provider.Provider, id uuid.UUID) bool {
	t.Helper()
	_, ok := listed(t, p, id)
	return ok
}

// nothingLeft checks that the provider keeps nothing for snapshots or sets
// of the Setup. It is a subtest of its own, so that a harness without
// Residue shows as a skip; after names the moment, and the subtest.
func nothingLeft(t *testing.T, s Setup, after string) {
	t.Helper()
	t.Run("NothingLeftAfter"+after, func(t *testing.T) {
		if s.Residue == nil {
			notChecked(t, s, "Residue", "what the provider keeps on disk (only Query was checked for leftovers)")
		}
		if left := s.Residue(t); len(left) > 0 {
			t.Fatalf("after %s the provider still keeps %q", after, left)
		}
	})
}

// residue is what Residue reports now, nil without one.
func residue(t *testing.T, s Setup) []string {
	t.Helper()
	if s.Residue == nil {
		return nil
	}
	return s.Residue(t)
}

// nothingMade checks that the provider keeps what it kept before a call
// that must do nothing, as a subtest like nothingLeft.
func nothingMade(t *testing.T, s Setup, before []string, call string) {
	t.Helper()
	t.Run("NothingMadeBy"+call, func(t *testing.T) {
		if s.Residue == nil {
			notChecked(t, s, "Residue", "what the call made on disk (only Query was checked)")
		}
		if now := s.Residue(t); !slices.Equal(sorted(now), sorted(before)) {
			t.Fatalf("%s made something: before it the provider kept %q, after it %q", call, before, now)
		}
	})
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// writeMarker puts a file with the given content into the volume and
// returns its name relative to the volume.
func writeMarker(t *testing.T, s Setup, name, content string) string {
	t.Helper()
	rel := "providertest-" + name
	if err := os.WriteFile(filepath.Join(s.Volume, rel), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return rel
}

// holds checks, as a subtest needing ReadSnapshot, that the snapshot
// holds a file with the given content.
func holds(t *testing.T, s Setup, snap provider.Snapshot, rel, want, name string) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		if s.ReadSnapshot == nil {
			notChecked(t, s, "ReadSnapshot", "the snapshot's content")
		}
		if got := s.ReadSnapshot(t, snap, rel); !bytes.Equal(got, []byte(want)) {
			t.Fatalf("snapshot holds %q in %s, want %q", got, rel, want)
		}
	})
}

// within runs call and fails the test if it has not returned within
// prompt.
func within(t *testing.T, what string, call func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	timer := time.NewTimer(prompt)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		t.Fatalf("%s with its context done has not returned after %s", what, prompt)
		return nil
	}
}

func testInfo(t *testing.T, h Harness) {
	i := setup(t, h).Provider.Info()
	if i.ID == uuid.Nil || i.Name == "" || i.Version == "" {
		t.Fatalf("Info lacks ID, name or version: %+v", i)
	}
}

func testSupported(t *testing.T, h Harness) {
	s := setup(t, h)
	ok, err := s.Provider.IsVolumeSupported(ctx(t), s.Volume)
	if err != nil || !ok {
		t.Fatalf("supported volume %s: %v %v", s.Volume, ok, err)
	}
	t.Run("Unsupported", func(t *testing.T) {
		if s.Unsupported == "" {
			notChecked(t, s, "Unsupported", "IsVolumeSupported of a path the provider must refuse")
		}
		ok, err = s.Provider.IsVolumeSupported(ctx(t), s.Unsupported)
		if err != nil || ok {
			t.Fatalf("unsupported path %s: %v %v", s.Unsupported, ok, err)
		}
	})
}

func testLifecycle(t *testing.T, h Harness) {
	s := setup(t, h)
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
	nothingLeft(t, s, "Delete")
}

func testContent(t *testing.T, h Harness) {
	s := setup(t, h)
	if s.ReadSnapshot == nil {
		notChecked(t, s, "ReadSnapshot", "content frozen at commit")
	}
	rel := writeMarker(t, s, "content", "before commit")
	snap := create(t, h, s.Provider, s.Volume)[0]
	writeMarker(t, s, "content", "after commit, must not be in the snapshot")
	if got := s.ReadSnapshot(t, snap, rel); !bytes.Equal(got, []byte("before commit")) {
		t.Fatalf("snapshot holds %q, want the content at commit", got)
	}
}

func testMultiVolume(t *testing.T, h Harness) {
	s := setup(t, h)
	if s.Second == "" {
		notChecked(t, s, "Second", "multi-volume sets")
	}
	snaps := create(t, h, s.Provider, s.Volume, s.Second)
	if snaps[0].DevicePath == snaps[1].DevicePath {
		t.Fatalf("two volumes, one device path: %s", snaps[0].DevicePath)
	}
}

func testAbort(t *testing.T, h Harness) {
	s := setup(t, h)
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
	nothingLeft(t, s, "Abort")
}

func testAbandoned(t *testing.T, h Harness) {
	s := setup(t, h)
	// A requester that gives up before DoSnapshotSet produces no callback;
	// the next set must work regardless (vss-reference §7.3).
	if err := s.Provider.BeginPrepareSnapshot(ctx(t), uuid.New(), uuid.New(), s.Volume, h.Context); err != nil {
		t.Fatal(err)
	}
	create(t, h, s.Provider, s.Volume)
}

func testUnsupported(t *testing.T, h Harness) {
	s := setup(t, h)
	if s.Unsupported == "" {
		notChecked(t, s, "Unsupported", "refusal of an unsupported volume")
	}
	err := s.Provider.BeginPrepareSnapshot(ctx(t), uuid.New(), uuid.New(), s.Unsupported, h.Context)
	if !errors.Is(err, vsserr.VolumeNotSupportedByProvider) && !errors.Is(err, vsserr.VolumeNotSupported) {
		t.Fatalf("BeginPrepareSnapshot on %s: want VSS_E_VOLUME_NOT_SUPPORTED(_BY_PROVIDER), got %v", s.Unsupported, err)
	}
}

func testDelete(t *testing.T, h Harness) {
	s := setup(t, h)
	snap := create(t, h, s.Provider, s.Volume)[0]
	for i := range 2 {
		if err := s.Provider.DeleteSnapshot(ctx(t), snap); err != nil {
			t.Fatalf("DeleteSnapshot #%d: %v", i+1, err)
		}
	}
}

func testExpose(t *testing.T, h Harness) {
	s := setup(t, h)
	ex, ok := s.Provider.(provider.Exposer)
	if !ok {
		notChecked(t, s, "Exposer", "exposure")
	}
	if s.ExposeDir == "" {
		notChecked(t, s, "ExposeDir", "exposure")
	}
	rel := writeMarker(t, s, "expose", "exposed")
	snap := create(t, h, s.Provider, s.Volume)[0]
	target := filepath.Join(s.ExposeDir, "exposed")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	name, err := ex.Expose(ctx(t), snap, target)
	if err != nil || name == "" {
		t.Fatalf("Expose: %q %v", name, err)
	}
	// With readable content, the exposed path must show the snapshot, and
	// stop showing it when unexposed.
	readable := s.ReadSnapshot != nil
	t.Run("ExposedContent", func(t *testing.T) {
		if !readable {
			notChecked(t, s, "ReadSnapshot", "what the exposed path shows")
		}
		if got, err := os.ReadFile(filepath.Join(name, rel)); err != nil || string(got) != "exposed" {
			t.Fatalf("exposed path %s does not show the snapshot: %q %v", name, got, err)
		}
	})
	for i := range 2 {
		if err := ex.Unexpose(ctx(t), snap, name); err != nil {
			t.Fatalf("Unexpose #%d: %v", i+1, err)
		}
	}
	t.Run("UnexposedContent", func(t *testing.T) {
		if !readable {
			notChecked(t, s, "ReadSnapshot", "what the unexposed path shows")
		}
		if _, err := os.Stat(filepath.Join(name, rel)); err == nil {
			t.Fatalf("%s still shows the snapshot after Unexpose", name)
		}
	})
	// Nothing of the exposure may outlive the snapshot (a mount left
	// behind pins the snapshot store).
	if err := s.Provider.DeleteSnapshot(ctx(t), snap); err != nil {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	nothingLeft(t, s, "UnexposeAndDelete")
}

// A step of a snapshot set after BeginPrepareSnapshot, in the order of
// vss-reference §7.3, with the code that refuses it for a set not held or out of order:
// one that vss-reference §7.2 permits for the step (provider.Provider).
type setStep struct {
	name    string
	call    func(c context.Context, p provider.Provider, set uuid.UUID) error
	refused vsserr.HRESULT
}

var sequence = []setStep{
	{"EndPrepareSnapshots", func(c context.Context, p provider.Provider, set uuid.UUID) error {
		return p.EndPrepareSnapshots(c, set)
	}, vsserr.ObjectNotFound},
	{"PreCommitSnapshots", func(c context.Context, p provider.Provider, set uuid.UUID) error {
		return p.PreCommitSnapshots(c, set)
	}, vsserr.ObjectNotFound},
	{"CommitSnapshots", func(c context.Context, p provider.Provider, set uuid.UUID) error {
		return p.CommitSnapshots(c, set)
	}, vsserr.ObjectNotFound},
	{"PostCommitSnapshots", func(c context.Context, p provider.Provider, set uuid.UUID) error {
		_, err := p.PostCommitSnapshots(c, set, 1)
		return err
	}, vsserr.ObjectNotFound},
	{"PreFinalCommitSnapshots", func(c context.Context, p provider.Provider, set uuid.UUID) error {
		return p.PreFinalCommitSnapshots(c, set)
	}, vsserr.InvalidArg},
	{"PostFinalCommitSnapshots", func(c context.Context, p provider.Provider, set uuid.UUID) error {
		return p.PostFinalCommitSnapshots(c, set)
	}, vsserr.InvalidArg},
}

// beginRefused is the code that refuses BeginPrepareSnapshot for a set
// past preparation, finished or aborted.
const beginRefused = vsserr.InvalidArg

// begin starts a set of one snapshot of the Setup's volume and takes it
// through the first n steps of sequence.
func begin(t *testing.T, h Harness, s Setup, n int) (set, id uuid.UUID) {
	t.Helper()
	c := ctx(t)
	set, id = uuid.New(), uuid.New()
	if err := s.Provider.BeginPrepareSnapshot(c, set, id, s.Volume, h.Context); err != nil {
		t.Fatalf("BeginPrepareSnapshot: %v", err)
	}
	for _, st := range sequence[:n] {
		if err := st.call(c, s.Provider, set); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
	}
	return set, id
}

// another is the volume a second BeginPrepareSnapshot of a set names: not
// the first one again where the harness has another, so that only the
// set's state can be the reason for a refusal.
func another(s Setup) string {
	if s.Second != "" {
		return s.Second
	}
	return s.Volume
}

// wantCode checks err's HRESULT: the first in its chain, which is what the
// coordinator judges and passes on.
func wantCode(t *testing.T, what string, err error, code vsserr.HRESULT) {
	t.Helper()
	if err == nil || vsserr.Code(err) != code {
		t.Errorf("%s: want %v, got %v", what, code, err)
	}
}

// Each step of a set is refused when it comes out of order (too early, or
// again), at every point of the sequence, with its refusal code, and so is
// a second BeginPrepareSnapshot once the set is past preparation; the
// refusals change nothing: the set then goes on to completion.
func testOutOfOrder(t *testing.T, h Harness) {
	s := setup(t, h)
	p, c := s.Provider, ctx(t)
	set, id := begin(t, h, s, 0)
	t.Cleanup(func() {
		_ = p.AbortSnapshots(context.Background(), set)
		if snap, ok := listed(t, p, id); ok {
			_ = p.DeleteSnapshot(context.Background(), snap)
		}
	})
	last := "BeginPrepareSnapshot"
	for i, next := range sequence {
		if i > 0 {
			wantCode(t, "BeginPrepareSnapshot after "+last, p.BeginPrepareSnapshot(c, set, uuid.New(), another(s), h.Context), beginRefused)
		}
		for j, st := range sequence {
			if j != i {
				wantCode(t, st.name+" after "+last, st.call(c, p, set), st.refused)
			}
		}
		if t.Failed() {
			t.FailNow() // a call accepted out of order may have moved the set on
		}
		if err := next.call(c, p, set); err != nil {
			t.Fatalf("%s after refused calls: %v", next.name, err)
		}
		last = next.name
	}
	if !queried(t, p, id) {
		t.Fatal("the set completed after refused calls, but Query does not list its snapshot")
	}
}

// Every step for a set the provider never saw is refused with its code.
func testUnknownSet(t *testing.T, h Harness) {
	s := setup(t, h)
	c := ctx(t)
	for _, st := range sequence {
		wantCode(t, st.name+" of an unknown set", st.call(c, s.Provider, uuid.New()), st.refused)
	}
	nothingLeft(t, s, "RefusedCalls")
}

// AbortSnapshots, at any point before PostFinalCommitSnapshots, removes the
// set's snapshot, also once committed and reported (vss-reference §7.3: no partial
// commit); the set is then unknown to CommitSnapshots
// (VSS_E_OBJECT_NOT_FOUND), and its ID cannot be prepared again.
func testAbortUndoes(t *testing.T, h Harness) {
	s := setup(t, h)
	for n := range sequence {
		after := "BeginPrepareSnapshot"
		if n > 0 {
			after = sequence[n-1].name
		}
		t.Run("After"+after, func(t *testing.T) {
			p, c := s.Provider, ctx(t)
			set, id := begin(t, h, s, n)
			if err := p.AbortSnapshots(c, set); err != nil {
				t.Fatalf("AbortSnapshots: %v", err)
			}
			if queried(t, p, id) {
				t.Fatal("Query lists a snapshot of the aborted set")
			}
			wantCode(t, "CommitSnapshots after AbortSnapshots", p.CommitSnapshots(c, set), vsserr.ObjectNotFound)
			wantCode(t, "BeginPrepareSnapshot of an aborted set", p.BeginPrepareSnapshot(c, set, uuid.New(), s.Volume, h.Context), beginRefused)
			if err := p.AbortSnapshots(c, set); err != nil {
				t.Fatalf("second AbortSnapshots: %v", err)
			}
			if queried(t, p, id) {
				t.Fatal("the refused calls after AbortSnapshots made a snapshot")
			}
			nothingLeft(t, s, "Abort")
		})
	}
}

// A finished set is closed: its ID cannot be prepared again, its steps are
// refused as for a set never seen, and AbortSnapshots of it leaves its
// snapshots, which only DeleteSnapshot removes.
func testFinished(t *testing.T, h Harness) {
	s := setup(t, h)
	p, c := s.Provider, ctx(t)
	rel := writeMarker(t, s, "finished", "finished set")
	snap := create(t, h, p, s.Volume)[0]
	wantCode(t, "BeginPrepareSnapshot of a finished set", p.BeginPrepareSnapshot(c, snap.SetID, uuid.New(), another(s), h.Context), beginRefused)
	for _, st := range sequence {
		wantCode(t, st.name+" of a finished set", st.call(c, p, snap.SetID), st.refused)
	}
	if err := p.AbortSnapshots(c, snap.SetID); err != nil {
		t.Fatalf("AbortSnapshots of a finished set: %v", err)
	}
	if !queried(t, p, snap.ID) {
		t.Fatal("AbortSnapshots of a finished set removed its snapshot")
	}
	holds(t, s, snap, rel, "finished set", "ContentAfterAbort")
}

// Snapshots outlive the provider value: a new one over the same state
// lists them with the same identity, exposes them and deletes them, given
// the Snapshot the old one reported (as the coordinator's catalog keeps
// it).
func testRestart(t *testing.T, h Harness) {
	s := setup(t, h)
	if s.Restart == nil {
		notChecked(t, s, "Restart", "snapshots surviving a new provider value")
	}
	rel := writeMarker(t, s, "restart", "made before the restart")
	snap := create(t, h, s.Provider, s.Volume)[0]
	p := s.Restart(t)
	got, ok := listed(t, p, snap.ID)
	if !ok {
		t.Fatal("after a restart, Query does not list a snapshot made before it")
	}
	if got.SetID != snap.SetID || got.OriginalVolume != snap.OriginalVolume || got.DevicePath != snap.DevicePath ||
		got.Handle != snap.Handle || !got.Created.Equal(snap.Created) {
		t.Fatalf("after a restart, Query reports\n%+v\nfor the snapshot made as\n%+v", got, snap)
	}
	holds(t, s, snap, rel, "made before the restart", "Content")
	t.Run("Expose", func(t *testing.T) {
		ex, ok := p.(provider.Exposer)
		if !ok {
			notChecked(t, s, "Exposer", "exposure after a restart")
		}
		if s.ExposeDir == "" {
			notChecked(t, s, "ExposeDir", "exposure after a restart")
		}
		target := filepath.Join(s.ExposeDir, "after-restart")
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		name, err := ex.Expose(ctx(t), snap, target)
		if err != nil {
			t.Fatalf("Expose after a restart: %v", err)
		}
		if s.ReadSnapshot != nil {
			if b, err := os.ReadFile(filepath.Join(name, rel)); err != nil || string(b) != "made before the restart" {
				t.Fatalf("exposed after a restart, %s shows %q %v", name, b, err)
			}
		}
		if err := ex.Unexpose(ctx(t), snap, name); err != nil {
			t.Fatalf("Unexpose after a restart: %v", err)
		}
	})
	if err := p.DeleteSnapshot(ctx(t), snap); err != nil {
		t.Fatalf("DeleteSnapshot after a restart: %v", err)
	}
	if queried(t, p, snap.ID) {
		t.Fatal("after a restart, Query still lists a deleted snapshot")
	}
	nothingLeft(t, s, "DeleteAfterRestart")
}

// EndPrepareSnapshots given a context already done returns promptly with
// its error, making nothing; the Abort that follows leaves nothing.
func testCancelledEndPrepare(t *testing.T, h Harness) {
	s := setup(t, h)
	p := s.Provider
	set, id := begin(t, h, s, 0)
	before := residue(t, s)
	err := within(t, "EndPrepareSnapshots", func() error { return p.EndPrepareSnapshots(cancelled(), set) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("EndPrepareSnapshots with a cancelled context: want an error wrapping context.Canceled, got %v", err)
	}
	nothingMade(t, s, before, "CancelledEndPrepare")
	if err := p.AbortSnapshots(ctx(t), set); err != nil {
		t.Fatalf("AbortSnapshots: %v", err)
	}
	if queried(t, p, id) {
		t.Fatal("Query lists a snapshot of a set whose EndPrepareSnapshots was cancelled")
	}
	nothingLeft(t, s, "Abort")
}

// CommitSnapshots given a context already done returns promptly with its
// error and makes no snapshot; the Abort that follows leaves nothing.
func testCancelledCommit(t *testing.T, h Harness) {
	s := setup(t, h)
	p := s.Provider
	set, id := begin(t, h, s, 2)
	before := residue(t, s)
	err := within(t, "CommitSnapshots", func() error { return p.CommitSnapshots(cancelled(), set) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("CommitSnapshots with a cancelled context: want an error wrapping context.Canceled, got %v", err)
	}
	if queried(t, p, id) {
		t.Fatal("CommitSnapshots with a cancelled context made a snapshot")
	}
	nothingMade(t, s, before, "CancelledCommit")
	if err := p.AbortSnapshots(ctx(t), set); err != nil {
		t.Fatalf("AbortSnapshots: %v", err)
	}
	if queried(t, p, id) {
		t.Fatal("Query lists a snapshot of a set whose CommitSnapshots was cancelled")
	}
	nothingLeft(t, s, "Abort")
}

// DeleteSnapshot given a context already done returns promptly with its
// error and leaves the snapshot whole; a DeleteSnapshot with a live
// context then removes it.
func testCancelledDelete(t *testing.T, h Harness) {
	s := setup(t, h)
	p := s.Provider
	rel := writeMarker(t, s, "cancelled-delete", "still here")
	snap := create(t, h, p, s.Volume)[0]
	before := residue(t, s)
	err := within(t, "DeleteSnapshot", func() error { return p.DeleteSnapshot(cancelled(), snap) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("DeleteSnapshot with a cancelled context: want an error wrapping context.Canceled, got %v", err)
	}
	nothingMade(t, s, before, "CancelledDelete")
	if !queried(t, p, snap.ID) {
		t.Fatal("DeleteSnapshot with a cancelled context removed the snapshot from Query")
	}
	holds(t, s, snap, rel, "still here", "ContentAfterCancelledDelete")
	if err := p.DeleteSnapshot(ctx(t), snap); err != nil {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	if queried(t, p, snap.ID) {
		t.Fatal("Query lists a deleted snapshot")
	}
	nothingLeft(t, s, "Delete")
}

// A call whose context is cancelled while it works (held by the harness
// inside its real work) stops and returns promptly with the context's
// error. EndPrepareSnapshots and CommitSnapshots then leave nothing after
// Abort; DeleteSnapshot either finished or left the snapshot listed for a
// later delete.
func testCancelInFlight(t *testing.T, h Harness) {
	for _, method := range []string{"EndPrepareSnapshots", "CommitSnapshots", "DeleteSnapshot"} {
		t.Run(method, func(t *testing.T) {
			if h.Serial == "" {
				t.Parallel()
			}
			s := setup(t, h)
			if s.Hold == nil {
				notChecked(t, s, "Hold", "a call cancelled while it works")
			}
			p := s.Provider
			writeMarker(t, s, "in-flight", "something to copy")
			var set, id uuid.UUID
			var snap provider.Snapshot
			var call func(context.Context) error
			switch method {
			case "EndPrepareSnapshots":
				set, id = begin(t, h, s, 0)
				call = func(c context.Context) error { return p.EndPrepareSnapshots(c, set) }
			case "CommitSnapshots":
				set, id = begin(t, h, s, 2)
				call = func(c context.Context) error { return p.CommitSnapshots(c, set) }
			case "DeleteSnapshot":
				snap = create(t, h, p, s.Volume)[0]
				id = snap.ID
				call = func(c context.Context) error { return p.DeleteSnapshot(c, snap) }
			}
			held, release, ok := s.Hold(t, method)
			if !ok {
				notChecked(t, s, "Hold "+method, method+" cancelled while it works")
			}
			if why := s.Without["Hold "+method]; why != "" {
				t.Fatalf("Setup.Without says Hold cannot hold %s (%s), but it did", method, why)
			}
			c, cancel := context.WithCancel(ctx(t))
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- call(c) }()
			select {
			case <-held:
			case err := <-done:
				t.Fatalf("%s returned (%v) before the harness held it", method, err)
			case <-time.After(prompt):
				t.Fatalf("%s was not held within %s", method, prompt)
			}
			cancel()
			release()
			var err error
			select {
			case err = <-done:
			case <-time.After(prompt):
				t.Fatalf("%s has not returned %s after its context was cancelled", method, prompt)
			}
			if method == "DeleteSnapshot" && err == nil {
				// It finished before it looked at its context: allowed.
				if queried(t, p, id) {
					t.Fatal("DeleteSnapshot returned nil, but Query still lists the snapshot")
				}
				nothingLeft(t, s, "Delete")
				return
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s cancelled while it works: want an error wrapping context.Canceled, got %v", method, err)
			}
			if method == "DeleteSnapshot" {
				if !queried(t, p, id) {
					t.Fatal("a cancelled DeleteSnapshot left a snapshot that Query does not list: nothing can delete it now")
				}
				if err := p.DeleteSnapshot(ctx(t), snap); err != nil {
					t.Fatalf("DeleteSnapshot after a cancelled one: %v", err)
				}
			} else if err := p.AbortSnapshots(ctx(t), set); err != nil {
				t.Fatalf("AbortSnapshots: %v", err)
			}
			if queried(t, p, id) {
				t.Fatalf("Query lists the snapshot after the cancelled %s was cleaned up", method)
			}
			nothingLeft(t, s, "Cleanup")
		})
	}
}
