package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/inplace"
)

type globalOptions struct {
	socket string
}

// usageError marks a wrong command line, which gets its own exit status so
// that scripts can tell "you called me wrong" from "the backup failed".
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func newRootCommand() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "lvss",
		Short: "Requester and admin tool for lvssd, the Linux Volume Shadow Copy Service",
		Long: `lvss talks to lvssd, the lvss coordinator, over its Unix socket.

The socket is --socket, else $` + client.SocketEnv + `, else ` + client.DefaultSocket + `.
Exit status: 0 success, 1 a call or operation failed, 2 bad command line,
130 interrupted.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs, // an unknown verb is a usage error
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.PersistentFlags().StringVar(&g.socket, "socket", "", "lvssd socket (default $"+client.SocketEnv+", else "+client.DefaultSocket+")")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newCallCommand(g), newListCommand(g), newCreateCommand(g), newDeleteCommand(g),
		newExposeCommand(g), newUnexposeCommand(g), newBackupCommand(g))
	// Argument-count errors come from each command's Args; mark them all
	// as usage errors in one place.
	markUsage(root)
	return root
}

func markUsage(c *cobra.Command) {
	if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markUsage(sub)
	}
}

// exitCode is the one place that maps an outcome to an exit status.
func exitCode(err error) int {
	var ue usageError
	if code, ok := backupExit(err); ok {
		return code
	}
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	case errors.Is(err, context.Canceled):
		return 130
	default:
		return 1
	}
}

func run(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(argv)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, errCallsFailed):
		// The failing call's result is the report.
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "lvss: %v\nRun 'lvss --help' for usage.\n", err)
	default:
		fmt.Fprintf(stderr, "lvss: %v\n", err)
	}
	return exitCode(err)
}

func main() {
	// lvss backup --in-place re-executes lvss in a new mount namespace to
	// set it up; that run never returns from here.
	inplace.MaybeRunChild()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal asks for a clean end (the session is still
	// released); after it a second one kills, as usual.
	go func() { <-ctx.Done(); stop() }()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
