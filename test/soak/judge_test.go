//go:build soak

package soak

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/coordinator"
)

// Leak tolerances, between the two quiet readings (after the warm-up and
// at the end). Both are taken in the same state: every writer subscribed
// (one stream each), no session open, nothing in flight, the same
// metrics connection, the goroutine count unchanged over five readings.
// What lvssd holds for that state is the same both times; the slack is
// for housekeeping that comes and goes on its own (a connection the
// gRPC server is still tearing down, an idle HTTP connection), a handful
// at most. A leak tied to the work, one goroutine or descriptor per
// session, per writer reconnection or per CLI call, grows with the
// hundreds of those between the readings, so it is far above the slack
// (the test fails if too few sessions ran between them to tell).
const (
	goroutineSlack = 10
	fdSlack        = 5
)

// Memory is judged on lvssd's anonymous resident memory (heap, stacks):
// its RSS also counts the file pages of bbolt's memory map of the
// catalog, which grow with the catalog file until the event log reaches
// its cap (coordinator.DefaultMaxEvents: about five minutes into this
// load) and are bounded by it; what the catalog holds is checked on its
// own at the end (checkCatalog). The anonymous part is compared with a
// ratio, not a count: Go's collector lets the heap grow to twice the live
// data before collecting (GOGC=100) and returns freed pages to the kernel
// lazily, so at any reading it is anywhere between the live data and
// about twice it. The quiet readings therefore may differ by up to that
// factor with no leak; the loaded readings' peaks, which sit at the top
// of that sawtooth each time, are compared more tightly: the steady
// state's second half must not peak above its first half by more than
// rssPeakGrowth plus rssPeakSlack. Growth that is bounded (a cache
// filling up) stays within it once it is full, which is what the warm-up
// is for.
const (
	rssQuietGrowth = 2.0
	rssPeakGrowth  = 1.25
	rssPeakSlack   = 16 << 20
)

// minSessionsBetween is how many sessions must run between the quiet
// readings for the comparison to mean something (see goroutineSlack).
const minSessionsBetween = 3 * goroutineSlack

// quiesce stops nothing itself (the load has ended): it brings every
// writer back, waits until lvssd has no session open and lists every
// writer with its metadata, waits for its goroutine count to settle, and
// then reads it and checks the invariants strictly.
func (s *soak) quiesce(label string) figures {
	s.setPhase("quiet")
	s.restoreWriters()
	total := s.cfg.procs * s.cfg.perProc
	var f figures
	s.waitFor(2*time.Minute, fmt.Sprintf("lvssd to list all %d writers with their metadata and no session open", total), func() bool {
		var err error
		if f, err = s.read("quiet"); err != nil || f.sessions != 0 || f.writers != total {
			return false
		}
		ctx, cancel := context.WithTimeout(s.hard, callTimeout)
		defer cancel()
		ws, err := s.admin.ListWriters(ctx)
		if err != nil || len(ws) != total {
			return false
		}
		for _, w := range ws {
			if w.WMD == "" {
				return false
			}
		}
		return true
	})
	stable, last := 0, -1
	s.waitFor(time.Minute, "lvssd's goroutine count to settle (five equal readings)", func() bool {
		g, err := s.read("quiet")
		if err != nil {
			return false
		}
		if g.goroutines == last {
			stable++
		} else {
			stable = 0
		}
		last, f = g.goroutines, g
		return stable >= 4
	})
	if n := s.track.inFlight(); n != 0 {
		s.errorf("%d snapshots still held by a session or an admin operation with nothing running", n)
	}
	var problems []string
	f.catalog, f.disk, problems = s.check(true)
	for _, p := range problems {
		s.errorf("check (quiet, %s): %s", label, p)
	}
	f.errors = s.errorCount()
	s.sample.mu.Lock()
	s.sample.rows = append(s.sample.rows, f)
	s.sample.mu.Unlock()
	s.t.Logf("%s   <- quiet reading %s", f.row(), label)
	return f
}

