// Package backupdoc is the archive `lvss backup --bcd FILE` writes and
// restore reads back: one tar file holding the Backup Components Document
// (bcd.xml), the Writer Metadata Document of every writer that took part
// (wmd/<instance-id>.xml) and a manifest (manifest.json) saying what was
// backed up, where the snapshots were, how each writer fared and what the
// backup command did. docs/backup-archive.md describes the format.
//
// A backup is only restorable with its BCD and every participating WMD
// (vss-reference §6.1); lvssd keeps them in its catalog, but the catalog
// lives on the machine being backed up and goes with it. The archive is
// the copy that travels with the backup, lvss's counterpart of diskshadow's
// metadata cab (vss-reference §6.5), in a format any tar can open.
//
// A cluster set (lvss cluster backup --bcd FILE) has an archive of its
// own: cluster.json describing the set, then each host's archive, byte for
// byte as that host wrote it, as hosts/HOST.tar (WriteCluster,
// ReadCluster; ReadAny reads either kind). A host's part is a whole
// single-host archive, so restore handles it as any other.
//
// The package sits in the spec layer beside document: it depends on
// nothing but the documents and the spec's codes, so the CLI, a restore
// tool or the daemon can all read and write archives without linking a
// client or a server.
//
// Write and Read apply the same checks, so whatever Write produces Read
// accepts, and an archive Write refuses is refused at backup time rather
// than discovered at restore time. Write's output is a function of its
// input alone (no clock, no map order, no owner or umask in the tar
// headers), so writing the same backup twice gives the same bytes.
// WriteFile replaces a file atomically: a backup interrupted while writing
// leaves the previous archive, never half of a new one.
//
// Errors carry HRESULTs: a document that is not well-formed is
// VSS_E_CORRUPT_XML_DOCUMENT, one that is not a valid document
// VSS_E_INVALID_XML_DOCUMENT (both from package document, D8), and an
// archive that is not one, is of an unknown version or contradicts itself
// is E_INVALIDARG. Each message names the file inside the archive at fault.
package backupdoc
