package exec

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/procgroup"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/writer"
)

// Event names as the flags spell them (--on-EVENT, --timeout EVENT=...),
// also the value of LVSS_EVENT. The order is the order of a session, so
// that help texts list them naturally.
const (
	EventIdentify        = "identify"
	EventPrepareBackup   = "prepare-backup"
	EventPrepareSnapshot = "prepare-snapshot"
	EventFreeze          = "freeze"
	EventThaw            = "thaw"
	EventPostSnapshot    = "post-snapshot"
	EventAbort           = "abort"
	EventBackupComplete  = "backup-complete"
	EventBackupShutdown  = "backup-shutdown"
	EventPreRestore      = "pre-restore"
	EventPostRestore     = "post-restore"
)

var events = []string{
	EventIdentify, EventPrepareBackup, EventPrepareSnapshot, EventFreeze, EventThaw, EventPostSnapshot,
	EventAbort, EventBackupComplete, EventBackupShutdown, EventPreRestore, EventPostRestore,
}

// Events returns the event names in session order, for registering the
// --on-EVENT flags and checking --timeout keys.
func Events() []string { return slices.Clone(events) }

func knownEvent(name string) bool { return slices.Contains(events, name) }

// DefaultTimeout is a hook's timeout when neither Timeouts nor
// Config.DefaultTimeout says otherwise. It is below every event deadline
// of lvssd's default configuration (the shortest is 30 s), so that with
// defaults a hung hook is reported by the writer as
// VSS_E_WRITERERROR_TIMEOUT rather than by lvssd as NOT_RESPONDING.
const DefaultTimeout = 20 * time.Second

// DefaultTmpDir is the preferred parent of the hooks' TMPDIRs: lvssd's run
// directory, a tmpfs on systemd hosts.
const DefaultTmpDir = "/run/lvss/exec-writer"

// Component is one --component NAME=PATH. Several with the same Name make
// one component with several file sets.
type Component struct {
	Name string
	// Path is absolute and clean. A directory becomes a recursive file set
	// ("*"), a file a file set of that one file; a last element holding a
	// wildcard (* or ?) is a non-recursive filespec in its directory. Which
	// of these is decided at each Identify, so a path may appear later.
	Path string
}

// Config describes one exec writer. Only Name and either Components or an
// identify hook are required.
type Config struct {
	Name         string
	InstanceName string
	// ClassID zero: derived from Name (the same on every start and every
	// machine, as a class ID must be).
	ClassID       uuid.UUID
	Level         vss.AppLevel  // zero: front-end; front-end, back-end or system
	Usage         vss.UsageType // zero: USERDATA
	Source        vss.SourceType
	RestoreMethod vss.RestoreMethod // zero: RESTORE_IF_CAN_REPLACE
	// FreezeTimeout is the Freeze→Thaw window the writer asks for; zero is
	// the SDK's 60 s. lvssd may grant less (timeouts.freeze).
	FreezeTimeout time.Duration

	// Hooks maps an event name of Events() to a command run with sh -c.
	Hooks map[string]string
	// HookDir is a directory of fsfreeze-hook.d style scripts, called with
	// "freeze" at Freeze and "thaw" at Thaw, Abort and BackupShutdown.
	HookDir string
	// Timeouts maps event names to the hooks' timeout for that event;
	// others get DefaultTimeout (zero: the package's DefaultTimeout).
	Timeouts       map[string]time.Duration
	DefaultTimeout time.Duration

	Components []Component

	// TmpDir is the parent of the hooks' TMPDIRs and must be on a tmpfs,
	// since a hook writing to a frozen filesystem blocks. Empty: the first
	// tmpfs among DefaultTmpDir, $XDG_RUNTIME_DIR, os.TempDir() and
	// /dev/shm. A directory that is not on a tmpfs is refused.
	TmpDir string

	Logger *slog.Logger // nil: discard
}

// classSpace is the namespace of derived class IDs. It must never change:
// a writer's class ID is how requesters recognise it across restarts,
// machines and versions.
var classSpace = uuid.MustParse("34a171bc-b21b-4c47-88ba-8b90e8867fc0")

// ClassIDFor is the class ID an exec writer named name gets when
// Config.ClassID is zero.
func ClassIDFor(name string) uuid.UUID {
	return uuid.NewSHA1(classSpace, []byte("lvss-writer exec/"+name))
}

// ParseTimeout parses a --timeout value, "EVENT=DURATION" such as
// "prepare-snapshot=30s".
func ParseTimeout(s string) (event string, d time.Duration, err error) {
	event, val, ok := strings.Cut(s, "=")
	event = strings.TrimSpace(event)
	if !ok {
		return "", 0, fmt.Errorf("timeout %q: want EVENT=DURATION, e.g. freeze=10s", s)
	}
	if !knownEvent(event) {
		return "", 0, fmt.Errorf("timeout %q: unknown event %q (events: %s)", s, event, strings.Join(events, ", "))
	}
	d, err = time.ParseDuration(strings.TrimSpace(val))
	if err != nil {
		return "", 0, fmt.Errorf("timeout %q: %w", s, err)
	}
	if d <= 0 {
		return "", 0, fmt.Errorf("timeout %q: the duration must be positive", s)
	}
	return event, d, nil
}

