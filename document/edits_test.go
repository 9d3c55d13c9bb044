package document

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

var (
	instA  = uuid.MustParse("c0ffee00-1234-4abc-8def-0123456789ab")
	classA = uuid.MustParse("5f3e2a10-7c4b-4d9e-a1f2-6b8c0d3e4f51")
	instB  = uuid.MustParse("7b1d9e40-2c5a-4f83-a6e1-0d9c8b7a6f52")
	classB = uuid.MustParse("e8132975-6f93-4464-a53e-1050253ae220")
)

// editBase is a BCD with two components for writer A and one for B.
func editBase(t *testing.T) *BackupComponents {
	t.Helper()
	b := &BackupComponents{Version: "1.2", BackupType: vss.BackupFull, PartialFileSupport: true}
	for _, c := range []struct {
		inst, class uuid.UUID
		lp, name    string
	}{{instA, classA, "db", "main"}, {instA, classA, "db", "logs"}, {instB, classB, "", "System Files"}} {
		if err := b.AddComponent(c.inst, c.class, "", 0, vss.ComponentFileGroup, c.lp, c.name); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func str(s string) *string { return &s }

var backupOnly = []Phase{PhasePrepareBackup, PhasePostSnapshot}

// fieldCases covers every field of ComponentState: how a writer would
// change it, and the phases in which that is allowed (none = requester).
var fieldCases = []struct {
	field   string
	mutate  func(*ComponentState)
	allowed []Phase
}{
	{"componentType", func(c *ComponentState) { c.Type = vss.ComponentDatabase }, nil},
	{"backupStamp", func(c *ComponentState) { c.BackupStamp = "stamp-2" }, backupOnly},
	{"previousBackupStamp", func(c *ComponentState) { c.PreviousBackupStamp = "x" }, nil},
	{"backupOptions", func(c *ComponentState) { c.BackupOptions = "x" }, nil},
	{"restoreOptions", func(c *ComponentState) { c.RestoreOptions = "x" }, nil},
	{"backupSucceeded", func(c *ComponentState) { c.BackupSucceeded = true }, nil},
	{"BACKUP_METADATA", func(c *ComponentState) { c.BackupMetadata = str("blob") }, backupOnly},
	{"RESTORE_METADATA", func(c *ComponentState) { c.RestoreMetadata = str("blob") }, []Phase{PhasePreRestore}},
	{"selectedForRestore", func(c *ComponentState) { c.SelectedForRestore = true }, nil},
	{"additionalRestores", func(c *ComponentState) { c.AdditionalRestores = true }, nil},
	{"restoreTarget", func(c *ComponentState) { c.RestoreTarget = vss.RTAlternate }, []Phase{PhasePreRestore}},
	{"fileRestoreStatus", func(c *ComponentState) { c.FileRestoreStatus = vss.RSAll }, nil},
	{"prepareForBackupFailureMsg", func(c *ComponentState) { c.PrepareForBackupFailureMsg = "m" }, []Phase{PhasePrepareBackup}},
	{"postSnapshotFailureMsg", func(c *ComponentState) { c.PostSnapshotFailureMsg = "m" }, []Phase{PhasePostSnapshot}},
	{"preRestoreFailureMsg", func(c *ComponentState) { c.PreRestoreFailureMsg = "m" }, []Phase{PhasePreRestore}},
	{"postRestoreFailureMsg", func(c *ComponentState) { c.PostRestoreFailureMsg = "m" }, []Phase{PhasePostRestore}},
	{"FAILURE", func(c *ComponentState) { c.Failure = &ComponentFailure{HR: 0x800423F4, Message: "m"} },
		[]Phase{PhasePrepareBackup, PhasePostSnapshot, PhasePreRestore, PhasePostRestore}},
	{"authoritativeRestore", func(c *ComponentState) { c.AuthoritativeRestore = true }, nil},
	{"rollForwardType", func(c *ComponentState) { c.RollForwardType = vss.RFAll }, nil},
	{"rollForwardPoint", func(c *ComponentState) { c.RollForwardPoint = "p" }, nil},
	{"restoreName", func(c *ComponentState) { c.RestoreName = "n" }, nil},
	{"PARTIAL_FILE", func(c *ComponentState) {
		c.PartialFiles = append(c.PartialFiles, PartialFile{Path: "/d", Filename: "f", Ranges: "0:512"})
	}, backupOnly},
	{"DIFFERENCED_FILE", func(c *ComponentState) {
		c.DifferencedFiles = append(c.DifferencedFiles, DifferencedFile{Path: "/d", Filespec: "*",
			LastModifyTime: time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)})
	}, backupOnly},
	{"DIRECTED_TARGET", func(c *ComponentState) {
		c.RestoreTarget = vss.RTDirected // AddDirectedTarget needs it; only PreRestore allows both
		c.DirectedTargets = append(c.DirectedTargets, DirectedTarget{SourcePath: "/a", SourceFilename: "f",
			DestinationPath: "/b", DestinationFilename: "g"})
	}, []Phase{PhasePreRestore}},
	{"RESTORE_SUBCOMPONENT", func(c *ComponentState) {
		c.RestoreSubcomponents = []RestoreSubcomponent{{LogicalPath: `db\main`, Name: "sub"}}
	}, nil},
	{"ALTERNATE_LOCATION_MAPPING", func(c *ComponentState) {
		c.AlternateLocationMappings = []AlternateMapping{{Path: "/a", Filespec: "*", Destination: "/b"}}
	}, nil},
	{"NEW_TARGET", func(c *ComponentState) { c.NewTargets = []FileDesc{{Path: "/a", Filespec: "*"}} }, nil},
}

// Every field of ComponentState must appear in fieldCases and in
// componentRules, so a field added later cannot slip past the checks.
func TestFieldTablesCoverComponentState(t *testing.T) {
	covered := map[string]bool{"LogicalPath": true, "Name": true}
	probe := func(m func(*ComponentState)) {
		var zero, c ComponentState
		m(&c)
		v0, v1 := reflect.ValueOf(zero), reflect.ValueOf(c)
		for i := range v0.NumField() {
			if !reflect.DeepEqual(v0.Field(i).Interface(), v1.Field(i).Interface()) {
				covered[v0.Type().Field(i).Name] = true
			}
		}
	}
	for _, fc := range fieldCases {
		probe(fc.mutate)
	}
	typ := reflect.TypeOf(ComponentState{})
	for i := range typ.NumField() {
		if !covered[typ.Field(i).Name] {
			t.Errorf("field %s has no case in fieldCases", typ.Field(i).Name)
		}
	}
	if len(fieldCases) != len(componentRules) {
		t.Errorf("%d cases for %d rules", len(fieldCases), len(componentRules))
	}
	for i, fc := range fieldCases {
		if i < len(componentRules) && componentRules[i].name != fc.field {
			t.Errorf("case %d is %s, rule is %s", i, fc.field, componentRules[i].name)
		}
	}
}

func TestApplyWriterEditsEveryFieldEveryPhase(t *testing.T) {
	allPhases := []Phase{PhaseReadOnly, PhasePrepareBackup, PhasePostSnapshot, PhasePreRestore, PhasePostRestore}
	for _, fc := range fieldCases {
		for _, phase := range allPhases {
			t.Run(fc.field+"/"+phase.String(), func(t *testing.T) {
				b := editBase(t)
				before := b.Clone()
				view := b.ForWriter(instA)
				fc.mutate(&view.Writers[0].Components[0])
				want := view.Writers[0].Components[0].clone()
				err := b.ApplyWriterEdits(phase, instA, &view.Writers[0])
				allowed := false
				for _, p := range fc.allowed {
					allowed = allowed || p == phase
				}
				if allowed {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if got := b.Writer(instA).Components[0]; !reflect.DeepEqual(got, want) {
						t.Fatalf("not applied:\n got %+v\nwant %+v", got, want)
					}
					// The merge must copy, not alias, the writer's data.
					fc.mutate(&view.Writers[0].Components[0])
					if err := b.Validate(); err != nil {
						t.Fatal(err)
					}
					return
				}
				if !errors.Is(err, vsserr.BadState) {
					t.Fatalf("got %v, want VSS_E_BAD_STATE", err)
				}
				field := fc.field
				if field == "DIRECTED_TARGET" { // the case also sets the restore target, checked first
					field = "restoreTarget"
				}
				if !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), `"db\\main"`) {
					t.Errorf("error does not name the field and component: %v", err)
				}
				if !reflect.DeepEqual(b, before) {
					t.Fatal("document changed on error")
				}
			})
		}
	}
}

