package coordinator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/smbshare"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// fakeShares is Samba's share management in memory: the smb.conf's names
// and the registry's shares. The real one is tested against smbd in
// internal/smbshare and test/e2e.
type fakeShares struct {
	mu       sync.Mutex
	usable   error
	file     []string
	reg      []smbshare.Share
	failAdd  error
	failList error
}

func (f *fakeShares) Usable(context.Context) error { f.mu.Lock(); defer f.mu.Unlock(); return f.usable }

func (f *fakeShares) Defined(_ context.Context, name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.file {
		if strings.EqualFold(n, name) {
			return true, nil
		}
	}
	return f.find(name) >= 0, nil
}

func (f *fakeShares) find(name string) int {
	return slices.IndexFunc(f.reg, func(s smbshare.Share) bool { return strings.EqualFold(s.Name, name) })
}

func (f *fakeShares) Add(_ context.Context, name, dir, comment string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAdd != nil {
		return f.failAdd
	}
	if f.find(name) >= 0 {
		return vsserr.New(vsserr.ObjectAlreadyExists, "share %s exists", name)
	}
	f.reg = append(f.reg, smbshare.Share{Name: name, Path: dir, Comment: comment})
	return nil
}

func (f *fakeShares) Remove(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := f.find(name); i >= 0 {
		f.reg = slices.Delete(f.reg, i, i+1)
	}
	return nil
}

func (f *fakeShares) List(context.Context) ([]smbshare.Share, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reg), f.failList
}

func (f *fakeShares) share(name string) (smbshare.Share, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := f.find(name); i >= 0 {
		return f.reg[i], true
	}
	return smbshare.Share{}, false
}

func (f *fakeShares) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.reg {
		out = append(out, s.Name)
	}
	return out
}

// shareEnv is an env whose coordinator has fake Shares and a run dir.
func shareEnv(t *testing.T) (*env, *fakeShares) {
	t.Helper()
	sh := &fakeShares{file: []string{"data"}}
	e := newEnv(t, func(o *Options) { o.Shares = sh; o.RunDir = t.TempDir() })
	return e, sh
}

// withDirectory gives a snapshot's record a DevicePath that is a real
// directory, with a subdirectory docs and a link out of it, as a btrfs
// snapshot's is.
func (e *env) withDirectory(id uuid.UUID) string {
	e.t.Helper()
	dir := e.t.TempDir()
	must(e.t, os.Mkdir(filepath.Join(dir, "docs"), 0o755))
	must(e.t, os.Symlink("/etc", filepath.Join(dir, "out")))
	must(e.t, os.WriteFile(filepath.Join(dir, "f"), nil, 0o644))
	sn, err := e.cat.GetSnapshot(id)
	must(e.t, err)
	sn.DevicePath = dir
	must(e.t, e.cat.PutSnapshots(sn))
	return dir
}

