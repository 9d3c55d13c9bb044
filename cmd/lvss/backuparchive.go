package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
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

// markLog notes, before DoSnapshotSet, where lvssd's event log ends and
// which session this is, so that holds reads only what was logged since,
// by this session: not the whole log, which holds up to limits.max_events
// entries (100,000 by default) and took longer to read than a snapshot
// takes to make (issue 14). Best effort, like holds.
func (p *backupPlan) markLog(ctx context.Context, bc *client.BackupComponents, run *backupRun) {
	if p.conn == nil {
		return
	}
	id, err := bc.GetSessionID(ctx)
	if err != nil {
		return
	}
	if _, last, err := p.conn.QueryEvents(ctx, client.EventFilter{Limit: 1, Newest: true}); err == nil {
		run.sessionID, run.logMark = id, last
	}
}

// holds reads from lvssd's event log how long the writers of the set were
// held frozen ("writers held frozen": first Freeze to last Thaw) and the
// filesystems ("filesystems held frozen": FIFREEZE to FITHAW around the
// provider commits): the requester API does not report either. Each is 0
// when the log does not say, which is also the case when nothing was
// frozen. Reading the log is best effort: the backup does not depend on it.
func (p *backupPlan) holds(ctx context.Context, run *backupRun) {
	if p.conn == nil || run.sessionID == uuid.Nil {
		return
	}
	evs, _, err := p.conn.QueryEvents(ctx, client.EventFilter{AfterSeq: run.logMark, SessionID: run.sessionID})
	if err != nil {
		return
	}
	run.writersFrozen = heldFor(evs, run.setID, "writers held frozen")
	run.fsHeld = heldFor(evs, run.setID, "filesystems held frozen")
}

// heldFor is the duration of the event log entry msg about set setID.
func heldFor(events []client.LogEvent, setID uuid.UUID, msg string) time.Duration {
	for _, e := range events {
		if e.Message != msg || e.Fields["set"] != setID.String() {
			continue
		}
		if d, err := time.ParseDuration(e.Fields["held"]); err == nil && d > 0 {
			return d
		}
	}
	return 0
}

// writeArchive writes --bcd FILE for the stage the backup reached: the
// Backup Components Document as lvssd has it now, the metadata of every
// writer taking part, and the manifest. A failure is a warning: the
// backup itself is not lost for it, and the summary says so.
func (p *backupPlan) writeArchive(ctx context.Context, bc *client.BackupComponents, run *backupRun,
	wmds map[uuid.UUID]*document.WriterMetadata, stage backupdoc.Stage) {
	if p.o.bcd == "" {
		return
	}
	warn := func(err error) { run.warnings = append(run.warnings, fmt.Sprintf("--bcd %s: %v", p.o.bcd, err)) }
	bcd, err := bc.SaveAsXML(ctx)
	if err != nil {
		warn(failed("SaveAsXML", err))
		return
	}
	docs := make(map[uuid.UUID]string, len(wmds))
	for inst, md := range wmds {
		x, err := md.Marshal()
		if err != nil {
			warn(err)
			return
		}
		docs[inst] = string(x)
	}
	host, _ := os.Hostname()
	m := backupdoc.Manifest{Stage: stage, LvssVersion: lvssVersion(), Host: host, Time: time.Now().UTC(),
		SnapshotSetID: run.setID, Context: p.context, BackupType: p.btype, Command: p.o.command,
		Snapshots: archiveSnapshots(run.snapshots), Writers: archiveWriters(run.writers)}
	if stage == backupdoc.StageBackupComplete && run.command != nil {
		status := run.command.status
		m.ExitStatus = &status
	}
	m.FreezeHeld, m.WritersFrozen = run.fsHeld, run.writersFrozen
	if err := backupdoc.WriteFile(p.o.bcd, m, bcd, docs); err != nil {
		warn(err)
	}
}

// lvssVersion is the module version lvss was built from ("(devel)" for a
// build from a checkout).
func lvssVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(unknown)"
}
