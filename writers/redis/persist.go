package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// Polling INFO persistence: the first answer usually says the files are
// ready; a BGSAVE takes from milliseconds to seconds, so the pauses grow.
const (
	pollMin = time.Millisecond
	pollMax = 20 * time.Millisecond
)

// persisted says what Freeze waited for.
type persisted struct {
	polls int // INFO persistence round trips
	// RDB only
	waitedSave time.Duration // for a save that was running when the pause began
	bgsave     time.Duration // BGSAVE issued until it finished
	lastsave   int64         // LASTSAVE after it (Unix seconds)
	// AOF only
	waitedBuffer  time.Duration // for the AOF buffer to be written out
	waitedSwitch  time.Duration // for the first rewrite of an AOF just switched on
	bufferAtStart int64         // aof_buffer_length when the pause began
}

// poller paces the polls of one wait.
type poller struct {
	ctx   context.Context
	until time.Time // the persist budget's end
	sleep time.Duration
	n     *int
}

// next waits before the next poll; false when the budget is spent. A
// cancelled context (Abort, lost stream, deadline) ends the wait with its
// cause, which the SDK reports.
func (p *poller) next() (bool, error) {
	if !time.Now().Before(p.until) {
		return false, nil
	}
	if p.sleep == 0 {
		p.sleep = pollMin
	} else {
		p.sleep = min(2*p.sleep, pollMax)
	}
	t := time.NewTimer(min(p.sleep, time.Until(p.until)))
	defer t.Stop()
	select {
	case <-p.ctx.Done():
		return false, fmt.Errorf("waiting for the server's files: %w", context.Cause(p.ctx))
	case <-t.C:
	}
	return true, nil
}

func (s *server) persistence(p *poller) (map[string]string, error) {
	*p.n++
	info, err := s.info(p.ctx, "persistence")
	if err != nil {
		return nil, fail(err, "INFO persistence")
	}
	return info, nil
}

// flushAOF makes the AOF on disk hold every command the paused server has
// executed. Redis appends each write command to its AOF buffer and writes
// the buffer to the current incr file before it answers the clients
// (beforeSleep); with appendfsync everysec it postpones that write, for up
// to two seconds, while the previous second's fsync is still running, and
// the clients get their answers anyway. The writer therefore waits until
// aof_buffer_length is 0: from then on the file's content in the page
// cache is complete, and the snapshot (or the filesystem freeze) captures
// the page cache, so no fsync is needed. While the pause lasts the buffer
// cannot grow again: write commands, expiry and eviction are all held.
//
// An AOF rewrite in progress is harmless in Redis 7.0: the manifest keeps
// naming the old base and every incr file until the new base is complete,
// and is replaced atomically. The one exception is an AOF just switched on
// (CONFIG SET appendonly yes): until its first rewrite ends, writes go to a
// temporary incr file the manifest does not name, and the manifest on disk
// is missing or stale. The writer waits that rewrite out.
func (s *server) flushAOF(p *poller, l layout, r *persisted) error {
	start := time.Now()
	var switching time.Time
	for first := true; ; first = false {
		info, err := s.persistence(p)
		if err != nil {
			return err
		}
		if info["aof_enabled"] != "1" {
			return writer.Fail(vsserr.WriterErrorRetryable, 0,
				"the server reports aof_enabled:%s while appendonly was yes at Identify; gather writer metadata again", info["aof_enabled"])
		}
		if info["aof_last_write_status"] == "err" {
			// Redis keeps the buffer and retries once a second; meanwhile
			// it refuses writes (MISCONF), so the state does not move.
			return writer.Fail(vsserr.WriterErrorNonRetryable, 0,
				"the server reports aof_last_write_status:err: it cannot write its AOF in %s (disk full or read-only? its log says why)", l.aofDir())
		}
		buf, err := infoInt(info, "aof_buffer_length")
		if err != nil {
			return err
		}
		if first {
			r.bufferAtStart = buf
		}
		_, err = os.Stat(l.tempIncr())
		switchingOn := err == nil
		if switchingOn && switching.IsZero() {
			switching = time.Now()
		}
		if !switchingOn && !switching.IsZero() && r.waitedSwitch == 0 {
			r.waitedSwitch = time.Since(switching)
			if info["aof_last_bgrewrite_status"] == "err" {
				return writer.Fail(vsserr.WriterErrorNonRetryable, 0, "the first rewrite of the AOF just switched on failed (aof_last_bgrewrite_status:err); the server's log says why")
			}
		}
		if buf == 0 && !switchingOn {
			r.waitedBuffer = time.Since(start)
			return nil
		}
		more, err := p.next()
		if err != nil {
			return err
		}
		if !more {
			if switchingOn {
				return writer.Fail(vsserr.WriterErrorRetryable, 0,
					"appendonly was just switched on and the first AOF rewrite (%s exists) has not finished after %s; the AOF on disk is incomplete until it does: retry when it has",
					l.tempIncr(), time.Since(switching).Round(time.Millisecond))
			}
			return writer.Fail(vsserr.WriterErrorRetryable, 0,
				"the server has not written its AOF buffer out after %s (aof_buffer_length:%d; the disk is slow and a background fsync is in progress?)",
				time.Since(start).Round(time.Millisecond), buf)
		}
	}
}