func TestBackupMetadataSetOnce(t *testing.T) {
	b := editBase(t)
	view := b.ForWriter(instA)
	view.Writers[0].Components[0].BackupMetadata = str("")
	if err := b.ApplyWriterEdits(PhasePrepareBackup, instA, &view.Writers[0]); err != nil {
		t.Fatal(err)
	}
	// The same value again is no change; a different one is a second set.
	view = b.ForWriter(instA)
	if err := b.ApplyWriterEdits(PhasePostSnapshot, instA, &view.Writers[0]); err != nil {
		t.Fatal(err)
	}
	before := b.Clone()
	for _, v := range []*string{str("other"), nil} {
		view.Writers[0].Components[0].BackupMetadata = v
		err := b.ApplyWriterEdits(PhasePostSnapshot, instA, &view.Writers[0])
		if !errors.Is(err, vsserr.ObjectAlreadyExists) || !strings.Contains(err.Error(), "BACKUP_METADATA") {
			t.Fatalf("got %v", err)
		}
	}
	if !reflect.DeepEqual(b, before) {
		t.Fatal("document changed on error")
	}
}

func TestAddOnlyLists(t *testing.T) {
	b := editBase(t)
	view := b.ForWriter(instA)
	c := &view.Writers[0].Components[0]
	c.PartialFiles = []PartialFile{{Path: "/d", Filename: "a"}}
	c.DifferencedFiles = []DifferencedFile{{Path: "/d", Filespec: "*"}}
	if err := b.ApplyWriterEdits(PhasePrepareBackup, instA, &view.Writers[0]); err != nil {
		t.Fatal(err)
	}
	// Appending in the next phase is fine.
	view = b.ForWriter(instA)
	c = &view.Writers[0].Components[0]
	c.PartialFiles = append(c.PartialFiles, PartialFile{Path: "/d", Filename: "b"})
	if err := b.ApplyWriterEdits(PhasePostSnapshot, instA, &view.Writers[0]); err != nil {
		t.Fatal(err)
	}
	if n := len(b.Writer(instA).Components[0].PartialFiles); n != 2 {
		t.Fatalf("%d partial files", n)
	}
	for name, m := range map[string]func(*ComponentState){
		"PARTIAL_FILE":     func(c *ComponentState) { c.PartialFiles = c.PartialFiles[1:] },
		"DIFFERENCED_FILE": func(c *ComponentState) { c.DifferencedFiles[0].Recursive = true },
	} {
		view = b.ForWriter(instA)
		m(&view.Writers[0].Components[0])
		err := b.ApplyWriterEdits(PhasePostSnapshot, instA, &view.Writers[0])
		if !errors.Is(err, vsserr.BadState) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "only add") {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestPartialFilesNeedSupport(t *testing.T) {
	b := editBase(t)
	b.PartialFileSupport = false
	view := b.ForWriter(instA)
	view.Writers[0].Components[0].PartialFiles = []PartialFile{{Path: "/d", Filename: "a"}}
	err := b.ApplyWriterEdits(PhasePrepareBackup, instA, &view.Writers[0])
	if !errors.Is(err, vsserr.BadState) || !strings.Contains(err.Error(), "partial file support") {
		t.Fatalf("got %v", err)
	}
}

func TestDirectedTargetNeedsDirectedTarget(t *testing.T) {
	b := editBase(t)
	view := b.ForWriter(instA)
	view.Writers[0].Components[0].DirectedTargets = []DirectedTarget{{SourcePath: "/a", SourceFilename: "f",
		DestinationPath: "/b", DestinationFilename: "g"}}
	err := b.ApplyWriterEdits(PhasePreRestore, instA, &view.Writers[0])
	if !errors.Is(err, vsserr.BadState) || !strings.Contains(err.Error(), "VSS_RT_DIRECTED") {
		t.Fatalf("got %v", err)
	}
	// Outside PreRestore the list itself is refused.
	b.Writer(instA).Components[0].RestoreTarget = vss.RTDirected
	view = b.ForWriter(instA)
	view.Writers[0].Components[0].DirectedTargets = []DirectedTarget{{SourcePath: "/a", SourceFilename: "f",
		DestinationPath: "/b", DestinationFilename: "g"}}
	for _, p := range []Phase{PhaseReadOnly, PhasePrepareBackup, PhasePostSnapshot, PhasePostRestore} {
		err := b.ApplyWriterEdits(p, instA, &view.Writers[0])
		if !errors.Is(err, vsserr.BadState) || !strings.Contains(err.Error(), "DIRECTED_TARGET only during PreRestore") {
			t.Errorf("%v: got %v", p, err)
		}
	}
	if err := b.ApplyWriterEdits(PhasePreRestore, instA, &view.Writers[0]); err != nil {
		t.Fatal(err)
	}
}

func TestApplyWriterEditsScope(t *testing.T) {
	b := editBase(t)
	before := b.Clone()

	// Unknown component, and a component of another writer.
	view := b.ForWriter(instA)
	view.Writers[0].Components = append(view.Writers[0].Components,
		ComponentState{LogicalPath: "db", Name: "new", Type: vss.ComponentFileGroup})
	if err := b.ApplyWriterEdits(PhasePrepareBackup, instA, &view.Writers[0]); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Errorf("unknown component: %v", err)
	}
	view = b.ForWriter(instA)
	view.Writers[0].Components = append(view.Writers[0].Components,
		ComponentState{Name: "System Files", Type: vss.ComponentFileGroup})
	if err := b.ApplyWriterEdits(PhasePrepareBackup, instA, &view.Writers[0]); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Errorf("other writer's component: %v", err)
	}
	// Renaming a component in place is an identity change.
	for field, m := range map[string]func(*ComponentState){
		"componentName": func(c *ComponentState) { c.Name = "renamed" },
		"logicalPath":   func(c *ComponentState) { c.LogicalPath = "elsewhere" },
	} {
		view = b.ForWriter(instA)
		m(&view.Writers[0].Components[1])
		err := b.ApplyWriterEdits(PhasePrepareBackup, instA, &view.Writers[0])
		if !errors.Is(err, vsserr.BadState) || !strings.Contains(err.Error(), field+" changed") {
			t.Errorf("rename %s: %v", field, err)
		}
	}
	// Unknown instance.
	if err := b.ApplyWriterEdits(PhasePrepareBackup, uuid.New(), &view.Writers[0]); !errors.Is(err, vsserr.ObjectNotFound) {
		t.Errorf("unknown instance: %v", err)
	}
	if err := b.ApplyWriterEdits(PhasePrepareBackup, instA, nil); !errors.Is(err, vsserr.InvalidArg) {
		t.Errorf("nil edit: %v", err)
	}
	// Writer-level identity fields.
	for name, m := range map[string]func(*WriterComponents){
		"instanceId":   func(w *WriterComponents) { w.InstanceID = instB },
		"writerId":     func(w *WriterComponents) { w.WriterID = classB },
		"instanceName": func(w *WriterComponents) { w.InstanceName = "x" },
		"backupSchema": func(w *WriterComponents) { w.BackupSchema = 1 },
	} {
		view = b.ForWriter(instA)
		m(&view.Writers[0])
		err := b.ApplyWriterEdits(PhasePrepareBackup, instA, &view.Writers[0])
		if !errors.Is(err, vsserr.BadState) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// All or nothing: an allowed edit on one component and a forbidden one
	// on the next leave the document unchanged.
	view = b.ForWriter(instA)
	view.Writers[0].Components[0].BackupStamp = "s"
	view.Writers[0].Components[1].BackupSucceeded = true
	if err := b.ApplyWriterEdits(PhasePostSnapshot, instA, &view.Writers[0]); !errors.Is(err, vsserr.BadState) {
		t.Errorf("mixed edit: %v", err)
	}
	// A value the document cannot carry.
	view = b.ForWriter(instA)
	view.Writers[0].Components[0].BackupStamp = "bad\x00stamp"
	if err := b.ApplyWriterEdits(PhasePostSnapshot, instA, &view.Writers[0]); !errors.Is(err, vsserr.InvalidArg) {
		t.Errorf("NUL in stamp: %v", err)
	}
	view = b.ForWriter(instA)
	view.Writers[0].Components[0].DifferencedFiles = []DifferencedFile{{Path: "/a", Filespec: "x/y"}}
	if err := b.ApplyWriterEdits(PhasePostSnapshot, instA, &view.Writers[0]); !errors.Is(err, vsserr.InvalidArg) {
		t.Errorf("bad filespec: %v", err)
	}
	// Duplicate component in the writer's copy.
	view = b.ForWriter(instA)
	view.Writers[0].Components[1] = view.Writers[0].Components[0]
	if err := b.ApplyWriterEdits(PhasePostSnapshot, instA, &view.Writers[0]); !errors.Is(err, vsserr.InvalidArg) {
		t.Errorf("duplicate: %v", err)
	}
	if !reflect.DeepEqual(b, before) {
		t.Fatal("document changed by refused edits")
	}

	// A writer may return a subset of its components; the rest stay.
	view = b.ForWriter(instA)
	view.Writers[0].Components = view.Writers[0].Components[1:]
	view.Writers[0].Components[0].BackupStamp = "logs-stamp"
	if err := b.ApplyWriterEdits(PhasePostSnapshot, instA, &view.Writers[0]); err != nil {
		t.Fatal(err)
	}
	if w := b.Writer(instA); len(w.Components) != 2 || w.Components[1].BackupStamp != "logs-stamp" {
		t.Errorf("subset edit: %+v", w.Components)
	}
	// Empty slices read as nil: no difference.
	view = b.ForWriter(instA)
	view.Writers[0].Components[0].PartialFiles = []PartialFile{}
	if err := b.ApplyWriterEdits(PhaseReadOnly, instA, &view.Writers[0]); err != nil {
		t.Errorf("empty slice: %v", err)
	}
}

func TestAddFindForWriter(t *testing.T) {
	b := &BackupComponents{BackupType: vss.BackupFull, SnapshotSetID: uuid.New(),
		SnapshotSet: &SnapshotSetRecord{}}
	b.SnapshotSet.ID = b.SnapshotSetID
	if err := b.AddComponent(instA, classA, "pg16/main", 4354, vss.ComponentDatabase, `clusters\16`, "main"); err != nil {
		t.Fatal(err)
	}
	err := b.AddComponent(instA, classA, "", 0, vss.ComponentFileGroup, `clusters\16`, "main")
	if !errors.Is(err, vsserr.ObjectAlreadyExists) {
		t.Errorf("duplicate add: %v", err)
	}
	// The same (path, name) under another instance is another component.
	if err := b.AddComponent(instB, classB, "", 0, vss.ComponentFileGroup, `clusters\16`, "main"); err != nil {
		t.Error(err)
	}
	for name, add := range map[string]func() error{
		"empty name":  func() error { return b.AddComponent(instA, classA, "", 0, vss.ComponentFileGroup, "", "") },
		"backslash":   func() error { return b.AddComponent(instA, classA, "", 0, vss.ComponentFileGroup, "", `a\b`) },
		"no type":     func() error { return b.AddComponent(instA, classA, "", 0, vss.ComponentUndefined, "", "x") },
		"other class": func() error { return b.AddComponent(instA, classB, "", 0, vss.ComponentFileGroup, "", "x") },
	} {
		if err := add(); !errors.Is(err, vsserr.InvalidArg) {
			t.Errorf("%s: %v", name, err)
		}
	}
	w := b.Writer(instA)
	if w == nil || w.InstanceName != "pg16/main" || w.BackupSchema != 4354 || len(w.Components) != 1 {
		t.Fatalf("writer: %+v", w)
	}

	fw, c, err := b.FindComponent(classA, vss.ComponentDatabase, `clusters\16`, "main")
	if err != nil || fw.InstanceID != instA || c.Name != "main" {
		t.Fatalf("find: %v %+v", err, c)
	}
	c.BackupSucceeded = true // FindComponent returns the document's own component
	if !b.Writer(instA).Components[0].BackupSucceeded {
		t.Error("FindComponent returned a copy")
	}
	for _, q := range []struct {
		class uuid.UUID
		ct    vss.ComponentType
		lp, n string
	}{
		{instA, vss.ComponentDatabase, `clusters\16`, "main"}, // instance ID is not a class ID
		{classA, vss.ComponentFileGroup, `clusters\16`, "main"},
		{classA, vss.ComponentDatabase, "", "main"},
		{classA, vss.ComponentDatabase, `clusters\16`, "Main"},
	} {
		if _, _, err := b.FindComponent(q.class, q.ct, q.lp, q.n); !errors.Is(err, vsserr.ObjectNotFound) {
			t.Errorf("%+v: %v", q, err)
		}
	}

	view := b.ForWriter(instA)
	if len(view.Writers) != 1 || view.Writers[0].InstanceID != instA || view.SnapshotSet != nil ||
		view.SnapshotSetID != b.SnapshotSetID || view.BackupType != vss.BackupFull {
		t.Errorf("ForWriter: %+v", view)
	}
	view.Writers[0].Components[0].BackupStamp = "changed"
	if b.Writer(instA).Components[0].BackupStamp != "" {
		t.Error("ForWriter shares memory with the document")
	}
	if v := b.ForWriter(uuid.New()); len(v.Writers) != 0 {
		t.Errorf("ForWriter of an absent instance: %+v", v)
	}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCloneIsDeep(t *testing.T) {
	data := mustRead(t, "bcd_full.xml")
	b, err := ParseBackupComponents(data)
	if err != nil {
		t.Fatal(err)
	}
	c := b.Clone()
	c.Writers[0].Components[0].PartialFiles[0].Ranges = "x"
	*c.Writers[0].Components[0].BackupMetadata = "x"
	c.Writers[0].Components[0].Failure.HR = 1
	c.SnapshotSet.Snapshots[0].DevicePath = "x"
	fresh, _ := ParseBackupComponents(data)
	if !reflect.DeepEqual(b, fresh) {
		t.Error("editing a clone changed the original BCD")
	}

	wdata := mustRead(t, "wmd_full.xml")
	w, err := ParseWriterMetadata(wdata)
	if err != nil {
		t.Fatal(err)
	}
	wc := w.Clone()
	wc.Components[0].DatabaseFiles[0].Path = "x"
	wc.Components[1].Dependencies[0].Name = "x"
	wc.AlternateLocationMappings[0].Destination = "x"
	wfresh, _ := ParseWriterMetadata(wdata)
	if !reflect.DeepEqual(w, wfresh) {
		t.Error("editing a clone changed the original WMD")
	}
	if (*WriterMetadata)(nil).Clone() != nil || (*BackupComponents)(nil).Clone() != nil {
		t.Error("nil clone")
	}
}

// Validate on documents built in Go: each rule names what is wrong, and
// Marshal refuses what Validate refuses.
func TestValidateModel(t *testing.T) {
	good := func() *WriterMetadata {
		return &WriterMetadata{
			Identity:      Identity{WriterID: classA, InstanceID: instA, FriendlyName: "w", Usage: vss.UsageUserData, Source: vss.SourceOther},
			RestoreMethod: RestoreMethod{Method: vss.RMECustom, WriterRestore: vss.WRENever},
			Components: []Component{{Type: vss.ComponentFileGroup, Name: "c",
				Files: []FileDesc{{Path: "/d", Filespec: "*", BackupTypeMask: vss.DefaultFileBackupTypeMask}}}},
		}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	out, err := good().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if back, err := ParseWriterMetadata(out); err != nil || back.Version != "1.2" {
		t.Fatalf("empty version is written as 1.2: %v", err)
	}
	for name, tc := range map[string]struct {
		m    func(*WriterMetadata)
		want string
	}{
		"usage":          {func(w *WriterMetadata) { w.Identity.Usage = vss.UsageUndefined }, "usage"},
		"source":         {func(w *WriterMetadata) { w.Identity.Source = 42 }, "dataSource"},
		"no method":      {func(w *WriterMetadata) { w.RestoreMethod = RestoreMethod{} }, "needs a RESTORE_METHOD"},
		"half method":    {func(w *WriterMetadata) { w.RestoreMethod = RestoreMethod{RebootRequired: true} }, "method is undefined"},
		"writerRestore":  {func(w *WriterMetadata) { w.RestoreMethod.WriterRestore = vss.WREUndefined }, "writerRestore"},
		"component type": {func(w *WriterMetadata) { w.Components[0].Type = vss.ComponentUndefined }, "neither database nor file group"},
		"db with files":  {func(w *WriterMetadata) { w.Components[0].Type = vss.ComponentDatabase }, "cannot have a FILE_LIST"},
		"duplicate": {func(w *WriterMetadata) { w.Components = append(w.Components, w.Components[0]) },
			"duplicate component"},
		"alternate on db": {func(w *WriterMetadata) {
			w.Components = append(w.Components, Component{Type: vss.ComponentDatabase, Name: "d",
				DatabaseFiles: []FileDesc{{Path: "/d", Filespec: "*", AlternatePath: "/x"}}})
		}, "alternate path"},
		"nul":        {func(w *WriterMetadata) { w.Identity.FriendlyName = "a\x00b" }, "U+0000"},
		"bad utf8":   {func(w *WriterMetadata) { w.Components[0].Caption = "\xff" }, "invalid UTF-8 byte 0xFF"},
		"version":    {func(w *WriterMetadata) { w.Version = "x" }, "not a 1.x"},
		"exclude":    {func(w *WriterMetadata) { w.ExcludeFiles = []FileSpec{{Path: "/d"}} }, "filespec is empty"},
		"mapping":    {func(w *WriterMetadata) { w.AlternateLocationMappings = []AlternateMapping{{Path: "/d", Filespec: "*"}} }, "destination is empty"},
		"dependency": {func(w *WriterMetadata) { w.Components[0].Dependencies = []Dependency{{WriterID: classB}} }, "onComponentName is empty"},
	} {
		w := good()
		tc.m(w)
		err := w.Validate()
		if !errors.Is(err, vsserr.InvalidXMLDocument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v", name, err)
		}
		if _, merr := w.Marshal(); !errors.Is(merr, vsserr.InvalidXMLDocument) {
			t.Errorf("%s: Marshal accepted what Validate refused: %v", name, merr)
		}
	}

	b := editBase(t)
	for name, tc := range map[string]struct {
		m    func(*BackupComponents)
		want string
	}{
		"backup type":      {func(b *BackupComponents) { b.BackupType = 9 }, "backupType"},
		"restore target":   {func(b *BackupComponents) { b.Writers[0].Components[0].RestoreTarget = 9 }, "restoreTarget"},
		"duplicate writer": {func(b *BackupComponents) { b.Writers = append(b.Writers, b.Writers[0]) }, "duplicate WRITER_COMPONENTS"},
		"new target mask": {func(b *BackupComponents) {
			b.Writers[0].Components[0].NewTargets = []FileDesc{{Path: "/a", Filespec: "*", BackupTypeMask: 1}}
		}, "no backup type mask"},
		"set id": {func(b *BackupComponents) {
			b.SnapshotSetID = uuid.New()
			b.SnapshotSet = &SnapshotSetRecord{ID: uuid.New()}
		}, "differs"},
		"time range": {func(b *BackupComponents) {
			b.SnapshotSet = &SnapshotSetRecord{Snapshots: []SnapshotRecord{{Created: time.Date(40000, 1, 1, 0, 0, 0, 0, time.UTC)}}}
		}, "FILETIME"},
	} {
		c := b.Clone()
		tc.m(c)
		if err := c.Validate(); !errors.Is(err, vsserr.InvalidXMLDocument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
