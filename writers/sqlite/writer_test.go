package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// newDB creates a database with a probe table in dir, in WAL or
// rollback-journal (DELETE) mode, and closes it.
func newDB(t *testing.T, dir, name string, wal bool) string {
	t.Helper()
	path := filepath.Join(dir, name)
	mode := "delete"
	if wal {
		mode = "wal"
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode("+mode+")")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE probe(x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	return path
}

// replaceWithCopy puts a copy of db in its place, as a restore from a
// backup does (a new file, not an in-place rewrite), truncated to half
// its size when damaged.
func replaceWithCopy(t *testing.T, db string, damaged bool) {
	t.Helper()
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if damaged {
		b = b[:len(b)/2]
	}
	if err := os.WriteFile(db+".restored", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(db+".restored", db); err != nil {
		t.Fatal(err)
	}
}

func mustNew(t *testing.T, cfg Config) (writer.Identity, *Writer) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testenv.Logger(t)
	}
	id, w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return id, w
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		wal  []bool
	}{
		{"WAL", []bool{true}},
		{"RollbackJournal", []bool{false}},
		{"TwoDatabases", []bool{true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu  sync.Mutex
				dbs []string
			)
			writertest.Run(t, func(t *testing.T) (writer.Identity, writer.Writer) {
				dir := t.TempDir()
				var paths []string
				for i, wal := range tc.wal {
					paths = append(paths, newDB(t, dir, string(rune('a'+i))+".db", wal))
				}
				mu.Lock()
				dbs = paths
				mu.Unlock()
				id, w := mustNew(t, Config{Databases: paths, InstanceName: "test"})
				return id, w
			}, writertest.Options{
				CheckFrozen: func(t *testing.T) { mu.Lock(); p := dbs; mu.Unlock(); mustBeFrozen(t, p...) },
				CheckThawed: func(t *testing.T) { mu.Lock(); p := dbs; mu.Unlock(); mustBeWritable(t, p...) },
				// The restore puts back a copy of each database as it is
				// (a new file in its place); VSS_RS_FAILED leaves a
				// truncated one. After PostRestore the database must be
				// usable, but after VSS_RS_FAILED, when the writer refuses it.
				Restore: func(t *testing.T, st vss.FileRestoreStatus) {
					mu.Lock()
					p := dbs
					mu.Unlock()
					for _, db := range p {
						if st == vss.RSAll || st == vss.RSFailed {
							replaceWithCopy(t, db, st == vss.RSFailed)
						}
					}
				},
				CheckRestored: func(t *testing.T, st vss.FileRestoreStatus) {
					if st != vss.RSFailed {
						mu.Lock()
						p := dbs
						mu.Unlock()
						mustBeWritable(t, p...)
					}
				},
			})
		})
	}
}

// TestConformanceOneOfTwoSelected: in component mode only the selected
// database is frozen; the other stays writable throughout.
func TestConformanceOneOfTwoSelected(t *testing.T) {
	dir := t.TempDir() // the component names (paths) must be the same in every subtest
	a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	writertest.Run(t, func(t *testing.T) (writer.Identity, writer.Writer) {
		for _, p := range []string{a, b} {
			for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
				os.Remove(p + suffix)
			}
			newDB(t, dir, filepath.Base(p), true)
		}
		id, w := mustNew(t, Config{Databases: []string{a, b}})
		return id, w
	}, writertest.Options{
		Components:  []writertest.ComponentRef{{LogicalPath: "", Name: a}},
		CheckFrozen: func(t *testing.T) { mustBeFrozen(t, a); mustBeWritable(t, b) },
		CheckThawed: func(t *testing.T) { mustBeWritable(t, a, b) },
	})
}

func TestNewRefusesBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		dbs  []string
		want string
	}{
		{nil, "no database"},
		{[]string{"rel/app.db"}, "not absolute"},
		{[]string{"/a/app.db", "/a/../a/app.db"}, "listed twice"},
		{[]string{"/a/app*.db"}, "wildcard"},
		{[]string{`/a\b/app.db`}, "backslash"},
		{[]string{"/a/"}, "directory"},
	} {
		_, _, err := New(Config{Databases: tc.dbs})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q) = %v, want an error about %q", tc.dbs, err, tc.want)
		}
	}
	if _, _, err := New(Config{Databases: []string{"/a.db"}, Checkpoint: "SOMETIMES"}); err == nil {
		t.Error("an unknown checkpoint mode was accepted")
	}
	if _, _, err := New(Config{Databases: []string{"/a.db"}, Level: vss.LevelSystemRM}); err == nil || !strings.Contains(err.Error(), "front-end, back-end or system") {
		t.Errorf("level system-rm: %v, want a refusal naming the levels", err)
	}
	id, _, err := New(Config{Databases: []string{"/a.db"}})
	if err != nil || id.ClassID != ClassID || id.Name != DefaultName || id.Source != vss.SourceTransactedDB || id.Level != vss.LevelFrontEnd {
		t.Errorf("identity %+v, %v", id, err)
	}
	// Back-end: a database whose application has a front-end writer of
	// its own, quiesced first (D5).
	if id, _, err := New(Config{Databases: []string{"/a.db"}, Level: vss.LevelBackEnd}); err != nil || id.Level != vss.LevelBackEnd {
		t.Errorf("Level back-end: identity %+v, %v", id, err)
	}
}

