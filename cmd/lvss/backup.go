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
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/internal/inplace"
	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

type backupOptions struct {
	paths               []string
	writers             []string
	excludeWriters      []string
	noWriters           bool
	backupType          string
	persistent          bool
	provider            string
	timeout             time.Duration
	allowWriterFailures bool
	inPlace             bool
	bcd                 string
	excludeFormat       string
	json                bool
	command             []string
	// keep, keepGiven and olderThan: retention after the backup, as
	// lvss delete shadows --keep/--older-than (only with --persistent).
	keep      int
	keepGiven bool
	olderThan string
}

func newBackupCommand(g *globalOptions) *cobra.Command {
	var o backupOptions
	cmd := &cobra.Command{
		Use:   "backup [--for PATH]... [--writer NAME]... [flags] [-- COMMAND [ARGS...]]",
		Short: "Take an application-consistent snapshot set and run a backup tool on it",
		Long: `Take one snapshot set with the writers taking part frozen around it, run
COMMAND (your backup tool) while the snapshots exist, tell the writers how the
backup went, and release everything: vshadow's create with -exec, in one
command.

What is snapshotted:
  --for PATH         a path to snapshot (repeat for several); relative paths are
                     taken from the current directory
  --writer NAME      a writer that must take part (repeat); NAME is its name,
                     instance name or class ID. The paths of its components are
                     snapshotted too, whatever --for says.
  --exclude-writer   a writer that must not take part (repeat)
  --no-writers       a crash-consistent snapshot: no writer is asked anything
With --for and no writer flag, every subscribed writer with a component on the
filesystem of a --for path takes part, and all its component paths are
snapshotted. A named writer that is not subscribed is an error before anything
is frozen.

The backup:
  --type TYPE        copy (default: the writers' backup history is left alone),
                     full, incremental, differential or log
  --persistent       keep the snapshots after the command (default: they are
                     deleted when it ends)
  --provider NAME    provider name or ID (default: lvssd chooses)
  --timeout D        bound for creating the snapshot set; while another set is
                     being created, lvss retries until then (default 10m)
  --keep N           with --persistent, after a successful backup delete the
                     older snapshots of this backup's volumes and context so
                     that the newest N stay ('lvss delete shadows --keep N')
  --older-than D     with --persistent, after a successful backup delete this
                     backup's volumes' snapshots of its context older than D
                     (e.g. 30d, 12h); with --keep, only those beyond the N
                     newest. Exposed snapshots are never deleted.
  --bcd FILE         write the backup's documents (the Backup Components
                     Document, every writer's metadata) and a manifest to
                     FILE, after the snapshot and again at the end: what a
                     restore needs. 'lvss backup show FILE' prints it.

COMMAND runs after the snapshot set exists. With --in-place it runs in a
private mount namespace where each snapshot is mounted read-only over its
original path, so the backup tool reads the snapshot and records the
original paths (root, or CAP_SYS_ADMIN, is needed; checked before anything
is frozen). Without it, COMMAND reads the snapshots where they are. Either
way it gets:
  LVSS_SNAPSHOT_SET_ID        the set's ID
  LVSS_SNAPSHOT_COUNT         how many snapshots it has
  LVSS_SNAPSHOT_<n>_ORIGINAL  the n-th snapshotted path (n from 1)
  LVSS_SNAPSHOT_<n>_PATH      where its content is in the snapshot
  LVSS_EXCLUDE_FILE           a file listing the files the writers exclude,
                              where COMMAND sees them, in
                              --exclude-file-format (restic: for restic
                              --exclude-file; borg: borg --exclude-from;
                              tar: tar --exclude-from, where a
                              non-recursive exclusion with a wildcard also
                              matches in subdirectories; rsync: rsync
                              --relative --exclude-from); unset when no
                              writer excludes anything
  LVSS_BACKUP_TYPE            the --type
COMMAND's output goes to lvss's (with --json, its standard output goes to
standard error, which leaves standard output to the JSON summary).
COMMAND's exit status decides what the writers are told (SetBackupSucceeded
for every component, then BackupComplete). Interrupting lvss backup ends
COMMAND and the session: nothing stays frozen, and auto-release snapshots are
deleted.

A writer that fails makes lvss backup fail before COMMAND runs, naming the
writer, the phase and the failure; with --allow-writer-failures COMMAND runs
anyway and the summary says which snapshots are only crash-consistent.

Exit status: 0 success; COMMAND's own status when it ran and failed (2
becomes 1); 1 a VSS call failed; 2 bad command line; 3 a writer failed and
COMMAND did not run; 69 lvssd unreachable; 75 another snapshot set was being
created past --timeout; 125 COMMAND could not be started (or, with
--in-place, the namespace could not be set up); 126 and 127 with --in-place:
COMMAND could not be run, or was not found; 130 interrupted.`,
		Example: `  # a consistent tar of /srv/data, read from the snapshot, paths as they are
  lvss backup --for /srv/data --in-place -- tar -cf /backup/data.tar /srv/data

  # without --in-place, from the snapshot's own path
  lvss backup --for /srv/data -- sh -c 'tar -C "$LVSS_SNAPSHOT_1_PATH" -cf /backup/data.tar .'

  # restic, recording /srv/data, with the writers' exclusions
  lvss backup --for /srv/data --in-place -- \
      sh -c 'restic backup --exclude-file "${LVSS_EXCLUDE_FILE:-/dev/null}" /srv/data'

  # an hourly restore point of /srv/data kept on the volume, the last 24 kept
  lvss backup --for /srv/data --persistent --keep 24

  # the PostgreSQL writer's files, whatever volume they are on, with restic
  lvss backup --writer postgres --in-place -- \
      sh -c 'restic backup --exclude-file "${LVSS_EXCLUDE_FILE:-/dev/null}" "$LVSS_SNAPSHOT_1_ORIGINAL"'`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n := cmd.ArgsLenAtDash(); n != 0 && len(args) > 0 {
				return clierr.UsageError{Err: fmt.Errorf("unexpected argument %q: the backup command goes after --", args[0])}
			}
			o.command = args
			o.json = g.json
			o.keepGiven = cmd.Flags().Changed("keep")
			return runBackup(cmd.Context(), g.socket, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.paths, "for", nil, "path to snapshot (repeat for several)")
	f.StringArrayVar(&o.writers, "writer", nil, "writer that must take part: name, instance name or class ID (repeat)")
	f.StringArrayVar(&o.excludeWriters, "exclude-writer", nil, "writer that must not take part (repeat)")
	f.BoolVar(&o.noWriters, "no-writers", false, "crash-consistent snapshot without writers")
	f.StringVar(&o.backupType, "type", "copy", "backup type: copy, full, incremental, differential or log")
	f.BoolVar(&o.persistent, "persistent", false, "keep the snapshots after the command")
	f.IntVar(&o.keep, "keep", 0, "with --persistent: then keep the newest N snapshots of each volume of the backup, in its context")
	f.StringVar(&o.olderThan, "older-than", "", "with --persistent: then delete the backup's volumes' snapshots older than DURATION (e.g. 30d)")
	f.StringVar(&o.provider, "provider", "", "provider name or ID (default: lvssd chooses)")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound for creating the snapshot set")
	f.BoolVar(&o.allowWriterFailures, "allow-writer-failures", false, "run COMMAND even if a writer failed")
	f.BoolVar(&o.inPlace, "in-place", false, "run COMMAND with each snapshot mounted over its original path (needs CAP_SYS_ADMIN)")
	f.StringVar(&o.bcd, "bcd", "", "write the backup's documents and manifest to FILE (see lvss backup show)")
	cmd.AddCommand(newBackupShowCommand(g))
	f.StringVar(&o.excludeFormat, "exclude-file-format", "restic", "syntax of $LVSS_EXCLUDE_FILE: "+excludeFormatNames)
	return cmd
}

// writerFailure is a writer that failed when --allow-writer-failures was
// not given: the backup stops before COMMAND.
type writerFailure struct{ writers []client.WriterStatus }

func (e writerFailure) Error() string {
	return failedWriters(e.writers) + " (the command was not run; --allow-writer-failures runs it on crash-consistent snapshots)"
}

// failedWriters says which writers failed, in which state, and why.
func failedWriters(ws []client.WriterStatus) string {
	var parts []string
	for _, w := range ws {
		s := fmt.Sprintf("writer '%s' failed: %s, %s", w.Name, w.State, w.Failure)
		if w.ApplicationMessage != "" {
			s += ": " + w.ApplicationMessage
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// Unwrap is the first writer's failure code, the HRESULT the error reports
// (its JSON form's "hresult").
func (e writerFailure) Unwrap() error {
	for _, w := range e.writers {
		if w.Failure.Failed() {
			return w.Failure
		}
	}
	return nil
}

// interrupted is SIGINT or SIGTERM; lvss exits 130.
type interrupted struct{ created bool }

func (e interrupted) Error() string {
	if e.created {
		return "interrupted: the writers were told the backup failed, and the session was released"
	}
	return "interrupted before the snapshot set existed: its creation was aborted and the session released"
}

func (interrupted) Unwrap() error { return context.Canceled }

// setInProgress is VSS_E_SNAPSHOT_SET_IN_PROGRESS that outlasted --timeout.
type setInProgress struct{ err error }

func (e setInProgress) Error() string { return e.err.Error() }
func (e setInProgress) Unwrap() error { return e.err }

// commandExit is COMMAND's own failure; lvss exits with its status.
type commandExit struct {
	status int
	err    error
}

func (e commandExit) Error() string { return e.err.Error() }
func (e commandExit) Unwrap() error { return e.err }

// Hint is the advice for env(1)'s statuses (internal/clierr): any other
// failure of COMMAND is its own to explain, above.
func (e commandExit) Hint() string {
	switch e.status {
	case 125:
		return "COMMAND could not be started (with --in-place: its namespace could not be set up; the line above says why)"
	case 126:
		return "COMMAND (or a command it ran) was found but could not be run: check that it is executable"
	case 127:
		return "COMMAND (or a command it ran) was not found: give its full path, or check $PATH"
	}
	return ""
}

var backupTypes = map[string]vss.BackupType{"copy": vss.BackupCopy, "full": vss.BackupFull,
	"incremental": vss.BackupIncremental, "differential": vss.BackupDifferential, "log": vss.BackupLog}

// backupPlan is what the command line asks for, checked and resolved.
type backupPlan struct {
	o          backupOptions
	paths      []string // --for, absolute, symlinks resolved
	btype      vss.BackupType
	context    vss.Context
	providerID uuid.UUID
	conn       *client.Conn   // for the event log (the archive's freeze time)
	retain     *deleteOptions // --keep/--older-than, or nil
}

func (o backupOptions) plan() (*backupPlan, error) {
	p := &backupPlan{o: o}
	if len(o.paths) == 0 && len(o.writers) == 0 {
		return nil, clierr.UsageError{Err: errors.New("backup needs --for PATH or --writer NAME (see lvss backup --help)")}
	}
	if o.noWriters && (len(o.writers) > 0 || len(o.excludeWriters) > 0) {
		return nil, clierr.UsageError{Err: errors.New("--no-writers takes no --writer or --exclude-writer")}
	}
	bt, ok := backupTypes[strings.ToLower(o.backupType)]
	if !ok {
		return nil, clierr.UsageError{Err: fmt.Errorf("--type %q: say copy, full, incremental, differential or log", o.backupType)}
	}
	p.btype = bt
	if _, ok := excludeFormats[o.excludeFormat]; !ok {
		return nil, clierr.UsageError{Err: fmt.Errorf("--exclude-file-format %q: say %s", o.excludeFormat, excludeFormatNames)}
	}
	if o.inPlace {
		if len(o.command) == 0 {
			return nil, clierr.UsageError{Err: errors.New("--in-place runs a COMMAND: give one after --")}
		}
		// Before anything is frozen.
		if err := inplace.Check(); err != nil {
			return nil, err
		}
	}
	if o.timeout <= 0 {
		return nil, clierr.UsageError{Err: fmt.Errorf("--timeout %s: must be positive", o.timeout)}
	}
	if o.keepGiven || o.olderThan != "" {
		if !o.persistent {
			return nil, usageWithHint{errors.New("--keep and --older-than prune the snapshots a backup keeps: they go with --persistent"),
				"without --persistent the snapshots are deleted when the backup ends; see 'lvss backup --help'"}
		}
		// Checked now, before anything is frozen; the volumes and the
		// context are the backup's, known once the set exists.
		d := deleteOptions{keep: o.keep, keepGiven: o.keepGiven, olderThan: o.olderThan}
		if _, err := d.validate(); err != nil {
			return nil, err
		}
		p.retain = &d
	}
	switch {
	case o.persistent && o.noWriters:
		p.context = vss.CtxNASRollback
	case o.persistent:
		p.context = vss.CtxAppRollback
	case o.noWriters:
		p.context = vss.CtxFileShareBackup
	default:
		p.context = vss.CtxBackup
	}
	for _, v := range o.paths {
		a, err := absPath(v)
		if err != nil {
			return nil, err
		}
		r, err := filepath.EvalSymlinks(a)
		if err != nil {
			return nil, clierr.UsageError{Err: fmt.Errorf("--for %s: %w", v, err)}
		}
		p.paths = append(p.paths, r)
	}
	return p, nil
}

// backupRun is what one lvss backup did, for the summary and the exit
// status. A set that exists is reported even if a later step failed.
type backupRun struct {
	setID     uuid.UUID
	created   bool
	writers   []client.WriterStatus // final status of the writers taking part
	snapshots []client.SnapshotProp
	// components are the components added, per writer instance, for
	// SetBackupSucceeded.
	components  []addedComponent
	excludeFile string
	command     *commandResult
	warnings    []string
	released    *client.Released
	// writersFrozen and fsHeld are how long writers and filesystems were
	// held frozen (0: not known or nothing was); holds reads them from the
	// event log entries after logMark of the session sessionID.
	writersFrozen, fsHeld time.Duration
	logMark               uint64
	sessionID             uuid.UUID
	// retention is what --keep/--older-than did after the backup.
	retention *deleteReport
}

type addedComponent struct {
	instance, writer uuid.UUID
	ctype            vss.ComponentType
	logicalPath      string
	name             string
}

type commandResult struct {
	argv   []string
	status int // -1: did not start
	err    string
}

func runBackup(ctx context.Context, socket string, o backupOptions, out, errOut io.Writer) error {
	p, err := o.plan()
	if err != nil {
		return err
	}
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return err // client.ErrUnreachable: exit status 69
	}
	defer conn.Close()
	p.conn = conn
	if p.providerID, err = resolveProvider(ctx, socket, o.provider); err != nil {
		return err
	}
	if p.context.Writers() {
		// A named writer that is not there is an error before anything
		// is frozen; listing writers sends them nothing (D16).
		ws, err := conn.ListWriters(ctx)
		if err != nil {
			return failed("ListWriters", err)
		}
		for _, name := range append(slices.Clone(o.writers), o.excludeWriters...) {
			if !slices.ContainsFunc(ws, func(w client.WriterInfo) bool { return writerMatches(name, w.Name, w.InstanceName, w.WriterID) }) {
				return vsserr.New(vsserr.ObjectNotFound, "no subscribed writer is named %q (subscribed: %s); see lvss list writers",
					name, writerNames(ws))
			}
		}
	}
	run := &backupRun{}
	progress := newProgress(errOut)
	err = client.Run(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		return p.session(ctx, bc, run, progress, errOut)
	})
	if ctx.Err() != nil {
		// Whatever a call said when the signal cut it short, what
		// happened is an interrupt, and the session was ended properly.
		err = interrupted{run.created}
	}
	if err == nil && run.created && p.retain != nil {
		err = p.prune(ctx, socket, run, errOut)
	}
	if run.created || run.command != nil {
		if perr := printBackup(out, p, run); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

// prune is --keep/--older-than: retention over the volumes of the set
// just made, in its context, once the session (which owned the new
// snapshots) is released. Its failure fails the backup's exit status: a
// schedule that stops pruning fills the volume.
func (p *backupPlan) prune(ctx context.Context, socket string, run *backupRun, errOut io.Writer) error {
	o := *p.retain
	o.context, o.quiet, o.json = p.context.String(), true, p.o.json
	for _, s := range run.snapshots {
		if !slices.Contains(o.forVols, s.OriginalVolume) {
			o.forVols = append(o.forVols, s.OriginalVolume)
		}
	}
	rep, err := runDelete(ctx, socket, o, nil, errOut)
	run.retention = rep
	if err != nil {
		run.warnings = append(run.warnings, "retention: "+err.Error())
	}
	return err
}

func writerMatches(name, wname, instanceName string, class uuid.UUID) bool {
	if strings.EqualFold(name, wname) || (instanceName != "" && name == instanceName) {
		return true
	}
	id, err := uuid.Parse(strings.Trim(name, "{}"))
	return err == nil && id == class
}

func writerNames(ws []client.WriterInfo) string {
	if len(ws) == 0 {
		return "none"
	}
	names := make([]string, len(ws))
	for i, w := range ws {
		names[i] = w.Name
	}
	return strings.Join(names, ", ")
}

// session is the requester sequence. Until DoSnapshotSet succeeds a
// failure is returned and client.Run aborts the creation; after it the
// writers are told how the backup went (BackupComplete) whatever happens.
func (p *backupPlan) session(ctx context.Context, bc *client.BackupComponents, run *backupRun, pr *progress, errOut io.Writer) error {
	writers := p.context.Writers()
	cctx, cancel := context.WithTimeout(ctx, p.o.timeout)
	defer cancel()
	if err := bc.InitializeForBackup(cctx, ""); err != nil {
		return failed("InitializeForBackup", err)
	}
	if pr.w != nil {
		pr.conn = p.conn
		pr.session, _ = bc.GetSessionID(cctx) // only for progress
	}
	if p.context != vss.CtxBackup {
		if err := bc.SetContext(cctx, p.context); err != nil {
			return failed("SetContext "+p.context.String(), err)
		}
	}
	paths := slices.Clone(p.paths)
	var wmds map[uuid.UUID]*document.WriterMetadata
	if writers {
		if err := bc.SetBackupState(cctx, true, false, p.btype, false); err != nil {
			return failed("SetBackupState", err)
		}
		pr.say("gathering writer metadata")
		if err := pr.wait(cctx, "GatherWriterMetadata", bc.GatherWriterMetadata); err != nil {
			return err
		}
		var err error
		wmds, err = p.selectWriters(cctx, bc, run)
		if err != nil {
			return err
		}
		for _, md := range wmds {
			paths = append(paths, componentPaths(md)...)
		}
	}
	paths = outermost(paths)
	if len(paths) == 0 {
		return vsserr.New(vsserr.ObjectNotFound, "nothing to snapshot: no --for path, and no writer taking part has a component")
	}
	pr.say("starting the snapshot set")
	setID, err := startSet(cctx, bc, errOut)
	if err != nil {
		return err
	}
	run.setID = setID
	ids := make([]uuid.UUID, 0, len(paths))
	for _, v := range paths {
		id, err := bc.AddToSnapshotSet(cctx, v, p.providerID)
		if err != nil {
			return failed("AddToSnapshotSet "+v, err)
		}
		ids = append(ids, id)
	}
	if writers {
		pr.say("preparing the writers (PrepareForBackup)")
		if err := pr.wait(cctx, "PrepareForBackup", bc.PrepareForBackup); err != nil {
			return err
		}
		if bad, err := p.writerStatus(cctx, bc, run); err != nil {
			return err
		} else if len(bad) > 0 && !p.o.allowWriterFailures {
			return writerFailure{bad}
		}
	}
	p.markLog(cctx, bc, run)
	pr.say("creating the snapshots (DoSnapshotSet)")
	if err := pr.wait(cctx, "DoSnapshotSet", bc.DoSnapshotSet); err != nil {
		return err
	}
	run.created = true

	// From here the snapshots exist: the writers are told how the backup
	// went, within a bound, even if lvss is interrupted (a second signal
	// still kills it).
	actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer acancel()
	var failedWriters []client.WriterStatus
	if writers {
		bad, err := p.writerStatus(actx, bc, run)
		if err != nil {
			return err
		}
		failedWriters = bad
	}
	for _, id := range ids {
		sp, err := bc.GetSnapshotProperties(actx, id)
		if err != nil {
			return failed("GetSnapshotProperties "+guidText(id), err)
		}
		run.snapshots = append(run.snapshots, sp)
	}
	p.holds(actx, run)
	p.writeArchive(actx, bc, run, wmds, backupdoc.StageSnapshot)
	var cmdErr error
	switch {
	case len(failedWriters) > 0 && !p.o.allowWriterFailures:
		cmdErr = writerFailure{failedWriters}
	case ctx.Err() != nil:
		cmdErr = ctx.Err()
	case len(p.o.command) > 0:
		ex, err := writeExcludeFile(p.o.excludeFormat, wmds, p.commandSees(run))
		if err != nil {
			return err
		}
		if ex != "" {
			defer os.Remove(ex)
		}
		run.excludeFile = ex
		pr.say("running " + p.o.command[0])
		cmdErr = p.runCommand(ctx, run)
	}
	if writers {
		ok := cmdErr == nil
		for _, c := range run.components {
			if err := bc.SetBackupSucceeded(actx, c.instance, c.writer, c.ctype, c.logicalPath, c.name, ok); err != nil {
				run.warnings = append(run.warnings, failed("SetBackupSucceeded", err).Error())
			}
		}
		pr.say("completing the backup (BackupComplete)")
		if err := pr.wait(actx, "BackupComplete", bc.BackupComplete); err != nil {
			run.warnings = append(run.warnings, err.Error())
		}
		if _, err := p.writerStatus(actx, bc, run); err != nil {
			run.warnings = append(run.warnings, err.Error())
		}
	}
	p.writeArchive(actx, bc, run, wmds, backupdoc.StageBackupComplete)
	if cmdErr != nil && p.o.persistent {
		// A failed backup leaves no persistent set behind to be taken for
		// a good one.
		if _, _, err := bc.DeleteSnapshots(actx, setID, vss.ObjectSnapshotSet, true); err != nil {
			run.warnings = append(run.warnings, failed("DeleteSnapshots", err).Error())
		}
	}
	rel, err := bc.Release(actx)
	if err == nil {
		run.released = &rel
	}
	return cmdErr
}

// commandSees is where COMMAND sees the snapshots: over the original
// paths with --in-place, else at their own paths.
func (p *backupPlan) commandSees(run *backupRun) []client.SnapshotProp {
	if p.o.inPlace {
		return nil
	}
	return run.snapshots
}

// selectWriters picks the writers taking part and adds their components
// (component mode): every top-level component, so that component sets
// come with their members (vss-reference §6.1). It returns their metadata
// by instance.
func (p *backupPlan) selectWriters(ctx context.Context, bc *client.BackupComponents, run *backupRun) (map[uuid.UUID]*document.WriterMetadata, error) {
	n, err := bc.GetWriterMetadataCount(ctx)
	if err != nil {
		return nil, failed("GetWriterMetadataCount", err)
	}
	var forMounts []mountinfo.Mount
	if ms, err := mountinfo.Read(); err == nil {
		for _, path := range p.paths {
			if m, err := mountinfo.Find(ms, path); err == nil {
				forMounts = append(forMounts, m)
			}
		}
	}
	out := map[uuid.UUID]*document.WriterMetadata{}
	found := map[string]bool{}
	for i := range n {
		inst, md, err := bc.GetWriterMetadata(ctx, i)
		if err != nil {
			return nil, failed("GetWriterMetadata", err)
		}
		id := md.Identity
		match := func(names []string) string {
			for _, name := range names {
				if writerMatches(name, id.FriendlyName, id.InstanceName, id.WriterID) {
					return name
				}
			}
			return ""
		}
		if match(p.o.excludeWriters) != "" {
			continue
		}
		take := false
		if len(p.o.writers) > 0 {
			if name := match(p.o.writers); name != "" {
				take, found[name] = true, true
			}
		} else {
			take = onMounts(componentPaths(md), forMounts)
		}
		if !take || len(md.Components) == 0 {
			continue
		}
		for _, c := range topComponents(md) {
			if err := bc.AddComponent(ctx, inst, id.WriterID, c.Type, c.LogicalPath, c.Name); err != nil {
				return nil, failed(fmt.Sprintf("AddComponent %s of writer '%s'", joinLogical(c.LogicalPath, c.Name), id.FriendlyName), err)
			}
			run.components = append(run.components, addedComponent{inst, id.WriterID, c.Type, c.LogicalPath, c.Name})
		}
		out[inst] = md
	}
	for _, name := range p.o.writers {
		if !found[name] {
			return nil, vsserr.New(vsserr.WriterNotResponding,
				"writer %q is subscribed but did not answer Identify for this backup; see lvss list writers", name)
		}
	}
	return out, nil
}

func joinLogical(path, name string) string {
	if path == "" {
		return name
	}
	return path + `\` + name
}

// topComponents are the components no other component of the writer
// contains: adding them includes the rest as members of their sets.
func topComponents(md *document.WriterMetadata) []document.Component {
	var out []document.Component
	for _, c := range md.Components {
		inside := false
		for _, d := range md.Components {
			root := joinLogical(d.LogicalPath, d.Name)
			if c.LogicalPath == root || strings.HasPrefix(c.LogicalPath, root+`\`) {
				inside = true
				break
			}
		}
		if !inside {
			out = append(out, c)
		}
	}
	return out
}

// componentPaths are the directories a writer's components name (the
// alternate path when it has one: that is where the files are read).
func componentPaths(md *document.WriterMetadata) []string {
	var out []string
	for _, c := range md.Components {
		for _, fl := range [][]document.FileDesc{c.Files, c.DatabaseFiles, c.DatabaseLogFiles} {
			for _, f := range fl {
				p := f.Path
				if f.AlternatePath != "" {
					p = f.AlternatePath
				}
				out = append(out, filepath.Clean(p))
			}
		}
	}
	return out
}

// onMounts reports whether any path is on the filesystem of one of the
// --for paths.
func onMounts(paths []string, mounts []mountinfo.Mount) bool {
	ms, err := mountinfo.Read()
	if err != nil {
		return false
	}
	for _, p := range paths {
		m, err := mountinfo.Find(ms, p)
		if err != nil {
			continue
		}
		for _, f := range mounts {
			if f.MountPoint == m.MountPoint && f.Device() == m.Device() {
				return true
			}
		}
	}
	return false
}

// outermost drops duplicates and paths inside another of the list: the
// snapshot of the outer one holds them.
func outermost(paths []string) []string {
	clean := make([]string, 0, len(paths))
	for _, p := range paths {
		clean = append(clean, filepath.Clean(p))
	}
	slices.Sort(clean)
	clean = slices.Compact(clean)
	var out []string
	for _, p := range clean {
		if !slices.ContainsFunc(out, func(o string) bool { return within(p, o) }) {
			out = append(out, p)
		}
	}
	return out
}

func within(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root+"/")
}

// startSet is StartSnapshotSet, retried with backoff while another
// session creates a set, until ctx's deadline (--timeout).
func startSet(ctx context.Context, bc *client.BackupComponents, errOut io.Writer) (uuid.UUID, error) {
	backoff := 100 * time.Millisecond
	told := false
	for {
		id, err := bc.StartSnapshotSet(ctx)
		if !errors.Is(err, vsserr.SnapshotSetInProgress) {
			return id, failed("StartSnapshotSet", err)
		}
		if !told {
			dl, _ := ctx.Deadline()
			fmt.Fprintf(errOut, "lvss: another snapshot set is being created; retrying until %s\n", dl.Format(time.TimeOnly))
			told = true
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return uuid.Nil, setInProgress{failed("StartSnapshotSet", err)}
			}
			return uuid.Nil, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// writerStatus refreshes the status of the writers taking part and
// returns those that failed.
func (p *backupPlan) writerStatus(ctx context.Context, bc *client.BackupComponents, run *backupRun) ([]client.WriterStatus, error) {
	if err := wait(ctx, "GatherWriterStatus", bc.GatherWriterStatus); err != nil {
		return nil, err
	}
	n, err := bc.GetWriterStatusCount(ctx)
	if err != nil {
		return nil, failed("GetWriterStatusCount", err)
	}
	taking := map[uuid.UUID]bool{}
	for _, c := range run.components {
		taking[c.instance] = true
	}
	run.writers = run.writers[:0]
	var bad []client.WriterStatus
	for i := range n {
		ws, err := bc.GetWriterStatus(ctx, i)
		if err != nil {
			return nil, failed("GetWriterStatus", err)
		}
		if !taking[ws.InstanceID] {
			continue
		}
		run.writers = append(run.writers, ws)
		if ws.State.Failed() || ws.Failure.Failed() {
			bad = append(bad, ws)
		}
	}
	return bad, nil
}
