package provider

import "context"

// Diagnoser is a provider that explains itself to lvss doctor: whether it
// would take a volume and why (or why not), where it would keep the
// volume's snapshots, and what would make a snapshot of it fail or
// disappoint. A provider without it is judged by IsVolumeSupported alone.
//
// Diagnose must change nothing (create no directory, take no lock a set
// could wait on) and return promptly: it runs for every mounted
// filesystem, while backups may be running. Its answer must agree with
// IsVolumeSupported.
type Diagnoser interface {
	Diagnose(ctx context.Context, volume string) Diagnosis
}

// Diagnosis is a provider's view of one volume.
type Diagnosis struct {
	// Supported is IsVolumeSupported's answer; Reason says why, in a
	// phrase that reads after the provider's name ("btrfs: a directory on
	// btrfs, in subvolume 256"; "copy: not listed in providers.copy.volumes").
	Supported bool
	Reason    string
	// SnapshotDir is where the provider would keep the volume's
	// snapshots; "" when it cannot tell (exec: wherever its commands put
	// them). It may not exist yet.
	SnapshotDir string
	// Problems are what would make a snapshot of a supported volume fail
	// (Error) or lose something (Warning), with the fix. Empty when the
	// volume is not supported.
	Problems []Problem
}

// Problem is one thing a Diagnoser found in the way.
type Problem struct {
	// Check names the check, stable across releases
	// ("btrfs.nested_subvolumes"), for scripts reading lvss doctor --json.
	Check    string
	Severity Severity
	Message  string
	Fix      string
}

// Severity is how bad a Problem is.
type Severity int

// Severities of a Problem.
const (
	// Warning: a snapshot is made, but may miss something or fail later.
	Warning Severity = iota + 1
	// Error: a snapshot of the volume would fail.
	Error
)

// Configured is a provider whose configuration names volumes (exec, copy,
// btrfs's per-volume entries). lvss doctor checks them even when they are
// not mount points.
type Configured interface {
	ConfiguredVolumes() []string
}
