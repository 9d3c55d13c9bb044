package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/restoreopts"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// defaultNothingWritten is the exit status by which COMMAND says it wrote
// nothing (VSS_RS_NONE). No tool uses it for anything else that we know
// of: not sysexits' 64-78, not the shell's 126-165, not 1 and 2, which
// restic, tar and rsync use for their failures.
const defaultNothingWritten = 99

type restoreOptions struct {
	bcd                 string
	host                string
	components          []string
	target              string
	recoveryTarget      string
	options             []string
	additional          bool
	dryRun              bool
	allowWriterFailures bool
	allowIncomplete     bool
	nothingWritten      int
	json                bool
	command             []string
}

func newRestoreCommand(g *globalOptions) *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use:   "restore --bcd FILE [--host HOST] [--component NAME]... [flags] -- COMMAND [ARGS...]",
		Short: "Restore a backup with the writers taking part: PreRestore, COMMAND, PostRestore",
		Long: `Put a backup taken with 'lvss backup --bcd FILE' back, with the writers
whose components it holds taking part, as VSS does it: each writer is told
what is about to be restored (PreRestore: a database writer stops its
server, or refuses while it runs), COMMAND copies the files back (your
restore tool: restic restore, tar -x, a copy from a snapshot), and each
writer is told how the copy went (PostRestore: it brings its application
back, recovering it). vshadow's -r with -exec, in one command.

What is restored:
  --bcd FILE          the archive 'lvss backup --bcd FILE' wrote (required);
                      'lvss backup show FILE' lists its components
  --host HOST         with the archive of a cluster set ('lvss cluster backup
                      --bcd FILE'), the host whose part to restore (required
                      then): run lvss restore on that host, whose lvssd and
                      writers take part. With a single host's archive it may
                      only name the host the archive says it is of
  --component NAME    a component to restore (repeat); NAME is WRITER (all
                      its components), or WRITER:COMPONENT with COMPONENT
                      the component's logical path and name joined by '\'
                      or '/' (e.g. postgres:main, app:db/orders). WRITER is
                      the writer's name, instance name or class ID.
                      Default: every component the backup holds whose
                      backup succeeded.
  --allow-incomplete  also restore components whose backup did not succeed,
                      and archives written before the backup completed
                      (stage "snapshot"): their copy may be partial
Each component is restored by the running writer of its class and instance
name; one that is not running is VSS_E_OBJECT_NOT_FOUND before any writer
is told anything. Start the writer, or leave its components out.

Where the files go:
  --target original       where they were (the default)
  --target alternate:DIR  under DIR, each file at DIR followed by its
                          original path (/srv/db/x goes to DIR/srv/db/x).
                          Each writer is told of the new place
                          (AddNewTarget), which it must support
                          (VSS_BS_WRITER_SUPPORTS_NEW_TARGET). DIR must exist.
lvss copies nothing itself: COMMAND must put the files where
$LVSS_RESTORE_ROOT says ('/' for original).

What the writers are told:
  --recovery-target T     where a writer that can roll forward (PostgreSQL in
                          pitr mode) recovers to: time:TIMESTAMP, lsn:LSN,
                          name:RESTORE_POINT, or immediate
  --restore-option K=V    a restore option for the writers (repeat)
  --additional-restores   more restores follow (incrementals, logs): the
                          writers must not recover yet
Restore options reach every selected component as one string of KEY=VALUE
lines (SetRestoreOptions; docs/restore.md has the format): --recovery-target
time:T is recovery_target_time=T.

COMMAND runs after every writer accepted PreRestore, with:
  LVSS_RESTORE_ARCHIVE           FILE, absolute
  LVSS_HOST                      with --host, the host whose part is restored
  LVSS_RESTORE_TARGET            original or alternate
  LVSS_RESTORE_ROOT              / or DIR: extract there (tar -C, restic --target)
  LVSS_RESTORE_PATH_COUNT        how many directories are restored
  LVSS_RESTORE_PATH_<n>          the n-th, as it was backed up (n from 1)
  LVSS_RESTORE_PATH_<n>_TARGET   where it goes
  LVSS_COMPONENT_COUNT           how many components are restored
  LVSS_COMPONENT_<n>             the n-th, as WRITER:COMPONENT
  LVSS_COMPONENT_<n>_RESTORE_TARGET  its VSS_RT_* after PreRestore
  LVSS_RESTORE_OPTIONS           the restore options string
  LVSS_RESTORE_NOTHING_WRITTEN   the exit status meaning "nothing written"
  LVSS_SNAPSHOT_SET_ID, LVSS_SNAPSHOT_COUNT, LVSS_SNAPSHOT_<n>_ORIGINAL,
  LVSS_SNAPSHOT_<n>_PATH, LVSS_BACKUP_TYPE   the backup's, from FILE's
                                 manifest (a persistent snapshot may still
                                 be at _PATH)
COMMAND's exit status is what the writers are told (SetFileRestoreStatus
for every component, then PostRestore): 0 is VSS_RS_ALL (all files are
back); --nothing-written-status (default 99) is VSS_RS_NONE (nothing was
written: the writers bring their application back as it was); anything else
is VSS_RS_FAILED (some files may have been written). COMMAND's output goes
to lvss's (with --json, to standard error).

A writer that fails PreRestore stops the restore before COMMAND: every
component is reported VSS_RS_NONE, the writers get PostRestore, and lvss
exits 3; --allow-writer-failures runs COMMAND anyway. A restore cannot be
aborted (VSS has no AbortRestore): interrupting lvss restore before
PreRestore ends the session with nothing sent; after it, COMMAND is ended,
the writers are told VSS_RS_NONE (COMMAND had not started) or
VSS_RS_FAILED (it had), they get PostRestore, and lvss exits 130. Each
writer's documentation says what it leaves its application in then.

--dry-run shows what would be restored and which writers would be told,
and tells them nothing: it gathers the writers (Identify) and makes the
selection, then ends the session before PreRestore. It needs no COMMAND.

Exit status: 0 success; COMMAND's own status when it failed (2 becomes 1;
a signal, 128 + it; the nothing-written status too); 1 a VSS call failed,
or a writer failed at PostRestore; 2 bad command line; 3 a writer failed at
PreRestore and COMMAND did not run; 69 lvssd unreachable; 125 COMMAND
could not be started; 130 interrupted.`,
		Example: `  # what would be restored, and who would be told
  lvss restore --bcd /backup/srv.lvss --dry-run

  # tar: the backup was 'lvss backup --writer app --in-place --bcd /backup/srv.lvss
  #   -- tar -cf /backup/srv.tar /srv/app', with the original paths
  lvss restore --bcd /backup/srv.lvss -- tar -xf /backup/srv.tar -C /

  # restic, latest snapshot, into the original places or (alternate) under DIR
  lvss restore --bcd /backup/srv.lvss -- \
      sh -c 'restic restore latest --target "$LVSS_RESTORE_ROOT"'

  # one component, next to the original, to compare before replacing
  mkdir -p /srv/restored
  lvss restore --bcd /backup/srv.lvss --component postgres --target alternate:/srv/restored -- \
      sh -c 'restic restore latest --target "$LVSS_RESTORE_ROOT"'

  # PostgreSQL (pitr mode) to a point in time, from the backup's files
  lvss restore --bcd /backup/pg.lvss --recovery-target 'time:2026-12-06 13:56:59+00' -- \
      tar -xf /backup/pg.tar -C /

  # one host's part of a cluster set's archive, on that host
  lvss restore --bcd /backup/shop.cluster.tar --host db2 -- \
      sh -c 'restic restore latest --tag "lvss:$LVSS_SNAPSHOT_SET_ID" --host "$LVSS_HOST" --target /'

  # a script that finds nothing to restore says so: the writers get VSS_RS_NONE
  lvss restore --bcd /backup/srv.lvss -- \
      sh -c 'test -e /backup/srv.tar || exit "$LVSS_RESTORE_NOTHING_WRITTEN"; tar -xf /backup/srv.tar -C /'`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n := cmd.ArgsLenAtDash(); n != 0 && len(args) > 0 {
				return clierr.UsageError{Err: fmt.Errorf("unexpected argument %q: the restore command goes after --", args[0])}
			}
			o.command = args
			o.json = g.json
			return runRestore(cmd.Context(), g.socket, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.bcd, "bcd", "", "the backup archive 'lvss backup --bcd FILE' wrote")
	f.StringVar(&o.host, "host", "", "the host whose part of a cluster set's archive to restore ('lvss cluster backup --bcd FILE')")
	f.StringArrayVar(&o.components, "component", nil, "component to restore: WRITER or WRITER:COMPONENT (repeat; default all that were backed up)")
	f.StringVar(&o.target, "target", "original", "where the files go: original, or alternate:DIR")
	f.StringVar(&o.recoveryTarget, "recovery-target", "", "recover to time:TIMESTAMP, lsn:LSN, name:RESTORE_POINT or immediate")
	f.StringArrayVar(&o.options, "restore-option", nil, "restore option KEY=VALUE for the writers (repeat)")
	f.BoolVar(&o.additional, "additional-restores", false, "more restores follow: the writers must not recover yet")
	f.BoolVar(&o.dryRun, "dry-run", false, "show what would be restored and who would be told; tell no writer anything")
	f.BoolVar(&o.allowWriterFailures, "allow-writer-failures", false, "run COMMAND even if a writer failed PreRestore")
	f.BoolVar(&o.allowIncomplete, "allow-incomplete", false, "also restore components whose backup did not succeed")
	f.IntVar(&o.nothingWritten, "nothing-written-status", defaultNothingWritten, "COMMAND's exit status that means it wrote nothing (VSS_RS_NONE)")
	return cmd
}

