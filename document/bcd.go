package document

import (
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// BCDNamespace is the default namespace of a Backup Components Document.
const BCDNamespace = "x-schema:#VssComponentMetadata"

// BackupComponents is a Backup Components Document (vss-reference §6.3): the
// requester's record of one backup or restore, which writers annotate.
type BackupComponents struct {
	Version                   string // "1.2"; empty is written as Version
	BootableSystemStateBackup bool
	SelectComponents          bool
	PartialFileSupport        bool
	BackupType                vss.BackupType
	RestoreType               vss.RestoreType
	SnapshotSetID             uuid.UUID // attribute snapshotSetId, omitted when zero
	Writers                   []WriterComponents
	SnapshotSet               *SnapshotSetRecord // child SNAPSHOT_SET (lvss naming)
}

// SnapshotSetRecord is the SNAPSHOT_SET element: what the requester needs
// to find the snapshots of the set again (import, restore).
type SnapshotSetRecord struct {
	ID        uuid.UUID
	Context   int32 // _VSS_SNAPSHOT_CONTEXT
	Snapshots []SnapshotRecord
}

// SnapshotRecord is a SNAPSHOT inside SNAPSHOT_SET.
type SnapshotRecord struct {
	ID             uuid.UUID
	OriginalVolume string
	DevicePath     string
	ProviderID     uuid.UUID
	Attributes     uint32    // _VSS_VOLUME_SNAPSHOT_ATTRIBUTES
	Created        time.Time // FILETIME in XML; zero = omitted
}

// WriterComponents is one WRITER_COMPONENTS element: the components the
// requester added for one writer instance.
type WriterComponents struct {
	InstanceID   uuid.UUID
	WriterID     uuid.UUID
	InstanceName string
	BackupSchema uint32
	Components   []ComponentState
}

// ComponentState is a COMPONENT of the BCD (vss-reference §3.8). Who may set each
// field, and when, is enforced by ApplyWriterEdits.
type ComponentState struct {
	LogicalPath string
	Name        string
	Type        vss.ComponentType

	BackupStamp         string // writer
	PreviousBackupStamp string // requester
	BackupOptions       string // requester
	RestoreOptions      string // requester
	BackupSucceeded     bool   // requester
	// BackupMetadata and RestoreMetadata are writer-private; nil means never
	// set, which set-once semantics need to tell apart from "set to empty".
	BackupMetadata  *string
	RestoreMetadata *string

	SelectedForRestore bool                  // requester
	AdditionalRestores bool                  // requester
	RestoreTarget      vss.RestoreTarget     // writer, PreRestore
	FileRestoreStatus  vss.FileRestoreStatus // requester

	PrepareForBackupFailureMsg string
	PostSnapshotFailureMsg     string
	PreRestoreFailureMsg       string
	PostRestoreFailureMsg      string
	Failure                    *ComponentFailure

	AuthoritativeRestore bool                // requester
	RollForwardType      vss.RollForwardType // requester
	RollForwardPoint     string              // requester
	RestoreName          string              // requester

	PartialFiles              []PartialFile         // writer, backup
	DifferencedFiles          []DifferencedFile     // writer, backup
	DirectedTargets           []DirectedTarget      // writer, PreRestore
	RestoreSubcomponents      []RestoreSubcomponent // requester
	AlternateLocationMappings []AlternateMapping    // requester: the mappings used
	NewTargets                []FileDesc            // requester
}

// PartialFile is a PARTIAL_FILE: only the ranges of a file are backed up.
type PartialFile struct {
	Path     string
	Filename string
	Ranges   string // "offset:length,..." or the path of a ranges file (vss-reference §6.4)
	Metadata string
}

// DifferencedFile is a DIFFERENCED_FILE: back up only if changed since.
type DifferencedFile struct {
	Path           string
	Filespec       string
	Recursive      bool
	LSN            string
	LastModifyTime time.Time // FILETIME in XML; zero = omitted
}

// DirectedTarget is a DIRECTED_TARGET: restore source ranges to a destination.
type DirectedTarget struct {
	SourcePath, SourceFilename, SourceRanges                string
	DestinationPath, DestinationFilename, DestinationRanges string
}

// RestoreSubcomponent is a RESTORE_SUBCOMPONENT.
type RestoreSubcomponent struct {
	LogicalPath string
	Name        string
	Repair      bool
}

// ComponentFailure is the FAILURE element (IVssComponentEx2::SetFailure).
type ComponentFailure struct {
	HR            uint32
	ApplicationHR uint32
	Message       string
}

// Writer returns the WRITER_COMPONENTS of a writer instance, or nil.
func (b *BackupComponents) Writer(instanceID uuid.UUID) *WriterComponents {
	for i := range b.Writers {
		if b.Writers[i].InstanceID == instanceID {
			return &b.Writers[i]
		}
	}
	return nil
}

// Component returns the component with that logical path and name, or nil.
func (w *WriterComponents) Component(logicalPath, name string) *ComponentState {
	for i := range w.Components {
		if w.Components[i].LogicalPath == logicalPath && w.Components[i].Name == name {
			return &w.Components[i]
		}
	}
	return nil
}

// AddComponent records an explicitly included component, creating the
// writer instance's WRITER_COMPONENTS on first use. It fails with
// VSS_E_OBJECT_ALREADY_EXISTS when the instance already has (logicalPath,
// name), and with E_INVALIDARG for a bad name or type, or an instance
// already recorded under another writer class.
func (b *BackupComponents) AddComponent(instanceID, writerID uuid.UUID, instanceName string, backupSchema uint32,
	ct vss.ComponentType, logicalPath, name string) error {
	if r := checkName("component name", name); r != "" {
		return vsserr.New(vsserr.InvalidArg, "AddComponent: %s", r)
	}
	if _, ok := componentTypeWords.word(ct); !ok {
		return vsserr.New(vsserr.InvalidArg, "AddComponent: component type %s", ct)
	}
	w := b.Writer(instanceID)
	if w == nil {
		b.Writers = append(b.Writers, WriterComponents{
			InstanceID: instanceID, WriterID: writerID, InstanceName: instanceName, BackupSchema: backupSchema,
		})
		w = &b.Writers[len(b.Writers)-1]
	} else if w.WriterID != writerID {
		return vsserr.New(vsserr.InvalidArg, "AddComponent: writer instance %s belongs to writer class %s, not %s",
			instanceID, w.WriterID, writerID)
	}
	if w.Component(logicalPath, name) != nil {
		return vsserr.New(vsserr.ObjectAlreadyExists, "AddComponent: writer instance %s already has %s",
			instanceID, componentWhere(logicalPath, name))
	}
	w.Components = append(w.Components, ComponentState{LogicalPath: logicalPath, Name: name, Type: ct})
	return nil
}

// FindComponent finds a component by writer class ID, as the requester API
// names components (SetBackupSucceeded, SetSelectedForRestore, ...). When
// several instances of the class hold it, the first is returned.
func (b *BackupComponents) FindComponent(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string) (*WriterComponents, *ComponentState, error) {
	for i := range b.Writers {
		w := &b.Writers[i]
		if w.WriterID != writerID {
			continue
		}
		if c := w.Component(logicalPath, name); c != nil && c.Type == ct {
			return w, c, nil
		}
	}
	return nil, nil, vsserr.New(vsserr.ObjectNotFound, "writer %s has no %s %s", writerID, ct, componentWhere(logicalPath, name))
}

// ForWriter returns what one writer instance is shown: a copy with the
// document attributes and only that instance's WRITER_COMPONENTS (none if
// the instance has no component). The snapshot-set record is requester
// bookkeeping and is not shown.
func (b *BackupComponents) ForWriter(instanceID uuid.UUID) *BackupComponents {
	out := &BackupComponents{
		Version: b.Version, BootableSystemStateBackup: b.BootableSystemStateBackup,
		SelectComponents: b.SelectComponents, PartialFileSupport: b.PartialFileSupport,
		BackupType: b.BackupType, RestoreType: b.RestoreType, SnapshotSetID: b.SnapshotSetID,
	}
	if w := b.Writer(instanceID); w != nil {
		out.Writers = []WriterComponents{w.clone()}
	}
	return out
}

// Clone returns a deep copy.
func (b *BackupComponents) Clone() *BackupComponents {
	if b == nil {
		return nil
	}
	c := *b
	c.Writers = cloneSlice(b.Writers, WriterComponents.clone)
	if b.SnapshotSet != nil {
		s := *b.SnapshotSet
		s.Snapshots = slices.Clone(s.Snapshots)
		c.SnapshotSet = &s
	}
	return &c
}

func (w WriterComponents) clone() WriterComponents {
	w.Components = cloneSlice(w.Components, ComponentState.clone)
	return w
}

func (c ComponentState) clone() ComponentState {
	c.BackupMetadata = cloneString(c.BackupMetadata)
	c.RestoreMetadata = cloneString(c.RestoreMetadata)
	if c.Failure != nil {
		f := *c.Failure
		c.Failure = &f
	}
	c.PartialFiles = slices.Clone(c.PartialFiles)
	c.DifferencedFiles = slices.Clone(c.DifferencedFiles)
	c.DirectedTargets = slices.Clone(c.DirectedTargets)
	c.RestoreSubcomponents = slices.Clone(c.RestoreSubcomponents)
	c.AlternateLocationMappings = slices.Clone(c.AlternateLocationMappings)
	c.NewTargets = slices.Clone(c.NewTargets)
	return c
}

func cloneString(p *string) *string {
	if p == nil {
		return nil
	}
	s := *p
	return &s
}

// Validate reports whether the document can be written and read back:
// VSS_E_INVALID_XML_DOCUMENT naming the first offending item, else nil.
func (b *BackupComponents) Validate() error {
	if err := b.validateModel(); err != nil {
		return err
	}
	_, err := b.encode()
	return err
}

func (b *BackupComponents) validateModel() error {
	if r := checkVersion(b.Version, true); r != "" {
		return modelErr("BACKUP_COMPONENTS", r)
	}
	if r := checkBCDEnums(b); r != "" {
		return modelErr("BACKUP_COMPONENTS", r)
	}
	if s := b.SnapshotSet; s != nil {
		if r := checkSnapshotSetID(b.SnapshotSetID, s.ID); r != "" {
			return modelErr("SNAPSHOT_SET", r)
		}
		seen := map[uuid.UUID]bool{}
		for i := range s.Snapshots {
			if r := checkSnapshot(&s.Snapshots[i], seen); r != "" {
				return modelErr("SNAPSHOT_SET "+itemName("SNAPSHOT", i), r)
			}
		}
	}
	instances := map[uuid.UUID]bool{}
	for i := range b.Writers {
		w := &b.Writers[i]
		where := fmt.Sprintf("WRITER_COMPONENTS instanceId %s", w.InstanceID)
		if r := checkInstance(instances, w.InstanceID); r != "" {
			return modelErr(where, r)
		}
		seen := map[componentKey]bool{}
		for j := range w.Components {
			c := &w.Components[j]
			cw := where + " " + componentWhere(c.LogicalPath, c.Name)
			if r := checkComponentState(c); r != "" {
				return modelErr(cw, r)
			}
			if r := checkDuplicate(seen, c.LogicalPath, c.Name); r != "" {
				return modelErr(cw, r)
			}
			if err := validateComponentChildren(c, cw); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateComponentChildren(c *ComponentState, where string) error {
	for i := range c.PartialFiles {
		if r := checkPartialFile(&c.PartialFiles[i]); r != "" {
			return modelErr(where+" "+itemName("PARTIAL_FILE", i), r)
		}
	}
	for i := range c.DifferencedFiles {
		if r := checkDifferencedFile(&c.DifferencedFiles[i]); r != "" {
			return modelErr(where+" "+itemName("DIFFERENCED_FILE", i), r)
		}
	}
	for i := range c.DirectedTargets {
		if r := checkDirectedTarget(&c.DirectedTargets[i]); r != "" {
			return modelErr(where+" "+itemName("DIRECTED_TARGET", i), r)
		}
	}
	for i := range c.RestoreSubcomponents {
		if r := checkName("componentName", c.RestoreSubcomponents[i].Name); r != "" {
			return modelErr(where+" "+itemName("RESTORE_SUBCOMPONENT", i), r)
		}
	}
	for i := range c.AlternateLocationMappings {
		if r := checkMapping(&c.AlternateLocationMappings[i]); r != "" {
			return modelErr(where+" "+itemName("ALTERNATE_LOCATION_MAPPING", i), r)
		}
	}
	for i := range c.NewTargets {
		if r := checkFileDesc(&c.NewTargets[i], newTargetFile); r != "" {
			return modelErr(where+" "+itemName("NEW_TARGET", i), r)
		}
	}
	return nil
}

func checkBCDEnums(b *BackupComponents) string {
	if _, ok := backupTypeWords.word(b.BackupType); !ok {
		return fmt.Sprintf("backupType %s has no XML spelling", b.BackupType)
	}
	if _, ok := restoreTypeWords.word(b.RestoreType); !ok {
		return fmt.Sprintf("restoreType %s has no XML spelling", b.RestoreType)
	}
	return ""
}

// checkSnapshotSetID: the root attribute and the record name one set.
func checkSnapshotSetID(root, record uuid.UUID) string {
	if root != uuid.Nil && record != root {
		return fmt.Sprintf("snapshot set %s differs from the document's snapshotSetId %s", record, root)
	}
	return ""
}

func checkSnapshot(s *SnapshotRecord, seen map[uuid.UUID]bool) string {
	if seen[s.ID] {
		return fmt.Sprintf("duplicate snapshot %s", s.ID)
	}
	seen[s.ID] = true
	if _, ok := timeToFiletime(s.Created); !ok {
		return "creation time cannot be written as a FILETIME"
	}
	return ""
}

func checkInstance(seen map[uuid.UUID]bool, id uuid.UUID) string {
	if seen[id] {
		return fmt.Sprintf("duplicate WRITER_COMPONENTS for writer instance %s", id)
	}
	seen[id] = true
	return ""
}

// checkComponentState covers the attributes of COMPONENT; its children are
// checked one by one.
func checkComponentState(c *ComponentState) string {
	if r := checkName("componentName", c.Name); r != "" {
		return r
	}
	if _, ok := componentTypeWords.word(c.Type); !ok {
		return fmt.Sprintf("componentType %s has no XML spelling", c.Type)
	}
	if _, ok := restoreTargetWords.word(c.RestoreTarget); !ok {
		return fmt.Sprintf("restoreTarget %s has no XML spelling", c.RestoreTarget)
	}
	if _, ok := fileRestoreStatusWords.word(c.FileRestoreStatus); !ok {
		return fmt.Sprintf("fileRestoreStatus %s has no XML spelling", c.FileRestoreStatus)
	}
	if _, ok := rollForwardWords.word(c.RollForwardType); !ok {
		return fmt.Sprintf("rollForwardType %s has no XML spelling", c.RollForwardType)
	}
	return ""
}

func checkPartialFile(p *PartialFile) string {
	if p.Path == "" {
		return "path is empty"
	}
	if p.Filename == "" {
		return "filename is empty"
	}
	return ""
}

func checkDifferencedFile(d *DifferencedFile) string {
	if r := checkFileSet(d.Path, d.Filespec); r != "" {
		return r
	}
	if _, ok := timeToFiletime(d.LastModifyTime); !ok {
		return "lastModifyTime cannot be written as a FILETIME"
	}
	return ""
}

func checkDirectedTarget(d *DirectedTarget) string {
	switch {
	case d.SourcePath == "":
		return "sourcePath is empty"
	case d.SourceFilename == "":
		return "sourceFilename is empty"
	case d.DestinationPath == "":
		return "destinationPath is empty"
	case d.DestinationFilename == "":
		return "destinationFilename is empty"
	}
	return ""
}
