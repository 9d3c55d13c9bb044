package redis

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writers/internal/appctl"
)

// restoreProcedure is the restore method's user procedure (decision L40).
const restoreProcedure = "Stop the Redis server before PreRestore (the writer refuses while it answers, unless it was given " +
	"a stop command: it would write its in-memory dataset over the restored files); put back the RDB file and the AOF " +
	"directory from one backup; after PostRestore (which checks them) start the server, unless the writer was given a " +
	"start command: it loads them."

// probe tells whether the server runs: a dial that is refused, or finds
// no socket, means it does not; anything that connects means it does.
// On a running server it asks INFO server for the PID (a server the
// writer may not query gives none). err is set when it cannot tell (a
// dial that timed out).
func (w *Writer) probe(ctx context.Context) (running bool, pid string, err error) {
	if w.srv != nil {
		return true, "", nil // a backup session's connection
	}
	network, addr := w.cfg.network()
	c, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, network, addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
			return false, "", nil
		}
		return false, "", err
	}
	c.Close()
	err = w.withConn(ctx, func(s *server) error {
		info, err := s.info(ctx, "server")
		pid = info["process_id"]
		return err
	})
	if err != nil {
		w.cfg.Logger.Debug("the running server did not say its PID", "err", err)
	}
	return true, pid, nil
}

// stoppedLayout is the layout to declare while the server does not run:
// what the writer last saw, or nil when it saw nothing or the server may
// be running.
func (w *Writer) stoppedLayout(ctx context.Context) *layout {
	if w.declared == nil {
		return nil
	}
	if running, _, err := w.probe(ctx); err != nil || running {
		return nil
	}
	l := *w.declared
	return &l
}

// PreRestore refuses (VSS_E_WRITERERROR_RETRYABLE) while the server runs,
// naming it and its PID: it keeps the dataset in memory and writes it to
// its files at its next save, AOF rewrite or shutdown, over whatever was
// restored. With Config.StopCommand it runs the command instead and waits
// until the server no longer answers; it refuses when the command fails
// (with its last line of output) or the server still answers. Without it
// the writer does not stop the server (L40). It also needs to know where
// the files go: the layout the writer last saw the server use.
func (w *Writer) PreRestore(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	comp := c.Get("", ComponentName)
	if comp == nil || !comp.SelectedForRestore {
		return nil
	}
	if w.declared == nil {
		err = w.checkStopped(ctx, "")
		if err == nil {
			err = writer.Fail(vsserr.WriterErrorNonRetryable, 0,
				"redis writer: the writer has not seen the server since it started, so it does not know where its files are: start the writer while the server runs, then stop the server and restore")
		}
	} else {
		err = w.stopForRestore(ctx, ev)
	}
	if err != nil {
		comp.PreRestoreFailureMsg = failureMessage(err)
		return err
	}
	w.cfg.Logger.Info("ready for restore", "dir", w.declared.Dir, "mode", w.declared.mode())
	return nil
}

// stopForRestore stops a server that answers with the stop command, if
// the writer has one, and then checks that it does not answer.
func (w *Writer) stopForRestore(ctx context.Context, ev *writer.Event) error {
	running, pid, err := w.probe(ctx)
	if w.app.Stop == "" || err != nil || !running || w.srv != nil {
		// (A backup session's connection: not the writer's to end.)
		return w.checkStopped(ctx, "")
	}
	who := "the Redis server at " + w.cfg.server()
	if pid != "" {
		who += " (PID " + pid + ")"
	}
	w.cfg.Logger.Info("stopping the server for the restore", "server", w.cfg.server(), "pid", pid, "command", w.app.Stop)
	err = w.app.StopApp(ctx, ev.SessionID, func(ctx context.Context) error {
		running, _, err := w.probe(ctx)
		switch {
		case err != nil:
			return err
		case running:
			return errors.New("it still answers")
		}
		return nil
	})
	switch {
	case errors.Is(err, appctl.ErrNotStopped):
		return writer.Fail(vsserr.WriterErrorRetryable, 0, "redis writer: %s is still running: %v; stop it, then restore again", who, err)
	case err != nil:
		return writer.Fail(vsserr.WriterErrorRetryable, 0, "redis writer: %v; %s still runs: stop it, then restore again", err, who)
	}
	return w.checkStopped(ctx, " (after the stop command stopped it)")
}

func (w *Writer) checkStopped(ctx context.Context, when string) error {
	running, pid, err := w.probe(ctx)
	if err != nil {
		return writer.Fail(vsserr.WriterErrorRetryable, 0, "redis writer: cannot tell whether the server at %s runs: %v", w.cfg.server(), err)
	}
	if !running {
		return nil
	}
	who := "the Redis server at " + w.cfg.server()
	if pid != "" {
		who += " (PID " + pid + ")"
	}
	return writer.Fail(vsserr.WriterErrorRetryable, 0,
		"redis writer: %s is running%s: it would write its in-memory dataset over the restored files; "+
			"stop it first (redis-cli SHUTDOWN, or the service that runs it, e.g. systemctl stop redis-server), then restore again", who, when)
}