// restorePlan is what the command line asks for, checked against the
// archive: the components to restore, where, with which options.
type restorePlan struct {
	o       restoreOptions
	archive *backupdoc.Archive
	path    string // --bcd, absolute
	// host is the host whose part of a cluster archive is restored
	// (--host); "" for a single host's archive without --host.
	host string
	// root is where the files go: "/" for the original place, DIR for
	// --target alternate:DIR.
	root      string
	alternate bool
	options   string // the restore options string
	picks     []*pick
	skipped   []skippedComponent
	warnings  []string
	conn      *client.Conn // for progress
}

// pick is one component selected for restore: its entry in the backup
// and, once the session has gathered the writers, the running writer that
// restores it.
type pick struct {
	wc     *document.WriterComponents
	c      *document.ComponentState
	writer string   // the backed-up writer's name
	paths  []string // the directories of its file sets, as backed up

	live   *liveWriter
	target vss.RestoreTarget // after PreRestore
	status vss.FileRestoreStatus
	// preFailure and postFailure are the component's failure messages
	// the writer left in PreRestore and PostRestore.
	preFailure, postFailure string
}

// name is how lvss restore names a component: WRITER:COMPONENT.
func (p *pick) name() string { return p.writer + ":" + componentPath(p.c.LogicalPath, p.c.Name) }