func identify(t *testing.T, w *Writer) (*document.WriterMetadata, error) {
	t.Helper()
	md := &writer.Metadata{}
	err := w.Identify(context.Background(), md)
	return md.Document(), err
}

func TestIdentifyDeclaresFilesByJournalMode(t *testing.T) {
	dir := t.TempDir()
	wal := newDB(t, dir, "wal.db", true)
	rb := newDB(t, dir, "rollback.db", false)
	_, w := mustNew(t, Config{Databases: []string{wal, rb}})
	md, err := identify(t, w)
	if err != nil {
		t.Fatal(err)
	}
	// The SDK fills the identity; the rest must be valid as the writer built it.
	md.Identity.Usage, md.Identity.Source = vss.UsageUserData, vss.SourceTransactedDB
	if err := md.Validate(); err != nil {
		t.Fatalf("invalid metadata: %v", err)
	}
	if len(md.Components) != 2 {
		t.Fatalf("%d components", len(md.Components))
	}
	for i, want := range []struct{ path, db, log string }{{wal, "wal.db", "wal.db-wal"}, {rb, "rollback.db", "rollback.db-journal"}} {
		c := md.Components[i]
		if c.Name != want.path || c.Type != vss.ComponentDatabase || !c.Selectable {
			t.Errorf("component %d: %+v", i, c)
		}
		if len(c.DatabaseFiles) != 1 || c.DatabaseFiles[0].Path != dir || c.DatabaseFiles[0].Filespec != want.db {
			t.Errorf("%s: database files %+v", want.path, c.DatabaseFiles)
		}
		if len(c.DatabaseLogFiles) != 1 || c.DatabaseLogFiles[0].Path != dir || c.DatabaseLogFiles[0].Filespec != want.log {
			t.Errorf("%s: log files %+v, want %s", want.path, c.DatabaseLogFiles, want.log)
		}
	}
	if len(md.ExcludeFiles) != 1 || md.ExcludeFiles[0].Filespec != "wal.db-shm" {
		t.Errorf("exclusions %+v, want the WAL database's -shm only", md.ExcludeFiles)
	}
}

