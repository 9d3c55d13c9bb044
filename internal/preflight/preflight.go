package preflight

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/provider"
)

// Severity is how bad a Finding is. Only Error makes lvss doctor fail.
type Severity int

// Severities, mildest first.
const (
	OK      Severity = iota + 1 // checked, and fine
	Info                        // worth knowing, nothing to fix
	Warning                     // works, but may bite; the fix says how to avoid it
	Error                       // a backup that needs it will fail
)

var severityNames = map[Severity]string{OK: "ok", Info: "info", Warning: "warning", Error: "error"}

func (s Severity) String() string { return severityNames[s] }

// Finding is one result of a check.
type Finding struct {
	Check    string // stable name: "run_dir.tmpfs", "volume.freeze", "btrfs.nested_subvolumes"...
	Severity Severity
	Subject  string // a path, usually
	Message  string
	Fix      string // what to do; "" when nothing
}

// Verdict is whether one provider would take a volume, and why.
type Verdict struct {
	Provider  provider.Info
	Supported bool
	Reason    string
}

// Volume is one path lvssd could be asked to snapshot.
type Volume struct {
	Path       string
	MountPoint string // of the filesystem holding Path
	Device     string // superblock major:minor
	Type       string
	Source     string
	ReadOnly   bool
	Mounted    bool // Path is a mount point
	Configured bool // a provider's configuration names it
	Exists     bool
	Freeze     mountinfo.Freeze
	// FreezeReason says why Freeze is what it is.
	FreezeReason string
	Provider     string // the provider lvssd would choose, "" when none
	Verdicts     []Verdict
	SnapshotDir  string // where the chosen provider would keep snapshots
	Free, Total  uint64 // at SnapshotDir
	Snapshots    int    // in the catalog
	Findings     []Finding
}

// Input is what Run looks at.
type Input struct {
	// Providers in preference order (provider.Registry.All).
	Providers []provider.Provider
	// Snapshots counts the catalog's snapshots per original volume.
	Snapshots map[string]int
	// MaxSnapshots is limits.max_snapshots_per_volume.
	MaxSnapshots int
	// RunDir and StateDir are lvssd's directories; "" skips their checks.
	RunDir, StateDir string
	// Mounts are the mounts to look at (nil: /proc/self/mountinfo).
	Mounts []mountinfo.Mount
	// CallTimeout bounds each provider call and each look at a path
	// (default 5s): a hung network filesystem costs its own verdict, not
	// the whole preflight.
	CallTimeout time.Duration
}

// Report is Run's answer: lvssd-wide findings, and one entry per volume,
// by path.
type Report struct {
	Findings []Finding
	Volumes  []Volume
}

const defaultCallTimeout = 5 * time.Second

// Run checks the host as lvssd sees it. It changes nothing: providers are
// asked through Diagnose (or IsVolumeSupported), paths are only looked at.
func Run(ctx context.Context, in Input) Report {
	if in.CallTimeout <= 0 {
		in.CallTimeout = defaultCallTimeout
	}
	ms := in.Mounts
	if ms == nil {
		var err error
		if ms, err = mountinfo.Read(); err != nil {
			return Report{Findings: []Finding{{Check: "mounts", Severity: Error, Subject: "/proc/self/mountinfo",
				Message: "cannot read the mount table: " + err.Error()}}}
		}
	}
	var rep Report
	for _, p := range candidates(ms, in) {
		rep.Volumes = append(rep.Volumes, in.volume(ctx, ms, p))
	}
	rep.Findings = in.directories(ms, rep.Volumes)
	return rep
}

// candidate is a path to check and why.
type candidate struct {
	path                string
	mounted, configured bool
}