type skippedComponent struct {
	writer, component, reason string
}

// liveWriter is a writer gathered in the restore session.
type liveWriter struct {
	instance uuid.UUID
	md       *document.WriterMetadata
	status   *client.WriterStatus
}

func (o restoreOptions) plan() (*restorePlan, error) {
	if o.bcd == "" {
		return nil, usageWithHint{errors.New("restore needs --bcd FILE, the archive 'lvss backup --bcd FILE' wrote"),
			"back up with 'lvss backup --bcd FILE ...' to have one; see 'lvss restore --help'"}
	}
	if len(o.command) == 0 && !o.dryRun {
		return nil, usageWithHint{errors.New("restore runs a COMMAND that puts the files back: give one after --"),
			"for example: lvss restore --bcd FILE -- tar -xf backup.tar -C /; or --dry-run to see what would be restored"}
	}
	if o.nothingWritten <= 0 || o.nothingWritten > 255 || o.nothingWritten == 2 {
		return nil, clierr.UsageError{Err: fmt.Errorf("--nothing-written-status %d: say an exit status from 1 to 255, not 2", o.nothingWritten)}
	}
	p := &restorePlan{o: o, root: "/"}
	var err error
	if p.path, err = absPath(o.bcd); err != nil {
		return nil, err
	}
	switch {
	case o.target == "original":
	case strings.HasPrefix(o.target, "alternate:"):
		dir := strings.TrimPrefix(o.target, "alternate:")
		if dir == "" {
			return nil, clierr.UsageError{Err: errors.New("--target alternate:DIR needs the directory")}
		}
		if dir, err = absPath(dir); err != nil {
			return nil, err
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, usageWithHint{fmt.Errorf("--target %s: %s is not a directory", o.target, dir), "create it first (mkdir -p " + dir + ")"}
		}
		p.root, p.alternate = filepath.Clean(dir), true
	default:
		return nil, clierr.UsageError{Err: fmt.Errorf("--target %q: say original or alternate:DIR", o.target)}
	}
	opts, err := restoreOptionsOf(o.recoveryTarget, o.options)
	if err != nil {
		return nil, err
	}
	p.options = opts.String()
	a, c, err := backupdoc.ReadAnyFile(p.path)
	if err != nil {
		return nil, archiveError{err}
	}
	if a, err = p.hostPart(a, c); err != nil {
		return nil, err
	}
	p.archive = a
	if a.Manifest.Stage != backupdoc.StageBackupComplete {
		if !o.allowIncomplete {
			return nil, incompleteArchive{p.path, a.Manifest.Stage}
		}
		p.warnings = append(p.warnings, fmt.Sprintf("%s was written at stage %q, before the backup completed: its copy may be partial", p.path, a.Manifest.Stage))
	}
	if p.picks, p.skipped, err = selectComponents(a, o.components, o.allowIncomplete); err != nil {
		var se selectionError
		if errors.As(err, &se) {
			se.path = p.path
			return nil, se
		}
		return nil, err
	}
	for _, s := range p.skipped {
		p.warnings = append(p.warnings, fmt.Sprintf("%s:%s is not restored: %s", s.writer, s.component, s.reason))
	}
	return p, nil
}

