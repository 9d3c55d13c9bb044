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
// Records are JSON so that a newer daemon can add fields that an older one
// reads past. Snapshot listings by set, volume or session walk secondary
// index buckets written in the same transaction as the record they point to,
// so the catalog stays fast with tens of thousands of snapshots and an index
// can never disagree with the record after a crash. Index keys end in the
// creation time and the snapshot ID, which makes every listing come out in
// that order without sorting.
package catalog
