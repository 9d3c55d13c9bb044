package cluster

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vsserr"
)

// TestRecordStoredHasNoArchives: the record kept in etcd carries each
// host's snapshots and consistency, never its archive, whose size would
// add up over the hosts; the result in memory keeps them.
func TestRecordStoredHasNoArchives(t *testing.T) {
	r := Record{ID: uuid.New(), Hosts: map[string]*Part{
		"a": {Consistency: "application", Snapshots: []Snapshot{{ID: uuid.New()}}, Archive: []byte("tar of a")},
		"b": {Consistency: "application", Archive: []byte("tar of b")},
	}}
	stored := r.Stored()
	for h, p := range stored.Hosts {
		if p.Archive != nil {
			t.Errorf("stored record keeps %s's archive", h)
		}
	}
	if string(r.Hosts["a"].Archive) != "tar of a" || len(stored.Hosts["a"].Snapshots) != 1 {
		t.Errorf("Stored changed the record, or lost the snapshots")
	}
	if strings.Contains(Encode(stored), "archive") {
		t.Errorf("encoded record: %s", Encode(stored))
	}
}

// TestRecordConsistency: the weakest host's, whatever the map's order.
func TestRecordConsistency(t *testing.T) {
	r := Record{Hosts: map[string]*Part{"a": {Consistency: "crash"}, "b": {Consistency: "none"}, "c": {Consistency: "application"}}}
	for range 20 {
		if got := r.Consistency(); got != "none" {
			t.Fatalf("consistency %q, want none", got)
		}
	}
	if got := (&Record{Hosts: map[string]*Part{"a": {Consistency: "application"}}}).Consistency(); got != "application" {
		t.Errorf("one application host: %q", got)
	}
}

// TestArchiveInArrival: an archive travels as base64 in the arrival's
// JSON, and one too large for an etcd value is refused with
// E_INVALIDARG and advice, which an abort carries to the requester.
func TestArchiveInArrival(t *testing.T) {
	arch := []byte("\x00\x01 any bytes \xff")
	v := Encode(Arrival{Host: "a", Part: &Part{Archive: arch}})
	var back Arrival
	if err := json.Unmarshal([]byte(v), &back); err != nil || string(back.Part.Archive) != string(arch) {
		t.Fatalf("archive read back %q, %v", back.Part.Archive, err)
	}
	big := &Part{Archive: make([]byte, MaxValue*3/4)}
	if n := ArrivalSize("a", big); n <= MaxValue {
		t.Errorf("an arrival with an archive of %d bytes is %d, want more than %d", len(big.Archive), n, MaxValue)
	}
	err := ArchiveTooLarge("db2", 2<<20, 3<<20)
	var h *Hinted
	if vsserr.Code(err) != vsserr.InvalidArg || !errors.As(err, &h) || !strings.Contains(err.Error(), "host db2's backup archive") {
		t.Fatalf("%v", err)
	}
	job := &Job{ID: uuid.New(), Hosts: map[string]HostJob{"db1": {}, "db2": {}}}
	a := NewAbort(job, "db2", Prepared, err)
	var back2 Abort
	if err := json.Unmarshal([]byte(Encode(a)), &back2); err != nil {
		t.Fatal(err)
	}
	aerr := back2.Err()
	if vsserr.Code(aerr) != vsserr.InvalidArg || !errors.As(aerr, &h) || h.Hint() != a.Hint || a.Hint == "" ||
		!strings.Contains(aerr.Error(), "cluster set aborted by db2 at prepared: host db2's backup archive") {
		t.Errorf("abort read back: %v (hint %q)", aerr, a.Hint)
	}
	if err := (&Abort{Code: uint32(vsserr.Fail), Message: "x"}).Err(); errors.As(err, &h) {
		t.Errorf("an abort without a hint has one: %v", err)
	}
}

// TestTakeParts: the requester takes every host's part at snapshotted,
// and with archives asked for, refuses a host that sent none.
func TestTakeParts(t *testing.T) {
	arrived := map[string]*Arrival{"a": {Part: &Part{Consistency: "application", Archive: []byte("x")}}, "b": {Part: &Part{}}}
	res := &Result{Record: Record{Hosts: map[string]*Part{}}}
	o := &BackupOptions{}
	if all, err := o.takeParts(res, arrived, Snapshotted); err != nil || !all || len(res.Hosts) != 2 {
		t.Fatalf("%v %v", err, res.Hosts)
	}
	o.Archives = true
	if _, err := o.takeParts(res, arrived, Snapshotted); err == nil || !strings.Contains(err.Error(), "host b published no backup archive at snapshotted") {
		t.Errorf("a host without its archive: %v", err)
	}
	if _, err := o.takeParts(res, map[string]*Arrival{"a": {}}, Snapshotted); err == nil || !strings.Contains(err.Error(), "host a published no part") {
		t.Errorf("a host without its part: %v", err)
	}
	// At completed, a host that could not build its final archive says
	// why: a warning, its part of snapshotted kept, and no final write.
	all, err := o.takeParts(res, map[string]*Arrival{"a": {Part: &Part{Archive: []byte("y")}},
		"b": {Part: &Part{ArchiveError: "too large"}}}, Completed)
	if err != nil || all || string(res.Hosts["a"].Archive) != "y" || res.Hosts["b"].ArchiveError != "" ||
		len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "host b sent no backup archive after BackupComplete (too large)") {
		t.Errorf("completed, b without its archive: %v %v %+v %q", err, all, res.Hosts["b"], res.Warnings)
	}
	// At completed, without archives, a host brings nothing new.
	o.Archives = false
	if _, err := o.takeParts(res, map[string]*Arrival{"a": {}}, Completed); err != nil || res.Hosts["a"].Archive == nil {
		t.Errorf("completed without archives: %v", err)
	}
}
