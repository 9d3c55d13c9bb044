package coordinator

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/failpoint"
	"github.com/lvss/lvss/internal/smbshare"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Remote exposure (L58). ExposeSnapshot with VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY
// publishes the snapshot, or the subdirectory pathFromRoot names, as a
// read-only SMB share through Samba's registry (Shares). A snapshot whose
// content is a directory (btrfs, copy) is shared where it is; one whose
// provider gives no directory (an exec provider's image) is first exposed
// through the provider's Exposer at a private directory under the run
// directory, and that is shared. The share is journaled (JournalShare)
// before anything is made, and recorded in the catalog in the transaction
// that closes the entry; recovery at start (reconcileShares) removes lvss
// shares the catalog does not record, records as not exposed a snapshot
// whose share vanished, and makes again a private exposure a reboot took
// away (L59).

// Shares is Samba's share management, through which remote exposure
// publishes snapshots (internal/smbshare.Manager). Each call is bounded by
// the implementation as well as by ctx: a Samba command that hangs is
// killed.
type Shares interface {
	// Usable returns nil when shares can be added now, else
	// VSS_E_NOT_SUPPORTED saying what to install or set.
	Usable(ctx context.Context) error
	// Defined reports whether a share of that name exists, in smb.conf
	// or the registry, names compared without regard to case.
	Defined(ctx context.Context, name string) (bool, error)
	// Add publishes dir read-only as the share name, with comment.
	Add(ctx context.Context, name, dir, comment string) error
	// Remove withdraws the registry share name and ends the connections
	// open to it. Idempotent.
	Remove(ctx context.Context, name string) error
	// List returns the registry's shares.
	List(ctx context.Context) ([]smbshare.Share, error)
}

// shareCommentPrefix marks lvss's shares in Samba's registry: the comment
// is the prefix and the snapshot's ID. It is how recovery tells lvss's
// shares from an admin's.
const shareCommentPrefix = "lvss snapshot "

func shareComment(id uuid.UUID) string { return shareCommentPrefix + id.String() }

// lvssShare returns the snapshot an lvss share belongs to, by its comment.
func lvssShare(sh smbshare.Share) (uuid.UUID, bool) {
	rest, ok := strings.CutPrefix(sh.Comment, shareCommentPrefix)
	if !ok {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(rest)
	return id, err == nil
}

// sharesDir holds the private directories, under the run directory, where
// snapshots without a directory of their own are exposed to be shared.
const sharesDir = "shares"

func (c *Coordinator) privateDir(id uuid.UUID) string {
	return filepath.Join(c.opt.RunDir, sharesDir, id.String())
}

// exposedRemotely reports whether a catalog record is a remote exposure.
func exposedRemotely(sn catalog.Snapshot) bool {
	return sn.ExposedName != "" && sn.Attributes&uint32(vss.AttrExposedRemotely) != 0
}

// exposureText says where a snapshot is exposed, for messages.
func exposureText(sn catalog.Snapshot) string {
	if exposedRemotely(sn) {
		return "as SMB share " + sn.ExposedName
	}
	return "at " + sn.ExposedName
}

// noSamba is remote exposure while lvssd's config leaves it off.
func noSamba(format string, args ...any) error {
	return vsserr.New(vsserr.NotSupported, format+": remote exposure is off in lvssd's config; install Samba (apt-get install samba), "+
		"add 'registry shares = yes' to the [global] section of its smb.conf, set remote_exposure = true in the [samba] section "+
		"of lvssd's config (and config = that smb.conf), and restart lvssd (docs/previous-versions.md, \"Remote exposure\")", args...)
}

// cleanPathFromRoot checks ExposeSnapshot's wszPathFromRoot for a remote
// exposure and returns it as "/dir/sub", or "" for the whole snapshot.
// As VSS says, it holds no environment variables or wildcards; and it
// may not climb out of the snapshot.
func cleanPathFromRoot(p string) (string, error) {
	if p == "" || p == "/" {
		return "", nil
	}
	if strings.ContainsAny(p, "%*?\x00\n") {
		return "", vsserr.New(vsserr.InvalidArg, "pathFromRoot %q: no environment variables or wildcards (%%, *, ?) and no line breaks", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", vsserr.New(vsserr.InvalidArg, "pathFromRoot %q climbs with ..: name a directory inside the snapshot, from its root", p)
		}
	}
	clean := filepath.Clean("/" + p)
	if clean == "/" {
		return "", nil
	}
	return clean, nil
}

// shareTarget is the directory to share: root's directory rel (from
// cleanPathFromRoot), symlinks resolved, which must still be inside root
// (a link in the snapshot must not lead the share elsewhere) and a
// directory.
func shareTarget(id uuid.UUID, root, rel string) (string, error) {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", vsserr.Wrap(vsserr.ObjectNotFound, err, "the content of snapshot %s", id)
	}
	if rel == "" {
		return real, nil
	}
	t, err := filepath.EvalSymlinks(filepath.Join(real, rel))
	if err != nil {
		return "", vsserr.New(vsserr.InvalidArg, "pathFromRoot %s: snapshot %s has no such directory", rel, id)
	}
	if t != real && !strings.HasPrefix(t, real+"/") {
		return "", vsserr.New(vsserr.InvalidArg, "pathFromRoot %s leads out of snapshot %s (through a symbolic link)", rel, id)
	}
	if fi, err := os.Stat(t); err != nil || !fi.IsDir() {
		return "", vsserr.New(vsserr.InvalidArg, "pathFromRoot %s is not a directory of snapshot %s", rel, id)
	}
	return t, nil
}

