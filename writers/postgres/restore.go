package postgres

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writers/internal/appctl"
)

// restoreProcedure is the restore method's user procedure (the WMD's
// userProcedure): what the requester, or the operator, does around the
// writer's PreRestore and PostRestore (decision L40).
const restoreProcedure = "Stop the PostgreSQL server before PreRestore (the writer refuses while it runs, unless it was given a stop command); " +
	"put back the data directory, WAL directory and tablespace directories, all from one backup; " +
	"after PostRestore start the server (unless the writer was given a start command): it recovers (crash recovery, or with a --mode pitr backup point-in-time " +
	"recovery from the WAL archive, to the target given in the restore options)."

// restorePlan is what a restore of the cluster component does, derived
// from the component in the restore session's document: PreRestore and
// PostRestore derive it alike, so that nothing has to survive between
// them (the writer may have been restarted).
type restorePlan struct {
	dataDir string
	// info is the component's backup metadata; nil when the backup
	// recorded none (PostSnapshot did not run), which restores as
	// snapshot mode.
	info           *backupInfo
	opts           restoreOptions
	restoreCommand string // from the options, else Config.RestoreCommand
}

func (p *restorePlan) pitr() bool { return p.info != nil && p.info.Mode == ModePITR }

// selectedForRestore returns the writer's selected components.
func selectedForRestore(c *writer.Components) []*document.ComponentState {
	var out []*document.ComponentState
	for _, comp := range c.List() {
		if comp.SelectedForRestore && comp.Name == ComponentName && comp.LogicalPath == "" {
			out = append(out, comp)
		}
	}
	return out
}

// plan works out and checks the restore of comp. Every error is a
// writer failure that names what is wrong.
func (w *Writer) plan(comp *document.ComponentState) (*restorePlan, error) {
	p := &restorePlan{}
	if comp.BackupMetadata != nil && *comp.BackupMetadata != "" {
		var info backupInfo
		if err := json.Unmarshal([]byte(*comp.BackupMetadata), &info); err != nil {
			return nil, writer.Fail(vsserr.WriterErrorNonRetryable, 0,
				"postgres writer: the component's backup metadata is not the writer's: %v", err)
		}
		p.info = &info
	}
	// Where the data directory goes back: a new target the requester
	// chose for it (AddNewTarget), else where the backup found it, else
	// where the cluster is now.
	switch {
	case p.info != nil && p.info.DataDirectory != "":
		p.dataDir = p.info.DataDirectory
	case w.declared != nil:
		p.dataDir = w.declared.DataDir
	default:
		p.dataDir = w.cfg.DataDir
	}
	for _, nt := range comp.NewTargets {
		if nt.Path == p.dataDir && nt.AlternatePath != "" {
			p.dataDir = nt.AlternatePath
		}
	}
	if p.dataDir == "" {
		return nil, writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"postgres writer: the backup records no data directory and the writer knows none: run the writer with --data-dir")
	}
	p.dataDir = filepath.Clean(p.dataDir)
	opts, err := parseRestoreOptions(comp.RestoreOptions)
	if err != nil {
		return nil, writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"postgres writer: restore options %q: %v (docs/writer-postgres.md, \"Restore\")", comp.RestoreOptions, err)
	}
	p.opts = opts
	p.restoreCommand = opts.restoreCommand
	if p.restoreCommand == "" {
		p.restoreCommand = w.cfg.RestoreCommand
	}
	if !p.pitr() {
		if opts.target != "" || opts.restoreCommand != "" || opts.action != "" || opts.timeline != "" || opts.inclusive != "" {
			return nil, writer.Fail(vsserr.WriterErrorNonRetryable, 0,
				"postgres writer: restore options %q: this backup was made in snapshot mode and restores to the snapshot's instant "+
					"(crash recovery); recovery settings need a backup made with --mode pitr", comp.RestoreOptions)
		}
		return p, nil
	}
	if p.info.Extra["backup_label"] == "" {
		return nil, writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"postgres writer: the backup was made in pitr mode but its metadata holds no backup_label (pg_backup_stop did not complete): "+
				"it cannot be restored as a base backup")
	}
	if p.restoreCommand == "" {
		return nil, writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"postgres writer: the backup is a base backup (--mode pitr), whose recovery replays archived WAL: "+
				"give restore_command in the restore options (lvss restore --restore-option 'restore_command=cp /srv/pg-archive/%%f %%p') or run the writer with --restore-command")
	}
	return p, nil
}

