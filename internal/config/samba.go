package config

import (
	"path/filepath"
	"strings"
)

// DefaultSambaConfig is the smb.conf [samba] config names when it does not
// say (Debian's Samba).
const DefaultSambaConfig = "/etc/samba/smb.conf"

// Samba says which Samba lvssd publishes remote exposures with:
// ExposeSnapshot with VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY (`lvss expose
// --smb`) adds a read-only share to that Samba's registry
// (docs/previous-versions.md, "Remote exposure"; docs/decisions.md L58).
// Without a [samba] section remote exposure is VSS_E_NOT_SUPPORTED, and
// lvssd never runs Samba's tools: an lvssd that was not told about a
// Samba leaves it alone.
type Samba struct {
	// Config is the smb.conf the Samba server runs with: every Samba
	// command lvssd runs is given it (-s). Its [global] section must say
	// `registry shares = yes`. Default /etc/samba/smb.conf.
	Config string `toml:"config"`
	// Net is Samba's net command, an absolute path; "" looks "net" up in
	// lvssd's PATH. testparm and smbcontrol are taken from the same
	// directory, or else from PATH.
	Net string `toml:"net"`
}

// checkSamba fills the defaults of a [samba] section and refuses paths
// that are not absolute and clean: lvssd's working directory is no place
// to look for Samba.
func checkSamba(s *Samba, doc *document) error {
	if s == nil {
		return nil
	}
	if s.Config == "" {
		s.Config = DefaultSambaConfig
	}
	for _, f := range []struct{ key, v string }{{"samba.config", s.Config}, {"samba.net", s.Net}} {
		switch {
		case f.v == "" && f.key == "samba.net":
		case strings.ContainsAny(f.v, "\n\x00"):
			return doc.errorAt([]string{f.key}, "%s: %q has a line break or NUL", f.key, f.v)
		case !filepath.IsAbs(f.v):
			return doc.errorAt([]string{f.key}, "%s: %q must be an absolute path", f.key, f.v)
		case filepath.Clean(f.v) != f.v:
			return doc.errorAt([]string{f.key}, "%s: write %q in its clean form, %q", f.key, f.v, filepath.Clean(f.v))
		}
	}
	return nil
}
