package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// restoreFinishTimeout bounds what lvss restore does after PreRestore,
// which it finishes even when interrupted (a restore cannot be aborted):
// PostRestore and the status calls. lvssd bounds each writer's event by
// its timeouts.restore (120 s by default), so this is only reached when
// lvssd itself stops answering.
const restoreFinishTimeout = 10 * time.Minute

// restoreRun is what one lvss restore did, for the summary.
type restoreRun struct {
	// selected: the components were selected in the session (the dry
	// run's result, and the point from which a summary is printed).
	selected   bool
	preRestore bool // PreRestore was sent
	live       []*liveWriter
	command    *commandResult
	// status is the file restore status reported for every component
	// (VSS_RS_UNDEFINED: none was reported).
	status   vss.FileRestoreStatus
	warnings []string
}

// session is the restore sequence (vss-reference §2.2). Until PreRestore a
// failure ends it with nothing sent to the writers but Identify; from
// PreRestore on, the writers are told how the copy went (PostRestore)
// whatever happens, within restoreFinishTimeout, even when lvss is
// interrupted.
func (p *restorePlan) session(ctx context.Context, bc *client.BackupComponents, run *restoreRun, pr *progress) error {
	a := p.archive
	if err := bc.InitializeForRestore(ctx, a.BCDXML); err != nil {
		return failed("InitializeForRestore", err)
	}
	if pr.w != nil {
		pr.conn = p.conn
		pr.session, _ = bc.GetSessionID(ctx) // only for progress
	}
	if err := bc.SetBackupState(ctx, a.BCD.SelectComponents, a.BCD.BootableSystemStateBackup, a.BCD.BackupType, a.BCD.PartialFileSupport); err != nil {
		return failed("SetBackupState", err)
	}
	pr.say("gathering writer metadata")
	if err := pr.wait(ctx, "GatherWriterMetadata", bc.GatherWriterMetadata); err != nil {
		return err
	}
	n, err := bc.GetWriterMetadataCount(ctx)
	if err != nil {
		return failed("GetWriterMetadataCount", err)
	}
	for i := range n {
		inst, md, err := bc.GetWriterMetadata(ctx, i)
		if err != nil {
			return failed("GetWriterMetadata", err)
		}
		run.live = append(run.live, &liveWriter{instance: inst, md: md})
	}
	if err := p.bind(run.live); err != nil {
		return err
	}
	if err := p.selectInSession(ctx, bc); err != nil {
		return err
	}
	run.selected = true
	if p.o.dryRun || ctx.Err() != nil {
		return ctx.Err()
	}

	// From PreRestore on the sequence runs to PostRestore: there is no
	// AbortRestore, and a writer that stopped its application for the
	// copy must be told to bring it back.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreFinishTimeout)
	defer cancel()
	pr.say("preparing the writers (PreRestore)")
	run.preRestore = true
	if err := pr.wait(actx, "PreRestore", bc.PreRestore); err != nil {
		return err
	}
	// Without the writers' status lvss cannot know that they are ready
	// for the copy: COMMAND does not run, and they hear VSS_RS_NONE.
	vetoed, statusErr := p.writerStatus(actx, bc, run)
	if err := p.readComponents(actx, bc); err != nil {
		run.warnings = append(run.warnings, err.Error())
	}
	if len(vetoed) > 0 && p.o.allowWriterFailures {
		run.warnings = append(run.warnings, failedWriters(vetoed)+"; --allow-writer-failures: COMMAND ran anyway")
	}
	var cmdErr error
	status := vss.RSNone
	switch {
	case statusErr != nil:
		cmdErr = statusErr
	case len(vetoed) > 0 && !p.o.allowWriterFailures:
		cmdErr = restoreVeto{writerFailure{writers: vetoed}}
	case ctx.Err() != nil:
		cmdErr = ctx.Err()
	default:
		pr.say("running " + p.o.command[0])
		env := append(os.Environ(), p.restoreEnv()...)
		run.command, cmdErr = runTool(ctx, p.o.command, env, p.o.json, false, nil)
		status = p.fileRestoreStatus(run.command, cmdErr)
	}
	run.status = status
	for _, pk := range p.picks {
		c := pk.c
		if err := bc.SetFileRestoreStatus(actx, pk.wc.WriterID, c.Type, c.LogicalPath, c.Name, status); err != nil {
			run.warnings = append(run.warnings, failed("SetFileRestoreStatus "+pk.name(), err).Error())
			continue
		}
		pk.status = status
	}
	pr.say("completing the restore (PostRestore)")
	if err := pr.wait(actx, "PostRestore", bc.PostRestore); err != nil {
		run.warnings = append(run.warnings, err.Error())
	}
	failedPost, err := p.writerStatus(actx, bc, run)
	if err != nil {
		run.warnings = append(run.warnings, err.Error())
	}
	if err := p.readComponents(actx, bc); err != nil {
		run.warnings = append(run.warnings, err.Error())
	}
	// A writer that failed PreRestore and was let through
	// (--allow-writer-failures) is still failed: that is not news.
	failedPost = slices.DeleteFunc(failedPost, func(w client.WriterStatus) bool {
		return slices.ContainsFunc(vetoed, func(v client.WriterStatus) bool { return v.InstanceID == w.InstanceID })
	})
	if cmdErr == nil && len(failedPost) > 0 {
		return postRestoreFailure{failedPost}
	}
	return cmdErr
}

