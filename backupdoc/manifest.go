package backupdoc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// Format is the manifest's format name: what tells an lvss backup archive
// from any other tar file holding a manifest.json.
const Format = "lvss-backup-archive"

// Version is the manifest version this package writes, and the only one it
// reads. docs/backup-archive.md says when it changes.
const Version = 1

// Stage says which of the two moments of a backup an archive was written
// at. `lvss backup` writes the archive twice, and a restore must know
// whether the backup got as far as BackupComplete.
type Stage string

const (
	// StageSnapshot: written once the snapshot set existed and the
	// writers' status was gathered, before the backup command ran and
	// before BackupComplete. The data copy may be missing or partial.
	StageSnapshot Stage = "snapshot"
	// StageBackupComplete: written after BackupComplete was sent, with the
	// backup command's exit status. It does not mean the backup succeeded:
	// the exit status and the components' backupSucceeded say that.
	StageBackupComplete Stage = "backup_complete"
)

func (s Stage) known() bool { return s == StageSnapshot || s == StageBackupComplete }

// Manifest is manifest.json: what a backup did, beside the documents it
// kept. Enumerations and codes are Go values here; the JSON spells each as
// its name and its number (docs/backup-archive.md lists every field).
type Manifest struct {
	// Format and Version identify the layout. Write fills them in when
	// they are empty and refuses any other values than Format and Version.
	Format  string
	Version int
	Stage   Stage

	LvssVersion string // the lvss that ran the backup
	Host        string // the machine backed up
	// Time is when this archive was written. Write keeps it to the
	// second, in UTC: it is also the modification time of every file in
	// the tar, whose headers hold whole seconds.
	Time time.Time

	SnapshotSetID uuid.UUID
	Context       vss.Context
	BackupType    vss.BackupType

	// Command is the backup command (argv) that copied the data from the
	// snapshots; nil when there was none.
	Command []string
	// ExitStatus is the command's exit status, 128+N when signal N ended
	// it, as a shell reports it; nil when it has not ended yet (stage
	// snapshot) or there was no command.
	ExitStatus *int
	// FreezeHeld is how long lvssd held the filesystems frozen around the
	// provider commits (its event log entry "filesystems held frozen");
	// 0 when not known, or when no provider needed a freeze.
	FreezeHeld time.Duration
	// WritersFrozen is how long the writers taking part were held frozen,
	// from the first Freeze lvssd sent to the last Thaw answered (its
	// event log entry "writers held frozen"); 0 when not known, or when no
	// writer was frozen.
	WritersFrozen time.Duration

	Snapshots []Snapshot
	Writers   []Writer
}

// Snapshot is one snapshot of the set, as GetSnapshotProperties reports it.
type Snapshot struct {
	SnapshotID     uuid.UUID
	OriginalVolume string // the path that was snapshotted
	DevicePath     string // where the snapshot's content was readable
	ProviderName   string
	ProviderID     uuid.UUID
	Created        time.Time // zero when not known
	// Consistency is "application", "crash" or "none", with the reason
	// (docs/decisions.md L16).
	Consistency       string
	ConsistencyReason string
}

// Writer is one writer that took part, in its final state
// (GetWriterStatusEx after the last step the archive records).
type Writer struct {
	InstanceID         uuid.UUID
	WriterID           uuid.UUID
	Name               string
	InstanceName       string
	State              vss.WriterState
	Failure            vsserr.HRESULT
	ApplicationHRESULT vsserr.HRESULT
	ApplicationMessage string
}

