package document

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// The writer is hand-made rather than encoding/xml's Marshal because the
// output must be exact: attribute order as Windows writes it, yes/no
// booleans, optional attributes left out, one default namespace on the
// root only, and an error (not a silent U+FFFD) for a string XML cannot
// carry. Output is indented two spaces per level.

type attr struct{ name, value string }

type attrs []attr

func (a *attrs) str(name, v string) { *a = append(*a, attr{name, v}) }

// opt writes a string only when it is not empty.
func (a *attrs) opt(name, v string) {
	if v != "" {
		a.str(name, v)
	}
}

func (a *attrs) boolean(name string, v bool) {
	if v {
		a.str(name, "yes")
	} else {
		a.str(name, "no")
	}
}

// flag writes a boolean only when it is true.
func (a *attrs) flag(name string, v bool) {
	if v {
		a.str(name, "yes")
	}
}

func (a *attrs) u32(name string, v uint32) { a.str(name, strconv.FormatUint(uint64(v), 10)) }

func (a *attrs) guid(name string, v uuid.UUID) { a.str(name, v.String()) }

func (a *attrs) guidOpt(name string, v uuid.UUID) {
	if v != uuid.Nil {
		a.guid(name, v)
	}
}

func (a *attrs) hresult(name string, v uint32) { a.str(name, fmt.Sprintf("0x%08X", v)) }

func (a *attrs) filetime(name string, t time.Time) {
	if t.IsZero() {
		return
	}
	ft, _ := timeToFiletime(t) // range checked by Validate
	a.str(name, strconv.FormatInt(ft, 10))
}

// word writes an enum by its XML word; a value without one was refused by
// Validate, so "ok" is only false for a programming error, which shows up
// as an empty attribute the parser then refuses.
func word[T comparable](a *attrs, name string, sp spelling[T], v T) {
	w, _ := sp.word(v)
	a.str(name, w)
}

// wordOpt writes an enum unless it has its zero value (undefined).
func wordOpt[T comparable](a *attrs, name string, sp spelling[T], v T) {
	var zero T
	if v != zero {
		word(a, name, sp, v)
	}
}

type encoder struct {
	buf    []byte
	depth  int
	err    error
	pooled *[]byte
}

// bufPool keeps encoders' working buffers: lvssd renders a document for
// every writer of every event that carries one (a thousand writers, four
// such events a backup), and a fresh 4 KiB buffer each time was most of
// its garbage. The document returned is a copy of exactly its size.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooled keeps a rare huge document's buffer out of the pool.
const maxPooled = 256 << 10

func newEncoder() *encoder {
	bp := bufPool.Get().(*[]byte)
	return &encoder{pooled: bp, buf: append((*bp)[:0], `<?xml version="1.0" encoding="UTF-8"?>`+"\n"...)}
}

// release gives the working buffer back; the encoder is not used again.
func (e *encoder) release() {
	if e.pooled != nil && cap(e.buf) <= maxPooled {
		*e.pooled = e.buf[:0]
		bufPool.Put(e.pooled)
	}
	e.pooled, e.buf = nil, nil
}

func (e *encoder) tag(name string, as attrs, closeNow bool) {
	if e.err != nil {
		return
	}
	if len(e.buf) > MaxDocumentSize {
		// Stop early: the output could not be read back anyway, and
		// writing on would only spend memory.
		e.err = vsserr.New(vsserr.InvalidXMLDocument, "written document exceeds the limit of %d bytes (%d MiB)",
			MaxDocumentSize, MaxDocumentSize>>20)
		return
	}
	for range e.depth {
		e.buf = append(e.buf, "  "...)
	}
	e.buf = append(e.buf, '<')
	e.buf = append(e.buf, name...)
	for _, a := range as {
		e.buf = append(e.buf, ' ')
		e.buf = append(e.buf, a.name...)
		e.buf = append(e.buf, `="`...)
		e.escape(name, a)
		e.buf = append(e.buf, '"')
	}
	if closeNow {
		e.buf = append(e.buf, "/>\n"...)
		return
	}
	e.buf = append(e.buf, ">\n"...)
	e.depth++
}