// postmaster reads dataDir's postmaster.pid and reports the PID it names
// and whether that process runs. A missing file (or data directory)
// means no server.
func postmaster(dataDir string) (pid int, running bool, err error) {
	f, err := os.Open(filepath.Join(dataDir, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, false, nil // empty: a server that died while creating it
	}
	pid, err = strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil || pid <= 0 {
		return 0, false, nil // not a lock file a server would respect either
	}
	// The server's own test: a process with that PID exists. A reused PID
	// is told apart when /proc shows another program.
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return pid, false, nil
	}
	if comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm")); err == nil {
		name := strings.TrimSpace(string(comm))
		if !strings.HasPrefix(name, "postgres") && !strings.HasPrefix(name, "postmaster") {
			return pid, false, nil
		}
	}
	return pid, true, nil
}

// checkStopped fails while a server runs on the data directory: its files
// must not be replaced under it, and the writer does not stop a server
// it does not own (L40).
func (p *restorePlan) checkStopped(when string) error {
	pid, running, err := postmaster(p.dataDir)
	if err != nil {
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "postgres writer: reading %s: %v", filepath.Join(p.dataDir, "postmaster.pid"), err)
	}
	if running {
		return writer.Fail(vsserr.WriterErrorRetryable, 0,
			"postgres writer: the PostgreSQL server (PID %d, in %s) is running on the cluster being restored%s: "+
				"stop it first (pg_ctl stop -D %s as the server's user, or the service that runs it, e.g. systemctl stop postgresql@15-main), then restore again",
			pid, filepath.Join(p.dataDir, "postmaster.pid"), when, p.dataDir)
	}
	return nil
}

// PreRestore checks, for the selected cluster, that the restore can be
// done: the restore options parse, a pitr backup has a restore_command,
// and no server runs on the data directory. A running server is stopped
// with Config.StopCommand when there is one (and PreRestore waits until
// it is gone); otherwise, or when the command fails or does not stop it,
// PreRestore refuses naming the PID (VSS_E_WRITERERROR_RETRYABLE: stop it
// and restore again). Nothing else is changed: the files are the
// requester's to put back.
func (w *Writer) PreRestore(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	for _, comp := range selectedForRestore(c) {
		p, err := w.plan(comp)
		if err == nil {
			err = w.stopForRestore(ctx, ev, p)
		}
		if err != nil {
			comp.PreRestoreFailureMsg = failureMessage(err)
			return err
		}
		w.cfg.Logger.Info("ready for restore", "data_directory", p.dataDir, "pitr", p.pitr(), "recovery_target", p.opts.target)
	}
	return nil
}

// stopForRestore stops a server running on the data directory with the
// stop command, if the writer has one, and then checks that none runs.
func (w *Writer) stopForRestore(ctx context.Context, ev *writer.Event, p *restorePlan) error {
	pid, running, err := postmaster(p.dataDir)
	if w.app.Stop == "" || err != nil || !running {
		return p.checkStopped("")
	}
	w.cfg.Logger.Info("stopping the server for the restore", "pid", pid, "data_directory", p.dataDir, "command", w.app.Stop)
	err = w.app.StopApp(ctx, ev.SessionID, func(context.Context) error {
		pid, running, err := postmaster(p.dataDir)
		switch {
		case err != nil:
			return err
		case running:
			return fmt.Errorf("the server (PID %d) still runs", pid)
		}
		return nil
	})
	switch {
	case errors.Is(err, appctl.ErrNotStopped):
		return writer.Fail(vsserr.WriterErrorRetryable, 0,
			"postgres writer: the PostgreSQL server (PID %d, in %s) is still running on the cluster being restored: %v; stop it, then restore again",
			pid, filepath.Join(p.dataDir, "postmaster.pid"), err)
	case err != nil:
		return writer.Fail(vsserr.WriterErrorRetryable, 0,
			"postgres writer: %v; the PostgreSQL server (PID %d) still runs on the cluster being restored: stop it, then restore again", err, pid)
	}
	return p.checkStopped(" (after the stop command stopped it)")
}