// The argument checks of a remote exposure, each with its VSS code.
func TestExposeRemotelyRefusals(t *testing.T) {
	ctx := context.Background()
	bare := newEnv(t, nil)
	_, snap := bare.persistentSet(false)
	_, err := bare.admin().ExposeSnapshot(ctx, snap, "", vss.AttrExposedRemotely, "snap")
	if !errors.Is(err, vsserr.NotSupported) || !strings.Contains(err.Error(), "remote_exposure = true") || !strings.Contains(err.Error(), "registry shares = yes") {
		t.Errorf("remote exposure off: %v, want VSS_E_NOT_SUPPORTED saying what to set", err)
	}

	e, sh := shareEnv(t)
	_, snap = e.persistentSet(false)
	e.withDirectory(snap)
	s := e.admin()
	const remote = vss.AttrExposedRemotely
	for _, c := range []struct {
		what        string
		attrs       vss.Attributes
		path, name  string
		id          uuid.UUID
		code        vsserr.HRESULT
		msgContains string
	}{
		{what: "no attribute", attrs: 0, name: "x", code: vsserr.InvalidArg},
		{what: "both attributes", attrs: vss.AttrExposedLocally | remote, name: "x", code: vsserr.InvalidArg},
		{what: "a slash in the name", attrs: remote, name: "a/b", code: vsserr.InvalidArg},
		{what: "a name of 81 characters", attrs: remote, name: strings.Repeat("n", 81), code: vsserr.InvalidArg},
		{what: "Samba's homes", attrs: remote, name: "Homes", code: vsserr.InvalidArg},
		{what: "a wildcard in pathFromRoot", attrs: remote, path: "docs/*", name: "x", code: vsserr.InvalidArg},
		{what: "an environment variable in pathFromRoot", attrs: remote, path: "%HOME%", name: "x", code: vsserr.InvalidArg},
		{what: "pathFromRoot climbing", attrs: remote, path: "docs/../..", name: "x", code: vsserr.InvalidArg},
		{what: "pathFromRoot that is not there", attrs: remote, path: "nothere", name: "x", code: vsserr.InvalidArg},
		{what: "pathFromRoot a file", attrs: remote, path: "f", name: "x", code: vsserr.InvalidArg},
		{what: "pathFromRoot a link out of the snapshot", attrs: remote, path: "out", name: "x", code: vsserr.InvalidArg, msgContains: "leads out"},
		{what: "a name smb.conf has (another case)", attrs: remote, name: "DATA", code: vsserr.ObjectAlreadyExists},
		{what: "an unknown snapshot", attrs: remote, name: "x", id: uuid.New(), code: vsserr.ObjectNotFound},
	} {
		id := snap
		if c.id != uuid.Nil {
			id = c.id
		}
		_, err := s.ExposeSnapshot(ctx, id, c.path, c.attrs, c.name)
		if vsserr.Code(err) != c.code || !strings.Contains(errText(err), c.msgContains) {
			t.Errorf("%s: %v, want %s", c.what, err, c.code.Name())
		}
	}
	if n := sh.names(); len(n) != 0 {
		t.Errorf("refusals left shares %v", n)
	}
	if j, _ := e.cat.Journal(); len(j) != 0 {
		t.Errorf("refusals left journal entries %+v", j)
	}

	sh.usable = vsserr.New(vsserr.NotSupported, "no registry shares")
	if _, err := s.ExposeSnapshot(ctx, snap, "", vss.AttrExposedRemotely, "x"); !errors.Is(err, vsserr.NotSupported) {
		t.Errorf("Samba not usable: %v", err)
	}
	sh.usable = nil

	// Already exposed, either way, is VSS_E_OBJECT_ALREADY_EXISTS; so is
	// a name another snapshot's share has.
	if _, err := s.ExposeSnapshot(ctx, snap, "", vss.AttrExposedRemotely, "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExposeSnapshot(ctx, snap, "", vss.AttrExposedRemotely, "two"); !errors.Is(err, vsserr.ObjectAlreadyExists) {
		t.Errorf("exposed twice: %v", err)
	}
	if _, err := s.ExposeSnapshot(ctx, snap, "", vss.AttrExposedLocally, t.TempDir()); !errors.Is(err, vsserr.ObjectAlreadyExists) ||
		!strings.Contains(err.Error(), "as SMB share one") {
		t.Errorf("exposed locally after remotely: %v", err)
	}
	_, other := e.persistentSet(false)
	e.withDirectory(other)
	if _, err := s.ExposeSnapshot(ctx, other, "", vss.AttrExposedRemotely, "ONE"); !errors.Is(err, vsserr.ObjectAlreadyExists) {
		t.Errorf("a name in use: %v", err)
	}
}

