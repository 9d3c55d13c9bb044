package clierr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/lvss/lvss/vsserr"
)

// Kind is a failure the tools know by what happened rather than by its
// HRESULT: several of them carry VSS_E_UNEXPECTED or none, yet call for
// their own advice (and, in lvss, their own exit status).
type Kind int

const (
	Other          Kind = iota
	Usage               // a wrong command line
	Unreachable         // lvssd's socket missing or not answering
	SetInProgress       // another snapshot set was being created past --timeout
	WriterFailed        // a writer failed and lvss backup stopped before COMMAND
	Interrupted         // SIGINT or SIGTERM
	Command             // lvss backup's COMMAND failed: its own output says why
	ConnectionLost      // lvssd ended during the call
)

// kindHints win over the HRESULT's hint: the kind says more about what to
// do than the code it carries. {command} is the command that failed
// ("lvss list writers").
var kindHints = map[Kind]string{
	Usage:         "run '{command} --help'",
	Unreachable:   "start lvssd, or point --socket / $LVSS_SOCKET at it",
	SetInProgress: "another backup is creating a snapshot set; retry, or raise --timeout",
	WriterFailed:  "see lvss list writers and the writer's log; --allow-writer-failures runs COMMAND on crash-consistent snapshots",
	Interrupted:   "the session was released and nothing stays frozen; run the command again",
	ConnectionLost: "see lvssd's log (journalctl -u lvssd). Nothing stays frozen: writers release themselves, and lvssd's next start " +
		"undoes what the call left unfinished ('Recovery at start' in lvss status); run the command again once lvssd is back",
	// COMMAND's failure carries no HRESULT of its own: no code's advice
	// applies, and its own messages are above.
	Command: "",
}

// codeHints say what to do about the HRESULTs the tools meet. A code
// without a useful hint has none: an empty line of advice is noise.
var codeHints = map[vsserr.HRESULT]string{
	vsserr.BadState:                        "the calls came in an order lvss does not allow; see docs/cli.md, 'lvss call'",
	vsserr.SnapshotSetInProgress:           "another backup is creating a snapshot set; retry, or raise --timeout",
	vsserr.WriterNotResponding:             "the writer missed its deadline: see lvss list writers and the writer's log; lvssd ended its stream and it subscribes again",
	vsserr.VolumeNotSupported:              "no configured provider can snapshot this path: see lvss list providers and docs/providers.md",
	vsserr.VolumeNotSupportedByProvider:    "the provider named cannot snapshot this path: see lvss list providers and docs/providers.md",
	vsserr.ObjectNotFound:                  "check the ID or path: lvss list shadows, lvss list writers and lvss list providers show what exists",
	vsserr.ObjectAlreadyExists:             "it is already there: lvss list shadows shows snapshots and where they are exposed",
	vsserr.ProviderNotRegistered:           "see lvss list providers for the names and IDs lvssd knows",
	vsserr.ProviderVeto:                    "the provider refused: lvss list events and lvssd's log say why; docs/providers.md",
	vsserr.UnsupportedContext:              "this context is not one the verb or lvssd accepts: see the verb's section in docs/cli.md",
	vsserr.NotSupported:                    "the provider cannot do this: see docs/providers.md for what each provider supports",
	vsserr.InvalidArg:                      "an argument was malformed; the message says which",
	vsserr.CorruptXMLDocument:              "the document is damaged: take the backup again, or use an intact copy",
	vsserr.WriterErrorTimeout:              "the writer's application took too long: see the writer's log and its timeouts (docs/writers.md)",
	vsserr.WriterErrorRetryable:            "the writer asks for the backup to be retried",
	vsserr.WriterErrorNonRetryable:         "see the writer's log for why it failed",
	vsserr.MaximumNumberOfSnapshotsReached: "delete old snapshots (lvss delete shadows --for PATH --keep N) or raise limits.max_snapshots_per_volume",
	vsserr.InsufficientStorage:             "free space where the provider keeps snapshots, or delete old ones (lvss delete shadows)",
}

// Hint is what to do about a failure of kind k with HRESULT code in
// command, or "" when there is nothing useful to say.
func Hint(k Kind, code vsserr.HRESULT, command string) string {
	h, ok := kindHints[k]
	switch {
	case ok:
	case code == vsserr.AccessDenied:
		h = accessHint(command)
	default:
		h = codeHints[code]
	}
	return strings.ReplaceAll(h, "{command}", command)
}

// accessHint names the role a refused command needs and the lvssd.toml
// keys that grant it (docs/operations.md, "Who may do what"): the reads
// need the admin role, lvss-writer the writer role, everything else the
// requester role.
func accessHint(command string) string {
	const then = " in /etc/lvss/lvssd.toml, then restart lvssd (docs/operations.md, \"Who may do what\")"
	switch {
	case strings.HasPrefix(command, "lvss-writer"):
		return "this needs the writer role: run as root, or add the user to access.writer_users or one of its groups to access.writer_groups, " +
			"or bind the writer's class to the user with [[access.writer_class]]" + then
	case strings.HasPrefix(command, "lvss list"), strings.HasPrefix(command, "lvss status"),
		strings.HasPrefix(command, "lvss events"), strings.HasPrefix(command, "lvss doctor"):
		return "this needs the read-only admin role (or the requester role): run as root, or add the user to access.admin_users or one of its groups to access.admin_groups" + then
	}
	return "this needs the requester role: run as root, or add the user to access.requester_users or one of its groups to access.requester_groups" + then
}

// Report is one failure as the tools print it.
type Report struct {
	Code    vsserr.HRESULT
	Message string // without the code: vsserr.Message
	Hint    string
}

// hinter is an error that knows better advice than the table's for its
// HRESULT, because it knows what the command was doing (lvss backup show
// reading an archive: VSS_E_OBJECT_NOT_FOUND is a missing file there, not
// a missing snapshot).
type hinter interface{ Hint() string }

// New builds the report of err, of kind k, in command.
func New(err error, k Kind, command string) Report {
	code := vsserr.Code(err)
	if k == Usage {
		// A command line carries no HRESULT; E_INVALIDARG is what a VSS
		// method says of a bad argument, where VSS_E_UNEXPECTED would
		// send the reader looking for a fault in lvssd.
		code = vsserr.InvalidArg
	}
	hint := Hint(k, code, command)
	var h hinter
	if errors.As(err, &h) {
		hint = h.Hint()
	}
	return Report{Code: code, Message: vsserr.Message(err), Hint: hint}
}

// WriteJSON writes the report as the one JSON object of the error, with a
// newline:
//
//	{"error":{"hresult":"0x80042308","name":"VSS_E_OBJECT_NOT_FOUND","message":"...","hint":"..."}}
//
// hint is "" when there is none; the four keys are always there.
func (r Report) WriteJSON(w io.Writer) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // messages quote paths and XML; keep them readable
	type fields struct {
		HRESULT string `json:"hresult"`
		Name    string `json:"name"`
		Message string `json:"message"`
		Hint    string `json:"hint"`
	}
	err := enc.Encode(struct {
		Error fields `json:"error"`
	}{fields{r.Code.Hex(), r.Code.Name(), r.Message, r.Hint}})
	if err != nil {
		return err
	}
	_, err = w.Write(b.Bytes())
	return err
}

// WriteHint writes the text form's advice line, "hint: ...", if there is
// advice.
func (r Report) WriteHint(w io.Writer) error {
	if r.Hint == "" {
		return nil
	}
	_, err := fmt.Fprintf(w, "hint: %s\n", r.Hint)
	return err
}