// fileRestoreStatus is what COMMAND's outcome tells the writers: all
// files back, none written (its exit status said so), or a failure that
// may have written some.
func (p *restorePlan) fileRestoreStatus(res *commandResult, err error) vss.FileRestoreStatus {
	switch {
	case err == nil:
		return vss.RSAll
	case res != nil && res.status == p.o.nothingWritten && !errors.Is(err, context.Canceled):
		return vss.RSNone
	case res != nil && res.status < 0:
		return vss.RSNone // COMMAND never started: it wrote nothing
	}
	return vss.RSFailed
}

// bind finds, for every selected component, the running writer that
// restores it, as lvssd does (L37): the writer of the same class and
// instance name. Components whose writer does not run are an error before
// anything is selected.
func (p *restorePlan) bind(live []*liveWriter) error {
	var missing []*pick
	for _, pk := range p.picks {
		pk.live = nil
		for _, lw := range live {
			if lw.md.Identity.WriterID == pk.wc.WriterID && lw.md.Identity.InstanceName == pk.wc.InstanceName {
				pk.live = lw
				break
			}
		}
		if pk.live == nil {
			missing = append(missing, pk)
		}
	}
	if len(missing) > 0 {
		return notRunningError{missing}
	}
	return nil
}

// selectInSession makes the selection and the settings in the session:
// nothing of it reaches a writer before PreRestore.
func (p *restorePlan) selectInSession(ctx context.Context, bc *client.BackupComponents) error {
	if err := bc.SetRestoreState(ctx, vss.RestoreByCopy); err != nil {
		return failed("SetRestoreState", err)
	}
	for _, pk := range p.picks {
		c, w := pk.c, pk.wc.WriterID
		err := bc.SetSelectedForRestoreEx(ctx, w, c.Type, c.LogicalPath, c.Name, true, pk.wc.InstanceID)
		if errors.Is(err, vsserr.ObjectNotFound) {
			return notRunningOr(pk, failed("SetSelectedForRestore "+pk.name(), err))
		}
		if err != nil {
			return failed("SetSelectedForRestore "+pk.name(), err)
		}
		if p.options != "" {
			if err := bc.SetRestoreOptions(ctx, w, c.Type, c.LogicalPath, c.Name, p.options); err != nil {
				return failed("SetRestoreOptions "+pk.name(), err)
			}
		}
		if p.o.additional {
			if err := bc.SetAdditionalRestores(ctx, w, c.Type, c.LogicalPath, c.Name, true); err != nil {
				return failed("SetAdditionalRestores "+pk.name(), err)
			}
		}
		if p.alternate {
			// The running writer's file sets, exactly as it declares
			// them: AddNewTarget accepts nothing else.
			for _, f := range fileSets(pk.live.md, c.LogicalPath, c.Name) {
				err := bc.AddNewTarget(ctx, w, c.Type, c.LogicalPath, c.Name, f.Path, f.Filespec, f.Recursive, p.targetOf(f.Path))
				if err != nil {
					return newTargetError{pk, failed("AddNewTarget "+pk.name(), err)}
				}
			}
		}
	}
	return nil
}

