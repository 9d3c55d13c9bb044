package document

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Phase is the writer event during which a writer returns its edited copy
// of the BCD. It decides which fields the writer may change (vss-reference §3.8,
// D1).
type Phase int

// Phases. The zero value is PhaseReadOnly so that a caller that forgets to
// name the phase grants nothing.
const (
	// PhaseReadOnly is every event without BCD write access (Identify,
	// PrepareForSnapshot, Freeze, Thaw, Abort, BackupComplete,
	// BackupShutdown): any difference is refused.
	PhaseReadOnly Phase = iota
	// PhasePrepareBackup is the PrepareForBackup event.
	PhasePrepareBackup
	// PhasePostSnapshot is the PostSnapshot event.
	PhasePostSnapshot
	// PhasePreRestore is the PreRestore event.
	PhasePreRestore
	// PhasePostRestore is the PostRestore event: only the post-restore
	// failure message and the component failure may be set.
	PhasePostRestore
)

var phaseNames = map[Phase]string{
	PhaseReadOnly: "read-only", PhasePrepareBackup: "PrepareForBackup", PhasePostSnapshot: "PostSnapshot",
	PhasePreRestore: "PreRestore", PhasePostRestore: "PostRestore",
}

func (p Phase) String() string {
	if n, ok := phaseNames[p]; ok {
		return n
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

type phaseSet uint8

func phases(ps ...Phase) phaseSet {
	var s phaseSet
	for _, p := range ps {
		s |= 1 << p
	}
	return s
}

func (s phaseSet) has(p Phase) bool { return p >= 0 && p < 8 && s&(1<<p) != 0 }

func (s phaseSet) String() string {
	var out []string
	for p := PhasePrepareBackup; p <= PhasePostRestore; p++ {
		if s.has(p) {
			out = append(out, p.String())
		}
	}
	return strings.Join(out, ", ")
}

var (
	backupPhases = phases(PhasePrepareBackup, PhasePostSnapshot)
	requester    phaseSet // owned by the requester (or identity): writers never change it
)

// fieldRule says who may change one field of a component, and how.
type fieldRule struct {
	name   string   // the XML attribute or element, as errors name it
	writer phaseSet // phases in which the writer may change it
	// get returns the field; reflect.DeepEqual compares old and new, and
	// set copies the writer's value into the document.
	get func(*ComponentState) any
	set func(dst, src *ComponentState)
	// special, if set, adds the field's own rule (set-once, add-only, ...).
	special func(b *BackupComponents, old, new *ComponentState) *vsserr.Error
}

// componentRules lists every field of ComponentState except the key
// (logicalPath, componentName), which locates the component.
var componentRules = []fieldRule{
	{name: "componentType", writer: requester,
		get: func(c *ComponentState) any { return c.Type }, set: func(d, s *ComponentState) { d.Type = s.Type }},
	{name: "backupStamp", writer: backupPhases,
		get: func(c *ComponentState) any { return c.BackupStamp }, set: func(d, s *ComponentState) { d.BackupStamp = s.BackupStamp }},
	{name: "previousBackupStamp", writer: requester,
		get: func(c *ComponentState) any { return c.PreviousBackupStamp },
		set: func(d, s *ComponentState) { d.PreviousBackupStamp = s.PreviousBackupStamp }},
	{name: "backupOptions", writer: requester,
		get: func(c *ComponentState) any { return c.BackupOptions }, set: func(d, s *ComponentState) { d.BackupOptions = s.BackupOptions }},
	{name: "restoreOptions", writer: requester,
		get: func(c *ComponentState) any { return c.RestoreOptions }, set: func(d, s *ComponentState) { d.RestoreOptions = s.RestoreOptions }},
	{name: "backupSucceeded", writer: requester,
		get: func(c *ComponentState) any { return c.BackupSucceeded }, set: func(d, s *ComponentState) { d.BackupSucceeded = s.BackupSucceeded }},
	{name: "BACKUP_METADATA", writer: backupPhases,
		get: func(c *ComponentState) any { return c.BackupMetadata },
		set: func(d, s *ComponentState) { d.BackupMetadata = cloneString(s.BackupMetadata) },
		special: func(_ *BackupComponents, old, _ *ComponentState) *vsserr.Error {
			// SetBackupMetadata works once; a second write is refused.
			if old.BackupMetadata != nil {
				return vsserr.New(vsserr.ObjectAlreadyExists, "BACKUP_METADATA is already set; a writer sets it once")
			}
			return nil
		}},
	{name: "RESTORE_METADATA", writer: phases(PhasePreRestore),
		get: func(c *ComponentState) any { return c.RestoreMetadata },
		set: func(d, s *ComponentState) { d.RestoreMetadata = cloneString(s.RestoreMetadata) }},
	{name: "selectedForRestore", writer: requester,
		get: func(c *ComponentState) any { return c.SelectedForRestore },
		set: func(d, s *ComponentState) { d.SelectedForRestore = s.SelectedForRestore }},
	{name: "additionalRestores", writer: requester,
		get: func(c *ComponentState) any { return c.AdditionalRestores },
		set: func(d, s *ComponentState) { d.AdditionalRestores = s.AdditionalRestores }},
	{name: "restoreTarget", writer: phases(PhasePreRestore),
		get: func(c *ComponentState) any { return c.RestoreTarget }, set: func(d, s *ComponentState) { d.RestoreTarget = s.RestoreTarget }},
	{name: "fileRestoreStatus", writer: requester,
		get: func(c *ComponentState) any { return c.FileRestoreStatus },
		set: func(d, s *ComponentState) { d.FileRestoreStatus = s.FileRestoreStatus }},
	{name: "prepareForBackupFailureMsg", writer: phases(PhasePrepareBackup),
		get: func(c *ComponentState) any { return c.PrepareForBackupFailureMsg },
		set: func(d, s *ComponentState) { d.PrepareForBackupFailureMsg = s.PrepareForBackupFailureMsg }},
	{name: "postSnapshotFailureMsg", writer: phases(PhasePostSnapshot),
		get: func(c *ComponentState) any { return c.PostSnapshotFailureMsg },
		set: func(d, s *ComponentState) { d.PostSnapshotFailureMsg = s.PostSnapshotFailureMsg }},
	{name: "preRestoreFailureMsg", writer: phases(PhasePreRestore),
		get: func(c *ComponentState) any { return c.PreRestoreFailureMsg },
		set: func(d, s *ComponentState) { d.PreRestoreFailureMsg = s.PreRestoreFailureMsg }},
	{name: "postRestoreFailureMsg", writer: phases(PhasePostRestore),
		get: func(c *ComponentState) any { return c.PostRestoreFailureMsg },
		set: func(d, s *ComponentState) { d.PostRestoreFailureMsg = s.PostRestoreFailureMsg }},
	{name: "FAILURE", writer: phases(PhasePrepareBackup, PhasePostSnapshot, PhasePreRestore, PhasePostRestore),
		get: func(c *ComponentState) any { return c.Failure },
		set: func(d, s *ComponentState) {
			d.Failure = nil
			if s.Failure != nil {
				f := *s.Failure
				d.Failure = &f
			}
		}},
	{name: "authoritativeRestore", writer: requester,
		get: func(c *ComponentState) any { return c.AuthoritativeRestore },
		set: func(d, s *ComponentState) { d.AuthoritativeRestore = s.AuthoritativeRestore }},
	{name: "rollForwardType", writer: requester,
		get: func(c *ComponentState) any { return c.RollForwardType },
		set: func(d, s *ComponentState) { d.RollForwardType = s.RollForwardType }},
	{name: "rollForwardPoint", writer: requester,
		get: func(c *ComponentState) any { return c.RollForwardPoint },
		set: func(d, s *ComponentState) { d.RollForwardPoint = s.RollForwardPoint }},
	{name: "restoreName", writer: requester,
		get: func(c *ComponentState) any { return c.RestoreName }, set: func(d, s *ComponentState) { d.RestoreName = s.RestoreName }},
	{name: "PARTIAL_FILE", writer: backupPhases,
		get: func(c *ComponentState) any { return c.PartialFiles },
		set: func(d, s *ComponentState) { d.PartialFiles = slices.Clone(s.PartialFiles) },
		special: func(b *BackupComponents, old, new *ComponentState) *vsserr.Error {
			if !b.PartialFileSupport {
				return vsserr.New(vsserr.BadState, "PARTIAL_FILE: the requester did not enable partial file support")
			}
			return addOnly("PARTIAL_FILE", old.PartialFiles, new.PartialFiles)
		}},
	{name: "DIFFERENCED_FILE", writer: backupPhases,
		get: func(c *ComponentState) any { return c.DifferencedFiles },
		set: func(d, s *ComponentState) { d.DifferencedFiles = slices.Clone(s.DifferencedFiles) },
		special: func(_ *BackupComponents, old, new *ComponentState) *vsserr.Error {
			return addOnly("DIFFERENCED_FILE", old.DifferencedFiles, new.DifferencedFiles)
		}},
	{name: "DIRECTED_TARGET", writer: phases(PhasePreRestore),
		get: func(c *ComponentState) any { return c.DirectedTargets },
		set: func(d, s *ComponentState) { d.DirectedTargets = slices.Clone(s.DirectedTargets) },
		special: func(_ *BackupComponents, old, new *ComponentState) *vsserr.Error {
			// AddDirectedTarget needs the directed restore target; the new
			// target may be set in the same edit.
			if new.RestoreTarget != vss.RTDirected {
				return vsserr.New(vsserr.BadState, "DIRECTED_TARGET: the restore target is %s, not VSS_RT_DIRECTED", new.RestoreTarget)
			}
			return addOnly("DIRECTED_TARGET", old.DirectedTargets, new.DirectedTargets)
		}},
	{name: "RESTORE_SUBCOMPONENT", writer: requester,
		get: func(c *ComponentState) any { return c.RestoreSubcomponents },
		set: func(d, s *ComponentState) { d.RestoreSubcomponents = slices.Clone(s.RestoreSubcomponents) }},
	{name: "ALTERNATE_LOCATION_MAPPING", writer: requester,
		get: func(c *ComponentState) any { return c.AlternateLocationMappings },
		set: func(d, s *ComponentState) { d.AlternateLocationMappings = slices.Clone(s.AlternateLocationMappings) }},
	{name: "NEW_TARGET", writer: requester,
		get: func(c *ComponentState) any { return c.NewTargets },
		set: func(d, s *ComponentState) { d.NewTargets = slices.Clone(s.NewTargets) }},
}

// addOnly: the writer API only has Add* calls for these lists, so an edit
// may append entries but not change or drop the ones already recorded.
func addOnly[T comparable](name string, old, new []T) *vsserr.Error {
	if len(new) < len(old) || !slices.Equal(old, new[:len(old)]) {
		return vsserr.New(vsserr.BadState, "%s: a writer can only add entries, not change or remove them", name)
	}
	return nil
}

// sameValue compares two field values; nil and empty slices are the same
// (a document read back from XML has nil where the writer may have []).
func sameValue(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Kind() == reflect.Slice && vb.Kind() == reflect.Slice && va.Len() == 0 && vb.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// ApplyWriterEdits merges into b what one writer instance changed in its
// copy of its WRITER_COMPONENTS (the one ForWriter gave it) during phase.
// Only fields the writer owns in that phase may differ; anything else is
// refused, naming the field: VSS_E_BAD_STATE for a field the writer may not
// change (now, or ever; renaming a component included),
// VSS_E_OBJECT_ALREADY_EXISTS for a second backup metadata,
// VSS_E_OBJECT_NOT_FOUND for a component b does not hold,
// E_INVALIDARG for a value the document cannot hold. Components the writer
// left out of its copy are unchanged. The merge is all or nothing: on error
// b is unchanged.
func (b *BackupComponents) ApplyWriterEdits(phase Phase, instanceID uuid.UUID, edited *WriterComponents) error {
	if edited == nil {
		return vsserr.New(vsserr.InvalidArg, "ApplyWriterEdits: no writer components")
	}
	w := b.Writer(instanceID)
	if w == nil {
		return vsserr.New(vsserr.ObjectNotFound, "writer instance %s has no components in the document", instanceID)
	}
	switch {
	case edited.InstanceID != w.InstanceID:
		return writerFieldErr("instanceId", edited.InstanceID, w.InstanceID)
	case edited.WriterID != w.WriterID:
		return writerFieldErr("writerId", edited.WriterID, w.WriterID)
	case edited.InstanceName != w.InstanceName:
		return writerFieldErr("instanceName", edited.InstanceName, w.InstanceName)
	case edited.BackupSchema != w.BackupSchema:
		return writerFieldErr("backupSchema", edited.BackupSchema, w.BackupSchema)
	}

	merged := w.clone()
	seen := map[componentKey]bool{}
	for i := range edited.Components {
		ec := &edited.Components[i]
		where := componentWhere(ec.LogicalPath, ec.Name)
		if checkDuplicate(seen, ec.LogicalPath, ec.Name) != "" {
			return vsserr.New(vsserr.InvalidArg, "%s appears twice in the writer's copy", where)
		}
		dst := merged.Component(ec.LogicalPath, ec.Name)
		if dst == nil {
			// Components are matched by their key. When the writer's copy
			// has as many components as the document, one that matches
			// nothing is the one at the same place, renamed.
			if len(edited.Components) == len(w.Components) {
				orig := &w.Components[i]
				field, was, now := "componentName", orig.Name, ec.Name
				if orig.LogicalPath != ec.LogicalPath {
					field, was, now = "logicalPath", orig.LogicalPath, ec.LogicalPath
				}
				return vsserr.New(vsserr.BadState, "%s: %s changed from %q to %q; a writer may not rename a component",
					componentWhere(orig.LogicalPath, orig.Name), field, was, now)
			}
			return vsserr.New(vsserr.ObjectNotFound, "writer instance %s has no %s in the document", instanceID, where)
		}
		old := dst.clone()
		for _, f := range componentRules {
			if sameValue(f.get(&old), f.get(ec)) {
				continue
			}
			if err := f.allowed(b, phase, &old, ec); err != nil {
				err.Msg = where + ": " + err.Msg
				return err
			}
			f.set(dst, ec)
		}
		// Keep b writable: refuse values the document cannot carry.
		if r := checkComponentState(dst); r != "" {
			return vsserr.New(vsserr.InvalidArg, "%s: %s", where, r)
		}
		if err := validateComponentChildren(dst, where); err != nil {
			return vsserr.New(vsserr.InvalidArg, "%s", vsserr.Message(err))
		}
	}
	probe := &BackupComponents{Version: b.Version, BackupType: b.BackupType, RestoreType: b.RestoreType,
		Writers: []WriterComponents{merged}}
	if _, err := probe.encode(); err != nil {
		return vsserr.New(vsserr.InvalidArg, "%s", vsserr.Message(err))
	}
	w.Components = merged.Components
	return nil
}

func (f *fieldRule) allowed(b *BackupComponents, phase Phase, old, new *ComponentState) *vsserr.Error {
	if f.writer == requester {
		return vsserr.New(vsserr.BadState, "%s is set by the requester; a writer may not change it", f.name)
	}
	if !f.writer.has(phase) {
		return vsserr.New(vsserr.BadState, "a writer may change %s only during %s, not during %s", f.name, f.writer, phase)
	}
	if f.special != nil {
		return f.special(b, old, new)
	}
	return nil
}

func writerFieldErr(name string, got, want any) error {
	return vsserr.New(vsserr.BadState, "WRITER_COMPONENTS %s is %v in the writer's copy but %v in the document; a writer may not change it",
		name, got, want)
}
