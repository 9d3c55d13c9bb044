package document

import (
	"github.com/google/uuid"
	"github.com/lvss/lvss/vss"
)

// bcdVocab is every element name a BCD may hold.
var bcdVocab = map[string]bool{
	"BACKUP_COMPONENTS": true, "WRITER_COMPONENTS": true, "COMPONENT": true, "BACKUP_METADATA": true,
	"RESTORE_METADATA": true, "FAILURE": true, "PARTIAL_FILE": true, "DIFFERENCED_FILE": true,
	"DIRECTED_TARGET": true, "RESTORE_SUBCOMPONENT": true, "ALTERNATE_LOCATION_MAPPING": true,
	"NEW_TARGET": true, "SNAPSHOT_SET": true, "SNAPSHOT": true,
}

// ParseBackupComponents reads a Backup Components Document, with the same
// error rules as ParseWriterMetadata.
func ParseBackupComponents(data []byte) (*BackupComponents, error) {
	b := &BackupComponents{}
	if err := parseDoc(data, "BACKUP_COMPONENTS", BCDNamespace, bcdVocab, func(p *decoder, root *element) error {
		return readBCD(p, root, b)
	}); err != nil {
		return nil, err
	}
	if err := b.validateModel(); err != nil {
		return nil, err
	}
	if len(data) > reencodeCheckAbove {
		if _, err := b.encode(); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func readBCD(p *decoder, root *element, b *BackupComponents) error {
	b.Version = root.str("version", true)
	b.BootableSystemStateBackup = root.boolean("bootableSystemStateBackup", false)
	b.SelectComponents = root.boolean("selectComponents", false)
	b.BackupType = enumAttr(root, "backupType", backupTypeWords, false, vss.BackupUndefined)
	b.PartialFileSupport = root.boolean("partialFileSupport", false)
	b.RestoreType = enumAttr(root, "restoreType", restoreTypeWords, false, vss.RestoreUndefined)
	b.SnapshotSetID = root.guid("snapshotSetId", false)
	if root.err != nil {
		return root.err
	}
	if err := root.check(checkVersion(b.Version, false)); err != nil {
		return err
	}
	instances := map[uuid.UUID]bool{}
	return p.children(root, func(c *element) error {
		switch c.name {
		case "WRITER_COMPONENTS":
			return readWriterComponents(p, c, b, instances)
		case "SNAPSHOT_SET":
			if b.SnapshotSet != nil {
				return c.invalid("second SNAPSHOT_SET")
			}
			return readSnapshotSet(p, c, b)
		}
		return c.misplaced(root)
	})
}

func readSnapshotSet(p *decoder, e *element, b *BackupComponents) error {
	s := &SnapshotSetRecord{
		ID:      e.guid("snapshotSetId", true),
		Context: e.i32("context", 0),
	}
	if e.err != nil {
		return e.err
	}
	if err := e.check(checkSnapshotSetID(b.SnapshotSetID, s.ID)); err != nil {
		return err
	}
	seen := map[uuid.UUID]bool{}
	err := p.children(e, func(c *element) error {
		if c.name != "SNAPSHOT" {
			return c.misplaced(e)
		}
		r := SnapshotRecord{
			ID:             c.guid("snapshotId", true),
			OriginalVolume: c.str("originalVolume", false),
			DevicePath:     c.str("devicePath", false),
			ProviderID:     c.guid("providerId", false),
			Attributes:     c.u32("attributes", 0),
			Created:        c.filetime("creationTimestamp"),
		}
		if c.err != nil {
			return c.err
		}
		if err := c.check(checkSnapshot(&r, seen)); err != nil {
			return err
		}
		s.Snapshots = append(s.Snapshots, r)
		return p.leaf(c)
	})
	b.SnapshotSet = s
	return err
}

func readWriterComponents(p *decoder, e *element, b *BackupComponents, instances map[uuid.UUID]bool) error {
	w := WriterComponents{
		InstanceID:   e.guid("instanceId", true),
		WriterID:     e.guid("writerId", true),
		InstanceName: e.str("instanceName", false),
		BackupSchema: e.u32("backupSchema", 0),
	}
	if e.err != nil {
		return e.err
	}
	if err := e.check(checkInstance(instances, w.InstanceID)); err != nil {
		return err
	}
	seen := map[componentKey]bool{}
	err := p.children(e, func(c *element) error {
		if c.name != "COMPONENT" {
			return c.misplaced(e)
		}
		cs, err := readComponentState(p, c, seen)
		if err != nil {
			return err
		}
		w.Components = append(w.Components, cs)
		return nil
	})
	b.Writers = append(b.Writers, w)
	return err
}

func readComponentState(p *decoder, e *element, seen map[componentKey]bool) (ComponentState, error) {
	c := ComponentState{
		LogicalPath:                e.str("logicalPath", false),
		Name:                       e.str("componentName", true),
		Type:                       enumAttr(e, "componentType", componentTypeWords, true, vss.ComponentUndefined),
		BackupStamp:                e.str("backupStamp", false),
		PreviousBackupStamp:        e.str("previousBackupStamp", false),
		BackupOptions:              e.str("backupOptions", false),
		RestoreOptions:             e.str("restoreOptions", false),
		BackupSucceeded:            e.boolean("backupSucceeded", false),
		SelectedForRestore:         e.boolean("selectedForRestore", false),
		AdditionalRestores:         e.boolean("additionalRestores", false),
		RestoreTarget:              enumAttr(e, "restoreTarget", restoreTargetWords, false, vss.RTUndefined),
		FileRestoreStatus:          enumAttr(e, "fileRestoreStatus", fileRestoreStatusWords, false, vss.RSUndefined),
		PrepareForBackupFailureMsg: e.str("prepareForBackupFailureMsg", false),
		PostSnapshotFailureMsg:     e.str("postSnapshotFailureMsg", false),
		PreRestoreFailureMsg:       e.str("preRestoreFailureMsg", false),
		PostRestoreFailureMsg:      e.str("postRestoreFailureMsg", false),
		AuthoritativeRestore:       e.boolean("authoritativeRestore", false),
		RollForwardType:            enumAttr(e, "rollForwardType", rollForwardWords, false, vss.RFUndefined),
		RollForwardPoint:           e.str("rollForwardPoint", false),
		RestoreName:                e.str("restoreName", false),
	}
	if e.err != nil {
		return c, e.err
	}
	if err := e.check(checkComponentState(&c)); err != nil {
		return c, err
	}
	if err := e.check(checkDuplicate(seen, c.LogicalPath, c.Name)); err != nil {
		return c, err
	}
	err := p.children(e, func(x *element) error {
		switch x.name {
		case "BACKUP_METADATA", "RESTORE_METADATA":
			dst := &c.BackupMetadata
			if x.name == "RESTORE_METADATA" {
				dst = &c.RestoreMetadata
			}
			if *dst != nil {
				return x.invalid("second %s", x.name)
			}
			v, _ := x.required("metadata")
			if x.err != nil {
				return x.err
			}
			*dst = &v
		case "FAILURE":
			if c.Failure != nil {
				return x.invalid("second FAILURE")
			}
			c.Failure = &ComponentFailure{
				HR:            x.hresult("hr", true),
				ApplicationHR: x.hresult("hrApplication", false),
				Message:       x.str("message", false),
			}
		case "PARTIAL_FILE":
			f := PartialFile{
				Path:     x.str("path", true),
				Filename: x.str("filename", true),
				Ranges:   x.str("ranges", false),
				Metadata: x.str("metadata", false),
			}
			if x.err == nil {
				x.err = x.check(checkPartialFile(&f))
			}
			c.PartialFiles = append(c.PartialFiles, f)
		case "DIFFERENCED_FILE":
			f := DifferencedFile{
				Path:           x.str("path", true),
				Filespec:       x.str("filespec", true),
				Recursive:      x.boolean("recursive", false),
				LSN:            x.str("lsn", false),
				LastModifyTime: x.filetime("lastModifyTime"),
			}
			if x.err == nil {
				x.err = x.check(checkDifferencedFile(&f))
			}
			c.DifferencedFiles = append(c.DifferencedFiles, f)
		case "DIRECTED_TARGET":
			t := DirectedTarget{
				SourcePath:          x.str("sourcePath", true),
				SourceFilename:      x.str("sourceFilename", true),
				SourceRanges:        x.str("sourceRanges", false),
				DestinationPath:     x.str("destinationPath", true),
				DestinationFilename: x.str("destinationFilename", true),
				DestinationRanges:   x.str("destinationRanges", false),
			}
			if x.err == nil {
				x.err = x.check(checkDirectedTarget(&t))
			}
			c.DirectedTargets = append(c.DirectedTargets, t)
		case "RESTORE_SUBCOMPONENT":
			s := RestoreSubcomponent{
				LogicalPath: x.str("logicalPath", false),
				Name:        x.str("componentName", true),
				Repair:      x.boolean("repair", false),
			}
			if x.err == nil {
				x.err = x.check(checkName("componentName", s.Name))
			}
			c.RestoreSubcomponents = append(c.RestoreSubcomponents, s)
		case "ALTERNATE_LOCATION_MAPPING":
			m, err := readMapping(p, x)
			c.AlternateLocationMappings = append(c.AlternateLocationMappings, m)
			return err
		case "NEW_TARGET":
			f, err := readFileDesc(p, x, newTargetFile)
			c.NewTargets = append(c.NewTargets, f)
			return err
		default:
			return x.misplaced(e)
		}
		if x.err != nil {
			return x.err
		}
		return p.leaf(x)
	})
	return c, err
}
