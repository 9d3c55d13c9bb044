package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/internal/wire"
)

// Exit statuses, the same for every verb. 69 and 75 are sysexits(3)'s
// EX_UNAVAILABLE and EX_TEMPFAIL, which schedulers and systemd know;
// 125-127 are env(1)'s; 130 is the shell's 128+SIGINT.
const (
	exitOK            = 0
	exitFailed        = 1
	exitUsage         = 2
	exitWriterFailed  = 3
	exitUnreachable   = 69
	exitSetInProgress = 75
	exitCannotRun     = 125
	exitInterrupted   = 130
)

// exitStatusHelp is the table in lvss --help; docs/cli.md has the same.
const exitStatusHelp = `  0        success
  1        a call or operation failed; lvss doctor: a finding is an error
  2        bad command line (only that)
  3        lvss backup, lvss restore: a writer failed and COMMAND did not
           run
  69       lvssd unreachable (no socket, or nothing answering on it)
  75       another snapshot set was being created past --timeout
  125      lvss backup, lvss restore: COMMAND could not be started
           (--in-place: its namespace could not be set up)
  126, 127 lvss backup --in-place: COMMAND could not be run, was not found
  other    lvss backup, lvss restore: COMMAND's own status when it failed
           (2 becomes 1)
  130      interrupted (SIGINT, SIGTERM); lvss events --follow ends so
           with 0`

// exitCode is the one place that maps an outcome to an exit status.
func exitCode(err error) int {
	var (
		wf writerFailure
		sp setInProgress
		ce commandExit
	)
	switch {
	case err == nil:
		return exitOK
	case clierr.IsUsage(err):
		return exitUsage
	case errors.As(err, &wf):
		return exitWriterFailed
	case errors.Is(err, client.ErrUnreachable), clusterUnreachable(err):
		return exitUnreachable
	case errors.As(err, &sp):
		return exitSetInProgress
	case errors.As(err, &ce):
		return ce.status
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	default:
		return exitFailed
	}
}

// errorKind is the kind of failure err is, for its hint; it follows
// exitCode's order so that the advice matches the exit status.
func errorKind(err error) clierr.Kind {
	var (
		wf writerFailure
		sp setInProgress
		ce commandExit
	)
	switch {
	case clierr.IsUsage(err):
		return clierr.Usage
	case errors.As(err, &wf):
		return clierr.WriterFailed
	case errors.Is(err, client.ErrUnreachable):
		return clierr.Unreachable
	case errors.As(err, &sp):
		return clierr.SetInProgress
	case errors.As(err, &ce):
		return clierr.Command
	case errors.Is(err, context.Canceled):
		return clierr.Interrupted
	case errors.Is(err, wire.ErrConnectionLost):
		return clierr.ConnectionLost
	}
	return clierr.Other
}

// reportError prints err on stderr: in text "lvss: NAME (0x...): message"
// (err's own text) and a "hint:" line when there is advice; with --json one
// JSON object (clierr.Report.WriteJSON) and nothing else, so that a script
// reads stdout for results and stderr for the failure. cmd is the command
// that ran, for the usage hint.
func reportError(stderr io.Writer, cmd *cobra.Command, argv []string, err error) {
	var rep *reportedError
	if err == nil || errors.Is(err, errCallsFailed) || errors.As(err, &rep) {
		// lvss call: the failing call's result, on standard output, is
		// the report; lvss doctor: its findings are.
		return
	}
	path := "lvss"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	r := clierr.New(err, errorKind(err), path)
	if jsonMode(cmd, argv) {
		r.WriteJSON(stderr)
		return
	}
	fmt.Fprintf(stderr, "lvss: %v\n", err)
	r.WriteHint(stderr)
}

// jsonMode is --json. A bad flag stops cobra's parsing before a --json
// after it is set, and a usage error is an error like any other, so the
// command line is read too (up to "--", after which words are COMMAND's).
func jsonMode(cmd *cobra.Command, argv []string) bool {
	if cmd != nil {
		if v, err := cmd.Flags().GetBool("json"); err == nil && v {
			return true
		}
	}
	if i := slices.Index(argv, "--"); i >= 0 {
		argv = argv[:i]
	}
	return slices.Contains(argv, "--json")
}
