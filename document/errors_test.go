package document

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/lvss/lvss/vsserr"
)

// A minimal valid WMD, one element per line, so positions are predictable.
const okWMD = `<WRITER_METADATA xmlns="x-schema:#VssWriterMetadataInfo" version="1.2">
<IDENTIFICATION writerId="a65faa63-5ea8-4ebc-9dbd-a0c4db26912a" instanceId="3c7e1f52-9a0d-4b6e-8f21-5d4c2b1a0e97" friendlyName="W" usage="USER_DATA" dataSource="OTHER"/>
<RESTORE_METHOD method="CUSTOM" writerRestore="never"/>
<BACKUP_LOCATIONS>
<FILE_GROUP componentName="c">
<FILE_LIST path="/data" filespec="*"/>
</FILE_GROUP>
</BACKUP_LOCATIONS>
</WRITER_METADATA>`

const okBCD = `<BACKUP_COMPONENTS xmlns="x-schema:#VssComponentMetadata" version="1.2" backupType="full">
<WRITER_COMPONENTS instanceId="3c7e1f52-9a0d-4b6e-8f21-5d4c2b1a0e97" writerId="a65faa63-5ea8-4ebc-9dbd-a0c4db26912a">
<COMPONENT componentName="c" componentType="filegroup">
<FAILURE hr="0x80042301"/>
</COMPONENT>
</WRITER_COMPONENTS>
</BACKUP_COMPONENTS>`

// edit applies old→new replacements to a base document.
func edit(base string, pairs ...string) string {
	return strings.NewReplacer(pairs...).Replace(base)
}

func TestBaseDocumentsParse(t *testing.T) {
	if _, err := ParseWriterMetadata([]byte(okWMD)); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseBackupComponents([]byte(okBCD)); err != nil {
		t.Fatal(err)
	}
}

var posRE = regexp.MustCompile(`line \d+, column \d+`)

