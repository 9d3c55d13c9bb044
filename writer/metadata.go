package writer

import (
	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// DefaultBackupTypeMask is the file-set backup type mask used when a
// writer passes 0: every backup type must save the files, and from the
// snapshot (VSS_FSBT_ALL_BACKUP_REQUIRED | VSS_FSBT_ALL_SNAPSHOT_REQUIRED,
// the default of AddFilesToFileGroup).
const DefaultBackupTypeMask = 0xF0F

// Metadata builds the writer's Writer Metadata Document in Identify, in the
// manner of IVssCreateWriterMetadata. The identity part of the document is
// filled by the SDK from the Identity given to Run and the instance ID the
// coordinator assigned; whatever the writer puts there is overwritten.
//
// The Add methods check what only the builder can see (the component a file
// set goes to exists and has the right type); field rules (names, paths,
// filespecs) are checked once, by document validation, when Identify
// returns, and a failure names the offending item.
type Metadata struct {
	doc document.WriterMetadata
}

func newMetadata() *Metadata {
	return &Metadata{doc: document.WriterMetadata{Version: document.Version}}
}

// SetRestoreMethod sets the writer-wide restore method. service is required
// for STOP_RESTORE_START and RESTORE_STOP_START. A writer that sets none
// gets RESTORE_IF_CAN_REPLACE with writer restore NEVER.
func (m *Metadata) SetRestoreMethod(method vss.RestoreMethod, service, userProcedure string, writerRestore vss.WriterRestore, rebootRequired bool) {
	m.doc.RestoreMethod = document.RestoreMethod{
		Method: method, Service: service, UserProcedure: userProcedure,
		WriterRestore: writerRestore, RebootRequired: rebootRequired,
	}
}

// SetBackupSchema sets the VSS_BACKUP_SCHEMA mask: which backup types and
// features beyond a full backup the writer supports.
func (m *Metadata) SetBackupSchema(mask uint32) { m.doc.BackupSchema = mask }

// AddComponent adds a component. Files are added with AddFiles,
// AddDatabaseFiles and AddDatabaseLogFiles, or given in c directly.
// (logical path, name) must be unique within the writer.
func (m *Metadata) AddComponent(c document.Component) error {
	if m.doc.Component(c.LogicalPath, c.Name) != nil {
		return vsserr.New(vsserr.ObjectAlreadyExists, "AddComponent: component %q (logical path %q) already exists", c.Name, c.LogicalPath)
	}
	if c.Type != vss.ComponentFileGroup && c.Type != vss.ComponentDatabase {
		return vsserr.New(vsserr.InvalidArg, "AddComponent: component %q: type %s is neither database nor file group", c.Name, c.Type)
	}
	m.doc.Components = append(m.doc.Components, c)
	return nil
}

// component finds a component of the wanted type for an Add call.
func (m *Metadata) component(op, logicalPath, name string, want vss.ComponentType) (*document.Component, error) {
	c := m.doc.Component(logicalPath, name)
	if c == nil {
		return nil, vsserr.New(vsserr.ObjectNotFound, "%s: no component %q (logical path %q); add it first", op, name, logicalPath)
	}
	if c.Type != want {
		return nil, vsserr.New(vsserr.InvalidArg, "%s: component %q (logical path %q) is a %s", op, name, logicalPath, c.Type)
	}
	return c, nil
}

func maskOrDefault(mask uint32) uint32 {
	if mask == 0 {
		return DefaultBackupTypeMask
	}
	return mask
}

// AddFiles adds a file set to a file-group component
// (AddFilesToFileGroup). path holds no wildcards; filespec may use * and ?
// but no '/'; alternatePath, if set, is where the requester reads the files
// from at backup time. mask 0 means DefaultBackupTypeMask.
func (m *Metadata) AddFiles(logicalPath, name, path, filespec string, recursive bool, alternatePath string, mask uint32) error {
	c, err := m.component("AddFiles", logicalPath, name, vss.ComponentFileGroup)
	if err != nil {
		return err
	}
	c.Files = append(c.Files, document.FileDesc{
		Path: path, Filespec: filespec, Recursive: recursive, AlternatePath: alternatePath,
		BackupTypeMask: maskOrDefault(mask),
	})
	return nil
}

// AddDatabaseFiles adds data files to a database component. Database file
// sets are never recursive and have no alternate path.
func (m *Metadata) AddDatabaseFiles(logicalPath, name, path, filespec string, mask uint32) error {
	c, err := m.component("AddDatabaseFiles", logicalPath, name, vss.ComponentDatabase)
	if err != nil {
		return err
	}
	c.DatabaseFiles = append(c.DatabaseFiles, document.FileDesc{Path: path, Filespec: filespec, BackupTypeMask: maskOrDefault(mask)})
	return nil
}

// AddDatabaseLogFiles adds log files to a database component; they are
// what a LOG backup saves.
func (m *Metadata) AddDatabaseLogFiles(logicalPath, name, path, filespec string, mask uint32) error {
	c, err := m.component("AddDatabaseLogFiles", logicalPath, name, vss.ComponentDatabase)
	if err != nil {
		return err
	}
	c.DatabaseLogFiles = append(c.DatabaseLogFiles, document.FileDesc{Path: path, Filespec: filespec, BackupTypeMask: maskOrDefault(mask)})
	return nil
}

// AddExcludeFiles excludes files from every backup of the writer's
// components; an exclusion wins over any component file set.
func (m *Metadata) AddExcludeFiles(path, filespec string, recursive bool) error {
	m.doc.ExcludeFiles = append(m.doc.ExcludeFiles, document.FileSpec{Path: path, Filespec: filespec, Recursive: recursive})
	return nil
}

// AddExcludeFromSnapshot names files the writer deletes from the snapshot
// in PostSnapshot (AddExcludeFilesFromSnapshot).
func (m *Metadata) AddExcludeFromSnapshot(path, filespec string, recursive bool) error {
	m.doc.ExcludeFromSnapshot = append(m.doc.ExcludeFromSnapshot, document.FileSpec{Path: path, Filespec: filespec, Recursive: recursive})
	return nil
}

// UseXML replaces everything built so far with a complete Writer Metadata
// Document, for writers that keep theirs as a file. Its identity part is
// overwritten by the SDK like any other.
func (m *Metadata) UseXML(b []byte) error {
	d, err := document.ParseWriterMetadata(b)
	if err != nil {
		return err
	}
	m.doc = *d
	return nil
}

// Document returns the document being built, for what the builder methods
// do not cover (alternate location mappings, dependencies). Changes to it
// are part of the result.
func (m *Metadata) Document() *document.WriterMetadata { return &m.doc }

// finish fills the identity and defaults and checks the document; what it
// returns is what goes on the wire.
func (m *Metadata) finish(id Identity, instance uuid.UUID) ([]byte, error) {
	d := &m.doc
	d.Identity = document.Identity{
		WriterID:     id.ClassID,
		InstanceID:   instance,
		InstanceName: id.InstanceName,
		FriendlyName: id.Name,
		Usage:        id.Usage,
		Source:       id.Source,
		MajorVersion: id.MajorVersion,
		MinorVersion: id.MinorVersion,
	}
	if d.RestoreMethod == (document.RestoreMethod{}) {
		d.RestoreMethod = document.RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WRENever}
	}
	return d.Marshal() // validates first
}
