package server

import (
	"context"
	"path/filepath"
	"strings"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/prevver"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vsserr"
)

// PreviousVersions is what the PreviousVersions call reports, which only
// lvssd's main knows: the keeper of the [[previous_versions]] snapdirs
// and [samba] config.
type PreviousVersions struct {
	Keeper      *prevver.Keeper // nil: no [[previous_versions]]
	SambaConfig string
}

// WithPreviousVersions tells the server about lvssd's previous-versions
// snapdirs (lvss samba-config, lvss doctor). Without it PreviousVersions
// lists none.
func WithPreviousVersions(pv PreviousVersions) Option {
	return func(s *Server) { s.prevver = pv }
}

// PreviousVersions reports the configured share paths with their snapdirs
// and the smb.conf parameters a share of each needs, from the keeper's
// status (copies taken under its lock: it never waits for a reconcile).
func (a *admin) PreviousVersions(_ context.Context, r *v1.PreviousVersionsRequest) (*v1.PreviousVersionsResponse, error) {
	pv := a.s.prevver
	out := &v1.PreviousVersionsResponse{SambaConfig: pv.SambaConfig}
	var sts []prevver.Status
	if pv.Keeper != nil {
		sts = pv.Keeper.Statuses()
	}
	if r.Path != "" {
		if !filepath.IsAbs(r.Path) {
			return nil, wire.ToGRPC(vsserr.New(vsserr.InvalidArg, "path %q is not absolute", r.Path))
		}
		asked := filepath.Clean(r.Path)
		want := asked
		if p, err := filepath.EvalSymlinks(asked); err == nil {
			want = p
		}
		var match []prevver.Status
		var paths []string
		for _, st := range sts {
			paths = append(paths, st.Path)
			if st.Path == want {
				match = append(match, st)
			}
		}
		if len(match) == 0 {
			cfg := a.s.daemon.ConfigFile
			if cfg == "" {
				cfg = "none: lvssd runs with the defaults"
			}
			configured := "none"
			if len(paths) > 0 {
				configured = strings.Join(paths, ", ")
			}
			// The path as asked, not resolved: lvssd resolves as root, and
			// where a link leads is not the caller's to learn from it.
			return nil, wire.ToGRPC(vsserr.New(vsserr.ObjectNotFound, "%s is not a [[previous_versions]] path of lvssd (config file: %s; configured: %s)",
				asked, cfg, configured))
		}
		sts = match
	}
	for _, st := range sts {
		sh := &v1.PreviousVersionsShare{Path: st.Path, AllPersistent: st.AllPersistent, Snapdir: st.Dir,
			ReconciledUnixNano: unixNano(st.Reconciled), ShutDir: st.ShutDir, ShutMode: uint32(st.ShutMode)}
		for _, p := range prevver.SambaParams(st.Share) {
			sh.SambaParams = append(sh.SambaParams, &v1.SambaParam{Key: p.Key, Value: p.Value})
		}
		for _, e := range st.Entries {
			sh.Versions = append(sh.Versions, &v1.PreviousVersion{Name: e.Name, SnapshotId: e.Snapshot.String(),
				CreatedUnixNano: e.Created.UnixNano(), Target: e.Target})
		}
		for _, sk := range st.Skipped {
			sh.Skipped = append(sh.Skipped, &v1.SkippedSnapshot{SnapshotId: sk.Snapshot.String(), Reason: sk.Reason})
		}
		if st.Err != nil {
			sh.Error = wire.StatusOf(st.Err)
		}
		out.Shares = append(out.Shares, sh)
	}
	return out, nil
}
