package client

import (
	"context"
	"os"
	"time"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/wire"
)

// SambaParam is one smb.conf parameter of a share section.
type SambaParam struct{ Key, Value string }

// PreviousVersion is one entry of a snapdir: a snapshot Samba's
// shadow_copy2 offers as a Previous Version under Name (its creation
// time's second in UTC, or a later one when snapshots share a second,
// docs/decisions.md L56).
type PreviousVersion struct {
	Name     string
	Snapshot uuid.UUID
	Created  time.Time
	Target   string // the snapshot's copy of the share's directory
}

// SkippedSnapshot is a snapshot a share would show but cannot, and why.
type SkippedSnapshot struct {
	Snapshot uuid.UUID
	Reason   string
}

// PreviousVersionsShare is one [[previous_versions]] path of lvssd.
type PreviousVersionsShare struct {
	Path          string // symlinks resolved
	AllPersistent bool
	Snapdir       string // shadow:snapdir
	// SambaParams are what its share section needs, in order (path
	// first): what lvss samba-config prints and lvss doctor checks.
	SambaParams []SambaParam
	Versions    []PreviousVersion // oldest first
	Skipped     []SkippedSnapshot
	// Reconciled is when the snapdir was last made to match the catalog
	// (zero: not yet); Error is that reconcile's failure.
	Reconciled time.Time
	Error      error
	// ShutDir is a directory on the way to the versions that other users
	// may not search, with its mode ShutMode: Samba serves the versions as
	// each connected user, so only root reaches them. "" when none.
	ShutDir  string
	ShutMode os.FileMode
}

// PreviousVersions is lvssd's [[previous_versions]] and [samba] config.
type PreviousVersions struct {
	SambaConfig string
	Shares      []PreviousVersionsShare
}

// PreviousVersions asks lvssd for its previous-versions snapdirs: every
// configured share path, or only path (VSS_E_OBJECT_NOT_FOUND when it is
// not configured).
func (c *Conn) PreviousVersions(ctx context.Context, path string) (*PreviousVersions, error) {
	resp, err := c.admin.PreviousVersions(ctx, &v1.PreviousVersionsRequest{Path: path})
	if err != nil {
		return nil, wire.FromGRPC(err)
	}
	var d decoder
	out := &PreviousVersions{SambaConfig: resp.GetSambaConfig()}
	for _, s := range resp.GetShares() {
		sh := PreviousVersionsShare{Path: s.GetPath(), AllPersistent: s.GetAllPersistent(), Snapdir: s.GetSnapdir(),
			Reconciled: fromNano(s.GetReconciledUnixNano()), ShutDir: s.GetShutDir(), ShutMode: os.FileMode(s.GetShutMode()).Perm()}
		for _, p := range s.GetSambaParams() {
			sh.SambaParams = append(sh.SambaParams, SambaParam{Key: p.GetKey(), Value: p.GetValue()})
		}
		for _, v := range s.GetVersions() {
			sh.Versions = append(sh.Versions, PreviousVersion{Name: v.GetName(), Snapshot: d.guid(v.GetSnapshotId()),
				Created: fromNano(v.GetCreatedUnixNano()), Target: v.GetTarget()})
		}
		for _, k := range s.GetSkipped() {
			sh.Skipped = append(sh.Skipped, SkippedSnapshot{Snapshot: d.guid(k.GetSnapshotId()), Reason: k.GetReason()})
		}
		sh.Error = wire.ErrorOf(s.GetError())
		out.Shares = append(out.Shares, sh)
	}
	return out, d.err
}
