package main

import (
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/client"
)

// What `lvss backup --bcd FILE` needs to fill the archive's manifest from
// what the client reports. backupdoc is in the spec layer and knows no
// client types, so the conversions live here, beside their one user.

// archiveSnapshots is the manifest's list of snapshots, from
// GetSnapshotProperties (or Query) of the set.
func archiveSnapshots(ps []client.SnapshotProp) []backupdoc.Snapshot {
	out := make([]backupdoc.Snapshot, 0, len(ps))
	for _, p := range ps {
		out = append(out, backupdoc.Snapshot{SnapshotID: p.SnapshotID, OriginalVolume: p.OriginalVolume,
			DevicePath: p.DevicePath, ProviderName: p.ProviderName, ProviderID: p.ProviderID, Created: p.Created,
			Consistency: p.Consistency, ConsistencyReason: p.ConsistencyReason})
	}
	return out
}

// archiveWriters is the manifest's list of writers, from GetWriterStatus
// after the step the archive is written at.
func archiveWriters(ws []client.WriterStatus) []backupdoc.Writer {
	out := make([]backupdoc.Writer, 0, len(ws))
	for _, w := range ws {
		out = append(out, backupdoc.Writer{InstanceID: w.InstanceID, WriterID: w.WriterID, Name: w.Name,
			InstanceName: w.InstanceName, State: w.State, Failure: w.Failure,
			ApplicationHRESULT: w.ApplicationHRESULT, ApplicationMessage: w.ApplicationMessage})
	}
	return out
}

// freezeHeld finds how long lvssd held the filesystems of a set frozen, in
// its event log ("filesystems held frozen", with the set and the duration):
// the requester API does not report it. 0 when the log does not say, which
// is also the case when no provider of the set needed a freeze.
func freezeHeld(events []client.LogEvent, setID uuid.UUID) time.Duration {
	for _, e := range events {
		if e.Message != "filesystems held frozen" || e.Fields["set"] != setID.String() {
			continue
		}
		if d, err := time.ParseDuration(e.Fields["held"]); err == nil && d > 0 {
			return d
		}
	}
	return 0
}
