package document

import (
	"slices"

	"github.com/google/uuid"
	"github.com/lvss/lvss/vss"
)

// WMDNamespace is the default namespace of a Writer Metadata Document.
const WMDNamespace = "x-schema:#VssWriterMetadataInfo"

// Version is what lvss writes in the version attribute of both documents.
const Version = "1.2"

// WriterMetadata is a Writer Metadata Document (vss-reference §6.2): what a writer
// says about itself in Identify. It is read-only once published; requesters
// keep it with the backup because restore needs it.
type WriterMetadata struct {
	Version      string // "1.2"; empty is written as Version
	BackupSchema uint32 // VSS_BACKUP_SCHEMA mask
	Identity     Identity
	// RestoreMethod is the writer-wide restore method. A zero Method means
	// the document has no RESTORE_METHOD element, which is only valid for a
	// writer without components (Windows writers that only exclude files,
	// such as the BITS writer, publish none).
	RestoreMethod RestoreMethod
	Components    []Component
	ExcludeFiles  []FileSpec
	// ExcludeFromSnapshot are files deleted from the snapshot in PostSnapshot.
	ExcludeFromSnapshot []FileSpec
	// AlternateLocationMappings are restore-time fallbacks; in XML they are
	// children of RESTORE_METHOD (see docs/documents.md for why).
	AlternateLocationMappings []AlternateMapping
}

// Identity is the IDENTIFICATION element.
type Identity struct {
	WriterID     uuid.UUID // class: fixed per writer product
	InstanceID   uuid.UUID // new each time the writer process starts
	InstanceName string    // optional; persistent per instance
	FriendlyName string
	Usage        vss.UsageType
	Source       vss.SourceType
	MajorVersion uint32
	MinorVersion uint32
}

// RestoreMethod is the RESTORE_METHOD element.
type RestoreMethod struct {
	Method         vss.RestoreMethod
	Service        string // required for STOP_RESTORE_START and RESTORE_STOP_START
	UserProcedure  string
	WriterRestore  vss.WriterRestore
	RebootRequired bool
}

// Component is a FILE_GROUP or DATABASE element.
type Component struct {
	Type                   vss.ComponentType
	LogicalPath            string // "" = root
	Name                   string // required, no backslash
	Caption                string
	RestoreMetadata        bool
	NotifyOnBackupComplete bool
	Selectable             bool
	SelectableForRestore   bool
	Flags                  uint32 // VSS_COMPONENT_FLAGS

	Files            []FileDesc // FILE_LIST, file groups only
	DatabaseFiles    []FileDesc // DATABASE_FILES, databases only
	DatabaseLogFiles []FileDesc // DATABASE_LOGFILES, databases only
	Dependencies     []Dependency
}

// FileDesc is a file set with its backup-type mask (FILE_LIST,
// DATABASE_FILES, DATABASE_LOGFILES, and NEW_TARGET in the BCD).
type FileDesc struct {
	Path          string
	Filespec      string
	Recursive     bool   // file groups and new targets only
	AlternatePath string // file groups and new targets only: where to read at backup
	// BackupTypeMask is VSS_FILE_SPEC_BACKUP_TYPE; an absent attribute reads
	// as vss.DefaultFileBackupTypeMask, the SDK's default. NEW_TARGET has none.
	BackupTypeMask uint32
}

// FileSpec is a file set without a mask (EXCLUDE_FILES, EXCLUDE_FILES_FROM_SNAPSHOT).
type FileSpec struct {
	Path      string
	Filespec  string
	Recursive bool
}

// AlternateMapping is an ALTERNATE_LOCATION_MAPPING.
type AlternateMapping struct {
	Path        string
	Filespec    string
	Recursive   bool
	Destination string
}

// Dependency is a DEPENDENCY of a component on another writer's component.
type Dependency struct {
	WriterID    uuid.UUID // class ID of the writer depended on
	LogicalPath string
	Name        string
}

// Component returns the component with that logical path and name, or nil.
func (w *WriterMetadata) Component(logicalPath, name string) *Component {
	for i := range w.Components {
		if w.Components[i].LogicalPath == logicalPath && w.Components[i].Name == name {
			return &w.Components[i]
		}
	}
	return nil
}

