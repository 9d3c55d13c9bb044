package mysql

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writers/internal/appctl"
)

// restoreProcedure is the restore method's user procedure (decision L40).
const restoreProcedure = "Stop the server before PreRestore (the writer refuses while it runs, unless it was given a stop command); put back the data " +
	"directory, redo log, undo, binary and Aria log files, all from one backup; after PostRestore (which checks " +
	"them) start the server, unless the writer was given a start command: InnoDB recovers the snapshot as after a crash. Then check the tables " +
	"(mariadb-check --all-databases) and, to roll forward, apply the binary logs from the position in the backup metadata."

// serverState is what probe found.
type serverState struct {
	running bool
	pid     int    // 0 when unknown
	how     string // what showed it runs
}

// probe tells whether the server runs: the pid file the writer last saw
// names a live mysqld or mariadbd, or its address accepts connections
// (a refused dial, or a missing socket, means it does not). A dial that
// fails otherwise is taken as running: the writer cannot tell, and
// replacing a running server's files is the worse mistake.
func (w *Writer) probe(ctx context.Context) serverState {
	if w.held != nil {
		return serverState{running: true, how: "a backup session of the writer holds it"}
	}
	if w.declared != nil && w.declared.pidFile != "" {
		if pid, ok := livePID(w.declared.pidFile); ok {
			return serverState{running: true, pid: pid, how: "pid file " + w.declared.pidFile}
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(dctx, w.dc.Net, w.dc.Addr)
	if err == nil {
		c.Close()
		return serverState{running: true, how: "it accepts connections at " + w.Server()}
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
		return serverState{}
	}
	return serverState{running: true, how: fmt.Sprintf("the writer cannot tell: connecting to %s: %v", w.Server(), err)}
}

// livePID reads a pid file and reports its PID if that process runs and
// is a MariaDB or MySQL server (a reused PID is not).
func livePID(path string) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0, false
	}
	if comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm")); err == nil {
		name := strings.TrimSpace(string(comm))
		if name != "mysqld" && name != "mariadbd" {
			return 0, false
		}
	}
	return pid, true
}

func (w *Writer) checkStopped(ctx context.Context, when string) error {
	st := w.probe(ctx)
	if !st.running {
		return nil
	}
	who := "the server"
	if st.pid != 0 {
		who = fmt.Sprintf("the server (PID %d)", st.pid)
	}
	return writer.Fail(vsserr.WriterErrorRetryable, 0,
		"mysql writer: %s is running on the data directory being restored%s (%s): stop it first "+
			"(mariadb-admin shutdown, or the service that runs it, e.g. systemctl stop mariadb), then restore again", who, when, st.how)
}

// PreRestore refuses (VSS_E_WRITERERROR_RETRYABLE) while the server runs,
// naming its PID. With Config.StopCommand it runs the command instead and
// waits until the server is stopped; it refuses when the command fails
// (with its last line of output) or the server still runs. Without it the
// writer does not stop the server (L40). It also needs to know where the
// files go: the layout it last saw the server use.
func (w *Writer) PreRestore(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	if err := w.begin(); err != nil {
		return err
	}
	defer w.mu.Unlock()
	ctx, done := w.mu.Join(ctx)
	defer done()
	if w.declared == nil {
		return nil // nothing of the writer's can be selected before an Identify
	}
	comp := c.Get("", w.declared.dataDir)
	if comp == nil || !comp.SelectedForRestore {
		return nil
	}
	if err := w.stopForRestore(ctx, ev); err != nil {
		comp.PreRestoreFailureMsg = failureMessage(err)
		return err
	}
	w.cfg.Logger.Info("ready for restore", "data_directory", w.declared.dataDir)
	return nil
}

// stopForRestore stops a running server with the stop command, if the
// writer has one, and then checks that it does not run.
func (w *Writer) stopForRestore(ctx context.Context, ev *writer.Event) error {
	st := w.probe(ctx)
	if w.app.Stop == "" || !st.running || w.held != nil {
		// (A backup session's hold: not the writer's to end.)
		return w.checkStopped(ctx, "")
	}
	who := "the server"
	if st.pid != 0 {
		who = fmt.Sprintf("the server (PID %d)", st.pid)
	}
	w.cfg.Logger.Info("stopping the server for the restore", "pid", st.pid, "seen_by", st.how, "command", w.app.Stop)
	err := w.app.StopApp(ctx, ev.SessionID, func(ctx context.Context) error {
		if st := w.probe(ctx); st.running {
			return errors.New("it still runs: " + st.how)
		}
		return nil
	})
	switch {
	case errors.Is(err, appctl.ErrNotStopped):
		return writer.Fail(vsserr.WriterErrorRetryable, 0, "mysql writer: %s is still running: %v; stop it, then restore again", who, err)
	case err != nil:
		return writer.Fail(vsserr.WriterErrorRetryable, 0, "mysql writer: %v; %s still runs (%s): stop it, then restore again", err, who, st.how)
	}
	return w.checkStopped(ctx, " (after the stop command stopped it)")
}

