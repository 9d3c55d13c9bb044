package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

func newExposeCommand(g *globalOptions) *cobra.Command {
	var share, fromRoot string
	cmd := &cobra.Command{
		Use:   "expose (ID PATH | --smb NAME [--path-from-root DIR] ID)",
		Short: "Make a snapshot readable at a directory, or as a read-only SMB share",
		Long: `Expose snapshot ID read-only at the directory PATH (relative paths are
taken from the current directory), for browsing or copying files out.
It runs ExposeSnapshot(ID, "", VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, PATH).

With --smb NAME, publish it instead as the read-only SMB share NAME
through the Samba of this machine, for Windows clients (Explorer:
\\HOST\NAME) and smbclient: ExposeSnapshot(ID, DIR,
VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY, NAME). --path-from-root DIR shares only
the snapshot's directory DIR (a path from the snapshot's root, such as
/projects/2026). Samba's users read it with their own accounts and their
own permissions on its files; nobody can write to it. This needs Samba
with 'registry shares = yes' in its smb.conf and remote_exposure = true
in the [samba] section of lvssd's config (docs/previous-versions.md,
"Remote exposure"). A share
name has at most 80 characters and none of "/\[]:|<>+=;,?*%.

Either exposure is kept in lvssd's catalog and lasts until 'lvss
unexpose' or until the snapshot is deleted, across restarts of lvssd.
Every persistent snapshot can be exposed, client-accessible ones
included (D13), if its provider can expose snapshots or (for --smb) its
content is a directory (docs/provider-*.md say how each does it). Both
run in a session with context VSS_CTX_ALL.

--json prints one object: snapshot_id and exposed_path, or with --smb
snapshot_id, exposed_share and exposed_share_path.`,
		Example: `  lvss expose 6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b /mnt/srv-monday
  lvss expose $(lvss list shadows --for /srv --json | jq -r '.[-1].snapshot_id') /mnt/latest

  # the snapshot as \\HOST\srv-monday, for Windows users; then the projects folder alone
  lvss expose --smb srv-monday 6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b
  lvss unexpose 6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b
  lvss expose --smb projects --path-from-root /projects 6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch smb := cmd.Flags().Changed("smb"); {
			case smb && len(args) != 1:
				return clierr.Usagef("with --smb, lvss expose takes the snapshot ID alone (got %d arguments)", len(args))
			case !smb && cmd.Flags().Changed("path-from-root"):
				return clierr.Usagef("--path-from-root goes with --smb: a local exposure shows the whole snapshot")
			case !smb && len(args) != 2:
				return clierr.Usagef("lvss expose takes a snapshot ID and a directory, or --smb NAME and a snapshot ID (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("snapshot ID", args[0])
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("smb") {
				if share == "" {
					return clierr.Usagef("--smb: the share name is empty")
				}
				return exposeSMB(cmd.Context(), g.socket, id, share, fromRoot, g.json, cmd.OutOrStdout())
			}
			dir, err := absPath(args[1])
			if err != nil {
				return err
			}
			return expose(cmd.Context(), g.socket, id, dir, g.json, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&share, "smb", "", "publish the snapshot as the read-only SMB share `NAME` (Samba's registry) instead of at a directory")
	cmd.Flags().StringVar(&fromRoot, "path-from-root", "", "with --smb: share only this `DIR` of the snapshot, a path from its root (wszPathFromRoot)")
	return cmd
}

func newUnexposeCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "unexpose ID",
		Short: "Undo 'lvss expose', at a directory or as an SMB share",
		Long: `Remove the exposure of snapshot ID made by 'lvss expose': unmount it
from its directory, or withdraw its SMB share (clients that have it open
lose it at once). The snapshot itself stays. A snapshot that is not
exposed is VSS_E_OBJECT_NOT_FOUND.

It runs UnexposeSnapshot(ID) in a session with context VSS_CTX_ALL.
--json prints one object: snapshot_id, exposed_path and exposed_share
("" now), previous_exposed_path and previous_exposed_share.`,
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

// exposeError gives the failures of a remote exposure advice of their
// own: the table's hints for these codes speak of providers and IDs.
type exposeError struct{ error }

func (e exposeError) Unwrap() error { return e.error }

func (e exposeError) Hint() string {
	switch vsserr.Code(e.error) {
	case vsserr.NotSupported:
		return "sharing snapshots needs Samba: apt-get install samba; 'registry shares = yes' in the [global] section of its smb.conf; " +
			"remote_exposure = true (and config = that smb.conf) in the [samba] section of /etc/lvss/lvssd.toml, then restart lvssd (docs/previous-versions.md, \"Remote exposure\")"
	case vsserr.ObjectAlreadyExists:
		return "choose another share name (testparm -s lists Samba's shares), or 'lvss unexpose ID' first: lvss list shadows shows where snapshots are exposed"
	case vsserr.InvalidArg:
		return "a share name has at most 80 characters and none of \"/\\[]:|<>+=;,?*%; --path-from-root names a directory inside the snapshot, from its root"
	}
	return clierr.Hint(clierr.Other, vsserr.Code(e.error), "lvss expose")
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

func exposeSMB(ctx context.Context, socket string, id uuid.UUID, share, fromRoot string, asJSON bool, out io.Writer) error {
	var p client.SnapshotProp
	err := adminSession(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if _, err := bc.ExposeSnapshot(ctx, id, fromRoot, vss.AttrExposedRemotely, share); err != nil {
			return exposeError{failed("ExposeSnapshot "+guidText(id), err)}
		}
		var err error
		p, err = bc.GetSnapshotProperties(ctx, id)
		return failed("GetSnapshotProperties "+guidText(id), err)
	})
	if err != nil {
		return err
	}
	if asJSON {
		return writeObj(out, obj{{"snapshot_id", guidText(id)}, {"exposed_share", p.ExposedName}, {"exposed_share_path", p.ExposedPath}})
	}
	host, _ := os.Hostname()
	what := ""
	if p.ExposedPath != "" {
		what = " (its directory " + p.ExposedPath + ")"
	}
	_, err = fmt.Fprintf(out, "Shadow copy %s%s is shared read-only as SMB share %s (\\\\%s\\%s)\n", guidText(id), what, p.ExposedName, host, p.ExposedName)
	return err
}

func unexpose(ctx context.Context, socket string, id uuid.UUID, asJSON bool, out io.Writer) error {
	var was client.SnapshotProp
	err := adminSession(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		// Read first so that the report can say where it was exposed;
		// the daemon forgets that with the exposure.
		var err error
		if was, err = bc.GetSnapshotProperties(ctx, id); err != nil {
			return failed("GetSnapshotProperties "+guidText(id), err)
		}
		return failed("UnexposeSnapshot "+guidText(id), bc.UnexposeSnapshot(ctx, id))
	})
	if err != nil {
		return err
	}
	path, share := exposedPath(was), exposedShare(was)
	if asJSON {
		return writeObj(out, obj{{"snapshot_id", guidText(id)}, {"exposed_path", ""}, {"exposed_share", ""},
			{"previous_exposed_path", path}, {"previous_exposed_share", share}})
	}
	if share != "" {
		_, err = fmt.Fprintf(out, "Shadow copy %s is no longer shared as SMB share %s\n", guidText(id), share)
		return err
	}
	_, err = fmt.Fprintf(out, "Shadow copy %s is no longer exposed at %s\n", guidText(id), path)
	return err
}

// exposedPath is the directory a snapshot is exposed at, "" when it is not
// exposed locally.
func exposedPath(p client.SnapshotProp) string {
	if p.Attributes&vss.AttrExposedRemotely != 0 {
		return ""
	}
	return p.ExposedName
}

// exposedShare is the SMB share a snapshot is published as, "" when it is
// not exposed remotely.
func exposedShare(p client.SnapshotProp) string {
	if p.Attributes&vss.AttrExposedRemotely == 0 {
		return ""
	}
	return p.ExposedName
}

// writeObj prints one JSON object, indented like the arrays of the list
// verbs.
func writeObj(out io.Writer, o obj) error {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(o)
}