// PostRestore prepares the restored cluster's recovery, by the file
// restore status the requester reported:
//
//   - VSS_RS_ALL (and VSS_RS_UNDEFINED, a requester that did not say):
//     checks that the data directory holds the backed-up cluster, removes
//     a stale postmaster.pid, and for a pitr backup writes backup_label,
//     tablespace_map, recovery.signal and the recovery settings. With
//     Config.StartCommand it then starts the server and waits until it
//     accepts connections (after a point-in-time recovery: until it has
//     promoted); otherwise the server is left stopped, and its next start
//     recovers.
//   - VSS_RS_NONE: nothing was written; nothing is changed. If the
//     writer stopped the server at this session's PreRestore, the start
//     command starts it again.
//   - VSS_RS_FAILED: the cluster is a mix of backed-up and other files;
//     nothing is changed, the server is not started, and PostRestore
//     fails NONRETRYABLE saying not to start it.
//
// A start that fails, or a server that does not answer before the
// event's deadline, fails PostRestore RETRYABLE naming what happened.
func (w *Writer) PostRestore(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	stoppedHere := w.app.TakeStopped(ev.SessionID)
	for _, comp := range selectedForRestore(c) {
		p, err := w.plan(comp)
		if err == nil {
			switch comp.FileRestoreStatus {
			case vss.RSNone:
				w.cfg.Logger.Info("nothing was restored; the cluster is left as it was", "data_directory", p.dataDir)
				if stoppedHere {
					err = w.startAfterRestore(ctx, p, false, "start it again: it was stopped for this restore, which wrote nothing")
				}
			case vss.RSFailed:
				err = writer.Fail(vsserr.WriterErrorNonRetryable, 0,
					"postgres writer: the files of the cluster in %s were only partly restored (VSS_RS_FAILED): it is damaged and recovery was not prepared; "+
						"do not start the server on it: restore the whole cluster again", p.dataDir)
			default:
				err = w.prepareRecovery(p)
				if err == nil {
					err = w.startAfterRestore(ctx, p, p.pitr(), "start the restored cluster")
				}
			}
		}
		if err != nil {
			comp.PostRestoreFailureMsg = failureMessage(err)
			return err
		}
	}
	return nil
}

// startAfterRestore runs the start command, if the writer has one, and
// waits until the server accepts connections; recovered says the server
// runs a point-in-time recovery first, and the wait lasts until it has
// left recovery (promoted), unless the recovery target's action keeps it
// paused in recovery or shuts it down.
func (w *Writer) startAfterRestore(ctx context.Context, p *restorePlan, recovered bool, why string) error {
	if w.app.Start == "" {
		return nil
	}
	promote := recovered && (p.opts.action == "" || p.opts.action == "promote")
	w.cfg.Logger.Info("starting the server: "+why, "data_directory", p.dataDir, "command", w.app.Start, "wait_for_promotion", promote)
	answers := func(ctx context.Context) error {
		conn, err := w.connect(ctx)
		if err != nil {
			return err
		}
		defer closeConn(ctx, conn)
		if !promote {
			return nil
		}
		var inRecovery bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			return err
		}
		if inRecovery {
			return errors.New("the server is still recovering")
		}
		return nil
	}
	if recovered && p.opts.action == "shutdown" {
		// The server stops by itself once it reaches the target: there is
		// nothing to wait for.
		answers = func(context.Context) error { return nil }
	}
	if err := w.app.StartApp(ctx, answers); err != nil {
		return writer.Fail(vsserr.WriterErrorRetryable, 0, "postgres writer: starting the server on %s after the restore: %v", p.dataDir, err)
	}
	w.cfg.Logger.Info("the server runs again", "data_directory", p.dataDir)
	return nil
}

func failureMessage(err error) string {
	var f *writer.Failure
	if errors.As(err, &f) {
		return f.Message
	}
	return vsserr.Message(err)
}

