// Package preflight is lvssd's half of lvss doctor: a look at the host as
// the daemon sees it, changing nothing. For every mounted filesystem that
// holds data, every volume a provider's configuration names and every
// volume with snapshots in the catalog it says which provider would take
// it and why the others would not (provider.Diagnoser), whether the kernel
// can freeze it when that provider needs it, what stands in the way of a
// snapshot (a btrfs snapshot directory on another filesystem, nested
// subvolumes, too little free space, the per-volume cap), and whether
// lvssd's run and state directories are where they must be.
//
// Each provider call and each look at a path runs with a deadline, so a
// network filesystem that does not answer costs its own verdict, not the
// whole report.
package preflight
