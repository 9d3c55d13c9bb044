package coordinator

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// TestWriterSeesAndChangesOnlyItsOwnComponents: each writer's event
// carries its own WRITER_COMPONENTS entry only, and an answer that
// carries another writer's entry, changed, is refused as a whole (L52):
// the writer fails the event with E_ACCESSDENIED beside its failure, the
// other writer's components keep what that writer set, and the event log
// names the writer that tried.
func TestWriterSeesAndChangesOnlyItsOwnComponents(t *testing.T) {
	e := newEnv(t, nil)
	honest := e.writer("honest", vss.LevelBackEnd, 0)
	thief := e.writer("thief", vss.LevelBackEnd, 0)
	var seen []uuid.UUID
	honest.edit[EvPrepareBackup] = func(b *document.BackupComponents, inst uuid.UUID) {
		b.Writer(inst).Components[0].BackupStamp = "honest-stamp"
	}
	thief.edit[EvPrepareBackup] = func(b *document.BackupComponents, inst uuid.UUID) {
		for _, w := range b.Writers {
			seen = append(seen, w.InstanceID)
		}
		// Forge the other writer's entry, as if it had been sent.
		b.Writers = append(b.Writers, document.WriterComponents{InstanceID: honest.h.InstanceID, WriterID: honest.h.Identity.ClassID,
			InstanceName: honest.h.Identity.InstanceName, Components: []document.ComponentState{{Name: "c0", Type: vss.ComponentFileGroup, BackupStamp: "forged"}}})
	}
	s := e.toMeta(vss.CtxBackup, true)
	e.addAll(s)
	e.toSet(s)
	must(t, e.wait(s.PrepareForBackup()))

	if len(seen) != 1 || seen[0] != thief.h.InstanceID {
		t.Fatalf("the thief's PrepareForBackup showed instances %v, want only its own %s", seen, thief.h.InstanceID)
	}
	st := e.status(s, "thief")
	if st.State != vss.WSFailedAtPrepareBackup || st.AppHRESULT != vsserr.AccessDenied || !strings.Contains(st.AppMessage, "not its own") {
		t.Fatalf("thief: %s %s %s %q, want FAILED_AT_PREPARE_BACKUP with E_ACCESSDENIED", st.State, st.Failure, st.AppHRESULT, st.AppMessage)
	}
	if st := e.status(s, "honest"); st.State.Failed() {
		t.Fatalf("honest writer failed: %s", st.State)
	}
	x, err := s.GetWriterComponents()
	must(t, err)
	bcd, err := document.ParseBackupComponents([]byte(x))
	must(t, err)
	if c := bcd.Writer(honest.h.InstanceID).Components[0]; c.BackupStamp != "honest-stamp" {
		t.Fatalf("the honest writer's component was changed: stamp %q", c.BackupStamp)
	}
	evs, _, err := e.c.QueryEvents(EventFilter{Code: vsserr.AccessDenied})
	must(t, err)
	if len(evs) != 1 || evs[0].Fields["writer"] != "thief" || evs[0].Fields["instance"] != thief.h.InstanceID.String() {
		t.Fatalf("events: %+v", evs)
	}
}
