package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lvss/lvss/internal/argsfile"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/internal/version"
	"github.com/lvss/lvss/writer"
)

// globalOptions are the flags every writer shares.
type globalOptions struct {
	socket    string
	logLevel  string
	logFormat string
}

// command builders of the hosted writers; each file adds its own.
var writerCommands []func(*globalOptions) *cobra.Command

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses (docs/writers.md): a writer runs until it is told to stop,
// so 0 is that stop, after the application was released. lvss-writer
// waits for lvssd rather than fail when it is away, so lvss's 69 does not
// apply.
const (
	exitOK     = 0 // stopped by SIGTERM or SIGINT
	exitFailed = 1 // the writer could not start or run (its error says why)
	exitUsage  = 2 // bad command line, and only that
)

func newRootCommand() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "lvss-writer",
		Short: "Run one of lvss's writers as its own process",
		Long: `lvss-writer runs one writer — an application made VSS-aware — as its own
process. The writer subscribes to lvssd, describes its components at every
Identify, and holds its application's consistency point for exactly the
freeze window of each snapshot set it takes part in.

It finds lvssd through --socket, else $LVSS_SOCKET, else
/run/lvss/lvssd.sock; while the socket is missing it waits and retries with
backoff, and it subscribes again when lvssd restarts. SIGTERM or SIGINT
release the application (Abort, then BackupShutdown) before it exits.

"lvss-writer --args-file FILE [ARGS...]" reads the arguments from FILE, one
per line ('#' starts a comment line), before any on the command line:
lvss-writer@NAME.service runs it with /etc/lvss/writers/NAME.conf.

A failure is "lvss-writer: NAME (0x...): message" and a "hint:" line; with
--log-format json it is one object on standard error instead:
  {"error": {"hresult": "0x...", "name": "...", "message": "...", "hint": "..."}}
Exit status: 0 stopped by SIGTERM/SIGINT, 1 the writer failed, 2 bad
command line.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs, // an unknown writer is a usage error
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.Version = version.Get().String()
	root.SetVersionTemplate("lvss-writer {{.Version}}\n")
	root.PersistentFlags().StringVar(&g.socket, "socket", "", "lvssd socket (default $LVSS_SOCKET, else /run/lvss/lvssd.sock)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "text or json (one JSON object per line, for log collectors)")
	for _, f := range writerCommands {
		root.AddCommand(f(g))
	}
	for _, name := range omittedWriters {
		root.AddCommand(newOmittedCommand(name))
	}
	if len(omittedWriters) > 0 {
		root.Long += "\n\nThis build leaves out the writers: " + strings.Join(omittedWriters, ", ") + "."
	}
	clierr.MarkUsage(root)
	return root
}

func run(ctx context.Context, argv []string, stdout, stderr io.Writer) int {
	root := newRootCommand()
	// lvss-writer@.service: the arguments come from
	// /etc/lvss/writers/INSTANCE.conf.
	argv, err := argsfile.Expand(argv)
	cmd := root
	if err == nil {
		root.SetArgs(argv)
		root.SetOut(stdout)
		root.SetErr(stderr)
		cmd, err = root.ExecuteContextC(ctx)
	} else {
		err = clierr.UsageError{Err: err}
	}
	if err == nil {
		return exitOK
	}
	kind, code := clierr.Other, exitFailed
	if clierr.IsUsage(err) {
		kind, code = clierr.Usage, exitUsage
	}
	r := clierr.New(err, kind, cmd.CommandPath())
	if jsonLogs(cmd, argv) {
		r.WriteJSON(stderr)
	} else {
		fmt.Fprintln(stderr, "lvss-writer:", err)
		r.WriteHint(stderr)
	}
	return code
}

// jsonLogs is --log-format json: the error object then goes where the
// log collector reads the JSON log lines. A bad flag stops parsing before
// a --log-format after it is set, hence the look at the command line too
// (every word before "--" is lvss-writer's).
func jsonLogs(cmd *cobra.Command, argv []string) bool {
	if v, err := cmd.Flags().GetString("log-format"); err == nil && v == "json" {
		return true
	}
	if i := slices.Index(argv, "--"); i >= 0 {
		argv = argv[:i]
	}
	for i, a := range argv {
		if a == "--log-format=json" || (a == "--log-format" && i+1 < len(argv) && argv[i+1] == "json") {
			return true
		}
	}
	return false
}

func (g *globalOptions) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, clierr.Usagef("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, clierr.Usagef("--log-format %q: want text or json", g.logFormat)
}

// host runs one writer until the process is told to stop. Retry keeps it
// subscribed across lvssd restarts; the SDK releases the application on
// every way out.
// release bounds the SDK's own Abort/BackupShutdown calls (0: the SDK's
// default); a writer whose release hooks may run longer passes theirs.
func host(ctx context.Context, g *globalOptions, log *slog.Logger, id writer.Identity, w writer.Writer, release time.Duration) error {
	log.Info("writer starting", "name", id.Name, "class", id.ClassID, "instance_name", id.InstanceName)
	err := writer.Run(ctx, writer.Options{Socket: g.socket, Logger: log, Retry: true, ReleaseTimeout: release}, id, w)
	if ctx.Err() != nil {
		log.Info("writer stopped", "name", id.Name)
		return nil
	}
	return err
}
