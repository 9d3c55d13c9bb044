package exec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/procgroup"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
)

func TestParseTimeout(t *testing.T) {
	ev, d, err := ParseTimeout("prepare-snapshot=1m30s")
	if err != nil || ev != EventPrepareSnapshot || d != 90*time.Second {
		t.Errorf("got %q %s %v", ev, d, err)
	}
	for in, want := range map[string]string{
		"freeze":           "want EVENT=DURATION",
		"frieze=10s":       `unknown event "frieze"`,
		"PrepareBackup=1s": `unknown event "PrepareBackup"`,
		"freeze=10":        "missing unit",
		"freeze=soon":      "invalid duration",
		"freeze=0s":        "must be positive",
		"thaw=-1s":         "must be positive",
	} {
		if _, _, err := ParseTimeout(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTimeout(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestParseComponent(t *testing.T) {
	for in, want := range map[string]Component{
		"db=/var/lib/db/":         {Name: "db", Path: "/var/lib/db"},
		" logs =/var/log/a/*.log": {Name: "logs", Path: "/var/log/a/*.log"},
		"a=b=/x=y":                {Name: "a", Path: "b=/x=y"}, // refused below: relative
	} {
		got, err := ParseComponent(in)
		if in == "a=b=/x=y" {
			if err == nil {
				t.Errorf("ParseComponent(%q) accepted a relative path", in)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseComponent(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"/var/lib/db":       "want NAME=PATH",
		"=/var/lib/db":      "name is empty",
		`a\b=/var/lib/db`:   "backslash",
		"db=var/lib/db":     "not absolute",
		"db=":               "not absolute",
		"db=/var/*/db/data": "wildcard before its last element",
	} {
		if _, err := ParseComponent(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseComponent(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestParseEnums(t *testing.T) {
	for in, want := range map[string]vss.AppLevel{"front-end": vss.LevelFrontEnd, "back-end": vss.LevelBackEnd,
		"system": vss.LevelSystem, "VSS_APP_BACK_END": vss.LevelBackEnd, "Front_End": vss.LevelFrontEnd} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %s, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "system-rm", "auto", "3", "frontend-ish"} {
		if _, err := ParseLevel(in); err == nil || !strings.Contains(err.Error(), "front-end, back-end, system") {
			t.Errorf("ParseLevel(%q) = %v, want an error listing the levels", in, err)
		}
	}
	if got, err := ParseUsage("user-data"); err != nil || got != vss.UsageUserData {
		t.Errorf("ParseUsage: %s %v", got, err)
	}
	if got, err := ParseUsage("VSS_UT_SYSTEMSERVICE"); err != nil || got != vss.UsageSystemService {
		t.Errorf("ParseUsage: %s %v", got, err)
	}
	if got, err := ParseSource("non-transacted-db"); err != nil || got != vss.SourceNonTransactedDB {
		t.Errorf("ParseSource: %s %v", got, err)
	}
	if got, err := ParseRestoreMethod("restore-if-not-there"); err != nil || got != vss.RMERestoreIfNotThere {
		t.Errorf("ParseRestoreMethod: %s %v", got, err)
	}
	if _, err := ParseRestoreMethod("stop-restore-start"); err == nil {
		t.Error("ParseRestoreMethod accepted a method that needs a service name")
	}
	if _, err := ParseSource("undefined"); err == nil {
		t.Error("ParseSource accepted undefined")
	}
}

func TestEvents(t *testing.T) {
	want := []string{"identify", "prepare-backup", "prepare-snapshot", "freeze", "thaw", "post-snapshot",
		"abort", "backup-complete", "backup-shutdown", "pre-restore", "post-restore"}
	got := Events()
	if !slices.Equal(got, want) {
		t.Errorf("Events() = %v", got)
	}
	got[0] = "changed"
	if Events()[0] != "identify" {
		t.Error("Events() returns the package's own slice")
	}
}

func TestNew(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		cfg := baseConfig(t)
		id, w := mustNew(t, cfg)
		id2, _ := mustNew(t, cfg)
		if id.ClassID != ClassIDFor(cfg.Name) || id2.ClassID != id.ClassID || ClassIDFor("other") == id.ClassID {
			t.Errorf("class ID %s is not derived from the name alone", id.ClassID)
		}
		if id.ClassID.Version() != 5 {
			t.Errorf("class ID %s is not a name-based (SHA-1) UUID", id.ClassID)
		}
		if id.Level != vss.LevelFrontEnd || id.Usage != vss.UsageUserData || id.Source != vss.SourceOther || id.FreezeTimeout != 60*time.Second {
			t.Errorf("identity %+v", id)
		}
		if w.Timeout(EventPrepareSnapshot) != DefaultTimeout || w.Timeout(EventFreeze) != DefaultTimeout {
			t.Errorf("timeouts %s / %s", w.Timeout(EventPrepareSnapshot), w.Timeout(EventFreeze))
		}
	})
	t.Run("ExplicitIdentity", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.ClassID = uuid.MustParse("0b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d")
		cfg.Level, cfg.Usage, cfg.Source, cfg.FreezeTimeout = vss.LevelBackEnd, vss.UsageSystemService, vss.SourceTransactedDB, 8*time.Second
		cfg.DefaultTimeout = 7 * time.Second
		cfg.Timeouts = map[string]time.Duration{EventThaw: 3 * time.Second}
		id, w := mustNew(t, cfg)
		if id.ClassID != cfg.ClassID || id.Level != vss.LevelBackEnd || id.FreezeTimeout != 8*time.Second {
			t.Errorf("identity %+v", id)
		}
		// Implicitly the freeze hooks get half the window.
		if w.Timeout(EventFreeze) != 4*time.Second || w.Timeout(EventThaw) != 3*time.Second || w.Timeout(EventAbort) != 7*time.Second {
			t.Errorf("timeouts freeze %s thaw %s abort %s", w.Timeout(EventFreeze), w.Timeout(EventThaw), w.Timeout(EventAbort))
		}
	})
	t.Run("DefaultTmpDir", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.TmpDir = ""
		_, w := mustNew(t, cfg)
		if !procgroup.OnTmpfs(w.TmpDir()) {
			t.Errorf("the default TMPDIR parent %s is not on a tmpfs", w.TmpDir())
		}
	})
	// A directory on disk: the test's temp dir, or /var/tmp when /tmp is a tmpfs.
	notTmpfs := t.TempDir()
	if procgroup.OnTmpfs(notTmpfs) {
		if d, err := os.MkdirTemp("/var/tmp", "lvss-exec-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			notTmpfs = d
		}
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"NoName":         {func(c *Config) { c.Name = "" }, "name is empty"},
		"NothingToBack":  {func(c *Config) { c.Components = nil }, "nothing to back up"},
		"UnknownHook":    {func(c *Config) { c.Hooks = map[string]string{"on-freeze": "true"} }, `unknown event "on-freeze"`},
		"EmptyHook":      {func(c *Config) { c.Hooks = map[string]string{EventThaw: " "} }, "empty command"},
		"UnknownTimeout": {func(c *Config) { c.Timeouts = map[string]time.Duration{"Freeze": time.Second} }, `unknown event "Freeze"`},
		"ZeroTimeout":    {func(c *Config) { c.Timeouts = map[string]time.Duration{EventThaw: 0} }, "must be positive"},
		"FreezeTooLong": {func(c *Config) {
			c.FreezeTimeout = 10 * time.Second
			c.Timeouts = map[string]time.Duration{EventFreeze: 10 * time.Second}
		}, "not shorter than the Freeze→Thaw window"},
		"Level":           {func(c *Config) { c.Level = vss.LevelSystemRM }, "want front-end, back-end or system"},
		"ServiceRestore":  {func(c *Config) { c.RestoreMethod = vss.RMEStopRestoreStart }, "needs a service name"},
		"BadComponent":    {func(c *Config) { c.Components = []Component{{Name: "x", Path: "rel"}} }, "not absolute"},
		"DupComponent":    {func(c *Config) { c.Components = append(c.Components, c.Components[0]) }, "twice"},
		"MissingHookDir":  {func(c *Config) { c.HookDir = "/nonexistent/fsfreeze-hook.d" }, "hook directory"},
		"HookDirIsAFile":  {func(c *Config) { c.HookDir = "/etc/hostname" }, "not a directory"},
		"TmpDirNotTmpfs":  {func(c *Config) { c.TmpDir = notTmpfs }, "not on a tmpfs"},
		"TmpDirNotMadeIn": {func(c *Config) { c.TmpDir = "/proc/nope" }, "TMPDIR parent"},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "TmpDirNotTmpfs" && procgroup.OnTmpfs(notTmpfs) {
				testenv.Missing(t, "a directory that is not on a tmpfs ("+notTmpfs+" is one)")
			}
			cfg := baseConfig(t)
			tc.edit(&cfg)
			if _, _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("IdentifyHookAlone", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.Components = nil
		cfg.Hooks = map[string]string{EventIdentify: "cat /etc/app/wmd.xml"}
		if _, _, err := New(cfg); err != nil {
			t.Errorf("a writer described by its identify hook alone: %v", err)
		}
	})
}

func TestListScripts(t *testing.T) {
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"b": 0o755, "a": 0o700, "C": 0o755, "noexec": 0o644, "x.rpmsave": 0o755, ".git": 0o755} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "b"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	got, err := listScripts(dir, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, filepath.Base(p))
	}
	if want := []string{"C", "a", "b", "link"}; !slices.Equal(names, want) {
		t.Errorf("scripts %v, want %v (byte order; no directory, non-executable, hidden or leftover file)", names, want)
	}
}