// hostPart picks the archive to restore: a cluster archive's part of
// --host, which it needs, or the single host's archive, which --host may
// only name.
func (p *restorePlan) hostPart(a *backupdoc.Archive, c *backupdoc.ClusterArchive) (*backupdoc.Archive, error) {
	host := p.o.host
	if c == nil {
		if host != "" && host != a.Manifest.Host {
			return nil, usageWithHint{fmt.Errorf("--host %s: %s is the archive of one host, %s, not of a cluster set", host, p.path, a.Manifest.Host),
				"leave --host out to restore it, on the host it was taken on"}
		}
		p.host = host
		return a, nil
	}
	hosts := strings.Join(c.HostNames(), ", ")
	if host == "" {
		return nil, usageWithHint{fmt.Errorf("%s is the archive of cluster set %s, of hosts %s: say whose part to restore with --host HOST",
			p.path, guidText(c.Manifest.SnapshotSetID), hosts),
			"run lvss restore on that host (its lvssd and writers take part): lvss restore --bcd FILE --host HOST -- COMMAND"}
	}
	h := c.Host(host)
	if h == nil {
		return nil, usageWithHint{fmt.Errorf("--host %s: the cluster archive %s holds the parts of %s", host, p.path, hosts),
			"'lvss backup show " + p.path + "' lists each host's part"}
	}
	p.host = host
	return h.Archive, nil
}

