package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/inplace"
)

// runCommand runs COMMAND with the snapshot environment: in place (in a
// private mount namespace with each snapshot over its original path) or
// as it is. Its exit status is recorded in run.command.
func (p *backupPlan) runCommand(ctx context.Context, run *backupRun) error {
	env := append(os.Environ(), snapshotEnv(run, p)...)
	var mounts []inplace.Mount
	if p.o.inPlace {
		mounts = make([]inplace.Mount, 0, len(run.snapshots))
		for _, s := range run.snapshots {
			mounts = append(mounts, inplace.Mount{Snapshot: s.DevicePath, Original: s.OriginalVolume})
		}
	}
	res, err := runTool(ctx, p.o.command, env, p.o.json, p.o.inPlace, mounts)
	run.command = res
	return err
}

// runTool runs a verb's COMMAND (lvss backup's, lvss restore's) with env,
// its standard streams lvss's own (standard output goes to standard error
// with --json, which leaves standard output to the one JSON summary). With
// inPlace it runs in a private mount namespace with mounts. Interrupting
// lvss ends it (package inplace: SIGTERM to its process group, SIGKILL
// after inplace.StopGrace), and what it started is ended when it exits,
// before lvss goes on. The result is never nil: its status is -1 when
// COMMAND did not start. The error is nil when COMMAND succeeded,
// ctx.Err() when lvss was interrupted, else a commandExit with the status
// lvss exits with.
func runTool(ctx context.Context, argv, env []string, jsonOut, inPlace bool, mounts []inplace.Mount) (*commandResult, error) {
	res := &commandResult{argv: argv, status: -1}
	var cmd *exec.Cmd
	if inPlace {
		c, err := inplace.Command(ctx, mounts, "", argv, env)
		if err != nil {
			res.err = err.Error()
			return res, commandExit{status: exitCannotRun, err: err}
		}
		cmd = c
	} else {
		cmd = inplace.Direct(ctx, argv, env)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if jsonOut {
		// Standard output carries the one JSON summary.
		cmd.Stdout = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		res.err = err.Error()
		return res, commandExit{status: exitCannotRun, err: fmt.Errorf("cannot start %s: %w", argv[0], err)}
	}
	err := cmd.Wait()
	// Whatever COMMAND started and left behind must not go on (reading
	// snapshots about to be released, writing files the writers are
	// about to be told about).
	_ = inplace.Signal(cmd, syscall.SIGKILL)
	// A COMMAND killed by a signal reports as a shell would: 128 + N.
	res.status = cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.status = 128 + int(ws.Signal())
		res.err = "killed by " + ws.Signal().String()
	}
	if ctx.Err() != nil {
		if res.err == "" {
			res.err = "interrupted"
		}
		return res, ctx.Err()
	}
	if err == nil {
		return res, nil
	}
	if res.err == "" {
		res.err = err.Error()
	}
	status := res.status
	if status == 2 || status <= 0 {
		status = 1 // 2 is lvss's usage error alone
	}
	return res, commandExit{status: status, err: fmt.Errorf("%s failed: %s", argv[0], res.err)}
}

// snapshotEnv is what COMMAND learns about the snapshot set.
func snapshotEnv(run *backupRun, p *backupPlan) []string {
	env := []string{
		"LVSS_SNAPSHOT_SET_ID=" + guidText(run.setID),
		fmt.Sprintf("LVSS_SNAPSHOT_COUNT=%d", len(run.snapshots)),
		"LVSS_BACKUP_TYPE=" + strings.ToLower(p.o.backupType),
	}
	for i, s := range run.snapshots {
		env = append(env, fmt.Sprintf("LVSS_SNAPSHOT_%d_ORIGINAL=%s", i+1, s.OriginalVolume),
			fmt.Sprintf("LVSS_SNAPSHOT_%d_PATH=%s", i+1, s.DevicePath))
	}
	if run.excludeFile != "" {
		env = append(env, "LVSS_EXCLUDE_FILE="+run.excludeFile)
	}
	return env
}