// waitFor polls cond until it holds or d passes (an error of the soak) or
// the soak is stopped. d bounds a broken run; a healthy one returns as
// soon as cond holds.
func (s *soak) waitFor(d time.Duration, what string, cond func() bool) bool {
	end := time.Now().Add(d)
	for !cond() {
		if s.hard.Err() != nil {
			return false
		}
		if time.Now().After(end) {
			s.errorf("timed out after %s waiting for %s", d, what)
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	return true
}

// judgeLeaks compares the quiet readings and the loaded peaks (see the
// tolerances above) and fails the test on growth beyond them.
func (s *soak) judgeLeaks(q1, q2 figures, sessionsBetween int64) {
	t := s.t
	t.Logf("quiet readings after the warm-up and at the end, %d sessions apart: goroutines %d -> %d, fds %d -> %d, RSS %.1f -> %.1f MiB (anonymous %.1f -> %.1f, file %.1f -> %.1f), heap %.1f -> %.1f MiB, catalog file %d -> %d bytes",
		sessionsBetween, q1.goroutines, q2.goroutines, q1.fds, q2.fds, q1.rss/(1<<20), q2.rss/(1<<20), q1.rssAnon/(1<<20), q2.rssAnon/(1<<20),
		q1.rssFile/(1<<20), q2.rssFile/(1<<20), q1.heap/(1<<20), q2.heap/(1<<20), q1.catalogDB, q2.catalogDB)
	if sessionsBetween < minSessionsBetween {
		t.Errorf("only %d sessions ran between the quiet readings (at least %d are needed to tell a leak from the slack): run longer", sessionsBetween, minSessionsBetween)
	}
	if q2.goroutines > q1.goroutines+goroutineSlack {
		t.Errorf("goroutine leak: lvssd had %d goroutines after the warm-up and %d at the end, in the same quiet state (slack %d)", q1.goroutines, q2.goroutines, goroutineSlack)
	}
	if q2.fds > q1.fds+fdSlack {
		t.Errorf("descriptor leak: lvssd had %d open descriptors after the warm-up and %d at the end, in the same quiet state (slack %d)", q1.fds, q2.fds, fdSlack)
	}
	if q2.rssAnon > q1.rssAnon*rssQuietGrowth {
		t.Errorf("memory growth: lvssd's anonymous RSS was %.1f MiB after the warm-up and %.1f MiB at the end, in the same quiet state (more than %.1f times)",
			q1.rssAnon/(1<<20), q2.rssAnon/(1<<20), rssQuietGrowth)
	}
	var loaded []figures
	s.sample.mu.Lock()
	for _, f := range s.sample.rows {
		if f.phase == "load" && f.at > q1.at {
			loaded = append(loaded, f)
		}
	}
	s.sample.mu.Unlock()
	if len(loaded) < 4 {
		t.Logf("RSS peaks not compared: %d loaded readings in the steady state (4 needed)", len(loaded))
		return
	}
	peak := func(fs []figures) float64 {
		return slices.MaxFunc(fs, func(a, b figures) int { return int(a.rssAnon - b.rssAnon) }).rssAnon
	}
	h := len(loaded) / 2
	p1, p2 := peak(loaded[:h]), peak(loaded[h:])
	t.Logf("anonymous RSS peaks under load: %.1f MiB in the steady state's first half, %.1f MiB in its second", p1/(1<<20), p2/(1<<20))
	if p2 > p1*rssPeakGrowth+rssPeakSlack {
		t.Errorf("memory growth: lvssd's anonymous RSS peaked at %.1f MiB in the steady state's first half and %.1f MiB in its second (allowed: %.2f times + %d MiB)",
			p1/(1<<20), p2/(1<<20), rssPeakGrowth, rssPeakSlack>>20)
	}
}

// summary prints what the load did.
func (s *soak) summary() {
	st := &s.stats
	var wf []string
	st.writerFailures.Range(func(k, v any) bool {
		wf = append(wf, fmt.Sprintf("%s %d", k, v.(interface{ Load() int64 }).Load()))
		return true
	})
	slices.Sort(wf)
	if len(wf) == 0 {
		wf = []string{"none"}
	}
	s.t.Logf("sessions: %d backups (%d auto-release, %d persistent), %d gave up waiting for the lock at a phase's end, %d VSS_E_SNAPSHOT_SET_IN_PROGRESS retries",
		st.sessions(), st.sessionsAuto.Load(), st.sessionsPersistent.Load(), st.abandoned.Load(), st.retries.Load())
	s.t.Logf("writers: %d left and %d came back, %d host restarts by SIGTERM and %d by SIGKILL; writer failures in GatherWriterStatus: %s",
		st.leaves.Load(), st.joins.Load(), st.restartsTerm.Load(), st.restartsKill.Load(), strings.Join(wf, ", "))
	s.t.Logf("longest wait for the creation lock %s; longest rest of a session after it (AddToSnapshotSet to release) %s",
		st.longestWait.get().Round(time.Millisecond), st.longestRest.get().Round(time.Millisecond))
	s.t.Logf("admin: %d exposes, %d unexposes, %d deletes (%d Go API, %d lvss delete shadows), %d lvss list shadows",
		st.exposes.Load(), st.unexposes.Load(), st.deletesAPI.Load()+st.deletesCLI.Load(), st.deletesAPI.Load(), st.deletesCLI.Load(), st.lists.Load())
}

// finalCleanup deletes every snapshot left with lvss delete shadows --all
// and checks that nothing is left: not in the catalog, not on disk (also
// as btrfs-progs sees it), not mounted.
func (s *soak) finalCleanup() {
	recs, _ := s.track.copyAll()
	for id, r := range recs {
		if r.state == kept {
			s.setBusy(id, true)
		}
	}
	if _, err := s.lvss("delete", "shadows", "--all", "--json"); err != nil {
		s.errorf("%v", err)
	}
	for id, r := range recs {
		if r.state == kept {
			s.track.update(id, func(sn *snap) { sn.state, sn.busy, sn.exposed = gone, false, "" })
			if r.exposed != "" {
				s.checkUnexposed(r)
			}
		}
	}
	catalogN, diskN, problems := s.check(true)
	for _, p := range problems {
		s.errorf("check after deleting everything: %s", p)
	}
	if catalogN != 0 || diskN != 0 {
		s.errorf("after lvss delete shadows --all: %d snapshots listed, %d on disk", catalogN, diskN)
	}
	// btrfs-progs' view: only the volumes and their snapshot directories.
	top := filepath.Dir(s.vols[0])
	out, err := exec.Command("btrfs", "subvolume", "list", top).CombinedOutput()
	if err != nil {
		s.errorf("btrfs subvolume list %s: %v\n%s", top, err, out)
	}
	var subvols []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if i := strings.Index(l, " path "); i >= 0 {
			subvols = append(subvols, l[i+len(" path "):])
		}
	}
	slices.Sort(subvols)
	if want := []string{"vol-a", "vol-a/.lvss-snapshots", "vol-b", "vol-b/.lvss-snapshots"}; !slices.Equal(subvols, want) {
		s.errorf("btrfs subvolume list after deleting everything: %v, want %v", subvols, want)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), " "+s.exposeDir+"/") {
		s.errorf("something is still mounted under %s after deleting everything", s.exposeDir)
	}
}