// notRunningOr is lvss's own word for a component lvssd found no running
// writer for, with its hint; other VSS_E_OBJECT_NOT_FOUND are as lvssd
// says them.
func notRunningOr(pk *pick, err error) error {
	if strings.Contains(err.Error(), "is not running") {
		return notRunningError{[]*pick{pk}}
	}
	return err
}

// newTargetError is --target alternate refused for a component.
type newTargetError struct {
	pk  *pick
	err error
}

func (e newTargetError) Error() string { return e.err.Error() }
func (e newTargetError) Unwrap() error { return e.err }
func (e newTargetError) Hint() string {
	return fmt.Sprintf("writer '%s' cannot be told of a new place for its files: restore %s to its original place (--target original), or leave it out with --component",
		e.pk.writer, e.pk.name())
}

// targetOf is where a directory goes: itself, or under --target's DIR.
func (p *restorePlan) targetOf(path string) string {
	if !p.alternate {
		return path
	}
	return filepath.Join(p.root, path)
}

// writerStatus gathers the writers' status, keeps that of the writers
// restoring a selected component, and returns those that failed.
func (p *restorePlan) writerStatus(ctx context.Context, bc *client.BackupComponents, run *restoreRun) ([]client.WriterStatus, error) {
	if err := wait(ctx, "GatherWriterStatus", bc.GatherWriterStatus); err != nil {
		return nil, err
	}
	n, err := bc.GetWriterStatusCount(ctx)
	if err != nil {
		return nil, failed("GetWriterStatusCount", err)
	}
	var bad []client.WriterStatus
	for i := range n {
		ws, err := bc.GetWriterStatus(ctx, i)
		if err != nil {
			return nil, failed("GetWriterStatus", err)
		}
		taking := false
		for _, lw := range p.writersOf() {
			if lw.instance == ws.InstanceID {
				lw.status, taking = &ws, true
			}
		}
		if taking && (ws.State.Failed() || ws.Failure.Failed()) {
			bad = append(bad, ws)
		}
	}
	return bad, nil
}

// readComponents reads back what the writers left in the document for the
// selected components: the restore target they chose in PreRestore and
// their failure messages.
func (p *restorePlan) readComponents(ctx context.Context, bc *client.BackupComponents) error {
	n, err := bc.GetWriterComponentsCount(ctx)
	if err != nil {
		return failed("GetWriterComponentsCount", err)
	}
	for i := range n {
		wc, err := bc.GetWriterComponents(ctx, i)
		if err != nil {
			return failed("GetWriterComponents", err)
		}
		for _, pk := range p.picks {
			if pk.wc.InstanceID != wc.InstanceID && pk.live.instance != wc.InstanceID {
				continue
			}
			if c := wc.Component(pk.c.LogicalPath, pk.c.Name); c != nil {
				pk.target, pk.preFailure, pk.postFailure = c.RestoreTarget, c.PreRestoreFailureMsg, c.PostRestoreFailureMsg
			}
		}
	}
	return nil
}

// restoreEnv is what COMMAND learns about the restore (lvss restore --help
// lists it).
func (p *restorePlan) restoreEnv() []string {
	m := &p.archive.Manifest
	target := "original"
	if p.alternate {
		target = "alternate"
	}
	env := []string{
		"LVSS_RESTORE_ARCHIVE=" + p.path,
		"LVSS_RESTORE_TARGET=" + target,
		"LVSS_RESTORE_ROOT=" + p.root,
		"LVSS_RESTORE_OPTIONS=" + p.options,
		fmt.Sprintf("LVSS_RESTORE_NOTHING_WRITTEN=%d", p.o.nothingWritten),
		"LVSS_SNAPSHOT_SET_ID=" + guidText(m.SnapshotSetID),
		fmt.Sprintf("LVSS_SNAPSHOT_COUNT=%d", len(m.Snapshots)),
		"LVSS_BACKUP_TYPE=" + backupTypeWord(m.BackupType),
	}
	if p.host != "" {
		env = append(env, "LVSS_HOST="+p.host)
	}
	for i, s := range m.Snapshots {
		env = append(env, fmt.Sprintf("LVSS_SNAPSHOT_%d_ORIGINAL=%s", i+1, s.OriginalVolume),
			fmt.Sprintf("LVSS_SNAPSHOT_%d_PATH=%s", i+1, s.DevicePath))
	}
	paths := p.paths()
	env = append(env, fmt.Sprintf("LVSS_RESTORE_PATH_COUNT=%d", len(paths)))
	for i, d := range paths {
		env = append(env, fmt.Sprintf("LVSS_RESTORE_PATH_%d=%s", i+1, d), fmt.Sprintf("LVSS_RESTORE_PATH_%d_TARGET=%s", i+1, p.targetOf(d)))
	}
	env = append(env, fmt.Sprintf("LVSS_COMPONENT_COUNT=%d", len(p.picks)))
	for i, pk := range p.picks {
		env = append(env, fmt.Sprintf("LVSS_COMPONENT_%d=%s", i+1, pk.name()),
			fmt.Sprintf("LVSS_COMPONENT_%d_RESTORE_TARGET=%s", i+1, pk.target))
	}
	return env
}

