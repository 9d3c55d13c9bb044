package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

type createOptions struct {
	volumes  []string
	provider string
	context  string
	json     bool
}

func newCreateCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create persistent shadow copies (like vssadmin create shadow)",
		Long: `Create snapshots that outlive the command, like 'vssadmin create shadow'.
Snapshots that live only as long as a session are made with 'lvss call'.`,
		Example: `  lvss create shadow --for /srv`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCreateShadowCommand(g))
	return cmd
}

func newCreateShadowCommand(g *globalOptions) *cobra.Command {
	var o createOptions
	cmd := &cobra.Command{
		Use:   "shadow --for PATH [--for PATH...]",
		Short: "Create one persistent snapshot set of the given volumes",
		Long: `Create one snapshot set holding a snapshot of each --for volume (a mount
point or any path on it; relative paths are taken from the current
directory), and print the set ID and each snapshot's ID, path and
consistency.

By default the snapshots are like those of 'vssadmin create shadow':
VSS_CTX_CLIENT_ACCESSIBLE, persistent and made without writers, so they
are crash-consistent. On lvss they can still be exposed (D13).

--context VSS_CTX_APP_ROLLBACK or VSS_CTX_CLIENT_ACCESSIBLE_WRITERS makes
persistent snapshots with writers: the subscribed writers freeze around
the snapshot, as in a backup of type VSS_BT_COPY, which leaves their
backup history (log truncation, backup stamps) untouched. The writers'
states are printed; a writer that fails is a warning, not a failure, and
shows in the consistency of the snapshots holding its data.
VSS_CTX_NAS_ROLLBACK is persistent and writerless like the default.
Auto-release contexts (VSS_CTX_BACKUP, VSS_CTX_FILE_SHARE_BACKUP) are
refused: their snapshots would be deleted as soon as this command ends its
session. Hold a session with 'lvss call' to use them. Context names are
case-insensitive and the VSS_CTX_ prefix may be left out.

--provider takes a provider name (see 'lvss list providers';
case-insensitive) or provider ID; without it lvssd chooses.

--json prints one object: snapshot_set_id, context, snapshots (each as in
'lvss list shadows --json'), writers (their status after the snapshot)
and warnings.`,
		Example: `  lvss create shadow --for /srv
  lvss create shadow --for /srv --for /var/lib/postgresql --context VSS_CTX_APP_ROLLBACK
  lvss create shadow --for /home --provider btrfs --json | jq -r '.snapshots[0].snapshot_path'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.json = g.json // the root's --json
			return createShadow(cmd.Context(), g.socket, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringArrayVar(&o.volumes, "for", nil, "volume to snapshot (repeat for several)")
	cmd.Flags().StringVar(&o.provider, "provider", "", "provider name or ID (default: lvssd chooses)")
	cmd.Flags().StringVar(&o.context, "context", "VSS_CTX_CLIENT_ACCESSIBLE", "snapshot context; must be persistent")
	return cmd
}

// parseContextFlag is vss.ParseContext made forgiving for people typing a
// flag: names in any case, VSS_CTX_ and VSS_VOLSNAP_ATTR_ optional.
func parseContextFlag(s string) (vss.Context, error) {
	var out vss.Context
	for _, part := range strings.Split(s, "|") {
		part = strings.ToUpper(strings.TrimSpace(part))
		var (
			c   vss.Context
			err error
		)
		for _, cand := range []string{part, "VSS_CTX_" + part, "VSS_VOLSNAP_ATTR_" + part} {
			if c, err = vss.ParseContext(cand); err == nil {
				break
			}
		}
		if err != nil || part == "" {
			return 0, clierr.UsageError{Err: fmt.Errorf("--context: unknown context %q", s)}
		}
		out |= c
	}
	return out, nil
}

// checkCreateContext refuses, as a usage error, contexts that cannot make
// a snapshot that outlives the command.
func checkCreateContext(c vss.Context) error {
	switch {
	case c == vss.CtxAll:
		return clierr.UsageError{Err: fmt.Errorf("--context VSS_CTX_ALL is for administrative calls; it cannot create snapshots")}
	case !c.Valid():
		return clierr.UsageError{Err: fmt.Errorf("--context %s is not a snapshot context", c)}
	case c.AutoRelease():
		return clierr.UsageError{Err: fmt.Errorf("--context %s is auto-release: its snapshots would be deleted as soon as "+
			"lvss exits and its session ends. Use a persistent context (VSS_CTX_CLIENT_ACCESSIBLE, "+
			"VSS_CTX_APP_ROLLBACK, VSS_CTX_NAS_ROLLBACK, VSS_CTX_CLIENT_ACCESSIBLE_WRITERS), or hold "+
			"a session with 'lvss call' to keep auto-release snapshots while you use them", c)}
	}
	return nil
}

// resolveProvider turns --provider into an ID: a GUID as it is, else a
// registered provider's name, compared case-insensitively.
func resolveProvider(ctx context.Context, socket, s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.Nil, nil
	}
	if id, err := wire.ParseGUID(s); err == nil {
		return id, nil
	}
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return uuid.Nil, err
	}
	defer conn.Close()
	ps, err := conn.ListProviders(ctx)
	if err != nil {
		return uuid.Nil, failed("ListProviders", err)
	}
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		if strings.EqualFold(p.Name, s) {
			return p.ProviderID, nil
		}
		names = append(names, p.Name)
	}
	known := "none is registered"
	if len(names) > 0 {
		known = "registered: " + strings.Join(names, ", ")
	}
	return uuid.Nil, vsserr.New(vsserr.ProviderNotRegistered, "--provider: no provider named %q (%s)", s, known)
}

// createResult is what a creation produced, kept apart from its error
// because a set that exists must be reported even if a later step failed.
type createResult struct {
	context vss.Context
	setID   uuid.UUID
	created bool
	snaps   []client.SnapshotProp
	writers []client.WriterStatus
	// warnings are writer failures and the failures of the steps after
	// DoSnapshotSet; afterErr is the first of the latter.
	warnings []string
	afterErr error
}

func (r *createResult) later(err error) {
	if err == nil {
		return
	}
	r.warnings = append(r.warnings, err.Error())
	if r.afterErr == nil {
		r.afterErr = err
	}
}

func createShadow(ctx context.Context, socket string, o createOptions, out, errOut io.Writer) error {
	if len(o.volumes) == 0 {
		return clierr.UsageError{Err: fmt.Errorf("create shadow needs at least one --for PATH")}
	}
	c, err := parseContextFlag(o.context)
	if err != nil {
		return err
	}
	if err := checkCreateContext(c); err != nil {
		return err
	}
	vols := make([]string, 0, len(o.volumes))
	for _, v := range o.volumes {
		a, err := absPath(v)
		if err != nil {
			return err
		}
		vols = append(vols, a)
	}
	providerID, err := resolveProvider(ctx, socket, o.provider)
	if err != nil {
		return err
	}

	res := &createResult{context: c}
	err = client.Run(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		return createSet(ctx, bc, res, vols, providerID)
	})
	if !res.created {
		return err
	}
	for _, w := range res.warnings {
		// The first failure after creation is the command's error, which
		// main prints; the JSON keeps it among the warnings too. With
		// --json the warnings are in the result alone, and standard error
		// holds nothing but the error object, if any.
		if !o.json && (res.afterErr == nil || w != res.afterErr.Error()) {
			fmt.Fprintf(errOut, "lvss: warning: %s\n", w)
		}
	}
	if perr := printCreated(out, res, o.json); perr != nil {
		return perr
	}
	if res.afterErr != nil {
		return res.afterErr
	}
	return err
}

// createSet is the requester sequence of create shadow. Until DoSnapshotSet
// succeeds a failure is returned, and client.Run aborts the creation; after
// it the snapshots exist and persist, so failures are recorded in res and
// the steps that end the backup properly still run.
func createSet(ctx context.Context, bc *client.BackupComponents, res *createResult, vols []string, providerID uuid.UUID) error {
	writers := res.context.Writers()
	if err := bc.InitializeForBackup(ctx, ""); err != nil {
		return failed("InitializeForBackup", err)
	}
	if err := bc.SetContext(ctx, res.context); err != nil {
		return failed("SetContext "+res.context.String(), err)
	}
	if writers {
		// Non-component mode: every subscribed writer takes part (D14).
		// VSS_BT_COPY: writers must not treat this as a backup
		// of their history (no log truncation, no new backup stamp base).
		if err := bc.SetBackupState(ctx, false, false, vss.BackupCopy, false); err != nil {
			return failed("SetBackupState", err)
		}
		if err := wait(ctx, "GatherWriterMetadata", bc.GatherWriterMetadata); err != nil {
			return err
		}
	}
	setID, err := bc.StartSnapshotSet(ctx)
	if err != nil {
		return failed("StartSnapshotSet", err)
	}
	res.setID = setID
	ids := make([]uuid.UUID, 0, len(vols))
	for _, v := range vols {
		id, err := bc.AddToSnapshotSet(ctx, v, providerID)
		if err != nil {
			return failed("AddToSnapshotSet "+v, err)
		}
		ids = append(ids, id)
	}
	if writers {
		if err := wait(ctx, "PrepareForBackup", bc.PrepareForBackup); err != nil {
			return err
		}
	}
	if err := wait(ctx, "DoSnapshotSet", bc.DoSnapshotSet); err != nil {
		return err
	}
	res.created = true

	// An interrupt from here on would only lose the report and leave the
	// writers waiting for BackupComplete: finish, within a bound (a
	// second signal still kills the process).
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if writers {
		if err := wait(actx, "GatherWriterStatus", bc.GatherWriterStatus); err != nil {
			res.later(err)
		} else {
			res.gatherStatus(actx, bc)
		}
		res.later(wait(actx, "BackupComplete", bc.BackupComplete))
	}
	for _, id := range ids {
		p, err := bc.GetSnapshotProperties(actx, id)
		if err != nil {
			res.later(failed("GetSnapshotProperties "+guidText(id), err))
			p = client.SnapshotProp{SnapshotID: id, SnapshotSetID: setID}
		}
		res.snaps = append(res.snaps, p)
	}
	return nil
}

// gatherStatus reads the writers' status and turns each failure into a
// warning: the snapshots exist, and their consistency already says which
// are not application-consistent (D9).
func (r *createResult) gatherStatus(ctx context.Context, bc *client.BackupComponents) {
	n, err := bc.GetWriterStatusCount(ctx)
	if err != nil {
		r.later(failed("GetWriterStatusCount", err))
		return
	}
	for i := range n {
		ws, err := bc.GetWriterStatus(ctx, i)
		if err != nil {
			r.later(failed("GetWriterStatus", err))
			return
		}
		r.writers = append(r.writers, ws)
		if ws.State.Failed() || ws.Failure.Failed() {
			w := fmt.Sprintf("writer '%s' (instance %s) failed: %s, %s", ws.Name, guidText(ws.InstanceID), ws.State, ws.Failure)
			if ws.ApplicationMessage != "" {
				w += ": " + ws.ApplicationMessage
			}
			r.warnings = append(r.warnings, w+"; the snapshots holding its data are not application-consistent")
		}
	}
}

func printCreated(out io.Writer, res *createResult, asJSON bool) error {
	if asJSON {
		ws := make([]obj, 0, len(res.writers))
		for i, w := range res.writers {
			ws = append(ws, writerStatusObj(i, w, true))
		}
		return writeObj(out, obj{{"snapshot_set_id", guidText(res.setID)}, {"context", res.context.String()},
			{"snapshots", shadowObjs(res.snaps)}, {"writers", ws}, {"warnings", res.warnings}})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Successfully created shadow copy set %s (%s)\n", guidText(res.setID), res.context)
	for _, p := range res.snaps {
		fmt.Fprintf(&b, "   Shadow Copy ID: %s\n", guidText(p.SnapshotID))
		fmt.Fprintf(&b, "      Original Volume: %s\n", p.OriginalVolume)
		fmt.Fprintf(&b, "      Shadow Copy Volume: %s\n", p.DevicePath)
		if p.ConsistencyReason != "" {
			fmt.Fprintf(&b, "      Consistency: %s (%s)\n", p.Consistency, p.ConsistencyReason)
		} else {
			fmt.Fprintf(&b, "      Consistency: %s\n", p.Consistency)
		}
	}
	if res.context.Writers() {
		if len(res.writers) == 0 {
			b.WriteString("Writers: none took part\n")
		} else {
			b.WriteString("Writers:\n")
		}
		for _, w := range res.writers {
			name := w.Name
			if w.InstanceName != "" {
				name += " (" + w.InstanceName + ")"
			}
			fmt.Fprintf(&b, "   '%s': %s, last error %s\n", name, w.State, w.Failure)
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}