// PostRestore checks the restored files by the file restore status:
// VSS_RS_ALL (or VSS_RS_UNDEFINED) checks what the server will load — the
// RDB file (its header, end marker and CRC-64), or with the AOF on the
// manifest and every file it names (an RDB base file checked the same
// way) — and fails NONRETRYABLE naming what is wrong; VSS_RS_NONE changes
// nothing; VSS_RS_FAILED changes nothing and fails. The server is left
// stopped, for the requester to start, unless the writer has
// Config.StartCommand: then it starts the server after VSS_RS_ALL, and
// after VSS_RS_NONE if it stopped it at this session's PreRestore, and
// waits until it answers PING; a start that fails, or a server that does
// not answer before the deadline, fails PostRestore RETRYABLE.
func (w *Writer) PostRestore(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	ctx, done, err := w.mu.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	stoppedHere := w.app.TakeStopped(ev.SessionID)
	comp := c.Get("", ComponentName)
	if comp == nil || !comp.SelectedForRestore {
		return nil
	}
	switch {
	case comp.FileRestoreStatus == vss.RSNone:
		w.cfg.Logger.Info("nothing was restored; the files are left as they were")
		if !stoppedHere {
			return nil
		}
		err = w.startAfterRestore(ctx, "start it again: it was stopped for this restore, which wrote nothing")
	case w.declared == nil:
		err = writer.Fail(vsserr.WriterErrorNonRetryable, 0, "redis writer: the writer does not know where the server's files are (it has not seen the server since it started)")
	case comp.FileRestoreStatus == vss.RSFailed:
		err = writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"redis writer: the dataset in %s was only partly restored (VSS_RS_FAILED): it may be damaged and was not checked; do not start the server on it: restore it again", w.declared.Dir)
	default:
		err = w.checkStopped(ctx, " (started before PostRestore checked the restored files)")
		if err == nil {
			err = verifyFiles(*w.declared)
		}
		if err == nil {
			w.cfg.Logger.Info("restored files checked", "dir", w.declared.Dir, "mode", w.declared.mode())
			err = w.startAfterRestore(ctx, "start the server on the restored files")
		}
	}
	if err != nil {
		comp.PostRestoreFailureMsg = failureMessage(err)
		return err
	}
	return nil
}

// startAfterRestore runs the start command, if the writer has one, and
// waits until the server answers PING (a server still loading its files
// answers LOADING).
func (w *Writer) startAfterRestore(ctx context.Context, why string) error {
	if w.app.Start == "" {
		w.cfg.Logger.Info("the server is left stopped: start it")
		return nil
	}
	w.cfg.Logger.Info("starting the server: "+why, "server", w.cfg.server(), "command", w.app.Start)
	err := w.app.StartApp(ctx, func(ctx context.Context) error {
		return w.withConn(ctx, func(s *server) error { return s.conn.Ping(ctx).Err() })
	})
	if err != nil {
		return writer.Fail(vsserr.WriterErrorRetryable, 0, "redis writer: starting the server at %s after the restore: %v", w.cfg.server(), err)
	}
	w.cfg.Logger.Info("the server runs again", "server", w.cfg.server())
	return nil
}

// verifyFiles checks the files a start of the server loads.
func verifyFiles(l layout) error {
	bad := func(format string, args ...any) error {
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "redis writer: restored "+format, args...)
	}
	if !l.AOF {
		if err := checkRDB(l.rdbPath()); err != nil {
			return bad("%v", err)
		}
		return nil
	}
	manifest := filepath.Join(l.aofDir(), l.AOFFilename+".manifest")
	b, err := os.ReadFile(manifest)
	if err != nil {
		return bad("AOF: %v", err)
	}
	files := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// "file appendonly.aof.1.base.rdb seq 1 type b"
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "file" {
			continue
		}
		files++
		path := filepath.Join(l.aofDir(), f[1])
		if _, err := os.Stat(path); err != nil {
			return bad("AOF: %s names %s, which is missing (%v)", manifest, f[1], err)
		}
		if strings.HasSuffix(f[1], ".rdb") {
			if err := checkRDB(path); err != nil {
				return bad("AOF base: %v", err)
			}
		}
	}
	if files == 0 {
		return bad("AOF: %s names no file", manifest)
	}
	return nil
}

// crcJones is the CRC-64 Redis seals its RDB files with (the Jones
// polynomial, reflected, no initial or final inversion).
var crcJones = crc64.MakeTable(0x95AC9329AC4BC9B5)

// checkRDB checks an RDB file the way a loading server would, short of
// parsing every entry: the "REDIS" header, the end-of-file opcode, and
// the CRC-64 in the last eight bytes (0 when the server was configured
// with rdbchecksum no).
func checkRDB(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	switch {
	case len(b) < 9+1+8 || !bytes.HasPrefix(b, []byte("REDIS")):
		return fmt.Errorf("%s is not an RDB file", path)
	case b[len(b)-9] != 0xFF:
		return fmt.Errorf("%s is truncated (no end-of-file marker)", path)
	}
	want := binary.LittleEndian.Uint64(b[len(b)-8:])
	if want == 0 {
		return nil
	}
	// crc64.Update inverts before and after; Redis's CRC does neither.
	if got := ^crc64.Update(^uint64(0), crcJones, b[:len(b)-8]); got != want {
		return fmt.Errorf("%s fails its checksum (CRC-64 %016x, the file says %016x)", path, got, want)
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