// paths are the directories of every selected component, outermost only.
func (p *restorePlan) paths() []string {
	var all []string
	for _, pk := range p.picks {
		all = append(all, pk.paths...)
	}
	return outermost(all)
}

// backupTypeWord is a backup type as lvss backup --type spells it.
func backupTypeWord(bt vss.BackupType) string {
	for w, t := range backupTypes {
		if t == bt {
			return w
		}
	}
	return strings.ToLower(strings.TrimPrefix(bt.String(), "VSS_BT_"))
}

// writersOf are the running writers restoring selected components, once
// each, in the order of the components.
func (p *restorePlan) writersOf() []*liveWriter {
	var out []*liveWriter
	seen := map[uuid.UUID]bool{}
	for _, pk := range p.picks {
		if pk.live != nil && !seen[pk.live.instance] {
			seen[pk.live.instance] = true
			out = append(out, pk.live)
		}
	}
	return out
}

// replaceFailed is, for a writer, whether any of its selected components
// was not entirely put back: what decides whether a
// VSS_WRE_IF_REPLACE_FAILS writer gets PostRestore (L37). lvss records no
// alternate location mappings, the other evidence lvssd counts; a new
// target (--target alternate) is not one.
func (p *restorePlan) replaceFailed(lw *liveWriter) bool {
	for _, pk := range p.picks {
		if pk.live == lw && pk.status != vss.RSAll {
			return true
		}
	}
	return false
}

