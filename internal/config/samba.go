package config

import (
	"path/filepath"
	"strings"
)

// DefaultSambaConfig is where Debian's samba package keeps smb.conf.
const DefaultSambaConfig = "/etc/samba/smb.conf"

// Samba says where lvss finds Samba (docs/previous-versions.md). lvssd
// never edits Samba's configuration: lvss samba-config prints what to add
// for previous versions, lvss doctor reads it through Samba's testparm,
// and with RemoteExposure lvssd adds and removes shares in Samba's
// registry through Samba's own tools.
type Samba struct {
	// Config is the smb.conf the Samba server runs with: every Samba
	// command lvss runs is given it (-s), and lvss doctor checks that
	// every [[previous_versions]] path has a share there whose
	// shadow_copy2 settings match the snapdir lvssd keeps for it.
	Config string `toml:"config"`
	// Net is Samba's net command, an absolute path; "" looks "net" up in
	// lvssd's PATH. testparm and smbcontrol are taken from the same
	// directory, or else from PATH.
	Net string `toml:"net"`
	// RemoteExposure lets ExposeSnapshot with
	// VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY (`lvss expose --smb`) publish
	// snapshots as read-only shares of Samba's registry, which Config's
	// [global] must allow (`registry shares = yes`); docs/decisions.md
	// L58. Off, remote exposure is VSS_E_NOT_SUPPORTED and lvssd runs no
	// Samba tool for it, at start or later: it is an explicit choice
	// because lvssd then manages shares of that Samba, and removes at
	// start the lvss shares its catalog does not record (L59).
	RemoteExposure bool `toml:"remote_exposure"`
}

// checkSambaPaths refuses Samba paths that are not absolute and clean:
// lvssd's working directory is no place to look for Samba.
func checkSambaPaths(s Samba, doc *document) error {
	for _, f := range []struct{ key, v string }{{"samba.config", s.Config}, {"samba.net", s.Net}} {
		switch {
		case f.v == "" && f.key == "samba.net":
		case strings.ContainsAny(f.v, "\n\x00"):
			return doc.errorAt([]string{f.key}, "%s: %q has a line break or NUL", f.key, f.v)
		case !filepath.IsAbs(f.v):
			example := DefaultSambaConfig
			if f.key == "samba.net" {
				example = "/usr/bin/net"
			}
			return doc.errorAt([]string{f.key}, "%s: %q must be an absolute path, such as %q", f.key, f.v, example)
		case filepath.Clean(f.v) != f.v:
			return doc.errorAt([]string{f.key}, "%s: write %q in its clean form, %q", f.key, f.v, filepath.Clean(f.v))
		}
	}
	return nil
}

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

// checkSamba checks [samba] (checkSambaPaths) and [[previous_versions]]:
// paths absolute and written clean (they are compared with what Samba and
// the snapshots say), and no share path twice (lvssd keeps one snapdir
// per path).
func checkSamba(c *Config, doc *document) error {
	if err := checkSambaPaths(c.Samba, doc); err != nil {
		return err
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