// candidates are the mounted filesystems that hold data (not kernel
// interfaces, tmpfs, overlays, lvss's own exposures or its run dir), the
// volumes the providers' configurations name, and the volumes with
// snapshots in the catalog, by path.
func candidates(ms []mountinfo.Mount, in Input) []candidate {
	byPath := map[string]*candidate{}
	add := func(p string) *candidate {
		p = filepath.Clean(p)
		c := byPath[p]
		if c == nil {
			c = &candidate{path: p}
			byPath[p] = c
		}
		return c
	}
	for _, m := range ms {
		switch {
		case mountinfo.Pseudo(m.FSType):
		case strings.Contains(m.Root, "/.lvss-snapshots"): // an exposed btrfs snapshot
		case in.RunDir != "" && within(m.MountPoint, in.RunDir):
		default:
			add(m.MountPoint).mounted = true
		}
	}
	for _, p := range in.Providers {
		if c, ok := p.(provider.Configured); ok {
			for _, v := range c.ConfiguredVolumes() {
				add(v).configured = true
			}
		}
	}
	for v := range in.Snapshots {
		add(v)
	}
	out := make([]candidate, 0, len(byPath))
	for _, c := range byPath {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

func within(p, root string) bool {
	root = filepath.Clean(root)
	return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/")
}

// bounded runs f with a deadline; ok is false when it did not return in
// time (its goroutine is left to finish on its own).
func bounded[T any](ctx context.Context, d time.Duration, f func(context.Context) T) (T, bool) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	ch := make(chan T, 1)
	go func() { ch <- f(ctx) }()
	select {
	case v := <-ch:
		return v, true
	case <-ctx.Done():
		var zero T
		return zero, false
	}
}

// look is what a path is, found without a provider.
type look struct {
	real    string // symlinks resolved
	exists  bool
	isDir   bool
	err     error
	mount   mountinfo.Mount
	mountOK bool
}

func (in Input) volume(ctx context.Context, ms []mountinfo.Mount, c candidate) Volume {
	v := Volume{Path: c.path, Mounted: c.mounted, Configured: c.configured, Snapshots: in.Snapshots[c.path]}
	l, ok := bounded(ctx, in.CallTimeout, func(context.Context) look {
		var l look
		l.real, l.err = filepath.EvalSymlinks(c.path)
		if l.err != nil {
			return l
		}
		fi, err := os.Stat(l.real)
		if err != nil {
			l.err = err
			return l
		}
		l.exists, l.isDir = true, fi.IsDir()
		if m, err := mountinfo.Find(ms, l.real); err == nil {
			l.mount, l.mountOK = m, true
		}
		return l
	})
	if !ok {
		v.Findings = append(v.Findings, Finding{Check: "volume.exists", Severity: Warning, Subject: c.path,
			Message: fmt.Sprintf("looking at it took longer than %s (a network filesystem that does not answer?)", in.CallTimeout),
			Fix:     "check the filesystem's server or device"})
		return v
	}
	v.Exists = l.exists
	if l.mountOK {
		m := l.mount
		v.MountPoint, v.Device, v.Type, v.Source, v.ReadOnly = m.MountPoint, m.Device(), m.FSType, m.Source, m.ReadOnly()
		v.Freeze, v.FreezeReason = mountinfo.FreezeSupport(m.FSType)
	}
	switch {
	case errors.Is(l.err, os.ErrNotExist):
		sev, why := Info, "it does not exist; its snapshots stay in the catalog until deleted"
		if c.configured {
			sev, why = Warning, "it does not exist (not mounted?); a backup of it fails"
		}
		v.Findings = append(v.Findings, Finding{Check: "volume.exists", Severity: sev, Subject: c.path, Message: why,
			Fix: map[bool]string{true: "mount it, or remove it from the provider's configuration", false: ""}[c.configured]})
		return v
	case l.err != nil:
		v.Findings = append(v.Findings, Finding{Check: "volume.exists", Severity: Warning, Subject: c.path, Message: "cannot look at it: " + l.err.Error()})
		return v
	case !l.isDir:
		v.Findings = append(v.Findings, Finding{Check: "volume.exists", Severity: Info, Subject: c.path, Message: "not a directory: lvss snapshots directories"})
		return v
	}

	var chosen *provider.Diagnosis
	var chosenInfo provider.Info
	for _, p := range in.Providers {
		info := p.Info()
		d, ok := bounded(ctx, in.CallTimeout, func(ctx context.Context) provider.Diagnosis { return diagnose(ctx, p, l.real) })
		if !ok {
			d = provider.Diagnosis{Reason: fmt.Sprintf("did not answer within %s", in.CallTimeout)}
		}
		v.Verdicts = append(v.Verdicts, Verdict{Provider: info, Supported: d.Supported, Reason: d.Reason})
		if d.Supported && chosen == nil {
			dd := d
			chosen, chosenInfo = &dd, info
		}
	}
	add := func(f Finding) {
		f.Subject = c.path
		v.Findings = append(v.Findings, f)
	}
	if chosen == nil {
		f := Finding{Check: "volume.provider", Severity: Info, Message: "no provider would take it: lvss cannot snapshot it",
			Fix: "if it needs backing up: use btrfs, list it in providers.copy.volumes for a file-by-file copy, or configure an exec provider for it (docs/providers.md)"}
		if c.configured {
			f.Severity = Warning
		}
		add(f)
		return v
	}
	v.Provider = chosenInfo.Name
	add(Finding{Check: "volume.provider", Severity: OK, Message: chosenInfo.Name + " would take it: " + chosen.Reason})
	if chosenInfo.NeedsFreeze {
		in.freezeFindings(ms, &v, chosenInfo, add)
	}
	for _, pr := range chosen.Problems {
		sev := Warning
		if pr.Severity == provider.Error {
			sev = Error
		}
		add(Finding{Check: pr.Check, Severity: sev, Message: pr.Message, Fix: pr.Fix})
	}
	if v.SnapshotDir = chosen.SnapshotDir; v.SnapshotDir != "" {
		v.Free, v.Total, _ = Space(ctx, in.CallTimeout, v.SnapshotDir)
	}
	if in.MaxSnapshots > 0 {
		switch n := v.Snapshots; {
		case n >= in.MaxSnapshots:
			add(Finding{Check: "volume.snapshots", Severity: Error,
				Message: fmt.Sprintf("%d snapshots, at limits.max_snapshots_per_volume (%d): a new one is refused with VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED", n, in.MaxSnapshots),
				Fix:     "delete old ones (lvss delete shadows --for " + c.path + " --oldest) or raise limits.max_snapshots_per_volume"})
		case n*10 >= in.MaxSnapshots*9:
			add(Finding{Check: "volume.snapshots", Severity: Warning,
				Message: fmt.Sprintf("%d snapshots, near limits.max_snapshots_per_volume (%d)", n, in.MaxSnapshots),
				Fix:     "delete old ones (lvss delete shadows --for " + c.path + " --oldest) or raise limits.max_snapshots_per_volume"})
		}
	}
	return v
}

// freezeFindings: a provider that needs the filesystem frozen around its
// commit needs a kernel that can freeze it, and a filesystem the guard
// agrees to freeze (not the one holding the run dir).
func (in Input) freezeFindings(ms []mountinfo.Mount, v *Volume, p provider.Info, add func(Finding)) {
	switch v.Freeze {
	case mountinfo.FreezeSupported:
		add(Finding{Check: "volume.freeze", Severity: OK,
			Message: fmt.Sprintf("%s commits while the filesystem is frozen, and the kernel can freeze %s", p.Name, v.Type)})
	case mountinfo.FreezeUnsupported:
		add(Finding{Check: "volume.freeze", Severity: Error,
			Message: fmt.Sprintf("%s commits while the filesystem is frozen, and %s", p.Name, v.FreezeReason),
			Fix:     "snapshot it with a provider that needs no freeze, or keep the data on a filesystem that can be frozen (ext4, XFS)"})
	default:
		add(Finding{Check: "volume.freeze", Severity: Warning,
			Message: fmt.Sprintf("%s commits while the filesystem is frozen; %s", p.Name, v.FreezeReason),
			Fix:     "try a backup of it: lvss create shadow --for " + v.Path})
	}
	if in.RunDir == "" || v.Device == "" {
		return
	}
	if m, err := mountinfo.Find(ms, in.RunDir); err == nil && m.Device() == v.Device {
		add(Finding{Check: "volume.run_dir", Severity: Error,
			Message: fmt.Sprintf("lvssd's run dir %s is on this filesystem: the freeze guard writes its records there during the hold, so it refuses to freeze it", in.RunDir),
			Fix:     "run lvssd with --run-dir on a tmpfs, such as /run/lvss (the default)"})
	}
}

func diagnose(ctx context.Context, p provider.Provider, path string) provider.Diagnosis {
	if d, ok := p.(provider.Diagnoser); ok {
		return d.Diagnose(ctx, path)
	}
	ok, err := p.IsVolumeSupported(ctx, path)
	switch {
	case err != nil:
		return provider.Diagnosis{Reason: err.Error()}
	case ok:
		return provider.Diagnosis{Supported: true, Reason: "it supports the volume"}
	}
	return provider.Diagnosis{Reason: "it does not support the volume"}
}

// Space is statfs of dir, or of its nearest existing ancestor (a snapshot
// directory is made at the first snapshot, on the filesystem it would be
// in), bounded by d: the bytes an unprivileged writer could still use, and
// the total.
func Space(ctx context.Context, d time.Duration, dir string) (free, total uint64, err error) {
	type res struct {
		free, total uint64
		err         error
	}
	r, ok := bounded(ctx, d, func(context.Context) res {
		p := dir
		for {
			var st unix.Statfs_t
			err := unix.Statfs(p, &st)
			if err == nil {
				return res{st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil}
			}
			if !errors.Is(err, unix.ENOENT) || filepath.Dir(p) == p {
				return res{err: err}
			}
			p = filepath.Dir(p)
		}
	})
	if !ok {
		return 0, 0, fmt.Errorf("statfs %s did not return within %s", dir, d)
	}
	return r.free, r.total, r.err
}

// directories checks lvssd's run and state directories.
func (in Input) directories(ms []mountinfo.Mount, vols []Volume) []Finding {
	var out []Finding
	memory := func(t string) bool { return t == "tmpfs" || t == "ramfs" }
	if in.RunDir != "" {
		if m, err := mountinfo.Find(ms, in.RunDir); err != nil {
			out = append(out, Finding{Check: "run_dir.tmpfs", Severity: Warning, Subject: in.RunDir, Message: "cannot find its filesystem: " + err.Error()})
		} else if memory(m.FSType) {
			out = append(out, Finding{Check: "run_dir.tmpfs", Severity: OK, Subject: in.RunDir,
				Message: fmt.Sprintf("run dir %s is on a %s (%s): it can be written while filesystems are frozen", in.RunDir, m.FSType, m.MountPoint)})
		} else {
			out = append(out, Finding{Check: "run_dir.tmpfs", Severity: Warning, Subject: in.RunDir,
				Message: fmt.Sprintf("run dir %s is on %s (%s), not a tmpfs: the freeze guard and exec providers' commands write there while filesystems are frozen, so the guard refuses to freeze %s",
					in.RunDir, m.MountPoint, m.FSType, m.MountPoint),
				Fix: "run lvssd with --run-dir on a tmpfs, such as /run/lvss (the default)"})
		}
	}
	if in.StateDir == "" {
		return out
	}
	m, err := mountinfo.Find(ms, in.StateDir)
	if err != nil {
		return append(out, Finding{Check: "state_dir.persistent", Severity: Warning, Subject: in.StateDir, Message: "cannot find its filesystem: " + err.Error()})
	}
	if memory(m.FSType) {
		out = append(out, Finding{Check: "state_dir.persistent", Severity: Warning, Subject: in.StateDir,
			Message: fmt.Sprintf("state dir %s is on a %s: the catalog (snapshots, documents, event log) is lost at reboot, and persistent snapshots with it", in.StateDir, m.FSType),
			Fix:     "run lvssd with --state-dir on a persistent filesystem, such as /var/lib/lvss (the default)"})
	} else {
		out = append(out, Finding{Check: "state_dir.persistent", Severity: OK, Subject: in.StateDir,
			Message: fmt.Sprintf("state dir %s is on %s (%s)", in.StateDir, m.MountPoint, m.FSType)})
	}
	// The guard refuses to freeze the run dir's filesystem, but it does not
	// know where the state dir is: lvssd defers its own event log while a
	// hold lasts, and every other catalog write (another session's delete,
	// an expose) waits for the thaw.
	var freezers []string
	for _, v := range vols {
		if v.Device != m.Device() || v.Provider == "" {
			continue
		}
		for _, vd := range v.Verdicts {
			if vd.Provider.Name == v.Provider && vd.Provider.NeedsFreeze {
				freezers = append(freezers, fmt.Sprintf("%s (%s)", v.Path, v.Provider))
			}
		}
	}
	if len(freezers) > 0 {
		out = append(out, Finding{Check: "state_dir.frozen", Severity: Warning, Subject: in.StateDir,
			Message: fmt.Sprintf("state dir %s is on %s, which is frozen while %s commits: lvssd holds back its own catalog writes until the thaw, and other sessions' catalog writes wait (up to timeouts.hold)",
				in.StateDir, m.MountPoint, strings.Join(freezers, ", ")),
			Fix: "run lvssd with --state-dir on a filesystem no freezing provider snapshots"})
	} else {
		out = append(out, Finding{Check: "state_dir.frozen", Severity: OK, Subject: in.StateDir,
			Message: fmt.Sprintf("no provider freezes %s, the filesystem of the state dir", m.MountPoint)})
	}
	return out
}
