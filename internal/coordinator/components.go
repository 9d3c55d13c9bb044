package coordinator

import (
	"context"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/failpoint"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// componentCall runs AddComponent, SetBackupOptions or
// SetPreviousBackupStamp: the table says where (writer contexts only);
// component mode is a condition of the session's settings, also
// VSS_E_BAD_STATE.
func (s *Session) componentCall(m Method, fn func() error) error {
	return s.do(m, func() error {
		if !s.bcd.SelectComponents {
			return badState("%s outside component mode (SetBackupState with selectComponents=true first)", m)
		}
		return fn()
	})
}

// AddComponent includes a component explicitly in the backup.
func (s *Session) AddComponent(instance, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string) error {
	return s.componentCall(MAddComponent, func() error {
		sw := s.gatheredWriter(instance)
		if sw == nil {
			return vsserr.New(vsserr.ObjectNotFound, "no gathered writer instance %s", instance)
		}
		if sw.w.Identity.ClassID != writerID {
			return vsserr.New(vsserr.InvalidArg, "writer instance %s is of class %s, not %s", instance, sw.w.Identity.ClassID, writerID)
		}
		comp := sw.wmd.Component(logicalPath, name)
		if comp == nil {
			return vsserr.New(vsserr.ObjectNotFound, "writer %q has no component %q", sw.w.Identity.Name, joinLogical(logicalPath, name))
		}
		if comp.Type != ct {
			return vsserr.New(vsserr.InvalidArg, "component %q is %s, not %s", joinLogical(logicalPath, name), comp.Type, ct)
		}
		return s.bcd.AddComponent(instance, writerID, sw.w.Identity.InstanceName, sw.wmd.BackupSchema, ct, logicalPath, name)
	})
}

func joinLogical(path, name string) string {
	if path == "" {
		return name
	}
	return path + `\` + name
}

// SetBackupOptions stores a writer-private option string on a component.
func (s *Session) SetBackupOptions(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, opts string) error {
	return s.componentCall(MSetBackupOptions, func() error {
		_, c, err := s.bcd.FindComponent(writerID, ct, logicalPath, name)
		if err != nil {
			return err
		}
		c.BackupOptions = opts
		return nil
	})
}

// SetPreviousBackupStamp passes an earlier backup stamp to the writer.
func (s *Session) SetPreviousBackupStamp(writerID uuid.UUID, ct vss.ComponentType, logicalPath, name, stamp string) error {
	return s.componentCall(MSetPreviousBackupStamp, func() error {
		_, c, err := s.bcd.FindComponent(writerID, ct, logicalPath, name)
		if err != nil {
			return err
		}
		c.PreviousBackupStamp = stamp
		return nil
	})
}

// SetBackupSucceeded records a component's backup result.
func (s *Session) SetBackupSucceeded(instance, writerID uuid.UUID, ct vss.ComponentType, logicalPath, name string, ok bool) error {
	return s.do(MSetBackupSucceeded, func() error {
		wc, c, err := s.bcd.FindComponent(writerID, ct, logicalPath, name)
		if err != nil {
			return err
		}
		if instance != uuid.Nil && wc.InstanceID != instance {
			return vsserr.New(vsserr.ObjectNotFound, "component %q belongs to instance %s, not %s", joinLogical(logicalPath, name), wc.InstanceID, instance)
		}
		c.BackupSucceeded = ok
		return nil
	})
}

// SaveAsXML returns the BCD; final only after DoSnapshotSet (D1).
func (s *Session) SaveAsXML() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.admit(MSaveAsXML); err != nil {
		return "", err
	}
	x, err := s.bcd.Marshal()
	if err != nil {
		return "", s.c.Unexpected(context.Background(), s.id, "SaveAsXML", err)
	}
	return string(x), nil
}

// GetWriterComponents returns the BCD (the client lists its writers'
// components from it): a live view including writers' edits.
func (s *Session) GetWriterComponents() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.admit(MGetWriterComponents); err != nil {
		return "", err
	}
	x, err := s.bcd.Marshal()
	if err != nil {
		return "", s.c.Unexpected(context.Background(), s.id, "GetWriterComponents", err)
	}
	return string(x), nil
}

func (s *Session) applyEdits(phase document.Phase, sw *sessionWriter, x []byte) error {
	edited, err := document.ParseBackupComponents(x)
	if err != nil {
		return err
	}
	// A writer is shown its own entry only (writerView); an entry of any
	// other instance in its answer is an attempt to change another
	// writer's components, refused as a whole rather than silently
	// dropped, so that the attempt shows (L52).
	for i := range edited.Writers {
		if other := &edited.Writers[i]; other.InstanceID != sw.w.InstanceID {
			return vsserr.New(vsserr.AccessDenied, "the document it returned has components of writer instance %s (class %s), not its own: a writer may change only its own components",
				other.InstanceID, other.WriterID)
		}
	}
	wc := edited.Writer(sw.w.InstanceID)
	if wc == nil {
		return nil // the writer changed nothing of its own
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A writer restoring a backed-up instance was shown that entry under
	// its own ID and name (writerView): map its copy back.
	inst := sw.docInstance()
	if inst != sw.w.InstanceID {
		if orig := s.bcd.Writer(inst); orig != nil && wc.InstanceName == sw.w.Identity.InstanceName {
			wc.InstanceID, wc.InstanceName = inst, orig.InstanceName
		}
	}
	return s.bcd.ApplyWriterEdits(phase, inst, wc)
}

// writerPaths are the directories of a writer's components taking part:
// in component mode the explicitly added components and the members of
// their component sets (vss-reference §6.1), otherwise all of them.
func writerPaths(sw *sessionWriter, bcd *document.BackupComponents) []string {
	var selected func(c *document.Component) bool
	if bcd.SelectComponents {
		var roots []string
		if wc := bcd.Writer(sw.w.InstanceID); wc != nil {
			for _, c := range wc.Components {
				roots = append(roots, joinLogical(c.LogicalPath, c.Name))
			}
		}
		selected = func(c *document.Component) bool {
			full := joinLogical(c.LogicalPath, c.Name)
			for _, r := range roots {
				if full == r || strings.HasPrefix(c.LogicalPath, r) && (c.LogicalPath == r || strings.HasPrefix(c.LogicalPath, r+`\`)) {
					return true
				}
			}
			return false
		}
	} else {
		selected = func(*document.Component) bool { return true }
	}
	seen := map[string]bool{}
	var out []string
	for i := range sw.wmd.Components {
		c := &sw.wmd.Components[i]
		if !selected(c) {
			continue
		}
		for _, fl := range [][]document.FileDesc{c.Files, c.DatabaseFiles, c.DatabaseLogFiles} {
			for _, f := range fl {
				p := filepath.Clean(f.Path)
				if f.AlternatePath != "" {
					p = filepath.Clean(f.AlternatePath) // read from there at backup time (vss-reference §6.1)
				}
				if !seen[p] {
					seen[p] = true
					out = append(out, p)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// documents renders what is saved with a snapshot set: its BCD and, with
// wmds, the WMDs of the writers that took part, so a backup can be
// restored from lvss's own records.
func (s *Session) documents(wmds bool) (uuid.UUID, map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	docs := map[string][]byte{}
	x, err := s.bcd.Marshal()
	if err != nil {
		return s.setID, nil, err
	}
	docs["bcd"] = x
	if !wmds {
		return s.setID, docs, nil
	}
	for _, sw := range s.participantsLocked() {
		b, err := sw.wmdBytes()
		if err != nil {
			return s.setID, nil, err
		}
		docs["wmd/"+sw.w.InstanceID.String()] = b
	}
	return s.setID, docs, nil
}

// saveDocuments stores the set's BCD again (after BackupComplete, when
// writers' results and the requester's SetBackupSucceeded are in). The
// WMDs were recorded with the set and have not changed since: writing a
// thousand writers' again was most of the record's cost.
func (s *Session) saveDocuments(ctx context.Context) {
	if s.c.opt.Catalog == nil {
		return
	}
	setID, docs, err := s.documents(false)
	if setID == uuid.Nil {
		return
	}
	if err == nil {
		err = failpoint.HitCtx(ctx, "catalog.save-documents")
	}
	if err == nil {
		err = s.c.opt.Catalog.RecordSet(setID, nil, docs)
	}
	if err != nil {
		s.c.event(ctx, LevelError, vsserr.Code(err), s.id, "could not save the set's documents", "set", setID.String(), "error", err.Error())
	}
}
