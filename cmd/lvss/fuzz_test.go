package main

import (
	"testing"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vsserr"
)

// FuzzCallLine: any line typed into lvss call is run, skipped, or refused
// with E_INVALIDARG naming the problem — never a panic, and never another
// code: a line is only ever the caller's mistake before it reaches lvssd.
func FuzzCallLine(f *testing.F) {
	for _, s := range []string{
		"InitializeForBackup",
		"SetBackupState true false VSS_BT_FULL false",
		"AddToSnapshotSet /srv GUID_NULL",
		"AddComponent $INSTANCE_ID_1 $WRITER_ID_1 VSS_CT_FILEGROUP \"\" data",
		"Wait $ASYNC",
		"GatherWriterMetadata &",
		"# a comment",
		"SetRestoreOptions $WRITER_ID_1 VSS_CT_FILEGROUP \"\" data \"recovery_target_time=2026-12-06 13:56:59+00\"",
		"\"unterminated",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		v := vars{"INSTANCE_ID_1": "b5946137-7b9f-4925-af80-51abd60b20d5", "WRITER_ID_1": "a3f3f6e8-4f6b-4d5a-9a8e-1c2b3d4e5f60"}
		_, _, err := parseLine(text, v, map[uint64]*client.Async{})
		if err != nil && vsserr.Code(err) != vsserr.InvalidArg {
			t.Fatalf("%q refused with %s: %v", text, vsserr.Code(err), err)
		}
	})
}