// open starts an element whose children follow; end closes it.
func (e *encoder) open(name string, as attrs) { e.tag(name, as, false) }
func (e *encoder) leaf(name string, as attrs) { e.tag(name, as, true) }

func (e *encoder) end(name string) {
	if e.err != nil {
		return
	}
	e.depth--
	for range e.depth {
		e.buf = append(e.buf, "  "...)
	}
	e.buf = append(e.buf, "</"...)
	e.buf = append(e.buf, name...)
	e.buf = append(e.buf, ">\n"...)
}

// escape writes an attribute value so that any XML reader gets it back
// unchanged: markup characters as entities, and tab, newline and carriage
// return as character references (a reader normalises them to spaces or
// newlines otherwise).
func (e *encoder) escape(elem string, a attr) {
	for i, r := range a.value {
		switch r {
		case '&':
			e.buf = append(e.buf, "&amp;"...)
		case '<':
			e.buf = append(e.buf, "&lt;"...)
		case '>':
			e.buf = append(e.buf, "&gt;"...)
		case '"':
			e.buf = append(e.buf, "&quot;"...)
		case '\t':
			e.buf = append(e.buf, "&#x9;"...)
		case '\n':
			e.buf = append(e.buf, "&#xA;"...)
		case '\r':
			e.buf = append(e.buf, "&#xD;"...)
		default:
			if !xmlChar(r) || (r == utf8.RuneError && isBadUTF8(a.value[i:])) {
				if e.err == nil {
					e.err = vsserr.New(vsserr.InvalidXMLDocument,
						"<%s> attribute %s: byte offset %d holds %s, which XML cannot carry", elem, a.name, i, describeRune(a.value[i:]))
				}
				continue
			}
			e.buf = utf8.AppendRune(e.buf, r)
		}
	}
}

// xmlChar is the Char production of XML 1.0.
func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

func isBadUTF8(s string) bool {
	r, size := utf8.DecodeRuneInString(s)
	return r == utf8.RuneError && size <= 1
}

func describeRune(s string) string {
	if isBadUTF8(s) {
		return fmt.Sprintf("the invalid UTF-8 byte 0x%02X", s[0])
	}
	r, _ := utf8.DecodeRuneInString(s)
	return fmt.Sprintf("%U", r)
}

func (e *encoder) bytes() ([]byte, error) {
	defer e.release()
	if e.err != nil {
		return nil, e.err
	}
	if len(e.buf) > MaxDocumentSize {
		return nil, vsserr.New(vsserr.InvalidXMLDocument, "written document exceeds the limit of %d bytes (%d MiB)",
			MaxDocumentSize, MaxDocumentSize>>20)
	}
	return slices.Clone(e.buf), nil
}

// Marshal validates the document and writes it as XML.
func (w *WriterMetadata) Marshal() ([]byte, error) {
	if err := w.validateModel(); err != nil {
		return nil, err
	}
	return w.encode()
}

