package document

import (
	"github.com/lvss/lvss/vss"
)

// wmdVocab is every element name a WMD may hold. A known name in the wrong
// place is an error; an unknown name is skipped.
var wmdVocab = map[string]bool{
	"WRITER_METADATA": true, "IDENTIFICATION": true, "RESTORE_METHOD": true, "ALTERNATE_LOCATION_MAPPING": true,
	"BACKUP_LOCATIONS": true, "FILE_GROUP": true, "DATABASE": true, "FILE_LIST": true, "DATABASE_FILES": true,
	"DATABASE_LOGFILES": true, "DEPENDENCY": true, "EXCLUDE_FILES": true, "EXCLUDE_FILES_FROM_SNAPSHOT": true,
}

// ParseWriterMetadata reads a Writer Metadata Document. Input that is not
// well-formed XML fails with VSS_E_CORRUPT_XML_DOCUMENT, a well-formed
// input that is not a valid WMD with VSS_E_INVALID_XML_DOCUMENT; both give
// the line and column. The rules are in docs/documents.md.
func ParseWriterMetadata(data []byte) (*WriterMetadata, error) {
	w := &WriterMetadata{}
	if err := parseDoc(data, "WRITER_METADATA", WMDNamespace, wmdVocab, func(p *decoder, root *element) error {
		return readWMD(p, root, w)
	}); err != nil {
		return nil, err
	}
	// The element checks above are the same as Validate's; this is the
	// guarantee that whatever parses can be written back.
	if err := w.validateModel(); err != nil {
		return nil, err
	}
	if len(data) > reencodeCheckAbove {
		if _, err := w.encode(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func readWMD(p *decoder, root *element, w *WriterMetadata) error {
	w.Version = root.str("version", true)
	w.BackupSchema = root.u32("backupSchema", 0)
	if root.err != nil {
		return root.err
	}
	if err := root.check(checkVersion(w.Version, false)); err != nil {
		return err
	}
	var haveIdentity, haveMethod, haveLocations bool
	seen := map[componentKey]bool{}
	err := p.children(root, func(c *element) error {
		switch c.name {
		case "IDENTIFICATION":
			if haveIdentity {
				return c.invalid("second IDENTIFICATION")
			}
			haveIdentity = true
			return readIdentity(p, c, &w.Identity)
		case "RESTORE_METHOD":
			if haveMethod {
				return c.invalid("second RESTORE_METHOD")
			}
			haveMethod = true
			return readRestoreMethod(p, c, w)
		case "BACKUP_LOCATIONS":
			if haveLocations {
				return c.invalid("second BACKUP_LOCATIONS")
			}
			haveLocations = true
			return readBackupLocations(p, c, w, seen)
		}
		return c.misplaced(root)
	})
	if err != nil {
		return err
	}
	if !haveIdentity {
		return root.invalid("missing IDENTIFICATION")
	}
	// SetRestoreMethod is mandatory for a writer with components. Windows
	// writers without components (BITS, Shadow Copy Optimization) publish
	// no RESTORE_METHOD, and such documents must read.
	if !haveMethod && len(w.Components) > 0 {
		return root.invalid("missing RESTORE_METHOD (required when the writer has components)")
	}
	return nil
}

func readIdentity(p *decoder, e *element, id *Identity) error {
	id.WriterID = e.guid("writerId", true)
	id.InstanceID = e.guid("instanceId", true)
	id.InstanceName = e.str("instanceName", false)
	id.FriendlyName = e.str("friendlyName", true)
	id.Usage = enumAttr(e, "usage", usageWords, true, vss.UsageUndefined)
	id.Source = enumAttr(e, "dataSource", sourceWords, true, vss.SourceUndefined)
	id.MajorVersion = e.u32("majorVersion", 0)
	id.MinorVersion = e.u32("minorVersion", 0)
	if e.err != nil {
		return e.err
	}
	return p.leaf(e)
}

func readRestoreMethod(p *decoder, e *element, w *WriterMetadata) error {
	rm := &w.RestoreMethod
	rm.Method = enumAttr(e, "method", methodWords, true, vss.RMEUndefined)
	rm.Service = e.str("service", false)
	rm.UserProcedure = e.str("userProcedure", false)
	rm.WriterRestore = enumAttr(e, "writerRestore", writerRestoreWords, true, vss.WREUndefined)
	rm.RebootRequired = e.boolean("rebootRequired", false)
	if e.err != nil {
		return e.err
	}
	if err := e.check(checkRestoreMethod(rm)); err != nil {
		return err
	}
	return p.children(e, func(c *element) error {
		if c.name != "ALTERNATE_LOCATION_MAPPING" {
			return c.misplaced(e)
		}
		m, err := readMapping(p, c)
		if err != nil {
			return err
		}
		w.AlternateLocationMappings = append(w.AlternateLocationMappings, m)
		return nil
	})
}

func readMapping(p *decoder, e *element) (AlternateMapping, error) {
	m := AlternateMapping{
		Path:        e.str("path", true),
		Filespec:    e.str("filespec", true),
		Recursive:   e.boolean("recursive", false),
		Destination: e.str("destination", true),
	}
	if e.err != nil {
		return m, e.err
	}
	if err := e.check(checkMapping(&m)); err != nil {
		return m, err
	}
	return m, p.leaf(e)
}

func readBackupLocations(p *decoder, e *element, w *WriterMetadata, seen map[componentKey]bool) error {
	return p.children(e, func(c *element) error {
		switch c.name {
		case "FILE_GROUP":
			return readWMComponent(p, c, vss.ComponentFileGroup, w, seen)
		case "DATABASE":
			return readWMComponent(p, c, vss.ComponentDatabase, w, seen)
		case "EXCLUDE_FILES", "EXCLUDE_FILES_FROM_SNAPSHOT":
			f := FileSpec{
				Path:      c.str("path", true),
				Filespec:  c.str("filespec", true),
				Recursive: c.boolean("recursive", false),
			}
			if c.err != nil {
				return c.err
			}
			if err := c.check(checkFileSpec(&f)); err != nil {
				return err
			}
			if c.name == "EXCLUDE_FILES" {
				w.ExcludeFiles = append(w.ExcludeFiles, f)
			} else {
				w.ExcludeFromSnapshot = append(w.ExcludeFromSnapshot, f)
			}
			return p.leaf(c)
		}
		return c.misplaced(e)
	})
}

func readWMComponent(p *decoder, e *element, ct vss.ComponentType, w *WriterMetadata, seen map[componentKey]bool) error {
	c := Component{
		Type:                   ct,
		LogicalPath:            e.str("logicalPath", false),
		Name:                   e.str("componentName", true),
		Caption:                e.str("caption", false),
		RestoreMetadata:        e.boolean("restoreMetadata", false),
		NotifyOnBackupComplete: e.boolean("notifyOnBackupComplete", false),
		Selectable:             e.boolean("selectable", false),
		SelectableForRestore:   e.boolean("selectableForRestore", false),
		Flags:                  e.u32("componentFlags", 0),
	}
	if e.err != nil {
		return e.err
	}
	if err := e.check(checkName("componentName", c.Name)); err != nil {
		return err
	}
	if err := e.check(checkDuplicate(seen, c.LogicalPath, c.Name)); err != nil {
		return err
	}
	err := p.children(e, func(x *element) error {
		switch {
		case x.name == "FILE_LIST" && ct == vss.ComponentFileGroup:
			f, err := readFileDesc(p, x, fileGroupFile)
			c.Files = append(c.Files, f)
			return err
		case x.name == "FILE_LIST":
			return x.invalid("not allowed inside <DATABASE>: a database lists DATABASE_FILES and DATABASE_LOGFILES")
		case x.name == "DATABASE_FILES" && ct == vss.ComponentDatabase:
			f, err := readFileDesc(p, x, databaseFile)
			c.DatabaseFiles = append(c.DatabaseFiles, f)
			return err
		case x.name == "DATABASE_LOGFILES" && ct == vss.ComponentDatabase:
			f, err := readFileDesc(p, x, databaseFile)
			c.DatabaseLogFiles = append(c.DatabaseLogFiles, f)
			return err
		case x.name == "DEPENDENCY":
			d := Dependency{
				WriterID:    x.guid("onWriterId", true),
				LogicalPath: x.str("onLogicalPath", false),
				Name:        x.str("onComponentName", true),
			}
			if x.err != nil {
				return x.err
			}
			if err := x.check(checkDependency(&d)); err != nil {
				return err
			}
			c.Dependencies = append(c.Dependencies, d)
			return p.leaf(x)
		}
		return x.misplaced(e)
	})
	if err != nil {
		return err
	}
	w.Components = append(w.Components, c)
	return nil
}

func readFileDesc(p *decoder, e *element, kind fileKind) (FileDesc, error) {
	f := FileDesc{
		Path:           e.str("path", true),
		Filespec:       e.str("filespec", true),
		Recursive:      e.boolean("recursive", false),
		AlternatePath:  e.str("alternatePath", false),
		BackupTypeMask: vss.DefaultFileBackupTypeMask,
	}
	if kind == newTargetFile {
		f.BackupTypeMask = 0
	} else {
		f.BackupTypeMask = e.u32("filespecBackupType", vss.DefaultFileBackupTypeMask)
	}
	if e.err != nil {
		return f, e.err
	}
	if err := e.check(checkFileDesc(&f, kind)); err != nil {
		return f, err
	}
	return f, p.leaf(e)
}