// PostRestore checks the restored files by the file restore status:
// VSS_RS_ALL (or VSS_RS_UNDEFINED) checks that the data directory holds a
// server's files (the mysql system schema, InnoDB's system tablespace) and
// logs what to run next, with the binary log position the backup
// recorded; VSS_RS_NONE changes nothing; VSS_RS_FAILED changes nothing
// and fails. The server is left stopped (its start recovers InnoDB),
// unless the writer has Config.StartCommand: then it starts the server
// after VSS_RS_ALL, and after VSS_RS_NONE if it stopped it at this
// session's PreRestore, and waits until it answers a ping; a start that
// fails, or a server that does not answer before the deadline, fails
// PostRestore RETRYABLE.
func (w *Writer) PostRestore(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	if err := w.begin(); err != nil {
		return err
	}
	defer w.mu.Unlock()
	ctx, done := w.mu.Join(ctx)
	defer done()
	stoppedHere := w.app.TakeStopped(ev.SessionID)
	if w.declared == nil {
		return nil
	}
	l := w.declared
	comp := c.Get("", l.dataDir)
	if comp == nil || !comp.SelectedForRestore {
		return nil
	}
	var err error
	switch comp.FileRestoreStatus {
	case vss.RSNone:
		w.cfg.Logger.Info("nothing was restored; the server's files are left as they were", "data_directory", l.dataDir)
		if stoppedHere {
			err = w.startAfterRestore(ctx, "start it again: it was stopped for this restore, which wrote nothing")
		}
	case vss.RSFailed:
		err = writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"mysql writer: the server's files in %s were only partly restored (VSS_RS_FAILED): they may be damaged and were not checked; "+
				"do not start the server on them: restore them again", l.dataDir)
	default:
		err = w.checkStopped(ctx, " (started before PostRestore checked the restored files)")
		if err == nil {
			err = verifyDataDir(l)
		}
		if err == nil {
			w.logRestored(comp.BackupMetadata)
			err = w.startAfterRestore(ctx, "start the server on the restored files (InnoDB recovers)")
		}
	}
	if err != nil {
		comp.PostRestoreFailureMsg = failureMessage(err)
		return err
	}
	return nil
}

// logRestored logs what to run after a restore, with the binary log
// position the backup recorded.
func (w *Writer) logRestored(meta *string) {
	args := []any{"data_directory", w.declared.dataDir}
	if meta != nil {
		if p, err := ParsePosition(*meta); err == nil && p.BinlogFile != "" {
			args = append(args, "binlog_file", p.BinlogFile, "binlog_position", p.BinlogPosition, "gtid_binlog_pos", p.GTIDBinlogPos,
				"roll_forward", fmt.Sprintf("mariadb-binlog --start-position=%d %s ... | mariadb", p.BinlogPosition, p.BinlogFile))
		}
	}
	next := "restored files checked: start the server (InnoDB recovers), then mariadb-check --all-databases"
	if w.app.Start != "" {
		next = "restored files checked: the start command starts the server (InnoDB recovers); then run mariadb-check --all-databases"
	}
	w.cfg.Logger.Info(next, args...)
}

// startAfterRestore runs the start command, if the writer has one, and
// waits until the server answers a ping.
func (w *Writer) startAfterRestore(ctx context.Context, why string) error {
	if w.app.Start == "" {
		return nil
	}
	w.cfg.Logger.Info("starting the server: "+why, "server", w.Server(), "command", w.app.Start)
	if err := w.app.StartApp(ctx, w.db.PingContext); err != nil {
		return writer.Fail(vsserr.WriterErrorRetryable, 0, "mysql writer: starting the server at %s after the restore: %v", w.Server(), err)
	}
	w.cfg.Logger.Info("the server runs again", "server", w.Server())
	return nil
}

// verifyDataDir checks what a server needs to start on the restored data
// directory. It is no substitute for InnoDB's recovery and the server's
// table checks; it catches a restore that put the files elsewhere or
// left out the system schema or tablespace.
func verifyDataDir(l *layout) error {
	var missing []string
	if fi, err := os.Stat(filepath.Join(l.dataDir, "mysql")); err != nil || !fi.IsDir() {
		missing = append(missing, filepath.Join(l.dataDir, "mysql")+" (the system schema)")
	}
	for _, f := range l.systemFiles {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f+" (InnoDB's system tablespace)")
		}
	}
	if len(missing) > 0 {
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "mysql writer: the restored data directory %s lacks %s: put the backup's files back there",
			l.dataDir, strings.Join(missing, ", "))
	}
	return nil
}

func failureMessage(err error) string {
	var f *writer.Failure
	if errors.As(err, &f) {
		return f.Message
	}
	return vsserr.Message(err)
}