// The JSON form. It is kept apart from the Go types so that the field names
// are the documented ones whatever the Go fields are called, and so that
// enumerations can be written as name and number: names for people and jq,
// numbers because they are what the values are (a reader takes the
// number; a name from a newer lvss need not be one this one knows).
type manifestJSON struct {
	Format          string         `json:"format"`
	Version         int            `json:"version"`
	Stage           Stage          `json:"stage"`
	LvssVersion     string         `json:"lvss_version"`
	Host            string         `json:"host"`
	Time            string         `json:"time"`
	SnapshotSetID   string         `json:"snapshot_set_id"`
	Context         string         `json:"context"`
	ContextValue    int32          `json:"context_value"`
	BackupType      string         `json:"backup_type"`
	BackupTypeValue int32          `json:"backup_type_value"`
	Command         []string       `json:"command"`
	ExitStatus      *int           `json:"exit_status"`
	FreezeHeldMS    *float64       `json:"freeze_held_ms"`
	WritersFrozenMS *float64       `json:"writers_frozen_ms"`
	Snapshots       []snapshotJSON `json:"snapshots"`
	Writers         []writerJSON   `json:"writers"`
}

type snapshotJSON struct {
	SnapshotID        string `json:"snapshot_id"`
	OriginalVolume    string `json:"original_volume"`
	DevicePath        string `json:"device_path"`
	Provider          string `json:"provider"`
	ProviderID        string `json:"provider_id"`
	Created           string `json:"created"`
	Consistency       string `json:"consistency"`
	ConsistencyReason string `json:"consistency_reason"`
}

type writerJSON struct {
	InstanceID         string `json:"instance_id"`
	WriterID           string `json:"writer_id"`
	Name               string `json:"name"`
	InstanceName       string `json:"instance_name"`
	State              string `json:"state"`
	StateValue         int32  `json:"state_value"`
	Failure            string `json:"failure"`
	FailureHRESULT     string `json:"failure_hresult"`
	Application        string `json:"application"`
	ApplicationHRESULT string `json:"application_hresult"`
	ApplicationMessage string `json:"application_message"`
}

// MarshalJSON writes the manifest as manifest.json holds it. Lists are
// always lists ([] when empty) and unknown values null, so that every
// field is always present.
func (m Manifest) MarshalJSON() ([]byte, error) {
	j := manifestJSON{
		Format: m.Format, Version: m.Version, Stage: m.Stage,
		LvssVersion: m.LvssVersion, Host: m.Host, Time: timeText(m.Time),
		SnapshotSetID: m.SnapshotSetID.String(),
		Context:       m.Context.String(), ContextValue: int32(m.Context),
		BackupType: m.BackupType.String(), BackupTypeValue: int32(m.BackupType),
		Command: m.Command, ExitStatus: m.ExitStatus,
		Snapshots: make([]snapshotJSON, 0, len(m.Snapshots)),
		Writers:   make([]writerJSON, 0, len(m.Writers)),
	}
	if j.Command == nil {
		j.Command = []string{}
	}
	j.FreezeHeldMS = millis(m.FreezeHeld)
	j.WritersFrozenMS = millis(m.WritersFrozen)
	for _, s := range m.Snapshots {
		j.Snapshots = append(j.Snapshots, snapshotJSON{
			SnapshotID: s.SnapshotID.String(), OriginalVolume: s.OriginalVolume, DevicePath: s.DevicePath,
			Provider: s.ProviderName, ProviderID: s.ProviderID.String(), Created: timeText(s.Created),
			Consistency: s.Consistency, ConsistencyReason: s.ConsistencyReason,
		})
	}
	for _, w := range m.Writers {
		j.Writers = append(j.Writers, writerJSON{
			InstanceID: w.InstanceID.String(), WriterID: w.WriterID.String(), Name: w.Name, InstanceName: w.InstanceName,
			State: w.State.String(), StateValue: int32(w.State),
			Failure: w.Failure.Name(), FailureHRESULT: w.Failure.Hex(),
			Application: w.ApplicationHRESULT.Name(), ApplicationHRESULT: w.ApplicationHRESULT.Hex(),
			ApplicationMessage: w.ApplicationMessage,
		})
	}
	return plainJSON(j)
}

