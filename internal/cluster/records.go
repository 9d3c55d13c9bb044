package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/vsserr"
)

// HostInfo is a host's registration (hosts/HOST), under its lease.
type HostInfo struct {
	Host    string       `json:"host"`
	Version string       `json:"version"`
	Started time.Time    `json:"started"`
	Writers []HostWriter `json:"writers"`
}

// HostWriter is a writer subscribed on a host.
type HostWriter struct {
	Name       string    `json:"name"`
	Instance   string    `json:"instance,omitempty"`
	ClassID    uuid.UUID `json:"class_id"`
	InstanceID uuid.UUID `json:"instance_id"`
}

// Job is what the requester asks of the hosts (sets/SET/job), under its
// lease: the job's key vanishing is the requester's death.
type Job struct {
	ID         uuid.UUID          `json:"id"`
	Requester  string             `json:"requester"` // user@machine[pid], for people
	Created    time.Time          `json:"created"`   // the requester's clock, for people
	Type       string             `json:"type"`      // lvss backup's --type: copy, full, ...
	Persistent bool               `json:"persistent"`
	Hosts      map[string]HostJob `json:"hosts"`
	// PrepareMS bounds, on each host, the wait from its arrival at
	// accepted for every host to be prepared (gathering and preparing
	// writers takes time); BarrierMS each later barrier's wait.
	PrepareMS int64 `json:"prepare_ms"`
	BarrierMS int64 `json:"barrier_ms"`
	// Archives: the requester writes a cluster archive (--bcd), so each
	// host publishes its own backup archive with its part (Part.Archive).
	Archives bool `json:"archives,omitempty"`
	// Command is the requester's COMMAND, recorded in each host's
	// archive. No host runs it (L65).
	Command []string `json:"command,omitempty"`
}

// HostJob is one host's part of a job.
type HostJob struct {
	Paths   []string `json:"paths"`
	Writers []string `json:"writers,omitempty"` // must take part: name, instance name or class ID
}