// A snapshot that is a directory is shared where it is, whole or a
// subdirectory; its properties say so; unexpose and delete remove the
// share; retention's delete refuses it while it is shared.
func TestExposeRemotelyDirectory(t *testing.T) {
	ctx := context.Background()
	e, sh := shareEnv(t)
	_, snap := e.persistentSet(false)
	dir := e.withDirectory(snap)
	s := e.admin()
	name, err := s.ExposeSnapshot(ctx, snap, "", vss.AttrExposedRemotely, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "lvss-" + snap.String(); name != want {
		t.Fatalf("chosen name %q, want %q", name, want)
	}
	got, ok := sh.share(name)
	if !ok || got.Path != dir || got.Comment != "lvss snapshot "+snap.String() {
		t.Fatalf("registry share %+v (%v), want %s", got, ok, dir)
	}
	p, err := s.GetSnapshotProperties(snap)
	must(t, err)
	if p.ExposedName != name || p.ExposedPath != "" || p.Attributes&vss.AttrExposedRemotely == 0 || p.Attributes&vss.AttrNotSurfaced != 0 {
		t.Fatalf("properties %+v", p)
	}
	if _, _, err := s.DeleteSnapshotsIfUnused(ctx, snap, vss.ObjectSnapshot, false); !errors.Is(err, vsserr.VolumeInUse) || !strings.Contains(err.Error(), "SMB share") {
		t.Fatalf("retention deleted a shared snapshot: %v", err)
	}
	must(t, s.UnexposeSnapshot(ctx, snap))
	if n := sh.names(); len(n) != 0 {
		t.Fatalf("shares after unexpose: %v", n)
	}
	p, _ = s.GetSnapshotProperties(snap)
	if p.ExposedName != "" || p.Attributes&vss.AttrExposedRemotely != 0 || p.Attributes&vss.AttrNotSurfaced == 0 {
		t.Fatalf("properties after unexpose %+v", p)
	}
	if err := s.UnexposeSnapshot(ctx, snap); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Fatalf("unexpose twice: %v", err)
	}

	if _, err := s.ExposeSnapshot(ctx, snap, "/docs/", vss.AttrExposedRemotely, "docs"); err != nil {
		t.Fatal(err)
	}
	if got, _ := sh.share("docs"); got.Path != filepath.Join(dir, "docs") {
		t.Fatalf("subdirectory share %+v", got)
	}
	if p, _ := s.GetSnapshotProperties(snap); p.ExposedName != "docs" || p.ExposedPath != "/docs" {
		t.Fatalf("properties %+v", p)
	}
	if _, _, err := s.DeleteSnapshots(ctx, snap, vss.ObjectSnapshot, false); err != nil {
		t.Fatal(err)
	}
	if n := sh.names(); len(n) != 0 {
		t.Fatalf("deleting the shared snapshot left shares %v", n)
	}
}

// A snapshot with no directory (the fake's device is not one) is exposed
// through its provider at a private directory under the run directory,
// which is shared; unexpose undoes both. A failed share undoes the
// exposure and leaves no journal entry.
func TestExposeRemotelyThroughProvider(t *testing.T) {
	ctx := context.Background()
	e, sh := shareEnv(t)
	_, snap := e.persistentSet(false)
	s := e.admin()
	private := filepath.Join(e.c.opt.RunDir, "shares", snap.String())

	sh.failAdd = vsserr.New(vsserr.UnexpectedProviderError, "net failed")
	if _, err := s.ExposeSnapshot(ctx, snap, "", vss.AttrExposedRemotely, "img"); !errors.Is(err, vsserr.UnexpectedProviderError) {
		t.Fatalf("failed share: %v", err)
	}
	if r := e.prov.Residue(); slices.ContainsFunc(r, func(s string) bool { return strings.HasPrefix(s, "exposure") }) {
		t.Fatalf("a failed share left the provider's exposure: %v", r)
	}
	if _, err := os.Stat(private); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed share left its directory: %v", err)
	}
	if j, _ := e.cat.Journal(); len(j) != 0 {
		t.Fatalf("journal %+v", j)
	}
	sh.failAdd = nil

	if _, err := s.ExposeSnapshot(ctx, snap, "", vss.AttrExposedRemotely, "img"); err != nil {
		t.Fatal(err)
	}
	if got, _ := sh.share("img"); got.Path != private {
		t.Fatalf("share %+v, want the private directory %s", got, private)
	}
	if r := e.prov.Residue(); !slices.Contains(r, "exposure of "+snap.String()+" at "+private) {
		t.Fatalf("the provider's exposures: %v", r)
	}
	rec, _ := e.cat.GetSnapshot(snap)
	if rec.ShareExposure != private {
		t.Fatalf("recorded private exposure %q", rec.ShareExposure)
	}
	must(t, s.UnexposeSnapshot(ctx, snap))
	if r := e.prov.Residue(); slices.ContainsFunc(r, func(s string) bool { return strings.HasPrefix(s, "exposure") }) {
		t.Fatalf("unexpose left the provider's exposure: %v", r)
	}
	if _, err := os.Stat(private); !errors.Is(err, os.ErrNotExist) || len(sh.names()) != 0 {
		t.Fatalf("unexpose left the directory (%v) or shares %v", err, sh.names())
	}
}

