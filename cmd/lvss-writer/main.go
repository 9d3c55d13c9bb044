package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

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
release the application (Abort, then BackupShutdown) before it exits.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", "", "lvssd socket (default $LVSS_SOCKET, else /run/lvss/lvssd.sock)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "text or json (one JSON object per line, for log collectors)")
	for _, f := range writerCommands {
		root.AddCommand(f(g))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "lvss-writer:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks a bad command line (exit status 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func (g *globalOptions) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usagef("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", g.logFormat)
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
