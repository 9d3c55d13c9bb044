package freeze

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/vsserr"
)

// Recover thaws what the records in runDir/freeze say a guard froze and
// did not thaw — a guard that was SIGKILLed or crashed leaves them — and
// removes those records. It returns the mount points it thawed. lvssd
// calls it at start; a Guard calls it for its own guard the moment that
// guard exits (Done), so lvssd need not.
//
// Records of a guard that is still running are left alone: that guard
// thaws them itself, and thawing under it would cut its hold short. A
// record whose filesystem is no longer frozen or no longer mounted is
// removed. Recover with no records does nothing.
//
// A record is written just before its FIFREEZE, so a guard killed inside
// that ioctl leaves a record for a freeze that may have failed with EBUSY
// (someone else's). Recover thaws it all the same: leaving a freeze of ours
// in place would block the machine, which is worse than ending someone
// else's early, and the window is one system call wide.
func Recover(runDir string, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return recoverRecords(runDir, 0, log)
}

// recoverRecords is Recover for the records of one guard (pid > 0) or of
// every guard not running (pid 0).
func recoverRecords(runDir string, pid int, log *slog.Logger) ([]string, error) {
	recs, errs := readRecords(recordDir(runDir))
	if pid > 0 {
		// Unreadable files cannot be told apart by guard; the caller
		// with pid 0 reports them.
		errs = nil
	}
	var names []string
	for name, r := range recs {
		if pid > 0 && r.Pid != pid {
			continue
		}
		if pid == 0 && guardAlive(r.Pid) {
			log.Info("freeze record of a running guard left to it", "record", name, "pid", r.Pid)
			continue
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil, joinErr(errs)
	}
	sort.Strings(names)
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, vsserr.Wrap(vsserr.Unexpected, err, "freeze recovery: read mountinfo")
	}
	var thawed []string
	for _, name := range names {
		r := recs[name]
		mnt, state, err := thawRecord(ms, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("thaw %s (%s, record %s): %w", r.Mnt, r.Dev, name, err))
			continue
		}
		os.Remove(name)
		switch state {
		case thawedNow:
			thawed = append(thawed, mnt)
			log.Warn("thawed a filesystem a freeze guard left frozen", "mount", mnt, "device", r.Dev, "type", r.Type, "guard", r.Pid, "frozen_at", r.At)
		case notFrozen:
			log.Info("removed a freeze record: its filesystem was not frozen", "mount", mnt, "device", r.Dev, "guard", r.Pid)
		case notMounted:
			log.Warn("removed a freeze record: its filesystem is no longer mounted here", "mount", r.Mnt, "device", r.Dev, "guard", r.Pid)
		}
	}
	return thawed, joinErr(errs)
}

func joinErr(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return vsserr.Wrap(vsserr.Unexpected, errors.Join(errs...), "freeze recovery")
}

type thawState int

const (
	thawedNow thawState = iota
	notFrozen
	notMounted
)

// thawRecord finds a mount of the recorded superblock — the recorded mount
// point first — checks that the path really reaches it (not a mount stacked
// on top), and issues FITHAW there.
func thawRecord(ms []mountinfo.Mount, r record) (string, thawState, error) {
	var cands []mountinfo.Mount
	for _, m := range ms {
		if m.Device() != r.Dev {
			continue
		}
		if m.MountPoint == r.Mnt {
			cands = append([]mountinfo.Mount{m}, cands...)
		} else {
			cands = append(cands, m)
		}
	}
	if len(cands) == 0 {
		return r.Mnt, notMounted, nil
	}
	var last error
	for _, m := range cands {
		fd, err := openNoWrite(m.MountPoint)
		if err != nil {
			last = err
			continue
		}
		fm, err := statFD(fd)
		var got mountinfo.Mount
		if err == nil {
			got, err = mountOf(ms, fm, m.MountPoint)
		}
		if err == nil && got.Device() != r.Dev {
			err = fmt.Errorf("%s is covered by another mount (%s)", m.MountPoint, got.Device())
		}
		if err != nil {
			unix.Close(fd)
			last = err
			continue
		}
		err = fithaw(fd)
		unix.Close(fd)
		switch {
		case err == nil:
			return m.MountPoint, thawedNow, nil
		case errors.Is(err, unix.EINVAL):
			return m.MountPoint, notFrozen, nil
		}
		last = errors.New(errnoText("FITHAW", err))
	}
	return r.Mnt, 0, last
}

// guardAlive reports whether pid is a running guard. A zombie has an empty
// command line, so a dead guard not yet reaped counts as dead.
func guardAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 1 && args[1] == GuardArg
}