func isDir(p string) bool {
	if !filepath.IsAbs(p) {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// undoBound gives the steps that undo a remote exposure a deadline of
// their own: they run when the requester's context may be done, and a
// provider or Samba command that never answers must not hold the
// snapshot's lock for ever.
func (c *Coordinator) undoBound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), c.opt.Timeouts.ProviderCall)
}

// exposeRemotely is ExposeSnapshot with VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY.
// An empty name is chosen ("lvss-" and the snapshot's ID), as VSS chooses
// one for a NULL wszExpose.
func (s *Session) exposeRemotely(ctx context.Context, id uuid.UUID, pathFromRoot, name string) (string, error) {
	c := s.c
	if name == "" {
		name = "lvss-" + id.String()
	}
	if err := smbshare.CheckName(name); err != nil {
		return "", err
	}
	rel, err := cleanPathFromRoot(pathFromRoot)
	if err != nil {
		return "", err
	}
	if c.opt.Shares == nil {
		return "", noSamba("snapshot %s cannot be shared", id)
	}
	if err := c.opt.Shares.Usable(ctx); err != nil {
		return "", err
	}
	unlock, err := c.lockSnapshot(ctx, id)
	if err != nil {
		return "", err
	}
	defer unlock()
	cat := c.opt.Catalog
	sn, err := cat.GetSnapshot(id)
	if err != nil {
		return "", err
	}
	if sn.ExposedName != "" {
		return "", vsserr.New(vsserr.ObjectAlreadyExists, "snapshot %s is already exposed %s", id, exposureText(sn))
	}
	p, err := c.opt.Providers.ByID(sn.ProviderID)
	if err != nil {
		return "", err
	}
	if taken, err := c.opt.Shares.Defined(ctx, name); err != nil {
		return "", err
	} else if taken {
		return "", vsserr.New(vsserr.ObjectAlreadyExists, "a share named %s is defined already (in smb.conf or Samba's registry): choose another name", name)
	}
	// The content is the snapshot's own directory, or else the provider
	// exposes it first at a private directory.
	root, private := sn.DevicePath, ""
	var ex provider.Exposer
	if !isDir(sn.DevicePath) {
		var ok bool
		ex, ok = p.(provider.Exposer)
		if !ok || c.opt.RunDir == "" {
			return "", vsserr.New(vsserr.NotSupported, "snapshot %s has no directory to share (its device is %s) and its provider %s cannot expose it",
				id, sn.DevicePath, p.Info().Name)
		}
		private = c.privateDir(id)
		if err := noWiderReach(sn.OriginalVolume, private); err != nil {
			return "", err
		}
		root = private
	} else if _, err := shareTarget(id, root, rel); err != nil {
		return "", err
	}
	// The journal names the share before it is made, so that one made and
	// never recorded (lvssd killed in between) is removed at the next
	// start instead of staying published with no owner.
	if err := cat.PutJournal(catalog.JournalEntry{Kind: catalog.JournalShare, ID: id, SessionID: s.id, Path: private, Share: name,
		Step: "share", Started: time.Now().UTC()}); err != nil {
		return "", c.Unexpected(ctx, s.id, "record the share in the journal", err)
	}
	var localName string
	added := false
	fail := func(err error) (string, error) {
		uc, cancel := c.undoBound(ctx)
		defer cancel()
		if uerr := c.undoShare(uc, p, sn, name, added, private, localName); uerr != nil {
			// The entry stays: the next start finishes the undoing.
			c.event(ctx, LevelWarn, vsserr.Code(uerr), s.id, "could not undo a failed remote exposure; lvssd's next start will",
				"snapshot", id.String(), "share", name, "error", uerr.Error())
		} else if jerr := cat.DeleteJournal(catalog.JournalShare, id); jerr != nil {
			c.event(ctx, LevelWarn, vsserr.Code(jerr), s.id, "could not close the journal entry of a failed remote exposure", "error", jerr.Error())
		}
		return "", err
	}
	if private != "" {
		if err := makePrivateDir(private); err != nil {
			return fail(c.Unexpected(ctx, s.id, "make the directory to expose the snapshot at", err))
		}
		localName, err = ex.Expose(ctx, toProviderSnapshot(sn), private)
		if err != nil {
			return fail(provider.Translate(p, provider.CallExpose, err))
		}
	}
	target, err := shareTarget(id, root, rel)
	if err != nil {
		return fail(err)
	}
	if err := c.opt.Shares.Add(ctx, name, target, shareComment(id)); err != nil {
		return fail(err)
	}
	added = true
	if err := failpoint.HitCtx(ctx, "expose.record"); err != nil {
		return fail(err)
	}
	sn.ExposedName, sn.ExposedPath, sn.ShareExposure = name, rel, localName
	sn.Attributes = (sn.Attributes | uint32(vss.AttrExposedRemotely)) &^ uint32(vss.AttrNotSurfaced)
	if err := cat.PutSnapshotsClosing(catalog.JournalShare, id, sn); err != nil {
		fail(err)
		return "", c.Unexpected(ctx, s.id, "ExposeSnapshot", err)
	}
	c.log.Info("snapshot shared", "snapshot", id, "share", name, "path", target)
	return name, nil
}