// machine describes where the soak ran, for the report.
func machine() string {
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				mem = strings.TrimSpace(v)
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d CPUs (nproc), %s memory, Linux %s, %s", runtime.NumCPU(), mem, strings.TrimSpace(string(kernel)), runtime.Version())
}

// writeReport writes the table and the figures as Markdown to
// LVSS_SOAK_REPORT, for docs/reliability.md.
func (s *soak) writeReport(q1, q2 figures) {
	if s.cfg.report == "" {
		return
	}
	s.sample.mu.Lock()
	rows := slices.Clone(s.sample.rows)
	s.sample.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s.\n\n", machine())
	fmt.Fprintf(&b, "Run: %s, warm-up %s, %d writers in %d processes, %d sessions at once, %d persistent snapshots kept, ended %s.\n\n",
		s.cfg.duration, s.cfg.warmup, s.cfg.procs*s.cfg.perProc, s.cfg.procs, s.cfg.sessions, s.cfg.keep, time.Now().UTC().Format(time.RFC3339))
	b.WriteString(markdownTable(rows))
	fmt.Fprintf(&b, "\nQuiet readings (after the warm-up, at the end): goroutines %d -> %d, open fds %d -> %d, RSS %.1f -> %.1f MiB.\n",
		q1.goroutines, q2.goroutines, q1.fds, q2.fds, q1.rss/(1<<20), q2.rss/(1<<20))
	st := &s.stats
	fmt.Fprintf(&b, "Load: %d sessions (%d auto-release, %d persistent), %d retries, %d writer leaves, %d host restarts, %d exposes, %d unexposes, %d deletes, %d lvss list shadows; %d unexpected errors.\n",
		st.sessions(), st.sessionsAuto.Load(), st.sessionsPersistent.Load(), st.retries.Load(), st.leaves.Load(),
		st.restartsTerm.Load()+st.restartsKill.Load(), st.exposes.Load(), st.unexposes.Load(),
		st.deletesAPI.Load()+st.deletesCLI.Load(), st.lists.Load(), s.errorCount())
	if err := os.WriteFile(s.cfg.report, []byte(b.String()), 0o644); err != nil {
		s.t.Errorf("write the report: %v", err)
	}
}

