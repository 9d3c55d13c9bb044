package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

type deleteOptions struct {
	shadow, set        string
	forVols            []string
	oldest, all, quiet bool
	keep               int
	keepGiven          bool
	maxPerVolume       int
	maxGiven           bool
	olderThan, context string
	dryRun             bool
	json               bool
}

func newDeleteCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete shadow copies (like vssadmin delete shadows)",
		Long:  `Delete snapshots kept by lvssd, like 'vssadmin delete shadows'.`,
		Example: `  lvss delete shadows --for /srv --oldest
  lvss delete shadows --for /srv --keep 7
  lvss delete shadows --set 0b2f6c1e-5d7a-4e21-9f3c-8a4b2d1e6f70 --quiet`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newDeleteShadowsCommand(g))
	return cmd
}

func newDeleteShadowsCommand(g *globalOptions) *cobra.Command {
	var o deleteOptions
	cmd := &cobra.Command{
		Use:   "shadows (--shadow ID | --set ID | --for PATH [--oldest] | --all | --keep N | --older-than DURATION) [--dry-run]",
		Short: "Delete snapshots by ID, set, volume, or all of them; or keep the newest N",
		Long: `Delete snapshots of every context, chosen by exactly one of:

  --shadow ID        that snapshot
  --set ID           every snapshot of that snapshot set
  --for PATH         every snapshot of that volume (repeat for several);
                     with --oldest, only the oldest one of each
  --all              every snapshot lvssd keeps

or by retention, which keeps the newest of each volume and context:

  --keep N               keep the newest N persistent snapshots of each
                         volume and each context; delete the older ones
  --older-than DURATION  delete the persistent snapshots created more than
                         DURATION ago (30d, 1w, 12h, 90m, 1d12h: Go
                         durations, plus d for days and w for weeks)
  --for PATH             only the snapshots of these volumes (repeat);
                         without it, every volume
  --context NAME         only that context (e.g. client_accessible,
                         app_rollback); without it, each context counts
                         on its own
  --max-per-volume N     then, while a volume holds more than N snapshots
                         of every kind (as lvssd's cap counts them), delete
                         the oldest of those retention looks at, even if
                         --keep or --older-than keeps them. N at or above
                         lvssd's cap (limits.max_snapshots_per_volume) is
                         taken as the cap less one

With both --keep and --older-than, a snapshot is deleted only if both
select it: the newest N are kept whatever their age, and of the rest only
those older than DURATION go. Snapshots created at the same instant are
ranked by ID. Retention never deletes an auto-release snapshot (its
session deletes it), a snapshot whose session still runs (its set is being
created, or a backup reads it; it is not counted among the newest), or an
exposed one (counted, but skipped where it would go). lvssd checks the last
two again as it deletes, so a snapshot exposed after it was listed stays;
it is reported as skipped. A failure does not stop retention: every
selected snapshot is tried and each failure is reported.

Auto-release snapshots whose session still runs are never deleted by the
selectors either: they belong to that session, which uses them and deletes
them when it ends. They are listed as skipped. The selectors delete
exposed snapshots (unexposing them first) and stop at the first failure.

--dry-run prints what would be deleted and why, and deletes nothing.

When standard input is a terminal, the snapshots are listed and you are
asked to confirm; --quiet skips the question. Input that is not a
terminal (scripts, pipes, cron, systemd timers) is never asked.

The snapshots are deleted one at a time (DeleteSnapshots in a session
with context VSS_CTX_ALL). Exit status 0 when everything selected was
deleted (or with --dry-run), 1 when a deletion failed (each failure is
reported), 2 for a wrong command line. When nothing matches the command
says so and exits 0.

--json prints one object: dry_run, selected (what was chosen for deletion,
with reason_code and reason), deleted (IDs), not_deleted (IDs selected but
still there), kept, skipped (with reason_code and reason), failed (the
first failure or null) and failures (all of them); see docs/cli.md.`,
		Example: `  lvss delete shadows --for /srv --keep 7
  lvss delete shadows --for /srv --for /home --keep 24 --older-than 30d --dry-run
  lvss delete shadows --context app_rollback --older-than 2w --json
  lvss delete shadows --for /srv/share --context client_accessible --keep 64 --max-per-volume 448
  lvss delete shadows --for /srv --oldest
  lvss delete shadows --shadow 6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b
  lvss delete shadows --all --quiet --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.json = g.json // the root's --json
			o.keepGiven = cmd.Flags().Changed("keep")
			o.maxGiven = cmd.Flags().Changed("max-per-volume")
			return deleteShadows(cmd.Context(), g.socket, o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.shadow, "shadow", "", "delete the snapshot `ID`")
	f.StringVar(&o.set, "set", "", "delete every snapshot of the set `ID`")
	f.StringArrayVar(&o.forVols, "for", nil, "the snapshots of the volume `PATH` (repeat for several)")
	f.BoolVar(&o.oldest, "oldest", false, "with --for: delete only the oldest snapshot of each volume")
	f.BoolVar(&o.all, "all", false, "delete every snapshot")
	f.IntVar(&o.keep, "keep", 0, "retention: keep the newest `N` persistent snapshots of each volume and context")
	f.StringVar(&o.olderThan, "older-than", "", "retention: delete persistent snapshots older than `DURATION` (30d, 12h, 1w)")
	f.StringVar(&o.context, "context", "", "retention: only snapshots of the context `NAME`")
	f.IntVar(&o.maxPerVolume, "max-per-volume", 0, "retention: then delete the oldest until each volume holds at most `N` snapshots of every kind")
	f.BoolVar(&o.dryRun, "dry-run", false, "print what would be deleted, delete nothing")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not ask for confirmation")
	return cmd
}

// stdinIsTerminal says whether to ask before deleting. A variable so that
// tests can play the terminal.
var stdinIsTerminal = isTerminal

// isTerminal is true when r is a file that has terminal attributes, which
// is what isatty(3) checks too.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// usageWithHint is a wrong command line whose advice is more than "see
// --help".
type usageWithHint struct {
	err  error
	hint string
}

func (e usageWithHint) Error() string { return e.err.Error() }
func (e usageWithHint) Unwrap() error { return clierr.UsageError{Err: e.err} }
func (e usageWithHint) Hint() string  { return e.hint }

// retention reports whether --keep, --older-than or --max-per-volume
// asks for retention.
func (o *deleteOptions) retention() bool { return o.keepGiven || o.olderThan != "" || o.maxGiven }

// validate checks the selectors by value, not by whether a flag was
// given: an empty --set "" must not fall through to "every snapshot".
// For retention it returns the rule.
func (o *deleteOptions) validate() (retention, error) {
	for _, v := range o.forVols {
		if v == "" {
			return retention{}, clierr.Usagef("--for: empty path")
		}
	}
	if o.retention() {
		if o.shadow != "" || o.set != "" || o.all || o.oldest {
			return retention{}, usageWithHint{
				errors.New("--keep, --older-than and --max-per-volume choose among the snapshots of each volume and context; they do not go with --shadow, --set, --all or --oldest"),
				"narrow retention with --for PATH and --context NAME; see 'lvss delete shadows --help'"}
		}
		r := retention{keep: -1}
		if o.keepGiven {
			if o.keep < 0 {
				return retention{}, clierr.Usagef("--keep %d: N must be 0 or more", o.keep)
			}
			r.keep = o.keep
		}
		if o.maxGiven {
			if o.maxPerVolume < 1 {
				return retention{}, clierr.Usagef("--max-per-volume %d: N must be 1 or more", o.maxPerVolume)
			}
			r.maxPerVolume = o.maxPerVolume
		}
		if o.olderThan != "" {
			d, err := parseAge(o.olderThan)
			if err != nil {
				return retention{}, err
			}
			r.olderThan, r.olderThanText = d, o.olderThan
		}
		if o.context != "" {
			c, err := retentionContext(o.context)
			if err != nil {
				return retention{}, err
			}
			r.context, r.hasContext = c, true
		}
		return r, nil
	}
	if o.context != "" {
		return retention{}, clierr.Usagef("--context goes with --keep N, --older-than DURATION or --max-per-volume N")
	}
	n := 0
	for _, given := range []bool{o.shadow != "", o.set != "", len(o.forVols) > 0, o.all} {
		if given {
			n++
		}
	}
	if n != 1 {
		return retention{}, clierr.Usagef("delete shadows needs exactly one of --shadow ID, --set ID, --for PATH, --all, " +
			"or retention: --keep N and/or --older-than DURATION")
	}
	if o.oldest && len(o.forVols) == 0 {
		return retention{}, clierr.Usagef("--oldest goes with --for PATH")
	}
	return retention{}, nil
}

// liveAutoRelease: the snapshot belongs to a session that runs now and
// deletes it when it ends; deleting it under that session would pull the
// data from under a running backup.
func liveAutoRelease(p client.SnapshotProp) bool { return p.LiveSession && p.AutoRelease }

// list lists the snapshots the selectors look at: those of the --for
// volumes (each named as list shadows --for takes it), of the set, or all.
func (o *deleteOptions) list(ctx context.Context, socket string) ([][]client.SnapshotProp, error) {
	var setID uuid.UUID
	if o.set != "" {
		var err error
		if setID, err = parseID("--set", o.set); err != nil {
			return nil, err
		}
	}
	if len(o.forVols) == 0 {
		ps, err := listShadows(ctx, socket, setID, "")
		return [][]client.SnapshotProp{ps}, err
	}
	var out [][]client.SnapshotProp
	for _, v := range o.forVols {
		vol, err := absPath(v)
		if err != nil {
			return nil, err
		}
		ps, err := listShadows(ctx, socket, uuid.Nil, vol)
		if err != nil {
			return nil, err
		}
		out = append(out, ps)
	}
	return out, nil
}

// plan decides about each snapshot. With retention that is
// selectRetention; else the selectors pick, and live auto-release
// snapshots are skipped.
func (o *deleteOptions) plan(ctx context.Context, socket string, r retention, now time.Time) ([]decision, error) {
	var id uuid.UUID
	if o.shadow != "" {
		var err error
		if id, err = parseID("--shadow", o.shadow); err != nil {
			return nil, err
		}
	}
	lists, err := o.list(ctx, socket)
	if err != nil {
		return nil, err
	}
	snaps := mergeListings(lists...)
	if o.retention() {
		return selectRetention(snaps, now, r), nil
	}
	var skipped, remove []decision
	for _, s := range snaps {
		switch {
		case id != uuid.Nil && s.SnapshotID != id:
		case liveAutoRelease(s):
			skipped = append(skipped, decision{s, verdictSkip, reasonAutoRelease, skipReason(s)})
		default:
			remove = append(remove, decision{s, verdictDelete, reasonSelector, o.selectorReason()})
		}
	}
	if !o.oldest {
		return append(remove, skipped...), nil
	}
	// The oldest of each volume among those that may go: a running
	// session's snapshot is not "the oldest shadow copy" an administrator
	// means to drop, and is not mentioned when another one goes.
	oldest := map[string]decision{}
	for _, d := range remove {
		v := d.snap.OriginalVolume
		if cur, ok := oldest[v]; !ok || d.snap.Created.Before(cur.snap.Created) {
			d.reason = "the oldest of " + v + " (--oldest)"
			oldest[v] = d
		}
	}
	var out []decision
	for _, d := range remove {
		if oldest[d.snap.OriginalVolume].snap.SnapshotID == d.snap.SnapshotID {
			out = append(out, oldest[d.snap.OriginalVolume])
		}
	}
	for _, d := range skipped {
		if _, ok := oldest[d.snap.OriginalVolume]; !ok {
			out = append(out, d)
		}
	}
	return out, nil
}

func (o *deleteOptions) selectorReason() string {
	switch {
	case o.shadow != "":
		return "named by --shadow"
	case o.set != "":
		return "in set " + o.set + " (--set)"
	case len(o.forVols) > 0:
		return "a snapshot of a --for volume"
	}
	return "--all"
}

// failure is one deletion that failed; id is uuid.Nil when the session
// failed before any snapshot was tried.
type failure struct {
	id  uuid.UUID
	err error
}

// deleteReport is the outcome, printed in text or JSON.
type deleteReport struct {
	retention, dryRun, declined bool
	rule                        retention
	now                         time.Time
	// decisions in the order they are shown; selected are those chosen
	// for deletion, in the order they are tried.
	decisions []decision
	selected  []decision
	deleted   map[uuid.UUID]bool
	refused   map[uuid.UUID]decision // lvssd refused or the snapshot was gone: reported as skipped
	failures  []failure
	failedIDs map[uuid.UUID]error
}

func (r *deleteReport) notDeleted() []client.SnapshotProp {
	var out []client.SnapshotProp
	for _, d := range r.selected {
		if !r.deleted[d.snap.SnapshotID] {
			out = append(out, d.snap)
		}
	}
	return out
}

func deleteShadows(ctx context.Context, socket string, o deleteOptions, in io.Reader, out, errOut io.Writer) error {
	rep, err := runDelete(ctx, socket, o, in, errOut)
	if rep == nil {
		return err
	}
	if perr := rep.print(out, o.json); perr != nil && err == nil {
		err = perr
	}
	return err
}

// runDelete decides and deletes, without printing: delete shadows and
// lvss backup --keep print the report each their own way. A nil report
// means nothing was decided (err says why).
func runDelete(ctx context.Context, socket string, o deleteOptions, in io.Reader, errOut io.Writer) (*deleteReport, error) {
	r, err := o.validate()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if r.maxPerVolume > 0 {
		if r, err = capPerVolume(ctx, socket, r); err != nil {
			return nil, err
		}
	}
	ds, err := o.plan(ctx, socket, r, now)
	if err != nil {
		return nil, err
	}
	rep := &deleteReport{retention: o.retention(), rule: r, now: now, dryRun: o.dryRun, decisions: ds, deleted: map[uuid.UUID]bool{},
		refused: map[uuid.UUID]decision{}, failedIDs: map[uuid.UUID]error{}}
	for _, d := range ds {
		if d.verdict == verdictDelete {
			rep.selected = append(rep.selected, d)
		}
	}
	if rep.retention {
		// Oldest first: whatever stops the run, the oldest went first. The
		// selectors keep list shadows' order.
		slices.SortStableFunc(rep.selected, func(a, b decision) int { return newerFirst(b.snap, a.snap) })
	}
	remove := make([]client.SnapshotProp, 0, len(rep.selected))
	for _, d := range rep.selected {
		remove = append(remove, d.snap)
	}
	switch {
	case len(remove) == 0 || o.dryRun:
	case !o.quiet && stdinIsTerminal(in) && !confirm(in, errOut, remove):
		rep.declined = true
	case rep.retention:
		err = rep.deleteAll(ctx, socket)
	default:
		err = rep.deleteUntilFailure(ctx, socket)
	}
	return rep, err
}

// deleteUntilFailure is the selectors' way: one at a time, stopping at the
// first failure.
func (r *deleteReport) deleteUntilFailure(ctx context.Context, socket string) error {
	err := adminSession(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		for _, d := range r.selected {
			id := d.snap.SnapshotID
			if _, _, err := bc.DeleteSnapshots(ctx, id, vss.ObjectSnapshot, false); err != nil {
				r.fail(id, err)
				return failed("DeleteSnapshots "+guidText(id), err)
			}
			r.deleted[id] = true
		}
		return nil
	})
	if err != nil && len(r.failures) == 0 {
		// The session could not be had, or ended badly: whatever was not
		// reported deleted is still there, and the failure names no
		// snapshot.
		r.fail(uuid.Nil, err)
	}
	return err
}

// deleteAll is retention's way: each selected snapshot is tried, with
// lvssd refusing those exposed or in use meanwhile (reported as skipped,
// not failed), so that one snapshot that cannot go does not keep every
// later one. An interrupt stops it.
func (r *deleteReport) deleteAll(ctx context.Context, socket string) error {
	var first error
	err := adminSession(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		for _, d := range r.selected {
			id := d.snap.SnapshotID
			_, _, err := bc.DeleteSnapshotsIfUnused(ctx, id, vss.ObjectSnapshot, false)
			switch code := vsserr.Code(err); {
			case err == nil:
				r.deleted[id] = true
			case errors.Is(err, context.Canceled) || ctx.Err() != nil:
				r.fail(id, err)
				return failed("DeleteSnapshots "+guidText(id), err)
			case code == vsserr.VolumeInUse:
				r.refused[id] = decision{d.snap, verdictSkip, reasonInUse, "lvssd refused to delete it: " + vsserr.Message(err)}
			case code == vsserr.ObjectNotFound:
				r.refused[id] = decision{d.snap, verdictSkip, reasonGone, "already deleted by someone else since it was listed"}
			default:
				r.fail(id, err)
				if first == nil {
					first = failed("DeleteSnapshots "+guidText(id), err)
				}
			}
		}
		return first
	})
	if err != nil && len(r.failures) == 0 {
		r.fail(uuid.Nil, err)
	}
	return err
}

func (r *deleteReport) fail(id uuid.UUID, err error) {
	r.failures = append(r.failures, failure{id, err})
	if id != uuid.Nil {
		r.failedIDs[id] = err
	}
}

// confirm lists what would go and asks, vssadmin's way: anything but an
// explicit yes keeps the snapshots.
func confirm(in io.Reader, errOut io.Writer, remove []client.SnapshotProp) bool {
	for _, s := range remove {
		fmt.Fprintf(errOut, "  %s  %s  %s\n", guidText(s.SnapshotID), s.OriginalVolume, timeText(s.Created))
	}
	fmt.Fprintf(errOut, "Do you really want to delete %d shadow %s (Y/N): [N]? ", len(remove), plural(len(remove), "copy", "copies"))
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func skipReason(s client.SnapshotProp) string {
	return "auto-release snapshot of session " + optGUID(s.SessionID) +
		", which is still running; it is deleted when that session ends"
}

func ids(ps []client.SnapshotProp) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, guidText(p.SnapshotID))
	}
	return out
}

// decisionObj is one snapshot of selected, kept or skipped.
func decisionObj(d decision) obj {
	s := d.snap
	return obj{{"snapshot_id", guidText(s.SnapshotID)}, {"snapshot_set_id", guidText(s.SnapshotSetID)},
		{"original_volume", s.OriginalVolume}, {"context", s.Context.Base().String()}, {"created", timeText(s.Created)},
		{"session_id", optGUID(s.SessionID)}, {"exposed_path", exposedPath(s)}, {"exposed_share", exposedShare(s)},
		{"reason_code", d.code}, {"reason", d.reason}}
}

func failureObj(f failure) obj {
	h := vsserr.Code(f.err)
	return obj{{"snapshot_id", optGUID(f.id)}, {"hresult", h.Hex()}, {"name", h.Name()}, {"message", vsserr.Message(f.err)}}
}

// ruleObj is the retention rule as applied, null for the selectors: what
// a timer's log needs to tell why a snapshot went.
func (r *deleteReport) ruleObj() any {
	if !r.retention {
		return nil
	}
	o := obj{{"keep", nil}, {"older_than", nil}, {"cutoff", nil}, {"context", nil}, {"max_per_volume", nil}}
	if r.rule.keep >= 0 {
		o[0].val = r.rule.keep
	}
	if r.rule.olderThan > 0 {
		o[1].val, o[2].val = r.rule.olderThanText, timeText(r.now.Add(-r.rule.olderThan))
	}
	if r.rule.hasContext {
		o[3].val = r.rule.context.String()
	}
	if r.rule.maxPerVolume > 0 {
		o[4].val = r.rule.maxPerVolume
	}
	return o
}

// final is what became of a decision: a selected snapshot lvssd refused
// or found gone is skipped after all.
func (r *deleteReport) final(d decision) decision {
	if x, ok := r.refused[d.snap.SnapshotID]; ok {
		return x
	}
	return d
}

func (r *deleteReport) print(out io.Writer, asJSON bool) error {
	if asJSON {
		return writeObj(out, r.object())
	}
	if r.retention {
		return r.printRetention(out)
	}
	var b strings.Builder
	if len(r.decisions) == 0 {
		b.WriteString("No shadow copies matched.\n")
	}
	for _, d := range r.selected {
		if r.dryRun {
			fmt.Fprintf(&b, "Would delete shadow copy %s (%s)\n", guidText(d.snap.SnapshotID), d.snap.OriginalVolume)
		} else if r.deleted[d.snap.SnapshotID] {
			fmt.Fprintf(&b, "Deleted shadow copy %s (%s)\n", guidText(d.snap.SnapshotID), d.snap.OriginalVolume)
		}
	}
	for _, d := range r.decisions {
		if d.verdict == verdictSkip {
			fmt.Fprintf(&b, "Skipped shadow copy %s (%s): %s\n", guidText(d.snap.SnapshotID), d.snap.OriginalVolume, d.reason)
		}
	}
	nd := r.notDeleted()
	switch {
	case r.dryRun:
		b.WriteString("Dry run: nothing deleted.\n")
	case r.declined:
		b.WriteString("Nothing deleted.\n")
	case len(nd) > 0:
		fmt.Fprintf(&b, "Not deleted: %s\n", strings.Join(ids(nd), ", "))
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// object is the report as --json prints it.
func (r *deleteReport) object() obj {
	var selected, kept, skipped, failures []obj
	var deleted []client.SnapshotProp
	for _, d := range r.selected {
		selected = append(selected, decisionObj(d))
		if r.deleted[d.snap.SnapshotID] {
			deleted = append(deleted, d.snap)
		}
	}
	for _, d := range r.decisions {
		switch d = r.final(d); d.verdict {
		case verdictKeep:
			kept = append(kept, decisionObj(d))
		case verdictSkip:
			skipped = append(skipped, decisionObj(d))
		}
	}
	var failedObj any // null when nothing failed
	for i, f := range r.failures {
		if i == 0 {
			failedObj = failureObj(f)
		}
		failures = append(failures, failureObj(f))
	}
	return obj{{"dry_run", r.dryRun}, {"rule", r.ruleObj()}, {"selected", selected}, {"deleted", ids(deleted)},
		{"not_deleted", ids(r.notDeleted())}, {"kept", kept}, {"skipped", skipped}, {"failed", failedObj},
		{"failures", failures}}
}

// printRetention prints each snapshot retention looked at, by volume and
// context, oldest first, with what became of it and why; then a count.
func (r *deleteReport) printRetention(out io.Writer) error {
	var b strings.Builder
	if r.rule.maxAsked > 0 {
		fmt.Fprintf(&b, "--max-per-volume %d is not below lvssd's cap (limits.max_snapshots_per_volume): %d is used.\n",
			r.rule.maxAsked, r.rule.maxPerVolume)
	}
	if len(r.decisions) == 0 {
		b.WriteString("No shadow copies matched.\n")
	}
	var nDel, nKept, nSkip, nNot int
	for _, d := range r.decisions {
		d = r.final(d)
		id := d.snap.SnapshotID
		var what string
		switch {
		case d.verdict == verdictKeep:
			what, nKept = "Kept", nKept+1
		case d.verdict == verdictSkip:
			what, nSkip = "Skipped", nSkip+1
		case r.dryRun:
			what, nNot = "Would delete", nNot+1
		case r.deleted[id]:
			what, nDel = "Deleted", nDel+1
		case r.failedIDs[id] != nil:
			what, nNot = "Failed to delete", nNot+1
			d.reason = vsserr.Code(r.failedIDs[id]).String() + ": " + vsserr.Message(r.failedIDs[id])
		default:
			what, nNot = "Not deleted", nNot+1
		}
		fmt.Fprintf(&b, "%s shadow copy %s (%s, %s, created %s): %s\n", what, guidText(id), d.snap.OriginalVolume,
			d.snap.Context.Base(), textTime(d.snap.Created), d.reason)
	}
	if len(r.decisions) > 0 {
		switch {
		case r.dryRun:
			fmt.Fprintf(&b, "Dry run: %d would be deleted, %d kept, %d skipped; nothing deleted.\n", nNot, nKept, nSkip)
		case r.declined:
			fmt.Fprintf(&b, "Nothing deleted: %d kept, %d skipped.\n", nKept, nSkip)
		default:
			fmt.Fprintf(&b, "%d deleted, %d kept, %d skipped", nDel, nKept, nSkip)
			if nNot > 0 {
				fmt.Fprintf(&b, ", %d not deleted", nNot)
			}
			b.WriteString(".\n")
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}
