package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vsserr"
)

// releaseTimeout bounds the Release at the end of `lvss call`, which runs
// even after an interrupt: a daemon that does not answer in that time still
// releases the session when the stream goes.
const releaseTimeout = 2 * time.Minute

type callOptions struct {
	json      bool
	keepGoing bool
}

func newCallCommand(g *globalOptions) *cobra.Command {
	var o callOptions
	cmd := &cobra.Command{
		Use:   "call [FILE]",
		Short: "Run IVssBackupComponents calls one per line, in one requester session",
		Long: `Run IVssBackupComponents calls, one per line, from FILE or standard input, in one
requester session. Each line runs as soon as it is read, and its result is
printed before the next line is read, so the session can be driven
interactively through a pipe. When the input ends the session is released
(D11) and a last "Release" result says what that did.

A line is a method name exactly as the spec spells it, then its arguments
separated by blanks. Double-quote an argument with blanks (or an empty one:
""); @FILE reads an argument from a file; $NAME is a variable set by an
earlier result. Trailing optional arguments take the spec's defaults. Enums
are spec names (VSS_CTX_BACKUP, VSS_BT_FULL, ...; case-sensitive) or
numbers, flags are joined with |, GUIDs are lowercase (braces tolerated,
GUID_NULL). Async methods are waited for; a line ending in & returns at once
with the handle in $ASYNC for Wait, QueryStatus and Cancel. # starts a
comment.

A call that fails (HRESULT with the failure bit) stops the run with exit
status 1, unless --keep-going; the session is released either way. A line
that cannot be parsed fails with E_INVALIDARG without reaching the daemon.

Methods:
` + methodSummary() + `
Variables: $SNAPSHOT_SET_ID, $SNAPSHOT_ID (last added), $SNAPSHOT_ID_1...,
$ASYNC (last async handle), $WRITER_ID_n / $INSTANCE_ID_n (writer at index
n-1 of GetWriterMetadata; $WRITER_ID / $INSTANCE_ID the last one shown),
$SESSION_ID, $EXPOSED_NAME. docs/cli.md describes every method.`,
		Example: `  # a crash-consistent snapshot of /srv, kept while the session lasts
  lvss call <<'EOF'
  InitializeForBackup
  SetContext VSS_CTX_FILE_SHARE_BACKUP
  StartSnapshotSet
  AddToSnapshotSet /srv
  DoSnapshotSet
  GetSnapshotProperties $SNAPSHOT_ID
  EOF

  # drive a session from a program, one JSON object per result
  coproc lvss call --json; echo InitializeForBackup >&${COPROC[1]}; read -u ${COPROC[0]} result`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			o.json = g.json // the root's --json
			in := cmd.InOrStdin()
			if len(argv) == 1 && argv[0] != "-" {
				f, err := os.Open(argv[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			return runCall(cmd.Context(), g.socket, o, in, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.keepGoing, "keep-going", false, "go on after a failed call (exit status 1 if any failed)")
	return cmd
}

func methodSummary() string {
	var b strings.Builder
	for _, m := range methods {
		fmt.Fprintf(&b, "  %s\n", m.usage())
	}
	return b.String()
}

// errCallsFailed is the run's error when a call failed: its result has been
// printed already, so main only sets the exit status.
var errCallsFailed = errors.New("a call failed")

type readResult struct {
	text string
	err  error
}

// runCall is `lvss call`: one session, one result per input line, then
// Release.
func runCall(ctx context.Context, socket string, o callOptions, in io.Reader, out io.Writer) error {
	p := &printer{w: out, json: o.json}
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		p.result(errResult("CreateVssBackupComponents", err))
		// The result is the report; err still sets the exit status (69
		// when lvssd is unreachable).
		return errors.Join(errCallsFailed, err)
	}
	defer conn.Close()
	bc, err := conn.NewBackupComponents(ctx)
	if err != nil {
		p.result(errResult("CreateVssBackupComponents", err))
		return errCallsFailed
	}
	r := newRunner(bc)

	// A line is read only when the previous result is out, which is what
	// makes a pipe interactive; reading happens in a goroutine so that an
	// interrupt does not wait for input that may never come.
	want := make(chan struct{})
	lines := make(chan readResult, 1)
	go func() {
		br := bufio.NewReader(in)
		for range want {
			s, err := br.ReadString('\n')
			lines <- readResult{s, err}
			if err != nil {
				return
			}
		}
	}()
	defer close(want)

	failed, lineNo := false, 0
	var runErr error
loop:
	for {
		want <- struct{}{}
		var rr readResult
		select {
		case rr = <-lines:
		case <-ctx.Done():
			break loop
		}
		lineNo++
		if text := strings.TrimRight(rr.text, "\r\n"); text != "" {
			l, name, perr := parseLine(text, r.vars, r.asyncs)
			var res obj
			switch {
			case perr != nil:
				res = errResult(name, perr)
			case l != nil:
				res = r.exec(ctx, l)
			}
			if res != nil {
				res = res.add("line", lineNo)
				if err := p.result(res); err != nil {
					runErr = err
					break loop
				}
				if resultFailed(res) {
					failed = true
					if !o.keepGoing || ctx.Err() != nil {
						break loop
					}
				}
			}
		}
		if rr.err != nil {
			if !errors.Is(rr.err, io.EOF) {
				runErr = fmt.Errorf("reading calls: %w", rr.err)
			}
			break
		}
	}

	if ctx.Err() != nil && runErr == nil {
		// Interrupted: the call that was running reported its own
		// failure; the exit status says why the run ended.
		runErr = ctx.Err()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	rel, err := bc.Release(rctx)
	if perr := p.result(releaseResult(rel, err)); perr != nil && runErr == nil {
		runErr = perr
	}
	if err != nil {
		failed = true
	}
	switch {
	case runErr != nil:
		return runErr
	case failed:
		return errCallsFailed
	}
	return nil
}

func resultFailed(o obj) bool {
	v, _ := o.get("hresult")
	s, _ := v.(string)
	h, ok := vsserr.Lookup(s)
	return !ok || h.Failed()
}
