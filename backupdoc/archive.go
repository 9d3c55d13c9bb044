package backupdoc

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vsserr"
)

// The files of an archive (version 1). Nothing else may be in it: a file
// restore has to read means a new version (docs/backup-archive.md).
const (
	manifestFile = "manifest.json"
	bcdFile      = "bcd.xml"
	wmdDir       = "wmd/"
)

// Limits, the same for Write and Read, so that Write never produces what
// Read refuses. Archives are small (the largest WMD seen, the Windows
// System Writer's, is about 2 MiB); the limits keep a stray multi-gigabyte
// file given as FILE from being read into memory.
const (
	maxManifest = 16 << 20
	maxDocument = 64 << 20 // package document's own limit on one document
	maxTotal    = 256 << 20
	maxWriters  = 4096
	// maxEntries bounds the tar entries read: the files, and a few
	// directory entries a hand-repacked archive may have.
	maxEntries = maxWriters + 2 + 8
)

// layout is one kind of archive this package reads: the names it may
// hold and the limits on them. A single host's archive is singleLayout;
// a cluster set's is clusterLayout (cluster.go).
type layout struct {
	what    string // "an lvss backup archive (version 1)", for messages
	holds   string // the files it holds, for messages
	known   func(name string) bool
	limit   func(name string) int64 // the largest a file of this name may be
	total   int64                   // all files together
	entries int                     // tar entries, directory entries included
}

var singleLayout = &layout{
	what:  fmt.Sprintf("an lvss backup archive (version %d)", Version),
	holds: manifestFile + ", " + bcdFile + " and " + wmdDir + "<instance-id>.xml",
	known: knownFile,
	limit: func(name string) int64 {
		if name == manifestFile {
			return maxManifest
		}
		return maxDocument
	},
	total:   maxTotal,
	entries: maxEntries,
}

// Archive is a backup archive as Read found it, every part checked.
type Archive struct {
	Manifest Manifest
	// BCDXML is bcd.xml exactly as stored: restore hands this text to
	// InitializeForRestore. BCD is it parsed.
	BCDXML string
	BCD    *document.BackupComponents
	// WMDXML holds each wmd/<instance-id>.xml as stored, by writer
	// instance ID; WMDs the same documents parsed.
	WMDXML map[uuid.UUID]string
	WMDs   map[uuid.UUID]*document.WriterMetadata
}

// Writer returns the manifest's entry for a writer instance, or nil.
func (m *Manifest) Writer(instanceID uuid.UUID) *Writer {
	for i := range m.Writers {
		if m.Writers[i].InstanceID == instanceID {
			return &m.Writers[i]
		}
	}
	return nil
}

// WMDName is the name inside the archive of a writer instance's metadata
// document.
func WMDName(instanceID uuid.UUID) string { return wmdDir + instanceID.String() + ".xml" }

// Write writes the archive of one backup to w: manifest.json, bcd.xml,
// then wmd/<instance-id>.xml for each entry of wmds (instance ID → the
// writer's metadata document), in instance ID order. Every file is a
// regular file, mode 0644, owned by uid and gid 0 without names, modified
// at the manifest's time: the bytes depend on the arguments alone.
//
// The manifest gets the current Format and Version when they are empty.
// Write checks everything Read checks (see Read) before it writes a byte,
// so a backup with documents a restore could not use fails now, not then.
func Write(w io.Writer, m Manifest, bcdXML string, wmds map[uuid.UUID]string) error {
	m = m.normalized()
	if _, err := check(m, bcdXML, wmds); err != nil {
		return err
	}
	if m.Time.Unix() < 0 {
		// The tar header's time field cannot go before 1970.
		return vsserr.New(vsserr.InvalidArg, "%s: time %s is before 1970", manifestFile, timeText(m.Time))
	}
	mj, err := manifestBytes(m)
	if err != nil {
		return err
	}
	entries := []tarEntry{{manifestFile, mj}, {bcdFile, []byte(bcdXML)}}
	for _, id := range sortedIDs(wmds) {
		entries = append(entries, tarEntry{WMDName(id), []byte(wmds[id])})
	}
	return writeTar(w, singleLayout, "backup archive", m.Time, entries)
}

// tarEntry is one regular file of an archive.
type tarEntry struct {
	name string
	data []byte
}