// excludeFormats write one writer exclusion (directory, filespec,
// recursive) as the lines of a tool's exclude file. dir is where COMMAND
// sees the directory. Every line names the directory absolutely, so each
// tool must be given absolute paths (rsync: --relative).
var excludeFormats = map[string]func(dir, spec string, recursive bool) []string{
	// restic --exclude-file: absolute glob patterns; '*' stops at '/',
	// '**' crosses directories. restic expands environment variables in
	// the file, "$$" being its literal '$'.
	"restic": func(dir, spec string, recursive bool) []string {
		return dollars(slashGlobs(dir, spec, recursive))
	},
	// borg --exclude-from: borg 1.2 matches paths without their leading
	// '/'; a regular expression says exactly "this directory only" or
	// "any depth".
	"borg": func(dir, spec string, recursive bool) []string {
		prefix := ""
		if d := strings.Trim(dir, "/"); d != "" {
			prefix = regexp.QuoteMeta(d) + "/"
		}
		if recursive {
			prefix += "(.*/)?"
		}
		return []string{"re:^" + prefix + globRegexp(spec) + "$"}
	},
	// tar --exclude-from: absolute patterns, for a tar given absolute
	// paths. GNU tar's '*' crosses '/' in exclusions by default, and no
	// pattern in the file can say otherwise (--no-wildcards-match-slash
	// would apply to the whole file and leave no way to say "any depth"),
	// so one pattern serves both: exact for recursive exclusions and for
	// filespecs without wildcards; a non-recursive filespec with a
	// wildcard also excludes its matches in subdirectories.
	"tar": func(dir, spec string, recursive bool) []string {
		return []string{globDir(dir) + globSpec(spec)}
	},
	// rsync --exclude-from: patterns anchored with a leading '/' at the
	// transfer root, which is '/' only with --relative (-R): the absolute
	// paths then match, and the destination holds the original paths.
	// '*' stops at '/', '**' crosses directories (and, unlike restic's,
	// does not match zero of them, hence two lines for a recursive one).
	"rsync": func(dir, spec string, recursive bool) []string {
		return slashGlobs(dir, spec, recursive)
	},
}

// excludeFormatNames lists the formats for messages and --help.
const excludeFormatNames = "restic, borg, tar or rsync"

// slashGlobs are the absolute patterns of an exclusion for matchers whose
// '*' stops at '/' and whose '**' crosses directories (restic, rsync).
func slashGlobs(dir, spec string, recursive bool) []string {
	d := globDir(dir)
	lines := []string{d + globSpec(spec)}
	if recursive {
		lines = append(lines, d+"**/"+globSpec(spec))
	}
	return lines
}

// globDir is dir quoted (globQuote) and ending in '/': what goes before a
// file name in a pattern ("/" for the root).
func globDir(dir string) string {
	return strings.TrimSuffix(globQuote(dir), "/") + "/"
}

// dollars doubles each '$', which restic would otherwise expand.
func dollars(lines []string) []string {
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(l, "$", "$$")
	}
	return lines
}

