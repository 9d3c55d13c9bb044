package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
)

// TestBackupSequenceTwoWriterProcesses is the core issue's main check: the
// real lvssd over its socket, two writer processes built on the SDK, the
// whole backup sequence through the Go client, events in spec order, and
// the writers' BCD edits back through SaveAsXML.
func TestBackupSequenceTwoWriterProcesses(t *testing.T) {
	d := startDaemon(t, shortTimeouts)
	front := d.startWriter(t, "alpha", "front-end")
	back := d.startWriter(t, "beta", "back-end")
	d.waitWriters(t, 2)

	ctx := context.Background()
	conn, err := client.Dial(ctx, d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bc, err := conn.NewBackupComponents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	wait := func(what string, a *client.Async, err error) {
		t.Helper()
		step(what, err)
		step(what+" (wait)", a.Wait(ctx))
	}
	step("InitializeForBackup", bc.InitializeForBackup(ctx, ""))
	step("SetBackupState", bc.SetBackupState(ctx, true, false, vss.BackupFull, false))
	a, err := bc.GatherWriterMetadata(ctx)
	wait("GatherWriterMetadata", a, err)
	n, err := bc.GetWriterMetadataCount(ctx)
	step("GetWriterMetadataCount", err)
	if n != 2 {
		t.Fatalf("%d writers gathered", n)
	}
	for i := range n {
		inst, md, err := bc.GetWriterMetadata(ctx, i)
		step("GetWriterMetadata", err)
		for _, c := range md.Components {
			step("AddComponent", bc.AddComponent(ctx, inst, md.Identity.WriterID, c.Type, c.LogicalPath, c.Name))
		}
	}
	_, err = bc.StartSnapshotSet(ctx)
	step("StartSnapshotSet", err)
	a, err = bc.PrepareForBackup(ctx)
	wait("PrepareForBackup", a, err)
	a, err = bc.DoSnapshotSet(ctx)
	wait("DoSnapshotSet", a, err)
	a, err = bc.GatherWriterStatus(ctx)
	wait("GatherWriterStatus", a, err)
	for i := range 2 {
		st, err := bc.GetWriterStatus(ctx, i)
		step("GetWriterStatus", err)
		if st.State != vss.WSWaitingForBackupComplete || st.Failure.Failed() {
			t.Fatalf("writer %s: %s %s", st.Name, st.State, st.Failure)
		}
	}
	x, err := bc.SaveAsXML(ctx)
	step("SaveAsXML", err)
	for _, want := range []string{"alpha-stamp", "alpha-metadata", "beta-stamp", "beta-metadata"} {
		if !strings.Contains(x, want) {
			t.Fatalf("SaveAsXML lacks the writer edit %q:\n%s", want, x)
		}
	}
	a, err = bc.BackupComplete(ctx)
	wait("BackupComplete", a, err)
	rel, err := bc.Release(ctx)
	step("Release", err)
	if rel.Aborted || len(rel.ShutdownWriters) != 2 {
		t.Fatalf("release: %+v", rel)
	}

	want := []string{"PrepareForBackup", "PrepareForSnapshot", "Freeze", "Thaw", "PostSnapshot", "BackupComplete", "BackupShutdown"}
	for _, w := range []*writerProc{front, back} {
		eventually(t, 5*time.Second, w.name+" BackupShutdown", func() bool { return len(w.events(t)) >= len(want) })
		if got := w.events(t); !slices.Equal(got, want) {
			t.Fatalf("%s saw %v, want %v", w.name, got, want)
		}
	}
	// Freeze front-end first, Thaw in reverse (D5).
	if !front.eventTime(t, "Freeze").Before(back.eventTime(t, "Freeze")) {
		t.Fatal("the back-end writer froze before the front-end one")
	}
	if !back.eventTime(t, "Thaw").Before(front.eventTime(t, "Thaw")) {
		t.Fatal("the front-end writer thawed before the back-end one")
	}
}

func TestWriterVetoAtFreezeOverProcesses(t *testing.T) {
	d := startDaemon(t, shortTimeouts)
	bad := d.startWriter(t, "bad", "front-end", "--fail-at", "Freeze")
	good := d.startWriter(t, "good", "back-end")
	d.waitWriters(t, 2)
	ctx := context.Background()
	err := client.Run(ctx, d.socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return err
		}
		if err := bc.SetBackupState(ctx, false, false, vss.BackupCopy, false); err != nil {
			return err
		}
		for _, op := range []func(context.Context) (*client.Async, error){bc.GatherWriterMetadata} {
			a, err := op(ctx)
			if err != nil {
				return err
			}
			if err := a.Wait(ctx); err != nil {
				return err
			}
		}
		if _, err := bc.StartSnapshotSet(ctx); err != nil {
			return err
		}
		for _, op := range []func(context.Context) (*client.Async, error){bc.PrepareForBackup, bc.DoSnapshotSet, bc.GatherWriterStatus} {
			a, err := op(ctx)
			if err != nil {
				return err
			}
			if err := a.Wait(ctx); err != nil {
				return err
			}
		}
		for i := range 2 {
			st, err := bc.GetWriterStatus(ctx, i)
			if err != nil {
				return err
			}
			switch st.Name {
			case "bad":
				if st.State != vss.WSFailedAtFreeze || st.Failure.Name() != "VSS_E_WRITERERROR_RETRYABLE" ||
					!strings.Contains(st.ApplicationMessage, "told to fail at Freeze") {
					t.Errorf("bad writer status %+v", st)
				}
			case "good":
				if st.State != vss.WSWaitingForBackupComplete {
					t.Errorf("good writer status %+v", st)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "BackupShutdown", func() bool {
		return slices.Contains(bad.events(t), "BackupShutdown") && slices.Contains(good.events(t), "BackupShutdown")
	})
	if got := bad.events(t); !slices.Equal(got, []string{"PrepareForBackup", "PrepareForSnapshot", "Freeze", "Abort", "BackupShutdown"}) {
		t.Fatalf("vetoing writer saw %v", got)
	}
	if slices.Contains(good.events(t), "Abort") {
		t.Fatalf("the other writer got Abort: %v", good.events(t))
	}
}