// writeTar checks the entries' sizes against l and writes them, in order,
// as an uncompressed USTAR archive (the plainest format every tar reads;
// its names may be up to 100 bytes, and the longest either layout makes
// is 73): regular files, mode 0644, owned by uid and gid 0 without names,
// modified at modTime, so that the bytes depend on the entries alone.
func writeTar(w io.Writer, l *layout, what string, modTime time.Time, entries []tarEntry) error {
	var total int64
	for _, e := range entries {
		total += int64(len(e.data))
		if err := l.checkSize(e.name, int64(len(e.data)), total); err != nil {
			return err
		}
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.data)),
			ModTime: modTime, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return ioErr("write the "+what, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return ioErr("write the "+what, err)
		}
	}
	if err := tw.Close(); err != nil {
		return ioErr("write the "+what, err)
	}
	return nil
}

// manifestBytes is manifest.json: indented for people who open the tar,
// with a final newline.
func manifestBytes(m Manifest) ([]byte, error) {
	compact, err := m.MarshalJSON()
	if err != nil {
		return nil, vsserr.Wrap(vsserr.InvalidArg, err, "%s", manifestFile)
	}
	var b bytes.Buffer
	if err := json.Indent(&b, compact, "", "  "); err != nil {
		return nil, vsserr.Wrap(vsserr.InvalidArg, err, "%s", manifestFile)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func sortedIDs(wmds map[uuid.UUID]string) []uuid.UUID {
	ids := slices.Collect(maps.Keys(wmds))
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return ids
}

func (l *layout) checkSize(name string, size, total int64) error {
	if limit := l.limit(name); size > limit {
		return vsserr.New(vsserr.InvalidArg, "%s is %d bytes, more than the %d an archive allows for it", name, size, limit)
	}
	if total > l.total {
		return vsserr.New(vsserr.InvalidArg, "the archive's files exceed %d bytes in all (at %s)", l.total, name)
	}
	return nil
}

// Read reads and checks an archive Write wrote. It refuses, naming the
// problem:
//
//   - input that is not a tar archive, or holds anything but regular files
//     named manifest.json, bcd.xml and wmd/<instance-id>.xml (directory
//     entries are skipped, so that an archive unpacked and packed again by
//     hand still reads), a file twice, or a file over the limits
//     (E_INVALIDARG);
//   - a missing manifest.json, one that is not JSON, not of Format, of a
//     Version other than this one, or without the stage, time or snapshot
//     set ID (E_INVALIDARG);
//   - a missing bcd.xml, or one that does not parse
//     (VSS_E_CORRUPT_XML_DOCUMENT, VSS_E_INVALID_XML_DOCUMENT), or one
//     whose snapshot set is not the manifest's, or that does not list a
//     snapshot the manifest lists (E_INVALIDARG);
//   - a WMD that does not parse (the XML codes), one whose instance ID is
//     not its file name's, and a writer of the BCD without its WMD or
//     with one of another writer class (E_INVALIDARG): restore needs every
//     participating writer's metadata (vss-reference §6.1).
func Read(r io.Reader) (*Archive, error) {
	files, _, err := readTar(r, singleLayout)
	if err != nil {
		return nil, err
	}
	return archiveFrom(files)
}

// archiveFrom checks the files of a single host's archive and builds the
// Archive from them.
func archiveFrom(files map[string][]byte) (*Archive, error) {
	mj, ok := files[manifestFile]
	if !ok {
		return nil, vsserr.New(vsserr.InvalidArg, "the archive holds no %s: it is not an lvss backup archive", manifestFile)
	}
	m, err := decodeManifest(mj)
	if err != nil {
		return nil, err
	}
	bcd, ok := files[bcdFile]
	if !ok {
		return nil, vsserr.New(vsserr.InvalidArg, "the archive holds no %s: restore cannot do without it", bcdFile)
	}
	wmds := map[uuid.UUID]string{}
	for name, data := range files {
		if id, ok := wmdID(name); ok {
			wmds[id] = string(data)
		}
	}
	return check(m, string(bcd), wmds)
}

// readTar reads every file of the archive into memory, refusing what
// cannot be in one before reading its content. The first file decides
// which of layouts the archive is of (the first layout when it has none);
// every other file must be one of that layout's.
func readTar(r io.Reader, layouts ...*layout) (map[string][]byte, *layout, error) {
	br := bufio.NewReader(r)
	if head, _ := br.Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		return nil, nil, vsserr.New(vsserr.InvalidArg, "the archive is gzip-compressed: decompress it (gunzip) and give lvss the tar file")
	}
	tr := tar.NewReader(br)
	files := map[string][]byte{}
	var l *layout
	anyEntries := 0
	for _, c := range layouts {
		anyEntries = max(anyEntries, c.entries)
	}
	var total int64
	for entries := 1; ; entries++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if l == nil {
				l = layouts[0]
			}
			return files, l, nil
		}
		if err != nil {
			return nil, nil, vsserr.New(vsserr.InvalidArg, "not a tar archive, or a truncated one: %v", err)
		}
		limit := anyEntries
		if l != nil {
			limit = l.entries
		}
		if entries > limit {
			return nil, nil, vsserr.New(vsserr.InvalidArg, "the archive has more than %d entries", limit)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		if l == nil {
			for _, c := range layouts {
				if c.known(name) {
					l = c
					break
				}
			}
			if l == nil {
				return nil, nil, unexpectedFile(hdr.Name, layouts)
			}
		} else if !l.known(name) {
			return nil, nil, unexpectedFile(hdr.Name, []*layout{l})
		}
		// (tar.Reader already turns the old TypeRegA into TypeReg.)
		if hdr.Typeflag != tar.TypeReg {
			return nil, nil, vsserr.New(vsserr.InvalidArg, "%s is not a regular file (tar type %q)", name, hdr.Typeflag)
		}
		if _, dup := files[name]; dup {
			return nil, nil, vsserr.New(vsserr.InvalidArg, "%s is in the archive twice", name)
		}
		total += hdr.Size
		if err := l.checkSize(name, hdr.Size, total); err != nil {
			return nil, nil, err
		}
		// Read as it comes rather than into hdr.Size bytes made at once:
		// a truncated or forged header claiming hundreds of megabytes
		// costs what the input really holds.
		var data bytes.Buffer
		data.Grow(int(min(hdr.Size, 1<<20)))
		if n, err := io.Copy(&data, tr); err != nil || n != hdr.Size {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, vsserr.New(vsserr.InvalidArg, "%s: the archive ends inside it: %v", name, err)
		}
		files[name] = data.Bytes()
	}
}