func (w *WriterMetadata) encode() ([]byte, error) {
	e := newEncoder()
	root := attrs{{"xmlns", WMDNamespace}, {"version", orDefault(w.Version)}}
	if w.BackupSchema != 0 {
		root.u32("backupSchema", w.BackupSchema)
	}
	e.open("WRITER_METADATA", root)

	id := &w.Identity
	var a attrs
	a.guid("writerId", id.WriterID)
	a.guid("instanceId", id.InstanceID)
	a.opt("instanceName", id.InstanceName)
	a.str("friendlyName", id.FriendlyName)
	word(&a, "usage", usageWords, id.Usage)
	word(&a, "dataSource", sourceWords, id.Source)
	a.u32("majorVersion", id.MajorVersion)
	a.u32("minorVersion", id.MinorVersion)
	e.leaf("IDENTIFICATION", a)

	if rm := &w.RestoreMethod; rm.Method != vss.RMEUndefined {
		a = nil
		word(&a, "method", methodWords, rm.Method)
		a.opt("service", rm.Service)
		a.opt("userProcedure", rm.UserProcedure)
		word(&a, "writerRestore", writerRestoreWords, rm.WriterRestore)
		a.boolean("rebootRequired", rm.RebootRequired)
		if len(w.AlternateLocationMappings) == 0 {
			e.leaf("RESTORE_METHOD", a)
		} else {
			e.open("RESTORE_METHOD", a)
			for i := range w.AlternateLocationMappings {
				e.leaf("ALTERNATE_LOCATION_MAPPING", mappingAttrs(&w.AlternateLocationMappings[i]))
			}
			e.end("RESTORE_METHOD")
		}
	}

	if len(w.Components)+len(w.ExcludeFiles)+len(w.ExcludeFromSnapshot) == 0 {
		e.leaf("BACKUP_LOCATIONS", nil)
	} else {
		e.open("BACKUP_LOCATIONS", nil)
		for i := range w.Components {
			encodeWMComponent(e, &w.Components[i])
		}
		for i := range w.ExcludeFiles {
			e.leaf("EXCLUDE_FILES", fileSpecAttrs(&w.ExcludeFiles[i]))
		}
		for i := range w.ExcludeFromSnapshot {
			e.leaf("EXCLUDE_FILES_FROM_SNAPSHOT", fileSpecAttrs(&w.ExcludeFromSnapshot[i]))
		}
		e.end("BACKUP_LOCATIONS")
	}
	e.end("WRITER_METADATA")
	return e.bytes()
}

func orDefault(v string) string {
	if v == "" {
		return Version
	}
	return v
}

func encodeWMComponent(e *encoder, c *Component) {
	name := "FILE_GROUP"
	if c.Type == vss.ComponentDatabase {
		name = "DATABASE"
	}
	var a attrs
	a.opt("logicalPath", c.LogicalPath)
	a.str("componentName", c.Name)
	a.opt("caption", c.Caption)
	a.boolean("restoreMetadata", c.RestoreMetadata)
	a.boolean("notifyOnBackupComplete", c.NotifyOnBackupComplete)
	a.boolean("selectable", c.Selectable)
	a.boolean("selectableForRestore", c.SelectableForRestore)
	a.u32("componentFlags", c.Flags)
	if len(c.Files)+len(c.DatabaseFiles)+len(c.DatabaseLogFiles)+len(c.Dependencies) == 0 {
		e.leaf(name, a)
		return
	}
	e.open(name, a)
	for i := range c.Files {
		f := &c.Files[i]
		var fa attrs
		fa.str("path", f.Path)
		fa.str("filespec", f.Filespec)
		fa.boolean("recursive", f.Recursive)
		fa.opt("alternatePath", f.AlternatePath)
		fa.u32("filespecBackupType", f.BackupTypeMask)
		e.leaf("FILE_LIST", fa)
	}
	for _, list := range []struct {
		elem  string
		files []FileDesc
	}{{"DATABASE_FILES", c.DatabaseFiles}, {"DATABASE_LOGFILES", c.DatabaseLogFiles}} {
		for i := range list.files {
			f := &list.files[i]
			var fa attrs
			fa.str("path", f.Path)
			fa.str("filespec", f.Filespec)
			fa.u32("filespecBackupType", f.BackupTypeMask)
			e.leaf(list.elem, fa)
		}
	}
	for i := range c.Dependencies {
		d := &c.Dependencies[i]
		var da attrs
		da.guid("onWriterId", d.WriterID)
		da.opt("onLogicalPath", d.LogicalPath)
		da.str("onComponentName", d.Name)
		e.leaf("DEPENDENCY", da)
	}
	e.end(name)
}