// printRestore prints the summary: the components and where they went,
// each writer's events and final state, COMMAND's outcome.
func printRestore(out io.Writer, p *restorePlan, run *restoreRun) error {
	m := &p.archive.Manifest
	target := "original"
	if p.alternate {
		target = "alternate"
	}
	events := func(lw *liveWriter) []string {
		if !run.preRestore {
			return told(lw.md, nil)
		}
		rf := p.replaceFailed(lw)
		return told(lw.md, &rf)
	}
	if p.o.json {
		comps := make([]obj, 0, len(p.picks))
		for _, pk := range p.picks {
			targets := make([]string, 0, len(pk.paths))
			for _, d := range pk.paths {
				targets = append(targets, p.targetOf(d))
			}
			o := obj{{"component", pk.name()}, {"writer", pk.writer}, {"writer_id", guidText(pk.wc.WriterID)},
				{"instance_name", pk.wc.InstanceName}, {"logical_path", pk.c.LogicalPath}, {"name", pk.c.Name},
				{"type", pk.c.Type.String()}, {"backup_succeeded", pk.c.BackupSucceeded},
				{"paths", nonNil(pk.paths)}, {"targets", targets}}
			var rt, rs any
			if run.preRestore {
				rt = pk.target.String()
			}
			if pk.status != vss.RSUndefined {
				rs = pk.status.String()
			}
			o = o.add("restore_target", rt).add("file_restore_status", rs).
				add("pre_restore_failure_msg", pk.preFailure).add("post_restore_failure_msg", pk.postFailure)
			comps = append(comps, o)
		}
		skipped := make([]obj, 0, len(p.skipped))
		for _, s := range p.skipped {
			skipped = append(skipped, obj{{"component", s.writer + ":" + s.component}, {"reason", s.reason}})
		}
		ws := make([]obj, 0)
		for _, lw := range p.writersOf() {
			o := obj{{"name", lw.md.Identity.FriendlyName}, {"instance_id", guidText(lw.instance)},
				{"writer_id", guidText(lw.md.Identity.WriterID)}, {"instance_name", lw.md.Identity.InstanceName},
				{"restore_method", lw.md.RestoreMethod.Method.String()}, {"writer_restore", lw.md.RestoreMethod.WriterRestore.String()},
				{"events", events(lw)}}
			if s := lw.status; s != nil {
				o = stateFields(o, "state", s.State)
				o = hrFields(o, "failure", s.Failure)
				o = hrFields(o, "application", s.ApplicationHRESULT).add("application_message", s.ApplicationMessage)
			}
			ws = append(ws, o)
		}
		var host any
		if p.host != "" {
			host = p.host
		}
		o := obj{{"archive", p.path}, {"host", host}, {"snapshot_set_id", guidText(m.SnapshotSetID)}, {"backup_type", backupTypeWord(m.BackupType)},
			{"stage", string(m.Stage)}, {"dry_run", p.o.dryRun}, {"target", target}, {"root", p.root},
			{"restore_options", p.options}, {"components", comps}, {"skipped", skipped}, {"writers", ws}}
		var rs any
		if run.status != vss.RSUndefined {
			rs = run.status.String()
		}
		o = o.add("file_restore_status", rs)
		if run.command != nil {
			o = o.add("command", obj{{"argv", run.command.argv}, {"exit_status", run.command.status}, {"error", run.command.err}})
		}
		return writeObj(out, o.add("warnings", nonNil(append(p.warnings, run.warnings...))))
	}

	var b strings.Builder
	if p.o.dryRun {
		b.WriteString("Dry run: nothing was sent to the writers but Identify.\n")
	}
	from := p.path
	if p.host != "" {
		from += " (host " + p.host + ")"
	}
	fmt.Fprintf(&b, "Restore of snapshot set %s (%s, backup type %s) from %s\n", guidText(m.SnapshotSetID), m.Time.Format(time.RFC3339),
		backupTypeWord(m.BackupType), from)
	fmt.Fprintf(&b, "Target: %s", target)
	if p.alternate {
		fmt.Fprintf(&b, " under %s", p.root)
	}
	b.WriteString("\n")
	if p.options != "" {
		fmt.Fprintf(&b, "Restore options: %s\n", strings.ReplaceAll(p.options, "\n", "; "))
	}
	b.WriteString("Components:\n")
	for _, pk := range p.picks {
		fmt.Fprintf(&b, "   %s\n", pk.name())
		for _, d := range pk.paths {
			if p.alternate {
				fmt.Fprintf(&b, "      %s -> %s\n", d, p.targetOf(d))
			} else {
				fmt.Fprintf(&b, "      %s\n", d)
			}
		}
		if run.preRestore {
			fmt.Fprintf(&b, "      Restore target: %s", pk.target)
			if pk.status != vss.RSUndefined {
				fmt.Fprintf(&b, ", file restore status: %s", pk.status)
			}
			b.WriteString("\n")
		}
		for _, msg := range []string{pk.preFailure, pk.postFailure} {
			if msg != "" {
				fmt.Fprintf(&b, "      Writer says: %s\n", msg)
			}
		}
	}
	b.WriteString("Writers:\n")
	for _, lw := range p.writersOf() {
		ev := events(lw)
		verb := "told"
		if !run.preRestore {
			verb = "would be told"
		}
		fmt.Fprintf(&b, "   '%s' (%s): ", lw.md.Identity.FriendlyName, lw.md.RestoreMethod.WriterRestore)
		if len(ev) == 0 {
			fmt.Fprintf(&b, "%s nothing", verb)
		} else {
			fmt.Fprintf(&b, "%s %s", verb, strings.Join(ev, ", "))
		}
		if s := lw.status; s != nil {
			fmt.Fprintf(&b, "; %s, last error %s", s.State, s.Failure)
			if s.ApplicationMessage != "" {
				fmt.Fprintf(&b, " (%s)", s.ApplicationMessage)
			}
		}
		b.WriteString("\n")
	}
	if c := run.command; c != nil {
		writeCommandLine(&b, c)
	}
	if run.status != vss.RSUndefined {
		fmt.Fprintf(&b, "File restore status: %s\n", run.status)
	}
	for _, w := range append(p.warnings, run.warnings...) {
		fmt.Fprintf(&b, "Warning: %s\n", w)
	}
	_, err := io.WriteString(out, b.String())
	return err
}