// unexpectedFile refuses a file that none of layouts holds, saying what
// they hold.
func unexpectedFile(name string, layouts []*layout) error {
	var what []string
	for i, l := range layouts {
		if i == 0 {
			what = append(what, l.what+" holds only "+l.holds)
		} else {
			what = append(what, l.what+" only "+l.holds)
		}
	}
	return vsserr.New(vsserr.InvalidArg, "unexpected file %q: %s", name, strings.Join(what, "; "))
}

func knownFile(name string) bool {
	if name == manifestFile || name == bcdFile {
		return true
	}
	_, ok := wmdID(name)
	return ok
}

// wmdID reads the instance ID from wmd/<instance-id>.xml. Only the form
// Write writes (lowercase, no braces) counts, so that two names cannot
// stand for one writer.
func wmdID(name string) (uuid.UUID, bool) {
	stem, ok := strings.CutPrefix(name, wmdDir)
	if !ok {
		return uuid.Nil, false
	}
	stem, ok = strings.CutSuffix(stem, ".xml")
	if !ok {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(stem)
	if err != nil || id.String() != stem {
		return uuid.Nil, false
	}
	return id, true
}

// decodeManifest reads manifest.json in two steps: format and version
// first, so that an archive of another kind or a newer version is named
// as such instead of failing on whatever field changed.
func decodeManifest(data []byte) (Manifest, error) {
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Manifest{}, vsserr.New(vsserr.InvalidArg, "%s is not a manifest: %v", manifestFile, err)
	}
	if err := (&Manifest{Format: head.Format, Version: head.Version}).checkFormat(); err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, vsserr.New(vsserr.InvalidArg, "%s: %v", manifestFile, err)
	}
	return m, nil
}

