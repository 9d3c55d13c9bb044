package document

import (
	"fmt"
	"strings"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// The check functions below return a reason ("" when fine). The parser
// calls them with the line and column of the element it is reading, and
// Validate calls them with a path through the model, so that a document
// Parse accepts is always one Validate accepts and Marshal can write.

// modelErr is a Validate error: the item is named by its place in the model.
func modelErr(where, reason string) error {
	return vsserr.New(vsserr.InvalidXMLDocument, "%s: %s", where, reason)
}

func itemName(elem string, i int) string { return fmt.Sprintf("%s[%d]", elem, i) }

func componentWhere(logicalPath, name string) string {
	return fmt.Sprintf("component %q", joinPath(logicalPath, name))
}

// joinPath is the "path\name" form the spec uses for component sets.
func joinPath(logicalPath, name string) string {
	if logicalPath == "" {
		return name
	}
	return logicalPath + `\` + name
}

type componentKey struct{ logicalPath, name string }

func checkDuplicate(seen map[componentKey]bool, logicalPath, name string) string {
	k := componentKey{logicalPath, name}
	if seen[k] {
		return fmt.Sprintf("duplicate component (logicalPath %q, componentName %q)", logicalPath, name)
	}
	seen[k] = true
	return ""
}

// checkVersion accepts the 1.x vocabulary; lvss writes 1.2. An empty
// version is allowed in a model built in Go (it is written as 1.2) but not
// in a parsed document, where the attribute is required.
func checkVersion(v string, allowEmpty bool) string {
	if v == "" && allowEmpty {
		return ""
	}
	rest, ok := strings.CutPrefix(v, "1.")
	if !ok || rest == "" || len(rest) > 4 || strings.Trim(rest, "0123456789") != "" {
		return fmt.Sprintf("version %q is not a 1.x document version", v)
	}
	return ""
}

// checkName applies the AddComponent rule: a name is required and may not
// contain a backslash, since backslash separates logical-path levels.
func checkName(attr, name string) string {
	if name == "" {
		return attr + " is empty"
	}
	if strings.Contains(name, `\`) {
		return fmt.Sprintf("%s %q contains a backslash", attr, name)
	}
	return ""
}

func checkIdentity(id *Identity) string {
	if _, ok := usageWords.word(id.Usage); !ok {
		return fmt.Sprintf("usage %s has no XML spelling", id.Usage)
	}
	if _, ok := sourceWords.word(id.Source); !ok {
		return fmt.Sprintf("dataSource %s has no XML spelling", id.Source)
	}
	return ""
}

func checkRestoreMethod(rm *RestoreMethod) string {
	if rm.Method == vss.RMEUndefined {
		if *rm != (RestoreMethod{}) {
			return "restore method fields are set but the method is undefined"
		}
		return ""
	}
	if _, ok := methodWords.word(rm.Method); !ok {
		return fmt.Sprintf("method %s has no XML spelling", rm.Method)
	}
	if _, ok := writerRestoreWords.word(rm.WriterRestore); !ok {
		return fmt.Sprintf("writerRestore %s has no XML spelling", rm.WriterRestore)
	}
	if (rm.Method == vss.RMEStopRestoreStart || rm.Method == vss.RMERestoreStopStart) && rm.Service == "" {
		return fmt.Sprintf("method %s needs a service", rm.Method)
	}
	return ""
}

func checkWMComponent(c *Component) string {
	if r := checkName("componentName", c.Name); r != "" {
		return r
	}
	switch c.Type {
	case vss.ComponentFileGroup:
		if len(c.DatabaseFiles) > 0 || len(c.DatabaseLogFiles) > 0 {
			return "a file group cannot list database files"
		}
	case vss.ComponentDatabase:
		if len(c.Files) > 0 {
			return "a database cannot have a FILE_LIST"
		}
	default:
		return fmt.Sprintf("component type %s is neither database nor file group", c.Type)
	}
	return ""
}

type fileKind int

const (
	fileGroupFile fileKind = iota // FILE_LIST
	databaseFile                  // DATABASE_FILES, DATABASE_LOGFILES
	newTargetFile                 // NEW_TARGET (BCD)
)

// checkPath: a file-set path is required and holds no wildcard. '?' is not
// refused because Windows writes device paths such as \\?\Volume{...}\Boot.
func checkPath(path string) string {
	if path == "" {
		return "path is empty"
	}
	if strings.Contains(path, "*") {
		return fmt.Sprintf("path %q contains a wildcard", path)
	}
	return ""
}

// checkFilespec: wildcards are allowed, directory separators are not.
func checkFilespec(spec string) string {
	if spec == "" {
		return "filespec is empty"
	}
	if strings.ContainsAny(spec, `/\`) {
		return fmt.Sprintf("filespec %q contains a directory separator", spec)
	}
	return ""
}

func checkFileSet(path, spec string) string {
	if r := checkPath(path); r != "" {
		return r
	}
	return checkFilespec(spec)
}

func checkFileDesc(f *FileDesc, kind fileKind) string {
	if r := checkFileSet(f.Path, f.Filespec); r != "" {
		return r
	}
	switch kind {
	case databaseFile:
		if f.Recursive {
			return "database files cannot be recursive"
		}
		if f.AlternatePath != "" {
			return "database files cannot have an alternate path"
		}
	case newTargetFile:
		if f.BackupTypeMask != 0 {
			return "a new target carries no backup type mask"
		}
	}
	return ""
}

func checkFileSpec(f *FileSpec) string { return checkFileSet(f.Path, f.Filespec) }

func checkMapping(m *AlternateMapping) string {
	if r := checkFileSet(m.Path, m.Filespec); r != "" {
		return r
	}
	if m.Destination == "" {
		return "destination is empty"
	}
	return ""
}

func checkDependency(d *Dependency) string { return checkName("onComponentName", d.Name) }