// makePrivateDir makes the directory a snapshot is exposed at to be
// shared, and its parent, mode 0755: Samba's users reach the share
// through them (as they would the volume), and only root may write there.
func makePrivateDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// undoShare takes back what a remote exposure made, in the reverse order:
// the share (if added), the provider's exposure at the private directory
// (if it succeeded: localName), and the directory.
func (c *Coordinator) undoShare(ctx context.Context, p provider.Provider, sn catalog.Snapshot, name string, added bool, private, localName string) error {
	if added {
		if err := c.opt.Shares.Remove(ctx, name); err != nil {
			return err
		}
	}
	if localName != "" {
		if ex, ok := p.(provider.Exposer); ok {
			if err := unexposeSettling(ctx, ex, toProviderSnapshot(sn), localName, added); err != nil {
				return provider.Translate(p, provider.CallUnexpose, err)
			}
		}
	}
	if private != "" {
		if err := os.Remove(private); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// settleFor bounds how long an unexpose that follows a share's removal is
// tried again.
const settleFor = 5 * time.Second

// unexposeSettling is the provider's Unexpose of a private exposure. Right
// after the share over it was removed it is tried again for a few
// seconds: smbcontrol's close-share only sends smbd its message, and
// smbd's processes leave the share's directory (for /) a moment later;
// until then unmounting it is busy. Otherwise it is tried once.
func unexposeSettling(ctx context.Context, ex provider.Exposer, snap provider.Snapshot, name string, afterShare bool) error {
	wait, end := 50*time.Millisecond, time.Now().Add(settleFor)
	for {
		err := ex.Unexpose(ctx, snap, name)
		if err == nil || !afterShare || time.Now().After(end) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// unshare undoes a recorded remote exposure (UnexposeSnapshot, and deleting
// an exposed snapshot); the caller records it.
func (c *Coordinator) unshare(ctx context.Context, p provider.Provider, sn catalog.Snapshot) error {
	if c.opt.Shares == nil {
		return noSamba("snapshot %s is shared as %s, and cannot be unshared now", sn.ID, sn.ExposedName)
	}
	private := ""
	if sn.ShareExposure != "" {
		private = c.privateDir(sn.ID)
	}
	return c.undoShare(ctx, p, sn, sn.ExposedName, true, private, sn.ShareExposure)
}

// notExposed clears a record's exposure, of either kind.
func notExposed(sn *catalog.Snapshot) {
	sn.ExposedName, sn.ExposedPath, sn.ShareExposure = "", "", ""
	sn.Attributes = (sn.Attributes &^ uint32(vss.AttrExposedLocally|vss.AttrExposedRemotely)) | uint32(vss.AttrNotSurfaced)
}

// undoExposure undoes a recorded exposure of either kind before the
// snapshot is deleted or its exposure forgotten.
func (c *Coordinator) undoExposure(ctx context.Context, p provider.Provider, sn catalog.Snapshot) error {
	if exposedRemotely(sn) {
		return c.unshare(ctx, p, sn)
	}
	if ex, ok := p.(provider.Exposer); ok {
		if err := ex.Unexpose(ctx, toProviderSnapshot(sn), sn.ExposedName); err != nil {
			return provider.Translate(p, provider.CallUnexpose, err)
		}
	}
	return nil
}

// cutShare undoes a remote exposure an earlier lvssd journaled and never
// recorded: its share (only if the registry's share of that name is
// lvss's for this snapshot: an admin's share of the same name is left),
// the provider's exposure at the private directory, and the directory.
// The entry stays when that fails, for the next start.
func (r *recoverer) cutShare(ctx context.Context, e catalog.JournalEntry) {
	c := r.c
	sn, serr := c.opt.Catalog.GetSnapshot(e.ID)
	if !(serr == nil && exposedRemotely(sn) && strings.EqualFold(sn.ExposedName, e.Share)) {
		if c.opt.Shares == nil {
			r.add(ctx, RecoveryAction{What: RecFailed, Object: e.ID.String(), Detail: "share " + e.Share + " may have been made",
				Err: noSamba("it cannot be removed")}, "cannot undo a remote exposure an earlier lvssd did not record")
			return
		}
		uc, cancel := r.bounded(ctx)
		err := r.removeShareOf(uc, e.Share, e.ID)
		if err == nil && e.Path != "" {
			if serr == nil {
				p, perr := c.opt.Providers.ByID(sn.ProviderID)
				if ex, ok := p.(provider.Exposer); perr == nil && ok {
					if err = unexposeSettling(uc, ex, toProviderSnapshot(sn), e.Path, true); err != nil {
						err = provider.Translate(p, provider.CallUnexpose, err)
					}
				}
			}
			if err == nil {
				if rerr := os.Remove(e.Path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
					err = rerr
				}
			}
		}
		cancel()
		detail := "share " + e.Share
		if e.Path != "" {
			detail += ", and the exposure at " + e.Path
		}
		r.add(ctx, RecoveryAction{What: RecShareUndone, Object: e.ID.String(), Volume: sn.OriginalVolume, Detail: detail, Err: err},
			"undid a remote exposure an earlier lvssd did not record")
		if err != nil {
			return
		}
	}
	if err := c.opt.Catalog.DeleteJournal(e.Kind, e.ID); err != nil {
		r.add(ctx, RecoveryAction{What: RecFailed, Object: e.ID.String(), Detail: "close the journal entry", Err: err}, "cannot close a journal entry")
	}
}

// removeShareOf removes the registry share name if it is lvss's share of
// snapshot id.
func (r *recoverer) removeShareOf(ctx context.Context, name string, id uuid.UUID) error {
	shares, err := r.c.opt.Shares.List(ctx)
	if err != nil {
		return err
	}
	for _, sh := range shares {
		if got, ok := lvssShare(sh); ok && got == id && strings.EqualFold(sh.Name, name) {
			return r.c.opt.Shares.Remove(ctx, sh.Name)
		}
	}
	return nil
}

// reconcileShares compares lvss's shares in Samba's registry with the
// catalog's remote exposures (L59): an lvss share the catalog does not
// record (its snapshot deleted while Samba's registry could not be
// changed, say) is removed; a recorded share Samba no longer has (an
// admin removed it) is recorded as not exposed, since making it again
// would undo what the admin did; and a private exposure a reboot took
// away (the run directory is a tmpfs) is made again, since the share
// still stands and serves nothing without it. With remote exposure off
// Samba is left alone.
func (r *recoverer) reconcileShares(ctx context.Context) {
	c := r.c
	if c.opt.Shares == nil {
		return
	}
	all, err := c.opt.Catalog.ListSnapshots(catalog.Filter{})
	if err != nil {
		r.add(ctx, RecoveryAction{What: RecFailed, Detail: "read the catalog to check the shares", Err: err}, "cannot check lvss's shares")
		return
	}
	shared := map[uuid.UUID]catalog.Snapshot{}
	for _, sn := range all {
		if exposedRemotely(sn) {
			shared[sn.ID] = sn
		}
	}
	lc, cancel := r.bounded(ctx)
	shares, err := c.opt.Shares.List(lc)
	cancel()
	if err != nil {
		if len(shared) > 0 {
			r.add(ctx, RecoveryAction{What: RecFailed, Detail: "list Samba's registry shares; the shares of the snapshots exposed remotely were not checked", Err: err},
				"cannot check lvss's shares")
		} else {
			c.log.Info("samba: the registry's shares were not listed at start", "error", err)
		}
		return
	}
	listed := map[string]bool{}
	for _, sh := range shares {
		id, ok := lvssShare(sh)
		if !ok {
			continue
		}
		if sn, ok := shared[id]; ok && strings.EqualFold(sn.ExposedName, sh.Name) {
			listed[strings.ToLower(sh.Name)] = true
			continue
		}
		rc, cancel := r.bounded(ctx)
		err := c.opt.Shares.Remove(rc, sh.Name)
		cancel()
		r.add(ctx, RecoveryAction{What: RecShareRemoved, Object: id.String(),
			Detail: "share " + sh.Name + " of " + sh.Path + ", which the catalog does not record", Err: err},
			"removed an lvss share the catalog does not record")
	}
	for _, sn := range shared {
		if !listed[strings.ToLower(sn.ExposedName)] {
			r.shareGone(ctx, sn)
			continue
		}
		if sn.ShareExposure != "" && !isDir(c.privateDir(sn.ID)) {
			r.restorePrivate(ctx, sn)
		}
	}
}

// shareGone records as not exposed a snapshot whose share Samba no longer
// has, undoing its private exposure first.
func (r *recoverer) shareGone(ctx context.Context, sn catalog.Snapshot) {
	c := r.c
	var err error
	if sn.ShareExposure != "" {
		uc, cancel := r.bounded(ctx)
		err = c.undoShare(uc, r.providerOf(sn), sn, sn.ExposedName, false, c.privateDir(sn.ID), sn.ShareExposure)
		cancel()
	}
	name := sn.ExposedName
	if err == nil {
		notExposed(&sn)
		err = c.opt.Catalog.PutSnapshots(sn)
	}
	r.add(ctx, RecoveryAction{What: RecShareGone, Object: sn.ID.String(), Volume: sn.OriginalVolume,
		Detail: "share " + name + " is no longer in Samba's registry; the snapshot is recorded as not exposed", Err: err},
		"a snapshot's share is gone")
}

// restorePrivate exposes a shared snapshot again at its private directory,
// which a reboot emptied. If that fails, the share, which would serve an
// empty directory, is removed and the snapshot recorded as not exposed.
func (r *recoverer) restorePrivate(ctx context.Context, sn catalog.Snapshot) {
	c := r.c
	p := r.providerOf(sn)
	ex, ok := p.(provider.Exposer)
	dir := c.privateDir(sn.ID)
	uc, cancel := r.bounded(ctx)
	defer cancel()
	var err error
	var name string
	if !ok {
		err = vsserr.New(vsserr.NotSupported, "its provider is not configured, or cannot expose")
	} else if err = makePrivateDir(dir); err == nil {
		if name, err = ex.Expose(uc, toProviderSnapshot(sn), dir); err != nil {
			err = provider.Translate(p, provider.CallExpose, err)
		}
	}
	if err == nil {
		sn.ShareExposure = name
		err = c.opt.Catalog.PutSnapshots(sn)
		r.add(ctx, RecoveryAction{What: RecShareRestored, Object: sn.ID.String(), Volume: sn.OriginalVolume,
			Detail: "exposed again at " + dir + " for share " + sn.ExposedName + " (the run directory was emptied, by a reboot)", Err: err},
			"exposed a shared snapshot again")
		return
	}
	os.Remove(dir)
	shareName := sn.ExposedName
	if rerr := c.opt.Shares.Remove(uc, shareName); rerr == nil {
		notExposed(&sn)
		rerr = c.opt.Catalog.PutSnapshots(sn)
		if rerr != nil {
			err = errors.Join(err, rerr)
		}
	} else {
		err = errors.Join(err, rerr)
	}
	r.add(ctx, RecoveryAction{What: RecShareGone, Object: sn.ID.String(), Volume: sn.OriginalVolume,
		Detail: "share " + shareName + " could not be served again (its snapshot could not be exposed at " + dir + "); the share was removed", Err: err},
		"a snapshot's share could not be served again")
}

// providerOf is the snapshot's provider, or nil when it is not configured.
func (r *recoverer) providerOf(sn catalog.Snapshot) provider.Provider {
	p, err := r.c.opt.Providers.ByID(sn.ProviderID)
	if err != nil {
		return nil
	}
	return p
}