// check is what Write and Read both require of an archive's content, and
// builds the Archive from it.
func check(m Manifest, bcdXML string, wmds map[uuid.UUID]string) (*Archive, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	bcd, err := document.ParseBackupComponents([]byte(bcdXML))
	if err != nil {
		return nil, docErr(bcdFile, err)
	}
	setID := bcd.SnapshotSetID
	if setID == uuid.Nil && bcd.SnapshotSet != nil {
		setID = bcd.SnapshotSet.ID
	}
	if setID == uuid.Nil {
		return nil, vsserr.New(vsserr.InvalidArg, "%s records no snapshot set; %s names %s", bcdFile, manifestFile, m.SnapshotSetID)
	}
	if setID != m.SnapshotSetID {
		return nil, vsserr.New(vsserr.InvalidArg, "%s names snapshot set %s but %s names %s: they are not of the same backup",
			manifestFile, m.SnapshotSetID, bcdFile, setID)
	}
	if rec := bcd.SnapshotSet; rec != nil && len(rec.Snapshots) > 0 {
		inBCD := map[uuid.UUID]bool{}
		for _, s := range rec.Snapshots {
			inBCD[s.ID] = true
		}
		for _, s := range m.Snapshots {
			if !inBCD[s.SnapshotID] {
				return nil, vsserr.New(vsserr.InvalidArg, "%s lists snapshot %s, which the snapshot set of %s does not hold",
					manifestFile, s.SnapshotID, bcdFile)
			}
		}
	}
	if len(wmds) > maxWriters {
		return nil, vsserr.New(vsserr.InvalidArg, "%d writer metadata documents, more than the %d an archive allows", len(wmds), maxWriters)
	}
	a := &Archive{Manifest: m, BCDXML: bcdXML, BCD: bcd,
		WMDXML: make(map[uuid.UUID]string, len(wmds)), WMDs: make(map[uuid.UUID]*document.WriterMetadata, len(wmds))}
	for _, id := range sortedIDs(wmds) {
		name := WMDName(id)
		if id == uuid.Nil {
			return nil, vsserr.New(vsserr.InvalidArg, "a writer metadata document is filed under GUID_NULL, which names no writer instance")
		}
		wm, err := document.ParseWriterMetadata([]byte(wmds[id]))
		if err != nil {
			return nil, docErr(name, err)
		}
		if got := wm.Identity.InstanceID; got != id {
			return nil, vsserr.New(vsserr.InvalidArg, "%s holds the metadata of writer instance %s, not %s", name, got, id)
		}
		a.WMDXML[id] = wmds[id]
		a.WMDs[id] = wm
	}
	for _, w := range bcd.Writers {
		wm, ok := a.WMDs[w.InstanceID]
		if !ok {
			return nil, vsserr.New(vsserr.InvalidArg, "%s has components of writer instance %s but the archive has no %s: restore needs the metadata of every writer that took part",
				bcdFile, w.InstanceID, WMDName(w.InstanceID))
		}
		if wm.Identity.WriterID != w.WriterID {
			return nil, vsserr.New(vsserr.InvalidArg, "%s says writer instance %s is of writer class %s, %s says %s",
				bcdFile, w.InstanceID, w.WriterID, WMDName(w.InstanceID), wm.Identity.WriterID)
		}
	}
	return a, nil
}

// docErr names the file a document error is in. The code stays the
// document's (D8); the message keeps its line and column.
func docErr(file string, err error) error {
	return vsserr.New(vsserr.Code(err), "%s: %s", file, vsserr.Message(err))
}

// ioErr gives an I/O failure an HRESULT a person can act on: a missing
// file is VSS_E_OBJECT_NOT_FOUND and a refused one E_ACCESSDENIED, where
// an error without a code would read as VSS_E_UNEXPECTED, "a bug, see the
// log". Anything else (a full disk, an I/O error) is E_FAIL.
func ioErr(what string, err error) error {
	code := vsserr.Fail
	var he *vsserr.Error
	switch {
	case errors.As(err, &he):
		return err
	case errors.Is(err, fs.ErrNotExist):
		code = vsserr.ObjectNotFound
	case errors.Is(err, fs.ErrPermission):
		code = vsserr.AccessDenied
	}
	return vsserr.New(code, "%s: %s", what, fmt.Sprint(err))
}