// bgsave makes the RDB file hold the paused dataset. A save running when
// the pause began forked before it and lacks the last writes, so it is
// waited out first; then BGSAVE forks a child that sees exactly the paused
// dataset and writes it to a temporary file that it renames over the RDB
// file when complete. Completion is confirmed three ways: the save counter
// moved past the writer's BGSAVE and no save runs, the last one succeeded,
// and LASTSAVE is not older than the moment BGSAVE was issued. Finally
// rdb_changes_since_last_save must be 0: nothing changed the dataset since
// the fork, so the file is the dataset.
func (s *server) bgsave(p *poller, l layout, r *persisted) error {
	start := time.Now()
	for {
		info, err := s.persistence(p)
		if err != nil {
			return err
		}
		running, err := infoInt(info, "rdb_bgsave_in_progress")
		if err != nil {
			return err
		}
		if running == 0 {
			break
		}
		more, err := p.next()
		if err != nil {
			return err
		}
		if !more {
			return writer.Fail(vsserr.WriterErrorRetryable, 0,
				"a save that began before the freeze was still running after %s; it lacks the latest writes, and a new BGSAVE cannot start before it ends: retry when it has",
				time.Since(start).Round(time.Millisecond))
		}
	}
	r.waitedSave = time.Since(start)

	info, err := s.persistence(p)
	if err != nil {
		return err
	}
	before, err := infoInt(info, "rdb_saves")
	if err != nil {
		return err
	}
	issued := time.Now()
	// SCHEDULE: if an AOF rewrite or a module's child is running (BGREWRITEAOF
	// works with appendonly no too), the save starts as soon as it ends
	// instead of being refused.
	reply, err := s.conn.Do(p.ctx, "bgsave", "schedule").Text()
	if err != nil {
		if replyCode(err) == "ERR" && strings.TrimSpace(err.Error()) == "ERR" {
			// Redis answers a bare ERR when fork() fails, almost always
			// for memory (vm.overcommit_memory 0 and a large dataset).
			return writer.Fail(vsserr.WriterErrorOutOfResources, applicationHR(err),
				"BGSAVE SCHEDULE in %s: the server could not fork its save child (bare ERR); its log says why, usually memory (vm.overcommit_memory)", l.Dir)
		}
		return fail(err, "BGSAVE SCHEDULE in %s", l.Dir)
	}
	for {
		info, err := s.persistence(p)
		if err != nil {
			return err
		}
		saves, err1 := infoInt(info, "rdb_saves")
		running, err2 := infoInt(info, "rdb_bgsave_in_progress")
		lastTime, err3 := infoInt(info, "rdb_last_save_time")
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		if saves > before && running == 0 {
			if st := info["rdb_last_bgsave_status"]; st != "ok" {
				return writer.Fail(vsserr.WriterErrorNonRetryable, 0,
					"BGSAVE to %s failed (rdb_last_bgsave_status:%s); the server's log says why (disk full, permissions, fork refused?)", l.rdbPath(), st)
			}
			if lastTime >= issued.Unix() {
				break
			}
			// A save that started after BGSAVE but wrote no file (a
			// diskless replica sync) moved the counter; BGSAVE's own save
			// is still to come.
		}
		more, err := p.next()
		if err != nil {
			return err
		}
		if !more {
			return writer.Fail(vsserr.WriterErrorTimeout, 0,
				"BGSAVE (%s) did not finish within %s of the pause; the dataset takes longer to save than the freeze window allows (raise the window, or switch the AOF on)",
				strings.ToLower(reply), time.Since(issued).Round(time.Millisecond))
		}
	}
	r.bgsave = time.Since(issued)
	last, err := s.conn.LastSave(p.ctx).Result()
	if err != nil {
		return fail(err, "LASTSAVE")
	}
	r.lastsave = last
	if last < issued.Unix() {
		return writer.Fail(vsserr.WriterErrorRetryable, 0,
			"LASTSAVE is %s, before BGSAVE was issued at %s", time.Unix(last, 0).UTC().Format(time.RFC3339), issued.UTC().Format(time.RFC3339Nano))
	}
	info, err = s.persistence(p)
	if err != nil {
		return err
	}
	changes, err := infoInt(info, "rdb_changes_since_last_save")
	if err != nil {
		return err
	}
	if changes != 0 {
		return writer.Fail(vsserr.WriterErrorRetryable, 0,
			"the dataset changed during the pause (%d changes since the save): something wrote past CLIENT PAUSE WRITE, or another client ended the pause", changes)
	}
	return nil
}
