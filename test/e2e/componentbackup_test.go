package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
)

// componentBackupSpec is a component-mode full backup (VSS_CTX_BACKUP,
// auto-release) of one writer's components, as a backup application does
// it: select the components, snapshot the volumes, check the writer's
// status and the snapshots' consistency, copy the files out, mark the
// components backed up, BackupComplete.
type componentBackupSpec struct {
	classID uuid.UUID // the writer class
	// components are the component names (logical path "") to select;
	// none selects every component the writer declared.
	components []string
	volumes    []string
	// copyOut runs after the writer's status and the snapshots'
	// consistency were checked and before the snapshots go: devices maps
	// each original volume to the device path of its snapshot; comps are
	// the selected components as the writer declared them.
	copyOut func(devices map[string]string, comps []*document.Component) error
}

// componentBackupResult is what the requester saw.
type componentBackupResult struct {
	session    uuid.UUID
	components []*document.Component // as the writer declared them
	// status is the writer's after DoSnapshotSet; set whenever the
	// backup got that far, also when it failed there.
	status *client.WriterStatus
	// written is the writer's part of the Backup Components Document
	// after DoSnapshotSet, with what the writer wrote into it (backup
	// metadata, stamps); set when the backup succeeded.
	written *document.WriterComponents
}

// componentBackup runs spec and returns an error naming the step that
// failed, with the writer's failure code and message when it was the
// writer (the error then wraps nothing: check res.status).
func componentBackup(t *testing.T, socket string, spec componentBackupSpec) (componentBackupResult, error) {
	t.Helper()
	var res componentBackupResult
	ctx := context.Background()
	wait := func(a *client.Async, err error) error {
		if err != nil {
			return err
		}
		return a.Wait(ctx)
	}
	err := client.Run(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		var err error
		if res.session, err = bc.GetSessionID(ctx); err != nil {
			return err
		}
		if err := bc.SetBackupState(ctx, true, false, vss.BackupFull, false); err != nil {
			return err
		}
		if err := wait(bc.GatherWriterMetadata(ctx)); err != nil {
			return err
		}
		n, err := bc.GetWriterMetadataCount(ctx)
		if err != nil {
			return err
		}
		var (
			inst uuid.UUID
			md   *document.WriterMetadata
		)
		for i := range n {
			id, m, err := bc.GetWriterMetadata(ctx, i)
			if err != nil {
				return err
			}
			if m.Identity.WriterID == spec.classID {
				inst, md = id, m
			}
		}
		if md == nil {
			return fmt.Errorf("no writer of class %s among the %d that answered Identify", spec.classID, n)
		}
		if len(spec.components) == 0 {
			for i := range md.Components {
				res.components = append(res.components, &md.Components[i])
			}
		}
		for _, name := range spec.components {
			c := md.Component("", name)
			if c == nil {
				return fmt.Errorf("writer %s declares no component %q", md.Identity.FriendlyName, name)
			}
			res.components = append(res.components, c)
		}
		for _, c := range res.components {
			if err := bc.AddComponent(ctx, inst, spec.classID, c.Type, c.LogicalPath, c.Name); err != nil {
				return err
			}
		}
		if _, err := bc.StartSnapshotSet(ctx); err != nil {
			return err
		}
		snaps := map[string]uuid.UUID{}
		for _, vol := range spec.volumes {
			if snaps[vol], err = bc.AddToSnapshotSet(ctx, vol, uuid.Nil); err != nil {
				return err
			}
		}
		if err := wait(bc.PrepareForBackup(ctx)); err != nil {
			return err
		}
		doErr := wait(bc.DoSnapshotSet(ctx))
		if err := wait(bc.GatherWriterStatus(ctx)); err != nil {
			return err
		}
		if res.status, err = writerStatusOf(ctx, bc, inst); err != nil {
			return err
		}
		if doErr != nil {
			return fmt.Errorf("DoSnapshotSet: %w", doErr)
		}
		if st := res.status; st.State != vss.WSWaitingForBackupComplete || st.Failure.Failed() {
			return fmt.Errorf("writer status %s %s %q", st.State, st.Failure, st.ApplicationMessage)
		}
		if res.written, err = writerComponentsOf(ctx, bc, inst); err != nil {
			return err
		}
		devices := map[string]string{}
		for vol, id := range snaps {
			sp, err := bc.GetSnapshotProperties(ctx, id)
			if err != nil {
				return err
			}
			if sp.Consistency != "application" {
				return fmt.Errorf("snapshot of %s: consistency %s (%s)", vol, sp.Consistency, sp.ConsistencyReason)
			}
			devices[vol] = sp.DevicePath
		}
		if spec.copyOut != nil {
			if err := spec.copyOut(devices, res.components); err != nil {
				return fmt.Errorf("copying out of the snapshot: %w", err)
			}
		}
		for _, c := range res.components {
			if err := bc.SetBackupSucceeded(ctx, inst, spec.classID, c.Type, c.LogicalPath, c.Name, true); err != nil {
				return err
			}
		}
		return wait(bc.BackupComplete(ctx))
	})
	return res, err
}

// writerStatusOf returns the status of one writer instance.
func writerStatusOf(ctx context.Context, bc *client.BackupComponents, inst uuid.UUID) (*client.WriterStatus, error) {
	n, err := bc.GetWriterStatusCount(ctx)
	if err != nil {
		return nil, err
	}
	for i := range n {
		st, err := bc.GetWriterStatus(ctx, i)
		if err != nil {
			return nil, err
		}
		if st.InstanceID == inst {
			return &st, nil
		}
	}
	return nil, fmt.Errorf("no status for writer instance %s among %d", inst, n)
}

// writerComponentsOf returns one writer instance's part of the Backup
// Components Document.
func writerComponentsOf(ctx context.Context, bc *client.BackupComponents, inst uuid.UUID) (*document.WriterComponents, error) {
	n, err := bc.GetWriterComponentsCount(ctx)
	if err != nil {
		return nil, err
	}
	for i := range n {
		wc, err := bc.GetWriterComponents(ctx, i)
		if err != nil {
			return nil, err
		}
		if wc.InstanceID == inst {
			return wc, nil
		}
	}
	return nil, fmt.Errorf("no components of writer instance %s in the Backup Components Document", inst)
}

// copyTree copies dir, as seen in a snapshot (device standing for the
// original volume vol), to dst with owners, modes and times kept: the
// writable copy a restore would produce.
func copyTree(device, vol, dir, dst string) error {
	rel, err := filepath.Rel(vol, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("%s is not on %s", dir, vol)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := exec.Command("cp", "-a", filepath.Join(device, rel), dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a: %v: %s", err, out)
	}
	return nil
}