// globQuote makes a path match itself in restic's, GNU tar's and rsync's
// patterns, where '*', '?' and '[' are wildcards and '\' escapes. Each of
// them goes in brackets rather than after a backslash: tar and rsync
// compare a pattern without wildcards as plain text, backslashes included,
// and a bracket is a wildcard to all three. A ']' outside brackets is
// literal to all three (and "[]]" is an error to restic).
func globQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[':
			b.WriteString("[" + string(r) + "]")
		case '\\':
			b.WriteString(`[\\]`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// globSpec is a VSS filespec as a glob: its '*' and '?' stay wildcards,
// everything else is literal.
func globSpec(spec string) string {
	var b strings.Builder
	for _, r := range spec {
		if r == '*' || r == '?' {
			b.WriteRune(r)
		} else {
			b.WriteString(globQuote(string(r)))
		}
	}
	return b.String()
}

// globRegexp turns a VSS filespec ('*' and '?' wildcards, no '/') into a
// regular expression for one path element.
func globRegexp(spec string) string {
	var b strings.Builder
	for _, r := range spec {
		switch r {
		case '*':
			b.WriteString("[^/]*")
		case '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return b.String()
}

// writeExcludeFile writes the exclusions of the writers taking part
// (their WMD's EXCLUDE_FILES) as a temporary file in format, and returns
// its path ("" when no writer excludes anything). Each directory is named
// where COMMAND sees it: inside the snapshot that holds it.
func writeExcludeFile(format string, wmds map[uuid.UUID]*document.WriterMetadata, snaps []client.SnapshotProp) (string, error) {
	lines := excludeLines(format, wmds, func(dir string) string { return inSnapshot(dir, snaps) })
	if len(lines) == 0 {
		return "", nil
	}
	f, err := os.CreateTemp("", "lvss-exclude-*")
	if err != nil {
		return "", fmt.Errorf("exclude file: %w", err)
	}
	_, werr := io.WriteString(f, strings.Join(lines, "\n")+"\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("exclude file: %w", werr)
	}
	return f.Name(), nil
}

func excludeLines(format string, wmds map[uuid.UUID]*document.WriterMetadata, where func(string) string) []string {
	var lines []string
	for _, md := range wmds {
		for _, x := range md.ExcludeFiles {
			lines = append(lines, excludeFormats[format](where(filepath.Clean(x.Path)), x.Filespec, x.Recursive)...)
		}
	}
	slices.Sort(lines)
	return slices.Compact(lines)
}

// inSnapshot is where path is inside the snapshot holding it (the one
// whose original path is its longest prefix); path itself if none does.
func inSnapshot(path string, snaps []client.SnapshotProp) string {
	best := -1
	for i, s := range snaps {
		if within(path, s.OriginalVolume) && (best < 0 || len(s.OriginalVolume) > len(snaps[best].OriginalVolume)) {
			best = i
		}
	}
	if best < 0 {
		return path
	}
	rel, err := filepath.Rel(snaps[best].OriginalVolume, path)
	if err != nil {
		return path
	}
	return filepath.Join(snaps[best].DevicePath, rel)
}

// progress reports the phase on stderr when it is a terminal, and says
// nothing otherwise (logs of scheduled backups stay clean). While an
// operation takes longer than slowAfter it also says, every slowAfter,
// where each writer of the session is, so a user sees which one holds
// the backup up.
type progress struct {
	w       io.Writer
	conn    *client.Conn
	session uuid.UUID
}

// slowAfter is when an operation counts as slow enough to say who is
// being waited for.
const slowAfter = 3 * time.Second

func newProgress(w io.Writer) *progress {
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		return &progress{w: w}
	}
	return &progress{}
}

func (p *progress) say(msg string) {
	if p.w != nil {
		fmt.Fprintf(p.w, "lvss: %s...\n", msg)
	}
}

// wait is the package's wait with, on a terminal, word of the writers
// while the operation is slow. Listing writers sends them nothing (D16).
func (p *progress) wait(ctx context.Context, call string, start func(context.Context) (*client.Async, error)) error {
	if p.w == nil || p.conn == nil {
		return wait(ctx, call, start)
	}
	a, err := start(ctx)
	if err != nil {
		return failed(call, err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Wait(ctx) }()
	t := time.NewTicker(slowAfter)
	defer t.Stop()
	began := time.Now()
	for {
		select {
		case err := <-done:
			return failed(call, err)
		case <-t.C:
			lctx, cancel := context.WithTimeout(ctx, slowAfter)
			ws, err := p.conn.ListWriters(lctx)
			cancel()
			if err == nil {
				if s := writersIn(ws, p.session); s != "" {
					fmt.Fprintf(p.w, "lvss: %s has taken %s; writers: %s\n", call, time.Since(began).Round(time.Second), s)
				}
			}
		}
	}
}

// writersIn says where each writer taking part in session is.
func writersIn(ws []client.WriterInfo, session uuid.UUID) string {
	var parts []string
	for _, w := range ws {
		if w.LastSessionID == session && session != uuid.Nil {
			parts = append(parts, fmt.Sprintf("'%s' %s", w.Name, w.State))
		}
	}
	return strings.Join(parts, ", ")
}

// printBackup prints the summary: each snapshot with its consistency, each
// writer's final state, COMMAND's outcome.
func printBackup(out io.Writer, p *backupPlan, run *backupRun) error {
	if p.o.json {
		ws := make([]obj, 0, len(run.writers))
		for i, w := range run.writers {
			ws = append(ws, writerStatusObj(i, w, true))
		}
		o := obj{{"snapshot_set_id", guidText(run.setID)}, {"context", p.context.String()},
			{"backup_type", strings.ToLower(p.o.backupType)}, {"created", run.created},
			{"snapshots", shadowObjs(run.snapshots)}, {"writers", ws},
			{"writers_frozen_ms", millisOrNull(run.writersFrozen)}, {"freeze_held_ms", millisOrNull(run.fsHeld)}}
		if run.command != nil {
			o = o.add("command", obj{{"argv", run.command.argv}, {"exit_status", run.command.status}, {"error", run.command.err}})
		}
		if run.released != nil {
			o = o.add("deleted_snapshots", guidsText(run.released.DeletedSnapshots))
		}
		if p.retain != nil {
			var r any // null: retention did not run (the backup failed)
			if run.retention != nil {
				r = run.retention.object()
			}
			o = o.add("retention", r)
		}
		return writeObj(out, o.add("warnings", nonNil(run.warnings)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Snapshot set %s (%s, backup type %s)\n", guidText(run.setID), p.context, strings.ToLower(p.o.backupType))
	for _, s := range run.snapshots {
		fmt.Fprintf(&b, "   %s -> %s\n", s.OriginalVolume, s.DevicePath)
		fmt.Fprintf(&b, "      Consistency: %s", s.Consistency)
		if s.ConsistencyReason != "" {
			fmt.Fprintf(&b, " (%s)", s.ConsistencyReason)
		}
		b.WriteString("\n")
	}
	if p.context.Writers() {
		if len(run.writers) == 0 {
			b.WriteString("Writers: none took part\n")
		} else {
			b.WriteString("Writers:\n")
		}
		for _, w := range run.writers {
			fmt.Fprintf(&b, "   '%s': %s, last error %s", w.Name, w.State, w.Failure)
			if w.ApplicationMessage != "" {
				fmt.Fprintf(&b, " (%s)", w.ApplicationMessage)
			}
			b.WriteString("\n")
		}
		if run.writersFrozen > 0 {
			fmt.Fprintf(&b, "Writers held frozen: %s (first Freeze to last Thaw)\n", roundHeld(run.writersFrozen))
		}
	}
	if run.fsHeld > 0 {
		fmt.Fprintf(&b, "Filesystems held frozen: %s\n", roundHeld(run.fsHeld))
	}
	if c := run.command; c != nil {
		writeCommandLine(&b, c)
	}
	if run.released != nil && len(run.released.DeletedSnapshots) > 0 {
		fmt.Fprintf(&b, "Snapshots deleted at the end: %d\n", len(run.released.DeletedSnapshots))
	}
	if run.retention != nil {
		b.WriteString("Retention:\n")
		var r strings.Builder
		if err := run.retention.printRetention(&r); err != nil {
			return err
		}
		for _, l := range strings.SplitAfter(r.String(), "\n") {
			if l != "" {
				b.WriteString("   " + l)
			}
		}
	}
	for _, w := range run.warnings {
		fmt.Fprintf(&b, "Warning: %s\n", w)
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// writeCommandLine is the summary's line about COMMAND's outcome.
func writeCommandLine(b *strings.Builder, c *commandResult) {
	switch {
	case c.status == 0:
		fmt.Fprintf(b, "Command %s succeeded\n", c.argv[0])
	case c.status < 0:
		fmt.Fprintf(b, "Command %s did not run: %s\n", c.argv[0], c.err)
	case c.err != "" && !strings.HasPrefix(c.err, "exit status"):
		fmt.Fprintf(b, "Command %s ended with status %d (%s)\n", c.argv[0], c.status, c.err)
	default:
		fmt.Fprintf(b, "Command %s exited with status %d\n", c.argv[0], c.status)
	}
}

// millisOrNull is d in milliseconds for --json, nil (null) for 0: not
// known, or nothing was held.
func millisOrNull(d time.Duration) any {
	if d <= 0 {
		return nil
	}
	return float64(d) / float64(time.Millisecond)
}

// roundHeld keeps a hold time readable: microseconds under a second.
func roundHeld(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
