package cluster

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

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
}

// Part is a host's part of a set: its snapshots and documents.
type Part struct {
	Snapshots []Snapshot `json:"snapshots"`
	// Consistency is "application" when every snapshot of the host's
	// part is.
	Consistency string `json:"consistency"`
	BCD         string `json:"bcd,omitempty"` // the host's Backup Components Document
	// WMDs are the metadata documents of the host's writers taking part.
	WMDs []string `json:"wmds,omitempty"`
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
}

// Err is the abort as an error carrying its HRESULT.
func (a *Abort) Err() error {
	return vsserr.New(vsserr.HRESULT(a.Code), "cluster set aborted by %s at %s: %s", a.By, a.Point, a.Message)
}

// NewAbort describes err, found by by at point of job.
func NewAbort(job *Job, by string, point Point, err error) Abort {
	return Abort{By: by, Point: point, Code: uint32(vsserr.Code(err)), Message: vsserr.Message(err), Hosts: job.HostNames(),
		Time: time.Now().UTC().Format(time.RFC3339)}
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
}

// Record is a kept cluster set (sets/SET/record).
type Record struct {
	ID        uuid.UUID        `json:"id"`
	Created   time.Time        `json:"created"`
	Type      string           `json:"type"`
	Hosts     map[string]*Part `json:"hosts"`
	Requester string           `json:"requester"`
}

// Consistency is "application" when every host's part is, else the
// weakest.
func (r *Record) Consistency() string {
	out := "application"
	for _, p := range r.Hosts {
		if p.Consistency != "application" {
			out = p.Consistency
		}
	}
	return out
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
