package backupdoc

import (
	"archive/tar"
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// The sample backup the tests archive: a full backup of /srv and
// /var/lib/postgresql with two writers, one of which failed at Freeze.
var (
	setID    = uuid.MustParse("0b2f6c1e-5d7a-4e21-9f3c-8a4b2d1e6f70")
	snapSrv  = uuid.MustParse("7d0c93a4-1b2e-4f6a-8c5d-3e9f0a1b2c4d")
	snapPG   = uuid.MustParse("21954f51-7290-4a86-ad6d-23a22cce7faf")
	provider = uuid.MustParse("3f1e7a52-9c4d-4b8e-a1f0-6d2c5b7e9a13")
	filesW   = writerIDs{instance: uuid.MustParse("d39fbed9-41e7-4535-ab3b-decd33c7ce85"),
		class: uuid.MustParse("0c6f3a52-8e1d-4b7a-9d25-6f4e3b2a1c0d"), name: "files"}
	pgW = writerIDs{instance: uuid.MustParse("c0ffee00-1234-4abc-8def-0123456789ab"),
		class: uuid.MustParse("5f3e2a10-7c4b-4d9e-a1f2-6b8c0d3e4f51"), name: "postgres"}
	created = time.Date(2026, 11, 25, 1, 10, 3, 412_000_000, time.UTC)
)

type writerIDs struct {
	instance, class uuid.UUID
	name            string
}

func exitStatus(n int) *int { return &n }

func sampleManifest() Manifest {
	return Manifest{
		Stage: StageBackupComplete, LvssVersion: "0.9.0", Host: "db1",
		Time:          time.Date(2026, 11, 25, 1, 12, 40, 0, time.UTC),
		SnapshotSetID: setID, Context: vss.CtxBackup, BackupType: vss.BackupFull,
		Command:    []string{"restic", "backup", "/srv/.lvss-snapshots/7d0c93a4-1b2e-4f6a-8c5d-3e9f0a1b2c4d"},
		ExitStatus: exitStatus(0), FreezeHeld: 12345678 * time.Nanosecond, WritersFrozen: 23456789 * time.Nanosecond,
		Snapshots: []Snapshot{
			{SnapshotID: snapSrv, OriginalVolume: "/srv", DevicePath: "/srv/.lvss-snapshots/" + snapSrv.String(),
				ProviderName: "btrfs", ProviderID: provider, Created: created, Consistency: "application"},
			{SnapshotID: snapPG, OriginalVolume: "/var/lib/postgresql", DevicePath: "/var/lib/.lvss-snapshots/" + snapPG.String(),
				ProviderName: "btrfs", ProviderID: provider, Created: created, Consistency: "crash",
				ConsistencyReason: "writer postgres: VSS_WS_FAILED_AT_FREEZE"},
		},
		Writers: []Writer{
			{InstanceID: filesW.instance, WriterID: filesW.class, Name: "files", InstanceName: "main", State: vss.WSStable},
			{InstanceID: pgW.instance, WriterID: pgW.class, Name: "postgres", InstanceName: "16/main",
				State: vss.WSFailedAtFreeze, Failure: vsserr.WriterErrorTimeout,
				ApplicationHRESULT: vsserr.Fail, ApplicationMessage: "checkpoint took too long"},
		},
	}
}

// wmdXML is a writer's metadata document with one file-group component.
func wmdXML(t *testing.T, w writerIDs, path string) string {
	t.Helper()
	md := &document.WriterMetadata{
		Identity: document.Identity{WriterID: w.class, InstanceID: w.instance, InstanceName: "main", FriendlyName: w.name,
			Usage: vss.UsageUserData, Source: vss.SourceOther},
		RestoreMethod: document.RestoreMethod{Method: vss.RMERestoreIfCanReplace, WriterRestore: vss.WRENever},
		Components: []document.Component{{Type: vss.ComponentFileGroup, LogicalPath: w.name, Name: "data", Selectable: true,
			Files: []document.FileDesc{{Path: path, Filespec: "*", Recursive: true, BackupTypeMask: vss.DefaultFileBackupTypeMask}}}},
	}
	b, err := md.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// bcdXML is the BCD of the sample backup: both writers' components, the
// files one marked as backed up, and the snapshot set record.
func bcdXML(t *testing.T, set uuid.UUID, snaps ...uuid.UUID) string {
	t.Helper()
	b := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull, SnapshotSetID: set}
	for _, w := range []writerIDs{filesW, pgW} {
		if err := b.AddComponent(w.instance, w.class, "main", 0, vss.ComponentFileGroup, w.name, "data"); err != nil {
			t.Fatal(err)
		}
	}
	b.Writers[0].Components[0].BackupSucceeded = true
	b.Writers[0].Components[0].BackupStamp = "stamp-1"
	rec := &document.SnapshotSetRecord{ID: set}
	for _, s := range snaps {
		rec.Snapshots = append(rec.Snapshots, document.SnapshotRecord{ID: s, ProviderID: provider, Created: created})
	}
	b.SnapshotSet = rec
	x, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(x)
}

type sample struct {
	m    Manifest
	bcd  string
	wmds map[uuid.UUID]string
}

func newSample(t *testing.T) sample {
	t.Helper()
	return sample{
		m:   sampleManifest(),
		bcd: bcdXML(t, setID, snapSrv, snapPG),
		wmds: map[uuid.UUID]string{
			filesW.instance: wmdXML(t, filesW, "/srv/docs"),
			pgW.instance:    wmdXML(t, pgW, "/var/lib/postgresql/16/main"),
		},
	}
}

func (s sample) write(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, s.m, s.bcd, s.wmds); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// entry is one file of a hand-made tar.
type entry struct {
	name string
	data string
	typ  byte // 0: a regular file
}

// tarOf builds a tar of exactly these entries, for archives Write would
// never write.
func tarOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Typeflag: typ, Name: e.name, Mode: 0o644, ModTime: time.Unix(0, 0)}
		switch typ {
		case tar.TypeReg:
			h.Size = int64(len(e.data))
		case tar.TypeSymlink:
			h.Linkname = e.data
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// entries lists a tar's files and their content, in order.
func entries(t *testing.T, archive []byte) ([]*tar.Header, map[string]string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	var hdrs []*tar.Header
	content := map[string]string{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(tr); err != nil {
			t.Fatal(err)
		}
		hdrs = append(hdrs, h)
		content[h.Name] = b.String()
	}
	return hdrs, content
}
