package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/argsfile"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/internal/inplace"
	"github.com/lvss/lvss/internal/version"
)

type globalOptions struct {
	socket string
	// json is the one --json of every verb: results as JSON on standard
	// output, and a failure as one JSON object on standard error.
	json bool
	// argv is the command line as run parsed it (after --args-file), for
	// 'lvss cluster', which runs lvss-cluster with it (cluster_exec.go).
	argv []string
}

func newRootCommand() *cobra.Command {
	root, _ := newRoot()
	return root
}

func newRoot() (*cobra.Command, *globalOptions) {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "lvss",
		Short: "Requester and admin tool for lvssd, the Linux Volume Shadow Copy Service",
		Long: `lvss talks to lvssd, the lvss coordinator, over its Unix socket.

The socket is --socket, else $` + client.SocketEnv + `, else ` + client.DefaultSocket + `.
--json (before or after the verb) prints results as JSON on standard output
and a failure as one object on standard error:
  {"error": {"hresult": "0x...", "name": "...", "message": "...", "hint": "..."}}
Without it a failure is "lvss: NAME (0x...): message" and a "hint:" line.

"lvss --args-file FILE [ARGS...]" reads the arguments from FILE, one per line
('#' starts a comment line), before any on the command line:
lvss-backup@NAME.service runs it with /etc/lvss/backups/NAME.conf.

Exit status, for every verb:
` + exitStatusHelp,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs, // an unknown verb is a usage error
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.Version = version.Get().String()
	root.SetVersionTemplate("lvss {{.Version}}\n")
	root.PersistentFlags().StringVar(&g.socket, "socket", "", "lvssd socket (default $"+client.SocketEnv+", else "+client.DefaultSocket+")")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print results as JSON, and a failure as one JSON object on standard error")
	root.AddCommand(newCallCommand(g), newListCommand(g), newCreateCommand(g), newDeleteCommand(g),
		newExposeCommand(g), newUnexposeCommand(g), newRevertCommand(g), newBackupCommand(g), newRestoreCommand(g), newEventsCommand(g, "events"),
		newStatusCommand(g), newDoctorCommand(g), newSambaConfigCommand(g), newClusterCommand(g))
	clierr.MarkUsage(root)
	return root, g
}

// oneProc gives lvss one P unless $GOMAXPROCS says otherwise (L70). lvss
// is a client: it waits on lvssd, on etcd or on a child command, and never
// needs two cores; with a second P, Go's scheduler spins threads up on it
// at every wake-up, which cost about 1 ms of CPU per 'lvss create shadow',
// taken from the applications whose volumes are being snapshotted.
func oneProc() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

func run(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root, g := newRoot()
	// lvss-backup@.service: the arguments come from a file.
	argv, err := argsfile.Expand(argv)
	if err != nil {
		err = clierr.UsageError{Err: err}
		reportError(stderr, root, argv, err)
		return exitCode(err)
	}
	g.argv = argv
	root.SetArgs(argv)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	reportError(stderr, cmd, argv, err)
	return exitCode(err)
}

func main() {
	// lvss backup --in-place re-executes lvss in a new mount namespace to
	// set it up; that run never returns from here.
	inplace.MaybeRunChild()
	oneProc()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal asks for a clean end (the session is still
	// released); after it a second one kills, as usual.
	go func() { <-ctx.Done(); stop() }()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