func TestIdentifyFailsForAMissingDatabase(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	_, w := mustNew(t, Config{Databases: []string{newDB(t, dir, "ok.db", true), missing}})
	_, err := identify(t, w)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Identify: %v, want a message naming %s as missing", err, missing)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("Identify created the missing database: %v", err)
	}

	// Over the wire: the failure and its message reach the coordinator.
	id, w2 := mustNew(t, Config{Databases: []string{missing}})
	co := writertest.Serve(t, id, w2)
	res, err := co.Send(context.Background(), 0, &v1.Event{Id: 1, Type: v1.EventType_EVENT_IDENTIFY, TimeoutMs: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetFailure() == 0 || !strings.Contains(res.GetApplicationMessage(), missing+" does not exist") {
		t.Fatalf("Identify answered %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
}

func TestIdentifyFailsForAFileThatIsNotADatabase(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(p, []byte(strings.Repeat("not a database\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, w := mustNew(t, Config{Databases: []string{p}})
	if _, err := identify(t, w); err == nil || !strings.Contains(err.Error(), "cannot be read as a SQLite database") {
		t.Fatalf("Identify: %v", err)
	}
}

// session drives a writer directly, as the SDK would, with placements that
// put the databases' directory in one snapshot.
type session struct {
	t       *testing.T
	w       *Writer
	id      uuid.UUID
	dir     string
	timeout time.Duration // of PrepareBackup and PrepareSnapshot
}

func newSession(t *testing.T, w *Writer, dir string) *session {
	return &session{t: t, w: w, id: uuid.New(), dir: dir, timeout: 10 * time.Second}
}

func (s *session) event(typ writer.EventType, d time.Duration) *writer.Event {
	return &writer.Event{
		Type: typ, SessionID: s.id, Context: vss.CtxBackup, Volumes: []string{"/"}, Deadline: time.Now().Add(d),
		Placements: []writer.Placement{{Path: s.dir, SnapshotID: uuid.New(), OriginalVolume: "/", Instant: 1}},
	}
}

func (s *session) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	s.t.Cleanup(cancel)
	return ctx
}

func (s *session) prepare() error {
	s.t.Helper()
	if _, err := identify(s.t, s.w); err != nil {
		s.t.Fatal(err)
	}
	if err := s.w.PrepareBackup(s.ctx(s.timeout), s.event(writer.EventPrepareBackup, s.timeout), nil); err != nil {
		s.t.Fatal(err)
	}
	return s.w.PrepareSnapshot(s.ctx(s.timeout), s.event(writer.EventPrepareSnapshot, s.timeout))
}

func (s *session) freeze(d time.Duration) error {
	return s.w.Freeze(s.ctx(d), s.event(writer.EventFreeze, d))
}

// TestFreezeFailsRetryableWhenTheApplicationKeepsTheLock: another process
// holds the write lock past the lock timeout; Freeze gives up with
// RETRYABLE, SQLite's message and code, and holds nothing.
func TestFreezeFailsRetryableWhenTheApplicationKeepsTheLock(t *testing.T) {
	dir := t.TempDir()
	a := newDB(t, dir, "a.db", true)
	b := newDB(t, dir, "b.db", true)
	_, w := mustNew(t, Config{Databases: []string{a, b}, LockTimeout: 300 * time.Millisecond})
	s := newSession(t, w, dir)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	h := hold(t, "hold", b)
	start := time.Now()
	err := s.freeze(10 * time.Second)
	if took := time.Since(start); took < 300*time.Millisecond || took > 8*time.Second { // under the 10 s budget
		t.Errorf("Freeze gave up after %s with a 300ms lock timeout", took)
	}
	f := writertest.AsFailure(t, err)
	if f.Code != vsserr.WriterErrorRetryable || f.ApplicationHR != 0xA0000005 ||
		!strings.Contains(f.Message, b) || !strings.Contains(f.Message, "database is locked") {
		t.Fatalf("Freeze: %v (application %s)", err, f.ApplicationHR.Hex())
	}
	// a.db was locked before b.db was tried: it must be free again.
	mustBeWritable(t, a)
	h.stop()
	mustBeWritable(t, b)
	if err := w.Abort(s.ctx(5*time.Second), s.event(writer.EventAbort, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// TestAbortCutsAFreezeWaitingForTheLock: over the SDK, an Abort arriving
// while Freeze waits for the application's lock ends the wait at once;
// nothing stays locked.
func TestAbortCutsAFreezeWaitingForTheLock(t *testing.T) {
	dir := t.TempDir()
	db := newDB(t, dir, "a.db", true)
	id, w := mustNew(t, Config{Databases: []string{db}, LockTimeout: time.Minute})
	co := writertest.Serve(t, id, w)

	sid := uuid.New().String()
	ev := func(n uint64, typ v1.EventType) *v1.Event {
		return &v1.Event{Id: n, Type: typ, SessionId: sid, Context: int32(vss.CtxBackup), TimeoutMs: 120000,
			Volumes:    []string{"/"},
			Placements: []*v1.PathPlacement{{Path: dir, SnapshotId: uuid.New().String(), OriginalVolume: "/", Instant: 1}}}
	}
	send := func(e *v1.Event) *v1.EventResult {
		t.Helper()
		res, err := co.Send(context.Background(), 0, e)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := send(&v1.Event{Id: 1, Type: v1.EventType_EVENT_IDENTIFY, TimeoutMs: 10000}); res.GetFailure() != 0 {
		t.Fatal(res.GetApplicationMessage())
	}
	for i, typ := range []v1.EventType{v1.EventType_EVENT_PREPARE_BACKUP, v1.EventType_EVENT_PREPARE_SNAPSHOT} {
		if res := send(ev(uint64(2+i), typ)); res.GetFailure() != 0 {
			t.Fatal(res.GetApplicationMessage())
		}
	}
	h := hold(t, "hold", db)
	frozen := make(chan *v1.EventResult, 1)
	go func() { res, _ := co.Send(context.Background(), 0, ev(4, v1.EventType_EVENT_FREEZE)); frozen <- res }()
	// Freeze is now polling for the lock the application holds.
	testenv.Eventually(t, 30*time.Second, "Freeze to poll for the write lock", func() bool { return running("(*database).lock") })
	start := time.Now()
	if res := send(ev(5, v1.EventType_EVENT_ABORT)); res.GetFailure() != 0 {
		t.Fatalf("Abort: %s", res.GetApplicationMessage())
	}
	res := <-frozen
	// The alternative is the minute's lock timeout: half of it tells the
	// two apart on any machine.
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("Freeze and Abort took %s after the Abort was sent", took)
	}
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorRetryable || !strings.Contains(res.GetApplicationMessage(), "Abort") {
		t.Errorf("the cut Freeze answered %s %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
	h.stop()
	mustBeWritable(t, db)
}

// running reports whether a goroutine of the test process is in the
// package's function fn ("(*database).lock"): the writer runs in the
// test process, so its goroutines' stacks say where it waits.
func running(fn string) bool {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Contains(buf[:n], []byte("lvss/writers/sqlite."+fn+"("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestPrepareSnapshotVetoesADatabaseOutsideTheSet: the requester included
// the database's component but not its volume.
func TestPrepareSnapshotVetoesADatabaseOutsideTheSet(t *testing.T) {
	dir := t.TempDir()
	db := newDB(t, dir, "a.db", true)
	_, w := mustNew(t, Config{Databases: []string{db}})
	s := newSession(t, w, dir)
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	ev := s.event(writer.EventPrepareSnapshot, 10*time.Second)
	ev.Placements[0].SnapshotID, ev.Placements[0].Instant = uuid.Nil, 0
	err := w.PrepareSnapshot(s.ctx(10*time.Second), ev)
	if !errors.Is(err, vsserr.WriterErrorInconsistentSnapshot) || !strings.Contains(err.Error(), "no snapshot") {
		t.Fatalf("PrepareSnapshot: %v", err)
	}
}

// TestModeChangeAfterIdentifyIsRefused: Identify declared a rollback
// journal, then the application switched to WAL: the -wal would be missing
// from the requester's metadata.
func TestModeChangeAfterIdentifyIsRefused(t *testing.T) {
	dir := t.TempDir()
	db := newDB(t, dir, "a.db", false)
	_, w := mustNew(t, Config{Databases: []string{db}})
	s := newSession(t, w, dir)
	if _, err := identify(t, w); err != nil {
		t.Fatal(err)
	}
	app, err := sql.Open("sqlite", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec("PRAGMA journal_mode=wal"); err != nil {
		t.Fatal(err)
	}
	app.Close()
	err = w.PrepareSnapshot(s.ctx(10*time.Second), s.event(writer.EventPrepareSnapshot, 10*time.Second))
	if f := writertest.AsFailure(t, err); f.Code != vsserr.WriterErrorRetryable || !strings.Contains(f.Message, "switched to WAL") {
		t.Fatalf("PrepareSnapshot: %v", err)
	}
}

// TestCloseReleasesAFrozenDatabase: the host's last resort (process end)
// releases the lock and refuses later events.
func TestCloseReleasesAFrozenDatabase(t *testing.T) {
	dir := t.TempDir()
	db := newDB(t, dir, "a.db", false)
	_, w := mustNew(t, Config{Databases: []string{db}})
	s := newSession(t, w, dir)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := s.freeze(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	mustBeFrozen(t, db)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mustBeWritable(t, db)
	if err := s.freeze(time.Second); err == nil {
		t.Fatal("Freeze after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestBackupShutdownClosesTheConnection: after BackupShutdown the writer
// keeps no descriptor of the database open.
func TestBackupShutdownClosesTheConnection(t *testing.T) {
	dir := t.TempDir()
	db := newDB(t, dir, "a.db", true)
	_, w := mustNew(t, Config{Databases: []string{db}})
	s := newSession(t, w, dir)
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	if n := openDescriptors(t, db); n == 0 {
		t.Fatal("PrepareSnapshot opened no connection")
	}
	if err := s.freeze(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := w.Thaw(s.ctx(5*time.Second), s.event(writer.EventThaw, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := w.BackupShutdown(s.ctx(5*time.Second), s.event(writer.EventBackupShutdown, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := openDescriptors(t, db); n != 0 {
		t.Fatalf("%d descriptors of %s still open after BackupShutdown", n, db)
	}
}

// openDescriptors counts this process's descriptors of path.
func openDescriptors(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		testenv.Missing(t, "/proc/self/fd: "+err.Error())
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}
