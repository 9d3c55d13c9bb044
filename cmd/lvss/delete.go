package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

type deleteOptions struct {
	shadow, set, forVol string
	oldest, all, quiet  bool
	json                bool
}

func newDeleteCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete shadow copies (like vssadmin delete shadows)",
		Long:  `Delete snapshots kept by lvssd, like 'vssadmin delete shadows'.`,
		Example: `  lvss delete shadows --for /srv --oldest
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
		Use:   "shadows (--shadow ID | --set ID | --for PATH [--oldest] | --all)",
		Short: "Delete snapshots by ID, set, volume, or all of them",
		Long: `Delete snapshots of every context, chosen by exactly one of:

  --shadow ID        that snapshot
  --set ID           every snapshot of that snapshot set
  --for PATH         every snapshot of that volume; with --oldest, only its
                     oldest one
  --all              every snapshot lvssd keeps

Auto-release snapshots whose session still runs are not deleted: they
belong to that session, which uses them and deletes them when it ends.
They are listed as skipped.

When standard input is a terminal, the snapshots are listed and you are
asked to confirm; --quiet skips the question. Input that is not a
terminal (scripts, pipes, cron) is never asked.

The snapshots are deleted one at a time (DeleteSnapshots in a session
with context VSS_CTX_ALL), stopping at the first failure; what was
deleted until then is reported, and the exit status is 1. When nothing
matches the command says so and exits 0.

--json prints one object: deleted (IDs), skipped (objects with
snapshot_id, snapshot_set_id, original_volume, session_id, reason),
failed (null, or snapshot_id, hresult, name, message) and not_deleted
(IDs left alone after a failure or when you did not confirm).`,
		Example: `  lvss delete shadows --for /srv --oldest
  lvss delete shadows --shadow 6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b
  lvss delete shadows --all --quiet --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.json = g.json // the root's --json
			return deleteShadows(cmd.Context(), g.socket, o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.shadow, "shadow", "", "delete this snapshot")
	f.StringVar(&o.set, "set", "", "delete every snapshot of this set")
	f.StringVar(&o.forVol, "for", "", "delete the snapshots of this volume")
	f.BoolVar(&o.oldest, "oldest", false, "with --for: delete only the oldest snapshot of the volume")
	f.BoolVar(&o.all, "all", false, "delete every snapshot")
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

// deletePlan is what a delete found: the snapshots to delete, in order,
// and those left to their sessions.
type deletePlan struct {
	remove  []client.SnapshotProp
	skipped []client.SnapshotProp
}

// validate checks the selectors by value, not by whether a flag was
// given: an empty --set "" must not fall through to "every snapshot".
func (o *deleteOptions) validate() error {
	n := 0
	for _, given := range []bool{o.shadow != "", o.set != "", o.forVol != "", o.all} {
		if given {
			n++
		}
	}
	if n != 1 {
		return clierr.UsageError{Err: fmt.Errorf("delete shadows needs exactly one of --shadow ID, --set ID, --for PATH, --all")}
	}
	if o.oldest && o.forVol == "" {
		return clierr.UsageError{Err: fmt.Errorf("--oldest goes with --for PATH")}
	}
	return nil
}

// liveAutoRelease: the snapshot belongs to a session that runs now and
// deletes it when it ends; deleting it under that session would pull the
// data from under a running backup.
func liveAutoRelease(p client.SnapshotProp) bool { return p.LiveSession && p.AutoRelease }

func (o *deleteOptions) plan(ctx context.Context, socket string) (deletePlan, error) {
	var (
		setID uuid.UUID
		vol   string
		err   error
	)
	switch {
	case o.set != "":
		if setID, err = parseID("--set", o.set); err != nil {
			return deletePlan{}, err
		}
	case o.forVol != "":
		if vol, err = absPath(o.forVol); err != nil {
			return deletePlan{}, err
		}
	}
	var id uuid.UUID
	if o.shadow != "" {
		if id, err = parseID("--shadow", o.shadow); err != nil {
			return deletePlan{}, err
		}
	}
	ps, err := listShadows(ctx, socket, setID, vol)
	if err != nil {
		return deletePlan{}, err
	}
	var p deletePlan
	for _, s := range ps {
		switch {
		case id != uuid.Nil && s.SnapshotID != id:
		case liveAutoRelease(s):
			p.skipped = append(p.skipped, s)
		default:
			p.remove = append(p.remove, s)
		}
	}
	if o.oldest && len(p.remove) > 0 {
		// The oldest of those that may go: a running session's snapshot
		// is not "the oldest shadow copy" an administrator means to drop.
		oldest := p.remove[0]
		for _, s := range p.remove[1:] {
			if s.Created.Before(oldest.Created) {
				oldest = s
			}
		}
		p.remove, p.skipped = []client.SnapshotProp{oldest}, nil
	}
	return p, nil
}

