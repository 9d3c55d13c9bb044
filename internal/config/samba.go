package config

import (
	"path/filepath"
	"strings"
)

// DefaultSambaConfig is where Debian's samba package keeps smb.conf.
const DefaultSambaConfig = "/etc/samba/smb.conf"

// Samba says where lvss finds Samba (docs/previous-versions.md). lvssd
// never edits Samba's configuration; with RemoteExposure it adds and
// removes shares in Samba's registry through Samba's own tools.
type Samba struct {
	// Config is the smb.conf the Samba server runs with: every Samba
	// command lvssd runs is given it (-s).
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