// HostNames are the job's hosts, sorted.
func (j *Job) HostNames() []string {
	out := make([]string, 0, len(j.Hosts))
	for h := range j.Hosts {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// Wait is how long a host waits at p for the others.
func (j *Job) Wait(p Point) time.Duration {
	if p == Accepted || p == Prepared {
		return time.Duration(j.PrepareMS) * time.Millisecond
	}
	return time.Duration(j.BarrierMS) * time.Millisecond
}

// Arrival is a host's arrival at a point (sets/SET/at/POINT/HOST), under
// the host's lease. At Snapshotted it carries the host's part.
type Arrival struct {
	Host string    `json:"host"`
	Time time.Time `json:"time"` // the host's clock, for people only
	Part *Part     `json:"part,omitempty"`
	// Levels, at Prepared, are the freeze levels of the host's writers
	// taking part (VSS_APP_FRONT_END...), [] for none: a freeze-level
	// barrier no host needs is passed without waiting. nil (an lvssd
	// that does not say) counts as every level.
	Levels []string `json:"levels"`
}

// Part is a host's part of a set: its snapshots and, when the job asks
// for it, its documents.
type Part struct {
	Snapshots []Snapshot `json:"snapshots"`
	// Consistency is "application" when every snapshot of the host's
	// part is.
	Consistency string `json:"consistency"`
	// Archive is the host's own backup archive (package backupdoc: the
	// manifest, its Backup Components Document and the metadata of its
	// writers taking part), exactly what lvss backup --bcd would write on
	// the host: at Snapshotted at stage snapshot, at Completed at stage
	// backup_complete. Only when the job asks for archives; never in a
	// Record, whose value would grow with the hosts past what etcd takes.
	Archive []byte `json:"archive,omitempty"`
	// ArchiveError says why a host sent no archive at Completed (the
	// set is made; the cluster archive stays at stage snapshot).
	ArchiveError string `json:"archive_error,omitempty"`
}

// MaxValue is the largest value lvss puts in etcd: etcd's default
// --max-request-bytes (1.5 MiB), less room for the key and the
// request's framing. An arrival carrying a host's archive is the only
// value that can come near it: base64 makes the archive a third larger.
const MaxValue = 1536<<10 - 16<<10

// ArrivalSize is how large host's arrival carrying part is as stored.
func ArrivalSize(host string, part *Part) int {
	return len(Encode(Arrival{Host: host, Time: time.Now().UTC(), Part: part}))
}

// ArchiveTooLarge is the error of a host whose archive would make a value
// larger than MaxValue: E_INVALIDARG, as backupdoc refuses archives over
// its limits. size is the archive's, stored the arrival's.
func ArchiveTooLarge(host string, size, stored int) error {
	return &Hinted{Err: vsserr.New(vsserr.InvalidArg,
		"host %s's backup archive is %d bytes (%d as stored in etcd), more than the %d an etcd value may hold: its writers' metadata is too large to go through etcd, so the cluster archive (--bcd) cannot hold this host's documents",
		host, size, stored, MaxValue),
		Text: "back the set up without --bcd (each host keeps its documents in its lvssd's catalog), or name the writers that must take part on that host with --writer HOST:NAME, leaving out those with the largest metadata"}
}

// Snapshot is one snapshot of a host's part.
type Snapshot struct {
	ID          uuid.UUID `json:"id"`
	Original    string    `json:"original"` // the volume (path) snapshotted
	Path        string    `json:"path"`     // where its content is
	Provider    string    `json:"provider"`
	Created     time.Time `json:"created"`
	Consistency string    `json:"consistency"`
	Reason      string    `json:"reason,omitempty"`
}

// Abort is why a set was aborted (sets/SET/abort), written once by
// whoever aborted first.
type Abort struct {
	By      string   `json:"by"`    // a host, or "requester"
	Point   Point    `json:"point"` // where the set was when it was aborted
	Code    uint32   `json:"code"`  // the HRESULT
	Message string   `json:"message"`
	Hosts   []string `json:"hosts"` // the set's hosts, which may keep parts to delete
	Time    string   `json:"time"`  // the aborting participant's clock, for people
	// Hint is the cause's own advice, when it has one (Hinted): the
	// requester's tools show it instead of the HRESULT's.
	Hint string `json:"hint,omitempty"`
}

// Err is the abort as an error carrying its HRESULT (and its hint).
func (a *Abort) Err() error {
	err := vsserr.New(vsserr.HRESULT(a.Code), "cluster set aborted by %s at %s: %s", a.By, a.Point, a.Message)
	if a.Hint != "" {
		return &Hinted{Err: err, Text: a.Hint}
	}
	return err
}

// NewAbort describes err, found by by at point of job.
func NewAbort(job *Job, by string, point Point, err error) Abort {
	a := Abort{By: by, Point: point, Code: uint32(vsserr.Code(err)), Message: vsserr.Message(err), Hosts: job.HostNames(),
		Time: time.Now().UTC().Format(time.RFC3339)}
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		a.Hint = h.Hint()
	}
	return a
}

// Deletion asks every host of a set to delete its part
// (sets/SET/delete); each reports at sets/SET/deleted/HOST, and the last
// to report removes the set's keys.
type Deletion struct {
	Hosts []string `json:"hosts"`
	By    string   `json:"by"`
	Time  string   `json:"time"`
}

// Complete is the requester's word that COMMAND ran (sets/SET/complete):
// the hosts call BackupComplete, telling their writers whether the backup
// of their host succeeded.
type Complete struct {
	Succeeded map[string]bool `json:"succeeded"`
	// ExitStatus is COMMAND's exit status for each host it ran for (128+N
	// when signal N ended it, -1 when it could not start), for the host's
	// archive.
	ExitStatus map[string]int `json:"exit_status,omitempty"`
}

// Record is a kept cluster set (sets/SET/record). Its parts carry no
// archives (see Part.Archive): the documents are in the cluster archive
// and in each host's catalog.
type Record struct {
	ID        uuid.UUID        `json:"id"`
	Created   time.Time        `json:"created"`
	Type      string           `json:"type"`
	Hosts     map[string]*Part `json:"hosts"`
	Requester string           `json:"requester"`
}

// Stored is the record as sets/SET/record holds it: its parts without
// their archives.
func (r *Record) Stored() Record {
	out := *r
	out.Hosts = make(map[string]*Part, len(r.Hosts))
	for h, p := range r.Hosts {
		c := *p
		c.Archive = nil
		out.Hosts[h] = &c
	}
	return out
}

// Consistency is "application" when every host's part is, else the
// weakest.
func (r *Record) Consistency() string {
	levels := make([]string, 0, len(r.Hosts))
	for _, h := range slices.Sorted(maps.Keys(r.Hosts)) {
		levels = append(levels, r.Hosts[h].Consistency)
	}
	return backupdoc.WeakestConsistency(levels...)
}

// Encode is a record as stored in etcd (JSON).
func Encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("cluster: encoding %T: %v", v, err)) // plain structs: cannot fail
	}
	return string(b)
}

// Decode reads a record stored at key.
func Decode(key string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return vsserr.Wrap(vsserr.Unexpected, err, "etcd key %s holds no valid record", key)
	}
	return nil
}
