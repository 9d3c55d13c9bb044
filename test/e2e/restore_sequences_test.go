package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// logwriterClass is the writer class ID examples/logwriter derives from its
// name.
func logwriterClass(name string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("lvss:example:logwriter:"+name)).String()
}

// This file replays vshadow.exe's restore modes as `lvss call --json`
// scripts against the real lvssd and real writer processes, like
// sequences_test.go does for its backups. Transcribed from the sources
// (shadow.cpp, vssclient.cpp, writer.cpp, select.cpp; function names are
// theirs):
//
// vshadow -r=BCD [-wi=W] [-wx=W] [-exec=C] (a restore) and -rs=BCD (a
// simulated one):
//
//	Initialize(VSS_CTX_ALL, xml, restore): InitializeForRestore(xml);
//	  SetBackupState(true, true, VSS_BT_FULL, false)
//	GatherWriterMetadata (+ Wait + QueryStatus, GetWriterMetadataCount,
//	  GetWriterMetadata(i) for each i)
//	GatherWriterStatus (+ Wait + QueryStatus); ListWriterStatus:
//	  GetWriterStatusCount, GetWriterStatus(i) for each i
//	InitializeWriterComponentsForRestore: GetWriterComponentsCount,
//	  GetWriterComponents(i) for each i; a writer of the BCD counts when a
//	  running writer has its class
//	SelectComponentsForRestore: writers whose restore setting is
//	  VSS_WRE_NEVER are left out (ExcludeWritersWithNoRestoreEvents); then
//	  SetSelectedForRestore(class, type, path, name, true) for every
//	  component of the others (SelectNonexcludedComponentsForRestore)
//	-rs stops here and releases.
//	PreRestore + Wait + QueryStatus; CheckSelectedWriterStatus
//	  (GatherWriterStatus + Wait + QueryStatus, GetWriterStatusCount,
//	  GetWriterStatus(i) for each i)
//	-exec: the command runs; SetFileRestoreStatus(VSS_RS_ALL if it
//	  succeeded, else VSS_RS_NONE) per selected component
//	PostRestore + Wait + QueryStatus; if the command succeeded,
//	  CheckSelectedWriterStatus
//	release

// restoreRig is the sequence rig with alpha and gamma taking part in
// restores (--restore always) and beta not (VSS_WRE_NEVER), and a backup
// of all three saved by vshadow -bc on both volumes.
func restoreRig(t *testing.T) (*seqRig, string) {
	t.Helper()
	r := newSeqRigArgs(t, shortTimeouts, "", map[string][]string{
		"alpha": {"--restore", "always"}, "gamma": {"--restore", "always"},
	})
	p := vshadow{bc: true}.create(r, r.vol1, r.vol2)
	var bcd string
	for i := range p.steps {
		if p.steps[i].line == "SaveAsXML" {
			check := p.steps[i].check
			p.steps[i].check = func(t checkT, run *scriptRun, res result) {
				check(t, run, res)
				bcd = res.str("xml")
			}
		}
	}
	runScript(t, r.d.socket, p.steps)
	if bcd == "" {
		t.Fatal("the backup saved no Backup Components Document")
	}
	file := filepath.Join(r.d.dir, "bcd.xml")
	if err := os.WriteFile(file, []byte(bcd), 0o644); err != nil {
		t.Fatal(err)
	}
	return r, file
}

// restoring are the writers vshadow selects: those not VSS_WRE_NEVER.
func (r *seqRig) restoring() []*seqWriter { return []*seqWriter{r.writer("alpha"), r.writer("gamma")} }

// componentOf names w's component as the restore calls do (by class).
func (r *seqRig) componentOf(w *seqWriter) string {
	return fmt.Sprintf(`$WRITER_ID_%d VSS_CT_FILEGROUP "" data`, slices.Index(r.writers, w)+1)
}

// vshadowRestore is vshadow -r (or -rs, simulate) with the BCD at file.
func vshadowRestore(r *seqRig, file string, simulate, execFails bool) []step {
	stable := r.states(nil, wsStable)
	s := []step{okLine("InitializeForRestore @" + file), okLine("SetBackupState true true VSS_BT_FULL false")}
	s = append(s, gatherWriterMetadata(r.names())...)
	s = append(s, gatherWriterStatus(stable)...)
	s = append(s, step{line: "GetWriterComponentsCount", hr: sOK, check: count(len(r.writers))})
	for i := range r.writers {
		s = append(s, step{line: fmt.Sprintf("GetWriterComponents %d", i), hr: sOK, check: backedUp()})
	}
	for _, w := range r.restoring() {
		s = append(s, okLine("SetSelectedForRestore "+r.componentOf(w)+" true"))
	}
	if simulate {
		return s
	}
	s = append(s, waitAndCheck("PreRestore", "")...)
	s = append(s, gatherWriterStatus(stable)...)
	st := "VSS_RS_ALL"
	if execFails {
		st = "VSS_RS_NONE"
	}
	for _, w := range r.restoring() {
		s = append(s, okLine("SetFileRestoreStatus "+r.componentOf(w)+" "+st))
	}
	s = append(s, waitAndCheck("PostRestore", "")...)
	if !execFails {
		s = append(s, gatherWriterStatus(stable)...)
	}
	return s
}