// Clone returns a deep copy.
func (w *WriterMetadata) Clone() *WriterMetadata {
	if w == nil {
		return nil
	}
	c := *w
	c.Components = cloneSlice(w.Components, func(x Component) Component {
		x.Files = slices.Clone(x.Files)
		x.DatabaseFiles = slices.Clone(x.DatabaseFiles)
		x.DatabaseLogFiles = slices.Clone(x.DatabaseLogFiles)
		x.Dependencies = slices.Clone(x.Dependencies)
		return x
	})
	c.ExcludeFiles = slices.Clone(w.ExcludeFiles)
	c.ExcludeFromSnapshot = slices.Clone(w.ExcludeFromSnapshot)
	c.AlternateLocationMappings = slices.Clone(w.AlternateLocationMappings)
	return &c
}

// cloneSlice copies a slice element by element; nil stays nil so that a
// clone compares equal to its source with reflect.DeepEqual.
func cloneSlice[T any](in []T, f func(T) T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i, x := range in {
		out[i] = f(x)
	}
	return out
}

// Validate reports whether the document can be written and read back:
// VSS_E_INVALID_XML_DOCUMENT naming the first offending item, else nil.
func (w *WriterMetadata) Validate() error {
	if err := w.validateModel(); err != nil {
		return err
	}
	// The encoder refuses strings XML cannot carry; a dry run finds them.
	_, err := w.encode()
	return err
}

func (w *WriterMetadata) validateModel() error {
	if r := checkVersion(w.Version, true); r != "" {
		return modelErr("WRITER_METADATA", r)
	}
	if r := checkIdentity(&w.Identity); r != "" {
		return modelErr("IDENTIFICATION", r)
	}
	if r := checkRestoreMethod(&w.RestoreMethod); r != "" {
		return modelErr("RESTORE_METHOD", r)
	}
	if w.RestoreMethod.Method == vss.RMEUndefined {
		if len(w.Components) > 0 {
			return modelErr("WRITER_METADATA", "a writer with components needs a RESTORE_METHOD")
		}
		if len(w.AlternateLocationMappings) > 0 {
			return modelErr("WRITER_METADATA", "alternate location mappings need a RESTORE_METHOD")
		}
	}
	for i := range w.AlternateLocationMappings {
		if r := checkMapping(&w.AlternateLocationMappings[i]); r != "" {
			return modelErr(itemName("ALTERNATE_LOCATION_MAPPING", i), r)
		}
	}
	seen := map[componentKey]bool{}
	for i := range w.Components {
		c := &w.Components[i]
		where := componentWhere(c.LogicalPath, c.Name)
		if r := checkWMComponent(c); r != "" {
			return modelErr(where, r)
		}
		if r := checkDuplicate(seen, c.LogicalPath, c.Name); r != "" {
			return modelErr(where, r)
		}
		for j := range c.Files {
			if r := checkFileDesc(&c.Files[j], fileGroupFile); r != "" {
				return modelErr(where+" "+itemName("FILE_LIST", j), r)
			}
		}
		for j := range c.DatabaseFiles {
			if r := checkFileDesc(&c.DatabaseFiles[j], databaseFile); r != "" {
				return modelErr(where+" "+itemName("DATABASE_FILES", j), r)
			}
		}
		for j := range c.DatabaseLogFiles {
			if r := checkFileDesc(&c.DatabaseLogFiles[j], databaseFile); r != "" {
				return modelErr(where+" "+itemName("DATABASE_LOGFILES", j), r)
			}
		}
		for j := range c.Dependencies {
			if r := checkDependency(&c.Dependencies[j]); r != "" {
				return modelErr(where+" "+itemName("DEPENDENCY", j), r)
			}
		}
	}
	for i := range w.ExcludeFiles {
		if r := checkFileSpec(&w.ExcludeFiles[i]); r != "" {
			return modelErr(itemName("EXCLUDE_FILES", i), r)
		}
	}
	for i := range w.ExcludeFromSnapshot {
		if r := checkFileSpec(&w.ExcludeFromSnapshot[i]); r != "" {
			return modelErr(itemName("EXCLUDE_FILES_FROM_SNAPSHOT", i), r)
		}
	}
	return nil
}