func fileSpecAttrs(f *FileSpec) attrs {
	var a attrs
	a.str("path", f.Path)
	a.str("filespec", f.Filespec)
	a.boolean("recursive", f.Recursive)
	return a
}

func mappingAttrs(m *AlternateMapping) attrs {
	var a attrs
	a.str("path", m.Path)
	a.str("filespec", m.Filespec)
	a.boolean("recursive", m.Recursive)
	a.str("destination", m.Destination)
	return a
}

// Marshal validates the document and writes it as XML.
func (b *BackupComponents) Marshal() ([]byte, error) {
	if err := b.validateModel(); err != nil {
		return nil, err
	}
	return b.encode()
}

func (b *BackupComponents) encode() ([]byte, error) {
	e := newEncoder()
	root := attrs{{"xmlns", BCDNamespace}, {"version", orDefault(b.Version)}}
	root.boolean("bootableSystemStateBackup", b.BootableSystemStateBackup)
	root.boolean("selectComponents", b.SelectComponents)
	word(&root, "backupType", backupTypeWords, b.BackupType)
	root.boolean("partialFileSupport", b.PartialFileSupport)
	wordOpt(&root, "restoreType", restoreTypeWords, b.RestoreType)
	root.guidOpt("snapshotSetId", b.SnapshotSetID)
	if len(b.Writers) == 0 && b.SnapshotSet == nil {
		e.leaf("BACKUP_COMPONENTS", root)
		return e.bytes()
	}
	e.open("BACKUP_COMPONENTS", root)
	for i := range b.Writers {
		encodeWriterComponents(e, &b.Writers[i])
	}
	if s := b.SnapshotSet; s != nil {
		var a attrs
		a.guid("snapshotSetId", s.ID)
		a.str("context", strconv.FormatInt(int64(s.Context), 10))
		if len(s.Snapshots) == 0 {
			e.leaf("SNAPSHOT_SET", a)
		} else {
			e.open("SNAPSHOT_SET", a)
			for i := range s.Snapshots {
				r := &s.Snapshots[i]
				var sa attrs
				sa.guid("snapshotId", r.ID)
				sa.opt("originalVolume", r.OriginalVolume)
				sa.opt("devicePath", r.DevicePath)
				sa.guidOpt("providerId", r.ProviderID)
				sa.u32("attributes", r.Attributes)
				sa.filetime("creationTimestamp", r.Created)
				e.leaf("SNAPSHOT", sa)
			}
			e.end("SNAPSHOT_SET")
		}
	}
	e.end("BACKUP_COMPONENTS")
	return e.bytes()
}

func encodeWriterComponents(e *encoder, w *WriterComponents) {
	var a attrs
	a.guid("instanceId", w.InstanceID)
	a.guid("writerId", w.WriterID)
	a.opt("instanceName", w.InstanceName)
	a.u32("backupSchema", w.BackupSchema)
	if len(w.Components) == 0 {
		e.leaf("WRITER_COMPONENTS", a)
		return
	}
	e.open("WRITER_COMPONENTS", a)
	for i := range w.Components {
		encodeComponentState(e, &w.Components[i])
	}
	e.end("WRITER_COMPONENTS")
}