// restoreOptionsOf builds the restore options from --recovery-target and
// --restore-option.
func restoreOptionsOf(recovery string, kvs []string) (restoreopts.Options, error) {
	opts := restoreopts.Options{}
	if recovery != "" {
		kind, v, _ := strings.Cut(recovery, ":")
		key, ok := map[string]string{"time": restoreopts.RecoveryTargetTime, "lsn": restoreopts.RecoveryTargetLSN,
			"name": restoreopts.RecoveryTargetName, "immediate": restoreopts.RecoveryTarget}[kind]
		switch {
		case !ok:
			return nil, clierr.UsageError{Err: fmt.Errorf("--recovery-target %q: say time:TIMESTAMP, lsn:LSN, name:RESTORE_POINT or immediate", recovery)}
		case kind == "immediate":
			if v != "" {
				return nil, clierr.UsageError{Err: fmt.Errorf("--recovery-target %q: immediate takes no value", recovery)}
			}
			v = "immediate"
		case v == "":
			return nil, clierr.UsageError{Err: fmt.Errorf("--recovery-target %q: give the %s after the colon", recovery, kind)}
		}
		opts[key] = v
	}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, clierr.UsageError{Err: fmt.Errorf("--restore-option %q: say KEY=VALUE", kv)}
		}
		if _, dup := opts[k]; dup {
			return nil, clierr.UsageError{Err: fmt.Errorf("--restore-option %q: %s is given twice (or also by --recovery-target)", kv, k)}
		}
		opts[k] = v
	}
	if err := opts.Validate(); err != nil {
		return nil, clierr.UsageError{Err: errors.New(vsserr.Message(err))}
	}
	return opts, nil
}

// incompleteArchive is an archive written before the backup completed.
type incompleteArchive struct {
	path  string
	stage backupdoc.Stage
}

func (e incompleteArchive) Error() string {
	return vsserr.New(vsserr.InvalidArg, "%s was written at stage %q, before the backup completed (BackupComplete): the backup command may not have finished its copy",
		e.path, e.stage).Error()
}
func (e incompleteArchive) Unwrap() error { return vsserr.InvalidArg }
func (e incompleteArchive) Hint() string {
	return "use the archive of a backup that completed, or restore this one anyway with --allow-incomplete"
}

// selectionError is a --component that names nothing restorable; its hint
// points at the archive's list.
type selectionError struct {
	err  error
	path string
}

func (e selectionError) Error() string { return e.err.Error() }
func (e selectionError) Unwrap() error { return e.err }
func (e selectionError) Hint() string {
	if errors.Is(e.err, vsserr.InvalidArg) {
		return "restore it anyway with --allow-incomplete, or leave it out"
	}
	return "'lvss backup show " + e.path + "' lists the components the backup holds"
}

// archiveWriter is a writer entry of the archive's BCD with the names it
// can be given by.
type archiveWriter struct {
	wc    *document.WriterComponents
	name  string
	names []string // name, instance name, class ID
}

func restorableWriters(a *backupdoc.Archive) []archiveWriter {
	out := make([]archiveWriter, 0, len(a.BCD.Writers))
	for i := range a.BCD.Writers {
		wc := &a.BCD.Writers[i]
		name := archiveWriterName(a, wc.InstanceID)
		names := []string{wc.WriterID.String()}
		if name != "" {
			names = append(names, name)
		}
		if wc.InstanceName != "" {
			names = append(names, wc.InstanceName)
		} else if mw := a.Manifest.Writer(wc.InstanceID); mw != nil && mw.InstanceName != "" {
			names = append(names, mw.InstanceName)
		}
		if name == "" {
			name = wc.WriterID.String()
		}
		out = append(out, archiveWriter{wc, name, names})
	}
	return out
}

