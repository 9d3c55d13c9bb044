package agent

import (
	"bytes"
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/cluster"
	"github.com/lvss/lvss/internal/coordinator"
)

// The host's own backup archive, for a cluster archive (--bcd): exactly
// what lvss backup --bcd would write on this host for this set, built
// here because only the host has its documents, its writers' state and
// its hold times. It travels to the requester in the host's arrival, so
// it must fit in one etcd value (cluster.MaxValue).

// documents are the host's Backup Components Document as it is now and
// the metadata documents of its writers taking part, by instance: in
// component mode those with components in the BCD, else every writer
// gathered (all take part, D14). taking says which instances take part.
func (p *part) documents() (string, map[uuid.UUID]string, map[uuid.UUID]bool, error) {
	bcd, err := p.s.SaveAsXML()
	if err != nil {
		return "", nil, nil, err
	}
	doc, err := document.ParseBackupComponents([]byte(bcd))
	if err != nil {
		return "", nil, nil, err
	}
	mds, err := p.s.GetWriterMetadata()
	if err != nil {
		return "", nil, nil, err
	}
	taking := map[uuid.UUID]bool{}
	if doc.SelectComponents {
		for _, w := range doc.Writers {
			if len(w.Components) > 0 {
				taking[w.InstanceID] = true
			}
		}
	} else {
		for _, m := range mds {
			taking[m.InstanceID] = true
		}
	}
	wmds := map[uuid.UUID]string{}
	for _, m := range mds {
		if taking[m.InstanceID] {
			wmds[m.InstanceID] = string(m.XML)
		}
	}
	return bcd, wmds, taking, nil
}

// documentsFit refuses, before anything is frozen, documents whose
// archive could not go through etcd: the archive is at least its
// documents and a tar header each, and base64 makes it a third larger.
func (p *part) documentsFit() error {
	bcd, wmds, _, err := p.documents()
	if err != nil {
		return err
	}
	size := len(bcd) + 2*512
	for _, x := range wmds {
		size += len(x) + 512
	}
	if stored := (size + 2) / 3 * 4; stored > cluster.MaxValue {
		return cluster.ArchiveTooLarge(p.a.opt.Host, size, stored)
	}
	return nil
}

// fits refuses a part whose arrival etcd would not take.
func (p *part) fits(pr *cluster.Part) error {
	if n := cluster.ArrivalSize(p.a.opt.Host, pr); n > cluster.MaxValue {
		return cluster.ArchiveTooLarge(p.a.opt.Host, len(pr.Archive), n)
	}
	return nil
}

// archive builds the host's archive at stage: its manifest (this host's
// cluster name, the cluster set's ID, the context, the backup type,
// COMMAND and, after BackupComplete, its exit status here, the hold
// times, the snapshots, the writers taking part in their state now), its
// Backup Components Document and its writers' metadata.
func (p *part) archive(ctx context.Context, stage backupdoc.Stage, exitStatus *int) ([]byte, error) {
	if err := p.wait(ctx, "GatherWriterStatus", p.s.GatherWriterStatus); err != nil {
		return nil, err
	}
	ws, err := p.s.GetWriterStatus()
	if err != nil {
		return nil, err
	}
	bcd, wmds, taking, err := p.documents()
	if err != nil {
		return nil, err
	}
	job := p.set.Job
	m := backupdoc.Manifest{Stage: stage, LvssVersion: p.a.opt.Version, Host: p.a.opt.Host, Time: time.Now().UTC(),
		SnapshotSetID: job.ID, Context: p.sctx, BackupType: p.bt, Command: job.Command}
	if len(job.Command) > 0 {
		m.ExitStatus = exitStatus
	}
	m.FreezeHeld, m.WritersFrozen = p.holds()
	for _, sn := range p.props {
		m.Snapshots = append(m.Snapshots, backupdoc.Snapshot{SnapshotID: sn.ID, OriginalVolume: sn.OriginalVolume,
			DevicePath: sn.DevicePath, ProviderName: sn.ProviderName, ProviderID: sn.ProviderID, Created: sn.Created,
			Consistency: string(sn.Consistency), ConsistencyReason: sn.ConsistencyReason})
	}
	for _, w := range ws {
		if !taking[w.InstanceID] {
			continue
		}
		m.Writers = append(m.Writers, backupdoc.Writer{InstanceID: w.InstanceID, WriterID: w.ClassID, Name: w.Name,
			InstanceName: w.InstanceName, State: w.State, Failure: w.Failure, ApplicationHRESULT: w.AppHRESULT,
			ApplicationMessage: w.AppMessage})
	}
	var b bytes.Buffer
	if err := backupdoc.Write(&b, m, bcd, wmds); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// markLog notes where the event log ends before DoSnapshotSet, so that
// holds reads only this session's entries since (as lvss backup does,
// L49).
func (p *part) markLog() {
	if _, last, err := p.a.opt.Coord.QueryEvents(coordinator.EventFilter{Limit: 1, Newest: true}); err == nil {
		p.logMark, p.marked = last, true
	}
}

// holds is how long the set held the filesystems and the writers frozen,
// from the coordinator's event log: 0 when it does not say (nothing was
// frozen, or the log was not read). Best effort, as in lvss backup.
func (p *part) holds() (fs, writers time.Duration) {
	if !p.marked {
		return 0, 0
	}
	evs, _, err := p.a.opt.Coord.QueryEvents(coordinator.EventFilter{AfterSeq: p.logMark, Session: p.s.ID()})
	if err != nil {
		return 0, 0
	}
	for _, e := range evs {
		if e.Fields["set"] != p.set.Job.ID.String() {
			continue
		}
		d, err := time.ParseDuration(e.Fields["held"])
		if err != nil || d <= 0 {
			continue
		}
		switch e.Message {
		case "filesystems held frozen":
			fs = d
		case "writers held frozen":
			writers = d
		}
	}
	return fs, writers
}
