package document

import (
	"slices"

	"github.com/lvss/lvss/vss"
)

// spelling maps an enum to the words it has in XML. Windows does not write
// the C enum names (VSS_UT_USERDATA is written USER_DATA), so each document
// attribute carries its own table; the full list, with which words were
// observed in Windows documents and which are lvss's choice, is in
// docs/documents.md. One word per value: a value without a word cannot be
// written, which is how Validate refuses it.
type spelling[T comparable] struct {
	toXML   map[T]string
	fromXML map[string]T
}

func newSpelling[T comparable](pairs ...any) spelling[T] {
	s := spelling[T]{toXML: map[T]string{}, fromXML: map[string]T{}}
	for i := 0; i+1 < len(pairs); i += 2 {
		v, w := pairs[i].(T), pairs[i+1].(string)
		s.toXML[v] = w
		s.fromXML[w] = v
	}
	return s
}

func (s spelling[T]) word(v T) (string, bool)  { w, ok := s.toXML[v]; return w, ok }
func (s spelling[T]) value(w string) (T, bool) { v, ok := s.fromXML[w]; return v, ok }

// words lists the accepted words, for error messages.
func (s spelling[T]) words() []string {
	out := make([]string, 0, len(s.fromXML))
	for w := range s.fromXML {
		out = append(out, w)
	}
	slices.Sort(out)
	return out
}

// WMD vocabulary: upper-case words for usage, dataSource and method (as
// observed), lower-case for writerRestore (as observed).
var (
	usageWords = newSpelling[vss.UsageType](
		vss.UsageBootableSystemState, "BOOTABLE_SYSTEM_STATE", // observed
		vss.UsageSystemService, "SYSTEM_SERVICE", // observed
		vss.UsageUserData, "USER_DATA", // observed
		vss.UsageOther, "OTHER", // lvss, by analogy with dataSource
	)
	sourceWords = newSpelling[vss.SourceType](
		vss.SourceTransactedDB, "TRANSACTION_DB", // observed
		vss.SourceNonTransactedDB, "NONTRANSACTION_DB", // lvss
		vss.SourceOther, "OTHER", // observed
	)
	methodWords = newSpelling[vss.RestoreMethod](
		vss.RMERestoreIfNotThere, "RESTORE_IF_NOT_THERE", // lvss
		vss.RMERestoreIfCanReplace, "RESTORE_IF_CAN_BE_REPLACED", // observed
		vss.RMEStopRestoreStart, "STOP_RESTORE_START", // lvss
		vss.RMERestoreToAlternateLocation, "RESTORE_TO_ALTERNATE_LOCATION", // lvss
		vss.RMERestoreAtReboot, "REPLACE_AT_REBOOT", // observed
		vss.RMERestoreAtRebootIfCannotReplace, "REPLACE_AT_REBOOT_IF_CANNOT_REPLACE", // observed
		vss.RMECustom, "CUSTOM", // lvss
		vss.RMERestoreStopStart, "RESTORE_STOP_START", // lvss
	)
	writerRestoreWords = newSpelling[vss.WriterRestore](
		vss.WRENever, "never", // observed
		vss.WREIfReplaceFails, "ifReplaceFails", // lvss
		vss.WREAlways, "always", // observed
	)
)

// BCD vocabulary: lower-case words as observed for componentType and
// backupType; multi-word values in lowerCamel like the attribute names.
var (
	componentTypeWords = newSpelling[vss.ComponentType](
		vss.ComponentDatabase, "database", // spec, by analogy
		vss.ComponentFileGroup, "filegroup", // observed
	)
	backupTypeWords = newSpelling[vss.BackupType](
		vss.BackupUndefined, "undefined",
		vss.BackupFull, "full", // observed
		vss.BackupIncremental, "incremental",
		vss.BackupDifferential, "differential",
		vss.BackupLog, "log",
		vss.BackupCopy, "copy",
		vss.BackupOther, "other",
	)
	restoreTypeWords = newSpelling[vss.RestoreType](
		vss.RestoreUndefined, "undefined",
		vss.RestoreByCopy, "byCopy",
		vss.RestoreImport, "import",
		vss.RestoreOther, "other",
	)
	restoreTargetWords = newSpelling[vss.RestoreTarget](
		vss.RTUndefined, "undefined",
		vss.RTOriginal, "original",
		vss.RTAlternate, "alternate",
		vss.RTDirected, "directed",
		vss.RTOriginalLocation, "originalLocation",
	)
	fileRestoreStatusWords = newSpelling[vss.FileRestoreStatus](
		vss.RSUndefined, "undefined",
		vss.RSNone, "none",
		vss.RSAll, "all",
		vss.RSFailed, "failed",
	)
	rollForwardWords = newSpelling[vss.RollForwardType](
		vss.RFUndefined, "undefined",
		vss.RFNone, "none",
		vss.RFAll, "all",
		vss.RFPartial, "partial",
	)
)
