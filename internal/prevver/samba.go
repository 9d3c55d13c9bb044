package prevver

// Param is one smb.conf parameter of a share section.
type Param struct{ Key, Value string }

// SambaParams are the parameters a share section needs for Samba to show
// the share's snapdir as Previous Versions: what lvss samba-config prints
// below [NAME], and what lvss doctor checks in smb.conf. shadow:mountpoint
// is the share's own path, not the mount point of its filesystem, because
// each entry points at the snapshot's copy of the share's directory (so a
// share that is a subdirectory of a volume works). The entries' names are
// UTC (shadow:localtime = no); Windows shows them in each user's own time
// zone.
func SambaParams(s Share) []Param {
	return []Param{
		{"path", s.Path},
		{"vfs objects", "shadow_copy2"},
		{"shadow:snapdir", s.Dir},
		{"shadow:mountpoint", s.Path},
		{"shadow:format", Format},
		{"shadow:localtime", "no"},
	}
}
