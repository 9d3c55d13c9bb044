// Package catalog is lvssd's persistent state: committed snapshots, the XML
// documents saved with each snapshot set, and the event log that `lvss`
// shows. It lives in one bbolt file (default /var/lib/lvss/catalog.db) so the
// daemon needs no external database and a crash never leaves half-written
// records: every call is one bbolt transaction.
//
// The file is locked while open. A second lvssd pointed at the same state
// directory fails within a second instead of waiting forever, because two
// coordinators sharing one catalog would hand out conflicting snapshot sets.
//
// Snapshot records are in the protobuf wire format, written by hand
// (record.go), so that a newer daemon can add fields that an older one
// reads past, as JSON allowed before (schema 1, migrated at Open), at a
// fraction of JSON's decoding cost. Snapshot listings by set, volume,
// session or context walk secondary index buckets written in the same
// transaction as the record they point to, so the catalog stays fast with
// tens of thousands of snapshots and an index can never disagree with the
// record after a crash. Index keys end in the creation time and the
// snapshot ID, which makes every listing come out in that order without
// sorting. The same transactions keep a count of snapshots per volume, so
// that the per-volume cap is one read (issue 14). Long listings are read in
// pages (List), each its own transaction.
//
// Measured at 10,000 snapshots (BenchmarkListSnapshots, BenchmarkRecordSet
// and the others in bench_test.go): the cap's count costs what it costs
// with none, recording a set about 15% more than with none (a deeper
// B-tree), and a page of a listing a B-tree search or two per snapshot.
package catalog
