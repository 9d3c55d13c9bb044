package freeze

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The control protocol, version 1. The guard reads requests, one JSON
// object per line, from fd 3, and writes events, one per line, to fd 4.
// Separate descriptors rather than stdin/stdout keep a stray write by the
// runtime (a panic goes to stderr, captured by the parent) out of the
// protocol, and a write to a broken pipe on fd 4 is an EPIPE error, never a
// SIGPIPE death.
//
//	guard → lvssd  {"v":1,"ev":"ready","pid":N}            once, at start
//	lvssd → guard  {"v":1,"op":"freeze","paths":[...]}     at most once
//	guard → lvssd  {"v":1,"ev":"frozen",...timings}        all frozen
//	lvssd → guard  {"v":1,"op":"thaw"}                     thaw (or abort) and end
//	guard → lvssd  {"v":1,"ev":"ended","why":...,...}      last line; the guard exits
//
// "ended" is the only event that says the hold is over, and it is written
// only after every FITHAW: whatever the reason (asked, hold window, signal,
// lost parent, failed freeze), a reader that sees it knows nothing of this
// guard is frozen — except the filesystems listed with a thaw error, whose
// records stay for Recover. End-of-file on fd 3 means lvssd is gone.
const (
	opFreeze = "freeze"
	opThaw   = "thaw"

	evReady  = "ready"
	evFrozen = "frozen"
	evEnded  = "ended"
)

// Why a hold ended (event.Why, Stats.Ended).
const (
	whyThaw     = "thaw"
	whyExpired  = "expired"
	whyParent   = "parent"
	whyFailed   = "failed"
	whyAborted  = "aborted"
	whyProtocol = "protocol"
	whyKilled   = "killed" // set by the parent: the guard died without "ended"
	whySignal   = "signal" // followed by the signal's name
)

type request struct {
	V     int      `json:"v"`
	Op    string   `json:"op"`
	Paths []string `json:"paths,omitempty"`
}

type event struct {
	V   int    `json:"v"`
	Ev  string `json:"ev"`
	Pid int    `json:"pid,omitempty"`

	Why string `json:"why,omitempty"`
	// A failed freeze (why "failed"), or a protocol error: the HRESULT and
	// reason; Busy when a filesystem was frozen by someone else.
	Code uint32 `json:"code,omitempty"`
	Msg  string `json:"msg,omitempty"`
	Busy bool   `json:"busy,omitempty"`

	ResolveNs int64      `json:"resolve_ns,omitempty"`
	SyncNs    int64      `json:"sync_ns,omitempty"`
	FreezeNs  int64      `json:"freeze_ns,omitempty"`
	ThawNs    int64      `json:"thaw_ns,omitempty"`
	HeldNs    int64      `json:"held_ns,omitempty"`
	FS        []fsReport `json:"fs,omitempty"`
}

type fsReport struct {
	Dev      string   `json:"dev"`
	Mnt      string   `json:"mnt"`
	Type     string   `json:"type"`
	Paths    []string `json:"paths"`
	SyncNs   int64    `json:"sync_ns,omitempty"`
	FreezeNs int64    `json:"freeze_ns,omitempty"`
	ThawNs   int64    `json:"thaw_ns,omitempty"`
	Frozen   bool     `json:"frozen,omitempty"`   // this guard froze it
	ThawErr  string   `json:"thaw_err,omitempty"` // FITHAW failed: still frozen, record kept
	Gone     bool     `json:"gone,omitempty"`     // no longer frozen when thawed (someone else thawed it)
}

func (r fsReport) stat() FSStat {
	return FSStat{
		Device: r.Dev, MountPoint: r.Mnt, Type: r.Type, Paths: r.Paths,
		Sync: time.Duration(r.SyncNs), Freeze: time.Duration(r.FreezeNs), Thaw: time.Duration(r.ThawNs),
	}
}

// record is what the guard writes to RunDir/freeze before each FIFREEZE:
// enough to find the filesystem again and thaw it if the guard cannot.
type record struct {
	V     int       `json:"v"`
	Pid   int       `json:"pid"`    // the guard that froze it
	Dev   string    `json:"dev"`    // superblock major:minor
	Mnt   string    `json:"mnt"`    // mount point it was frozen through
	MntID uint64    `json:"mnt_id"` // that mount's ID (mountinfo, statx)
	Type  string    `json:"type"`
	Paths []string  `json:"paths"`
	At    time.Time `json:"at"` // written just before FIFREEZE
}

// recordDir is where the records of every guard live.
func recordDir(runDir string) string { return filepath.Join(runDir, "freeze") }

// recordName is unique per guard and filesystem, so guards never share a
// record and Recover can tell whose it is from the name alone.
func recordName(pid int, dev string) string {
	return strconv.Itoa(pid) + "-" + strings.ReplaceAll(dev, ":", "-") + ".json"
}

// writeRecord writes a record atomically (temp file and rename), so that
// Recover never reads a half-written one.
func writeRecord(dir string, r record) (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	name := filepath.Join(dir, recordName(r.Pid, r.Dev))
	tmp := filepath.Join(dir, ".tmp-"+recordName(r.Pid, r.Dev))
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return name, nil
}

// readRecords returns the records in dir by file name. Unreadable or
// foreign files are reported, not guessed at.
func readRecords(dir string) (map[string]record, []error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, []error{err}
	}
	out := map[string]record{}
	var errs []error
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".tmp-") {
			// A guard died between writing and renaming: it had not
			// issued that FIFREEZE yet.
			os.Remove(filepath.Join(dir, n))
			continue
		}
		if !strings.HasSuffix(n, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil || r.Dev == "" {
			errs = append(errs, &recordError{path: filepath.Join(dir, n), err: err})
			continue
		}
		out[filepath.Join(dir, n)] = r
	}
	return out, errs
}

type recordError struct {
	path string
	err  error
}

func (e *recordError) Error() string {
	if e.err == nil {
		return "freeze record " + e.path + ": no device"
	}
	return "freeze record " + e.path + ": " + e.err.Error()
}

func (e *recordError) Unwrap() error { return e.err }
