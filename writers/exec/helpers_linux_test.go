package exec

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/procgroup"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// tmpfsDir is a fresh directory on a tmpfs for the hooks' TMPDIRs.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	if !procgroup.OnTmpfs("/dev/shm") {
		testenv.Missing(t, "/dev/shm on a tmpfs")
	}
	dir, err := os.MkdirTemp("/dev/shm", "lvss-exec-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// sq quotes s for sh.
func sq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// logBuffer collects the writer's log for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// baseConfig is a writer with one directory component, its TMPDIRs on a
// fresh tmpfs directory and its log in the test log.
func baseConfig(t *testing.T) Config {
	t.Helper()
	return Config{
		Name:       "test exec writer",
		Components: []Component{{Name: "data", Path: t.TempDir()}},
		TmpDir:     tmpfsDir(t),
		Logger:     testenv.Logger(t),
	}
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func mustNew(t *testing.T, cfg Config) (writer.Identity, *Writer) {
	t.Helper()
	id, w, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return id, w
}

// event is an event of session sid as a handler would get it.
func event(typ writer.EventType, sid uuid.UUID) *writer.Event {
	return &writer.Event{
		Type: typ, SessionID: sid, SnapshotSetID: uuid.New(), InstanceID: uuid.New(),
		BackupType: vss.BackupFull, SelectComponents: true, Deadline: time.Now().Add(time.Minute),
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !exists(path) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", path, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// liveInGroup lists the processes of process group pgid that are not
// zombies (a zombie is dead; only its parent's wait removes it).
func liveInGroup(pgid int) []int {
	var live []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, so
		// split after its closing parenthesis.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			live = append(live, pid)
		}
	}
	return live
}

// rig runs the writer against a writertest coordinator, for tests that
// need what lvssd would see (answers, documents) or the SDK's own events.
type rig struct {
	t       *testing.T
	co      *writertest.Coordinator
	wc      *writertest.WriterConn
	id      writer.Identity
	w       *Writer
	cancel  context.CancelFunc
	done    chan error
	next    uint64
	session uuid.UUID
	set     uuid.UUID
	snap    uuid.UUID
}

func startRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	id, w := mustNew(t, cfg)
	r := &rig{t: t, co: writertest.NewCoordinator(t), id: id, w: w, done: make(chan error, 1),
		session: uuid.New(), set: uuid.New(), snap: uuid.New()}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- writer.Run(ctx, writer.Options{Socket: r.co.Socket(), Logger: cfg.Logger}, id, w) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("writer.Run did not return")
		}
	})
	r.co.WaitWriters(1)
	r.wc = r.co.Writer(0)
	return r
}

// ev builds an event of the rig's session with what lvssd puts in it.
func (r *rig) ev(typ v1.EventType) *v1.Event {
	r.next++
	e := &v1.Event{Id: r.next, Type: typ, SessionId: r.session.String(), SnapshotSetId: r.set.String(),
		BackupType: int32(vss.BackupFull), SelectComponents: true, TimeoutMs: 20000}
	switch typ {
	case v1.EventType_EVENT_IDENTIFY:
		e.SnapshotSetId = ""
	case v1.EventType_EVENT_PREPARE_SNAPSHOT, v1.EventType_EVENT_POST_SNAPSHOT:
		e.Volumes = []string{"/"}
		e.Placements = []*v1.PathPlacement{{Path: "/srv/data", SnapshotId: r.snap.String(), OriginalVolume: "/", Instant: 1}}
		if typ == v1.EventType_EVENT_POST_SNAPSHOT {
			e.Placements[0].DevicePath = "/run/lvss/snap/1"
		}
	}
	return e
}

// withBCD attaches a document including the given components of the
// writer (at the root logical path).
func (r *rig) withBCD(e *v1.Event, succeeded bool, names ...string) *v1.Event {
	r.t.Helper()
	bcd := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull, SnapshotSetID: r.set}
	for _, n := range names {
		if err := bcd.AddComponent(r.wc.InstanceID, r.id.ClassID, r.id.InstanceName, 0, vss.ComponentFileGroup, "", n); err != nil {
			r.t.Fatal(err)
		}
	}
	if succeeded {
		own := bcd.Writer(r.wc.InstanceID)
		for i := range own.Components {
			own.Components[i].BackupSucceeded = true
		}
	}
	b, err := bcd.Marshal()
	if err != nil {
		r.t.Fatal(err)
	}
	e.BcdXml = string(b)
	return e
}

func (r *rig) send(e *v1.Event) *v1.EventResult {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := r.co.Send(ctx, 0, e)
	if err != nil {
		r.t.Fatalf("%s: %v", writer.EventType(e.Type), err)
	}
	return res
}

func (r *rig) ok(e *v1.Event) *v1.EventResult {
	r.t.Helper()
	res := r.send(e)
	if res.GetFailure() != 0 {
		r.t.Fatalf("%s failed: %s %s", writer.EventType(e.Type), vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage())
	}
	return res
}

// waitRun waits for writer.Run to return.
func (r *rig) waitRun(d time.Duration) error {
	r.t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for Cleanup
		return err
	case <-time.After(d):
		r.t.Fatalf("writer.Run did not return within %s", d)
		return nil
	}
}
