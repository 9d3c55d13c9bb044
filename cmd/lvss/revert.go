package main

import (
	"context"
	"fmt"
	"io"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vsserr"
)

func newRevertCommand(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "revert ID [--force]",
		Short: "Roll a volume back to one of its snapshots",
		Long: `Replace the live content of snapshot ID's volume with the snapshot's:
everything written to the volume since the snapshot is gone. The snapshot
itself and the volume's other snapshots stay.

Writers are not told (as on Windows), so the revert is refused while a
running writer has components on the volume, and, with the btrfs
provider, while processes have files or their working directory in it or
something is mounted below it (VSS_E_VOLUME_IN_USE, naming them). Stop
them first; --force reverts anyway: those processes keep reading the
old content through what they have open, and mounts below the volume
are detached. Only persistent snapshots can be
reverted to (VSS_E_UNSUPPORTED_CONTEXT). The btrfs provider reverts a
volume that is a subvolume of its own, not the filesystem's top level and
not mounted on its own with subvol= (VSS_E_VOLUME_NOT_SUPPORTED says which;
docs/provider-btrfs.md shows the layouts).

A revert cannot be cancelled; if lvssd is killed in the middle, it
finishes the revert when it starts again.

It runs RevertToSnapshot(ID, --force) and then QueryRevertStatus(volume)
in a session with context VSS_CTX_ALL. --json prints one object:
snapshot_id, volume, forced and status ("VSS_S_ASYNC_FINISHED").`,
		Example: `  lvss revert 6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b
  systemctl stop postgresql && lvss revert 6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b && systemctl start postgresql`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("snapshot ID", args[0])
			if err != nil {
				return err
			}
			return revert(cmd.Context(), g.socket, id, force, g.json, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "revert although a running writer or a process uses the volume (bForceDismount)")
	return cmd
}

// revertError gives a revert's failures advice of their own: the table's
// hints for these codes speak of snapshot creation.
type revertError struct{ error }

func revertFailed(call string, err error) error {
	if err == nil {
		return nil
	}
	return revertError{failed(call, err)}
}

func (e revertError) Unwrap() error { return e.error }

func (e revertError) Hint() string {
	switch vsserr.Code(e.error) {
	case vsserr.VolumeInUse:
		return "stop what the message names (a writer's application, processes using the volume), or run 'lvss revert ID --force': they keep the old content"
	case vsserr.VolumeNotSupported:
		return "the provider cannot swap this volume in place: see docs/provider-btrfs.md#revert for the layouts that allow a revert"
	case vsserr.RevertInProgress:
		return "the volume is being reverted already: wait for it (lvss events shows when it ends)"
	case vsserr.UnsupportedContext:
		return "only persistent snapshots can be reverted to: take one with lvss create shadow"
	case vsserr.NotImpl:
		return "this snapshot's provider cannot revert: see docs/providers.md"
	case vsserr.ObjectNotFound:
		return "check the ID: lvss list shadows shows the snapshots"
	}
	return ""
}

func revert(ctx context.Context, socket string, id uuid.UUID, force, asJSON bool, out io.Writer) error {
	var volume string
	err := adminSession(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		p, err := bc.GetSnapshotProperties(ctx, id)
		if err != nil {
			return revertFailed("GetSnapshotProperties "+guidText(id), err)
		}
		volume = p.OriginalVolume
		if err := bc.RevertToSnapshot(ctx, id, force); err != nil {
			return revertFailed("RevertToSnapshot "+guidText(id), err)
		}
		// RevertToSnapshot returns when the revert is done; the status
		// confirms it as lvssd recorded it.
		a, err := bc.QueryRevertStatus(ctx, volume)
		if err == nil {
			err = a.Wait(ctx)
		}
		return revertFailed("QueryRevertStatus "+volume, err)
	})
	if err != nil {
		return err
	}
	if asJSON {
		return writeObj(out, obj{{"snapshot_id", guidText(id)}, {"volume", volume}, {"forced", force},
			{"status", vsserr.AsyncFinished.Name()}})
	}
	_, err = fmt.Fprintf(out, "Volume %s is reverted to shadow copy %s\n", volume, guidText(id))
	return err
}
