package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
)

func newExposeCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "expose ID PATH",
		Short: "Make a snapshot readable at a directory",
		Long: `Expose snapshot ID read-only at the directory PATH (relative paths are
taken from the current directory), for browsing or copying files out.
The exposure is kept in lvssd's catalog and lasts until 'lvss unexpose'
or until the snapshot is deleted. Every persistent snapshot can be
exposed, client-accessible ones included (D13), if its provider
can expose snapshots (docs/provider-*.md say how each does it).

It runs ExposeSnapshot(ID, "", VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, PATH) in
a session with context VSS_CTX_ALL. --json prints one object:
snapshot_id and exposed_path.`,
		Example: `  lvss expose 6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b /mnt/srv-monday
  lvss expose $(lvss list shadows --for /srv --json | jq -r '.[-1].snapshot_id') /mnt/latest`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("snapshot ID", args[0])
			if err != nil {
				return err
			}
			dir, err := absPath(args[1])
			if err != nil {
				return err
			}
			return expose(cmd.Context(), g.socket, id, dir, g.json, cmd.OutOrStdout())
		},
	}
	return cmd
}

func newUnexposeCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "unexpose ID",
		Short: "Undo 'lvss expose'",
		Long: `Remove the exposure of snapshot ID made by 'lvss expose'; the snapshot
itself stays. A snapshot that is not exposed is VSS_E_OBJECT_NOT_FOUND.

It runs UnexposeSnapshot(ID) in a session with context VSS_CTX_ALL.
--json prints one object: snapshot_id, exposed_path ("" now) and
previous_exposed_path.`,
		Example: `  lvss unexpose 6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("snapshot ID", args[0])
			if err != nil {
				return err
			}
			return unexpose(cmd.Context(), g.socket, id, g.json, cmd.OutOrStdout())
		},
	}
	return cmd
}

func expose(ctx context.Context, socket string, id uuid.UUID, dir string, asJSON bool, out io.Writer) error {
	var name string
	err := adminSession(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		var err error
		name, err = bc.ExposeSnapshot(ctx, id, "", vss.AttrExposedLocally, dir)
		return failed("ExposeSnapshot "+guidText(id), err)
	})
	if err != nil {
		return err
	}
	if asJSON {
		return writeObj(out, obj{{"snapshot_id", guidText(id)}, {"exposed_path", name}})
	}
	_, err = fmt.Fprintf(out, "Shadow copy %s is exposed at %s\n", guidText(id), name)
	return err
}

func unexpose(ctx context.Context, socket string, id uuid.UUID, asJSON bool, out io.Writer) error {
	var was string
	err := adminSession(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		// Read first so that the report can say where it was exposed;
		// the daemon forgets that with the exposure.
		p, err := bc.GetSnapshotProperties(ctx, id)
		if err != nil {
			return failed("GetSnapshotProperties "+guidText(id), err)
		}
		was = p.ExposedName
		return failed("UnexposeSnapshot "+guidText(id), bc.UnexposeSnapshot(ctx, id))
	})
	if err != nil {
		return err
	}
	if asJSON {
		return writeObj(out, obj{{"snapshot_id", guidText(id)}, {"exposed_path", ""}, {"previous_exposed_path", was}})
	}
	_, err = fmt.Fprintf(out, "Shadow copy %s is no longer exposed at %s\n", guidText(id), was)
	return err
}

// writeObj prints one JSON object, indented like the arrays of the list
// verbs.
func writeObj(out io.Writer, o obj) error {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(o)
}