// Recovery at start: a share journaled and never recorded is removed (an
// admin's share of another name stays); an lvss share the catalog does not
// record is removed; a recorded share that vanished is recorded as not
// exposed; a private exposure a reboot took away is made again.
func TestRecoveryOfShares(t *testing.T) {
	ctx := context.Background()
	e, sh := shareEnv(t)
	_, cut := e.persistentSet(false)
	_, gone := e.persistentSet(false)
	_, rebooted := e.persistentSet(false)
	s := e.admin()
	for _, c := range []struct {
		id   uuid.UUID
		name string
	}{{gone, "gone"}, {rebooted, "rebooted"}} {
		if _, err := s.ExposeSnapshot(ctx, c.id, "", vss.AttrExposedRemotely, c.name); err != nil {
			t.Fatal(err)
		}
	}
	// What a kill between the share and its record leaves: the entry, the
	// provider's exposure and the share.
	csn, _ := e.cat.GetSnapshot(cut)
	private := filepath.Join(e.c.opt.RunDir, "shares", cut.String())
	must(t, os.MkdirAll(private, 0o755))
	_, err := any(e.prov).(provider.Exposer).Expose(ctx, toProviderSnapshot(csn), private)
	must(t, err)
	must(t, e.cat.PutJournal(catalog.JournalEntry{Kind: catalog.JournalShare, ID: cut, Path: private, Share: "cut"}))
	must(t, sh.Add(ctx, "cut", private, "lvss snapshot "+cut.String()))
	// An admin's share, and an lvss share of a snapshot the catalog no
	// longer has.
	must(t, sh.Add(ctx, "admins", "/srv", "the admin's"))
	must(t, sh.Add(ctx, "orphan", "/x", "lvss snapshot "+uuid.NewString()))
	// The admin removed one share; a reboot emptied the run directory.
	must(t, sh.Remove(ctx, "gone"))
	must(t, os.RemoveAll(filepath.Join(e.c.opt.RunDir, "shares", rebooted.String())))
	callsBefore := len(e.prov.Calls())

	e2 := e.restart(nil)
	rec := e2.c.Recovery()
	for what, want := range map[string]string{RecShareUndone: cut.String(), RecShareGone: gone.String(), RecShareRestored: rebooted.String()} {
		if a := actions(rec, what); len(a) != 1 || a[0].Object != want || a[0].Err != nil {
			t.Errorf("%s: %+v", what, rec.Actions)
		}
	}
	if a := actions(rec, RecShareRemoved); len(a) != 1 || !strings.Contains(a[0].Detail, "orphan") {
		t.Errorf("share-removed: %+v", rec.Actions)
	}
	if got := sh.names(); !slices.Equal(got, []string{"rebooted", "admins"}) {
		t.Errorf("shares after recovery %v, want rebooted and admins", got)
	}
	if j, _ := e.cat.Journal(); len(j) != 0 {
		t.Errorf("journal %+v", j)
	}
	if p, _ := e.cat.GetSnapshot(gone); p.ExposedName != "" || p.Attributes&uint32(vss.AttrExposedRemotely) != 0 {
		t.Errorf("the snapshot whose share vanished is recorded as %+v", p)
	}
	if !isDir(filepath.Join(e.c.opt.RunDir, "shares", rebooted.String())) || !slices.Contains(e.prov.Calls()[callsBefore:], "Expose") {
		t.Errorf("the rebooted share's exposure was not made again: %v", e.prov.Calls()[callsBefore:])
	}
	if _, err := os.Stat(private); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cut share's directory stayed: %v", err)
	}
	// All settled: the next start has nothing to do.
	e3 := e2.restart(nil)
	if n := len(e3.c.Recovery().Actions); n != 0 {
		t.Errorf("a clean start did %d things: %+v", n, e3.c.Recovery().Actions)
	}
}