// deleteReport is the outcome, printed in text or JSON.
type deleteReport struct {
	deleted    []client.SnapshotProp
	skipped    []client.SnapshotProp
	failedID   uuid.UUID
	failErr    error
	notDeleted []client.SnapshotProp
	declined   bool
}

func deleteShadows(ctx context.Context, socket string, o deleteOptions, in io.Reader, out, errOut io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	p, err := o.plan(ctx, socket)
	if err != nil {
		return err
	}
	rep := &deleteReport{skipped: p.skipped}
	if len(p.remove) > 0 && !o.quiet && stdinIsTerminal(in) && !confirm(in, errOut, p.remove) {
		rep.declined, rep.notDeleted = true, p.remove
		return rep.print(out, o.json)
	}
	if len(p.remove) > 0 {
		err = adminSession(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
			for i, s := range p.remove {
				if _, _, err := bc.DeleteSnapshots(ctx, s.SnapshotID, vss.ObjectSnapshot, false); err != nil {
					rep.failedID, rep.failErr, rep.notDeleted = s.SnapshotID, err, p.remove[i:]
					return failed("DeleteSnapshots "+guidText(s.SnapshotID), err)
				}
				rep.deleted = append(rep.deleted, s)
			}
			return nil
		})
		if err != nil && rep.failErr == nil {
			// The session could not be had, or ended badly: whatever was
			// not reported deleted is still there, and the failure names
			// no snapshot.
			rep.failErr, rep.notDeleted = err, p.remove[len(rep.deleted):]
		}
	}
	if perr := rep.print(out, o.json); perr != nil && err == nil {
		err = perr
	}
	return err
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

func (r *deleteReport) print(out io.Writer, asJSON bool) error {
	if asJSON {
		skipped := make([]obj, 0, len(r.skipped))
		for _, s := range r.skipped {
			skipped = append(skipped, obj{{"snapshot_id", guidText(s.SnapshotID)},
				{"snapshot_set_id", guidText(s.SnapshotSetID)}, {"original_volume", s.OriginalVolume},
				{"session_id", optGUID(s.SessionID)}, {"reason", skipReason(s)}})
		}
		var failedObj any // null when nothing failed
		if r.failErr != nil {
			h := vsserr.Code(r.failErr)
			failedObj = obj{{"snapshot_id", optGUID(r.failedID)}, {"hresult", h.Hex()}, {"name", h.Name()},
				{"message", vsserr.Message(r.failErr)}}
		}
		return writeObj(out, obj{{"deleted", ids(r.deleted)}, {"skipped", skipped}, {"failed", failedObj},
			{"not_deleted", ids(r.notDeleted)}})
	}
	var b strings.Builder
	if len(r.deleted)+len(r.skipped)+len(r.notDeleted) == 0 {
		b.WriteString("No shadow copies matched.\n")
	}
	for _, s := range r.deleted {
		fmt.Fprintf(&b, "Deleted shadow copy %s (%s)\n", guidText(s.SnapshotID), s.OriginalVolume)
	}
	for _, s := range r.skipped {
		fmt.Fprintf(&b, "Skipped shadow copy %s (%s): %s\n", guidText(s.SnapshotID), s.OriginalVolume, skipReason(s))
	}
	switch {
	case r.declined:
		b.WriteString("Nothing deleted.\n")
	case len(r.notDeleted) > 0:
		fmt.Fprintf(&b, "Not deleted: %s\n", strings.Join(ids(r.notDeleted), ", "))
	}
	_, err := io.WriteString(out, b.String())
	return err
}