// plainJSON is v as JSON without HTML escaping (paths and reasons should
// read as written) and without the encoder's trailing newline.
func plainJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON reads manifest.json. It checks the syntax of every value
// it converts (GUIDs, times, HRESULTs) and nothing else: whether the
// manifest is one this package can use is Read's question (check).
// Fields it does not know are ignored, which is what lets a version gain
// optional fields (docs/backup-archive.md).
func (m *Manifest) UnmarshalJSON(data []byte) error {
	var j manifestJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	out := Manifest{Format: j.Format, Version: j.Version, Stage: j.Stage, LvssVersion: j.LvssVersion, Host: j.Host,
		Context: vss.Context(j.ContextValue), BackupType: vss.BackupType(j.BackupTypeValue), ExitStatus: j.ExitStatus}
	var errs fieldErrs
	out.Time = errs.time("time", j.Time)
	out.SnapshotSetID = errs.guid("snapshot_set_id", j.SnapshotSetID)
	if len(j.Command) > 0 {
		out.Command = j.Command
	}
	out.FreezeHeld = errs.millis("freeze_held_ms", j.FreezeHeldMS)
	out.WritersFrozen = errs.millis("writers_frozen_ms", j.WritersFrozenMS)
	for i, s := range j.Snapshots {
		at := fmt.Sprintf("snapshots[%d].", i)
		out.Snapshots = append(out.Snapshots, Snapshot{
			SnapshotID: errs.guid(at+"snapshot_id", s.SnapshotID), OriginalVolume: s.OriginalVolume,
			DevicePath: s.DevicePath, ProviderName: s.Provider, ProviderID: errs.guid(at+"provider_id", s.ProviderID),
			Created: errs.time(at+"created", s.Created), Consistency: s.Consistency, ConsistencyReason: s.ConsistencyReason,
		})
	}
	for i, w := range j.Writers {
		at := fmt.Sprintf("writers[%d].", i)
		out.Writers = append(out.Writers, Writer{
			InstanceID: errs.guid(at+"instance_id", w.InstanceID), WriterID: errs.guid(at+"writer_id", w.WriterID),
			Name: w.Name, InstanceName: w.InstanceName, State: vss.WriterState(w.StateValue),
			Failure:            errs.hresult(at+"failure_hresult", w.FailureHRESULT),
			ApplicationHRESULT: errs.hresult(at+"application_hresult", w.ApplicationHRESULT),
			ApplicationMessage: w.ApplicationMessage,
		})
	}
	if err := errs.err(); err != nil {
		return err
	}
	*m = out
	return nil
}

// fieldErrs collects conversion errors so that one message names every
// bad field, not just the first.
type fieldErrs []string

func (e *fieldErrs) add(field, format string, args ...any) {
	*e = append(*e, field+": "+fmt.Sprintf(format, args...))
}

func (e *fieldErrs) err() error {
	if len(*e) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(*e, "; "))
}

// guid reads a GUID as Write writes them (lowercase, no braces). An empty
// string is the null GUID, which is what a missing field reads as.
func (e *fieldErrs) guid(field, s string) uuid.UUID {
	if s == "" {
		return uuid.Nil
	}
	u, err := uuid.Parse(s)
	if err != nil || u.String() != s {
		e.add(field, "%q is not a GUID in lowercase without braces", s)
		return uuid.Nil
	}
	return u
}

// time reads RFC 3339; "" is the zero time (not known).
func (e *fieldErrs) time(field, s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		e.add(field, "%q is not an RFC 3339 time", s)
		return time.Time{}
	}
	return t.UTC()
}