// Without Samba at start, recorded shares are not touched; listing that
// fails is a failed action only when there are shares to check.
func TestRecoveryWithoutSamba(t *testing.T) {
	ctx := context.Background()
	e, sh := shareEnv(t)
	_, snap := e.persistentSet(false)
	if _, err := e.admin().ExposeSnapshot(ctx, snap, "", vss.AttrExposedRemotely, "kept"); err != nil {
		t.Fatal(err)
	}
	e2 := e.restart(func(o *Options) { o.Shares = nil })
	if n := len(e2.c.Recovery().Actions); n != 0 {
		t.Fatalf("recovery with remote exposure off did %+v", e2.c.Recovery().Actions)
	}
	if err := e2.admin().UnexposeSnapshot(ctx, snap); !errors.Is(err, vsserr.NotSupported) {
		t.Fatalf("unexpose with remote exposure off: %v", err)
	}
	sh.failList = vsserr.New(vsserr.NotSupported, "no net")
	e3 := e2.restart(func(o *Options) { o.Shares = sh })
	if a := actions(e3.c.Recovery(), RecFailed); len(a) != 1 {
		t.Fatalf("recovery with a Samba that cannot list: %+v", e3.c.Recovery().Actions)
	}
	if p, _ := e.cat.GetSnapshot(snap); p.ExposedName != "kept" {
		t.Fatalf("a share that could not be checked was forgotten: %+v", p)
	}
}

// busyExposer's Unexpose is busy a number of times, as an unmount is
// while smbd's processes still work in the directory.
type busyExposer struct {
	busy  int
	calls int
}

func (b *busyExposer) Expose(context.Context, provider.Snapshot, string) (string, error) {
	return "", nil
}
func (b *busyExposer) Unexpose(context.Context, provider.Snapshot, string) error {
	b.calls++
	if b.calls <= b.busy {
		return vsserr.New(vsserr.ProviderVeto, "busy")
	}
	return nil
}

// Right after a share's removal, a busy unexpose is tried again until it
// goes through; otherwise, and once the context ends, it is not.
func TestUnexposeSettling(t *testing.T) {
	ctx := context.Background()
	b := &busyExposer{busy: 2}
	if err := unexposeSettling(ctx, b, provider.Snapshot{}, "x", true); err != nil || b.calls != 3 {
		t.Fatalf("after a share: %v after %d calls", err, b.calls)
	}
	b = &busyExposer{busy: 2}
	if err := unexposeSettling(ctx, b, provider.Snapshot{}, "x", false); err == nil || b.calls != 1 {
		t.Fatalf("without a share: %v after %d calls", err, b.calls)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	b = &busyExposer{busy: 100}
	if err := unexposeSettling(cctx, b, provider.Snapshot{}, "x", true); err == nil || b.calls != 1 {
		t.Fatalf("with its context ended: %v after %d calls", err, b.calls)
	}
}