// backedUp checks that GetWriterComponents returns a writer of the backup
// with its component, as the writer left it (logwriter's stamp).
func backedUp() func(checkT, *scriptRun, result) {
	return func(t checkT, _ *scriptRun, res result) {
		t.Helper()
		comps := res.obj("writer").list("components")
		if len(comps) != 1 || comps[0].str("component") != "data" || !strings.HasSuffix(comps[0].str("backup_stamp"), "-stamp") {
			t.Errorf("GetWriterComponents: components %v, want the backed-up \"data\" with its writer's stamp", comps)
		}
	}
}

// restoreLines returns the PreRestore and PostRestore lines of w's log.
func restoreLines(t *testing.T, w *seqWriter) []string {
	t.Helper()
	b, err := os.ReadFile(w.lw.Log)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && (f[1] == "PreRestore" || f[1] == "PostRestore") {
			out = append(out, strings.Join(f[1:], " "))
		}
	}
	return out
}

func TestVshadowRestore(t *testing.T) {
	for _, tc := range []struct {
		name                string
		simulate, execFails bool
	}{
		{"-r", false, false},
		{"-r -exec fails", false, true},
		{"-rs", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, file := restoreRig(t)
			run := runScript(t, r.d.socket, vshadowRestore(r, file, tc.simulate, tc.execFails))
			want := map[string][]string{}
			for _, w := range r.writers {
				want[w.name] = fullSequence
			}
			var shutdown []*seqWriter
			if !tc.simulate {
				shutdown = r.restoring()
				for _, w := range shutdown {
					want[w.name] = append(slices.Clone(fullSequence), "PreRestore", "PostRestore", "BackupShutdown")
				}
			}
			r.checkEvents(t, want)
			r.checkRelease(t, run, shutdown, nil, false)
			st := "VSS_RS_ALL"
			if tc.execFails {
				st = "VSS_RS_NONE"
			}
			for _, w := range shutdown {
				got := restoreLines(t, w)
				wantLines := []string{
					// vshadow sets no restore type; the writer sees its
					// selected component with the default target.
					"PreRestore 00000000-0000-0000-0000-000000000000 type=VSS_RTYPE_UNDEFINED data:selected:VSS_RT_ORIGINAL:VSS_RS_UNDEFINED",
					// PostRestore shows the status and the metadata the
					// writer stored in PreRestore.
					"PostRestore 00000000-0000-0000-0000-000000000000 type=VSS_RTYPE_UNDEFINED data:selected:VSS_RT_ORIGINAL:" + st + " metadata=" + w.name + "-restore",
				}
				if !slices.Equal(got, wantLines) {
					t.Errorf("writer %s logged\n%s\nwant\n%s", w.name, strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
				}
			}
		})
	}
}

// TestRestoreUnknownWriter: selecting a component whose writer is not
// running is VSS_E_OBJECT_NOT_FOUND (vss-reference §2.2), and backup calls
// in a restore session are VSS_E_BAD_STATE (D21).
func TestRestoreUnknownWriter(t *testing.T) {
	r, file := restoreRig(t)
	beta := r.writer("beta")
	beta.lw.Proc.Stop(t)
	steps := []step{okLine("InitializeForRestore @" + file),
		step{line: "PreRestore", hr: "VSS_E_BAD_STATE"}, // before GatherWriterMetadata
		step{line: "PrepareForBackup", hr: "VSS_E_BAD_STATE"},
	}
	steps = append(steps, waitAndCheck("GatherWriterMetadata", "")...)
	steps = append(steps,
		step{line: "GetWriterMetadataCount", hr: sOK, check: count(2)},
		okLine("GetWriterMetadata 0"), // alpha: binds $WRITER_ID_1
		step{line: "AddComponent $INSTANCE_ID_1 $WRITER_ID_1 VSS_CT_FILEGROUP \"\" data", hr: "VSS_E_BAD_STATE"},
		okLine(`SetSelectedForRestore $WRITER_ID_1 VSS_CT_FILEGROUP "" data true`),
		step{line: `SetSelectedForRestore ` + logwriterClass(beta.name) + ` VSS_CT_FILEGROUP "" data true`, hr: "VSS_E_OBJECT_NOT_FOUND"},
	)
	run := runScript(t, r.d.socket, steps, "--keep-going")
	r.checkRelease(t, run, nil, nil, false)
}
