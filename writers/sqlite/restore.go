package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	msqlite "modernc.org/sqlite"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// restoreProcedure is the restore method's user procedure (decision L40).
const restoreProcedure = "Stop the applications using the database before PreRestore (the writer refuses while " +
	"another process has it open); put back the database file with its -wal or -journal, from one backup, and no " +
	"-wal or -shm of another state; after PostRestore (which checks the database's integrity) start the applications."

// restoring returns the configured databases whose components are
// selected for restore, with their components.
func (w *Writer) restoring(c *writer.Components) ([]*database, []*document.ComponentState) {
	var dbs []*database
	var comps []*document.ComponentState
	for _, d := range w.dbs {
		if comp := c.Get("", d.path); comp != nil && comp.SelectedForRestore {
			dbs, comps = append(dbs, d), append(comps, comp)
		}
	}
	return dbs, comps
}

// opener is a process that has one of a database's files open.
type opener struct {
	pid  int
	comm string
	file string
}

// openers finds the other processes that have the database, its -wal,
// -journal or -shm open, from /proc: SQLite's locks cannot tell an
// application that has the file open but holds no lock at this instant,
// and a file replaced under an open connection is a corrupted database.
// Processes the writer may not inspect (it is not root) are not seen.
func openers(path string) []opener {
	type key struct{ dev, ino uint64 }
	want := map[key]string{}
	for _, suffix := range []string{"", "-wal", "-journal", "-shm"} {
		var st syscall.Stat_t
		if syscall.Stat(path+suffix, &st) == nil {
			want[key{st.Dev, st.Ino}] = path + suffix
		}
	}
	if len(want) == 0 {
		return nil
	}
	procs, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var out []opener
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			var st syscall.Stat_t
			if syscall.Stat(filepath.Join("/proc", p.Name(), "fd", fd.Name()), &st) != nil {
				continue
			}
			if file, ok := want[key{st.Dev, st.Ino}]; ok {
				comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				out = append(out, opener{pid: pid, comm: strings.TrimSpace(string(comm)), file: file})
				break
			}
		}
	}
	return out
}

// PreRestore refuses (VSS_E_WRITERERROR_RETRYABLE) while another process
// has a selected database open, naming the processes, and while the
// writer's own backup session holds it; the writer stops no application
// (L40). It changes nothing.
func (w *Writer) PreRestore(_ context.Context, _ *writer.Event, c *writer.Components) error {
	if err := w.mu.LockOpen(); err != nil {
		return err
	}
	defer w.mu.Unlock()
	dbs, comps := w.restoring(c)
	for i, d := range dbs {
		var err error
		if d.conn != nil {
			err = writer.Fail(vsserr.WriterErrorRetryable, 0,
				"sqlite writer: database %s is held by a backup session of the writer: restore after the backup ends", d.path)
		} else if hs := openers(d.path); len(hs) > 0 {
			var who []string
			for _, h := range hs {
				who = append(who, fmt.Sprintf("PID %d (%s) has %s open", h.pid, h.comm, h.file))
			}
			err = writer.Fail(vsserr.WriterErrorRetryable, 0,
				"sqlite writer: database %s is in use: %s; stop the application before its files are replaced, then restore again",
				d.path, strings.Join(who, "; "))
		}
		if err != nil {
			comps[i].PreRestoreFailureMsg = failureMessage(err)
			return err
		}
		d.log.Info("ready for restore")
	}
	return nil
}

// PostRestore checks each restored database by its file restore status:
// VSS_RS_ALL (or VSS_RS_UNDEFINED) opens it (SQLite replays a -wal or
// rolls back a hot journal) and runs PRAGMA integrity_check, failing
// NONRETRYABLE with SQLite's findings if it is not "ok"; VSS_RS_NONE
// changes nothing; VSS_RS_FAILED changes nothing and fails, saying the
// database is damaged.
func (w *Writer) PostRestore(ctx context.Context, _ *writer.Event, c *writer.Components) error {
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	dbs, comps := w.restoring(c)
	for i, d := range dbs {
		var err error
		switch comps[i].FileRestoreStatus {
		case vss.RSNone:
			d.log.Info("nothing was restored; the database is left as it was")
			continue
		case vss.RSFailed:
			err = writer.Fail(vsserr.WriterErrorNonRetryable, 0,
				"sqlite writer: database %s was only partly restored (VSS_RS_FAILED): it may be damaged and was not checked; do not use it: restore it again", d.path)
		default:
			err = d.verify(ctx)
		}
		if err != nil {
			comps[i].PostRestoreFailureMsg = failureMessage(err)
			return err
		}
	}
	return nil
}

// verify opens the restored database through SQLite and checks it.
func (d *database) verify(ctx context.Context) error {
	if _, err := d.realPath(); err != nil {
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "sqlite writer: restored %v", err)
	}
	c, err := msqlite.NewConnector(dsn(d.path))
	if err != nil {
		return err
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1)
	var findings []string
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err == nil {
		for rows.Next() {
			var s string
			if err = rows.Scan(&s); err != nil {
				break
			}
			// A row may hold several findings, one per line.
			findings = append(findings, strings.Split(strings.TrimSpace(s), "\n")...)
		}
		err = errors.Join(err, rows.Err(), rows.Close())
	}
	switch {
	case err != nil:
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "sqlite writer: the restored database %s cannot be checked: %v", d.path, err)
	case !slices.Equal(findings, []string{"ok"}):
		if len(findings) > 5 {
			findings = append(findings[:5], fmt.Sprintf("and %d more", len(findings)-5))
		}
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "sqlite writer: the restored database %s fails PRAGMA integrity_check: %s",
			d.path, strings.Join(findings, "; "))
	}
	d.log.Info("restored database passes integrity_check")
	return nil
}

func failureMessage(err error) string {
	var f *writer.Failure
	if errors.As(err, &f) {
		return f.Message
	}
	return vsserr.Message(err)
}