// hresult reads "0x" and eight hex digits, as vsserr.HRESULT.Hex writes
// them. An empty string is S_OK, so that a writer entry from a newer lvss
// that left a code out still reads.
func (e *fieldErrs) hresult(field, s string) vsserr.HRESULT {
	if s == "" {
		return vsserr.OK
	}
	hex, ok := strings.CutPrefix(s, "0x")
	if !ok || len(hex) != 8 {
		e.add(field, "%q is not an HRESULT (0x and eight hex digits)", s)
		return vsserr.OK
	}
	v, err := strconv.ParseUint(hex, 16, 32)
	if err != nil {
		e.add(field, "%q is not an HRESULT (0x and eight hex digits)", s)
		return vsserr.OK
	}
	return vsserr.HRESULT(v)
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// normalized is the manifest as Write records it: format and version
// filled in, the time in UTC and whole seconds (the tar headers' unit),
// and empty lists as nil so that what Read returns compares equal to it.
func (m Manifest) normalized() Manifest {
	if m.Format == "" {
		m.Format = Format
	}
	if m.Version == 0 {
		m.Version = Version
	}
	m.Time = m.Time.Truncate(time.Second).UTC()
	if len(m.Command) == 0 {
		m.Command = nil
	}
	if len(m.Snapshots) == 0 {
		m.Snapshots = nil
	}
	if len(m.Writers) == 0 {
		m.Writers = nil
	}
	m.Snapshots = slices.Clone(m.Snapshots)
	for i := range m.Snapshots {
		if !m.Snapshots[i].Created.IsZero() {
			m.Snapshots[i].Created = m.Snapshots[i].Created.Round(0).UTC()
		}
	}
	return m
}

// check says whether a manifest is one this package can use: the known
// format and version, a known stage, the fields a restore cannot do
// without, and no snapshot or writer listed twice. It is E_INVALIDARG: a
// manifest is not one of the XML documents.
func (m *Manifest) check() error {
	if err := m.checkFormat(); err != nil {
		return err
	}
	bad := manifestErr
	if !m.Stage.known() {
		return bad("stage %q is neither %q nor %q", m.Stage, StageSnapshot, StageBackupComplete)
	}
	if m.Time.IsZero() {
		return bad("time is missing")
	}
	if m.SnapshotSetID == uuid.Nil {
		return bad("snapshot_set_id is missing")
	}
	if m.ExitStatus != nil && len(m.Command) == 0 {
		return bad("exit_status %d without a command", *m.ExitStatus)
	}
	snaps := map[uuid.UUID]bool{}
	for i, s := range m.Snapshots {
		if s.SnapshotID == uuid.Nil {
			return bad("snapshots[%d]: snapshot_id is missing", i)
		}
		if snaps[s.SnapshotID] {
			return bad("snapshot %s is listed twice", s.SnapshotID)
		}
		snaps[s.SnapshotID] = true
	}
	writers := map[uuid.UUID]bool{}
	for i, w := range m.Writers {
		if w.InstanceID == uuid.Nil {
			return bad("writers[%d]: instance_id is missing", i)
		}
		if writers[w.InstanceID] {
			return bad("writer instance %s is listed twice", w.InstanceID)
		}
		writers[w.InstanceID] = true
	}
	return nil
}

// checkFormat is the first question about a manifest: is it of an archive
// this package knows how to read?
func (m *Manifest) checkFormat() error {
	if m.Format != Format {
		return manifestErr("format %q is not %q: this is not an lvss backup archive", m.Format, Format)
	}
	if m.Version != Version {
		if m.Version > Version {
			return manifestErr("version %d is newer than this lvss reads (%d): read the archive with the lvss that wrote it, or a later one",
				m.Version, Version)
		}
		return manifestErr("version %d is not one this lvss reads (%d)", m.Version, Version)
	}
	return nil
}

func manifestErr(format string, args ...any) error {
	return vsserr.New(vsserr.InvalidArg, "%s: %s", manifestFile, fmt.Sprintf(format, args...))
}

// millis is d in milliseconds for the JSON form: nil (null) for 0, which
// stands for "not known".
func millis(d time.Duration) *float64 {
	if d == 0 {
		return nil
	}
	ms := float64(d) / float64(time.Millisecond)
	return &ms
}

// millis reads a duration in milliseconds; null is 0 (not known).
func (e *fieldErrs) millis(field string, ms *float64) time.Duration {
	if ms == nil {
		return 0
	}
	if *ms < 0 || *ms >= float64(math.MaxInt64)/float64(time.Millisecond) {
		e.add(field, "%v is not a duration in milliseconds", *ms)
		return 0
	}
	return time.Duration(math.Round(*ms * float64(time.Millisecond)))
}