// prepareRecovery readies the restored files for the server's next start.
func (w *Writer) prepareRecovery(p *restorePlan) error {
	if err := p.checkStopped(" (started before PostRestore prepared its recovery)"); err != nil {
		return err
	}
	for _, f := range []string{"PG_VERSION", filepath.Join("global", "pg_control")} {
		if _, err := os.Stat(filepath.Join(p.dataDir, f)); err != nil {
			return writer.Fail(vsserr.WriterErrorNonRetryable, 0,
				"postgres writer: the restored data directory %s holds no cluster (%v): put the backup's files back there, or say VSS_RS_NONE or VSS_RS_FAILED", p.dataDir, err)
		}
	}
	if p.info != nil && p.info.SystemIdentifier != "" {
		want, err := strconv.ParseUint(p.info.SystemIdentifier, 10, 64)
		if err == nil {
			got, err := readSystemID(p.dataDir)
			if err != nil {
				return err
			}
			if got != want {
				return writer.Fail(vsserr.WriterErrorNonRetryable, 0,
					"postgres writer: the files in %s are another cluster's (system identifier %d; the backup's is %d): they were not restored from this backup",
					p.dataDir, got, want)
			}
		}
	}
	// The lock file of a server that is gone: a restore from a copy that
	// carried one, or the stopped server's own. A server refuses to start
	// on a live-looking one.
	if err := os.Remove(filepath.Join(p.dataDir, "postmaster.pid")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "postgres writer: removing the stale postmaster.pid: %v", err)
	}
	if !p.pitr() {
		w.cfg.Logger.Info("restored cluster ready: its next start runs crash recovery", "data_directory", p.dataDir)
		return nil
	}
	owner, err := ownerOf(p.dataDir)
	if err != nil {
		return err
	}
	files := []struct{ name, content string }{{"backup_label", p.info.Extra["backup_label"]}}
	if m := p.info.Extra["tablespace_map"]; m != "" {
		files = append(files, struct{ name, content string }{"tablespace_map", m})
	}
	files = append(files, struct{ name, content string }{"recovery.signal", ""})
	for _, f := range files {
		if err := writeOwned(filepath.Join(p.dataDir, f.name), []byte(f.content), owner, false); err != nil {
			return err
		}
	}
	if err := writeOwned(filepath.Join(p.dataDir, "postgresql.auto.conf"), []byte(p.recoverySettings()), owner, true); err != nil {
		return err
	}
	w.cfg.Logger.Info("restored cluster ready for point-in-time recovery at its next start", "data_directory", p.dataDir,
		"start_lsn", p.info.Extra["start_lsn"], "recovery_target", p.opts.target, "value", p.opts.value)
	return nil
}

// recoverySettings is the block appended to postgresql.auto.conf. Every
// recovery target is set: the others to the empty string first, then the
// chosen one. The last line of a setting wins, so targets an earlier
// restore left in the file (the server keeps them after recovery) cannot combine with
// this one into PostgreSQL's "multiple recovery targets" error; and the
// server checks that error as it assigns each target in file order, so
// the chosen one must come after the emptied ones.
func (p *restorePlan) recoverySettings() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n# lvss-writer postgres, %s: point-in-time recovery of the base backup starting at %s\n",
		time.Now().UTC().Format(time.RFC3339), p.info.Extra["start_lsn"])
	fmt.Fprintf(&b, "restore_command = %s\n", confQuote(p.restoreCommand))
	for _, t := range recoveryTargets {
		if t != p.opts.target {
			fmt.Fprintf(&b, "%s = ''\n", t)
		}
	}
	if p.opts.target != "" {
		fmt.Fprintf(&b, "%s = %s\n", p.opts.target, confQuote(p.opts.value))
	}
	action := p.opts.action
	if action == "" {
		// PostgreSQL's default, pause, leaves a read-only server waiting
		// for pg_wal_replay_resume(): not what a restore is for.
		action = "promote"
	}
	fmt.Fprintf(&b, "recovery_target_action = %s\n", confQuote(action))
	if p.opts.inclusive != "" {
		fmt.Fprintf(&b, "recovery_target_inclusive = %s\n", confQuote(p.opts.inclusive))
	}
	if p.opts.timeline != "" {
		fmt.Fprintf(&b, "recovery_target_timeline = %s\n", confQuote(p.opts.timeline))
	}
	return b.String()
}

type fileOwner struct{ uid, gid int }

// ownerOf is the owner of the data directory: what the server runs as,
// and so the owner the files the writer adds must have.
func ownerOf(dir string) (fileOwner, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return fileOwner{}, writer.Fail(vsserr.WriterErrorNonRetryable, 0, "postgres writer: %v", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileOwner{-1, -1}, nil
	}
	return fileOwner{int(st.Uid), int(st.Gid)}, nil
}

// writeOwned writes (or appends to) a file with mode 0600 and the data
// directory's owner, and syncs it: the server is started next.
func writeOwned(path string, content []byte, owner fileOwner, appendTo bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "postgres writer: %v", err)
	}
	_, err = f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && owner.uid >= 0 && os.Geteuid() == 0 {
		err = os.Chown(path, owner.uid, owner.gid)
	}
	if err != nil {
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "postgres writer: writing %s: %v", path, err)
	}
	return nil
}
