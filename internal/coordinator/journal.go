package coordinator

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/failpoint"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vsserr"
)

// The journal (L41). A creation is written to the catalog's journal, with
// its snapshot IDs, volumes, providers and writers, before the first
// provider step of DoSnapshotSet: one fsync, outside every freeze window.
// The steps after it — freeze, commit, thaw and the rest — are appended to
// a file in the run directory (a tmpfs write, no fsync), so that nothing is
// written to disk while writers or filesystems are frozen. The set's
// RecordSet removes the catalog entry in its own transaction, and the step
// file after it; an abort removes both once every provider has undone its
// part. Whatever is left at start names exactly what was cut (recover.go).

// stepsDir is where the step files live, under the run directory.
const stepsDir = "journal"

// stepLog is one creation's file of steps.
type stepLog struct {
	f    *os.File
	path string
}

// openSteps creates the step file of a set; nil when lvssd has no run
// directory or the file cannot be made (the catalog entry alone still
// lets recovery undo the set; only the name of the last step is lost).
func (c *Coordinator) openSteps(setID uuid.UUID) *stepLog {
	if c.opt.RunDir == "" {
		return nil
	}
	dir := filepath.Join(c.opt.RunDir, stepsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		c.log.Warn("journal: cannot make the step directory", "dir", dir, "error", err)
		return nil
	}
	path := filepath.Join(dir, setID.String()+".steps")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.log.Warn("journal: cannot open the step file", "file", path, "error", err)
		return nil
	}
	return &stepLog{f: f, path: path}
}

func (l *stepLog) write(step string) {
	if l == nil {
		return
	}
	// One write per line, so a crash leaves whole lines.
	fmt.Fprintf(l.f, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), step)
}

func (l *stepLog) close(remove bool) {
	if l == nil {
		return
	}
	l.f.Close()
	if remove {
		os.Remove(l.path)
	}
}

// lastStep reads the last step a set's file records; "" when there is none.
func lastStep(runDir string, setID uuid.UUID) string {
	if runDir == "" {
		return ""
	}
	f, err := os.Open(filepath.Join(runDir, stepsDir, setID.String()+".steps"))
	if err != nil {
		return ""
	}
	defer f.Close()
	last := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if _, step, ok := strings.Cut(sc.Text(), " "); ok && step != "" {
			last = step
		}
	}
	return last
}

// step records that the creation is about to take a step, and is the
// step's failpoint. An error (only in test builds) is that step's failure.
func (cr *creation) step(ctx context.Context, name string) error {
	cr.steps.write(name)
	return failpoint.HitCtx(ctx, "create."+name)
}

// stepDone is the failpoint just after a step.
func (cr *creation) stepDone(ctx context.Context, name string) error {
	return failpoint.HitCtx(ctx, "create."+name+".done")
}

// providerCall runs f, one provider call, between the failpoints
// provider.CALL and provider.CALL.done; an error at either is the call's
// failure, and hang there lasts as long as ctx, the call's own context.
// In a build without failpoints it is f().
func providerCall(ctx context.Context, call provider.Call, f func() error) error {
	if failpoint.Enabled {
		if err := failpoint.HitCtx(ctx, "provider."+string(call)); err != nil {
			return err
		}
	}
	if err := f(); err != nil {
		return err
	}
	if failpoint.Enabled {
		return failpoint.HitCtx(ctx, "provider."+string(call)+".done")
	}
	return nil
}

// journalStart writes the creation's journal entry. Without it a crash
// would leave snapshots nobody can tell from persistent ones, so a
// creation that cannot write it does not start.
func (cr *creation) journalStart(ctx context.Context) error {
	c := cr.s.c
	if c.opt.Catalog == nil {
		return nil
	}
	cr.s.mu.Lock()
	e := catalog.JournalEntry{Kind: catalog.JournalCreate, ID: cr.setID, SessionID: cr.s.id, SetID: cr.setID,
		Context: int32(cr.s.context), Step: "start", Started: time.Now().UTC()}
	cr.s.mu.Unlock()
	for _, v := range cr.vols {
		e.Snapshots = append(e.Snapshots, catalog.JournalSnapshot{ID: v.snapshotID, Volume: v.volume, ProviderID: v.prov.Info().ID})
	}
	for _, sw := range cr.parts {
		e.Writers = append(e.Writers, catalog.JournalWriter{ClassID: sw.w.Identity.ClassID, Name: sw.w.Identity.Name,
			InstanceName: sw.w.Identity.InstanceName})
	}
	if err := failpoint.HitCtx(ctx, "catalog.journal"); err != nil {
		return err
	}
	if err := c.opt.Catalog.PutJournal(e); err != nil {
		return c.Unexpected(ctx, cr.s.id, "record the snapshot set in the journal", err)
	}
	cr.journaled = true
	cr.steps = c.openSteps(cr.setID)
	return failpoint.HitCtx(ctx, "catalog.journal.done")
}

// journalAborted closes the entry of a creation that failed. It is removed
// only when every provider undid its part; otherwise it stays, marked, so
// that the next start deletes what is left.
func (cr *creation) journalAborted(ctx context.Context, clean bool) {
	c := cr.s.c
	if !cr.journaled {
		cr.steps.close(true)
		return
	}
	var err error
	if clean {
		if err = failpoint.HitCtx(ctx, "catalog.delete-journal"); err == nil {
			err = c.opt.Catalog.DeleteJournal(catalog.JournalCreate, cr.setID)
		}
	} else {
		cr.steps.write("abort-incomplete")
	}
	if err != nil {
		c.event(ctx, LevelWarn, vsserr.Code(err), cr.s.id, "could not close the journal entry of an aborted set; the next start checks it",
			"set", cr.setID.String(), "error", err.Error())
	}
	cr.steps.close(clean && err == nil)
}

// journalRestore records the writers about to get PreRestore: if lvssd
// ends before the session does, they get Abort when they subscribe again
// (recover.go), so that one that stopped its application starts it again.
// A failure to record is logged and does not stop the restore: unlike a
// cut creation, a cut restore leaves nothing on disk to undo.
func (s *Session) journalRestore(ctx context.Context, targets []*sessionWriter) {
	cat := s.c.opt.Catalog
	if cat == nil || len(targets) == 0 {
		return
	}
	e := catalog.JournalEntry{Kind: catalog.JournalRestore, ID: s.id, SessionID: s.id, Step: "pre-restore", Started: time.Now().UTC()}
	for _, sw := range targets {
		e.Writers = append(e.Writers, catalog.JournalWriter{ClassID: sw.w.Identity.ClassID, Name: sw.w.Identity.Name,
			InstanceName: sw.w.Identity.InstanceName})
	}
	if err := cat.PutJournal(e); err != nil {
		s.c.event(ctx, LevelWarn, vsserr.Code(err), s.id, "could not record the restore in the journal", "error", err.Error())
		return
	}
	s.mu.Lock()
	s.restoreJournaled = true
	s.mu.Unlock()
	_ = failpoint.HitCtx(ctx, "restore.pre-restore")
}

// journalRestoreDone removes the restore's entry once its writers had
// BackupShutdown.
func (s *Session) journalRestoreDone(ctx context.Context) {
	s.mu.Lock()
	j := s.restoreJournaled
	s.restoreJournaled = false
	s.mu.Unlock()
	if !j {
		return
	}
	if err := s.c.opt.Catalog.DeleteJournal(catalog.JournalRestore, s.id); err != nil {
		s.c.event(ctx, LevelWarn, vsserr.Code(err), s.id, "could not close the restore's journal entry", "error", err.Error())
	}
}
