package coordinator

import "github.com/lvss/lvss/vsserr"

// State is a requester session's state (D2; restore states from vss-reference §2.3 and
// D21).
type State int

// Session states. The backup ones are ordered: "meta and every later state"
// in the D2 table means meta..complete.
const (
	StNew State = iota
	StInit
	StMeta
	StSet
	StPrepared
	StSnapped
	StFailed  // DoSnapshotSet failed or was cancelled (D3)
	StAborted // AbortBackup or the creation lease ended creation
	StComplete
	StRestoreInit
	StRestoreMeta
	StRestorePre
	StRestorePost
	StReleased
)

var stateNames = [...]string{"new", "init", "meta", "set", "prepared", "snapped", "failed", "aborted",
	"complete", "restore-init", "restore-meta", "restore-pre", "restore-post", "released"}

func (s State) String() string { return stateNames[s] }

// Method names an IVssBackupComponents call, spelled as the spec does.
type Method string

// The methods of the D2 table.
const (
	MInitializeForBackup    Method = "InitializeForBackup"
	MInitializeForRestore   Method = "InitializeForRestore"
	MSetContext             Method = "SetContext"
	MEnableWriterClasses    Method = "EnableWriterClasses"
	MDisableWriterClasses   Method = "DisableWriterClasses"
	MDisableWriterInstances Method = "DisableWriterInstances"
	MSetBackupState         Method = "SetBackupState"
	MGatherWriterMetadata   Method = "GatherWriterMetadata"
	MGetWriterMetadata      Method = "GetWriterMetadata"
	MFreeWriterMetadata     Method = "FreeWriterMetadata"
	MAddComponent           Method = "AddComponent"
	MSetBackupOptions       Method = "SetBackupOptions"
	MSetPreviousBackupStamp Method = "SetPreviousBackupStamp"
	MStartSnapshotSet       Method = "StartSnapshotSet"
	MAddToSnapshotSet       Method = "AddToSnapshotSet"
	MPrepareForBackup       Method = "PrepareForBackup"
	MDoSnapshotSet          Method = "DoSnapshotSet"
	MGatherWriterStatus     Method = "GatherWriterStatus"
	MGetWriterStatus        Method = "GetWriterStatus"
	MFreeWriterStatus       Method = "FreeWriterStatus"
	MSetBackupSucceeded     Method = "SetBackupSucceeded"
	MBackupComplete         Method = "BackupComplete"
	MAbortBackup            Method = "AbortBackup"
	MSaveAsXML              Method = "SaveAsXML"
	MGetWriterComponents    Method = "GetWriterComponents"
	MQuery                  Method = "Query"
	MGetSnapshotProperties  Method = "GetSnapshotProperties"
	MDeleteSnapshots        Method = "DeleteSnapshots"
	MIsVolumeSupported      Method = "IsVolumeSupported"
	MExposeSnapshot         Method = "ExposeSnapshot"
	MUnexposeSnapshot       Method = "UnexposeSnapshot"
	MGetSessionID           Method = "GetSessionId"
	MRevertToSnapshot       Method = "RevertToSnapshot"
	MQueryRevertStatus      Method = "QueryRevertStatus"

	// Restore-only calls (vss-reference §2.3, D21).
	MSetRestoreState               Method = "SetRestoreState"
	MSetSelectedForRestore         Method = "SetSelectedForRestore"
	MAddRestoreSubcomponent        Method = "AddRestoreSubcomponent"
	MSetRestoreOptions             Method = "SetRestoreOptions"
	MSetAdditionalRestores         Method = "SetAdditionalRestores"
	MAddNewTarget                  Method = "AddNewTarget"
	MSetAuthoritativeRestore       Method = "SetAuthoritativeRestore"
	MSetRollForward                Method = "SetRollForward"
	MSetRestoreName                Method = "SetRestoreName"
	MPreRestore                    Method = "PreRestore"
	MSetFileRestoreStatus          Method = "SetFileRestoreStatus"
	MAddAlternativeLocationMapping Method = "AddAlternativeLocationMapping"
	MSetRangesFilePath             Method = "SetRangesFilePath"
	MPostRestore                   Method = "PostRestore"
)

// What ends a creation or a session without a requester call goes through
// the same table, so that every state change has one place.
const (
	mLeaseExpired Method = "(creation lease expired)"
	mRelease      Method = "(release)"
)

// rule is one row of the table: where a call is allowed and where it
// leads. A call allowed in a state that its row does not move stays there.
type rule struct {
	// from maps each state the call is allowed in to the state a success
	// leads to.
	from map[State]State
	// writerless, when set, replaces from in writerless contexts (vss-reference §1.4:
	// they skip GatherWriterMetadata, PrepareForBackup and BackupComplete).
	writerless map[State]State
	// failed is where a failed asynchronous run leads (D3: only
	// DoSnapshotSet moves on failure); zero means nowhere.
	failed State
	// once: a second call in the same session is VSS_E_BAD_STATE.
	once bool
	// after: calls that must have been made first (VSS_E_BAD_STATE).
	after []Method
	// readOnly calls may run while an asynchronous operation is pending
	// (D2); every other call is VSS_E_BAD_STATE then.
	readOnly bool
	// hint completes the refusal's message for a user.
	hint string
}

