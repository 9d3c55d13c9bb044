package config

import (
	"path/filepath"
)

// Samba says where lvss finds Samba's own configuration
// (docs/previous-versions.md). lvss never edits it: lvss samba-config
// prints what to add, and lvss doctor reads it through Samba's testparm.
type Samba struct {
	// Config is the smb.conf the Samba server runs with. lvss doctor
	// checks that every [[previous_versions]] path has a share there
	// whose shadow_copy2 settings match the snapdir lvssd keeps for it.
	Config string `toml:"config"`
}

// DefaultSambaConfig is where Debian's samba package keeps smb.conf.
const DefaultSambaConfig = "/etc/samba/smb.conf"

// PreviousVersion is one [[previous_versions]] entry: a directory that a
// Samba share serves, whose lvss snapshots Windows clients see as
// Previous Versions. lvssd keeps a snapdir of @GMT- entries for it
// (Samba's shadow_copy2 reads it), following every change to the
// snapshots (docs/previous-versions.md; docs/decisions.md L55–L57).
type PreviousVersion struct {
	// Path is the share's directory: absolute, on a volume an lvss
	// provider snapshots (a subdirectory of one is fine). lvssd refuses
	// to start when no provider supports it.
	Path string `toml:"path"`
	// AllPersistent also shows the persistent snapshots that are not
	// client-accessible (lvss backup --persistent, VSS_CTX_APP_ROLLBACK,
	// VSS_CTX_NAS_ROLLBACK, adopted ones). Without it only the snapshots
	// made in VSS_CTX_CLIENT_ACCESSIBLE or
	// VSS_CTX_CLIENT_ACCESSIBLE_WRITERS are shown, as D13 intends.
	AllPersistent bool `toml:"all_persistent"`
}

// checkSamba checks [samba] and [[previous_versions]]: paths absolute and
// written clean (they are compared with what Samba and the snapshots
// say), and no share path twice (lvssd keeps one snapdir per path).
func checkSamba(c *Config, doc *document) error {
	const key = "samba.config"
	switch p := c.Samba.Config; {
	case p == "" || !filepath.IsAbs(p):
		return doc.errorAt([]string{key}, "%s: %q must be an absolute path, such as %q", key, p, DefaultSambaConfig)
	case filepath.Clean(p) != p:
		return doc.errorAt([]string{key}, "%s: write the path in its clean form, %q", key, filepath.Clean(p))
	}
	seen := map[string]string{}
	for i, pv := range c.PreviousVersions {
		k := "previous_versions" + index(i)
		switch p := pv.Path; {
		case p == "":
			return doc.errorAt([]string{k + ".path", k}, "%s.path must be set: the directory a Samba share serves, such as \"/srv/share\"", k)
		case !filepath.IsAbs(p):
			return doc.errorAt([]string{k + ".path"}, "%s.path: %q must be an absolute path", k, p)
		case filepath.Clean(p) != p:
			return doc.errorAt([]string{k + ".path"}, "%s.path: write the path in its clean form, %q", k, filepath.Clean(p))
		}
		if prev, dup := seen[pv.Path]; dup {
			return doc.errorAt([]string{k + ".path"}, "%s.path: %s is already %s.path; lvssd keeps one snapdir per path", k, pv.Path, prev)
		}
		seen[pv.Path] = k
	}
	return nil
}