func TestParseErrors(t *testing.T) {
	const (
		corrupt = vsserr.CorruptXMLDocument
		invalid = vsserr.InvalidXMLDocument
	)
	tests := []struct {
		name string
		bcd  bool // parse as BCD instead of WMD
		in   string
		code vsserr.HRESULT
		want string // substring of the message; "" skips the position check too
	}{
		// Not well-formed.
		{"empty", false, "", corrupt, "no root element"},
		{"only whitespace", false, " \n\t", corrupt, "no root element"},
		{"truncated", false, okWMD[:200], corrupt, "line 2"},
		{"unclosed root", false, strings.TrimSuffix(okWMD, "</WRITER_METADATA>"), corrupt, "unexpected EOF"},
		{"mismatched end tag", false, edit(okWMD, "</FILE_GROUP>", "</FILE_GROP>"), corrupt, "line 7"},
		{"invalid UTF-8", false, edit(okWMD, `friendlyName="W"`, "friendlyName=\"\xff\""), corrupt, "invalid UTF-8"},
		{"control character", false, edit(okWMD, `friendlyName="W"`, "friendlyName=\"\x01\""), corrupt, "illegal character"},
		{"two roots", false, okWMD + "\n" + okWMD, corrupt, "line 10, column 1: second root element"},
		{"text after root", false, okWMD + "\ntrailing", corrupt, "text outside the root element"},
		{"text before root", false, "x" + okWMD, corrupt, "line 1, column 1: text outside the root element"},
		{"duplicate attribute", false, edit(okWMD, `componentName="c"`, `componentName="c" componentName="d"`), corrupt,
			"line 5, column 1: <FILE_GROUP>: attribute componentName appears twice"},
		{"unknown entity", false, edit(okWMD, `friendlyName="W"`, `friendlyName="&bogus;"`), corrupt, "invalid character entity"},
		{"unsupported encoding", false, `<?xml version="1.0" encoding="ISO-8859-1"?>` + okWMD, corrupt, "ISO-8859-1"},
		{"xml 1.1", false, `<?xml version="1.1"?>` + okWMD, corrupt, "unsupported version"},
		{"unquoted attribute", false, edit(okWMD, `componentName="c"`, `componentName=c`), corrupt, "line 5"},
		{"odd UTF-16", false, "\xff\xfe<\x00W", corrupt, "odd number of bytes"},
		{"unpaired surrogate", false, "\xff\xfe\x00\xd8<\x00", corrupt, "surrogate"},
		// Invalid and not well-formed: not well-formed wins (D8).
		{"invalid then corrupt", false, edit(okWMD, `usage="USER_DATA"`, `usage="bogus"`, "</BACKUP_LOCATIONS>", ""), corrupt, "line 9, column 19: element <BACKUP_LOCATIONS> closed by </WRITER_METADATA>"},

		// Well-formed but not a valid document.
		{"wrong root", false, okBCD, invalid, "line 1, column 1: <BACKUP_COMPONENTS>: root element is <BACKUP_COMPONENTS>, want <WRITER_METADATA>"},
		{"wrong root bcd", true, okWMD, invalid, "want <BACKUP_COMPONENTS>"},
		{"wrong namespace", false, edit(okWMD, "#VssWriterMetadataInfo", "#Other"), invalid, `line 1, column 1: <WRITER_METADATA>: namespace is "x-schema:#Other"`},
		{"no namespace", false, edit(okWMD, ` xmlns="x-schema:#VssWriterMetadataInfo"`, ""), invalid, `namespace is ""`},
		{"missing version", false, edit(okWMD, ` version="1.2"`, ""), invalid, "missing attribute version"},
		{"bad version", false, edit(okWMD, `version="1.2"`, `version="2.0"`), invalid, "not a 1.x document version"},
		{"missing identification", false, edit(okWMD, "<IDENTIFICATION ", "<X "), invalid, "missing IDENTIFICATION"},
		{"second identification", false, edit(okWMD, "<RESTORE_METHOD", `<IDENTIFICATION writerId="a65faa63-5ea8-4ebc-9dbd-a0c4db26912a" instanceId="3c7e1f52-9a0d-4b6e-8f21-5d4c2b1a0e97" friendlyName="W" usage="USER_DATA" dataSource="OTHER"/><RESTORE_METHOD`), invalid, "second IDENTIFICATION"},
		{"missing writerId", false, edit(okWMD, `writerId="a65faa63-5ea8-4ebc-9dbd-a0c4db26912a" `, ""), invalid, "line 2, column 1: <IDENTIFICATION>: missing attribute writerId"},
		{"bad GUID", false, edit(okWMD, `writerId="a65faa63-5ea8-4ebc-9dbd-a0c4db26912a"`, `writerId="a65faa63"`), invalid, `attribute writerId="a65faa63": not a GUID`},
		{"urn GUID", false, edit(okWMD, `writerId="a65faa63-5ea8-4ebc-9dbd-a0c4db26912a"`, `writerId="urn:uuid:a65faa63-5ea8-4ebc-9dbd-a0c4db26912a"`), invalid, "not a GUID"},
		{"bad usage", false, edit(okWMD, `usage="USER_DATA"`, `usage="USERDATA"`), invalid, `attribute usage="USERDATA": want one of`},
		{"C enum name", false, edit(okWMD, `dataSource="OTHER"`, `dataSource="VSS_ST_OTHER"`), invalid, "dataSource"},
		{"bad yes/no", false, edit(okWMD, `recursive`, `x`, `filespec="*"`, `filespec="*" recursive="true"`), invalid, `line 6, column 1: <FILE_LIST>: attribute recursive="true": want yes or no`},
		{"negative number", false, edit(okWMD, `componentName="c"`, `componentName="c" componentFlags="-1"`), invalid, "componentFlags"},
		{"hex mask", false, edit(okWMD, `filespec="*"`, `filespec="*" filespecBackupType="0xF0F"`), invalid, "filespecBackupType"},
		{"mask overflow", false, edit(okWMD, `version="1.2"`, `version="1.2" backupSchema="4294967296"`), invalid, "backupSchema"},
		{"missing restore method", false, edit(okWMD, `<RESTORE_METHOD method="CUSTOM" writerRestore="never"/>`, ""), invalid, "line 1, column 1: <WRITER_METADATA>: missing RESTORE_METHOD"},
		{"second restore method", false, edit(okWMD, "<BACKUP_LOCATIONS>", `<RESTORE_METHOD method="CUSTOM" writerRestore="never"/><BACKUP_LOCATIONS>`), invalid, "second RESTORE_METHOD"},
		{"missing writerRestore", false, edit(okWMD, ` writerRestore="never"`, ""), invalid, "missing attribute writerRestore"},
		{"service required", false, edit(okWMD, `method="CUSTOM"`, `method="STOP_RESTORE_START"`), invalid, "needs a service"},
		{"file list in wrong place", false, edit(okWMD, "<BACKUP_LOCATIONS>", `<BACKUP_LOCATIONS><FILE_LIST path="/x" filespec="*"/>`), invalid, "line 4, column 19: <FILE_LIST>: not allowed inside <BACKUP_LOCATIONS>"},
		{"component at top level", false, edit(okWMD, "<BACKUP_LOCATIONS>", `<FILE_GROUP componentName="x"/><BACKUP_LOCATIONS>`), invalid, "not allowed inside <WRITER_METADATA>"},
		{"nested component", false, edit(okWMD, `<FILE_LIST path="/data" filespec="*"/>`, `<FILE_GROUP componentName="x"/>`), invalid, "<FILE_GROUP>: not allowed inside <FILE_GROUP>"},
		{"child of a leaf", false, edit(okWMD, `<FILE_LIST path="/data" filespec="*"/>`, `<FILE_LIST path="/data" filespec="*"><DEPENDENCY/></FILE_LIST>`), invalid, "not allowed inside <FILE_LIST>"},
		{"empty component name", false, edit(okWMD, `componentName="c"`, `componentName=""`), invalid, "componentName is empty"},
		{"missing component name", false, edit(okWMD, ` componentName="c"`, ""), invalid, "missing attribute componentName"},
		{"backslash in name", false, edit(okWMD, `componentName="c"`, `componentName="a\b"`), invalid, `line 5, column 1: <FILE_GROUP>: componentName "a\\b" contains a backslash`},
		{"duplicate component", false, edit(okWMD, "</BACKUP_LOCATIONS>", `<DATABASE componentName="c"/></BACKUP_LOCATIONS>`), invalid, `line 8, column 1: <DATABASE>: duplicate component (logicalPath "", componentName "c")`},
		{"database with file list", false, edit(okWMD, "FILE_GROUP", "DATABASE"), invalid, "line 6, column 1: <FILE_LIST>: not allowed inside <DATABASE>"},
		{"file group with database files", false, edit(okWMD, "FILE_LIST", "DATABASE_FILES"), invalid, "<DATABASE_FILES>: not allowed inside <FILE_GROUP>"},
		{"recursive database files", false, edit(okWMD, "FILE_GROUP", "DATABASE", "FILE_LIST", "DATABASE_FILES", `filespec="*"`, `filespec="*" recursive="yes"`), invalid, "cannot be recursive"},
		{"slash in filespec", false, edit(okWMD, `filespec="*"`, `filespec="a/b"`), invalid, `line 6, column 1: <FILE_LIST>: filespec "a/b" contains a directory separator`},
		{"backslash in filespec", false, edit(okWMD, `filespec="*"`, `filespec="a\b"`), invalid, "directory separator"},
		{"wildcard in path", false, edit(okWMD, `path="/data"`, `path="/da*"`), invalid, "wildcard"},
		{"empty path", false, edit(okWMD, `path="/data"`, `path=""`), invalid, "path is empty"},
		{"missing filespec", false, edit(okWMD, ` filespec="*"`, ""), invalid, "missing attribute filespec"},
		{"mapping without destination", false, edit(okWMD, `<RESTORE_METHOD method="CUSTOM" writerRestore="never"/>`, `<RESTORE_METHOD method="CUSTOM" writerRestore="never"><ALTERNATE_LOCATION_MAPPING path="/a" filespec="*"/></RESTORE_METHOD>`), invalid, "missing attribute destination"},
		{"dependency bad writer", false, edit(okWMD, `<FILE_LIST path="/data" filespec="*"/>`, `<DEPENDENCY onWriterId="x" onComponentName="d"/>`), invalid, "onWriterId"},

		// BCD.
		{"bcd missing componentType", true, edit(okBCD, ` componentType="filegroup"`, ""), invalid, "line 3, column 1: <COMPONENT>: missing attribute componentType"},
		{"bcd C spelling", true, edit(okBCD, `componentType="filegroup"`, `componentType="FILEGROUP"`), invalid, `componentType="FILEGROUP": want one of database, filegroup`},
		{"bcd bad backupType", true, edit(okBCD, `backupType="full"`, `backupType="Full"`), invalid, "backupType"},
		{"bcd bad restoreTarget", true, edit(okBCD, `componentType="filegroup"`, `componentType="filegroup" restoreTarget="ORIGINAL"`), invalid, "restoreTarget"},
		{"bcd duplicate component", true, edit(okBCD, "</WRITER_COMPONENTS>", `<COMPONENT componentName="c" componentType="database"/></WRITER_COMPONENTS>`), invalid, "line 6, column 1: <COMPONENT>: duplicate component"},
		{"bcd duplicate writer instance", true, edit(okBCD, "</BACKUP_COMPONENTS>", `<WRITER_COMPONENTS instanceId="3c7e1f52-9a0d-4b6e-8f21-5d4c2b1a0e97" writerId="a65faa63-5ea8-4ebc-9dbd-a0c4db26912a"/></BACKUP_COMPONENTS>`), invalid, "duplicate WRITER_COMPONENTS"},
		{"bcd missing instanceId", true, edit(okBCD, `instanceId="3c7e1f52-9a0d-4b6e-8f21-5d4c2b1a0e97" `, ""), invalid, "line 2, column 1: <WRITER_COMPONENTS>: missing attribute instanceId"},
		{"bcd component at top", true, edit(okBCD, "</BACKUP_COMPONENTS>", `<COMPONENT componentName="x" componentType="database"/></BACKUP_COMPONENTS>`), invalid, "not allowed inside <BACKUP_COMPONENTS>"},
		{"bcd second backup metadata", true, edit(okBCD, `<FAILURE hr="0x80042301"/>`, `<BACKUP_METADATA metadata="a"/><BACKUP_METADATA metadata="b"/>`), invalid, "second BACKUP_METADATA"},
		{"bcd metadata without value", true, edit(okBCD, `<FAILURE hr="0x80042301"/>`, `<BACKUP_METADATA/>`), invalid, "missing attribute metadata"},
		{"bcd bad hr", true, edit(okBCD, `hr="0x80042301"`, `hr="0x1FFFFFFFF"`), invalid, "line 4, column 1: <FAILURE>: attribute hr"},
		{"bcd missing hr", true, edit(okBCD, ` hr="0x80042301"`, ""), invalid, "missing attribute hr"},
		{"bcd bad filetime", true, edit(okBCD, `<FAILURE hr="0x80042301"/>`, `<DIFFERENCED_FILE path="/a" filespec="*" lastModifyTime="2025-01-01"/>`), invalid, "lastModifyTime"},
		{"bcd snapshot set mismatch", true, edit(okBCD, `backupType="full"`, `backupType="full" snapshotSetId="4ad2e8b1-6c3f-4e1a-9b7d-2f5e8c0a1d34"`, "</BACKUP_COMPONENTS>", `<SNAPSHOT_SET snapshotSetId="0e5a7c31-8b2d-4f6e-9a1c-3d5b7f9e1a20"/></BACKUP_COMPONENTS>`), invalid, "differs from the document's snapshotSetId"},
		{"bcd second snapshot set", true, edit(okBCD, "</BACKUP_COMPONENTS>", `<SNAPSHOT_SET snapshotSetId="0e5a7c31-8b2d-4f6e-9a1c-3d5b7f9e1a20"/><SNAPSHOT_SET snapshotSetId="0e5a7c31-8b2d-4f6e-9a1c-3d5b7f9e1a20"/></BACKUP_COMPONENTS>`), invalid, "second SNAPSHOT_SET"},
		{"bcd duplicate snapshot", true, edit(okBCD, "</BACKUP_COMPONENTS>", `<SNAPSHOT_SET snapshotSetId="0e5a7c31-8b2d-4f6e-9a1c-3d5b7f9e1a20"><SNAPSHOT snapshotId="2b4d6f81-0a3c-4e5f-8b9d-1c3e5a7b9d0f"/><SNAPSHOT snapshotId="2b4d6f81-0a3c-4e5f-8b9d-1c3e5a7b9d0f"/></SNAPSHOT_SET></BACKUP_COMPONENTS>`), invalid, "duplicate snapshot"},
		{"bcd context out of range", true, edit(okBCD, "</BACKUP_COMPONENTS>", `<SNAPSHOT_SET snapshotSetId="0e5a7c31-8b2d-4f6e-9a1c-3d5b7f9e1a20" context="4294967295"/></BACKUP_COMPONENTS>`), invalid, "context"},
		{"bcd new target mask ignored but bad filespec", true, edit(okBCD, `<FAILURE hr="0x80042301"/>`, `<NEW_TARGET path="/a" filespec="x/y"/>`), invalid, "directory separator"},
		{"bcd restore subcomponent name", true, edit(okBCD, `<FAILURE hr="0x80042301"/>`, `<RESTORE_SUBCOMPONENT componentName="a\b"/>`), invalid, "backslash"},
		{"bcd directed target", true, edit(okBCD, `<FAILURE hr="0x80042301"/>`, `<DIRECTED_TARGET sourcePath="/a" sourceFilename="f" destinationPath="/b"/>`), invalid, "missing attribute destinationFilename"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.bcd {
				var b *BackupComponents
				b, err = ParseBackupComponents([]byte(tc.in))
				if err == nil {
					t.Fatalf("parsed: %+v", b)
				}
			} else {
				var w *WriterMetadata
				w, err = ParseWriterMetadata([]byte(tc.in))
				if err == nil {
					t.Fatalf("parsed: %+v", w)
				}
			}
			if !errors.Is(err, tc.code) {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("message %q does not contain %q", err.Error(), tc.want)
			}
			if !posRE.MatchString(err.Error()) && !strings.Contains(err.Error(), "byte offset") &&
				!strings.Contains(err.Error(), "odd number") {
				t.Errorf("message %q gives no position", err.Error())
			}
		})
	}
}

// Extensions are skipped: unknown elements (anywhere, with their content)
// and unknown attributes, in the document namespace or another.
func TestUnknownContentIsDropped(t *testing.T) {
	in := edit(okWMD,
		`friendlyName="W"`, `friendlyName="W" icon="AAAA" xmlns:v="urn:v" v:extra="1"`,
		"<BACKUP_LOCATIONS>", `<INCLUDE_FILES path="/a" filespec="*"/><v:IDENTIFICATION/><BACKUP_LOCATIONS>`,
		`<FILE_LIST path="/data" filespec="*"/>`, `<FILE_LIST path="/data" filespec="*"><FUTURE><FILE_LIST/></FUTURE></FILE_LIST>text<!-- c --><?pi x?>`)
	got, err := ParseWriterMetadata([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want, err := ParseWriterMetadata([]byte(okWMD))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := got.Marshal()
	b, _ := want.Marshal()
	if string(a) != string(b) {
		t.Errorf("unknown content changed the result:\n%s\n%s", a, b)
	}
}