// checkCatalog reads lvssd's catalog once lvssd has stopped (bbolt locks
// the file while it runs) and checks that the run left nothing in it:
// no snapshot, no saved document of any set the soak made, no journal
// entry, and an event log within its cap. The catalog file's size is not judged: bbolt
// never shrinks it; its content is what must stay bounded.
func (s *soak) checkCatalog() {
	db, err := catalog.Open(filepath.Join(s.dir, "state", "catalog.db"))
	if err != nil {
		s.t.Errorf("open lvssd's catalog: %v", err)
		return
	}
	defer db.Close()
	if snaps, err := db.ListSnapshots(catalog.Filter{}); err != nil || len(snaps) != 0 {
		s.t.Errorf("lvssd's catalog holds %d snapshots after everything was deleted (%v)", len(snaps), err)
	}
	recs, _ := s.track.copyAll()
	sets := map[uuid.UUID]bool{}
	for _, r := range recs {
		sets[r.set] = true
	}
	left := 0
	for set := range sets {
		if names, err := db.ListDocuments(set); err != nil || len(names) > 0 {
			left++
		}
	}
	if left > 0 {
		s.t.Errorf("lvssd's catalog still holds the documents of %d of the %d sets the soak made, all deleted", left, len(sets))
	}
	// Every creation, exposure and restore finished or was undone: the
	// journal (docs/reliability.md) names nothing unfinished.
	if j, err := db.Journal(); err != nil || len(j) != 0 {
		s.t.Errorf("lvssd's journal holds %d unfinished steps after a clean stop (%v): %+v", len(j), err, j)
	}
	evs, err := db.Events(0, 0)
	if limit := coordinator.DefaultMaxEvents + 1024; err != nil || len(evs) > limit {
		s.t.Errorf("lvssd's event log holds %d events (at most %d expected; %v)", len(evs), limit, err)
	}
	s.t.Logf("lvssd's catalog at the end: no snapshot, no document of the %d sets, %d events", len(sets), len(evs))
}
