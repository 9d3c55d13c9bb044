package coordinator

import (
	"context"
	"strings"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// A restore session works on the BCD saved with the backup. Its
// WRITER_COMPONENTS name the writer instances of backup time, which are
// gone: lvssd gives every subscription a fresh instance ID. Each entry is
// therefore bound to a writer gathered in this session (L37): the one
// SetSelectedForRestoreEx names, else the same subscription if it is still
// there, else the running writer of the same class and instance name.
// Events show the bound writer its entry under its own instance ID, and
// its edits are mapped back (restoreView, restoreEdits).

// liveFor returns the gathered writer that restores the BCD entry wc, or
// nil when none runs. Caller holds s.mu.
func (s *Session) liveFor(wc *document.WriterComponents) *sessionWriter {
	for _, sw := range s.gathered {
		if sw.restoreOf == wc.InstanceID {
			return sw
		}
	}
	for _, sw := range s.gathered {
		if sw.restoreOf == uuid.Nil && sw.w.InstanceID == wc.InstanceID {
			return sw
		}
	}
	for _, sw := range s.gathered {
		if sw.restoreOf == uuid.Nil && sw.w.Identity.ClassID == wc.WriterID && sw.w.Identity.InstanceName == wc.InstanceName {
			return sw
		}
	}
	return nil
}

// findRestore finds the component the requester names in b. With several
// backed-up instances of the class holding it, the one a running writer
// can restore is preferred. Caller holds s.mu.
func (s *Session) findRestore(b *document.BackupComponents, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string) (*document.WriterComponents, *document.ComponentState, error) {
	var firstW *document.WriterComponents
	var firstC *document.ComponentState
	for i := range b.Writers {
		wc := &b.Writers[i]
		if wc.WriterID != writerID {
			continue
		}
		c := wc.Component(logicalPath, name)
		if c == nil || c.Type != ct {
			continue
		}
		if s.liveFor(wc) != nil {
			return wc, c, nil
		}
		if firstW == nil {
			firstW, firstC = wc, c
		}
	}
	if firstW == nil {
		return nil, nil, vsserr.New(vsserr.ObjectNotFound, "the backup holds no %s %q of writer class %s", ct, joinLogical(logicalPath, name), writerID)
	}
	return firstW, firstC, nil
}

// notRunning is SetSelectedForRestore's error for a component whose writer
// does not run now (vss-reference §2.2 step 6).
func notRunning(wc *document.WriterComponents, c *document.ComponentState) error {
	who := wc.WriterID.String()
	if wc.InstanceName != "" {
		who += " (instance " + wc.InstanceName + ")"
	}
	return vsserr.New(vsserr.ObjectNotFound, "component %q: its writer %s is not running (GatherWriterMetadata did not find it); start the writer and begin the restore again",
		joinLogical(c.LogicalPath, c.Name), who)
}

// schemaOf is the writer's VSS_BACKUP_SCHEMA: the running writer's, else
// the one recorded at backup.
func (s *Session) schemaOf(wc *document.WriterComponents) uint32 {
	if sw := s.liveFor(wc); sw != nil {
		return sw.wmd.BackupSchema
	}
	return wc.BackupSchema
}

// requireSchema refuses a feature the writer's schema does not declare.
func (s *Session) requireSchema(m Method, wc *document.WriterComponents, bit uint32, what string) error {
	if s.schemaOf(wc)&bit == 0 {
		return vsserr.New(vsserr.InvalidArg, "%s: writer %s does not support %s (its backup schema lacks 0x%X)", m, wc.WriterID, what, bit)
	}
	return nil
}

// restoreEdit runs one requester edit of a component on a copy of the BCD,
// and keeps the copy only if the document can still be written.
func (s *Session) restoreEdit(m Method, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string,
	fn func(wc *document.WriterComponents, c *document.ComponentState) error) error {
	return s.do(m, func() error {
		next := s.bcd.Clone()
		wc, c, err := s.findRestore(next, writerID, ct, logicalPath, name)
		if err != nil {
			return err
		}
		if err := fn(wc, c); err != nil {
			return err
		}
		if err := next.Validate(); err != nil {
			return vsserr.New(vsserr.InvalidArg, "%s: %s", m, vsserr.Message(err))
		}
		s.bcd = next
		return nil
	})
}

// SetRestoreState records the VSS_RESTORE_TYPE in the BCD.
func (s *Session) SetRestoreState(rt vss.RestoreType) error {
	return s.do(MSetRestoreState, func() error {
		if !rt.Valid() {
			return vsserr.New(vsserr.InvalidArg, "restore type %d is not a VSS_RESTORE_TYPE", rt)
		}
		s.bcd.RestoreType = rt
		return nil
	})
}

// SetSelectedForRestore selects (or deselects) an explicitly backed-up
// component for restore. instance is SetSelectedForRestoreEx's: GUID_NULL,
// the backed-up instance the component belongs to, or a running writer
// instance to restore it with (a move when its instance name differs,
// which needs VSS_BS_WRITER_SUPPORTS_RESTORE_WITH_MOVE).
func (s *Session) SetSelectedForRestore(instance, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, selected bool) error {
	return s.do(MSetSelectedForRestore, func() error {
		var (
			wc   *document.WriterComponents
			c    *document.ComponentState
			live *sessionWriter
			err  error
		)
		if target := s.gatheredWriter(instance); instance != uuid.Nil && s.bcd.Writer(instance) == nil && target != nil {
			if target.w.Identity.ClassID != writerID {
				return vsserr.New(vsserr.InvalidArg, "writer instance %s is of class %s, not %s", instance, target.w.Identity.ClassID, writerID)
			}
			wc, c, err = s.moveTarget(target, writerID, ct, logicalPath, name)
			live = target
		} else if instance != uuid.Nil {
			wc = s.bcd.Writer(instance)
			if wc == nil {
				return vsserr.New(vsserr.ObjectNotFound, "writer instance %s is neither in the backup nor running", instance)
			}
			if wc.WriterID != writerID {
				return vsserr.New(vsserr.InvalidArg, "backed-up instance %s is of class %s, not %s", instance, wc.WriterID, writerID)
			}
			c = wc.Component(logicalPath, name)
			if c == nil || c.Type != ct {
				return vsserr.New(vsserr.ObjectNotFound, "backed-up instance %s has no %s %q", instance, ct, joinLogical(logicalPath, name))
			}
			live = s.liveFor(wc)
		} else {
			wc, c, err = s.findRestore(s.bcd, writerID, ct, logicalPath, name)
			if wc != nil {
				live = s.liveFor(wc)
			}
		}
		if err != nil {
			return err
		}
		if !selected {
			c.SelectedForRestore = false
			return nil
		}
		if live == nil {
			return notRunning(wc, c)
		}
		if live.restoreOf != uuid.Nil && live.restoreOf != wc.InstanceID {
			return vsserr.New(vsserr.InvalidArg, "writer %q (instance %s) already restores the backed-up instance %s; one running writer restores one",
				live.w.Identity.Name, live.w.InstanceID, live.restoreOf)
		}
		if live.wmd.Component(logicalPath, name) == nil {
			return vsserr.New(vsserr.ObjectNotFound, "component %q: the running writer %q no longer declares it", joinLogical(logicalPath, name), live.w.Identity.Name)
		}
		live.restoreOf = wc.InstanceID
		c.SelectedForRestore = true
		if c.RestoreTarget == vss.RTUndefined {
			c.RestoreTarget = vss.RTOriginal // the default (vss-reference §6.4)
		}
		return nil
	})
}

// moveTarget finds the backed-up entry a running writer restores with
// SetSelectedForRestoreEx: the one of its own instance name, else (a move)
// the first that holds the component. Caller holds s.mu.
func (s *Session) moveTarget(target *sessionWriter, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string) (*document.WriterComponents, *document.ComponentState, error) {
	var moved *document.WriterComponents
	for i := range s.bcd.Writers {
		wc := &s.bcd.Writers[i]
		c := wc.Component(logicalPath, name)
		if wc.WriterID != writerID || c == nil || c.Type != ct {
			continue
		}
		if wc.InstanceName == target.w.Identity.InstanceName || wc.InstanceID == target.w.InstanceID {
			return wc, c, nil
		}
		if moved == nil {
			moved = wc
		}
	}
	if moved == nil {
		return nil, nil, vsserr.New(vsserr.ObjectNotFound, "the backup holds no %s %q of writer class %s", ct, joinLogical(logicalPath, name), writerID)
	}
	if target.wmd.BackupSchema&vss.SchemaWriterSupportsRestoreWithMove == 0 {
		return nil, nil, vsserr.New(vsserr.InvalidArg, "restoring instance %q with instance %q is a move, and writer %q does not support restore with move (VSS_BS_WRITER_SUPPORTS_RESTORE_WITH_MOVE)",
			moved.InstanceName, target.w.Identity.InstanceName, target.w.Identity.Name)
	}
	return moved, moved.Component(logicalPath, name), nil
}

// AddRestoreSubcomponent restores one member of the component's set, which
// the running writer must declare selectable for restore.
func (s *Session) AddRestoreSubcomponent(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, subPath, subName string, repair bool) error {
	return s.restoreEdit(MAddRestoreSubcomponent, writerID, ct, logicalPath, name, func(wc *document.WriterComponents, c *document.ComponentState) error {
		live := s.liveFor(wc)
		if live == nil {
			return notRunning(wc, c)
		}
		sub := live.wmd.Component(subPath, subName)
		if sub == nil {
			return vsserr.New(vsserr.ObjectNotFound, "writer %q declares no component %q", live.w.Identity.Name, joinLogical(subPath, subName))
		}
		root := joinLogical(logicalPath, name)
		if subPath != root && !strings.HasPrefix(subPath, root+`\`) {
			return vsserr.New(vsserr.InvalidArg, "%q is not in the component set of %q", joinLogical(subPath, subName), root)
		}
		if !sub.SelectableForRestore {
			return vsserr.New(vsserr.InvalidArg, "%q is not selectable for restore", joinLogical(subPath, subName))
		}
		for _, r := range c.RestoreSubcomponents {
			if r.LogicalPath == subPath && r.Name == subName {
				return vsserr.New(vsserr.ObjectAlreadyExists, "%q is already a restore subcomponent of %q", joinLogical(subPath, subName), root)
			}
		}
		c.RestoreSubcomponents = append(c.RestoreSubcomponents, document.RestoreSubcomponent{LogicalPath: subPath, Name: subName, Repair: repair})
		return nil
	})
}

// SetRestoreOptions stores a writer-private restore option string.
func (s *Session) SetRestoreOptions(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, opts string) error {
	return s.restoreEdit(MSetRestoreOptions, writerID, ct, logicalPath, name, func(_ *document.WriterComponents, c *document.ComponentState) error {
		c.RestoreOptions = opts
		return nil
	})
}

// SetAdditionalRestores tells the writer that more restores (incremental,
// differential, log) follow, so it must not recover yet.
func (s *Session) SetAdditionalRestores(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, more bool) error {
	return s.restoreEdit(MSetAdditionalRestores, writerID, ct, logicalPath, name, func(_ *document.WriterComponents, c *document.ComponentState) error {
		c.AdditionalRestores = more
		return nil
	})
}

// AddNewTarget records that a file set of the component is restored to a
// new place. The file set must be one the running writer declares for the
// component or its set, exactly (path, filespec, recursion).
func (s *Session) AddNewTarget(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, path, filespec string, recursive bool, alternatePath string) error {
	return s.restoreEdit(MAddNewTarget, writerID, ct, logicalPath, name, func(wc *document.WriterComponents, c *document.ComponentState) error {
		live := s.liveFor(wc)
		if live == nil {
			return notRunning(wc, c)
		}
		if err := s.requireSchema(MAddNewTarget, wc, vss.SchemaWriterSupportsNewTarget, "new targets (VSS_BS_WRITER_SUPPORTS_NEW_TARGET)"); err != nil {
			return err
		}
		if alternatePath == "" {
			return vsserr.New(vsserr.InvalidArg, "AddNewTarget: the new location (alternatePath) is empty")
		}
		if !declaresFileSet(live.wmd, joinLogical(logicalPath, name), path, filespec, recursive) {
			return vsserr.New(vsserr.ObjectNotFound, "writer %q declares no file set %s/%s (recursive %t) for %q", live.w.Identity.Name, path, filespec, recursive, joinLogical(logicalPath, name))
		}
		c.NewTargets = append(c.NewTargets, document.FileDesc{Path: path, Filespec: filespec, Recursive: recursive, AlternatePath: alternatePath})
		return nil
	})
}

// declaresFileSet: the component root or a member of its set has the file
// set exactly.
func declaresFileSet(wmd *document.WriterMetadata, root, path, filespec string, recursive bool) bool {
	for i := range wmd.Components {
		comp := &wmd.Components[i]
		full := joinLogical(comp.LogicalPath, comp.Name)
		if full != root && comp.LogicalPath != root && !strings.HasPrefix(comp.LogicalPath, root+`\`) {
			continue
		}
		for _, fl := range [][]document.FileDesc{comp.Files, comp.DatabaseFiles, comp.DatabaseLogFiles} {
			for _, f := range fl {
				if f.Path == path && f.Filespec == filespec && f.Recursive == recursive {
					return true
				}
			}
		}
	}
	return false
}

// SetAuthoritativeRestore marks the restore authoritative (replicated
// stores; VSS_BS_AUTHORITATIVE_RESTORE).
func (s *Session) SetAuthoritativeRestore(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, auth bool) error {
	return s.restoreEdit(MSetAuthoritativeRestore, writerID, ct, logicalPath, name, func(wc *document.WriterComponents, c *document.ComponentState) error {
		if auth {
			if err := s.requireSchema(MSetAuthoritativeRestore, wc, vss.SchemaAuthoritativeRestore, "authoritative restore (VSS_BS_AUTHORITATIVE_RESTORE)"); err != nil {
				return err
			}
		}
		c.AuthoritativeRestore = auth
		return nil
	})
}

// SetRollForward says how far the writer rolls forward after the restore:
// NONE, ALL, or PARTIAL up to point (VSS_BS_ROLLFORWARD_RESTORE).
func (s *Session) SetRollForward(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, rf vss.RollForwardType, point string) error {
	return s.restoreEdit(MSetRollForward, writerID, ct, logicalPath, name, func(wc *document.WriterComponents, c *document.ComponentState) error {
		switch {
		case !rf.Valid() || rf == vss.RFUndefined:
			return vsserr.New(vsserr.InvalidArg, "roll-forward type %s: use VSS_RF_NONE, VSS_RF_ALL or VSS_RF_PARTIAL", rf)
		case rf == vss.RFPartial && point == "":
			return vsserr.New(vsserr.InvalidArg, "VSS_RF_PARTIAL needs the point to roll forward to")
		case rf != vss.RFPartial:
			point = ""
		}
		if rf != vss.RFNone {
			if err := s.requireSchema(MSetRollForward, wc, vss.SchemaRollForwardRestore, "roll-forward restores (VSS_BS_ROLLFORWARD_RESTORE)"); err != nil {
				return err
			}
		}
		c.RollForwardType, c.RollForwardPoint = rf, point
		return nil
	})
}

// SetRestoreName restores the component under another name
// (VSS_BS_RESTORE_RENAME).
func (s *Session) SetRestoreName(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, restoreName string) error {
	return s.restoreEdit(MSetRestoreName, writerID, ct, logicalPath, name, func(wc *document.WriterComponents, c *document.ComponentState) error {
		if err := s.requireSchema(MSetRestoreName, wc, vss.SchemaRestoreRename, "restore with a new name (VSS_BS_RESTORE_RENAME)"); err != nil {
			return err
		}
		c.RestoreName = restoreName
		return nil
	})
}

// SetFileRestoreStatus records how the copy of a component's files went.
func (s *Session) SetFileRestoreStatus(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, st vss.FileRestoreStatus) error {
	return s.restoreEdit(MSetFileRestoreStatus, writerID, ct, logicalPath, name, func(_ *document.WriterComponents, c *document.ComponentState) error {
		if !st.Valid() {
			return vsserr.New(vsserr.InvalidArg, "file restore status %d is not a VSS_FILE_RESTORE_STATUS", st)
		}
		c.FileRestoreStatus = st
		return nil
	})
}

// AddAlternativeLocationMapping tells the writer that files of a file set
// went to destination instead of their original place.
func (s *Session) AddAlternativeLocationMapping(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, path, filespec string, recursive bool, destination string) error {
	return s.restoreEdit(MAddAlternativeLocationMapping, writerID, ct, logicalPath, name, func(_ *document.WriterComponents, c *document.ComponentState) error {
		c.AlternateLocationMappings = append(c.AlternateLocationMappings,
			document.AlternateMapping{Path: path, Filespec: filespec, Recursive: recursive, Destination: destination})
		return nil
	})
}

// SetRangesFilePath says where the ranges file of partial file i was
// restored; the writer reads it from there.
func (s *Session) SetRangesFilePath(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, i int, path string) error {
	return s.restoreEdit(MSetRangesFilePath, writerID, ct, logicalPath, name, func(_ *document.WriterComponents, c *document.ComponentState) error {
		if i < 0 || i >= len(c.PartialFiles) {
			return vsserr.New(vsserr.InvalidArg, "component %q has %d partial files; there is no partial file %d", joinLogical(logicalPath, name), len(c.PartialFiles), i)
		}
		if path == "" {
			return vsserr.New(vsserr.InvalidArg, "the ranges file path is empty")
		}
		c.PartialFiles[i].Ranges = path
		return nil
	})
}

// anySelected: the entry has a component selected for restore.
func anySelected(wc *document.WriterComponents) bool {
	for i := range wc.Components {
		if wc.Components[i].SelectedForRestore {
			return true
		}
	}
	return false
}

// replaceFailed: for a VSS_WRE_IF_REPLACE_FAILS writer, whether restoring
// in place failed, which is when it gets PostRestore (vss-reference §3.2).
// The requester says so through the results it records: a selected
// component whose files did not all go back (status other than
// VSS_RS_ALL), or that went to an alternate location instead (L37).
func replaceFailed(method vss.RestoreMethod, wc *document.WriterComponents) bool {
	if method != vss.RMERestoreIfNotThere && method != vss.RMERestoreIfCanReplace {
		return false
	}
	for i := range wc.Components {
		c := &wc.Components[i]
		if c.SelectedForRestore && (c.FileRestoreStatus != vss.RSAll || len(c.AlternateLocationMappings) > 0) {
			return true
		}
	}
	return false
}

// restoreTargets are the writers that get a restore event (vss-reference
// §2.2, §3.2, L37): those bound to a backed-up entry with a component
// selected for restore, unless their restore setting is VSS_WRE_NEVER.
// PostRestore goes only to writers that got PreRestore, and to a
// VSS_WRE_IF_REPLACE_FAILS writer only when the replace failed. Caller
// holds s.mu.
func (s *Session) restoreTargets(ev EventType) []*sessionWriter {
	var out []*sessionWriter
	for _, sw := range s.gathered {
		if sw.restoreOf == uuid.Nil {
			continue
		}
		wc := s.bcd.Writer(sw.restoreOf)
		if wc == nil || !anySelected(wc) {
			continue
		}
		rm := sw.wmd.RestoreMethod
		if rm.WriterRestore == vss.WRENever {
			continue
		}
		if ev == EvPostRestore {
			if !sw.takesPart() {
				continue
			}
			if rm.WriterRestore == vss.WREIfReplaceFails && !replaceFailed(rm.Method, wc) {
				continue
			}
		}
		out = append(out, sw)
	}
	return out
}

// PreRestore sends PreRestore to the writers restoring selected
// components; they may set restore targets, directed targets and restore
// metadata (document.PhasePreRestore). Writers' failures are their status
// (VSS_WS_FAILED_AT_PRE_RESTORE), not the operation's.
func (s *Session) PreRestore() (*Async, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, err := s.admit(MPreRestore)
	if err != nil {
		return nil, err
	}
	targets := s.restoreTargets(EvPreRestore)
	for _, sw := range targets {
		// From here it takes part: BackupShutdown at the end (D11).
		sw.advance(phIdle, phTakingPart)
		sw.w.mu.Lock()
		sw.w.last, sw.w.lastSID = sw, s.id
		sw.w.mu.Unlock()
	}
	return s.startAsync(MPreRestore, from, func(ctx context.Context) error {
		s.journalRestore(ctx, targets)
		s.fanOut(ctx, targets, EvPreRestore, s.c.opt.Timeouts.Restore, document.PhasePreRestore, nil)
		return ctx.Err()
	}), nil
}

// PostRestore sends PostRestore; the BCD is read-only for writers from
// here but for their post-restore failure messages. A writer whose method
// is VSS_RME_STOP_RESTORE_START and whose connection ended was hosted by
// the service the requester stopped: it misses PostRestore, as on Windows,
// without failing.
func (s *Session) PostRestore() (*Async, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, err := s.admit(MPostRestore)
	if err != nil {
		return nil, err
	}
	var targets []*sessionWriter
	for _, sw := range s.restoreTargets(EvPostRestore) {
		if sw.wmd.RestoreMethod.Method == vss.RMEStopRestoreStart && isClosed(sw.w.Gone()) {
			s.c.event(context.Background(), LevelInfo, 0, s.id, "writer stopped with its service misses PostRestore", "writer", sw.w.Identity.Name)
			continue
		}
		targets = append(targets, sw)
	}
	return s.startAsync(MPostRestore, from, func(ctx context.Context) error {
		s.fanOut(ctx, targets, EvPostRestore, s.c.opt.Timeouts.Restore, document.PhasePostRestore, nil)
		return ctx.Err()
	}), nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// docInstance is the BCD instance a writer's events show and its edits
// change: the backed-up one it restores, else its own.
func (sw *sessionWriter) docInstance() uuid.UUID {
	if sw.restoreOf != uuid.Nil {
		return sw.restoreOf
	}
	return sw.w.InstanceID
}

// writerView is the part of the BCD a writer is shown, under its own
// instance ID and name. Caller holds s.mu.
func (s *Session) writerView(sw *sessionWriter) *document.BackupComponents {
	view := s.bcd.ForWriter(sw.docInstance())
	if len(view.Writers) == 1 && view.Writers[0].InstanceID != sw.w.InstanceID {
		view.Writers[0].InstanceID = sw.w.InstanceID
		view.Writers[0].InstanceName = sw.w.Identity.InstanceName
	}
	return view
}
