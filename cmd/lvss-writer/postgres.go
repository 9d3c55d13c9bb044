//go:build !lvss_nopostgres

package main

import (
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/internal/clierr"
	pgwriter "github.com/lvss/lvss/writers/postgres"
)

func init() { writerCommands = append(writerCommands, newPostgresCommand) }

func newPostgresCommand(g *globalOptions) *cobra.Command {
	var (
		cfg        pgwriter.Config
		mode       string
		checkpoint bool
	)
	cmd := &cobra.Command{
		Use:   "postgres [--dsn DSN] [flags]",
		Short: "Make a PostgreSQL 15+ cluster recoverable from each snapshot",
		Long: `postgres is the writer for a PostgreSQL cluster (15 or later) on this machine.
It relies on the snapshot being crash-consistent: data directory, WAL
directory and tablespaces captured at one instant hold every committed
transaction, and a server started on them recovers as after a power
failure.

What it holds, and for how long: nothing the application waits for.
Commits go on during the whole snapshot. The writer keeps one connection
to the server for each snapshot set, from PrepareForSnapshot until Thaw
(or Abort, or BackupShutdown, whichever comes first).

  Identify            connects, reads data_directory, the WAL directory and
                      the tablespaces, and declares them as one component,
                      "cluster"; disconnects
  PrepareForSnapshot  vetoes with VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT,
                      naming the paths, unless all of them are captured at
                      one instant (one volume, or one atomic provider
                      commit) by a point-in-time provider (not copied file
                      by file); then CHECKPOINT, so that recovery is short
  Freeze              nothing
  Thaw, Abort,        close the connection
  BackupShutdown
  PreRestore          refuses (naming the PID) while a server runs on the
                      data directory: stop it before restoring; with
                      --stop-command the writer runs it instead and waits
                      until the server is gone
  PostRestore         removes a stale postmaster.pid; for a --mode pitr
                      backup writes backup_label, recovery.signal and the
                      recovery settings (restore options, --restore-command);
                      start the server afterwards, or give --start-command:
                      the writer runs it and waits until the server accepts
                      connections (after point-in-time recovery: promoted)

Without --stop-command and --start-command the writer never stops or
starts the server: it does not know which service runs it. With them,
VSS_RS_NONE (nothing was restored) starts the server again only if the
writer stopped it in that session, and VSS_RS_FAILED never starts it.

The connection comes from --dsn (a libpq connection string or a
postgres:// URL); what it leaves out comes from the PG* environment
variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE, PGSERVICE, ...).
Connect directly to the server, not through a pooler. The role needs
pg_read_all_settings and pg_checkpoint (or superuser). The writer must run
as root or as the server's OS user: it resolves pg_wal and the tablespace
links in the data directory. See docs/writer-postgres.md.`,
		Example: `  lvss-writer postgres --dsn 'host=/run/postgresql user=postgres'
  PGHOST=/run/postgresql PGUSER=lvss lvss-writer postgres --instance-name 15/main
  lvss-writer postgres --dsn postgres://lvss@localhost:5433/postgres --checkpoint=false
  lvss-writer postgres --mode pitr --data-dir /var/lib/postgresql/15/main --restore-command 'cp /srv/pg-archive/%f %p'
  lvss-writer postgres --data-dir /var/lib/postgresql/15/main \
      --stop-command 'systemctl stop postgresql@15-main' --start-command 'systemctl start postgresql@15-main'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			cfg.Mode = pgwriter.Mode(mode)
			cfg.NoCheckpoint = !checkpoint
			cfg.Logger = log
			id, w, err := pgwriter.New(cfg)
			if err != nil {
				return clierr.Usagef("%v", err)
			}
			defer w.Close()
			return host(cmd.Context(), g, log, id, w, 0)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DSN, "dsn", "", "libpq connection string or postgres:// URL (default: the PG* environment variables)")
	f.StringVar(&cfg.Name, "name", "", "writer name (default postgres)")
	f.StringVar(&cfg.InstanceName, "instance-name", "", "instance name, unique per class (needed to run a writer per cluster, e.g. 15/main)")
	f.DurationVar(&cfg.FreezeTimeout, "freeze-timeout", 0, "Freeze→Thaw window to ask for (default 60s; lvssd may grant less)")
	f.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 0, "bound on each connection attempt (default the DSN's connect_timeout, else 10s)")
	f.StringVar(&mode, "mode", string(pgwriter.ModeSnapshot), "how the cluster is made restorable: snapshot (crash-consistent) or pitr (base backup for point-in-time recovery; needs WAL archiving)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "the cluster's data directory, declared while the server is stopped (a restore) if the writer has not reached it since it started")
	f.StringVar(&cfg.RestoreCommand, "restore-command", "", "restore_command for point-in-time recovery of a --mode pitr backup, e.g. 'cp /srv/pg-archive/%f %p' (restore options may give their own)")
	f.StringVar(&cfg.StopCommand, "stop-command", "", "shell command that stops the server, run by PreRestore while it runs (e.g. 'systemctl stop postgresql@15-main'); default: refuse")
	f.StringVar(&cfg.StartCommand, "start-command", "", "shell command that starts the server, run by PostRestore after a restore (e.g. 'systemctl start postgresql@15-main'); default: leave it stopped")
	f.BoolVar(&checkpoint, "checkpoint", true, "run CHECKPOINT at PrepareForSnapshot so that recovery of the snapshot is short (needs pg_checkpoint)")
	return cmd
}