// matchWriter reports whether spec names w: the whole of spec (all its
// components: rest is ""), or a prefix followed by ':' or '\' (rest is the
// component).
func (w archiveWriter) matchWriter(spec string) (rest string, ok bool) {
	for _, n := range w.names {
		if strings.EqualFold(spec, n) || strings.EqualFold(strings.Trim(spec, "{}"), n) {
			return "", true
		}
		for _, sep := range []string{":", `\`} {
			if len(spec) > len(n)+1 && strings.EqualFold(spec[:len(n)], n) && spec[len(n):len(n)+1] == sep {
				return spec[len(n)+1:], true
			}
		}
	}
	return "", false
}

// selectComponents picks the components of the archive to restore: those
// specs name, or by default every component whose backup succeeded (all
// of them with allowIncomplete). Only components the BCD holds can be
// restored: they are the ones the backup added explicitly (their set
// members come with them). skipped are the components left out of the
// default selection, and why.
func selectComponents(a *backupdoc.Archive, specs []string, allowIncomplete bool) ([]*pick, []skippedComponent, error) {
	ws := restorableWriters(a)
	newPick := func(w archiveWriter, c *document.ComponentState) *pick {
		return &pick{wc: w.wc, c: c, writer: w.name, paths: fileSetPaths(a.WMDs[w.wc.InstanceID], c.LogicalPath, c.Name)}
	}
	var picks []*pick
	var skipped []skippedComponent
	if len(specs) == 0 {
		for _, w := range ws {
			for i := range w.wc.Components {
				c := &w.wc.Components[i]
				if !c.BackupSucceeded && !allowIncomplete {
					skipped = append(skipped, skippedComponent{w.name, componentPath(c.LogicalPath, c.Name), "its backup did not succeed"})
					continue
				}
				picks = append(picks, newPick(w, c))
			}
		}
		if len(picks) == 0 {
			if len(skipped) > 0 {
				return nil, skipped, selectionError{vsserr.New(vsserr.InvalidArg, "no component's backup succeeded in %s: nothing to restore", a.Manifest.SnapshotSetID), ""}
			}
			return nil, nil, vsserr.New(vsserr.ObjectNotFound,
				"the backup has no writer components (it was taken without writers, or none took part): restore its files with your tool directly, no lvss restore is needed")
		}
		return picks, skipped, nil
	}
	seen := map[*document.ComponentState]bool{}
	for _, spec := range specs {
		found := false
		for _, w := range ws {
			rest, ok := w.matchWriter(spec)
			if !ok {
				continue
			}
			for i := range w.wc.Components {
				c := &w.wc.Components[i]
				full := componentPath(c.LogicalPath, c.Name)
				if rest != "" && rest != full && strings.ReplaceAll(rest, "/", `\`) != full {
					continue
				}
				found = true
				if !c.BackupSucceeded && !allowIncomplete {
					return nil, nil, selectionError{vsserr.New(vsserr.InvalidArg, "--component %s: the backup of %s:%s did not succeed, so its copy may be partial",
						spec, w.name, full), ""}
				}
				if !seen[c] {
					seen[c] = true
					picks = append(picks, newPick(w, c))
				}
			}
		}
		if !found {
			return nil, nil, selectionError{vsserr.New(vsserr.ObjectNotFound, "--component %s: the backup holds no such component (it holds %s)",
				spec, strings.Join(componentNames(ws), ", ")), ""}
		}
	}
	return picks, nil, nil
}

func componentNames(ws []archiveWriter) []string {
	var out []string
	for _, w := range ws {
		for _, c := range w.wc.Components {
			out = append(out, w.name+":"+componentPath(c.LogicalPath, c.Name))
		}
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// fileSetPaths are the directories of the file sets of a component and of
// the members of its set, as md declares them (nil md: none known).
func fileSetPaths(md *document.WriterMetadata, logicalPath, name string) []string {
	var out []string
	for _, f := range fileSets(md, logicalPath, name) {
		out = append(out, filepath.Clean(f.Path))
	}
	return outermost(out)
}

// fileSets are the file sets of a component and of the members of its set
// (the component's logical path and name as their logical path, or
// below), as AddNewTarget wants them: exactly as declared.
func fileSets(md *document.WriterMetadata, logicalPath, name string) []document.FileDesc {
	if md == nil {
		return nil
	}
	root := componentPath(logicalPath, name)
	var out []document.FileDesc
	for _, c := range md.Components {
		full := componentPath(c.LogicalPath, c.Name)
		if full != root && c.LogicalPath != root && !strings.HasPrefix(c.LogicalPath, root+`\`) {
			continue
		}
		for _, fl := range [][]document.FileDesc{c.Files, c.DatabaseFiles, c.DatabaseLogFiles} {
			out = append(out, fl...)
		}
	}
	return out
}

// told says which restore events a writer gets (vss-reference §3.2, L37):
// PreRestore unless it says VSS_WRE_NEVER; PostRestore after it, except
// for a VSS_WRE_IF_REPLACE_FAILS writer whose replace did not fail.
// replaceFailed is nil before the copy (then it says "if the replace
// fails").
func told(md *document.WriterMetadata, replaceFailed *bool) []string {
	if md == nil || md.RestoreMethod.WriterRestore == vss.WRENever {
		return []string{}
	}
	if md.RestoreMethod.WriterRestore != vss.WREIfReplaceFails {
		return []string{"PreRestore", "PostRestore"}
	}
	switch m := md.RestoreMethod.Method; {
	case m != vss.RMERestoreIfNotThere && m != vss.RMERestoreIfCanReplace:
		return []string{"PreRestore"}
	case replaceFailed == nil:
		return []string{"PreRestore", "PostRestore if the replace fails"}
	case *replaceFailed:
		return []string{"PreRestore", "PostRestore"}
	}
	return []string{"PreRestore"}
}

func runRestore(ctx context.Context, socket string, o restoreOptions, out, errOut io.Writer) error {
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
	run := &restoreRun{}
	pr := newProgress(errOut)
	err = client.Run(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		return p.session(ctx, bc, run, pr)
	})
	if ctx.Err() != nil {
		err = restoreInterrupted{run.preRestore, run.command != nil}
	}
	if run.selected || run.command != nil {
		if perr := printRestore(out, p, run); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

// notRunningError is components whose writer does not run now: none can be
// restored without it (vss-reference §2.2 step 6).
type notRunningError struct{ picks []*pick }

func (e notRunningError) Error() string {
	var names []string
	for _, p := range e.picks {
		names = append(names, p.name())
	}
	w := e.picks[0].wc
	who := fmt.Sprintf("'%s' (class %s", e.picks[0].writer, w.WriterID)
	if w.InstanceName != "" {
		who += ", instance name " + w.InstanceName
	}
	return vsserr.New(vsserr.ObjectNotFound, "%s: writer %s) is not running, and it restores them; no writer was told anything",
		strings.Join(names, ", "), who).Error()
}
func (e notRunningError) Unwrap() error { return vsserr.ObjectNotFound }
func (e notRunningError) Hint() string {
	return fmt.Sprintf("start the writer '%s' (lvss list writers shows those running), or leave its components out with --component", e.picks[0].writer)
}

// restoreVeto is a writer that failed PreRestore: the restore stopped
// before COMMAND (exit status 3, as writerFailure in lvss backup).
type restoreVeto struct{ writerFailure }

func (e restoreVeto) Error() string {
	return failedWriters(e.writers) + " (COMMAND was not run; the writers were told nothing was restored: VSS_RS_NONE, then PostRestore)"
}
func (e restoreVeto) Unwrap() error { return e.writerFailure }
func (e restoreVeto) Hint() string {
	return "see lvss list writers and the writer's log (it says why it refused, e.g. its application still runs); --allow-writer-failures runs COMMAND anyway"
}

// postRestoreFailure is a writer that failed PostRestore after the files
// were put back: its application may not be back (exit status 1).
type postRestoreFailure struct{ writers []client.WriterStatus }

func (e postRestoreFailure) Error() string {
	return failedWriters(e.writers) + " (the files were restored; the writer's application may need attention)"
}
func (e postRestoreFailure) Unwrap() error { return writerFailure(e).Unwrap() }
func (e postRestoreFailure) Hint() string {
	return "see the writer's log and its documentation for what it left its application in"
}

// restoreInterrupted is SIGINT or SIGTERM during lvss restore (exit 130).
type restoreInterrupted struct{ preRestore, commandRan bool }

func (e restoreInterrupted) Error() string {
	switch {
	case e.commandRan:
		return "interrupted: COMMAND was ended, the writers were told the restore failed (VSS_RS_FAILED, PostRestore), and the session was released"
	case e.preRestore:
		return "interrupted: COMMAND did not run, the writers were told nothing was restored (VSS_RS_NONE, PostRestore), and the session was released"
	}
	return "interrupted before PreRestore: no writer was told anything, and the session was released"
}
func (restoreInterrupted) Unwrap() error { return context.Canceled }
func (e restoreInterrupted) Hint() string {
	if e.commandRan {
		return "files may be half restored: each writer's documentation says what VSS_RS_FAILED leaves its application in; run the restore again"
	}
	return "run the restore again"
}