func stay(ss ...State) map[State]State {
	m := map[State]State{}
	for _, s := range ss {
		m[s] = s
	}
	return m
}

func move(to State, ss ...State) map[State]State {
	m := map[State]State{}
	for _, s := range ss {
		m[s] = to
	}
	return m
}

func join(ms ...map[State]State) map[State]State {
	out := map[State]State{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

var (
	// afterNew are all backup states after InitializeForBackup.
	afterNew = []State{StInit, StMeta, StSet, StPrepared, StSnapped, StFailed, StAborted, StComplete}
	// metaAndLater are meta and every later backup state.
	metaAndLater = []State{StMeta, StSet, StPrepared, StSnapped, StFailed, StAborted, StComplete}
	// restoreStates are the restore states (D21).
	restoreStates = []State{StRestoreInit, StRestoreMeta, StRestorePre, StRestorePost}
	// restoreGathered are the restore states after GatherWriterMetadata.
	restoreGathered = []State{StRestoreMeta, StRestorePre, StRestorePost}
	// every is every state but released.
	every = append(append([]State{StNew}, afterNew...), restoreStates...)
)

func concat(ss ...[]State) []State {
	var out []State
	for _, s := range ss {
		out = append(out, s...)
	}
	return out
}

// table is the D2 table (and D21's restore rows) as code: the one place
// that says where each call is allowed and where it leads. Conditions
// that are not states (writer context, component mode) are checked by
// the methods themselves and are also VSS_E_BAD_STATE.
var table = map[Method]rule{
	MInitializeForBackup:    {from: move(StInit, StNew)},
	MInitializeForRestore:   {from: move(StRestoreInit, StNew)},
	MSetContext:             {from: stay(StInit), once: true},
	MEnableWriterClasses:    {from: stay(StInit)},
	MDisableWriterClasses:   {from: stay(StInit)},
	MDisableWriterInstances: {from: stay(StInit)},
	MSetBackupState:         {from: stay(StInit, StMeta, StSet, StRestoreInit, StRestoreMeta)},
	MGatherWriterMetadata:   {from: join(move(StMeta, StInit), move(StRestoreMeta, StRestoreInit)), once: true},
	MGetWriterMetadata:      {from: stay(concat(metaAndLater, restoreGathered)...), readOnly: true},
	MFreeWriterMetadata:     {from: stay(concat(metaAndLater, restoreGathered)...)},
	MAddComponent:           {from: stay(StMeta, StSet), writerless: stay()},
	MSetBackupOptions:       {from: stay(StMeta, StSet), writerless: stay()},
	MSetPreviousBackupStamp: {from: stay(StMeta, StSet), writerless: stay()},
	MStartSnapshotSet: {from: move(StSet, StMeta), writerless: move(StSet, StInit, StMeta), once: true,
		hint: "in a writer context it follows GatherWriterMetadata"},
	MAddToSnapshotSet: {from: stay(StSet, StPrepared)},
	MPrepareForBackup: {from: move(StPrepared, StSet), writerless: stay(), after: []Method{MSetBackupState},
		hint: "it follows StartSnapshotSet, in a writer context only"},
	MDoSnapshotSet: {from: move(StSnapped, StPrepared), writerless: move(StSnapped, StSet), failed: StFailed,
		hint: "in a writer context it follows PrepareForBackup; in a writerless one, StartSnapshotSet"},
	MGatherWriterStatus:    {from: stay(concat(metaAndLater, restoreGathered)...)},
	MGetWriterStatus:       {from: stay(concat(metaAndLater, restoreGathered)...), readOnly: true},
	MFreeWriterStatus:      {from: stay(concat(metaAndLater, restoreGathered)...)},
	MSetBackupSucceeded:    {from: stay(StSnapped)},
	MBackupComplete:        {from: move(StComplete, StSnapped), writerless: stay(), hint: "it follows a successful DoSnapshotSet, in a writer context only"},
	MAbortBackup:           {from: join(stay(afterNew...), move(StAborted, StSet, StPrepared, StSnapped))},
	MSaveAsXML:             {from: stay(concat(afterNew, restoreStates)...), readOnly: true},
	MGetWriterComponents:   {from: stay(concat(afterNew, restoreStates)...), readOnly: true},
	MQuery:                 {from: stay(concat(afterNew, restoreStates)...), readOnly: true},
	MGetSnapshotProperties: {from: stay(concat(afterNew, restoreStates)...), readOnly: true},
	MDeleteSnapshots:       {from: stay(concat(afterNew, restoreStates)...)},
	MIsVolumeSupported:     {from: stay(concat(afterNew, restoreStates)...), readOnly: true},
	MExposeSnapshot:        {from: stay(concat(afterNew, restoreStates)...)},
	MUnexposeSnapshot:      {from: stay(concat(afterNew, restoreStates)...)},
	MGetSessionID:          {from: stay(every...), readOnly: true},
	// Administrative, like DeleteSnapshots (vss-reference §2.3's
	// anytime-admin calls).
	MRevertToSnapshot:  {from: stay(concat(afterNew, restoreStates)...)},
	MQueryRevertStatus: {from: stay(concat(afterNew, restoreStates)...), readOnly: true},

	// §2.3's restore rows with D21's additions. Selection and the
	// requester's restore settings belong before PreRestore; the results
	// of the copy (file restore status, mappings used, ranges files)
	// between PreRestore and PostRestore; SetAdditionalRestores in both.
	MSetRestoreState:               {from: stay(StRestoreInit, StRestoreMeta)},
	MSetSelectedForRestore:         {from: stay(StRestoreMeta)},
	MAddRestoreSubcomponent:        {from: stay(StRestoreMeta)},
	MSetRestoreOptions:             {from: stay(StRestoreMeta)},
	MSetAdditionalRestores:         {from: stay(StRestoreMeta, StRestorePre)},
	MAddNewTarget:                  {from: stay(StRestoreMeta)},
	MSetAuthoritativeRestore:       {from: stay(StRestoreMeta)},
	MSetRollForward:                {from: stay(StRestoreMeta)},
	MSetRestoreName:                {from: stay(StRestoreMeta)},
	MPreRestore:                    {from: move(StRestorePre, StRestoreMeta), hint: "it follows GatherWriterMetadata in a restore session"},
	MSetFileRestoreStatus:          {from: stay(StRestorePre)},
	MAddAlternativeLocationMapping: {from: stay(StRestorePre)},
	MSetRangesFilePath:             {from: stay(StRestorePre)},
	MPostRestore:                   {from: move(StRestorePost, StRestorePre), hint: "it follows a successful PreRestore"},

	mLeaseExpired: {from: move(StAborted, StSet, StPrepared)},
	mRelease:      {from: move(StReleased, every...)},
}

// AllMethods lists the D2 table's calls (for table tests and the CLI).
func AllMethods() []Method {
	out := make([]Method, 0, len(table))
	for m := range table {
		if m != mLeaseExpired && m != mRelease {
			out = append(out, m)
		}
	}
	return out
}

// targets is the row of m for a session in context writers.
func (r rule) targets(writers bool) map[State]State {
	if !writers && r.writerless != nil {
		return r.writerless
	}
	return r.from
}

// Next reports whether the table allows m in st (in a writer or a
// writerless context) and the state a success leads to. It does not know
// the conditions that are not states (once-only calls, component mode).
func Next(m Method, st State, writers bool) (State, bool) {
	to, ok := table[m].targets(writers)[st]
	return to, ok
}

// admit checks m against the table, the once and after conditions and the
// pending-async rule. It returns the state the call is admitted in, which
// transition takes back when the call succeeded. Caller holds s.mu.
func (s *Session) admit(m Method) (State, error) {
	r, ok := table[m]
	if !ok {
		return 0, vsserr.New(vsserr.Unexpected, "no table row for %s", m)
	}
	if s.state == StReleased {
		return 0, badState("%s: the session was released", m)
	}
	if s.pending != nil && !r.readOnly {
		return 0, badState("%s while an asynchronous operation is pending (only Wait, QueryStatus, Cancel and read-only calls are allowed)", m)
	}
	if _, ok := r.targets(s.context.Writers())[s.state]; !ok {
		kind := ""
		if s.state != StNew && !s.context.Writers() {
			kind = " of a writerless context"
		}
		msg := "%s is not allowed in state %s" + kind
		if r.hint != "" {
			return 0, badState(msg+": "+r.hint, m, s.state)
		}
		return 0, badState(msg, m, s.state)
	}
	if r.once && s.called[m] {
		return 0, badState("%s was already called in this session", m)
	}
	for _, before := range r.after {
		if !s.called[before] {
			return 0, badState("%s before %s", m, before)
		}
	}
	return s.state, nil
}

// transition applies a call that succeeded, or an event without a call
// (mLeaseExpired, mRelease): the one place a session's state changes. from
// is the state the call was admitted in; the move is skipped when
// something else (a release, a lease expiry) moved the session meanwhile.
// It reports whether the session moved. Caller holds s.mu.
func (s *Session) transition(m Method, from State) bool {
	s.called[m] = true
	if s.state != from {
		return false
	}
	to, ok := table[m].targets(s.context.Writers())[from]
	if !ok || to == from {
		return false
	}
	s.state = to
	return true
}

// transitionFailed applies a failed or cancelled asynchronous call (D3,
// D17): only a row with a failed state moves, and the call does not count
// as made, so a once-only call may be retried. Caller holds s.mu.
func (s *Session) transitionFailed(m Method, from State) {
	if f := table[m].failed; f != 0 && s.state == from {
		s.state = f
	}
}

// do runs a synchronous call under s.mu: admitted by the table, then fn,
// then the transition if fn succeeded.
func (s *Session) do(m Method, fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, err := s.admit(m)
	if err != nil {
		return err
	}
	if err := fn(); err != nil {
		return err
	}
	s.transition(m, from)
	return nil
}

// admitted checks a call that changes no state and does its work outside
// s.mu (administrative calls that reach providers or the catalog).
func (s *Session) admitted(m Method) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.admit(m)
	return err
}