// ParseComponent parses a --component value, "NAME=PATH". The name may not
// contain a backslash (it separates logical-path levels); the path must be
// absolute and may end in a wildcard filespec ("/var/log/app/*.log").
func ParseComponent(s string) (Component, error) {
	name, path, ok := strings.Cut(s, "=")
	if !ok {
		return Component{}, fmt.Errorf("component %q: want NAME=PATH", s)
	}
	c := Component{Name: strings.TrimSpace(name), Path: path}
	if err := c.check(); err != nil {
		return Component{}, fmt.Errorf("component %q: %w", s, err)
	}
	c.Path = filepath.Clean(c.Path)
	return c, nil
}

func (c Component) check() error {
	switch {
	case c.Name == "":
		return errors.New("the name is empty")
	case strings.Contains(c.Name, `\`):
		return fmt.Errorf("the name %q contains a backslash", c.Name)
	case !filepath.IsAbs(c.Path):
		return fmt.Errorf("the path %q is not absolute", c.Path)
	case hasWildcard(filepath.Dir(filepath.Clean(c.Path))):
		return fmt.Errorf("the path %q has a wildcard before its last element", c.Path)
	}
	return nil
}

// hasWildcard: the VSS filespec wildcards are * and ? only; anything else,
// '[' included, is literal.
func hasWildcard(s string) bool { return strings.ContainsAny(s, "*?") }

// squash reduces an enumeration name to what is compared: lower case,
// without separators, so "front-end", "FRONT_END" and "VSS_APP_FRONT_END"
// all name the same value.
func squash(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' {
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// parseEnum finds the value among candidates whose spec name, with or
// without its prefix, matches s.
func parseEnum[T interface {
	~int32
	String() string
}](kind, prefix, s string, candidates ...T) (T, error) {
	want := squash(strings.TrimSpace(s))
	var names []string
	for _, v := range candidates {
		name := v.String()
		if want != "" && (want == squash(name) || want == squash(strings.TrimPrefix(name, prefix))) {
			return v, nil
		}
		names = append(names, strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, prefix), "_", "-")))
	}
	return 0, fmt.Errorf("unknown %s %q (one of: %s)", kind, s, strings.Join(names, ", "))
}

// ParseLevel parses --level: front-end, back-end or system (spec names
// such as VSS_APP_BACK_END work too).
func ParseLevel(s string) (vss.AppLevel, error) {
	return parseEnum("application level", "VSS_APP_", s, vss.LevelFrontEnd, vss.LevelBackEnd, vss.LevelSystem)
}

// ParseUsage parses --usage: user-data, system-service, bootable-system-state
// or other (the spec's VSS_UT_ names work too).
func ParseUsage(s string) (vss.UsageType, error) {
	return parseEnum("usage", "VSS_UT_", s, vss.UsageUserData, vss.UsageSystemService,
		vss.UsageBootableSystemState, vss.UsageOther)
}

// ParseSource parses --source: transacted-db, non-transacted-db or other.
func ParseSource(s string) (vss.SourceType, error) {
	return parseEnum("source", "VSS_ST_", s, vss.SourceTransactedDB, vss.SourceNonTransactedDB, vss.SourceOther)
}

// ParseRestoreMethod parses --restore-method: restore-if-not-there,
// restore-if-can-replace, restore-to-alternate-location, restore-at-reboot,
// restore-at-reboot-if-cannot-replace or custom. The two methods that
// stop and start a service need the service's name, which only a Writer
// Metadata Document printed by the identify hook can give.
func ParseRestoreMethod(s string) (vss.RestoreMethod, error) {
	return parseEnum("restore method", "VSS_RME_", s, vss.RMERestoreIfNotThere, vss.RMERestoreIfCanReplace,
		vss.RMERestoreToAlternateLocation, vss.RMERestoreAtReboot, vss.RMERestoreAtRebootIfCannotReplace, vss.RMECustom)
}

// settings is a checked Config with every default filled in.
type settings struct {
	Config
	window   time.Duration // the Freeze→Thaw window asked for
	timeouts map[string]time.Duration
}

func (cfg Config) settle() (*settings, error) {
	s := &settings{Config: cfg}
	if s.Name == "" {
		return nil, errors.New("exec writer: the name is empty")
	}
	if s.ClassID == uuid.Nil {
		s.ClassID = ClassIDFor(s.Name)
	}
	switch s.Level {
	case vss.LevelUnknown:
		s.Level = vss.LevelFrontEnd
	case vss.LevelFrontEnd, vss.LevelBackEnd, vss.LevelSystem:
	default:
		return nil, fmt.Errorf("exec writer: level %s: want front-end, back-end or system", s.Level)
	}
	if s.Usage == vss.UsageUndefined {
		s.Usage = vss.UsageUserData
	}
	if s.Source == vss.SourceUndefined {
		s.Source = vss.SourceOther
	}
	switch s.RestoreMethod {
	case vss.RMEUndefined:
		s.RestoreMethod = vss.RMERestoreIfCanReplace
	case vss.RMEStopRestoreStart, vss.RMERestoreStopStart:
		return nil, fmt.Errorf("exec writer: restore method %s needs a service name; print a Writer Metadata Document from the identify hook instead", s.RestoreMethod)
	}
	if _, err := ParseRestoreMethod(s.RestoreMethod.String()); err != nil {
		return nil, fmt.Errorf("exec writer: %w", err)
	}
	s.Hooks = map[string]string{}
	for ev, cmd := range cfg.Hooks {
		if !knownEvent(ev) {
			return nil, fmt.Errorf("exec writer: hook for unknown event %q (events: %s)", ev, strings.Join(events, ", "))
		}
		if strings.TrimSpace(cmd) == "" {
			return nil, fmt.Errorf("exec writer: the %s hook is an empty command", ev)
		}
		s.Hooks[ev] = cmd
	}
	if s.DefaultTimeout <= 0 {
		s.DefaultTimeout = DefaultTimeout
	}
	s.window = s.FreezeTimeout
	if s.window <= 0 {
		s.window = writer.DefaultFreezeTimeout
	}
	s.timeouts = map[string]time.Duration{}
	for _, ev := range events {
		s.timeouts[ev] = s.DefaultTimeout
	}
	// Implicitly, the freeze hooks get at most half the window: lvssd's
	// window starts when it sends Freeze and must also hold the provider
	// commit (timeouts.hold) and the other writers' freezes.
	s.timeouts[EventFreeze] = min(s.DefaultTimeout, s.window/2)
	for ev, d := range cfg.Timeouts {
		if !knownEvent(ev) {
			return nil, fmt.Errorf("exec writer: timeout for unknown event %q (events: %s)", ev, strings.Join(events, ", "))
		}
		if d <= 0 {
			return nil, fmt.Errorf("exec writer: the %s timeout must be positive", ev)
		}
		s.timeouts[ev] = d
	}
	if d := s.timeouts[EventFreeze]; d >= s.window {
		return nil, fmt.Errorf("exec writer: the freeze timeout %s is not shorter than the Freeze→Thaw window %s; the freeze hooks and the snapshot commit must both fit in the window", d, s.window)
	}
	seen := map[Component]bool{}
	for _, c := range cfg.Components {
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("exec writer: component %q: %w", c.Name, err)
		}
		c.Path = filepath.Clean(c.Path)
		if seen[c] {
			return nil, fmt.Errorf("exec writer: component %q lists %s twice", c.Name, c.Path)
		}
		seen[c] = true
	}
	if len(cfg.Components) == 0 && s.Hooks[EventIdentify] == "" {
		return nil, errors.New("exec writer: no component and no identify hook: the writer would have nothing to back up")
	}
	if s.HookDir != "" {
		st, err := os.Stat(s.HookDir)
		if err != nil {
			return nil, fmt.Errorf("exec writer: hook directory: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("exec writer: hook directory %s is not a directory", s.HookDir)
		}
	}
	dir, err := tmpParent(s.TmpDir)
	if err != nil {
		return nil, err
	}
	s.TmpDir = dir
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// tmpParent finds the directory the hooks' TMPDIRs are made in. An
// explicit one is created if missing and must be a tmpfs; otherwise the
// first tmpfs of the usual candidates is taken. Per-hook directories are
// made with random names (os.MkdirTemp), so a shared, world-writable
// parent such as /dev/shm is safe.
func tmpParent(explicit string) (string, error) {
	if explicit != "" {
		if err := os.MkdirAll(explicit, 0o700); err != nil {
			return "", fmt.Errorf("exec writer: TMPDIR parent: %w", err)
		}
		if !procgroup.OnTmpfs(explicit) {
			return "", fmt.Errorf("exec writer: TMPDIR parent %s is not on a tmpfs; a hook writing temporary files to a frozen filesystem would hang", explicit)
		}
		return explicit, nil
	}
	var tried []string
	// Only made inside an existing tmpfs /run/lvss (lvssd's run directory):
	// creating it on a disk would litter and fail the check anyway.
	if procgroup.OnTmpfs(filepath.Dir(DefaultTmpDir)) {
		if err := os.MkdirAll(DefaultTmpDir, 0o700); err == nil && procgroup.OnTmpfs(DefaultTmpDir) {
			return DefaultTmpDir, nil
		}
	}
	tried = append(tried, DefaultTmpDir)
	for _, dir := range []string{os.Getenv("XDG_RUNTIME_DIR"), os.TempDir(), "/dev/shm"} {
		if dir == "" {
			continue
		}
		if procgroup.OnTmpfs(dir) {
			return dir, nil
		}
		tried = append(tried, dir)
	}
	return "", fmt.Errorf("exec writer: none of %s is on a tmpfs; set the TMPDIR parent to a tmpfs directory", strings.Join(tried, ", "))
}
