// Package metrics is lvssd's Prometheus endpoint (docs/metrics.md): what
// the coordinator did (snapshot sets created and failed, DoSnapshotSet's
// duration, each writer's Freeze→Thaw window, the filesystem hold,
// writer failures, sessions, creation-lock waits) and what the catalog
// holds (snapshots per volume).
//
// Metrics implements coordinator.Observer: the coordinator hands every
// figure over as it happens and Metrics keeps it in client_golang's
// counters and histograms, which are atomic. A scrape therefore reads
// only those, plus one short catalog read transaction for the
// per-volume counts; it takes no coordinator lock and waits on no writer
// or requester, so a slow or stuck scraper cannot stall a backup. The
// coordinator, for its part, never learns that Prometheus exists.
//
// Labels are bounded: writer names (at most maxWriterLabels distinct
// ones; later names share the label "other"), event names, VSS error
// names and the volumes that have snapshots now. No label is an ID.
//
// Serve runs the HTTP endpoint on the listener lvssd's config names
// ([metrics] listen): a TCP address, or a Unix socket created with mode
// 0660 and, optionally, a group that may read it.
package metrics
