package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want []token
	}{
		{"", nil},
		{"   # a comment", nil},
		{"InitializeForBackup", []token{{"InitializeForBackup", false}}},
		{"  AddComponent\t a  b ", []token{{"AddComponent", false}, {"a", false}, {"b", false}}},
		{`SetBackupOptions x "with blanks" ""`, []token{{"SetBackupOptions", false}, {"x", false}, {"with blanks", true}, {"", true}}},
		{`X "say \"hi\""`, []token{{"X", false}, {`say "hi"`, true}}},
		{`X "a\b" c\d`, []token{{"X", false}, {`a\b`, true}, {`c\d`, false}}},
		{"X a # trailing comment", []token{{"X", false}, {"a", false}}},
		{`X "#not a comment"`, []token{{"X", false}, {"#not a comment", true}}},
		{"X a\r", []token{{"X", false}, {"a", false}}},
	}
	for _, tc := range tests {
		got, err := tokenize(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("tokenize(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseLineDefaultsAndForms(t *testing.T) {
	dir := t.TempDir()
	xmlFile := filepath.Join(dir, "bcd.xml")
	if err := os.WriteFile(xmlFile, []byte("<BACKUP_COMPONENTS/>"), 0o600); err != nil {
		t.Fatal(err)
	}
	snap := uuid.MustParse("6f1c2a9e-3b7d-4e8f-9a0b-1c2d3e4f5a6b")
	v := vars{"SNAPSHOT_ID": snap.String(), "ASYNC": "3"}
	asyncs := map[uint64]*client.Async{3: {}}
	tests := []struct {
		line   string
		method string
		args   []any
		noWait bool
	}{
		{"InitializeForBackup", "InitializeForBackup", []any{""}, false},
		{"InitializeForBackup @" + xmlFile, "InitializeForBackup", []any{"<BACKUP_COMPONENTS/>"}, false},
		{`InitializeForBackup "@literal"`, "InitializeForBackup", []any{"@literal"}, false},
		{"SetContext VSS_CTX_FILE_SHARE_BACKUP", "SetContext", []any{vss.CtxFileShareBackup}, false},
		{"SetContext 16", "SetContext", []any{vss.CtxFileShareBackup}, false},
		{"SetContext VSS_CTX_BACKUP|VSS_VOLSNAP_ATTR_DIFFERENTIAL", "SetContext",
			[]any{vss.Context(vss.AttrDifferential)}, false},
		{"SetBackupState false false VSS_BT_FULL", "SetBackupState", []any{false, false, vss.BackupFull, false}, false},
		{"SetBackupState true true 5 true", "SetBackupState", []any{true, true, vss.BackupCopy, true}, false},
		{"AddToSnapshotSet /srv", "AddToSnapshotSet", []any{"/srv", uuid.Nil}, false},
		{"AddToSnapshotSet /srv {6F1C2A9E-3B7D-4E8F-9A0B-1C2D3E4F5A6B}", "AddToSnapshotSet", []any{"/srv", snap}, false},
		{"AddToSnapshotSet /srv GUID_NULL", "AddToSnapshotSet", []any{"/srv", uuid.Nil}, false},
		{"GetSnapshotProperties $SNAPSHOT_ID", "GetSnapshotProperties", []any{snap}, false},
		{`SetBackupOptions $SNAPSHOT_ID VSS_CT_FILEGROUP "" "my comp" "a b"`, "SetBackupOptions",
			[]any{snap, vss.ComponentFileGroup, "", "my comp", "a b"}, false},
		{"EnableWriterClasses $SNAPSHOT_ID GUID_NULL", "EnableWriterClasses", []any{snap, uuid.Nil}, false},
		{"DoSnapshotSet", "DoSnapshotSet", []any{}, false},
		{"DoSnapshotSet &", "DoSnapshotSet", []any{}, true},
		{"DoSnapshotSet&", "DoSnapshotSet", []any{}, true},
		{"GetWriterStatus", "GetWriterStatus", []any{nil}, false},
		{"GetWriterStatusEx 2", "GetWriterStatusEx", []any{2}, false},
		{"Wait $ASYNC", "Wait", []any{asyncs[3], time.Duration(-1)}, false},
		{"Wait $ASYNC 250", "Wait", []any{asyncs[3], 250 * time.Millisecond}, false},
		{"Wait 3 INFINITE", "Wait", []any{asyncs[3], time.Duration(-1)}, false},
		{"Wait 3 0xFFFFFFFF", "Wait", []any{asyncs[3], time.Duration(-1)}, false},
		{"Query", "Query", []any{uuid.Nil, vss.ObjectNone, vss.ObjectSnapshot}, false},
		{"Query GUID_NULL VSS_OBJECT_NONE VSS_OBJECT_PROVIDER", "Query", []any{uuid.Nil, vss.ObjectNone, vss.ObjectProvider}, false},
		{"DeleteSnapshots $SNAPSHOT_ID VSS_OBJECT_SNAPSHOT", "DeleteSnapshots", []any{snap, vss.ObjectSnapshot, false}, false},
		{"ExposeSnapshot $SNAPSHOT_ID \"\" VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY", "ExposeSnapshot",
			[]any{snap, "", vss.AttrExposedLocally, ""}, false},
		{"ExposeSnapshot $SNAPSHOT_ID \"\" VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY|VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY /mnt/s", "ExposeSnapshot",
			[]any{snap, "", vss.AttrExposedLocally | vss.AttrExposedRemotely, "/mnt/s"}, false},
		{"IsVolumeSupported GUID_NULL /srv", "IsVolumeSupported", []any{uuid.Nil, "/srv"}, false},
	}
	for _, tc := range tests {
		l, name, err := parseLine(tc.line, v, asyncs)
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if name != tc.method || l.m.name != tc.method || l.noWait != tc.noWait {
			t.Errorf("%q: method %q/%q noWait %v", tc.line, name, l.m.name, l.noWait)
		}
		if !reflect.DeepEqual(l.args, tc.args) {
			t.Errorf("%q: args %#v, want %#v", tc.line, l.args, tc.args)
		}
	}
	if l, _, err := parseLine("   # only a comment", v, asyncs); l != nil || err != nil {
		t.Errorf("comment line: %v %v", l, err)
	}
}

// TestParseLineErrors lists every way a line can be wrong; each must be
// E_INVALIDARG with a message that says what was wrong.
func TestParseLineErrors(t *testing.T) {
	v := vars{"SNAPSHOT_ID": uuid.NewString(), "ASYNC": "1"}
	asyncs := map[uint64]*client.Async{1: {}}
	tests := []struct{ line, want string }{
		{"Frobnicate", `unknown method "Frobnicate"`},
		{"initializeForBackup", `unknown method "initializeForBackup"`},
		{`"InitializeForBackup"`, "unknown method"},
		{"Release", `unknown method "Release"`},
		{"SetContext", "SetContext takes 1 argument(s), got 0"},
		{"StartSnapshotSet now", "StartSnapshotSet takes no arguments, got 1"},
		{"SetBackupState false false", "takes 3 to 4 arguments, got 2"},
		{"SetBackupState false false VSS_BT_FULL false extra", "takes 3 to 4 arguments, got 5"},
		{"EnableWriterClasses", "needs at least 1 argument"},
		{"SetContext VSS_CTX_NOPE", `unknown context "VSS_CTX_NOPE"`},
		{"SetContext vss_ctx_backup", `unknown context "vss_ctx_backup"`},
		{"SetBackupState false false VSS_BT_WEEKLY", `unknown backup type "VSS_BT_WEEKLY"`},
		{"SetBackupState yes false VSS_BT_FULL", `"yes" is not true or false`},
		{"SetBackupState false False VSS_BT_FULL", `"False" is not true or false`},
		{"AddComponent GUID_NULL GUID_NULL VSS_CT_TABLE a b", `unknown component type "VSS_CT_TABLE"`},
		{"Query GUID_NULL VSS_OBJECT_THING", `unknown object type "VSS_OBJECT_THING"`},
		{"ExposeSnapshot $SNAPSHOT_ID x VSS_VOLSNAP_ATTR_SHINY", `unknown attribute "VSS_VOLSNAP_ATTR_SHINY"`},
		{"ExposeSnapshot $SNAPSHOT_ID x VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY||1", "empty attribute flag"},
		{"GetSnapshotProperties 1234", `"1234" is not a GUID`},
		{`GetSnapshotProperties ""`, `"" is not a GUID`},
		{"GetSnapshotProperties {not-a-guid}", "is not a GUID"},
		{"EnableWriterClasses GUID_NULL oops", "argument 2 (writerId)"},
		{"SetContext x", "argument 1 (context)"},
		{"GetWriterStatus -1", `"-1" is not an index`},
		{"GetWriterMetadata first", `"first" is not an index`},
		{"Wait $ASYNC soon", `"soon" is not a timeout`},
		{"Wait $ASYNC -5", `"-5" is not a timeout`},
		{"Wait 7", "no async operation 7"},
		{"Cancel x", `"x" is not an async handle`},
		{"GetSnapshotProperties $SNAPSHOT_SET_ID", "undefined variable $SNAPSHOT_SET_ID"},
		{"GetSnapshotProperties $", "bad variable name $"},
		{"GetSnapshotProperties $SNAP-ID", "bad variable name $SNAP-ID"},
		{"StartSnapshotSet &", "StartSnapshotSet is not asynchronous"},
		{"&", "no method before &"},
		{`SetBackupOptions a "unterminated`, "unterminated quote"},
		{`SetBackupOptions a "x"y`, "no blank after the closing quote"},
		{`SetBackupOptions a b"c`, "quote inside the word"},
		{"InitializeForBackup @/nonexistent/bcd.xml", "argument @/nonexistent/bcd.xml"},
	}
	for _, tc := range tests {
		l, _, err := parseLine(tc.line, v, asyncs)
		if err == nil {
			t.Errorf("%q: parsed as %v, want an error", tc.line, l.m.name)
			continue
		}
		if !errors.Is(err, vsserr.InvalidArg) {
			t.Errorf("%q: %v is not E_INVALIDARG", tc.line, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %q does not say %q", tc.line, err, tc.want)
		}
	}
}

func TestMethodTableComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range methods {
		if seen[m.name] {
			t.Errorf("%s twice", m.name)
		}
		seen[m.name] = true
		switch m.name {
		case "Wait", "QueryStatus", "Cancel":
			continue
		}
		if m.async != (m.start != nil) || m.async == (m.run != nil) {
			t.Errorf("%s: async %v but start %v run %v", m.name, m.async, m.start != nil, m.run != nil)
		}
	}
}

// TestMethodsDocumented keeps docs/cli.md in step with the method table.
func TestMethodsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, m := range methods {
		if !strings.Contains(doc, "### "+m.name+"\n") {
			t.Errorf("docs/cli.md has no section \"### %s\"", m.name)
		}
		if !strings.Contains(doc, "`"+m.usage()+"`") {
			t.Errorf("docs/cli.md does not show the usage `%s`", m.usage())
		}
	}
}
