package postgres

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lvss/lvss/restoreopts"
	"github.com/lvss/lvss/vsserr"
)

// restoreOptions is what a requester may ask of a restore through the
// component's restore options (SetRestoreOptions), in lvss's format
// (package restoreopts: one KEY=VALUE per line, the value as it is, with
// its spaces), which lvss restore writes from --recovery-target and
// --restore-option:
//
//	recovery_target_time=2026-12-06 13:56:59+00
//	restore_command=cp /srv/archive/%f %p
//
// The keys are PostgreSQL's own recovery settings (restore_command may
// also be given as postgres.restore_command); the writer checks them
// before any file is copied (PreRestore) and writes them into the
// restored cluster's postgresql.auto.conf (PostRestore). Every component
// of a restore gets the same options, so keys meant for other writers
// are ignored; an unknown recovery_target… or postgres… key is refused.
type restoreOptions struct {
	// target is the recovery_target_* setting given ("" = none: recover
	// to the end of the archived WAL); value is its value.
	target, value string
	// restoreCommand is restore_command ("" = the writer's
	// --restore-command).
	restoreCommand string
	// The optional recovery settings that go with a target.
	inclusive, timeline, action string
}

// recoveryTargets are the settings that name a recovery target; at most
// one may be given (PostgreSQL refuses several).
var recoveryTargets = []string{"recovery_target", "recovery_target_time", "recovery_target_lsn", "recovery_target_name", "recovery_target_xid"}

var (
	lsnSyntax = regexp.MustCompile(`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`)
	xidSyntax = regexp.MustCompile(`^[0-9]+$`)
	tliSyntax = regexp.MustCompile(`^([0-9]+|current|latest)$`)
)

// optionKeys lists the keys parseRestoreOptions accepts, for messages.
var optionKeys = strings.Join(append(slices.Clone(recoveryTargets),
	"recovery_target_inclusive", "recovery_target_timeline", "recovery_target_action", "restore_command"), ", ")

// parseRestoreOptions parses and checks the restore options. Values are
// checked only as far as the writer can without the server: a timestamp
// PostgreSQL would not read, or a named restore point that does not
// exist, fails the server's recovery, which the server's log names.
func parseRestoreOptions(s string) (restoreOptions, error) {
	var o restoreOptions
	parsed, err := restoreopts.Parse(s)
	if err != nil {
		return o, errors.New(vsserr.Message(err))
	}
	keys := slices.Sorted(maps.Keys(parsed))
	for _, k := range keys {
		v := parsed[k]
		if k == "postgres.restore_command" {
			if _, both := parsed["restore_command"]; both {
				return o, fmt.Errorf("restore_command and postgres.restore_command are both given")
			}
			k = "restore_command"
		}
		switch k {
		case "recovery_target":
			if v != "immediate" {
				return o, fmt.Errorf("recovery_target=%q: the only value is immediate (stop as soon as the backup is consistent)", v)
			}
		case "recovery_target_time":
			if v == "" {
				return o, fmt.Errorf("recovery_target_time is empty")
			}
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil && !strings.Contains(v, " ") {
				// PostgreSQL reads many spellings; this catches a value
				// that is plainly not a timestamp (no date and time).
				return o, fmt.Errorf("recovery_target_time=%q is not a timestamp: give one with a time zone, e.g. '2026-12-06 13:56:59+00'", v)
			}
		case "recovery_target_lsn":
			if !lsnSyntax.MatchString(v) {
				return o, fmt.Errorf("recovery_target_lsn=%q is not an LSN (e.g. 0/3000060)", v)
			}
		case "recovery_target_name":
			if v == "" {
				return o, fmt.Errorf("recovery_target_name is empty")
			}
		case "recovery_target_xid":
			if !xidSyntax.MatchString(v) {
				return o, fmt.Errorf("recovery_target_xid=%q is not a transaction ID", v)
			}
		case "recovery_target_inclusive":
			if v != "true" && v != "false" && v != "on" && v != "off" {
				return o, fmt.Errorf("recovery_target_inclusive=%q: say true or false", v)
			}
			o.inclusive = v
		case "recovery_target_timeline":
			if !tliSyntax.MatchString(v) {
				return o, fmt.Errorf("recovery_target_timeline=%q: say latest, current or a timeline number", v)
			}
			o.timeline = v
		case "recovery_target_action":
			if v != "promote" && v != "pause" && v != "shutdown" {
				return o, fmt.Errorf("recovery_target_action=%q: say promote, pause or shutdown", v)
			}
			o.action = v
		case "restore_command":
			if v == "" {
				return o, fmt.Errorf("restore_command is empty")
			}
			o.restoreCommand = v
		default:
			if strings.HasPrefix(k, "recovery_target") || strings.HasPrefix(k, "postgres.") {
				return o, fmt.Errorf("unknown restore option %q (the options are %s)", k, optionKeys)
			}
			continue // another writer's option
		}
		if slices.Contains(recoveryTargets, k) {
			if o.target != "" {
				return o, fmt.Errorf("%s and %s are both given: name one recovery target", o.target, k)
			}
			o.target, o.value = k, v
		}
	}
	return o, nil
}

// confQuote quotes a value for postgresql.conf: single quotes, a quote
// doubled.
func confQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}
