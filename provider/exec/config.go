package exec

import (
	"strings"
	"time"

	"github.com/lvss/lvss/provider/confval"
	"github.com/lvss/lvss/vss"
)

// Config is one [[providers.exec]] provider: snapshots taken from outside
// the filesystem by commands (hypervisor, SAN, cloud disk API, image
// clones). Commands run with sh -c; docs/provider-exec.md lists their
// environment and output formats.
type Config struct {
	Name     string   `toml:"name"`     // provider name, unique
	Volumes  []string `toml:"volumes"`  // the volumes (mount points or paths) it snapshots
	Commit   string   `toml:"commit"`   // runs inside the freeze; prints the snapshot's handle
	Delete   string   `toml:"delete"`   // removes one snapshot ($LVSS_SNAPSHOT_HANDLE)
	List     string   `toml:"list"`     // optional: prints the handles it holds, one per line
	Expose   string   `toml:"expose"`   // optional: makes a snapshot readable at $LVSS_EXPOSE_PATH
	Unexpose string   `toml:"unexpose"` // optional: undoes expose
	// Timeout bounds commit; it must fit in timeouts.hold (unset: hold).
	Timeout *confval.Duration `toml:"timeout"`
	// OtherTimeout bounds delete, list, expose and unexpose (unset: 60s).
	OtherTimeout *confval.Duration `toml:"other_timeout"`
	// Kind says what the commands make: "differential" (copy-on-write,
	// such as a hypervisor or thin-pool snapshot) or "plex" (a full
	// clone). Unset, the provider claims neither, and a requester that
	// asks for a kind (D19) is not given it.
	Kind string `toml:"kind"`
}

// Kinds are the snapshot kinds the configured commands make (D19).
func (c Config) Kinds() vss.Attributes {
	switch c.Kind {
	case "differential":
		return vss.AttrDifferential
	case "plex":
		return vss.AttrPlex
	}
	return 0
}

// Validate checks one entry: the commands it cannot work without, its
// volumes, and a commit deadline that fits in hold (timeouts.hold), since
// commit runs while the filesystems are frozen. key is where the entry is
// in the file ("providers.exec[0]"); a problem is a *confval.KeyError
// naming keys under it.
//
// The name is not checked here: it must differ from every other
// provider's, which only the configuration as a whole can tell. New
// refuses an entry without one.
func (c Config) Validate(key string, hold time.Duration) error {
	if c.Commit == "" || c.Delete == "" {
		return confval.Errorf([]string{key + ".commit", key}, "%s: commit and delete commands are required", key)
	}
	if len(c.Volumes) == 0 {
		return confval.Errorf([]string{key + ".volumes", key}, "%s.volumes: list the volumes this provider snapshots", key)
	}
	for j, v := range c.Volumes {
		k := confval.Elem(key+".volumes", j)
		if err := confval.AbsPath(k, v); err != nil {
			return err
		}
		// Volumes reach commands as newline-separated lists.
		if strings.ContainsAny(v, "\n\x00") {
			return confval.Errorf([]string{k}, "%s: a volume path may not contain a newline", k)
		}
	}
	if (c.Expose == "") != (c.Unexpose == "") {
		return confval.Errorf([]string{key + ".expose", key + ".unexpose", key}, "%s: expose and unexpose go together: set both or neither", key)
	}
	if c.Kind != "" && c.Kind != "differential" && c.Kind != "plex" {
		return confval.Errorf([]string{key + ".kind"}, "%s.kind: %q is not a snapshot kind: say \"differential\" or \"plex\", or leave it unset", key, c.Kind)
	}
	if c.Timeout != nil && c.Timeout.D() > hold {
		return confval.Errorf([]string{key + ".timeout"}, "%s.timeout (%s) must fit in timeouts.hold (%s): the commit runs inside the filesystem freeze", key, *c.Timeout, hold)
	}
	return nil
}
