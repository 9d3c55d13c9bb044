// Package document is the Go model and XML codec of the two VSS metadata
// documents (vss-reference §6):
//
//   - the Writer Metadata Document (WriterMetadata, root WRITER_METADATA,
//     namespace x-schema:#VssWriterMetadataInfo), which a writer publishes
//     in Identify and which is read-only afterwards;
//   - the Backup Components Document (BackupComponents, root
//     BACKUP_COMPONENTS, namespace x-schema:#VssComponentMetadata), which the
//     requester builds and writers annotate.
//
// The XML uses the element and attribute names Windows writes where they
// have been observed, and the spec's proposed names elsewhere, so that a
// document keeps the shape backup tools already know. docs/documents.md
// has the full vocabulary, the enum spellings, the limits and the rules.
//
// Parsing streams tokens through encoding/xml with caps on size, depth,
// element count and attribute length, because documents cross trust
// boundaries (a writer's WMD is read by the coordinator). Errors follow
// D8: input that is not well-formed XML is
// VSS_E_CORRUPT_XML_DOCUMENT, a well-formed input that is not a valid
// document is VSS_E_INVALID_XML_DOCUMENT, and both carry the line and column.
// Whatever Parse accepts, Marshal writes back, and parsing that output gives
// the same value.
//
// BackupComponents.ApplyWriterEdits is where the rule "a writer edits only
// its own components, only the fields it owns, only in the right event"
// (vss-reference §3.8, D1) is enforced: the coordinator gives each writer
// ForWriter's copy and merges back only what the writer was allowed to
// change.
package document
