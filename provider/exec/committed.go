package exec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/lvss/lvss/provider"
)

// The record of a commit (L46). The index is written at PostCommitSnapshots,
// after the hold; an lvssd that ends between the commit and that write
// would leave what the commit made known to nobody: a list command prints
// bare handles, which cannot be told from snapshots of another set, and the
// coordinator's recovery deletes a cut set's snapshots by their IDs. So
// before CommitSnapshots returns, the handles its command printed, with the
// set's snapshot IDs, set ID and volumes, are written to a file of the set
// in the run directory: one small write without fsync, on a tmpfs, inside
// the hold window. It cannot wait on a frozen filesystem: the freeze guard
// refuses to freeze the one holding the run directory (docs/freeze.md).
// The file goes once the index holds the snapshots (PostCommitSnapshots) or
// they are deleted (AbortSnapshots). At start, New puts the snapshots of
// the files it finds into the index, so that Query names them with their
// own IDs and recovery deletes them. A reboot empties the run directory,
// and the files with it, as it does the coordinator's step files
// (docs/reliability.md, "Limits").

// committedDir is where the records are, beside the commands' TMPDIRs
// (which New removes at start) rather than under them.
func committedDir(runDir string, id uuid.UUID) string {
	return filepath.Join(runDir, "exec-"+id.String()+".committed")
}

// recordCommitted writes the record of a set's commit. A failure is
// logged: the set goes on, as it would have without the record.
func (p *Provider) recordCommitted(setID uuid.UUID, sns []provider.Snapshot) {
	if len(sns) == 0 {
		return
	}
	entries := make([]indexEntry, 0, len(sns))
	for _, sn := range sns {
		entries = append(entries, indexEntry{ID: sn.ID, SetID: sn.SetID, OriginalVolume: sn.OriginalVolume,
			Handle: sn.Handle, DevicePath: sn.DevicePath, Created: sn.Created})
	}
	path := filepath.Join(p.committedDir, setID.String()+".json")
	b, err := json.Marshal(entries)
	if err == nil {
		// Made again if the run directory was removed under lvssd.
		err = os.MkdirAll(p.committedDir, 0o700)
	}
	if err == nil {
		tmp := path + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, path)
		}
	}
	if err != nil {
		p.log.Warn("cannot record the snapshots of a commit in the run directory; if lvssd ends before they are in the index, they are left behind",
			"set", setID, "error", err)
	}
}

// forgetCommitted removes a set's record once its snapshots are in the
// index or deleted.
func (p *Provider) forgetCommitted(setID uuid.UUID) {
	os.Remove(filepath.Join(p.committedDir, setID.String()+".json"))
}

// adoptCommitted puts into the index the snapshots of the records an
// earlier lvssd left (it ended between a commit and its PostCommit), and
// removes the records once the index is written. Called by New.
func (p *Provider) adoptCommitted() {
	files, _ := filepath.Glob(filepath.Join(p.committedDir, "*.json"))
	if len(files) == 0 {
		return
	}
	added := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		var entries []indexEntry
		if err == nil {
			err = json.Unmarshal(b, &entries)
		}
		if err != nil {
			p.log.Warn("cannot read the record of a commit an earlier lvssd did not finish", "file", f, "error", err)
			continue
		}
		for _, e := range entries {
			if _, ok := p.index[e.ID]; ok {
				continue
			}
			p.index[e.ID] = provider.Snapshot{ID: e.ID, SetID: e.SetID, OriginalVolume: e.OriginalVolume,
				Handle: e.Handle, DevicePath: e.DevicePath, Created: e.Created}
			added++
		}
	}
	if added > 0 {
		if err := p.persist(); err != nil {
			// Known to this run's Query all the same; the records stay
			// for the next start.
			p.log.Error("cannot write the snapshot index", "error", err)
			return
		}
		p.log.Warn("recorded snapshots of commits an earlier lvssd did not finish", "snapshots", added)
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".json") {
			os.Remove(f)
		}
	}
}