func encodeComponentState(e *encoder, c *ComponentState) {
	var a attrs
	a.opt("logicalPath", c.LogicalPath)
	a.str("componentName", c.Name)
	word(&a, "componentType", componentTypeWords, c.Type)
	a.opt("backupStamp", c.BackupStamp)
	a.opt("previousBackupStamp", c.PreviousBackupStamp)
	a.opt("backupOptions", c.BackupOptions)
	a.opt("restoreOptions", c.RestoreOptions)
	a.flag("backupSucceeded", c.BackupSucceeded)
	a.flag("selectedForRestore", c.SelectedForRestore)
	a.flag("additionalRestores", c.AdditionalRestores)
	wordOpt(&a, "restoreTarget", restoreTargetWords, c.RestoreTarget)
	wordOpt(&a, "fileRestoreStatus", fileRestoreStatusWords, c.FileRestoreStatus)
	a.opt("prepareForBackupFailureMsg", c.PrepareForBackupFailureMsg)
	a.opt("postSnapshotFailureMsg", c.PostSnapshotFailureMsg)
	a.opt("preRestoreFailureMsg", c.PreRestoreFailureMsg)
	a.opt("postRestoreFailureMsg", c.PostRestoreFailureMsg)
	a.flag("authoritativeRestore", c.AuthoritativeRestore)
	wordOpt(&a, "rollForwardType", rollForwardWords, c.RollForwardType)
	a.opt("rollForwardPoint", c.RollForwardPoint)
	a.opt("restoreName", c.RestoreName)

	children := len(c.PartialFiles) + len(c.DifferencedFiles) + len(c.DirectedTargets) +
		len(c.RestoreSubcomponents) + len(c.AlternateLocationMappings) + len(c.NewTargets)
	if c.BackupMetadata != nil {
		children++
	}
	if c.RestoreMetadata != nil {
		children++
	}
	if c.Failure != nil {
		children++
	}
	if children == 0 {
		e.leaf("COMPONENT", a)
		return
	}
	e.open("COMPONENT", a)
	if c.BackupMetadata != nil {
		e.leaf("BACKUP_METADATA", attrs{{"metadata", *c.BackupMetadata}})
	}
	if c.RestoreMetadata != nil {
		e.leaf("RESTORE_METADATA", attrs{{"metadata", *c.RestoreMetadata}})
	}
	if f := c.Failure; f != nil {
		var fa attrs
		fa.hresult("hr", f.HR)
		if f.ApplicationHR != 0 {
			fa.hresult("hrApplication", f.ApplicationHR)
		}
		fa.opt("message", f.Message)
		e.leaf("FAILURE", fa)
	}
	for i := range c.PartialFiles {
		p := &c.PartialFiles[i]
		var pa attrs
		pa.str("path", p.Path)
		pa.str("filename", p.Filename)
		pa.opt("ranges", p.Ranges)
		pa.opt("metadata", p.Metadata)
		e.leaf("PARTIAL_FILE", pa)
	}
	for i := range c.DifferencedFiles {
		d := &c.DifferencedFiles[i]
		var da attrs
		da.str("path", d.Path)
		da.str("filespec", d.Filespec)
		da.boolean("recursive", d.Recursive)
		da.opt("lsn", d.LSN)
		da.filetime("lastModifyTime", d.LastModifyTime)
		e.leaf("DIFFERENCED_FILE", da)
	}
	for i := range c.DirectedTargets {
		t := &c.DirectedTargets[i]
		var ta attrs
		ta.str("sourcePath", t.SourcePath)
		ta.str("sourceFilename", t.SourceFilename)
		ta.opt("sourceRanges", t.SourceRanges)
		ta.str("destinationPath", t.DestinationPath)
		ta.str("destinationFilename", t.DestinationFilename)
		ta.opt("destinationRanges", t.DestinationRanges)
		e.leaf("DIRECTED_TARGET", ta)
	}
	for i := range c.RestoreSubcomponents {
		s := &c.RestoreSubcomponents[i]
		var sa attrs
		sa.opt("logicalPath", s.LogicalPath)
		sa.str("componentName", s.Name)
		sa.boolean("repair", s.Repair)
		e.leaf("RESTORE_SUBCOMPONENT", sa)
	}
	for i := range c.AlternateLocationMappings {
		e.leaf("ALTERNATE_LOCATION_MAPPING", mappingAttrs(&c.AlternateLocationMappings[i]))
	}
	for i := range c.NewTargets {
		f := &c.NewTargets[i]
		var fa attrs
		fa.str("path", f.Path)
		fa.str("filespec", f.Filespec)
		fa.boolean("recursive", f.Recursive)
		fa.opt("alternatePath", f.AlternatePath)
		e.leaf("NEW_TARGET", fa)
	}
	e.end("COMPONENT")
}
